package main

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/writeback-go/writeback/internal/inspect"
	"github.com/writeback-go/writeback/internal/testdb"
)

// TestCheckMySQL: check on MariaDB (MySQL) reads information_schema: a key
// under a case-insensitive collation is an error naming it, and the
// statements listed as buffered are written in backquotes.
func TestCheckMySQL(t *testing.T) {
	dsn := testdb.MySQLDatabase(t, "check", "")
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		"CREATE TABLE page_views (page_id BIGINT PRIMARY KEY, views BIGINT NOT NULL DEFAULT 0, title VARCHAR(20))",
		"CREATE TABLE names (code VARCHAR(20) PRIMARY KEY, n BIGINT NOT NULL)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rules := "tables:\n  page_views:\n    mode: back\n    key: page_id\n  names:\n    mode: back\n    key: code\n"
	rep := checkFixture(t, "mysql", dsn, rules, map[string][]want{
		"page_views": nil,
		"names":      {{inspect.Error, "collation", "case-insensitive collation (varchar utf8mb4_general_ci)"}},
	})
	yes, no := buffered(rep, "page_views")
	wantYes := "UPDATE by key|UPDATE by key, deltas on views|UPDATE by key guarded by title IS NULL (soft delete)|INSERT"
	// Reads by key without a flush are PostgreSQL's and SQLite's.
	if strings.Join(yes, "|") != wantYes || len(no) != 1 || no["SELECT by key, without waiting for a flush"] == "" {
		t.Errorf("page_views buffers %q, not %v; want %q, not the read by key", yes, no, wantYes)
	}
}
