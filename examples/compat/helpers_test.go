package compat

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/writeback-go/writeback/internal/testdb"
)

var schemaSeq atomic.Int64

// pgSchema creates a fresh PostgreSQL schema and returns a DSN whose
// search_path points at it; the schema is dropped when the test ends.
func pgSchema(t testing.TB, prefix string) string {
	t.Helper()
	admin := testdb.OpenPostgres(t)
	name := fmt.Sprintf("compat_%s_%d_%d", prefix, os.Getpid(), schemaSeq.Add(1))
	if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE; CREATE SCHEMA " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE") })
	return testdb.PostgresDSN() + " search_path=" + name
}

// sqliteDSN is a fresh SQLite file in WAL mode with a busy timeout.
func sqliteDSN(t testing.TB, name string) string {
	t.Helper()
	return "file:" + filepath.Join(t.TempDir(), name+".db") + "?_journal_mode=WAL&_busy_timeout=10000"
}

// rulesFile writes a rules file and returns its path.
func rulesFile(t testing.TB, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "writeback.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dump returns every row of table, ordered by its first column, as text.
func dump(t testing.TB, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table + " ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
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
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		out = append(out, fmt.Sprint(vals...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}
