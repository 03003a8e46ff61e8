package writeback

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
)

// Unit tests of checkRule, checkFeatures and otherUniques (schema.go).
//
// Most build catalog.Table values by hand. Such a table has the zero (generic)
// kind, under which Table.Column compares names exactly, as on PostgreSQL:
// that is what these tests need, since rule keys are normalized names and
// the hand-built columns are spelled the same. SQLite compares column names
// without regard to case, which only a table read by catalog.Read knows;
// TestCheckRuleSQLiteCatalog covers that on a real database.

const scFile = "rules.yaml"

// scBack is a back rule for table t at line 7.
func scBack(allow Allowance, key ...string) *TableRule { return scRule("t", allow, key...) }

// scRule is a back rule for the named table at line 7.
func scRule(name string, allow Allowance, key ...string) *TableRule {
	return &TableRule{Name: name, Mode: ModeBack, Key: key, Allow: allow, Line: 7}
}

const scAllowAll = AllowTriggers | AllowForeignKeys | AllowUnique | AllowCheck | AllowDefaults

// scPlain is t(id PRIMARY KEY, code NOT NULL, note nullable, n NOT NULL),
// with nothing else: a back rule keyed by id fits it with no allowance.
func scPlain() *catalog.Table {
	return &catalog.Table{
		Schema: "public",
		Name:   "t",
		Columns: []*catalog.Column{
			{Name: "id", Type: "bigint", Class: catalog.Integer, NotNull: true},
			{Name: "code", Type: "text", Class: catalog.Text, NotNull: true},
			{Name: "note", Type: "text", Class: catalog.Text},
			{Name: "n", Type: "integer", Class: catalog.Integer, NotNull: true},
		},
		PrimaryKey: []string{"id"},
	}
}

// scWithUniques is scPlain with unique indexes t_code_key on code (NOT NULL)
// and t_note_key on note (nullable).
func scWithUniques() *catalog.Table {
	t := scPlain()
	t.Uniques = []*catalog.Index{
		{Name: "t_code_key", Columns: []string{"code"}},
		{Name: "t_note_key", Columns: []string{"note"}},
	}
	return t
}

func scColumn(t *catalog.Table, name string) *catalog.Column {
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	panic("no column " + name)
}

// scWantErr checks that err is a *RulesError at rules.yaml:7 whose text
// contains each of want.
func scWantErr(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want one containing %q", what, want)
		return
	}
	var re *RulesError
	if !errors.As(err, &re) {
		t.Errorf("%s: error %T %v is not a *RulesError", what, err, err)
		return
	}
	if re.File != scFile || re.Line != 7 {
		t.Errorf("%s: File, Line = %q, %d; want %q, 7", what, re.File, re.Line, scFile)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "rules.yaml:7: tables.") {
		t.Errorf("%s: error %q does not start with \"rules.yaml:7: tables.\"", what, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q does not contain %q", what, msg, w)
		}
	}
}

func scNoErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func TestCheckRuleFits(t *testing.T) {
	scNoErr(t, "back rule keyed by the primary key", checkRule(scFile, scBack(0, "id"), scPlain()))
}

func TestCheckRuleMissingTable(t *testing.T) {
	err := checkRule(scFile, scBack(0, "id"), nil)
	scWantErr(t, "back", err, "does not exist")
	if want := "rules.yaml:7: tables.t: table t does not exist in the database"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	through := &TableRule{Name: "t", Mode: ModeThrough, Line: 7}
	scWantErr(t, "through", checkRule(scFile, through, nil), "does not exist")
	// All allowances do not excuse a missing table.
	scWantErr(t, "allow all", checkRule(scFile, scBack(scAllowAll, "id"), nil), "does not exist")

	// An empty File prints as "rules", and the fields stay as given.
	err = checkRule("", scBack(0, "id"), nil)
	var re *RulesError
	if !errors.As(err, &re) || re.File != "" || re.Line != 7 || !strings.HasPrefix(err.Error(), "rules:7: ") {
		t.Errorf("empty file name: %#v", err)
	}
}

// TestCheckRuleThroughExistenceOnly: a through table is checked for existence
// only, however badly it would fit a back rule.
func TestCheckRuleThroughExistenceOnly(t *testing.T) {
	bad := scWithUniques()
	bad.PrimaryKey = nil
	bad.Uniques[0].Columns = []string{"code", "n"}
	bad.Triggers = []string{"t_audit"}
	bad.ForeignKeysOut = []string{"t_p_fkey FOREIGN KEY (n) REFERENCES p(id)"}
	bad.ForeignKeysIn = []string{"c: c_t_fkey FOREIGN KEY (t_id) REFERENCES t(id)"}
	bad.Checks = []string{"CHECK ((n > 0))"}
	bad.OtherUniques = []*catalog.Index{{Name: "t_lower", Columns: []string{""}, Expression: true}}
	scColumn(bad, "note").Generated = true
	scColumn(bad, "n").VolatileDefault = true
	scColumn(bad, "code").CaseInsensitive = true

	for _, key := range [][]string{nil, {"nope"}, {"code"}} {
		r := &TableRule{Name: "t", Mode: ModeThrough, Key: key, Line: 7}
		scNoErr(t, "through", checkRule(scFile, r, bad))
	}
	// The same table refused as a back table, so the above means something.
	scWantErr(t, "back", checkRule(scFile, scBack(0, "id"), bad), "is not the primary key")
}

func TestCheckRuleMissingKeyColumn(t *testing.T) {
	scWantErr(t, "one column", checkRule(scFile, scBack(0, "nope"), scPlain()),
		"key column nope does not exist in table t")
	scWantErr(t, "second of two", checkRule(scFile, scBack(0, "id", "nope"), scPlain()),
		"key column nope does not exist")
	// The generic (zero) kind compares names exactly, as PostgreSQL does
	// for case-resolved names.
	scWantErr(t, "other case", checkRule(scFile, scBack(0, "ID"), scPlain()),
		"key column ID does not exist")
}

func TestCheckRuleCaseInsensitiveKey(t *testing.T) {
	tab := scWithUniques()
	c := scColumn(tab, "code")
	c.CaseInsensitive, c.Collation = true, "und-u-ks-level2"
	scWantErr(t, "collation", checkRule(scFile, scBack(AllowUnique, "code"), tab),
		"key column code has a case-insensitive collation", "und-u-ks-level2")

	// citext: the type, not a collation.
	tab = scWithUniques()
	c = scColumn(tab, "code")
	c.CaseInsensitive, c.Type = true, "citext"
	scWantErr(t, "citext", checkRule(scFile, scBack(AllowUnique, "code"), tab),
		"case-insensitive", "citext")

	// A case-insensitive key column is refused even when it is the primary
	// key, and a case-insensitive column that is not a key is no concern.
	tab = scPlain()
	scColumn(tab, "id").CaseInsensitive = true
	scWantErr(t, "primary key", checkRule(scFile, scBack(0, "id"), tab), "case-insensitive")
	tab = scPlain()
	scColumn(tab, "note").CaseInsensitive = true
	scNoErr(t, "not a key column", checkRule(scFile, scBack(0, "id"), tab))
}

func TestCheckRuleNotUnique(t *testing.T) {
	// No index at all on n.
	scWantErr(t, "no index", checkRule(scFile, scBack(AllowUnique, "n"), scWithUniques()),
		"key (n) is not the primary key or a unique index over NOT NULL columns", "no unique index on (n)")
	// A unique index on a nullable column.
	scWantErr(t, "nullable", checkRule(scFile, scBack(AllowUnique, "note"), scWithUniques()),
		"key (note) is not the primary key", "note is nullable")
	// Part of a two-column primary key is not a key.
	tab := scPlain()
	tab.PrimaryKey = []string{"id", "n"}
	scWantErr(t, "part of the key", checkRule(scFile, scBack(0, "id"), tab), "no unique index on (id)")
	// A superset of the primary key is not a key either (as IsUniqueKey has it).
	scWantErr(t, "superset", checkRule(scFile, scBack(0, "id", "n", "code"), tab), "is not the primary key")
	// A partial unique index is no key; the message says why.
	tab = scPlain()
	tab.OtherUniques = []*catalog.Index{{Name: "t_code_live", Columns: []string{"code"}, Partial: true}}
	scWantErr(t, "partial", checkRule(scFile, scBack(AllowUnique, "code"), tab), "t_code_live", "partial")
	// The key in another order than the primary key's is the primary key.
	tab = scPlain()
	tab.PrimaryKey = []string{"id", "n"}
	scNoErr(t, "key order", checkRule(scFile, scBack(0, "n", "id"), tab))
	// A unique index over a NOT NULL column is a key (the primary key then
	// is another unique constraint).
	scNoErr(t, "unique NOT NULL", checkRule(scFile, scBack(AllowUnique, "code"), scWithUniques()))
	// A nullable unique index with NULLS NOT DISTINCT is a key.
	tab = scWithUniques()
	tab.Uniques[1].NullsNotDistinct = true
	scNoErr(t, "nulls not distinct", checkRule(scFile, scBack(AllowUnique, "note"), tab))
}

// TestCheckRuleFeatures: each feature is refused without its allowance (even
// with every other one) and accepted with it.
func TestCheckRuleFeatures(t *testing.T) {
	cases := []struct {
		name string
		key  []string
		base Allowance // needed apart from the feature under test
		bit  Allowance
		set  func(*catalog.Table)
		want []string
	}{
		{
			name: "triggers", bit: AllowTriggers,
			set:  func(t *catalog.Table) { t.Triggers = []string{"t_audit", "t_touch"} },
			want: []string{"table has triggers (t_audit, t_touch)", "allow: [triggers] in the rule accepts that"},
		},
		{
			name: "foreign key out", bit: AllowForeignKeys,
			set:  func(t *catalog.Table) { t.ForeignKeysOut = []string{"t_n_fkey FOREIGN KEY (n) REFERENCES p(id)"} },
			want: []string{"table has foreign keys (t_n_fkey FOREIGN KEY (n) REFERENCES p(id))", "allow: [foreign_keys]"},
		},
		{
			name: "foreign key in", bit: AllowForeignKeys,
			set:  func(t *catalog.Table) { t.ForeignKeysIn = []string{"c: c_t_fkey FOREIGN KEY (t_id) REFERENCES t(id)"} },
			want: []string{"table has foreign keys (c: c_t_fkey FOREIGN KEY (t_id) REFERENCES t(id))", "allow: [foreign_keys]"},
		},
		{
			name: "foreign keys both ways", bit: AllowForeignKeys,
			set: func(t *catalog.Table) {
				t.ForeignKeysOut = []string{"out1"}
				t.ForeignKeysIn = []string{"in1", "in2"}
			},
			want: []string{"table has foreign keys (out1; in1; in2)"},
		},
		{
			name: "unique index", bit: AllowUnique,
			set: func(t *catalog.Table) {
				t.Uniques = []*catalog.Index{{Name: "t_code_key", Columns: []string{"code"}}}
			},
			want: []string{"table has a unique constraint other than the key (UNIQUE t_code_key)", "allow: [unique]"},
		},
		{
			name: "expression unique index", bit: AllowUnique,
			set: func(t *catalog.Table) {
				t.OtherUniques = []*catalog.Index{{Name: "t_lower_code", Columns: []string{""}, Expression: true}}
			},
			want: []string{"(UNIQUE t_lower_code)"},
		},
		{
			name: "primary key besides the key", key: []string{"code"}, bit: AllowUnique,
			set: func(t *catalog.Table) {
				t.Uniques = []*catalog.Index{{Name: "t_code_key", Columns: []string{"code"}}}
			},
			want: []string{"unique constraint other than the key (PRIMARY KEY (id))"},
		},
		{
			name: "check", bit: AllowCheck,
			set:  func(t *catalog.Table) { t.Checks = []string{"CHECK ((n > 0))", "n: CHECK ((VALUE < 10))"} },
			want: []string{"table has check constraints (CHECK ((n > 0)), n: CHECK ((VALUE < 10)))", "allow: [check]"},
		},
		{
			name: "generated column", bit: AllowDefaults,
			set: func(t *catalog.Table) {
				c := scColumn(t, "note")
				c.Generated, c.Default = true, "(n * 2)"
			},
			want: []string{"column note is generated, computed at flush time", "allow: [defaults]"},
		},
		{
			name: "sequence default", bit: AllowDefaults,
			set: func(t *catalog.Table) {
				c := scColumn(t, "n")
				c.SequenceDefault, c.Default = true, "nextval('t_n_seq'::regclass)"
			},
			want: []string{"column n has a default drawn from a sequence or a volatile function (nextval('t_n_seq'::regclass))", "allow: [defaults]"},
		},
		{
			name: "volatile default", bit: AllowDefaults,
			set: func(t *catalog.Table) {
				c := scColumn(t, "note")
				c.VolatileDefault, c.Default = true, "now()"
			},
			want: []string{"column note has a default drawn from a sequence or a volatile function (now())"},
		},
		{
			// An identity primary key is a sequence default like any other
			// once the rule is keyed by another column.
			name: "identity off the key", key: []string{"code"}, base: AllowUnique, bit: AllowDefaults,
			set: func(t *catalog.Table) {
				t.Uniques = []*catalog.Index{{Name: "t_code_key", Columns: []string{"code"}}}
				c := scColumn(t, "id")
				c.SequenceDefault, c.Identity = true, true
			},
			want: []string{"column id has a default drawn from a sequence"},
		},
	}
	for _, c := range cases {
		key := c.key
		if key == nil {
			key = []string{"id"}
		}
		tab := scPlain()
		c.set(tab)
		scWantErr(t, c.name+" without allow", checkRule(scFile, scBack(c.base, key...), tab), c.want...)
		scWantErr(t, c.name+" with every other allow", checkRule(scFile, scBack(scAllowAll&^c.bit, key...), tab), c.want...)
		scNoErr(t, c.name+" allowed", checkRule(scFile, scBack(c.base|c.bit, key...), tab))
	}
}

// TestCheckRuleFeaturesOrder: with every feature present, the refusals come
// in a fixed order, each allowance moving on to the next.
func TestCheckRuleFeaturesOrder(t *testing.T) {
	tab := scPlain()
	tab.Triggers = []string{"t_audit"}
	tab.ForeignKeysIn = []string{"c: fk"}
	tab.Uniques = []*catalog.Index{{Name: "t_code_key", Columns: []string{"code"}}}
	tab.Checks = []string{"CHECK ((n > 0))"}
	scColumn(tab, "n").VolatileDefault = true
	steps := []struct {
		allow Allowance
		want  string
	}{
		{0, "table has triggers"},
		{AllowTriggers, "table has foreign keys"},
		{AllowTriggers | AllowForeignKeys, "table has a unique constraint"},
		{AllowTriggers | AllowForeignKeys | AllowUnique, "table has check constraints"},
		{AllowTriggers | AllowForeignKeys | AllowUnique | AllowCheck, "column n has a default"},
	}
	for _, s := range steps {
		scWantErr(t, "allow "+s.allow.String(), checkRule(scFile, scBack(s.allow, "id"), tab), s.want)
	}
	scNoErr(t, "allow all", checkRule(scFile, scBack(scAllowAll, "id"), tab))
}

func TestCheckRuleDefaultsOnKey(t *testing.T) {
	// A sequence (serial, identity) default on the key column is accepted
	// without allow: an INSERT that leaves the key out is never buffered.
	tab := scPlain()
	c := scColumn(tab, "id")
	c.SequenceDefault, c.Identity, c.Default = true, true, "nextval('t_id_seq'::regclass)"
	scNoErr(t, "sequence default on the key", checkRule(scFile, scBack(0, "id"), tab))

	// So is a volatile default on a key column (uuid DEFAULT gen_random_uuid()).
	tab = scPlain()
	tab.PrimaryKey = []string{"id", "code"}
	c = scColumn(tab, "code")
	c.VolatileDefault, c.Default = true, "gen_random_uuid()"
	scNoErr(t, "volatile default on a key column", checkRule(scFile, scBack(0, "code", "id"), tab))

	// The same default on a column outside the key is refused.
	tab = scPlain()
	c = scColumn(tab, "code")
	c.VolatileDefault, c.Default = true, "gen_random_uuid()"
	scWantErr(t, "volatile default off the key", checkRule(scFile, scBack(0, "id"), tab), "column code has a default", "gen_random_uuid()")
}

// TestCheckFeaturesReportsEach: checkFeatures hands each feature to add, a
// refusal without its allowance and a warning with it.
func TestCheckFeaturesReportsEach(t *testing.T) {
	tab := scPlain()
	tab.Checks = []string{"CHECK (x)"}
	type call struct {
		check string
		warn  bool
		msg   string
	}
	collect := func(r *TableRule, tab *catalog.Table) []call {
		var got []call
		checkFeatures(r, tab, true, func(check string, warn bool, format string, args ...any) {
			got = append(got, call{check, warn, fmt.Sprintf(format, args...)})
		})
		return got
	}
	got := collect(scBack(0, "id"), tab)
	if len(got) != 1 || got[0].check != "check" || got[0].warn || !strings.Contains(got[0].msg, "check constraints") || !strings.Contains(got[0].msg, "allow: [check] in the rule") {
		t.Errorf("without allow: %+v", got)
	}
	got = collect(scBack(AllowCheck, "id"), tab)
	if len(got) != 1 || got[0].check != "check" || !got[0].warn || !strings.Contains(got[0].msg, "accepted by allow: [check]") {
		t.Errorf("with allow: %+v", got)
	}
	if got := collect(scBack(0, "id"), scPlain()); len(got) != 0 {
		t.Errorf("plain table: %+v", got)
	}
}

// TestRuleFindingsAll: every problem of a rule is found, not only the
// first, in the order checkRule reports them; allowed features, key types
// without a canonical form and views are warnings.
func TestRuleFindingsAll(t *testing.T) {
	tab := scPlain()
	tab.Triggers = []string{"t_audit"}
	tab.Checks = []string{"CHECK ((n > 0))"}
	tab.Views = []string{"public.v"}
	scColumn(tab, "code").CaseInsensitive = true
	scColumn(tab, "n").VolatileDefault = true
	scColumn(tab, "note").Generated = true
	scColumn(tab, "id").Class = catalog.Float
	tab.PrimaryKey = []string{"id", "code"}
	r := scBack(AllowCheck, "id", "code")
	var got []string
	for _, f := range ruleFindings(scFile, r, tab) {
		level := "error"
		if f.warn {
			level = "warning"
		}
		if f.err.File != scFile || f.err.Line != 7 {
			t.Errorf("finding %s at %s:%d", f.check, f.err.File, f.err.Line)
		}
		got = append(got, level+" "+f.check)
	}
	want := []string{"warning key_type", "error collation", "error triggers", "warning check", "error defaults", "error defaults", "warning views"}
	if !slices.Equal(got, want) {
		t.Errorf("findings = %q\nwant       %q", got, want)
	}
	// A key that is no key: the findings that depend on the key's columns
	// (other unique constraints, defaults outside the key) are left out.
	got = nil
	for _, f := range ruleFindings(scFile, scBack(AllowCheck, "id", "nope"), tab) {
		got = append(got, f.check)
	}
	if want := []string{"key_type", "key_column", "triggers", "check", "views"}; !slices.Equal(got, want) {
		t.Errorf("with a missing key column: %q, want %q", got, want)
	}
	if err := checkRule(scFile, r, tab); err == nil || !strings.Contains(err.Error(), "case-insensitive") {
		t.Errorf("checkRule = %v, want the first refusal (collation)", err)
	}
	if fs := ruleFindings(scFile, scBack(0, "id"), scPlain()); len(fs) != 0 {
		t.Errorf("a fitting rule: %+v", fs)
	}
}

func TestOtherUniques(t *testing.T) {
	withPK := func(tab *catalog.Table, cols ...string) *catalog.Table {
		tab.PrimaryKey = cols
		return tab
	}
	noPK := withPK(scWithUniques())
	pk2 := withPK(scPlain(), "id", "n")
	pk2.Uniques = []*catalog.Index{
		{Name: "t_code_n_key", Columns: []string{"code", "n"}},
		{Name: "t_n_code_key", Columns: []string{"n", "code"}},
	}
	exprs := scWithUniques()
	exprs.OtherUniques = []*catalog.Index{
		{Name: "t_lower_code", Columns: []string{""}, Expression: true},
		{Name: "t_code_live", Columns: []string{"code"}, Partial: true},
	}
	for _, c := range []struct {
		name string
		tab  *catalog.Table
		key  []string
		want string
	}{
		{"primary key only", scPlain(), []string{"id"}, ""},
		{"uniques besides the primary key", scWithUniques(), []string{"id"}, "UNIQUE t_code_key, UNIQUE t_note_key"},
		{"key is a unique index: the primary key listed", scWithUniques(), []string{"code"}, "PRIMARY KEY (id), UNIQUE t_note_key"},
		{"key is the other unique index", scWithUniques(), []string{"note"}, "PRIMARY KEY (id), UNIQUE t_code_key"},
		{"no primary key", noPK, []string{"code"}, "UNIQUE t_note_key"},
		{"two-column primary key, key in another order", pk2, []string{"n", "id"}, "UNIQUE t_code_n_key, UNIQUE t_n_code_key"},
		{"part of the primary key", pk2, []string{"id"}, "PRIMARY KEY (id, n), UNIQUE t_code_n_key, UNIQUE t_n_code_key"},
		{"superset of the primary key", pk2, []string{"id", "n", "code"}, "PRIMARY KEY (id, n), UNIQUE t_code_n_key, UNIQUE t_n_code_key"},
		{"two unique indexes over the key's columns", pk2, []string{"code", "n"}, "PRIMARY KEY (id, n)"},
		{"two columns, one in common", pk2, []string{"code", "id"}, "PRIMARY KEY (id, n), UNIQUE t_code_n_key, UNIQUE t_n_code_key"},
		// Partial and expression indexes are listed unless they are over
		// the key's very columns.
		{"expression and partial indexes", exprs, []string{"id"}, "UNIQUE t_code_key, UNIQUE t_note_key, UNIQUE t_lower_code, UNIQUE t_code_live"},
		{"partial index over the key", exprs, []string{"code"}, "PRIMARY KEY (id), UNIQUE t_note_key, UNIQUE t_lower_code"},
	} {
		if got := otherUniques(scBack(0, c.key...), c.tab); got != c.want {
			t.Errorf("%s: otherUniques(key %v) = %q, want %q", c.name, c.key, got, c.want)
		}
	}
}

// scSQLite opens a fresh SQLite database, runs the statements and reads
// every table named.
func scSQLite(t *testing.T, stmts []string, names ...string) map[string]*catalog.Table {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "schema.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tables, err := catalog.Read(context.Background(), db, dialect.SQLite, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if tables[n] == nil {
			t.Fatalf("catalog.Read found no table %s", n)
		}
	}
	return tables
}

// TestCheckRuleSQLiteCatalog checks rules against tables read from a real
// SQLite database, whose Table.Column finds names without regard to case.
func TestCheckRuleSQLiteCatalog(t *testing.T) {
	tables := scSQLite(t, []string{
		`CREATE TABLE a (Id INTEGER PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0)`,
		`CREATE TABLE b (email TEXT NOT NULL COLLATE NOCASE PRIMARY KEY, n INT)`,
		`CREATE TABLE c (id INTEGER PRIMARY KEY, Code TEXT NOT NULL UNIQUE)`,
		`CREATE TABLE d (id INTEGER PRIMARY KEY, ts TEXT DEFAULT CURRENT_TIMESTAMP)`,
		`CREATE TABLE g (id INTEGER PRIMARY KEY, n INT, twice INT GENERATED ALWAYS AS (n * 2) VIRTUAL)`,
		`CREATE TABLE p (id INTEGER PRIMARY KEY)`,
		`CREATE TABLE e (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id), n INT CHECK (n > 0), u TEXT UNIQUE, ts TEXT DEFAULT (datetime('now')))`,
		`CREATE TRIGGER e_touch AFTER UPDATE ON e BEGIN SELECT 1; END`,
	}, "a", "b", "c", "d", "g", "e")

	// a: key "id" finds column Id; INTEGER PRIMARY KEY is a sequence default
	// on the key, accepted without allow.
	a := tables["a"]
	if c := a.Column("id"); c == nil || !c.SequenceDefault {
		t.Fatalf("a.Column(\"id\") = %+v, want Id with a sequence default", c)
	}
	scNoErr(t, "a", checkRule(scFile, scRule("a", 0, "id"), a))
	// The same columns in a hand-built Table (zero kind) compare names
	// exactly, as PostgreSQL does: there the key column does not exist.
	hand := &catalog.Table{Name: "a", Columns: a.Columns, PrimaryKey: a.PrimaryKey}
	scWantErr(t, "a by hand", checkRule(scFile, scRule("a", 0, "id"), hand), "key column id does not exist in table a")

	// b: COLLATE NOCASE on the key.
	scWantErr(t, "b", checkRule(scFile, scRule("b", scAllowAll, "email"), tables["b"]), "tables.b: ", "key column email has a case-insensitive collation", "NOCASE")

	// c: keyed by the unique Code: the primary key is another unique
	// constraint; the index's column and the key match whatever the case.
	c := tables["c"]
	if got, want := otherUniques(scRule("c", 0, "code"), c), "PRIMARY KEY (id)"; got != want {
		t.Errorf("otherUniques(c, code) = %q, want %q", got, want)
	}
	if got := otherUniques(scRule("c", 0, "ID"), c); !strings.HasPrefix(got, "UNIQUE ") || strings.Contains(got, "PRIMARY") {
		t.Errorf("otherUniques(c, ID) = %q, want the unique index on Code only", got)
	}
	scWantErr(t, "c", checkRule(scFile, scRule("c", 0, "code"), c), "unique constraint other than the key (PRIMARY KEY (id))", "allow: [unique]")
	// The INTEGER PRIMARY KEY, no longer the key, is a sequence default.
	scWantErr(t, "c unique allowed", checkRule(scFile, scRule("c", AllowUnique, "code"), c), "column id has a default drawn from a sequence", "allow: [defaults]")
	scNoErr(t, "c allowed", checkRule(scFile, scRule("c", AllowUnique|AllowDefaults, "code"), c))

	// d: CURRENT_TIMESTAMP default off the key.
	scWantErr(t, "d", checkRule(scFile, scRule("d", 0, "id"), tables["d"]), "column ts has a default", "allow: [defaults]")
	scNoErr(t, "d allowed", checkRule(scFile, scRule("d", AllowDefaults, "id"), tables["d"]))

	// g: a generated column comes under defaults.
	scWantErr(t, "g", checkRule(scFile, scRule("g", scAllowAll&^AllowDefaults, "id"), tables["g"]), "column twice is generated", "allow: [defaults]")
	scNoErr(t, "g allowed", checkRule(scFile, scRule("g", AllowDefaults, "id"), tables["g"]))

	// e: every feature, each allowance moving on to the next.
	e := tables["e"]
	for _, s := range []struct {
		allow Allowance
		want  string
	}{
		{0, "table has triggers (e_touch)"},
		{AllowTriggers, "table has foreign keys ("},
		{AllowTriggers | AllowForeignKeys, "table has a unique constraint other than the key (UNIQUE "},
		{AllowTriggers | AllowForeignKeys | AllowUnique, "table has check constraints ("},
		{AllowTriggers | AllowForeignKeys | AllowUnique | AllowCheck, "column ts has a default"},
	} {
		scWantErr(t, "e "+s.allow.String(), checkRule(scFile, scRule("e", s.allow, "id"), e), "tables.e: ", s.want)
	}
	scNoErr(t, "e all allowed", checkRule(scFile, scRule("e", scAllowAll, "id"), e))
	// Through: existence only.
	scNoErr(t, "e through", checkRule(scFile, &TableRule{Name: "e", Mode: ModeThrough, Line: 7}, e))
}
