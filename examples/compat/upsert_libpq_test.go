package compat

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	_ "github.com/lib/pq"

	"github.com/writeback-go/writeback"
)

// TestUpsertThroughLibPQ: upsert counters buffered through writeback over
// lib/pq are flushed by its writer (one UPDATE for the keys that exist, a
// one-row upsert for the others) and every increment arrives.
func TestUpsertThroughLibPQ(t *testing.T) {
	dsn := pgSchema(t, "upq") + " sslmode=disable"
	raw, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec("CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("INSERT INTO counters VALUES (1, 100)"); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("writeback", "driver=postgres rules="+rulesFile(t, counterRules)+" dsn="+dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const q = "INSERT INTO counters (id, views) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET views = counters.views + EXCLUDED.views"
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if _, err := db.Exec(q, int64(1+i%4), 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := writeback.Flush(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	st, err := writeback.StatsOf(db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buffered != 800 || st.DeadLetters != 0 {
		t.Fatalf("buffered %d of 800, dead letters %d", st.Buffered, st.DeadLetters)
	}
	if got, want := dump(t, raw, "counters"), "1 300\n2 200\n3 200\n4 200"; got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}
}

// TestShapesThroughLibPQ: the functions a buffered UPDATE may carry —
// GREATEST, LEAST and COALESCE(c, 0) + v — are flushed through lib/pq's
// writer as such, as through pgx's: the final table is what direct
// execution gives.
func TestShapesThroughLibPQ(t *testing.T) {
	dsn := pgSchema(t, "spq") + " sslmode=disable"
	raw, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec("CREATE TABLE counters (id BIGINT PRIMARY KEY, hi BIGINT, lo BIGINT, n BIGINT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("INSERT INTO counters VALUES (1, 20, 1, NULL), (2, 10, 10, 5)"); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("writeback", "driver=postgres rules="+rulesFile(t, counterRules)+" dsn="+dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range []int64{1, 2} {
		for _, v := range []int64{3, 12, 7} {
			if _, err := db.Exec("UPDATE counters SET hi = GREATEST(hi, $1), lo = LEAST(lo, $1) WHERE id = $2", v, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec("UPDATE counters SET n = COALESCE(n, 0) + $1 WHERE id = $2", 2, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeback.Flush(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	st, err := writeback.StatsOf(db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buffered != 8 {
		t.Fatalf("buffered %d of 8 writes", st.Buffered)
	}
	if got, want := dump(t, raw, "counters"), "1 20 1 2\n2 12 3 7"; got != want {
		t.Fatalf("table:\n%s\nwant (as direct execution gives):\n%s", got, want)
	}
}
