package dialect

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/writeback-go/writeback/internal/sqlparse"
	"github.com/writeback-go/writeback/internal/testdb"
)

// These tests run against the PostgreSQL named by WRITEBACK_TEST_POSTGRES
// (default: the local socket, database test). They skip when it cannot be
// reached, unless CI=true, where that is a failure. Each test creates its
// own tables named wb_pgd_* and drops them.

func pgdOpen(tb testing.TB) *sql.DB { return testdb.OpenPostgres(tb) }

var pgdSeq atomic.Int64

// pgdName returns a name unique to this process and call: wb_pgd_<tag>_<pid>_<n>.
func pgdName(tag string) string {
	return fmt.Sprintf("wb_pgd_%s_%d_%d", tag, os.Getpid(), pgdSeq.Add(1))
}

// pgdCreate creates a table with the given column definitions and drops it
// when the test ends; it returns the table's name.
func pgdCreate(tb testing.TB, db *sql.DB, tag, cols string) string {
	tb.Helper()
	name := pgdName(tag)
	pgdExec(tb, db, fmt.Sprintf("CREATE TABLE %s (%s)", name, cols))
	// CASCADE: a test's rule or view on another of its tables may depend on it.
	tb.Cleanup(func() { _, _ = db.Exec("DROP TABLE IF EXISTS " + name + " CASCADE") })
	return name
}

func pgdExec(tb testing.TB, db *sql.DB, q string, args ...any) {
	tb.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// pgdDialect returns a dialect that inserts by COPY whenever the table
// allows it (byCopy) or never.
func pgdDialect(byCopy bool) *pgWriter {
	d := newPgWriter()
	d.copyMinRows = math.MaxInt
	if byCopy {
		d.copyMinRows = 1
	}
	return d
}

// pgdIdent is an unquoted identifier as the classifier would hand it over.
func pgdIdent(s string) sqlparse.Ident { return sqlparse.Ident{Norm: strings.ToLower(s), Raw: s} }

// pgdUpdate builds an UPDATE group on table: set columns (a "+" suffix
// marks a delta), key columns, rows of set values then key values.
func pgdUpdate(table string, set []string, key []string, rows ...[]any) *Group {
	g := &Group{Table: pgdIdent(table), Op: Update, Rows: rows, Style: sqlparse.ParamDollar}
	for _, s := range set {
		g.Cols = append(g.Cols, pgdIdent(strings.TrimSuffix(s, "+")))
		g.Delta = append(g.Delta, strings.HasSuffix(s, "+"))
	}
	for _, k := range key {
		g.KeyCols = append(g.KeyCols, pgdIdent(k))
	}
	return g
}

// pgdInsert builds an INSERT group on table.
func pgdInsert(table string, cols []string, rows ...[]any) *Group {
	g := &Group{Table: pgdIdent(table), Op: Insert, Rows: rows, Style: sqlparse.ParamDollar}
	for _, c := range cols {
		g.Cols = append(g.Cols, pgdIdent(c))
	}
	return g
}

// pgdRows returns the query's rows, each column as text ("<NULL>" for NULL).
func pgdRows(tb testing.TB, db *sql.DB, q string, args ...any) [][]string {
	tb.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
			if !v.Valid {
				row[i] = "<NULL>"
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestPgSQLText pins the statements the flusher emits, so a reviewer can see
// them without a database.
func TestPgSQLText(t *testing.T) {
	int8 := pgColSQL{typ: "pg_catalog.int8"}
	text := pgColSQL{typ: "pg_catalog.text"}
	g := pgdUpdate("page_views", []string{"title", "views+"}, []string{"id"})
	got := pgUpdateSQL(g, []pgColSQL{text, int8}, []pgColSQL{int8})
	want := "UPDATE page_views AS t SET title = v.c0, views = t.views + v.c1 " +
		"FROM unnest($1::pg_catalog.text[], $2::pg_catalog.int8[], $3::pg_catalog.int8[]) AS v(c0, c1, k0) " +
		"WHERE t.id = v.k0"
	if got != want {
		t.Errorf("single-key update:\n got %s\nwant %s", got, want)
	}
	got = pgMissingSQL(g, []pgColSQL{int8})
	want = "SELECT v.n FROM unnest($1::pg_catalog.int8[]) WITH ORDINALITY AS v(k0, n) " +
		"WHERE NOT EXISTS (SELECT 1 FROM page_views AS t WHERE t.id = v.k0)"
	if got != want {
		t.Errorf("missing keys:\n got %s\nwant %s", got, want)
	}

	// Composite key, quoted names and a schema as the application wrote
	// them; a uuid key given as strings travels as text and is cast.
	uuidText := pgColSQL{typ: pgTextType, cast: "pg_catalog.uuid"}
	g = pgdUpdate("", []string{"views+"}, []string{"tenant", "page"})
	g.Schema = &sqlparse.Ident{Norm: "app", Raw: "app"}
	g.Table = sqlparse.Ident{Norm: "Views", Raw: `"Views"`, Quoted: true}
	g.KeyCols[1] = sqlparse.Ident{Norm: "Page", Raw: `"Page"`, Quoted: true}
	got = pgUpdateSQL(g, []pgColSQL{int8}, []pgColSQL{uuidText, int8})
	want = `UPDATE app."Views" AS t SET views = t.views + v.c0 ` +
		`FROM unnest($1::pg_catalog.int8[], $2::pg_catalog.text[], $3::pg_catalog.int8[]) AS v(c0, k0, k1) ` +
		`WHERE t.tenant = v.k0::pg_catalog.uuid AND t."Page" = v.k1`
	if got != want {
		t.Errorf("composite-key update:\n got %s\nwant %s", got, want)
	}
	got = pgMissingSQL(g, []pgColSQL{uuidText, int8})
	want = `SELECT v.n FROM unnest($1::pg_catalog.text[], $2::pg_catalog.int8[]) WITH ORDINALITY AS v(k0, k1, n) ` +
		`WHERE NOT EXISTS (SELECT 1 FROM app."Views" AS t WHERE t.tenant = v.k0::pg_catalog.uuid AND t."Page" = v.k1)`
	if got != want {
		t.Errorf("composite missing keys:\n got %s\nwant %s", got, want)
	}

	g = pgdInsert("events", []string{"id", "amount", "payload"})
	got = pgInsertSQL(g, []pgColSQL{int8, {typ: pgTextType, cast: "pg_catalog.numeric"}, {typ: "pg_catalog.jsonb"}})
	want = "INSERT INTO events (id, amount, payload) SELECT v.c0, v.c1::pg_catalog.numeric, v.c2 " +
		"FROM unnest($1::pg_catalog.int8[], $2::pg_catalog.text[], $3::pg_catalog.jsonb[]) AS v(c0, c1, c2)"
	if got != want {
		t.Errorf("insert:\n got %s\nwant %s", got, want)
	}
}

func TestPgNotPgxConn(t *testing.T) {
	_, err := newPgWriter().WriteTx(context.Background(), pgdFakeConn{}, nil, 10, nil)
	if err == nil || !strings.Contains(err.Error(), "pgx stdlib connection") {
		t.Fatalf("err = %v, want a clear error", err)
	}
	if isPgxConn(pgdFakeConn{}) {
		t.Fatal("isPgxConn(fake) = true")
	}
	if got := newPgWriter().Name(); got != "postgres" {
		t.Fatalf("name() = %q", got)
	}
}

type pgdFakeConn struct{}

func (pgdFakeConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("fake") }
func (pgdFakeConn) Close() error                        { return nil }
func (pgdFakeConn) Begin() (driver.Tx, error)           { return nil, errors.New("fake") }

// pgdTypeCase is a column type and a value to store in it.
type pgdTypeCase struct {
	typ string
	val any
}

// pgdTypeCases creates the types the cases use (dropped when the test ends)
// and returns values of many types, each type also with NULL.
func pgdTypeCases(tb testing.TB, db *sql.DB) []pgdTypeCase {
	dom, enum := pgdName("posint"), pgdName("mood")
	pgdExec(tb, db, fmt.Sprintf("CREATE DOMAIN %s AS integer CHECK (VALUE > 0)", dom))
	tb.Cleanup(func() { _, _ = db.Exec("DROP DOMAIN IF EXISTS " + dom + " CASCADE") })
	pgdExec(tb, db, fmt.Sprintf("CREATE TYPE %s AS ENUM ('sad', 'ok', 'happy')", enum))
	tb.Cleanup(func() { _, _ = db.Exec("DROP TYPE IF EXISTS " + enum + " CASCADE") })
	darr := pgdName("intlist")
	pgdExec(tb, db, fmt.Sprintf("CREATE DOMAIN %s AS bigint[] CHECK (cardinality(VALUE) < 5)", darr))
	tb.Cleanup(func() { _, _ = db.Exec("DROP DOMAIN IF EXISTS " + darr + " CASCADE") })

	ist := time.FixedZone("IST", 5*3600+30*60)
	ts := time.Date(2024, 3, 1, 23, 34, 56, 123456789, ist)
	cases := []pgdTypeCase{
		{"bigint", int64(math.MinInt64)},
		{"bigint", int64(math.MaxInt64)},
		{"integer", int64(math.MinInt32)},
		{"integer", int64(1) << 40}, // out of range: pgx refuses to encode it, both fail
		{"integer", "17"},
		{"smallint", int64(32767)},
		{"numeric", "12.345"},
		{"numeric", int64(7)},
		{"numeric", "-0.000000000000000000000000000001"},
		{"numeric", "NaN"},
		{"numeric", float64(1.1)},
		{"numeric(10,2)", "12.345"},
		{"double precision", float64(0.1)},
		{"double precision", math.MaxFloat64},
		{"double precision", math.SmallestNonzeroFloat64},
		{"double precision", math.Copysign(0, -1)},
		{"double precision", math.Inf(-1)},
		{"double precision", math.NaN()},
		{"double precision", int64(3)},
		{"real", float64(3.14159265358979)},
		{"text", "héllo \"q\" {a,b} NULL \\ ,"},
		{"text", ""},
		{"text", "NULL"},
		{"varchar(5)", "abc"},
		{"varchar(5)", "abcdefg"}, // too long: both fail (22001)
		{"char(5)", "ab"},
		{"boolean", true},
		{"boolean", false},
		{"boolean", "yes"},
		{"bytea", []byte{0, 1, 2, 0xfe, 0xff}},
		{"bytea", []byte{}},
		{"bytea", `\x0102`},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"uuid", "{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}"},
		{"jsonb", `{"b": 1, "a": [1, 2.50, "x"]}`},
		{"jsonb", []byte(`{"k": null}`)},
		{"json", `{"b": 1,  "a": [1, 2.50]}`},
		{"json", []byte(`[1, 2]`)},
		{"timestamptz", ts},
		{"timestamptz", ts.UTC()},
		{"timestamptz", "2024-03-01 10:00:00"},
		{"timestamp", ts},
		{"timestamp", time.Date(2024, 3, 1, 1, 2, 3, 4000, time.UTC)},
		{"timestamp(0)", ts},
		{"date", time.Date(2024, 2, 29, 23, 0, 0, 0, ist)},
		{"date", "2024-02-29"},
		{"int8[]", []int64{1, -2, 3}},
		{"int8[]", []int64{}},
		{"text[]", []string{"a", "b,c", "NULL", "", `q"uote`, `back\slash`}},
		{dom, int64(5)},
		{dom, int64(0)}, // violates the domain's CHECK: both fail (23514)
		{darr, []int64{1, 2}},
		{enum, "happy"},
		{"interval", "1 day 02:03:04"},
		{"inet", "10.0.0.1/8"},
		{"int4range", "[1,5)"},
	}
	types := map[string]bool{}
	for _, c := range cases {
		types[c.typ] = true
	}
	for typ := range types {
		cases = append(cases, pgdTypeCase{typ, nil})
	}

	return cases
}

// TestPgTypesRoundTrip stores each value once with a direct single-row
// statement through database/sql and pgx, and once through the dialect, and
// requires the database to hold the same thing (compared as c::text and
// c IS NULL), for UPDATE and for INSERT by both COPY and unnest. A value the
// direct statement rejects must make the flush fail too, with the same
// SQLSTATE, or without one when pgx refused the value before sending it.
func TestPgTypesRoundTrip(t *testing.T) {
	db := pgdOpen(t)
	cases := pgdTypeCases(t, db)
	for i, c := range cases {
		t.Run(fmt.Sprintf("%02d_%s_%T", i, c.typ, c.val), func(t *testing.T) {
			table := pgdCaseTable(t, db, "rt", c, "(1), (2)")
			_, directErr := db.Exec("UPDATE "+table+" SET c = $1 WHERE id = 1", c.val)
			_, flushErr := flushDB(t, db, newPgWriter(), 10, pgdUpdate(table, []string{"c"}, []string{"id"}, []any{c.val, int64(2)}))
			pgdSameOutcome(t, "update", directErr, flushErr)

			_, directErr = db.Exec("INSERT INTO "+table+" (id, c) VALUES (3, $1)", c.val)
			_, flushErr = flushDB(t, db, pgdDialect(false), 10, pgdInsert(table, []string{"id", "c"}, []any{int64(4), c.val}))
			pgdSameOutcome(t, "insert (unnest)", directErr, flushErr)
			_, flushErr = flushDB(t, db, pgdDialect(true), 10, pgdInsert(table, []string{"id", "c"}, []any{int64(5), c.val}))
			pgdSameOutcome(t, "insert (copy)", directErr, flushErr)

			pgdSameStored(t, db, table, c, [2]string{"1", "2"}, [2]string{"3", "4"}, [2]string{"3", "5"})
		})
	}
}

// pgdCaseTable creates a table (tag) with a column c of the case's type and
// rows of the given ids (a VALUES list), and returns its name.
func pgdCaseTable(t *testing.T, db *sql.DB, tag string, c pgdTypeCase, ids string) string {
	t.Helper()
	table := pgdCreate(t, db, tag, "id bigint PRIMARY KEY, c "+c.typ)
	pgdExec(t, db, "INSERT INTO "+table+" (id) VALUES "+ids)
	return table
}

// pgdSameStored requires each pair of rows of table, one written directly
// and one flushed, to hold the same c (as c::text and c IS NULL).
func pgdSameStored(t *testing.T, db *sql.DB, table string, c pgdTypeCase, pairs ...[2]string) {
	t.Helper()
	got := pgdRows(t, db, "SELECT id, c::text, c IS NULL FROM "+table+" ORDER BY id")
	byID := map[string][]string{}
	for _, r := range got {
		byID[r[0]] = r[1:]
	}
	t.Logf("%s %#v: stored %q", c.typ, c.val, got)
	for _, pair := range pairs {
		if !reflect.DeepEqual(byID[pair[0]], byID[pair[1]]) {
			t.Errorf("%s %#v: direct row %s = %q, flushed row %s = %q", c.typ, c.val, pair[0], byID[pair[0]], pair[1], byID[pair[1]])
		}
	}
}

// pgdSameOutcome requires the flush to fail exactly when the direct
// statement did, with the same SQLSTATE when the direct error had one.
func pgdSameOutcome(t *testing.T, what string, directErr, flushErr error) {
	t.Helper()
	if (directErr == nil) != (flushErr == nil) {
		t.Fatalf("%s: direct err = %v, flush err = %v", what, directErr, flushErr)
	}
	var dpe, fpe *pgconn.PgError
	if errors.As(directErr, &dpe) != errors.As(flushErr, &fpe) || (dpe != nil && fpe.Code != dpe.Code) {
		t.Fatalf("%s: direct err = %v, flush err = %v: want the same SQLSTATE, or none", what, directErr, flushErr)
	}
}

// TestPgUpdateDeltasAndAssigns mixes assigns and deltas of several numeric
// types, negative deltas, NULL rules and a sum beyond the column's range
// whose result is in range.
func TestPgUpdateDeltasAndAssigns(t *testing.T) {
	pgdCheckDeltas(t, pgdOpen(t), "delta", newPgWriter(), 2, "batch 2")
}

// pgdCheckDeltas writes TestPgUpdateDeltasAndAssigns's UPDATE to a table of
// its own (tag) through w, batch rows a statement, and checks the rows it
// leaves; what names the case in failures.
func pgdCheckDeltas(t *testing.T, db *sql.DB, tag string, w Writer, batch int, what string) {
	t.Helper()
	table := pgdCreate(t, db, tag, "id bigint PRIMARY KEY, title text, views bigint, small integer, amount numeric(12,3), ratio double precision, r real")
	pgdExec(t, db, "INSERT INTO "+table+" VALUES (1, 'a', 10, 2000000000, 1.5, 0.5, 1), (2, 'b', NULL, 0, NULL, 1, 1), (3, 'c', 0, 0, 0, 0, 0)")
	g := pgdUpdate(table, []string{"title", "views+", "small+", "amount+", "ratio+", "r+"}, []string{"id"},
		[]any{"A", int64(-15), int64(-3000000000), "1.2345", float64(0.1), float64(0.25), int64(1)},
		[]any{nil, int64(5), int64(7), "2", float64(-2), float64(-1), int64(2)},
		[]any{"C", int64(1), int64(1), int64(3), int64(2), float64(0.5), int64(3)},
	)
	nm, err := flushDB(t, db, w, batch, g)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(nm) != 1 || len(nm[0]) != 0 {
		t.Fatalf("%s: noMatch = %v", what, nm)
	}
	got := pgdRows(t, db, "SELECT id, title, views, small, amount, ratio, r FROM "+table+" ORDER BY id")
	want := [][]string{
		{"1", "A", "-5", "-1000000000", "2.735", "0.6", "1.25"},
		{"2", "<NULL>", "<NULL>", "7", "<NULL>", "-1", "0"},
		{"3", "C", "1", "1", "3.000", "2", "0.5"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: rows:\n got %q\nwant %q", what, got, want)
	}
}

// TestPgUpdateCompositeKey writes through a two-column key with a text key
// part, and reports the missing keys.
func TestPgUpdateCompositeKey(t *testing.T) {
	db := pgdOpen(t)
	table := pgdCreate(t, db, "comp", pgdCompositeCols)
	pgdExec(t, db, "INSERT INTO "+table+" (tenant, page) VALUES (1, 'a'), (1, 'b'), (2, 'a')")
	pgdFlushComposite(t, db, table, newPgWriter(), 2, "batch 2")
	got := pgdRows(t, db, "SELECT tenant, page, views FROM "+table+" ORDER BY 1, 2")
	want := [][]string{{"1", "a", "1"}, {"1", "b", "5"}, {"2", "a", "3"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows = %q, want %q", got, want)
	}
}

// pgdCompositeCols are the columns of pgdFlushComposite's table.
const pgdCompositeCols = "tenant integer, page text, views bigint NOT NULL DEFAULT 0, PRIMARY KEY (tenant, page)"

// pgdFlushComposite adds 1 to 5 to views of keys (1,a), (2,b), (2,a), (1,c),
// (1,b) of table through w, batch rows a statement, and checks that the
// second and fourth (not in the table) match no row; what names the case in
// failures.
func pgdFlushComposite(t *testing.T, db *sql.DB, table string, w Writer, batch int, what string) {
	t.Helper()
	nm, err := flushDB(t, db, w, batch, pgdUpdate(table, []string{"views+"}, []string{"tenant", "page"},
		[]any{int64(1), int64(1), "a"},
		[]any{int64(2), int64(2), "b"}, // missing
		[]any{int64(3), int64(2), "a"},
		[]any{int64(4), int64(1), "c"}, // missing
		[]any{int64(5), int64(1), "b"},
	))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(nm, [][]int{{1, 3}}) {
		t.Fatalf("%s: noMatch = %v, want [[1 3]]", what, nm)
	}
}

// TestPgNoMatchAndBatches checks the no-match indices across statement
// boundaries, for several batch sizes, and that every existing row got its
// delta exactly once.
func TestPgNoMatchAndBatches(t *testing.T) {
	db := pgdOpen(t)
	table := pgdCreate(t, db, "nomatch", "id bigint PRIMARY KEY, views bigint NOT NULL")
	pgdExec(t, db, "INSERT INTO "+table+" SELECT g, 0 FROM generate_series(0, 19) g")
	for _, batch := range []int{1, 3, 4, 7, 10, 1000} {
		var rows [][]any
		var want []int
		for i := 0; i < 10; i++ {
			id := int64(i * 3) // 0, 3, ..., 27: ids above 19 are missing
			if id > 19 {
				want = append(want, i)
			}
			rows = append(rows, []any{int64(1), id})
		}
		rows = append(rows, []any{int64(1), nil}) // a NULL key matches nothing
		want = append(want, 10)
		nm, err := flushDB(t, db, newPgWriter(), batch, pgdUpdate(table, []string{"views+"}, []string{"id"}, rows...))
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		if !reflect.DeepEqual(nm, [][]int{want}) {
			t.Fatalf("batch %d: noMatch = %v, want [%v]", batch, nm, want)
		}
	}
	got := pgdRows(t, db, "SELECT string_agg(views::text, ',' ORDER BY id) FROM "+table)
	// ids 0, 3, ..., 18 were updated once per batch size (6 rounds).
	want := "6,0,0,6,0,0,6,0,0,6,0,0,6,0,0,6,0,0,6,0"
	if got[0][0] != want {
		t.Fatalf("views = %s, want %s", got[0][0], want)
	}
}

// TestPgInsert inserts rows with batch boundaries by both insert paths.
func TestPgInsert(t *testing.T) {
	db := pgdOpen(t)
	for _, byCopy := range []bool{true, false} {
		for _, batch := range []int{1, 3, 10, 100} {
			pgdCheckInsert(t, db, "ins", pgdDialect(byCopy), batch, fmt.Sprintf("copy=%v batch %d", byCopy, batch))
		}
	}
}

// pgdCheckInsert inserts ten rows (amounts as text and as integers) into a
// table of its own (tag) through w, batch rows a statement, and checks that
// all arrived whole and took the column's default; it returns the table.
// what names the case in failures.
func pgdCheckInsert(t *testing.T, db *sql.DB, tag string, w Writer, batch int, what string) string {
	t.Helper()
	table := pgdCreate(t, db, tag, "id bigint PRIMARY KEY, name text, amount numeric, at timestamptz DEFAULT '2000-01-01Z'")
	var rows [][]any
	for i := 0; i < 10; i++ {
		var amount any = fmt.Sprintf("%d.5", i)
		if i%2 == 0 {
			amount = int64(i)
		}
		rows = append(rows, []any{int64(i), fmt.Sprintf("n%d", i), amount})
	}
	nm, err := flushDB(t, db, w, batch, pgdInsert(table, []string{"id", "name", "amount"}, rows...))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(nm) != 1 || nm[0] != nil {
		t.Fatalf("%s: noMatch = %v", what, nm)
	}
	got := pgdRows(t, db, "SELECT count(*), string_agg(name || ':' || amount::text, ',' ORDER BY id), count(DISTINCT at) FROM "+table)
	want := []string{"10", "n0:0,n1:1.5,n2:2,n3:3.5,n4:4,n5:5.5,n6:6,n7:7.5,n8:8,n9:9.5", "1"}
	if !reflect.DeepEqual(got[0], want) {
		t.Fatalf("%s: %q, want %q", what, got[0], want)
	}
	return table
}

// TestPgFailureRollsBack makes the second group of a transaction violate a
// CHECK constraint: nothing of the first group may be committed, and the
// error must carry the PostgreSQL error for errors.As.
func TestPgFailureRollsBack(t *testing.T) {
	db := pgdOpen(t)
	for _, byCopy := range []bool{true, false} {
		table := pgdCreate(t, db, "fail", "id bigint PRIMARY KEY, views bigint NOT NULL CHECK (views >= 0)")
		pgdExec(t, db, "INSERT INTO "+table+" SELECT g, 5 FROM generate_series(1, 10) g")
		good := pgdUpdate(table, []string{"views+"}, []string{"id"}, []any{int64(1), int64(1)}, []any{int64(1), int64(2)})
		ins := pgdInsert(table, []string{"id", "views"}, []any{int64(11), int64(1)})
		bad := pgdUpdate(table, []string{"views+"}, []string{"id"}, []any{int64(1), int64(3)}, []any{int64(-6), int64(4)})
		_, err := flushDB(t, db, pgdDialect(byCopy), 1, good, ins, bad)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23514" {
			t.Fatalf("err = %v, want a *pgconn.PgError with SQLSTATE 23514", err)
		}
		if !strings.Contains(err.Error(), table) {
			t.Errorf("err = %v: want the table's name in it", err)
		}
		got := pgdRows(t, db, "SELECT count(*), sum(views) FROM "+table)
		if !reflect.DeepEqual(got, [][]string{{"10", "50"}}) {
			t.Fatalf("after the failed flush: count, sum = %q, want 10, 50", got)
		}
		// A failed COPY must leave the connection usable too.
		if _, err := flushDB(t, db, pgdDialect(byCopy), 1, ins); err != nil {
			t.Fatal(err)
		}
	}
	// An insert that fails inside COPY.
	table := pgdCreate(t, db, "failcopy", "id bigint PRIMARY KEY, views bigint NOT NULL CHECK (views >= 0)")
	_, err := flushDB(t, db, pgdDialect(true), 100, pgdInsert(table, []string{"id", "views"}, []any{int64(1), int64(1)}, []any{int64(2), int64(-1)}))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23514" {
		t.Fatalf("copy insert: err = %v, want SQLSTATE 23514", err)
	}
}

// TestPgNamesAndSchema writes to a schema-qualified table with quoted
// mixed-case names, as the application wrote them, by UPDATE, COPY and
// INSERT.
func TestPgNamesAndSchema(t *testing.T) {
	db := pgdOpen(t)
	schema := pgdName("s")
	pgdExec(t, db, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { _, _ = db.Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE") })
	pgdExec(t, db, `CREATE TABLE `+schema+`."Pages" ("ID" bigint PRIMARY KEY, "Views" bigint, title text)`)
	for _, byCopy := range []bool{true, false} {
		ins := &Group{
			Schema: &sqlparse.Ident{Norm: schema, Raw: strings.ToUpper(schema)},
			Table:  sqlparse.Ident{Norm: "Pages", Raw: `"Pages"`, Quoted: true},
			Op:     Insert,
			Cols:   []sqlparse.Ident{{Norm: "ID", Raw: `"ID"`, Quoted: true}, {Norm: "Views", Raw: `"Views"`, Quoted: true}, pgdIdent("TITLE")},
			Rows:   [][]any{{int64(1), int64(0), "x"}},
		}
		if !byCopy {
			ins.Rows = [][]any{{int64(2), int64(0), "y"}}
		}
		_, err := flushDB(t, db, pgdDialect(byCopy), 10, ins)
		if err != nil {
			t.Fatalf("insert (copy=%v): %v", byCopy, err)
		}
	}
	upd := &Group{
		Schema:  &sqlparse.Ident{Norm: schema, Raw: schema},
		Table:   sqlparse.Ident{Norm: "Pages", Raw: `"Pages"`, Quoted: true},
		Op:      Update,
		Cols:    []sqlparse.Ident{{Norm: "Views", Raw: `"Views"`, Quoted: true}},
		Delta:   []bool{true},
		KeyCols: []sqlparse.Ident{{Norm: "ID", Raw: `"ID"`, Quoted: true}},
		Rows:    [][]any{{int64(4), int64(1)}, {int64(5), int64(2)}, {int64(6), int64(3)}},
	}
	nm, err := flushDB(t, db, newPgWriter(), 10, upd)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(nm, [][]int{{2}}) {
		t.Fatalf("noMatch = %v", nm)
	}
	got := pgdRows(t, db, `SELECT "ID", "Views", title FROM `+schema+`."Pages" ORDER BY 1`)
	if !reflect.DeepEqual(got, [][]string{{"1", "4", "x"}, {"2", "5", "y"}}) {
		t.Fatalf("rows = %q", got)
	}
}

// TestPgSchemaChange: the type cache follows the table. A new column is
// picked up at once; a changed type fails once (the transaction is already
// aborted then) and the next flush reloads and succeeds.
func TestPgSchemaChange(t *testing.T) {
	db := pgdOpen(t)
	table := pgdCreate(t, db, "alter", "id bigint PRIMARY KEY, views bigint")
	pgdExec(t, db, "INSERT INTO "+table+" VALUES (1, 0)")
	d := newPgWriter()
	if _, err := flushDB(t, db, d, 10, pgdUpdate(table, []string{"views"}, []string{"id"}, []any{int64(1), int64(1)})); err != nil {
		t.Fatal(err)
	}
	pgdExec(t, db, "ALTER TABLE "+table+" ADD COLUMN note text")
	if _, err := flushDB(t, db, d, 10, pgdUpdate(table, []string{"note"}, []string{"id"}, []any{"hi", int64(1)})); err != nil {
		t.Fatalf("new column: %v", err)
	}
	pgdExec(t, db, "ALTER TABLE "+table+" ALTER COLUMN views TYPE jsonb USING to_jsonb(views)")
	_, err := flushDB(t, db, d, 10, pgdUpdate(table, []string{"views"}, []string{"id"}, []any{int64(7), int64(1)}))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42804" {
		t.Fatalf("after type change: err = %v, want 42804", err)
	}
	if _, err := flushDB(t, db, d, 10, pgdUpdate(table, []string{"views"}, []string{"id"}, []any{int64(7), int64(1)})); err != nil {
		t.Fatalf("after reload: %v", err)
	}
	got := pgdRows(t, db, "SELECT views::text, note FROM "+table)
	if !reflect.DeepEqual(got, [][]string{{"7", "hi"}}) {
		t.Fatalf("rows = %q", got)
	}
}

// TestPgContext: a flush whose context has ended fails with the context's
// error and commits nothing; the connection is still usable afterwards.
func TestPgContext(t *testing.T) {
	db := pgdOpen(t)
	table := pgdCreate(t, db, "ctx", "id bigint PRIMARY KEY, views bigint")
	pgdExec(t, db, "INSERT INTO "+table+" VALUES (1, 0)")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := flushDBTx(ctx, t, db, newPgWriter(), 10, nil, pgdUpdate(table, []string{"views+"}, []string{"id"}, []any{int64(1), int64(1)}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	got := pgdRows(t, db, "SELECT views FROM "+table)
	if got[0][0] != "0" {
		t.Fatalf("views = %s after a canceled flush", got[0][0])
	}
}

// TestPgInsertLikeInsert: where COPY would not do what INSERT does (a rule,
// an identity column GENERATED ALWAYS), the flush behaves as INSERT.
func TestPgInsertLikeInsert(t *testing.T) {
	db := pgdOpen(t)
	t.Run("identity", func(t *testing.T) {
		ident := pgdCreate(t, db, "ident", "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v integer")
		_, directErr := db.Exec("INSERT INTO "+ident+" (id, v) VALUES ($1, $2)", int64(1), int64(1))
		_, flushErr := flushDB(t, db, pgdDialect(true), 10, pgdInsert(ident, []string{"id", "v"}, []any{int64(2), int64(1)}))
		pgdSameOutcome(t, "identity", directErr, flushErr)
		if flushErr == nil {
			t.Fatal("a value for a GENERATED ALWAYS identity column was accepted")
		}
	})
	t.Run("rule", func(t *testing.T) {
		target := pgdCreate(t, db, "ruled", "id bigint PRIMARY KEY, v integer")
		other := pgdCreate(t, db, "ruled_to", "id bigint PRIMARY KEY, v integer")
		pgdExec(t, db, fmt.Sprintf("CREATE RULE r AS ON INSERT TO %s DO INSTEAD INSERT INTO %s VALUES (NEW.id, NEW.v * 10)", target, other))
		if _, err := flushDB(t, db, pgdDialect(true), 10, pgdInsert(target, []string{"id", "v"}, []any{int64(1), int64(2)})); err != nil {
			t.Fatal(err)
		}
		got := pgdRows(t, db, "SELECT (SELECT count(*) FROM "+target+"), (SELECT string_agg(id || ':' || v, ',') FROM "+other+")")
		if !reflect.DeepEqual(got, [][]string{{"0", "1:20"}}) {
			t.Fatalf("with an INSTEAD rule: %q, want the rule applied", got)
		}
	})
}

// TestPgMixedValues: one column receiving values of several Go types in
// one statement (so it travels as text) still stores what single-row
// statements would, row by row.
func TestPgMixedValues(t *testing.T) {
	db := pgdOpen(t)
	ts := time.Date(1960, 5, 6, 7, 8, 9, 999999999, time.FixedZone("X", -3600))
	cases := []struct {
		typ  string
		vals []any
	}{
		{"timestamptz", []any{ts, "2024-01-01 00:00:00.0000005+00", nil}},
		{"numeric", []any{int64(-3), "1e-3", float64(2.5), nil}},
		{"bytea", []any{[]byte{1, 2}, `\x0304`, nil}},
		{"boolean", []any{true, "off", nil}},
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			table := pgdCreate(t, db, "mixed", "id bigint PRIMARY KEY, c "+c.typ)
			pgdExec(t, db, "INSERT INTO "+table+" (id) SELECT g FROM generate_series(1, 20) g")
			var rows [][]any
			for i, v := range c.vals {
				pgdExec(t, db, "UPDATE "+table+" SET c = $1 WHERE id = $2", v, int64(i+1))
				rows = append(rows, []any{v, int64(i + 11)})
			}
			if _, err := flushDB(t, db, newPgWriter(), 100, pgdUpdate(table, []string{"c"}, []string{"id"}, rows...)); err != nil {
				t.Fatal(err)
			}
			got := pgdRows(t, db, "SELECT a.c::text, b.c::text FROM "+table+" a JOIN "+table+" b ON b.id = a.id + 10 WHERE a.id <= $1 ORDER BY a.id", len(c.vals))
			t.Logf("%q", got)
			for i, r := range got {
				if r[0] != r[1] {
					t.Errorf("value %#v: direct %q, flushed %q", c.vals[i], r[0], r[1])
				}
			}
		})
	}
}

// TestPgUpdateMovesKey: an UPDATE that sets its own key column is checked
// for missing keys before it runs, since afterwards the keys have moved.
func TestPgUpdateMovesKey(t *testing.T) {
	pgdCheckMovesKey(t, pgdOpen(t), "movekey", newPgWriter(), "native writer")
}

// pgdCheckMovesKey moves keys 1 and 2 of a table of its own (tag) to 100
// and 200 (and 3, not in it, to 300) through w, and checks that only 3
// matched no row; what names the case in failures.
func pgdCheckMovesKey(t *testing.T, db *sql.DB, tag string, w Writer, what string) {
	t.Helper()
	table := pgdCreate(t, db, tag, "id bigint PRIMARY KEY, views bigint")
	pgdExec(t, db, "INSERT INTO "+table+" VALUES (1, 0), (2, 0)")
	nm, err := flushDB(t, db, w, 10, pgdUpdate(table, []string{"id"}, []string{"id"},
		[]any{int64(100), int64(1)}, []any{int64(300), int64(3)}, []any{int64(200), int64(2)}))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(nm, [][]int{{1}}) {
		t.Fatalf("%s: noMatch = %v, want [[1]]", what, nm)
	}
	if got := pgdRows(t, db, "SELECT string_agg(id::text, ',' ORDER BY id) FROM "+table); got[0][0] != "100,200" {
		t.Fatalf("%s: ids = %s", what, got[0][0])
	}
}

// TestPgInTx: the statement run by inTx commits with the groups, and its
// failure rolls them back.
func TestPgInTx(t *testing.T) {
	db := pgdOpen(t)
	table := pgdCreate(t, db, "intx", "id bigint PRIMARY KEY, views bigint")
	mark := pgdCreate(t, db, "intx_mark", "n bigint")
	pgdExec(t, db, "INSERT INTO "+table+" VALUES (1, 0)")
	flush := func(inTx func(exec Exec) error) error {
		_, err := flushDBTx(context.Background(), t, db, newPgWriter(), 10, inTx, pgdUpdate(table, []string{"views+"}, []string{"id"}, []any{int64(1), int64(1)}))
		return err
	}
	if err := flush(func(exec Exec) error {
		return exec("INSERT INTO "+mark+" SELECT unnest($1::bigint[])", []int64{7, 8})
	}); err != nil {
		t.Fatal(err)
	}
	err := flush(func(exec Exec) error { return exec("INSERT INTO " + mark + " VALUES (1 / 0)") })
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22012" {
		t.Fatalf("err = %v, want SQLSTATE 22012", err)
	}
	got := pgdRows(t, db, "SELECT (SELECT views FROM "+table+"), (SELECT string_agg(n::text, ',' ORDER BY n) FROM "+mark+")")
	if !reflect.DeepEqual(got, [][]string{{"1", "7,8"}}) {
		t.Fatalf("views, marks = %q, want 1, 7,8", got)
	}
}

// TestPgInsertPathBySize: the dialect as it ships (batch 1000, the
// default) writes an INSERT group of pgCopyMinRows rows or more by COPY,
// all in one COPY up to pgCopyMaxRows rows (here with that lowered to
// pgCopyMinRows: in COPYs of that many), and a smaller group by INSERT ...
// SELECT FROM unnest, batch rows a statement. Triggers number the
// statements and record, for each row, the statement that inserted it and
// its text as the server saw it.
func TestPgInsertPathBySize(t *testing.T) {
	db := pgdOpen(t)
	table := pgdCreate(t, db, "path", "id bigint PRIMARY KEY, n bigint NOT NULL")
	seen := pgdCreate(t, db, "path_seen", "id bigint, stmt_no bigint, stmt text")
	ctr := pgdCreate(t, db, "path_ctr", "n bigint")
	pgdExec(t, db, "INSERT INTO "+ctr+" VALUES (0)")
	for _, q := range []string{
		"CREATE FUNCTION " + seen + "_s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE " + ctr + " SET n = n + 1; RETURN NULL; END $$",
		"CREATE FUNCTION " + seen + "_r() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO " + seen + " SELECT NEW.id, n, current_query() FROM " + ctr + "; RETURN NEW; END $$",
		"CREATE TRIGGER s BEFORE INSERT ON " + table + " FOR EACH STATEMENT EXECUTE FUNCTION " + seen + "_s()",
		"CREATE TRIGGER r BEFORE INSERT ON " + table + " FOR EACH ROW EXECUTE FUNCTION " + seen + "_r()",
	} {
		pgdExec(t, db, q)
	}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP FUNCTION IF EXISTS " + seen + "_s() CASCADE")
		_, _ = db.Exec("DROP FUNCTION IF EXISTS " + seen + "_r() CASCADE")
	})
	rows := func(from, n int) [][]any {
		out := make([][]any, n)
		for i := range out {
			out[i] = []any{int64(from + i), int64(i)}
		}
		return out
	}
	const batch = 1000
	const small, large = pgCopyMinRows - 1, 2*pgCopyMinRows + 1
	d, split := newPgWriter(), newPgWriter()
	split.copyMaxRows = pgCopyMinRows
	for _, f := range []struct {
		d    *pgWriter
		from int
		n    int
	}{{d, 0, small}, {d, small, large}, {split, small + large, large}} {
		if _, err := flushDB(t, db, f.d, batch, pgdInsert(table, []string{"id", "n"}, rows(f.from, f.n)...)); err != nil {
			t.Fatal(err)
		}
	}
	got := queryLines(t, db, "SELECT min(id), count(*), bool_and(stmt ILIKE 'copy %') FROM "+seen+" GROUP BY stmt_no ORDER BY 1", func(rows *sql.Rows) (string, error) {
		var first, n int64
		var isCopy bool
		err := rows.Scan(&first, &n, &isCopy)
		return fmt.Sprintf("%d+%d copy=%v", first, n, isCopy), err
	})
	var want []string
	for off := 0; off < small; off += batch {
		want = append(want, fmt.Sprintf("%d+%d copy=false", off, min(batch, small-off)))
	}
	want = append(want, fmt.Sprintf("%d+%d copy=true", small, large))
	for off := 0; off < large; off += pgCopyMinRows {
		want = append(want, fmt.Sprintf("%d+%d copy=true", small+large+off, min(pgCopyMinRows, large-off)))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("statements (first id+rows):\n got %v\nwant %v", got, want)
	}
}
