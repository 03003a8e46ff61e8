package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/testdb"
)

// These tests run against the PostgreSQL named by WRITEBACK_TEST_POSTGRES
// (default: the local socket, database test). They skip when it cannot be
// reached, unless CI=true, where that is a failure. Each test creates its
// own schema wb_cat_<pid>_<n> and drops it.

// pgOpen opens the test database through pgx's database/sql driver.
func pgOpen(tb testing.TB) *sql.DB { return testdb.OpenPostgres(tb) }

var pgSeq atomic.Int64

// pgSchema opens the database and creates a fresh schema, dropped (with
// everything in it) when the test ends.
func pgSchema(tb testing.TB) (*sql.DB, string) {
	tb.Helper()
	db := pgOpen(tb)
	s := fmt.Sprintf("wb_cat_%d_%d", os.Getpid(), pgSeq.Add(1))
	pgExec(tb, db, "CREATE SCHEMA "+s)
	tb.Cleanup(func() { _, _ = db.Exec("DROP SCHEMA IF EXISTS " + s + " CASCADE") })
	return db, s
}

// pgExec runs statements in order.
func pgExec(tb testing.TB, db *sql.DB, stmts ...string) {
	tb.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

// pgRead reads names qualified with schema s.
func pgRead(tb testing.TB, q Querier, s string, names ...string) map[string]*Table {
	tb.Helper()
	full := make([]string, len(names))
	for i, n := range names {
		full[i] = s + "." + n
	}
	got, err := Read(context.Background(), q, dialect.Postgres, full)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]*Table{}
	for i, n := range names {
		out[n] = got[full[i]]
	}
	return out
}

// sub replaces S. with the schema in each statement.
func sub(s string, stmts ...string) []string {
	out := make([]string, len(stmts))
	for i, q := range stmts {
		out[i] = strings.ReplaceAll(q, "S.", s+".")
	}
	return out
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func TestPostgresMissingAndResolve(t *testing.T) {
	db, s := pgSchema(t)
	pgExec(t, db, sub(s,
		`CREATE TABLE S.t (id int PRIMARY KEY)`,
		`CREATE TABLE S."Mixed" (id int)`,
		`CREATE VIEW S.v AS SELECT * FROM S.t`,
		`CREATE TABLE S."we""ird\x" (id int)`,
		`CREATE SEQUENCE S.seq`)...)
	names := []string{s + ".t", s + ".T", strings.ToUpper(s) + ".t", s + `."Mixed"`, s + `."we""ird\x"`, s + ".mixed",
		s + ".nosuch", "nosuch_" + s, s + ".v", s + ".seq", "a.b.c", `"unterminated`, "", "x y", "\x00", "\xff"}
	got, err := Read(context.Background(), db, dialect.Postgres, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(names) {
		t.Fatalf("got %d entries, want %d", len(got), len(names))
	}
	for _, n := range names[:5] {
		if got[n] == nil {
			t.Errorf("%q: nil, want a table", n)
		}
	}
	if got[names[0]] != got[names[1]] || got[names[0]] != got[names[2]] {
		t.Errorf("names of one table do not share a *Table")
	}
	if tb := got[names[3]]; tb != nil && (tb.Name != "Mixed" || tb.Schema != s) {
		t.Errorf("quoted name read %s.%s", tb.Schema, tb.Name)
	}
	for _, n := range names[5:] {
		if tb, ok := got[n]; !ok || tb != nil {
			t.Errorf("%q: %v (present %v), want a nil entry", n, tb, ok)
		}
	}
	// A bare name resolves through the connection's search_path.
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "SET search_path TO "+s); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "RESET search_path")
	bare, err := Read(context.Background(), conn, dialect.Postgres, []string{"T", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	if bare["T"] == nil || bare["T"].Schema != s || bare["T"].Name != "t" || bare["nosuch"] != nil {
		t.Errorf("bare names through search_path: %+v", bare)
	}
	if got, err := Read(context.Background(), db, dialect.Postgres, nil); err != nil || len(got) != 0 {
		t.Errorf("no names: %v, %v", got, err)
	}
}

func TestGenericHasNoCatalog(t *testing.T) {
	if _, err := Read(context.Background(), nil, dialect.Generic, []string{"t"}); err != ErrNoCatalog {
		t.Fatalf("err = %v, want ErrNoCatalog", err)
	}
}

func TestPostgresKeys(t *testing.T) {
	db, s := pgSchema(t)
	pgExec(t, db, sub(s,
		`CREATE TABLE S.k (a int, b text, code text UNIQUE, email text NOT NULL UNIQUE,
			x int NOT NULL, y int NOT NULL, z int, w int, inc int NOT NULL, PRIMARY KEY (b, a))`,
		`CREATE UNIQUE INDEX k_partial ON S.k (z) WHERE z > 0`,
		`CREATE UNIQUE INDEX k_expr ON S.k (lower(email))`,
		`CREATE UNIQUE INDEX k_xy ON S.k (y, x)`,
		`CREATE UNIQUE INDEX k_incl ON S.k (inc) INCLUDE (z)`,
		`CREATE UNIQUE INDEX k_nnd ON S.k (w) NULLS NOT DISTINCT`,
		`CREATE TABLE S.nokey (a int, b int)`)...)
	got := pgRead(t, db, s, "k", "nokey")
	k, nokey := got["k"], got["nokey"]
	wantStrings(t, "PrimaryKey", k.PrimaryKey, []string{"b", "a"})
	if nokey.PrimaryKey != nil || len(nokey.Uniques) != 0 {
		t.Errorf("nokey: pk %v uniques %v", nokey.PrimaryKey, nokey.Uniques)
	}
	var plain []string
	for _, u := range k.Uniques {
		plain = append(plain, strings.Join(u.Columns, ","))
	}
	wantStrings(t, "Uniques", plain, []string{"code", "email", "inc", "w", "y,x"})
	if len(k.OtherUniques) != 2 {
		t.Errorf("OtherUniques = %+v, want the partial and the expression index", k.OtherUniques)
	}
	cases := []struct {
		cols   []string
		ok     bool
		reason string
	}{
		{[]string{"a", "b"}, true, "primary key"},
		{[]string{"a"}, false, "no unique index on (a)"},
		{[]string{"email"}, true, "unique index"},
		{[]string{"code"}, false, "unique index on (code) but code is nullable"},
		{[]string{"x", "y"}, true, "unique index"},
		{[]string{"inc"}, true, "unique index"},
		{[]string{"inc", "z"}, false, "no unique index"},
		{[]string{"w"}, true, "unique index k_nnd"},
		{[]string{"z"}, false, "partial"},
		{[]string{"nope"}, false, "no column nope"},
		{[]string{"A"}, false, "no column A"},
		{nil, false, "no key columns"},
	}
	for _, c := range cases {
		ok, reason := k.IsUniqueKey(c.cols)
		if ok != c.ok || !strings.Contains(reason, c.reason) {
			t.Errorf("IsUniqueKey(%v) = %v, %q; want %v, %q", c.cols, ok, reason, c.ok, c.reason)
		}
	}
	if k.UnquotedColumn("EMAIL") == nil || k.Column("EMAIL") != nil {
		t.Errorf("Column is exact and UnquotedColumn folds case on PostgreSQL")
	}
}

func TestPostgresCaseInsensitive(t *testing.T) {
	db, s := pgSchema(t)
	pgExec(t, db, sub(s, `CREATE TABLE S.plain (a text, b text COLLATE "C", c varchar(3))`)...)
	p := pgRead(t, db, s, "plain")["plain"]
	for _, c := range p.Columns {
		if c.CaseInsensitive {
			t.Errorf("%s: CaseInsensitive", c.Name)
		}
	}
	if p.Column("a").Collation != "" || p.Column("b").Collation != "C" {
		t.Errorf("collations %q %q", p.Column("a").Collation, p.Column("b").Collation)
	}
	t.Run("citext", func(t *testing.T) {
		if _, err := db.Exec("CREATE EXTENSION IF NOT EXISTS citext SCHEMA " + s); err != nil {
			t.Skipf("citext not available: %v", err)
		}
		var nsp string
		if err := db.QueryRow(`SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'citext'`).Scan(&nsp); err != nil {
			t.Fatal(err)
		}
		pgExec(t, db, sub(s, `CREATE DOMAIN S.email AS `+nsp+`.citext`,
			`CREATE TABLE S.ci (a `+nsp+`.citext PRIMARY KEY, b S.email)`)...)
		ci := pgRead(t, db, s, "ci")["ci"]
		for _, c := range ci.Columns {
			if !c.CaseInsensitive || c.Class != Text {
				t.Errorf("%s (%s): CaseInsensitive %v class %v", c.Name, c.Type, c.CaseInsensitive, c.Class)
			}
		}
	})
	t.Run("icu", func(t *testing.T) {
		_, err := db.Exec("CREATE COLLATION " + s + ".ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)")
		if err != nil {
			t.Skipf("ICU collations not available: %v", err)
		}
		pgExec(t, db, sub(s, `CREATE TABLE S.icu (a text COLLATE S.ci, b text)`)...)
		icu := pgRead(t, db, s, "icu")["icu"]
		if a := icu.Column("a"); !a.CaseInsensitive || a.Collation != "ci" {
			t.Errorf("a: CaseInsensitive %v collation %q", a.CaseInsensitive, a.Collation)
		}
		if icu.Column("b").CaseInsensitive {
			t.Errorf("b: CaseInsensitive")
		}
	})
}

func TestPostgresTriggersAndRules(t *testing.T) {
	db, s := pgSchema(t)
	pgExec(t, db, sub(s,
		`CREATE TABLE S.p (id int PRIMARY KEY)`,
		`CREATE TABLE S.c (id int PRIMARY KEY, p int REFERENCES S.p)`,
		`CREATE TABLE S.log (n int)`,
		`CREATE FUNCTION S.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`,
		`CREATE TRIGGER c_touch BEFORE UPDATE ON S.c FOR EACH ROW EXECUTE FUNCTION S.touch()`,
		`CREATE RULE c_log AS ON UPDATE TO S.c DO ALSO INSERT INTO S.log VALUES (1)`)...)
	got := pgRead(t, db, s, "p", "c", "log")
	wantStrings(t, "c.Triggers", got["c"].Triggers, []string{"c_touch"})
	wantStrings(t, "p.Triggers (FK triggers are internal)", got["p"].Triggers, nil)
	wantStrings(t, "c.Rules", got["c"].Rules, []string{"c_log"})
	wantStrings(t, "p.Rules", got["p"].Rules, nil)
	if r := got["log"].Rules; len(r) != 1 || !strings.HasSuffix(r[0], "c: c_log") {
		t.Errorf("log.Rules = %q, want the rule on c that writes it", r)
	}
}

func TestPostgresForeignKeys(t *testing.T) {
	db, s := pgSchema(t)
	pgExec(t, db, sub(s,
		`CREATE TABLE S.parent (id int PRIMARY KEY)`,
		`CREATE TABLE S.child (id int PRIMARY KEY, p int CONSTRAINT child_p REFERENCES S.parent)`,
		`CREATE TABLE S.tree (id int PRIMARY KEY, up int CONSTRAINT tree_up REFERENCES S.tree)`,
		`CREATE TABLE S.lone (id int PRIMARY KEY)`)...)
	got := pgRead(t, db, s, "parent", "child", "tree", "lone")
	check := func(name string, out, in int) {
		tb := got[name]
		if len(tb.ForeignKeysOut) != out || len(tb.ForeignKeysIn) != in {
			t.Errorf("%s: out %q in %q, want %d out and %d in", name, tb.ForeignKeysOut, tb.ForeignKeysIn, out, in)
		}
	}
	check("parent", 0, 1)
	check("child", 1, 0)
	check("tree", 1, 1)
	check("lone", 0, 0)
	if fk := got["child"].ForeignKeysOut; len(fk) == 1 && !strings.HasPrefix(fk[0], "child_p FOREIGN KEY (p) REFERENCES") {
		t.Errorf("child out: %q", fk[0])
	}
	if fk := got["parent"].ForeignKeysIn; len(fk) == 1 && !strings.Contains(fk[0], "child: child_p FOREIGN KEY (p)") {
		t.Errorf("parent in: %q", fk[0])
	}
}

func TestPostgresChecks(t *testing.T) {
	db, s := pgSchema(t)
	pgExec(t, db, sub(s,
		`CREATE DOMAIN S.pos AS int CHECK (VALUE > 0)`,
		`CREATE DOMAIN S.pos2 AS S.pos CHECK (VALUE < 100)`,
		`CREATE TABLE S.ch (n int NOT NULL CHECK (n > 0), d S.pos2)`,
		`CREATE TABLE S.nn (n int NOT NULL)`)...)
	got := pgRead(t, db, s, "ch", "nn")
	// pos2's check reads "CHECK (((VALUE)::integer < 100))": its VALUE is a pos.
	ch := got["ch"].Checks
	if len(ch) != 3 || ch[0] != "CHECK ((n > 0))" || !strings.HasPrefix(ch[1], "d: CHECK (") ||
		!strings.Contains(ch[1], "< 100") || ch[2] != "d: CHECK ((VALUE > 0))" {
		t.Errorf("ch.Checks = %q, want the table's check and both domains'", ch)
	}
	wantStrings(t, "nn.Checks", got["nn"].Checks, nil)
}

func TestPostgresDefaults(t *testing.T) {
	db, s := pgSchema(t)
	pgExec(t, db, sub(s,
		`CREATE SEQUENCE S.sq`,
		`CREATE DOMAIN S.stamp AS timestamptz DEFAULT now()`,
		`CREATE TABLE S.d (
			ser serial, big bigserial, nv int DEFAULT nextval('S.sq'),
			ida int GENERATED ALWAYS AS IDENTITY, idd int GENERATED BY DEFAULT AS IDENTITY,
			t_now timestamptz DEFAULT now(), t_cur timestamptz DEFAULT CURRENT_TIMESTAMP,
			t_later timestamptz DEFAULT now() + interval '1 day', t_clock timestamptz DEFAULT clock_timestamp(),
			r float8 DEFAULT random(), dom S.stamp,
			zero int DEFAULT 0, sum int DEFAULT 1 + 2, word text DEFAULT 'x', up text DEFAULT upper('x'),
			plain int, gen int GENERATED ALWAYS AS (zero * 2) STORED)`)...)
	d := pgRead(t, db, s, "d")["d"]
	type flags struct{ seq, vol, ident, gen bool }
	want := map[string]flags{
		"ser": {seq: true}, "big": {seq: true}, "nv": {seq: true},
		"ida": {seq: true, ident: true}, "idd": {seq: true, ident: true},
		"t_now": {vol: true}, "t_cur": {vol: true}, "t_later": {vol: true}, "t_clock": {vol: true},
		"r": {vol: true}, "dom": {vol: true},
		"zero": {}, "sum": {}, "word": {}, "up": {}, "plain": {}, "gen": {gen: true},
	}
	for _, c := range d.Columns {
		w, ok := want[c.Name]
		if !ok {
			t.Errorf("unexpected column %s", c.Name)
			continue
		}
		got := flags{c.SequenceDefault, c.VolatileDefault, c.Identity, c.Generated}
		if got != w {
			t.Errorf("%s (default %q): seq/vol/identity/generated = %+v, want %+v", c.Name, c.Default, got, w)
		}
	}
	if c := d.Column("gen"); c.Default != "(zero * 2)" {
		t.Errorf("gen: Default %q, want its expression", c.Default)
	}
	if c := d.Column("plain"); c.Default != "" {
		t.Errorf("plain: Default %q", c.Default)
	}
	if c := d.Column("dom"); c.Default != "now()" {
		t.Errorf("dom: Default %q, want the domain's", c.Default)
	}
}

func TestPostgresViews(t *testing.T) {
	db, s := pgSchema(t)
	pgExec(t, db, sub(s,
		`CREATE TABLE S.base (id int PRIMARY KEY, n int)`,
		`CREATE TABLE S.other (id int)`,
		`CREATE VIEW S.v1 AS SELECT id, n FROM S.base`,
		`CREATE VIEW S.v2 AS SELECT id FROM S.v1 WHERE n > 0`,
		`CREATE VIEW S.v3 AS SELECT o.id FROM S.other o JOIN S.v2 USING (id)`,
		`CREATE MATERIALIZED VIEW S.mv AS SELECT count(*) FROM S.base`)...)
	got := pgRead(t, db, s, "base", "other")
	wantStrings(t, "base.Views", got["base"].Views, []string{s + ".mv", s + ".v1", s + ".v2", s + ".v3"})
	wantStrings(t, "other.Views", got["other"].Views, []string{s + ".v3"})
	vr := ViewsReading(map[string]*Table{"base": got["base"], "other": got["other"], "gone": nil})
	wantStrings(t, "ViewsReading[v3]", vr["v3"], []string{"base", "other"})
	wantStrings(t, "ViewsReading[s.v1]", vr[s+".v1"], []string{"base"})
	pgExec(t, db, sub(s, `CREATE TABLE S.alone (id int)`)...)
	wantStrings(t, "alone.Views", pgRead(t, db, s, "alone")["alone"].Views, nil)
}

func TestPostgresTypes(t *testing.T) {
	db, s := pgSchema(t)
	pgExec(t, db, sub(s,
		`CREATE DOMAIN S.money2 AS numeric(12,2) NOT NULL`,
		`CREATE TYPE S.mood AS ENUM ('sad', 'ok')`,
		`CREATE TABLE S.ty (m S.money2, vc varchar(20), ch char(5), ch1 char, u uuid, dp double precision,
			r real, nu numeric, n5 numeric(5), nneg numeric(3,-1), i int, b bool, ts timestamptz, d date,
			j jsonb, by bytea, tx text, e S.mood, arr text[], iv interval)`)...)
	ty := pgRead(t, db, s, "ty")["ty"]
	type want struct {
		class         TypeClass
		length, p, sc int
		notNull       bool
	}
	cases := map[string]want{
		"m": {Numeric, 0, 12, 2, true}, "vc": {Text, 20, 0, 0, false}, "ch": {Char, 5, 0, 0, false},
		"ch1": {Char, 1, 0, 0, false}, "u": {UUID, 0, 0, 0, false}, "dp": {Float, 0, 0, 0, false},
		"r": {Float, 0, 0, 0, false}, "nu": {Numeric, 0, 0, -1, false}, "n5": {Numeric, 0, 5, 0, false},
		"nneg": {Numeric, 0, 3, -1, false}, "i": {Integer, 0, 0, 0, false}, "b": {Bool, 0, 0, 0, false},
		"ts": {Time, 0, 0, 0, false}, "d": {Time, 0, 0, 0, false}, "j": {JSON, 0, 0, 0, false},
		"by": {Bytes, 0, 0, 0, false}, "tx": {Text, 0, 0, 0, false}, "e": {Other, 0, 0, 0, false},
		"arr": {Other, 0, 0, 0, false}, "iv": {Other, 0, 0, 0, false},
	}
	for name, w := range cases {
		c := ty.Column(name)
		if c == nil {
			t.Errorf("no column %s", name)
			continue
		}
		got := want{c.Class, c.Length, c.Precision, c.Scale, c.NotNull}
		if got != w {
			t.Errorf("%s (%s): %+v, want %+v", name, c.Type, got, w)
		}
	}
	if c := ty.Column("vc"); c.Type != "character varying(20)" {
		t.Errorf("vc: Type %q", c.Type)
	}
	if c := ty.Column("m"); c.Type != s+".money2" && c.Type != "money2" {
		t.Errorf("m: Type %q", c.Type)
	}
}
