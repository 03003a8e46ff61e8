package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// Oracle tests of the wider statement shapes (shapes.go): table aliases,
// parenthesized WHERE clauses, casts and decimal literals. Each case runs on
// the exact oracle (exact_test.go): the same statements directly and through
// writeback, then reads, errors and final tables compared. TestShapesBuffered
// checks which of them are in fact buffered, since the oracle alone would
// also pass if they all went to the database.

// pairsDDL is a table with a composite key.
const pairsDDL = `CREATE TABLE pairs (a BIGINT NOT NULL, b TEXT NOT NULL, n BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (a, b));
INSERT INTO pairs (a, b, n) VALUES (1, 'x', 0), (1, 'y', 0), (2, 'x', 0)`

// moneyDDL has a numeric column with a scale, an unconstrained numeric, a
// float (REAL affinity on SQLite) and an integer column, each a target of
// decimal literals, and an int4 column for casts (INTEGER on SQLite).
const moneyDDL = `CREATE TABLE money (id BIGINT NOT NULL PRIMARY KEY, amount NUMERIC(12,2) NOT NULL DEFAULT 0,
u NUMERIC, f DOUBLE PRECISION NOT NULL DEFAULT 0, n BIGINT NOT NULL DEFAULT 0, small INTEGER NOT NULL DEFAULT 0, label VARCHAR(5));
INSERT INTO money (id, amount, u, f, n) VALUES (1, 0, 0, 0, 0), (2, 10, NULL, 0.5, 7)`

const dumpMoney = "SELECT * FROM money ORDER BY id"

var shapeCases = []exactCase{
	{name: "shape_alias", dbs: onBoth, schema: countersDDL, rules: countersRules,
		steps: []exactStep{
			execStep("UPDATE counters AS c SET n = c.n + 1 WHERE c.id = ?", 1),
			execStep("UPDATE counters AS c SET n = n + ?, label = ? WHERE c.id = ?", 2, "q", 1),
			execStep("UPDATE counters AS C SET n = 1 + c.n WHERE C.id = ?", 2),
			execStep("UPDATE counters AS counters SET n = counters.n + 1 WHERE counters.id = ?", 2),
			// The table's name no longer qualifies: both databases refuse it.
			execStep("UPDATE counters AS c SET n = counters.n + 1 WHERE c.id = 1"),
			execStep("UPDATE counters AS c SET n = n + 1 WHERE counters.id = 1"),
			// SQLite refuses an alias without AS; PostgreSQL takes it.
			execStep("UPDATE counters c SET n = c.n + ? WHERE c.id = ?", 5, 2),
			queryStep("SELECT id, n, label FROM counters WHERE id = ?", 1),
			execStep(`UPDATE "counters" SET "n" = "counters"."n" + ? WHERE "counters"."id" = ?`, 3, 1),
			execStep(`UPDATE counters AS c SET n = c.n + 1 WHERE c.id = ?`, 3), // no such row
		},
		final: []string{dumpCounters}, want: wantSame},

	{name: "shape_where_parens", dbs: onBoth, schema: countersDDL + ";\n" + pairsDDL,
		rules: countersRules + "  pairs:\n    mode: back\n    key: [a, b]\n    max_loss: 1h\n",
		steps: []exactStep{
			execStep("UPDATE counters SET n = n + 1 WHERE (id = ?)", 1),
			execStep("UPDATE counters SET n = n + 1 WHERE ((id = ?))", 1),
			execStep("UPDATE pairs SET n = n + 1 WHERE (a = ?) AND (b = ?)", 1, "x"),
			execStep("UPDATE pairs SET n = n + 2 WHERE (a = ? AND b = ?)", 1, "y"),
			execStep("UPDATE pairs SET n = n + 3 WHERE (b = ? AND (a = ?))", "x", 2),
			execStep(`UPDATE "pairs" SET "n"=n + ? WHERE "pairs"."a" = ? AND "pairs"."b" = ?`, 4, 1, "x"),
			// Through: OR, and a key twice.
			execStep("UPDATE pairs SET n = n + 1 WHERE (a = ? AND b = ?) OR a = ?", 1, "x", 2),
			execStep("UPDATE pairs SET n = n + 1 WHERE (b = ? AND a = ?) AND a = ?", "y", 1, 1),
			queryStep("SELECT a, b, n FROM pairs ORDER BY a, b"),
			execStep("UPDATE pairs SET n = n + 1 WHERE (a = ?) AND (b = ?)", 2, "x"),
		},
		final: []string{dumpCounters, "SELECT * FROM pairs ORDER BY a, b"}, want: wantSame},

	{name: "shape_casts", dbs: onBoth, schema: moneyDDL, rules: backRules("money", "id"),
		steps: []exactStep{
			// PostgreSQL: casts to the column's own type are buffered; on
			// SQLite "::" is an error and CAST goes to the database.
			execStep("UPDATE money SET n = n + ?::bigint WHERE id = ?::int8", 2, 1),
			execStep("UPDATE money SET n = n + CAST(? AS bigint) WHERE id = CAST(? AS BIGINT)", 3, 1),
			execStep("UPDATE money SET n = n + 1::bigint, small = small + 2::int WHERE id = 2::bigint"),
			execStep("UPDATE money SET small = small + CAST(? AS integer) WHERE id = ?", 5, 1),
			execStep("UPDATE money SET n = '9'::bigint WHERE id = '2'::bigint"),
			execStep("UPDATE money SET label = ?::varchar WHERE id = ?", "abc", 1),
			execStep("UPDATE money SET u = u + ?::numeric, amount = amount + CAST(? AS decimal) WHERE id = ?", "1.5", "0.25", 1),
			// Another type, or a type modifier: to the database.
			execStep("UPDATE money SET n = n + ?::int WHERE id = ?", 3000000000, 1),
			execStep("UPDATE money SET small = small + ?::int WHERE id = ?", 3000000000, 1),
			execStep("UPDATE money SET small = small + ? WHERE id = ?", 3000000000, 1),
			execStep("UPDATE money SET label = ?::varchar(2) WHERE id = ?", "xyz", 2),
			execStep("UPDATE money SET label = ?::text WHERE id = ?", "toolong", 2),
			execStep("UPDATE money SET label = ?::varchar WHERE id = ?", "toolong", 2),
			execStep("UPDATE money SET amount = amount + ?::numeric WHERE id = ?", "0.005", 1),
			queryStep("SELECT n, small, label FROM money WHERE id = ?", 1),
			execStep("INSERT INTO money (id, n, small) VALUES (?::bigint, CAST(? AS bigint), ?::integer)", 3, 4, 5),
			execStep("UPDATE money SET n = n + ?::bigint WHERE id = ?", 1, 3),
		},
		final: []string{dumpMoney}, want: wantSame},

	{name: "shape_decimals", dbs: onBoth, schema: moneyDDL, rules: backRules("money", "id"),
		steps: []exactStep{
			execStep("UPDATE money SET amount = amount + 1.25 WHERE id = ?", 1),
			execStep("UPDATE money SET amount = amount - 0.5, u = u + 1.50 WHERE id = ?", 1),
			execStep("UPDATE money SET amount = amount + -0.75, u = .5 + u WHERE id = ?", 1),
			execStep("UPDATE money SET f = f + 1.5 WHERE id = ?", 1),
			execStep("UPDATE money SET f = f - 0.25 WHERE id = ?", 1),
			execStep("UPDATE money SET f = f + 0.1 WHERE id = ?", 2),
			execStep("UPDATE money SET f = f + 0.2 WHERE id = ?", 2),
			queryStep("SELECT amount, u, f FROM money WHERE id = ?", 1),
			execStep("UPDATE money SET amount = 2.50, u = 3. WHERE id = ?", 2),
			execStep("UPDATE money SET amount = amount + 0.5 WHERE id = ?", 2),
			// Rounded by the column, or an integer column: to the database.
			execStep("UPDATE money SET amount = amount + 0.005 WHERE id = ?", 2),
			execStep("UPDATE money SET n = n + 1.5 WHERE id = ?", 2),
			execStep("UPDATE money SET n = n + 1.5 WHERE id = ?", 2),
			execStep("UPDATE money SET n = 2.0, label = 1.50 WHERE id = ?", 1),
			execStep("UPDATE money SET f = -0.0 WHERE id = ?", 2),
			execStep("UPDATE money SET u = u + 1.5 WHERE id = ?", 2), // NULL + 1.5
			execStep("INSERT INTO money (id, amount, u, f) VALUES (?, 1.5, -2.25, 0.75), (?, 0.10, 5., -1.5)", 3, 4),
			execStep("UPDATE money SET amount = amount + 1.1, f = f + 1.5 WHERE id = ?", 3),
			execStep("UPDATE money SET amount = 1.5 WHERE id = 1.0"),
		},
		final: []string{dumpMoney}, want: wantSame},
}

// coalesceCases: COALESCE(c, 0) + v, a plain delta on a NOT NULL column and
// a delta counting NULL as 0 on a nullable one; GREATEST and LEAST (max and
// min on SQLite), merged with each other, assignments and deltas.
var coalesceCases = []exactCase{
	{name: "shape_coalesce", dbs: onBoth, schema: moneyDDL, rules: backRules("money", "id"),
		steps: []exactStep{
			execStep("UPDATE money SET n = COALESCE(n, 0) + ? WHERE id = ?", 2, 1),
			execStep("UPDATE money SET n = COALESCE(n, 0) - 1, f = 1.5 + COALESCE(f, 0) WHERE id = ?", 1),
			execStep("UPDATE money SET amount = COALESCE(amount, 0) + ? WHERE id = ?", "1.25", 2),
			execStep("UPDATE money SET u = COALESCE(u, 0) + 1 WHERE id = ?", 2), // nullable, NULL
			execStep("UPDATE money SET u = COALESCE(u, 0) + 1 WHERE id = ?", 1), // nullable, 0
			execStep("UPDATE money SET u = COALESCE(u, 0) + ? WHERE id = ?", 2, 2),
			execStep("UPDATE money SET u = u + 1 WHERE id = ?", 2), // a delta after a COALESCE delta
			execStep("UPDATE money SET u = NULL WHERE id = ?", 1),
			execStep("UPDATE money SET u = COALESCE(u, 0) - 2.5 WHERE id = ?", 1), // after NULL: -2.5
			execStep("UPDATE money SET u = u + 1.5 WHERE id = ?", 1),
			execStep("UPDATE money SET u = COALESCE(u, 0) + 1.5 WHERE id = ?", 1), // after a delta: through
			execStep("UPDATE money AS m SET small = COALESCE(m.small, 0) + ? WHERE m.id = ?", 40000, 1),
			queryStep("SELECT n, f, u, small FROM money ORDER BY id"),
			execStep("UPDATE money SET n = COALESCE(n, 0) + ? WHERE id = ?", 5, 9), // no such row
		},
		final: []string{dumpMoney}, want: wantSame},
	{name: "shape_coalesce_nullable", dbs: onBoth,
		schema: `CREATE TABLE c (id BIGINT NOT NULL PRIMARY KEY, n BIGINT, f DOUBLE PRECISION);
INSERT INTO c (id, n, f) VALUES (1, NULL, NULL), (2, 5, 0.5), (3, NULL, NULL)`,
		rules: backRules("c", "id"),
		steps: []exactStep{
			execStep("UPDATE c SET n = COALESCE(n, 0) + 1, f = COALESCE(f, 0) + 0.5 WHERE id = ?", 1),
			execStep("UPDATE c SET n = COALESCE(n, 0) + ? WHERE id = ?", 2, 1),
			execStep("UPDATE c SET n = COALESCE(n, 0) + 1 WHERE id = ?", 2),
			execStep("UPDATE c SET n = n + 3 WHERE id = ?", 2),
			execStep("UPDATE c SET n = COALESCE(n, 0) + 1 WHERE id = ?", 9), // no such row
			queryStep("SELECT * FROM c ORDER BY id"),
			execStep("UPDATE c SET n = COALESCE(n, 0) + 1 WHERE id = ?", 3),
			execStep("UPDATE c SET n = ? WHERE id = ?", nil, 3),
			execStep("UPDATE c SET n = COALESCE(n, 0) + 4 WHERE id = ?", 3),
			execStep("INSERT INTO c (id, n) VALUES (?, NULL)", 4),
			execStep("UPDATE c SET n = COALESCE(n, 0) + 1, f = COALESCE(f, 0) + 1.5 WHERE id = ?", 4), // f not inserted: through
			execStep("UPDATE c SET n = COALESCE(n, 0) + 1 WHERE id = ?", 4),
		},
		final: []string{"SELECT * FROM c ORDER BY id"}, want: wantSame},
	greatestCase(onPostgres),
	greatestCase(onSQLite),
}

// greatestCase is shape_greatest_least on one database, in its spelling:
// the other's would fail and take a barrier (a flush) at every step, so
// that nothing would merge.
func greatestCase(db exactDB) exactCase {
	return exactCase{name: "shape_greatest_least", dbs: db,
		schema: `CREATE TABLE g (id BIGINT NOT NULL PRIMARY KEY, hi BIGINT, lo BIGINT NOT NULL DEFAULT 100, f DOUBLE PRECISION, m NUMERIC(10,2));
INSERT INTO g (id, hi, lo, f, m) VALUES (1, 5, 100, 1.5, 1.25), (2, NULL, 100, NULL, NULL)`,
		rules: backRules("g", "id"),
		steps: greatestSteps(db == onSQLite),
		final: []string{"SELECT * FROM g ORDER BY id"}, want: wantSame}
}

// greatestStringCase: strings are numbers to PostgreSQL's bigint, but text
// to SQLite's max and min, where '9' > '10'.
var greatestStringCase = exactCase{name: "shape_greatest_strings", dbs: onBoth,
	schema: `CREATE TABLE g (id BIGINT NOT NULL PRIMARY KEY, hi BIGINT, lo BIGINT);
INSERT INTO g (id, hi, lo) VALUES (1, 26, 1)`,
	rules: backRules("g", "id"),
	steps: []exactStep{
		// One database's spelling fails on the other, and takes a barrier
		// there: each database's pair is written together, to merge.
		execStep("UPDATE g SET hi = GREATEST(hi, ?), lo = LEAST(lo, ?) WHERE id = ?", "10", "9", 1),
		execStep("UPDATE g SET hi = GREATEST(hi, ?), lo = LEAST(lo, ?) WHERE id = ?", "9", "10", 1),
		execStep("UPDATE g SET hi = max(hi, ?), lo = min(lo, ?) WHERE id = ?", "10", "9", 1),
		execStep("UPDATE g SET hi = max(hi, ?), lo = min(lo, ?) WHERE id = ?", "9", "10", 1),
	},
	final: []string{"SELECT * FROM g ORDER BY id"}, want: wantSame}

// greatestSteps are the steps of shape_greatest_least, with SQLite's max
// and min for PostgreSQL's GREATEST and LEAST when sqlite.
func greatestSteps(sqlite bool) []exactStep {
	var out []exactStep
	for _, st := range []struct {
		q    string
		args []any
	}{
		{"UPDATE g SET hi = GREATEST(hi, ?), lo = LEAST(lo, ?) WHERE id = ?", []any{7, 50, 1}},
		{"UPDATE g SET hi = GREATEST(hi, ?), lo = LEAST(lo, ?) WHERE id = ?", []any{6, 60, 1}},
		{"UPDATE g SET hi = GREATEST(hi, ?) WHERE id = ?", []any{3, 2}}, // NULL: PostgreSQL 3, SQLite NULL
		{"UPDATE g SET hi = GREATEST(hi, ?), f = GREATEST(f, 2.5) WHERE id = ?", []any{9, 2}},
		{"UPDATE g SET f = LEAST(f, 1.25), m = GREATEST(m, ?) WHERE id = ?", []any{"2.50", 1}},
		{"UPDATE g SET m = GREATEST(m, 2.5) WHERE id = ?", []any{1}},
		{"SELECT * FROM g ORDER BY id", nil},
		{"UPDATE g SET hi = ? WHERE id = ?", []any{20, 1}},
		{"UPDATE g SET hi = GREATEST(hi, ?) WHERE id = ?", []any{15, 1}}, // after an assignment
		{"UPDATE g SET hi = GREATEST(hi, ?) WHERE id = ?", []any{25, 1}},
		{"UPDATE g SET hi = hi + 1 WHERE id = ?", []any{1}},          // a delta after it
		{"UPDATE g SET hi = LEAST(hi, ?) WHERE id = ?", []any{2, 1}}, // LEAST after a delta: through
		{"UPDATE g SET lo = LEAST(lo, ?) WHERE id = ?", []any{40, 2}},
		{"UPDATE g SET lo = GREATEST(lo, ?) WHERE id = ?", []any{45, 2}}, // the other function: through
		{"UPDATE g SET hi = NULL WHERE id = ?", []any{2}},
		{"UPDATE g SET hi = GREATEST(hi, ?) WHERE id = ?", []any{1, 2}}, // after NULL: through
		{"UPDATE g SET hi = GREATEST(hi, ?) WHERE id = ?", []any{1, 9}}, // no such row
		{"UPDATE g SET f = GREATEST(f, ?) WHERE id = ?", []any{0.0, 1}},
		{"INSERT INTO g (id, hi, lo) VALUES (?, ?, ?)", []any{3, 4, 4}},
		{"UPDATE g SET hi = GREATEST(hi, ?), lo = LEAST(lo, ?) WHERE id = ?", []any{3, 3, 3}},
	} {
		q := st.q
		if sqlite {
			q = strings.NewReplacer("GREATEST(", "max(", "LEAST(", "min(").Replace(q)
		}
		if st.args == nil {
			out = append(out, queryStep(q))
		} else {
			out = append(out, execStep(q, st.args...))
		}
	}
	return out
}

func TestShapesExact(t *testing.T) {
	for _, d := range []struct {
		name string
		db   exactDB
	}{{"sqlite", onSQLite}, {"postgres", onPostgres}} {
		t.Run(d.name, func(t *testing.T) {
			if d.db == onPostgres {
				requirePostgres(t)
			}
			for _, c := range append(append(append([]exactCase{}, shapeCases...), coalesceCases...), greatestStringCase) {
				if c.dbs&d.db != 0 {
					t.Run(c.name, func(t *testing.T) { runExact(t, c, d.db == onPostgres) })
				}
			}
		})
	}
}

// TestShapesBuffered checks, statement by statement, whether writeback
// buffers it (true) or sends it to the database (false).
func TestShapesBuffered(t *testing.T) {
	type stmt struct {
		q        string
		args     []any
		buffered bool
	}
	both := []stmt{
		{"UPDATE counters AS c SET n = c.n + 1 WHERE c.id = ?", []any{1}, true},
		{`UPDATE "counters" SET "n" = "counters"."n" + ? WHERE "counters"."id" = ?`, []any{1, 1}, true},
		{"UPDATE counters SET n = n + 1 WHERE (id = ?)", []any{1}, true},
		{"UPDATE counters SET n = n + 1 WHERE ((id = ?))", []any{2}, true},
		{"UPDATE pairs SET n = n + 1 WHERE (a = ?) AND (b = ?)", []any{1, "x"}, true},
		{"UPDATE pairs SET n = n + 1 WHERE (a = ? AND b = ?)", []any{1, "x"}, true},
		{"UPDATE money SET f = f + 1.5 WHERE id = ?", []any{1}, true},
		{"UPDATE money SET n = n + 1.5 WHERE id = ?", []any{1}, false},
		{"UPDATE counters AS c SET n = counters.n + 1 WHERE c.id = ?", []any{1}, false},
		{"UPDATE pairs SET n = n + 1 WHERE (a = ? AND b = ?) OR a = ?", []any{1, "x", 2}, false},
		{"UPDATE money SET n = COALESCE(n, 0) + ? WHERE id = ?", []any{1, 1}, true},
		{"UPDATE money SET u = COALESCE(u, 0) + ? WHERE id = ?", []any{1, 2}, true},
	}
	pgOnly := []stmt{
		{"UPDATE money SET n = GREATEST(n, ?), small = LEAST(small, 3) WHERE id = ?", []any{5, 2}, true},
		{"UPDATE money SET n = max(n, ?) WHERE id = ?", []any{5, 1}, false},
		{"UPDATE counters c SET n = c.n + 1 WHERE c.id = ?", []any{1}, true},
		{"UPDATE money SET n = n + ?::bigint WHERE id = ?::int8", []any{1, 1}, true},
		{"UPDATE money SET n = n + CAST(? AS bigint), small = small + 1::int WHERE id = CAST(? AS bigint)", []any{1, 1}, true},
		{"UPDATE money SET label = ?::varchar WHERE id = ?", []any{"a", 1}, true},
		{"UPDATE money SET amount = amount + 1.25, u = u - 0.5 WHERE id = ?", []any{1}, true},
		{"UPDATE money SET f = f + 0.1 WHERE id = ?", []any{1}, true},
		{"INSERT INTO money (id, amount, f) VALUES (?, 1.5, 0.1)", []any{5}, true},
		{"UPDATE money SET n = n + ?::int WHERE id = ?", []any{1, 1}, false},
		{"UPDATE money SET label = ?::text WHERE id = ?", []any{"a", 1}, false},
		{"UPDATE money SET amount = amount + 0.005 WHERE id = ?", []any{1}, false},
		{"UPDATE money SET amount = 1.5 WHERE id = 1.0", nil, false},
	}
	sqliteOnly := []stmt{
		{"UPDATE money SET n = max(n, ?), small = min(small, 3) WHERE id = ?", []any{5, 2}, true},
		{"UPDATE money SET label = max(label, ?) WHERE id = ?", []any{"x", 1}, false},
		{"UPDATE money SET n = max(n, ?) WHERE id = ?", []any{"10", 3}, false},
		{"UPDATE money SET f = f + 0.1 WHERE id = ?", []any{1}, false}, // no exact binary value
		{"UPDATE money SET amount = amount + 1.25 WHERE id = ?", []any{1}, false},
		{"UPDATE money SET n = n + CAST(? AS INTEGER) WHERE id = ?", []any{1, 1}, false},
		{"INSERT INTO money (id, f) VALUES (?, 0.75)", []any{5}, true},
	}
	rules := countersRules + "  pairs:\n    mode: back\n    key: [a, b]\n    max_loss: 1h\n" +
		"  money:\n    mode: back\n    key: [id]\n    max_loss: 1h\n"
	schema := countersDDL + ";\n" + pairsDDL + ";\n" + moneyDDL
	for _, pg := range []bool{false, true} {
		name, list := "sqlite", append(append([]stmt{}, both...), sqliteOnly...)
		if pg {
			name, list = "postgres", append(append([]stmt{}, both...), pgOnly...)
		}
		t.Run(name, func(t *testing.T) {
			env := newExactEnv(t, pg)
			base := env.openPlain(t, env.wbDSN)
			if _, err := base.Exec(schema); err != nil {
				t.Fatal(err)
			}
			wb := openWriteback(t, env.driver, env.wbDSN, rules)
			defer wb.Close()
			ctx := context.Background()
			conn, err := wb.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, s := range list {
				q := exactSQL(s.q, pg)
				before := bufferedCount(t, wb)
				if _, err := conn.ExecContext(ctx, q, s.args...); err != nil {
					if s.buffered {
						t.Errorf("%s: %v", q, err)
					}
					continue // an error from the database: it went there
				}
				if got := bufferedCount(t, wb) > before; got != s.buffered {
					t.Errorf("%s %v: buffered %v, want %v", q, s.args, got, s.buffered)
				}
			}
		})
	}
}

// bufferedCount is the number of writes the connector has buffered.
func bufferedCount(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	st, err := StatsOf(db)
	if err != nil {
		t.Fatal(err)
	}
	return st.Buffered
}

func TestCastIsColumnType(t *testing.T) {
	for _, c := range []struct {
		col, cast string
		want      bool
	}{
		{"bigint", "bigint", true},
		{"bigint", "int8", true},
		{"bigint", "int", false},
		{"integer", "int4", true},
		{"integer", "int", true},
		{"smallint", "int2", true},
		{"numeric(12,2)", "numeric", true},
		{"numeric", "decimal", true},
		{"character varying(20)", "varchar", true},
		{"character varying", "character varying", true},
		{"character varying(20)", "text", false},
		{"text", "text", true},
		{"text", "varchar", false},
		{"character(5)", "char", false}, // char is char(1): it truncates
		{"character(5)", "character", false},
		{"character(5)", "bpchar", false},
		{"bit(3)", "bit", false},
		{"double precision", "float8", true},
		{"double precision", "float", true},
		{"real", "float4", true},
		{"real", "double precision", false},
		{"timestamp(3) with time zone", "timestamptz", true},
		{"timestamp without time zone", "timestamp", true},
		{"timestamp with time zone", "timestamp", false},
		{"boolean", "bool", true},
		{"uuid", "uuid", true},
		{"integer[]", "integer", false},
		{"posint", "posint", true}, // a domain, by its name
		{`"MyDomain"`, "mydomain", false},
	} {
		if got := castIsColumnType(c.col, c.cast); got != c.want {
			t.Errorf("castIsColumnType(%q, %q) = %v, want %v", c.col, c.cast, got, c.want)
		}
	}
}

func TestDecimalValue(t *testing.T) {
	num := &catalog.Column{Class: catalog.Numeric, Type: "numeric(12,2)"}
	dbl := &catalog.Column{Class: catalog.Float, Type: "double precision"}
	flt4 := &catalog.Column{Class: catalog.Float, Type: "real"}
	integer := &catalog.Column{Class: catalog.Integer, Type: "bigint"}
	text := &catalog.Column{Class: catalog.Text, Type: "text"}
	sqReal := &catalog.Column{Class: catalog.Float, Type: "REAL"}
	sqNum := &catalog.Column{Class: catalog.Numeric, Type: "NUMERIC(12,2)"}
	pg, sq := dialect.Postgres, dialect.SQLite
	for _, c := range []struct {
		kind dialect.Kind
		col  *catalog.Column
		d    string
		want any // nil: refused
	}{
		{pg, num, "1.50", "1.50"},
		{pg, num, "-0.005", "-0.005"}, // the column's scale is AssignOK's and DeltaExact's to check
		{pg, dbl, "0.1", 0.1},
		{pg, dbl, "-1.5", -1.5},
		{pg, dbl, "-0.0", 0.0},
		{pg, dbl, "1" + strings.Repeat("0", 400), nil}, // infinite as a float8: an error directly
		{pg, flt4, "1.5", nil},
		{pg, integer, "1.0", nil},
		{pg, text, "1.5", nil},
		{sq, sqReal, "1.5", 1.5},
		{sq, sqReal, "-0.25", -0.25},
		{sq, sqReal, "0.1", nil}, // no exact binary value
		{sq, sqReal, "-0.0", nil},
		{sq, sqNum, "1.5", nil},
		{sq, integer, "2.0", nil},
		{dialect.Generic, dbl, "1.5", nil},
	} {
		got, ok := decimalValue(c.kind, c.col, sqlparse.Decimal(c.d))
		if ok != (c.want != nil) || ok && got != c.want {
			t.Errorf("decimalValue(%s, %s, %s) = %v, %v; want %v", c.kind, c.col.Type, c.d, got, ok, c.want)
		}
		if f, isF := got.(float64); isF && f == 0 && math.Signbit(f) {
			t.Errorf("decimalValue(%s, %s, %s) = -0", c.kind, c.col.Type, c.d)
		}
	}
}

// TestPlanShapesGeneric: without a catalog, nothing of the wider shapes is
// buffered, and the plain statement still is.
func TestPlanShapesGeneric(t *testing.T) {
	for q, want := range map[string]bool{
		"UPDATE t SET n = n + 1 WHERE id = ?":                 true,
		"UPDATE t SET n = n + 1 WHERE (id = ?)":               true,
		"UPDATE t AS a SET n = a.n + 1 WHERE a.id = ?":        false,
		"UPDATE t SET n = n + CAST(? AS bigint) WHERE id = ?": false,
		"UPDATE t SET n = n + 1.5 WHERE id = ?":               false,
		"INSERT INTO t (id, n) VALUES (?, 1.5)":               false,
		"UPDATE t SET n = COALESCE(n, 0) + 1 WHERE id = ?":    false,
	} {
		c := sqlparse.Classify(q, false)
		if c.Kind == sqlparse.Other {
			t.Fatalf("%s: not recognized", q)
		}
		if got := planShapes(dialect.Generic, &stmtInfo{c: c}, []int{0}, nil); got != want {
			t.Errorf("planShapes(generic, %q) = %v, want %v", q, got, want)
		}
	}
}

// TestPlanShapesCopies: the decimal's value replaces it in a copy; the
// classification, which may be shared, is left as it was.
func TestPlanShapesCopies(t *testing.T) {
	c := sqlparse.Classify("UPDATE t SET a = a + 1.5, b = 2 WHERE id = 2.50", false)
	dbl := &catalog.Column{Class: catalog.Float, Type: "double precision"}
	num := &catalog.Column{Class: catalog.Numeric, Type: "numeric"}
	info := &stmtInfo{c: c, setCols: []*catalog.Column{dbl, num}, keyCols: []*catalog.Column{num}}
	if !planShapes(dialect.Postgres, info, []int{0}, nil) {
		t.Fatal("refused")
	}
	if info.c == c || info.c.Sets[0].Val.Lit != 1.5 || info.c.Where[0].Val.Lit != "2.50" || info.c.Sets[1].Val.Lit != int64(2) {
		t.Errorf("planned %+v", info.c)
	}
	if c.Sets[0].Val.Lit != sqlparse.Decimal("1.5") || c.Where[0].Val.Lit != sqlparse.Decimal("2.50") {
		t.Errorf("the classification changed: %+v", c)
	}
}

const insertMoney = "INSERT INTO money (id, amount, u, f) VALUES (?, 0.25, NULL, 0.75)"

// TestShapesRandom runs random sequences of the wider shapes, mixed with
// plain statements and reads, on the exact oracle: whatever the order in
// which buffered and passed-through writes meet in one row, the result is
// the database's own.
func TestShapesRandom(t *testing.T) {
	stmts := []struct {
		q    string
		args func(r *rand.Rand, id int64) []any
	}{
		{"UPDATE money AS m SET n = m.n + ? WHERE m.id = ?", func(r *rand.Rand, id int64) []any { return []any{r.Int64N(9) - 4, id} }},
		{"UPDATE money SET n = COALESCE(n, 0) + ?, f = f + 0.5 WHERE (id = ?)", func(r *rand.Rand, id int64) []any { return []any{r.Int64N(5), id} }},
		{"UPDATE money SET amount = amount + 1.25, u = u - 0.5 WHERE ((id = ?))", func(r *rand.Rand, id int64) []any { return []any{id} }},
		{"UPDATE money SET amount = ?, label = ? WHERE id = ?", func(r *rand.Rand, id int64) []any {
			return []any{strconv.Itoa(r.IntN(100)) + ".5", []string{"a", "bb", "toolong"}[r.IntN(3)], id}
		}},
		{"UPDATE money SET u = 2.75, f = -1.5 WHERE id = ?", func(r *rand.Rand, id int64) []any { return []any{id} }},
		{"UPDATE money SET u = COALESCE(u, 0) + 1 WHERE id = ?", func(r *rand.Rand, id int64) []any { return []any{id} }},
		{"UPDATE money SET n = n + 0.5 WHERE id = ?", func(r *rand.Rand, id int64) []any { return []any{id} }},
		{"UPDATE money SET small = small + CAST(? AS integer) WHERE id = ?", func(r *rand.Rand, id int64) []any { return []any{r.Int64N(3), id} }},
		{"UPDATE money SET small = GREATEST(small, ?), n = LEAST(n, ?) WHERE id = ?", func(r *rand.Rand, id int64) []any { return []any{r.Int64N(9), r.Int64N(9), id} }},
		{"UPDATE money SET small = max(small, ?), n = min(n, ?) WHERE id = ?", func(r *rand.Rand, id int64) []any { return []any{r.Int64N(9), r.Int64N(9), id} }},
		{"UPDATE money SET u = GREATEST(u, ?) WHERE id = ?", func(r *rand.Rand, id int64) []any { return []any{strconv.Itoa(r.IntN(5)) + ".5", id} }},
		{"UPDATE money SET u = max(u, 2.5) WHERE id = ?", func(r *rand.Rand, id int64) []any { return []any{id} }},
		{insertMoney, nil},
		{"SELECT * FROM money WHERE id = ?", nil},
	}
	for seed := uint64(1); seed <= 5; seed++ {
		r := rand.New(rand.NewPCG(seed, 17))
		var steps []exactStep
		next := int64(3) // rows 3..5 are inserted (once: a buffered INSERT of an existing key fails only at its flush), or missing
		for range 60 {
			s := stmts[r.IntN(len(stmts))]
			id := 1 + r.Int64N(5)
			switch {
			case s.q == insertMoney && next <= 5:
				steps = append(steps, execStep(s.q, next))
				next++
			case s.q == insertMoney:
			case s.args == nil:
				steps = append(steps, queryStep(s.q, id))
			default:
				steps = append(steps, execStep(s.q, s.args(r, id)...))
			}
		}
		c := exactCase{name: fmt.Sprintf("seed_%d", seed), dbs: onBoth, schema: moneyDDL, rules: backRules("money", "id"),
			steps: steps, final: []string{dumpMoney}, want: wantSame}
		for _, pg := range []bool{false, true} {
			name := "sqlite/" + c.name
			if pg {
				name = "postgres/" + c.name
			}
			t.Run(name, func(t *testing.T) {
				if pg {
					requirePostgres(t)
				}
				runExact(t, c, pg)
			})
		}
	}
}

// TestShapesJournalReplay: COALESCE deltas, max and min buffered with a
// journal come back from it after a crash (a copy of the journal taken
// before Close, replayed against a fresh database) and give what the same
// statements give directly.
func TestShapesJournalReplay(t *testing.T) {
	const schema = `CREATE TABLE c (id BIGINT NOT NULL PRIMARY KEY, n BIGINT, hi BIGINT, lo BIGINT);
INSERT INTO c (id, n, hi, lo) VALUES (1, NULL, 5, 5), (2, 3, NULL, 9)`
	stmts := []struct {
		q    string
		args []any
	}{
		{"UPDATE c SET n = COALESCE(n, 0) + ?, hi = max(hi, ?) WHERE id = ?", []any{2, 7, 1}},
		{"UPDATE c SET n = COALESCE(n, 0) + ?, lo = min(lo, ?) WHERE id = ?", []any{3, 4, 2}},
		{"UPDATE c SET hi = max(hi, ?), lo = min(lo, ?) WHERE id = ?", []any{6, 1, 1}},
		{"UPDATE c SET n = COALESCE(n, 0) + ? WHERE id = ?", []any{-1, 1}},
	}
	rules := func(jdir string) string {
		return "journal:\n  path: " + jdir + "\n  fsync: always\ntables:\n  c:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    ack: disk\n"
	}
	open := func(name string) (string, *sql.DB) {
		dsn := sqliteDSN(t, name)
		db, err := sql.Open("sqlite3", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Exec(schema); err != nil {
			t.Fatal(err)
		}
		return dsn, db
	}
	_, direct := open("direct")
	srcDSN, _ := open("src")
	jdir := filepath.Join(t.TempDir(), "journal")
	wb := openWriteback(t, "sqlite3", srcDSN, rules(jdir))
	for _, s := range stmts {
		if _, err := direct.Exec(s.q, s.args...); err != nil {
			t.Fatal(err)
		}
		if _, err := wb.Exec(s.q, s.args...); err != nil {
			t.Fatal(err)
		}
	}
	if n := bufferedCount(t, wb); n != int64(len(stmts)) {
		t.Fatalf("buffered %d of %d writes", n, len(stmts))
	}
	crashed := copyDir(t, jdir) // what a crash before any flush leaves
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	freshDSN, fresh := open("fresh")
	replay, err := sql.Open("writeback", "driver=sqlite3 rules="+writeRulesFile(t, rules(crashed))+" dsn="+freshDSN)
	if err != nil {
		t.Fatal(err)
	}
	if err := replay.Close(); err != nil {
		t.Fatal(err)
	}
	const q = "SELECT * FROM c ORDER BY id"
	want, err := exactRows(context.Background(), direct, q)
	if err != nil {
		t.Fatal(err)
	}
	got, err := exactRows(context.Background(), fresh, q)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after replay %q, directly %q", got, want)
	}
}

// TestDeadLetterFunc: a dead letter's column functions survive the file.
func TestDeadLetterFunc(t *testing.T) {
	dl := DeadLetter{Time: time.Unix(1, 0), Table: "g", Key: []any{int64(1)}, Op: "update",
		Columns: []string{"a", "hi", "n"}, Values: []any{int64(1), int64(2), int64(3)},
		Delta: []bool{false, false, true}, Func: []string{"", "greatest", "coalesce"}, Writes: 2}
	got, err := ParseDeadLetter(encodeDeadLetter(dl))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Func, dl.Func) || !reflect.DeepEqual(got.Delta, dl.Delta) {
		t.Errorf("func %q, delta %v; want %q, %v", got.Func, got.Delta, dl.Func, dl.Delta)
	}
	dl.Func = nil
	if line := encodeDeadLetter(dl); strings.Contains(string(line), `"func"`) {
		t.Errorf("a dead letter without functions says func: %s", line)
	}
}

// TestDeadLetterOfFunction: a GREATEST the database refuses at its flush (a
// CHECK constraint, allowed in the rules) is dead-lettered with its function.
func TestDeadLetterOfFunction(t *testing.T) {
	dsn := sqliteDSN(t, "dl")
	base, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if _, err := base.Exec(`CREATE TABLE g (id BIGINT NOT NULL PRIMARY KEY, hi BIGINT CHECK (hi < 10), n BIGINT);
INSERT INTO g (id, hi, n) VALUES (1, 1, NULL)`); err != nil {
		t.Fatal(err)
	}
	got := make(chan DeadLetter, 1)
	rules := writeRulesFile(t, backRules("g", "id", "allow: [check]"))
	wb, err := openWithHooks("sqlite3", rules, dsn, WithOnDeadLetter(func(d DeadLetter) { got <- d }))
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	if _, err := wb.Exec("UPDATE g SET hi = max(hi, ?), n = COALESCE(n, 0) + 1 WHERE id = ?", 50, 1); err != nil {
		t.Fatal(err)
	}
	if n := bufferedCount(t, wb); n != 1 {
		t.Fatalf("buffered %d", n)
	}
	_ = Flush(context.Background(), wb) // the row is refused: a dead letter, not an error to retry
	var dl DeadLetter
	select {
	case dl = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no dead letter")
	}
	if !reflect.DeepEqual(dl.Columns, []string{"hi", "n"}) || !reflect.DeepEqual(dl.Func, []string{"greatest", "coalesce"}) || !reflect.DeepEqual(dl.Delta, []bool{false, true}) {
		t.Errorf("dead letter columns %q, func %q, delta %v", dl.Columns, dl.Func, dl.Delta)
	}
}
