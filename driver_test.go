package writeback

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
)

func TestParseDSN(t *testing.T) {
	t.Setenv(rulesEnv, "") // "rules=PATH is required" below
	good := []struct {
		in   string
		want dsnConfig
	}{
		{"driver=pgx rules=r.yaml dsn=host=/tmp dbname=x sslmode=disable",
			dsnConfig{driver: "pgx", rules: "r.yaml", dsn: "host=/tmp dbname=x sslmode=disable"}},
		{"  rules=r.yaml   driver=sqlite3 journal=/var/j dsn=file:x.db?_busy_timeout=5000",
			dsnConfig{driver: "sqlite3", rules: "r.yaml", journal: "/var/j", dsn: "file:x.db?_busy_timeout=5000"}},
		{"driver=sqlmock rules=r.yaml dsn=", dsnConfig{driver: "sqlmock", rules: "r.yaml"}},
		// dsn= takes the rest verbatim, even what looks like our keys.
		{"driver=pgx rules=r dsn=postgres://u@h/db?x=1 driver=other", dsnConfig{driver: "pgx", rules: "r", dsn: "postgres://u@h/db?x=1 driver=other"}},
	}
	for _, g := range good {
		got, err := parseDSN(g.in)
		if err != nil || got != g.want {
			t.Errorf("parseDSN(%q) = %+v, %v; want %+v", g.in, got, err, g.want)
		}
	}
	bad := map[string]string{
		"":                                    "driver=NAME is required",
		"rules=r dsn=x":                       "driver=NAME is required",
		"driver=pgx dsn=x":                    "rules=PATH is required",
		"driver=pgx rules=r":                  "dsn=BASE is required",
		"driver=pgx rules=r bogus dsn=x":      `"bogus" is not key=value`,
		"driver=pgx rules=r color=red dsn=x":  `unknown key "color"`,
		"driver=pgx driver=pgx rules=r dsn=x": "driver= given twice",
		"driver= rules=r dsn=x":               "driver= is empty",
		"driver=writeback rules=r dsn=x":      "would wrap itself",
	}
	for in, want := range bad {
		_, err := parseDSN(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseDSN(%q) error = %v; want one containing %q", in, err, want)
		}
	}
}

func FuzzParseDSN(f *testing.F) {
	f.Add("driver=pgx rules=r.yaml dsn=host=x")
	f.Add("driver==  rules dsn")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, err := parseDSN(s) // never panics
		if err == nil && (cfg.driver == "" || cfg.rules == "") {
			t.Fatalf("parseDSN(%q) accepted a DSN without driver or rules: %+v", s, cfg)
		}
	})
}

func TestOpenErrorsNameTheProblem(t *testing.T) {
	rules := writeRulesFile(t, counterRules)
	bad := writeRulesFile(t, "tables:\n  t:\n    mode: back\n    key: [id]\n    max_loss: soon\n")
	cases := map[string]string{
		"driver=nosuch rules=" + rules + " dsn=x":                                    `base driver "nosuch" is not registered`,
		"driver=sqlite3 rules=" + filepath.Join(t.TempDir(), "none.yaml") + " dsn=x": "none.yaml",
		"driver=sqlite3 rules=" + bad + " dsn=x":                                     bad + ":5",
	}
	for dsn, want := range cases {
		db, err := sql.Open("writeback", dsn)
		if err == nil {
			db.Close()
			t.Fatalf("sql.Open(%q) succeeded", dsn)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("sql.Open(%q) error = %q; want it to name %q", dsn, err, want)
		}
	}
	if _, err := NewConnector(nil, mustRules(t, counterRules)); err == nil {
		t.Error("NewConnector(nil base) succeeded")
	}
	if _, err := NewConnector(dsnConnector{}, nil); err == nil {
		t.Error("NewConnector(nil rules) succeeded")
	}
	if _, err := NewConnector(&fakeConnector{}, mustRules(t, counterRules), WithLogger(nil)); err == nil {
		t.Error("WithLogger(nil) accepted")
	}
	if _, err := NewConnector(&fakeConnector{}, mustRules(t, counterRules), WithCloseTimeout(0)); err == nil {
		t.Error("WithCloseTimeout(0) accepted")
	}
	if Flush(context.Background(), nil) == nil {
		t.Error("Flush(nil db) succeeded")
	}
	plain, err := sql.Open("sqlite3", sqliteDSN(t, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := StatsOf(plain); err == nil || !strings.Contains(err.Error(), "not writeback") {
		t.Errorf("StatsOf(a sqlite3 db) error = %v; want it to say the db is not writeback", err)
	}
}

// TestBufferedArgumentsAreCopied: a caller may reuse its []byte after Exec
// returns; the buffered row must keep the value it had.
func TestBufferedArgumentsAreCopied(t *testing.T) {
	wb := openWritebackDeferred(t, "sqlite3", sqliteDSN(t, "copy"), `
tables:
  blobs:
    mode: back
    key: [id]
    max_loss: 1h
`)
	defer wb.Close()
	execAll(t, wb, "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
	buf := []byte("original")
	mustExec(t, wb, "INSERT INTO blobs (id, data) VALUES (?, ?)", 1, buf)
	copy(buf, "CLOBBER!")
	if st, _ := StatsOf(wb); st.Buffered != 1 {
		t.Fatalf("the INSERT was not buffered: %+v", st)
	}
	var got []byte
	if err := wb.QueryRow("SELECT data FROM blobs WHERE id = 1").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "original" {
		t.Fatalf("database holds %q; the buffer aliased the caller's slice", got)
	}
}

// TestRawReachesNativePgx: pgx users reach the native *pgx.Conn through
// sql.Conn.Raw and BaseConn, after flushing what they need ordered.
func TestRawReachesNativePgx(t *testing.T) {
	wb := openWritebackDeferred(t, "pgx", pgSchema(t, "raw"), counterRules)
	defer wb.Close()
	execAll(t, wb, "CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
	mustExec(t, wb, "INSERT INTO counters (id, views) VALUES ($1, $2)", 1, 41)
	mustExec(t, wb, "UPDATE counters SET views = views + $1 WHERE id = $2", 1, 1)
	ctx := context.Background()
	if err := Flush(ctx, wb); err != nil {
		t.Fatal(err)
	}
	c, err := wb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var views int64
	err = c.Raw(func(dc any) error {
		base, ok := BaseConn(dc)
		if !ok {
			return errors.New("not a writeback connection")
		}
		native := base.(*stdlib.Conn).Conn()
		return native.QueryRow(ctx, "SELECT views FROM counters WHERE id = 1").Scan(&views)
	})
	if err != nil {
		t.Fatal(err)
	}
	if views != 42 {
		t.Fatalf("native pgx read %d, want 42", views)
	}
}

// TestRawInLazyTransaction: the base connection reached inside a
// transaction (Conn.BeginTx, then Conn.Raw) is in the transaction, even
// when nothing has opened it on the database yet: a native statement there
// is rolled back with it.
func TestRawInLazyTransaction(t *testing.T) {
	dsn := pgSchema(t, "rawtx")
	wb := openWritebackDeferred(t, "pgx", dsn, counterRules)
	defer wb.Close()
	execAll(t, wb, "CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
	mustExec(t, wb, "INSERT INTO counters (id, views) VALUES ($1, $2)", 1, 0)
	ctx := context.Background()
	c, err := wb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE counters SET views = views + 1 WHERE id = $1", 1); err != nil {
		t.Fatal(err)
	}
	err = c.Raw(func(dc any) error {
		base, ok := BaseConn(dc)
		if !ok {
			return errors.New("not a writeback connection")
		}
		_, err := base.(*stdlib.Conn).Conn().Exec(ctx, "INSERT INTO counters (id, views) VALUES (2, 0)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := wb.QueryRow("SELECT COUNT(*) FROM counters").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows, %v: the native INSERT must be rolled back with the transaction", n, err)
	}
	var views int64
	if err := wb.QueryRow("SELECT views FROM counters WHERE id = 1").Scan(&views); err != nil || views != 0 {
		t.Fatalf("views %d, %v: the rolled-back UPDATE must not count", views, err)
	}
}
