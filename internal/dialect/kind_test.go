package dialect

import (
	"database/sql/driver"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/mattn/go-sqlite3"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

func TestAccepts(t *testing.T) {
	cases := []struct {
		q        string
		d        Dialect
		accepted bool
	}{
		{"UPDATE t SET a = $1 WHERE k = $2", postgres{}, true},
		{"UPDATE t SET a = ? WHERE k = ?", postgres{}, false},   // PostgreSQL has no ?
		{"UPDATE t SET a = :a WHERE k = :k", postgres{}, false}, // nor :name
		{`UPDATE "T" SET "A" = $1 WHERE k = $2`, postgres{}, true},
		{"UPDATE `t` SET a = $1 WHERE k = $2", postgres{}, false},
		{"UPDATE [t] SET a = ? WHERE k = ?", sqlite{}, true},
		{"UPDATE `t` SET a = ? WHERE k = ?", generic{}, true},
		{`UPDATE t SET a = ? WHERE "k" = ?`, generic{}, false}, // MySQL: "k" is a string
		{`INSERT INTO t ("k", a) VALUES (?, ?)`, sqlite{}, true},
		{`INSERT INTO "s".t (k, a) VALUES (?, ?)`, generic{}, false},
	}
	for _, c := range cases {
		st := c.d.Classify(c.q)
		if st.Kind == sqlparse.Other {
			t.Fatalf("%s: not classified as bufferable", c.q)
		}
		if got := c.d.Accepts(st); got != c.accepted {
			t.Errorf("%s (%s): Accepts = %v, want %v", c.q, c.d.Kind(), got, c.accepted)
		}
	}
}

func TestByNameAndDetect(t *testing.T) {
	for name, want := range map[string]Kind{"postgres": Postgres, "postgresql": Postgres, "sqlite": SQLite, "sqlite3": SQLite, "generic": Generic, "mysql": MySQL, "mariadb": MySQL} {
		d, err := ByName(name)
		if err != nil || d.Kind() != want {
			t.Errorf("ByName(%q) = %v, %v; want %s", name, d, err, want)
		}
	}
	for _, bad := range []string{"", "oracle", "MySQL ", "Postgres "} {
		if d, err := ByName(bad); err == nil {
			t.Errorf("ByName(%q) = %v, want an error", bad, d)
		}
	}
	if k := Detect(nil).Kind(); k != Generic {
		t.Errorf("Detect(nil) = %s, want generic", k)
	}
	if k := Detect(fakeDriver{}).Kind(); k != Generic {
		t.Errorf("Detect(unknown driver) = %s, want generic", k)
	}
}

func TestTxNeedsFlush(t *testing.T) {
	const serializable, readCommitted = 6, 2
	for _, c := range []struct {
		d     Dialect
		level int
		want  bool
	}{
		{sqlite{}, 0, true},
		{sqlite{}, readCommitted, true},
		{postgres{}, 0, false},
		{postgres{}, readCommitted, false},
		{postgres{}, serializable, true},
		{generic{}, 0, false},
		{generic{}, serializable, true},
		{mysql{}, 0, true}, // InnoDB's default: REPEATABLE READ
		{mysql{}, readCommitted, false},
		{mysql{}, serializable, true},
	} {
		if got := c.d.TxNeedsFlush(driver.TxOptions{Isolation: driver.IsolationLevel(c.level)}); got != c.want {
			t.Errorf("%s level %d: TxNeedsFlush = %v, want %v", c.d.Kind(), c.level, got, c.want)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{Generic: "generic", SQLite: "sqlite", Postgres: "postgres", MySQL: "mysql", Kind(9): "Kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

type fakeDriver struct{}

func (fakeDriver) Open(string) (driver.Conn, error) { return nil, driver.ErrSkip }

func TestSQLiteFoldsQuotedNames(t *testing.T) {
	st := sqlite{}.Classify(`UPDATE "Counters" SET "N" = "N" + 1 WHERE "ID" = ?`)
	if st.Kind != sqlparse.Update || st.Table.Norm != "counters" || st.Sets[0].Col.Norm != "n" || st.Where[0].Col.Norm != "id" {
		t.Fatalf("not folded: %+v", st)
	}
	if st.Sets[0].Col.Raw != `"N"` {
		t.Errorf("Raw = %s, want the application's spelling", st.Sets[0].Col.Raw)
	}
	if st := (sqlite{}).Classify(`UPDATE t SET "N" = 1, n = 2 WHERE id = ?`); st.Kind != sqlparse.Other {
		t.Errorf(`"N" and n are one column in SQLite: Kind %v, want Other`, st.Kind)
	}
	if st := (postgres{}).Classify(`UPDATE t SET "N" = 1 WHERE id = $1`); st.Kind != sqlparse.Update || st.Sets[0].Col.Norm != "N" {
		t.Errorf(`PostgreSQL keeps "N" apart from n: %+v`, st)
	}
	if !(sqlite{}).HarmlessSetting("busy_timeout") || (sqlite{}).HarmlessSetting("foreign_keys") ||
		!(postgres{}).HarmlessSetting("statement_timeout") || (postgres{}).HarmlessSetting("timezone") || (generic{}).HarmlessSetting("x") {
		t.Error("HarmlessSetting")
	}
}

// TestRefusal: each dialect gives a reason exactly for the statements it
// does not accept, and WhyNot adds SQLite's folded names.
func TestRefusal(t *testing.T) {
	stmts := []string{
		"UPDATE t SET n = n + 1 WHERE id = $1",
		"UPDATE t SET n = n + 1 WHERE id = ?",
		"UPDATE t SET n = n + 1 WHERE id = :id",
		"UPDATE `t` SET n = 1 WHERE id = 1",
		`UPDATE "t" SET n = 1 WHERE id = 1`,
		"UPDATE [t] SET n = 1 WHERE id = 1",
		"UPDATE t SET n = 1 WHERE id = 1 AND gone IS NULL",
		"INSERT OR IGNORE INTO t (id) VALUES (1)",
		"INSERT INTO t (id, n) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET n = n + 1",
		"INSERT INTO t (id, n) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET n = t.n + 1",
		"INSERT INTO t (id) VALUES (1) ON CONFLICT DO NOTHING",
	}
	for _, d := range []Dialect{generic{}, sqlite{}, postgres{}} {
		for _, q := range stmts {
			st := d.Classify(q)
			if st.Kind == sqlparse.Other {
				continue
			}
			if why := Refusal(d, st); (why == "") != d.Accepts(st) {
				t.Errorf("%s: %q: Accepts %v, Refusal %q", d.Kind(), q, d.Accepts(st), why)
			}
		}
	}
	if why := Refusal(postgres{}, postgres{}.Classify("UPDATE t SET n = 1 WHERE id = ?")); why != "PostgreSQL has no ? or :name placeholders" {
		t.Errorf("postgres, ?: %q", why)
	}
	if why := WhyNot(postgres{}, "UPDATE t SET n = 1 WHERE id = 1 OR id = 2"); why != "WHERE has OR" {
		t.Errorf("postgres, OR: %q", why)
	}
	if why := WhyNot(sqlite{}, "UPDATE t SET n = 1 WHERE id = 1"); why != "" {
		t.Errorf("sqlite, bufferable: %q", why)
	}
}

// wrapper is a driver that wraps another, as otelsql's does: in an
// unexported interface field, possibly behind another wrapper.
type wrapper struct {
	inner driver.Driver
}

func (w *wrapper) Open(name string) (driver.Conn, error) { return w.inner.Open(name) }

func TestDetectWrapped(t *testing.T) {
	for _, c := range []struct {
		d    driver.Driver
		want Kind
	}{
		{&wrapper{inner: &stdlib.Driver{}}, Postgres},
		{&wrapper{inner: &wrapper{inner: &sqlite3.SQLiteDriver{}}}, SQLite},
		{&wrapper{inner: fakeDriver{}}, Generic},
		{&wrapper{}, Generic},
		{&wrapper{inner: &wrapper{inner: &wrapper{inner: &wrapper{inner: &stdlib.Driver{}}}}}, Generic}, // too deep
	} {
		if k := Detect(c.d).Kind(); k != c.want {
			t.Errorf("Detect(%#v) = %s, want %s", c.d, k, c.want)
		}
	}
}
