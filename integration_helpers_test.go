package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/mattn/go-sqlite3"
	"github.com/writeback-go/writeback/internal/testdb"
)

// postgresDSN is the base DSN of the test server: WRITEBACK_TEST_POSTGRES, or
// the machine's local server.
func postgresDSN() string { return testdb.PostgresDSN() }

// requirePostgres skips the test when PostgreSQL is unreachable, with a
// message that says how to point the tests at a server; under CI=true an
// unreachable server fails the test instead.
func requirePostgres(t testing.TB) {
	t.Helper()
	db, err := sql.Open("pgx", postgresDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL at %q unreachable (%v); set WRITEBACK_TEST_POSTGRES to a reachable server", postgresDSN(), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

var schemaSeq atomic.Int64

// pgSchema creates a fresh schema and returns a base DSN whose search_path
// points at it; the schema is dropped when the test ends.
func pgSchema(t testing.TB, prefix string) string {
	t.Helper()
	requirePostgres(t)
	name := fmt.Sprintf("wb_%s_%d_%d", prefix, os.Getpid(), schemaSeq.Add(1))
	admin, err := sql.Open("pgx", postgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE; CREATE SCHEMA " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE")
		admin.Close()
	})
	return postgresDSN() + " search_path=" + name
}

// sqliteDSN returns a DSN for a fresh SQLite file in WAL mode with a busy
// timeout, as an application writing from several connections would use.
func sqliteDSN(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".db")
	// A test's folder is named after the test: a subtest's name can hold
	// '#' (seed#0, a repeated name's #01), which a URI would read as the
	// start of a fragment, and so name another file.
	path = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_synchronous=NORMAL"
}

// openWriteback opens a writeback *sql.DB through the registered driver and
// its DSN, exactly as an application would.
func openWriteback(t testing.TB, driverName, baseDSN, rules string) *sql.DB {
	t.Helper()
	path := writeRulesFile(t, rules)
	db, err := sql.Open("writeback", "driver="+driverName+" rules="+path+" dsn="+baseDSN)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// openWritebackDeferred is openWriteback with checks=deferred: for tests
// that create their tables through the returned *sql.DB, as migrations do.
func openWritebackDeferred(t testing.TB, driverName, baseDSN, rules string) *sql.DB {
	t.Helper()
	path := writeRulesFile(t, rules)
	db, err := sql.Open("writeback", "driver="+driverName+" rules="+path+" checks=deferred dsn="+baseDSN)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// execAll runs each statement of a ;-separated script.
func execAll(t testing.TB, db *sql.DB, script string) {
	t.Helper()
	for _, s := range strings.Split(script, ";") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// dumpTable returns every row of a table as text, ordered by the given columns.
func dumpTable(t testing.TB, db *sql.DB, table, orderBy string) []string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table + " ORDER BY " + orderBy)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	return scanAll(t, rows)
}

func scanAll(t testing.TB, rows *sql.Rows) []string {
	t.Helper()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		for i, v := range vals {
			if i > 0 {
				sb.WriteByte('|')
			}
			switch x := v.(type) {
			case []byte:
				sb.WriteString(string(x))
			case nil:
				sb.WriteString("NULL")
			default:
				fmt.Fprint(&sb, x)
			}
		}
		out = append(out, sb.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sqliteDriverConn opens a Connector with rules over a fresh SQLite file
// that script (run directly first) prepares, and one writeback driver
// connection of it: for tests of the connection itself, without
// database/sql's pool around it. Both are closed when the test ends.
func sqliteDriverConn(t testing.TB, name, rules, script string) (*Connector, *conn) {
	t.Helper()
	return driverConn(t, "sqlite3", sqliteDSN(t, name), rules, script)
}

// driverConn is sqliteDriverConn over the base driver driverName at dsn.
func driverConn(t testing.TB, driverName, dsn, rules, script string) (*Connector, *conn) {
	t.Helper()
	direct, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, script)
	base, err := baseConnector(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	cn, err := NewConnector(base, mustRules(t, rules))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cn.Close() })
	dc, err := cn.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close() }) // before the connector's (cleanups run last first)
	return cn, dc.(*conn)
}
