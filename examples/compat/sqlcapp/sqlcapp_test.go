package sqlcapp

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/testdb"
)

// TestGeneratedQueries runs sqlc-generated code through writeback
// unchanged: increments are buffered, RowsAffected is exact (0 for a
// missing counter), and a read sees every increment.
func TestGeneratedQueries(t *testing.T) {
	admin := testdb.OpenPostgres(t)
	schema := fmt.Sprintf("compat_sqlc_%d", os.Getpid())
	if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE; CREATE SCHEMA " + schema +
		"; CREATE TABLE " + schema + ".counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE") })
	rules := filepath.Join(t.TempDir(), "writeback.yaml")
	if err := os.WriteFile(rules, []byte("tables:\n  counters:\n    mode: back\n    key: [id]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("writeback", "driver=pgx rules="+rules+" dsn="+testdb.PostgresDSN()+" search_path="+schema)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	q := New(db)
	if err := q.CreateCounter(ctx, CreateCounterParams{ID: 1}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		n, err := q.IncrementViews(ctx, IncrementViewsParams{Views: 1, ID: 1})
		if err != nil || n != 1 {
			t.Fatalf("IncrementViews: %d, %v", n, err)
		}
	}
	if n, err := q.IncrementViews(ctx, IncrementViewsParams{Views: 1, ID: 2}); err != nil || n != 0 {
		t.Fatalf("IncrementViews of a missing counter: %d, %v; want 0", n, err)
	}
	c, err := q.GetCounter(ctx, 1)
	if err != nil || c.Views != 1000 {
		t.Fatalf("GetCounter: %+v, %v; want 1000 views", c, err)
	}
	st, err := writeback.StatsOf(db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buffered != 1001 || st.FlushedRows > 2 {
		t.Fatalf("buffered %d (want 1001), row writes %d (want at most 2)", st.Buffered, st.FlushedRows)
	}
}
