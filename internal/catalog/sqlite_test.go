package catalog

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"github.com/writeback-go/writeback/internal/dialect"
)

// sqOpen opens a fresh SQLite database file on one connection (TEMP objects
// and ATTACH belong to a connection) and runs the statements.
func sqOpen(t *testing.T, stmts ...string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "main.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db
}

func sqRead(t *testing.T, q Querier, names ...string) map[string]*Table {
	t.Helper()
	got, err := Read(context.Background(), q, dialect.SQLite, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(names) {
		t.Fatalf("got %d entries for %d names", len(got), len(names))
	}
	return got
}

func TestSQLiteMissingAndResolve(t *testing.T) {
	aux := filepath.Join(t.TempDir(), "aux.db")
	db := sqOpen(t,
		`CREATE TABLE Foo (id INTEGER PRIMARY KEY)`,
		`CREATE TABLE bar (id INTEGER PRIMARY KEY)`,
		`CREATE TEMP TABLE bar (x, y)`,
		`CREATE VIEW v AS SELECT * FROM Foo`,
		`ATTACH DATABASE '`+aux+`' AS aux`,
		`CREATE TABLE aux.only_aux (a)`,
		`CREATE TABLE aux.foo (a, b, c)`)
	same := []string{"foo", "FOO", "main.foo", "MAIN.Foo", `"Foo"`, "[foo]", "`foo`", " foo "}
	missing := []string{"nosuch", "main.nosuch", "v", "temp.foo", "a.b.c", "", "x y", "sqlite_schema", "nosuch.foo"}
	got := sqRead(t, db, append(append([]string{"bar", "main.bar", "aux.foo", "only_aux"}, same...), missing...)...)
	for _, n := range same {
		if got[n] == nil || got[n] != got["foo"] || got[n].Schema != "main" || got[n].Name != "Foo" {
			t.Errorf("%q: %+v, want main.Foo shared", n, got[n])
		}
	}
	for _, n := range missing {
		if got[n] != nil {
			t.Errorf("%q: %+v, want nil", n, got[n])
		}
	}
	if b := got["bar"]; b == nil || b.Schema != "temp" || len(b.Columns) != 2 {
		t.Errorf("bar: %+v, want the TEMP table (looked up first)", b)
	}
	if b := got["main.bar"]; b == nil || b.Schema != "main" {
		t.Errorf("main.bar: %+v", b)
	}
	if a := got["aux.foo"]; a == nil || a.Schema != "aux" || len(a.Columns) != 3 {
		t.Errorf("aux.foo: %+v", a)
	}
	if a := got["only_aux"]; a == nil || a.Schema != "aux" {
		t.Errorf("only_aux: %+v, want the attached database's", a)
	}
}

func TestSQLiteKeys(t *testing.T) {
	db := sqOpen(t,
		`CREATE TABLE k (a INT NOT NULL, b TEXT NOT NULL, code TEXT UNIQUE, email TEXT NOT NULL UNIQUE,
			z INT, PRIMARY KEY (b, a))`,
		`CREATE UNIQUE INDEX k_partial ON k (z) WHERE z > 0`,
		`CREATE UNIQUE INDEX k_expr ON k (lower(email))`,
		`CREATE INDEX k_plain ON k (z)`,
		`CREATE TABLE nokey (a, b)`,
		`CREATE TABLE loose (code TEXT PRIMARY KEY, n INT)`,
		`CREATE TABLE wr (code TEXT PRIMARY KEY, n INT) WITHOUT ROWID`)
	got := sqRead(t, db, "k", "nokey", "loose", "wr")
	k := got["k"]
	wantStrings(t, "PrimaryKey", k.PrimaryKey, []string{"b", "a"})
	if got["nokey"].PrimaryKey != nil || len(got["nokey"].Uniques) != 0 {
		t.Errorf("nokey: %+v", got["nokey"])
	}
	var plain []string
	for _, u := range k.Uniques {
		plain = append(plain, strings.Join(u.Columns, ","))
	}
	wantStrings(t, "Uniques", plain, []string{"code", "email"})
	if len(k.OtherUniques) != 2 {
		t.Errorf("OtherUniques = %+v, want the partial and the expression index", k.OtherUniques)
	}
	cases := []struct {
		tb     *Table
		cols   []string
		ok     bool
		reason string
	}{
		{k, []string{"A", "B"}, true, "primary key"},
		{k, []string{"email"}, true, "unique index"},
		{k, []string{"EMAIL"}, true, "unique index"},
		{k, []string{"code"}, false, "unique index on (code) but code is nullable"},
		{k, []string{"z"}, false, "partial"},
		{k, []string{"a"}, false, "no unique index on (a)"},
		{got["loose"], []string{"code"}, true, "primary key"}, // nullable in SQLite, but NULL keys are never buffered
		{got["wr"], []string{"code"}, true, "primary key"},
	}
	for _, c := range cases {
		ok, reason := c.tb.IsUniqueKey(c.cols)
		if ok != c.ok || !strings.Contains(reason, c.reason) {
			t.Errorf("%s.IsUniqueKey(%v) = %v, %q; want %v, %q", c.tb.Name, c.cols, ok, reason, c.ok, c.reason)
		}
	}
}

func TestSQLiteIdentity(t *testing.T) {
	db := sqOpen(t,
		`CREATE TABLE ipk (id INTEGER PRIMARY KEY, n INT)`,
		`CREATE TABLE ipk_auto (id integer PRIMARY KEY AUTOINCREMENT)`,
		`CREATE TABLE ipk_tc (id INTEGER, PRIMARY KEY (id DESC))`,
		`CREATE TABLE int_pk (id INT PRIMARY KEY)`,
		`CREATE TABLE desc_pk (id INTEGER PRIMARY KEY DESC)`,
		`CREATE TABLE wr_pk (id INTEGER PRIMARY KEY) WITHOUT ROWID`,
		`CREATE TABLE two (a INTEGER, b INTEGER, PRIMARY KEY (a, b))`)
	got := sqRead(t, db, "ipk", "ipk_auto", "ipk_tc", "int_pk", "desc_pk", "wr_pk", "two")
	for name, tb := range got {
		if tb.WithoutRowid != (name == "wr_pk") {
			t.Errorf("%s: WithoutRowid %v", name, tb.WithoutRowid)
		}
	}
	for name, want := range map[string]bool{"ipk": true, "ipk_auto": true, "ipk_tc": true,
		"int_pk": false, "desc_pk": false, "wr_pk": false, "two": false} {
		c := got[name].Columns[0]
		if c.Identity != want || c.SequenceDefault != want {
			t.Errorf("%s.%s: Identity %v SequenceDefault %v, want %v", name, c.Name, c.Identity, c.SequenceDefault, want)
		}
		if want && !c.NotNull {
			t.Errorf("%s.%s: a rowid alias is NOT NULL", name, c.Name)
		}
	}
	if got["ipk"].Column("n").Identity {
		t.Errorf("ipk.n: Identity")
	}
}

func TestSQLiteCollation(t *testing.T) {
	db := sqOpen(t, `CREATE TABLE c (
		"Nc" TEXT COLLATE NOCASE, rt TEXT COLLATE rtrim, bin TEXT COLLATE BINARY, plain TEXT,
		chk TEXT CHECK (chk COLLATE NOCASE <> 'x'), [q r] TEXT NOT NULL COLLATE "NOCASE",
		UNIQUE (plain COLLATE NOCASE))`)
	c := sqRead(t, db, "c")["c"]
	want := map[string]string{"Nc": "NOCASE", "rt": "rtrim", "bin": "", "plain": "", "chk": "", "q r": "NOCASE"}
	for name, coll := range want {
		col := c.Column(name)
		if col == nil {
			t.Errorf("no column %q", name)
			continue
		}
		if col.Collation != coll || col.CaseInsensitive != (coll != "") {
			t.Errorf("%s: Collation %q CaseInsensitive %v, want %q", name, col.Collation, col.CaseInsensitive, coll)
		}
	}
	if c.Column("nc") == nil || c.UnquotedColumn("NC") == nil {
		t.Errorf("SQLite column names compare without regard to case")
	}
}

func TestSQLiteTriggers(t *testing.T) {
	db := sqOpen(t,
		`CREATE TABLE t (n INT)`,
		`CREATE TABLE u (n INT)`,
		`CREATE TABLE w (n INT)`,
		`CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN UPDATE u SET n = n + 1; END`,
		`CREATE TEMP TRIGGER w_tmp AFTER UPDATE ON main.W BEGIN SELECT 1; END`)
	got := sqRead(t, db, "t", "u", "w")
	wantStrings(t, "t.Triggers", got["t"].Triggers, []string{"t_ins"})
	wantStrings(t, "u.Triggers", got["u"].Triggers, nil)
	wantStrings(t, "w.Triggers", got["w"].Triggers, []string{"w_tmp"})
}

func TestSQLiteForeignKeys(t *testing.T) {
	db := sqOpen(t,
		`CREATE TABLE Parent (id INTEGER PRIMARY KEY, a INT, b INT, UNIQUE (a, b))`,
		`CREATE TABLE child (id INTEGER PRIMARY KEY, p INT REFERENCES parent, x INT, y INT,
			FOREIGN KEY (x, y) REFERENCES parent (a, b))`,
		`CREATE TABLE tree (id INTEGER PRIMARY KEY, up INT REFERENCES tree (id))`,
		`CREATE TABLE lone (id INTEGER PRIMARY KEY)`)
	got := sqRead(t, db, "parent", "child", "tree", "lone")
	wantStrings(t, "child out", got["child"].ForeignKeysOut,
		[]string{"FOREIGN KEY (x, y) REFERENCES parent(a, b)", "FOREIGN KEY (p) REFERENCES parent"})
	wantStrings(t, "parent in", got["parent"].ForeignKeysIn,
		[]string{"child: FOREIGN KEY (x, y) REFERENCES parent(a, b)", "child: FOREIGN KEY (p) REFERENCES parent"})
	wantStrings(t, "tree out", got["tree"].ForeignKeysOut, []string{"FOREIGN KEY (up) REFERENCES tree(id)"})
	wantStrings(t, "tree in", got["tree"].ForeignKeysIn, []string{"tree: FOREIGN KEY (up) REFERENCES tree(id)"})
	for _, n := range []string{"lone", "parent"} {
		wantStrings(t, n+" out", got[n].ForeignKeysOut, nil)
	}
	wantStrings(t, "lone in", got["lone"].ForeignKeysIn, nil)
	wantStrings(t, "child in", got["child"].ForeignKeysIn, nil)
}

func TestSQLiteChecks(t *testing.T) {
	db := sqOpen(t,
		`CREATE TABLE ch (n INT CONSTRAINT pos CHECK (n > 0), m INT, note TEXT DEFAULT 'CHECK (x)',
			"check" INT, CHECK (m < n))`,
		`CREATE TABLE nn (n INT NOT NULL, s TEXT DEFAULT 'check (1)')`)
	got := sqRead(t, db, "ch", "nn")
	wantStrings(t, "ch.Checks", got["ch"].Checks, []string{"CHECK (n > 0)", "CHECK (m < n)"})
	wantStrings(t, "nn.Checks", got["nn"].Checks, nil)
}

func TestSQLiteDefaults(t *testing.T) {
	db := sqOpen(t, `CREATE TABLE d (
		ts TEXT DEFAULT CURRENT_TIMESTAMP, dt TEXT DEFAULT current_date, r INT DEFAULT (random()),
		now TEXT DEFAULT (datetime('now')), zero INT DEFAULT 0, word TEXT DEFAULT 'random()',
		ab INT DEFAULT (abs(-1)), lo TEXT DEFAULT (lower('X')), plain INT,
		gv INT GENERATED ALWAYS AS (zero + 1), gs INT AS (zero * 2) STORED)`)
	d := sqRead(t, db, "d")["d"]
	type flags struct{ vol, gen bool }
	want := map[string]flags{"ts": {vol: true}, "dt": {vol: true}, "r": {vol: true}, "now": {vol: true},
		"zero": {}, "word": {}, "ab": {}, "lo": {}, "plain": {}, "gv": {gen: true}, "gs": {gen: true}}
	for _, c := range d.Columns {
		if got := (flags{c.VolatileDefault, c.Generated}); got != want[c.Name] || c.SequenceDefault {
			t.Errorf("%s (default %q): %+v seq %v, want %+v", c.Name, c.Default, got, c.SequenceDefault, want[c.Name])
		}
	}
	if g := d.Column("gv").Default; g != "(zero + 1)" {
		t.Errorf("gv: Default %q", g)
	}
	if g := d.Column("gs").Default; g != "(zero * 2)" {
		t.Errorf("gs: Default %q", g)
	}
	if w := d.Column("word").Default; w != "'random()'" {
		t.Errorf("word: Default %q", w)
	}
}

func TestSQLiteViews(t *testing.T) {
	db := sqOpen(t,
		`CREATE TABLE base (id INTEGER PRIMARY KEY, n INT)`,
		`CREATE TABLE other (id INT)`,
		`CREATE TABLE alone (id INT)`,
		`CREATE VIEW v1 AS SELECT id, n FROM "Base"`,
		`CREATE VIEW v2 AS SELECT id FROM v1 WHERE n > 0`,
		`CREATE VIEW v3 AS SELECT o.id FROM other o JOIN v2 USING (id)`,
		`CREATE VIEW lit AS SELECT 'alone' AS s -- alone`,
		`CREATE TEMP VIEW tv AS SELECT * FROM main.base`)
	got := sqRead(t, db, "base", "other", "alone")
	wantStrings(t, "base.Views", got["base"].Views, []string{"temp.tv", "main.v1", "main.v2", "main.v3"})
	wantStrings(t, "other.Views", got["other"].Views, []string{"main.v3"})
	wantStrings(t, "alone.Views", got["alone"].Views, nil)
	vr := ViewsReading(got)
	wantStrings(t, "ViewsReading[v3]", vr["v3"], []string{"base", "other"})
	wantStrings(t, "ViewsReading[main.v2]", vr["main.v2"], []string{"base"})
}

func TestSQLiteTypes(t *testing.T) {
	db := sqOpen(t,
		`CREATE TABLE ty (i INTEGER, bi BIGINT, vc VARCHAR(20), ch CHAR(5), tx TEXT, cl CLOB, bl BLOB,
			none, re REAL, db DOUBLE PRECISION, fl FLOAT, nu NUMERIC, de DECIMAL(10,2), bo BOOLEAN,
			dt DATETIME, ci CHARINT, fi FLOATING POINT)`,
		`CREATE TABLE st (a ANY, i INT, t TEXT) STRICT`)
	got := sqRead(t, db, "ty", "st")
	want := map[string]TypeClass{"i": Integer, "bi": Integer, "vc": Text, "ch": Text, "tx": Text, "cl": Text,
		"bl": Bytes, "none": Other, "re": Float, "db": Float, "fl": Float, "nu": Numeric, "de": Numeric,
		"bo": Numeric, "dt": Numeric, "ci": Integer, "fi": Integer}
	for name, class := range want {
		c := got["ty"].Column(name)
		if c.Class != class || c.Length != 0 {
			t.Errorf("%s (%q): %v length %d, want %v length 0", name, c.Type, c.Class, c.Length, class)
		}
		wantScale := 0
		if class == Numeric {
			wantScale = -1
		}
		if c.Precision != 0 || c.Scale != wantScale {
			t.Errorf("%s: precision %d scale %d", name, c.Precision, c.Scale)
		}
	}
	if vc := got["ty"].Column("vc"); vc.Type != "VARCHAR(20)" {
		t.Errorf("vc: Type %q", vc.Type)
	}
	st := got["st"]
	if st.Column("a").Class != Other || st.Column("i").Class != Integer || st.Column("t").Class != Text {
		t.Errorf("strict classes: %v %v %v", st.Column("a").Class, st.Column("i").Class, st.Column("t").Class)
	}
}
