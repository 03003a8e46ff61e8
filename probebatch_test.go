package writeback

import (
	"context"
	"runtime"
	"sync"
	"testing"
)

// TestProbeBatch: probes that queue behind one in flight are sent as one
// query, by the first of them, and each gets its own key's answer.
func TestProbeBatch(t *testing.T) {
	for _, driverName := range []string{"sqlite3", "pgx"} {
		t.Run(driverName, func(t *testing.T) {
			p := newOraclePair(t, driverName, exactSchema, exactRules)
			tab := p.conn.buf.tables["counters"]
			b := &tab.prober
			b.Occupy(maxProbesInFlight) // as if other writers' probes were in flight
			before := tab.probes.Load()
			ids := []int64{1, 50, 2, 51, 3}
			res := make([]int64, len(ids))
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Add(1)
				go func(i int, id int64) {
					defer wg.Done()
					r, err := p.wb.Exec(p.q("UPDATE counters SET n = n + 1 WHERE id = ?"), id)
					if err != nil {
						t.Error(err)
						return
					}
					res[i], _ = r.RowsAffected()
				}(i, id)
			}
			for b.Len() < len(ids) { // every writer queued behind the probes "in flight"
				runtime.Gosched()
			}
			b.Release(1) // one probe in flight ends: the first queued leads them all
			wg.Wait()
			b.Release(maxProbesInFlight - 1) // the others "in flight" end
			if got := tab.probes.Load() - before; got != 1 {
				t.Fatalf("%d probe queries for %d keys, want 1", got, len(ids))
			}
			for i, id := range ids {
				if want := map[bool]int64{true: 1, false: 0}[id <= 3]; res[i] != want {
					t.Errorf("key %d: RowsAffected %d, want %d", id, res[i], want)
				}
			}
			p.run(t, oracleStep{query: "UPDATE counters SET n = n + 1 WHERE id = ?", args: []any{1}})
			if err := p.conn.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var sum int64
			if err := p.wb.QueryRow("SELECT SUM(n) FROM counters").Scan(&sum); err != nil {
				t.Fatal(err)
			}
			if sum != 60+3+1 {
				t.Fatalf("sum %d, want %d", sum, 60+3+1)
			}
		})
	}
}

// TestProbeBatchConcurrent: cold keys from 8 goroutines, half of them
// missing, each answered as directly, whatever the batches.
func TestProbeBatchConcurrent(t *testing.T) {
	p := newOraclePair(t, "pgx", exactSchema, exactRules)
	if _, err := p.direct.Exec("INSERT INTO counters (id) SELECT g FROM generate_series(100, 1099) g"); err != nil {
		t.Fatal(err)
	}
	// The writeback side's table gets the same rows.
	if _, err := p.wb.Exec("INSERT INTO counters (id) SELECT g FROM generate_series(100, 1099) g"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				id := int64(100 + 2*(g*250+i)) // 100..4098: half exist (up to 1099)
				r, err := p.wb.Exec("UPDATE counters SET n = n + 1 WHERE id = $1", id)
				if err != nil {
					t.Error(err)
					return
				}
				n, _ := r.RowsAffected()
				if want := map[bool]int64{true: 1, false: 0}[id <= 1099]; n != want {
					t.Errorf("key %d: RowsAffected %d, want %d", id, n, want)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	st := p.conn.Stats()
	t.Logf("2000 cold keys: %d probe queries", st.Probes)
	if err := p.conn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var sum int64
	if err := p.wb.QueryRow("SELECT SUM(n) FROM counters WHERE id >= 100").Scan(&sum); err != nil || sum != 500 {
		t.Fatalf("sum %d, %v; want 500 (the keys that exist)", sum, err)
	}
}
