package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/writeback-go/writeback/internal/testdb"
)

// runCmd runs the command in-process and returns its exit status and
// outputs.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustRun runs the command and fails the test unless it exits with want.
func mustRun(t *testing.T, want int, args ...string) string {
	t.Helper()
	code, out, errOut := runCmd(t, args...)
	if code != want {
		t.Fatalf("%q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, out, errOut)
	}
	return out
}

// writeFile writes text to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lineOf returns the 1-based line of the first line of text that is
// exactly line.
func lineOf(t *testing.T, text, line string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if l == line {
			return i + 1
		}
	}
	t.Fatalf("no line %q in\n%s", line, text)
	return 0
}

// execAll runs each statement on db.
func execAll(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// sqliteDB creates an SQLite database file with stmts and returns its path.
func sqliteDB(t *testing.T, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	execAll(t, db, stmts...)
	return path
}

var schemaSeq atomic.Int64

// pgSchema creates a fresh schema on the test PostgreSQL (skipping the
// test when there is none), runs stmts in it, and returns a base DSN whose
// search_path is that schema; the schema is dropped when the test ends.
func pgSchema(t *testing.T, stmts ...string) string {
	t.Helper()
	admin := testdb.OpenPostgres(t)
	name := fmt.Sprintf("wb_cmd_%d_%d", os.Getpid(), schemaSeq.Add(1))
	execAll(t, admin, "DROP SCHEMA IF EXISTS "+name+" CASCADE", "CREATE SCHEMA "+name)
	t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE") })
	dsn := testdb.PostgresDSN() + " search_path=" + name
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	execAll(t, db, stmts...)
	return dsn
}
