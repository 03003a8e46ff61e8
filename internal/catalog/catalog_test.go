package catalog

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"

	"github.com/writeback-go/writeback/internal/dialect"
)

func TestPgNameOK(t *testing.T) {
	for name, want := range map[string]bool{
		"t": true, "s.t": true, `"T"`: true, `s."a.b"`: true, `"we""ird"`: true, " s . t ": true,
		"": false, ".": false, "s.": false, ".t": false, "a.b.c": false, `""`: false, `"open`: false,
		"x y": false, `a"b`: false, "\x00": false, "\xff": false, "s..t": false,
	} {
		if got := pgNameOK(name); got != want {
			t.Errorf("pgNameOK(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestPgArrays(t *testing.T) {
	if got, want := dialect.TextArrayLiteral([]string{"a", `b"c`, `d\e`, ""}), `{"a","b\"c","d\\e",""}`; got != want {
		t.Errorf("pgTextArray = %s, want %s", got, want)
	}
	if got := pgOidArray([]int64{1, 22}); got != "{1,22}" {
		t.Errorf("pgOidArray = %s", got)
	}
}

func TestPgModifier(t *testing.T) {
	num := func(p, s int) int64 { return int64(p<<16|(s&0x7ff)) + 4 }
	cases := []struct {
		class        TypeClass
		typmod       int64
		len, prec, s int
	}{
		{Text, 24, 20, 0, 0}, {Text, -1, 0, 0, 0}, {Char, 9, 5, 0, 0},
		{Numeric, num(12, 2), 0, 12, 2}, {Numeric, num(3, -1), 0, 3, -1}, {Numeric, -1, 0, 0, -1},
		{Integer, -1, 0, 0, 0},
	}
	for _, c := range cases {
		l, p, s := pgModifier(c.class, c.typmod)
		if l != c.len || p != c.prec || s != c.s {
			t.Errorf("pgModifier(%v, %d) = %d, %d, %d; want %d, %d, %d", c.class, c.typmod, l, p, s, c.len, c.prec, c.s)
		}
	}
}

func TestSqliteSplitName(t *testing.T) {
	cases := map[string][3]string{
		"t": {"", "t", "ok"}, "main.T": {"main", "T", "ok"}, `"a b"`: {"", "a b", "ok"},
		"[x].`y`": {"x", "y", "ok"}, `"q""q"`: {"", `q"q`, "ok"},
		"": {}, "a.b.c": {}, "a.": {}, "'t'": {}, `""`: {}, "a b": {},
	}
	for name, want := range cases {
		s, tb, ok := sqliteSplitName(name)
		if ok != (want[2] == "ok") || ok && (s != want[0] || tb != want[1]) {
			t.Errorf("sqliteSplitName(%q) = %q, %q, %v; want %q", name, s, tb, ok, want)
		}
	}
}

func TestSqlTokens(t *testing.T) {
	toks := sqlTokens(`SELECT "a""b", 'it''s', [c d], x1.y -- gone
		/* gone too */ 1.5e3, .5`)
	var got []string
	for _, tk := range toks {
		got = append(got, tk.text)
	}
	want := []string{"SELECT", `a"b`, ",", "it's", ",", "c d", ",", "x1", ".", "y", "1.5e3", ",", ".5"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tokens %q, want %q", got, want)
	}
	words := sqlWords(`SELECT * FROM "T" WHERE s = 'other' /* also */`)
	if !words["t"] || words["other"] || words["also"] {
		t.Errorf("sqlWords = %v", words)
	}
}

func TestParseCreateTableAsSelect(t *testing.T) {
	p := parseCreateTable(`CREATE TABLE t AS SELECT 1 AS a CHECK`)
	if len(p.checks) != 0 || len(p.collations) != 0 {
		t.Errorf("%+v", p)
	}
}

func TestIsUniqueKeyOffline(t *testing.T) {
	tb := &Table{Name: "t", kind: dialect.Postgres,
		Columns:    []*Column{{Name: "id", NotNull: true}, {Name: "a"}, {Name: "b", NotNull: true}},
		PrimaryKey: []string{"id"},
		Uniques: []*Index{
			{Name: "t_a", Columns: []string{"a"}, NullsNotDistinct: true},
		},
		OtherUniques: []*Index{{Name: "t_b_bad", Columns: []string{"b"}, Invalid: true}},
	}
	cases := []struct {
		cols   []string
		ok     bool
		reason string
	}{
		{[]string{"id", "id"}, true, "primary key (id)"},
		{[]string{"a"}, true, "unique index t_a"},
		{[]string{"b"}, false, "is invalid"},
		{[]string{"id", "a"}, false, "no unique index on (id, a)"},
	}
	for _, c := range cases {
		ok, reason := tb.IsUniqueKey(c.cols)
		if ok != c.ok || !strings.Contains(reason, c.reason) {
			t.Errorf("IsUniqueKey(%v) = %v, %q; want %v, %q", c.cols, ok, reason, c.ok, c.reason)
		}
	}
	if Integer.String() != "Integer" || TypeClass(99).String() != "TypeClass(99)" {
		t.Errorf("TypeClass.String")
	}
}

// TestReadInTx reads inside a transaction, on its single connection.
func TestReadInTx(t *testing.T) {
	for _, kind := range []dialect.Kind{dialect.SQLite, dialect.Postgres} {
		t.Run(kind.String(), func(t *testing.T) {
			var db *sql.DB
			name := "t"
			if kind == dialect.SQLite {
				db = sqOpen(t, `CREATE TABLE t (id INTEGER PRIMARY KEY, n INT UNIQUE)`, `CREATE TABLE u (t INT REFERENCES t)`)
			} else {
				var s string
				db, s = pgSchema(t)
				pgExec(t, db, sub(s, `CREATE TABLE S.t (id int PRIMARY KEY, n int UNIQUE)`, `CREATE TABLE S.u (t int REFERENCES S.t)`)...)
				name = s + ".t"
			}
			tx, err := db.BeginTx(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			got, err := Read(context.Background(), tx, kind, []string{name, "nosuch"})
			if err != nil {
				t.Fatal(err)
			}
			if tb := got[name]; tb == nil || len(tb.Columns) != 2 || len(tb.Uniques) != 1 || len(tb.ForeignKeysIn) != 1 {
				t.Errorf("%+v", got[name])
			}
		})
	}
}
