package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// testConcurrentDeltas hammers a back table from many goroutines with
// deltas, reads (barriers), transactions and Flush calls at once, over a
// small LRU so rows are also evicted, and checks that the table ends with
// exactly the sum of the acknowledged deltas: nothing lost, nothing doubled.
func testConcurrentDeltas(t *testing.T, driverName, dsn string, dollar bool) {
	const keys, workers, perWorker = 50, 8, 1500
	wb := openWritebackDeferred(t, driverName, dsn, `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 20ms
    max_dirty: 16
`)
	defer wb.Close()
	execAll(t, wb, "CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
	for i := 0; i < keys; i++ {
		mustExec(t, wb, placeholders("INSERT INTO counters (id, views) VALUES (?, 0)", dollar), i)
	}
	upd := placeholders("UPDATE counters SET views = views + ? WHERE id = ?", dollar)
	sel := placeholders("SELECT views FROM counters WHERE id = ?", dollar)
	var mu sync.Mutex
	want := make([]int64, keys)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 99))
			ctx := context.Background()
			for i := 0; i < perWorker; i++ {
				id := r.IntN(keys)
				d := r.Int64N(10) + 1
				var err error
				switch p := r.IntN(100); {
				case p < 85:
					_, err = wb.ExecContext(ctx, upd, d, id)
				case p < 93:
					// A read through another pooled connection must see at
					// least every delta this goroutine has had acknowledged.
					mu.Lock()
					low := want[id]
					mu.Unlock()
					var v int64
					if err = wb.QueryRowContext(ctx, sel, id).Scan(&v); err == nil {
						if v < low {
							err = fmt.Errorf("read %d of row %d, below the %d acknowledged before the read", v, id, low)
						}
					}
					d = 0
				case p < 97:
					var tx *sql.Tx
					if tx, err = wb.BeginTx(ctx, nil); err == nil {
						if _, err = tx.ExecContext(ctx, upd, d, id); err == nil {
							err = tx.Commit()
						} else {
							_ = tx.Rollback()
						}
					}
				default:
					err = Flush(ctx, wb)
					d = 0
				}
				if err != nil {
					errs <- err
					return
				}
				if d != 0 {
					mu.Lock()
					want[id] += d
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	rows, err := wb.Query("SELECT id, views FROM counters ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		if v != want[id] {
			t.Errorf("row %d: %d in the database, %d acknowledged", id, v, want[id])
		}
		n++
	}
	if n != keys {
		t.Fatalf("%d rows, want %d", n, keys)
	}
	st, _ := StatsOf(wb)
	t.Logf("buffered %d, coalesced %d, flushes %d, rows flushed %d, evictions %d, barriers %d", st.Buffered, st.Coalesced, st.Flushes, st.FlushedRows, st.Evictions, st.Barriers)
	if st.Evictions == 0 || st.Coalesced == 0 {
		t.Fatalf("the test did not exercise eviction and coalescing: %+v", st)
	}
}

func TestConcurrentDeltasSQLite(t *testing.T) {
	testConcurrentDeltas(t, "sqlite3", sqliteDSN(t, "conc"), false)
}

func TestConcurrentDeltasPostgres(t *testing.T) {
	testConcurrentDeltas(t, "pgx", pgSchema(t, "conc"), true)
}
