package durable

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/testdb"
)

// TestMySQLCheckpoints: MySQL's checkpoint tables take keys up to their
// VARBINARY column's length as they are and longer ones as their SHA-256;
// exceptions written by myApplied and the watermark's ON DUPLICATE KEY
// UPDATE read back through readCheckpoints and Covers.
func TestMySQLCheckpoints(t *testing.T) {
	long := strings.Repeat("k", myMaxKey+1)
	if cpKey(cpMySQL, "a") != "a" || cpKey(cpPostgres, long) != long {
		t.Error("short keys, and keys of other flavors, are stored as they are")
	}
	if h := cpKey(cpMySQL, long); !strings.HasPrefix(h, "sha256:") || len(h) > myMaxKey || h == cpKey(cpMySQL, long+"x") {
		t.Errorf("long key stored as %q", h)
	}
	db, err := sql.Open("mysql", testdb.MySQLDatabase(t, "cp", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, q := range Schema(dialect.MySQL) {
		if !strings.Contains(q, "VARBINARY") {
			t.Errorf("MySQL DDL without VARBINARY keys: %s", q)
		}
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec := func(q string, args ...any) error { _, err := db.ExecContext(ctx, q, args...); return err }
	// 'A' and 'a', 'x' and 'x ' are four keys: the default collations would make two.
	keys := []string{"A", "a", "x", "x ", cpKey(cpMySQL, long)}
	if err := myApplied(exec, "j1", "t", keys, []int64{1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	if err := myApplied(exec, "j1", "t", keys[:1], []int64{0}); err != nil { // a lower LSN changes nothing
		t.Fatal(err)
	}
	for _, lsn := range []int64{9, 8} {
		if err := exec("INSERT INTO "+checkpointTable+" (journal_id, table_name, lsn) VALUES (?, ?, ?) "+
			"ON DUPLICATE KEY UPDATE lsn = GREATEST(lsn, VALUES(lsn))", "j1", "u", lsn); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := readCheckpoints(ctx, db, dialect.MySQL, "j1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		table, key string
		lsn        uint64
		want       bool
	}{
		{"t", "A", 1, true}, {"t", "A", 2, false}, {"t", "a", 2, true}, {"t", "x ", 4, true}, {"t", "x ", 5, false},
		{"t", long, 5, true}, {"t", long, 6, false}, {"u", "any", 9, true}, {"u", "any", 10, false},
	} {
		if got := cp.Covers(c.table, c.key, c.lsn); got != c.want {
			t.Errorf("Covers(%s, %.10q, %d) = %v, want %v", c.table, c.key, c.lsn, got, c.want)
		}
	}
}
