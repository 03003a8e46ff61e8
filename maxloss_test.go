package writeback

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testMaxLossBound writes continuously through writeback and, from a second,
// direct connection, watches how far the database is behind the acknowledged
// writes. The lag of the oldest acknowledged write that the database does not
// show yet must stay within max_loss plus a small slack.
//
// The writers are paced to a sustained load below what the flusher can
// write (the bound holds only under such a load); a CPU-saturating load is
// the backpressure case, which is not this test's.
//
// The writer sets row 0 to a sequence number and records when each number was
// acknowledged; when the database shows number d, the oldest acknowledged
// write it lacks is d+1, and its age is the lag at that instant.
func testMaxLossBound(t *testing.T, driverName, wbDSN, directDSN string, dollar bool) {
	const maxLoss = 300 * time.Millisecond
	const slack = 250 * time.Millisecond // scheduling on a shared 2-core machine under -race
	const keys = 500
	rules := `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 300ms
`
	direct, err := sql.Open(driverName, directDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	createCounters(t, direct, keys, dollar)
	wb := openWriteback(t, driverName, wbDSN, rules)
	defer wb.Close()

	const run = 3 * time.Second
	ackAt := make([]atomic.Int64, 1<<22) // sequence → acknowledgment time (UnixNano)
	var seq atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	upd := placeholders("UPDATE counters SET n = ? WHERE id = ?", dollar)
	inc := placeholders("UPDATE counters SET n = n + 1 WHERE id = ?", dollar)
	// One writer owns row 0's sequence; others keep the table busy.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := int64(1); n < int64(len(ackAt)); n++ {
			select {
			case <-stop:
				return
			default:
			}
			if n%50 == 0 {
				time.Sleep(time.Millisecond) // pace: sustained load below flush capacity, not a CPU hog
			}
			if _, err := wb.Exec(upd, n, 0); err != nil {
				t.Error(err)
				return
			}
			ackAt[n].Store(time.Now().UnixNano())
			seq.Store(n)
		}
	}()
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
				if _, err := wb.Exec(inc, 1+(i*7+w)%(keys-1)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}

	var worst time.Duration
	samples := 0
	deadline := time.Now().Add(run)
	tick := time.NewTicker(10 * time.Millisecond)
	for time.Now().Before(deadline) {
		<-tick.C
		var d int64
		if err := direct.QueryRowContext(context.Background(), "SELECT n FROM counters WHERE id = 0").Scan(&d); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		next := d + 1
		if next < int64(len(ackAt)) && next <= seq.Load() {
			if at := ackAt[next].Load(); at != 0 {
				lag := now.Sub(time.Unix(0, at))
				worst = max(worst, lag)
			}
		}
		samples++
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	st, _ := StatsOf(wb)
	t.Logf("%d samples, worst lag %s (max_loss %s), %d writes, %d flushes", samples, worst, maxLoss, st.Buffered, st.Flushes)
	if st.Flushes < 3 {
		t.Fatalf("only %d flushes in %s: the test did not exercise the deadline", st.Flushes, run)
	}
	if worst > maxLoss+slack {
		t.Fatalf("the database was %s behind acknowledged writes; bound is max_loss %s + %s", worst, maxLoss, slack)
	}
}

func TestMaxLossBoundSQLite(t *testing.T) {
	dsn := sqliteDSN(t, "lag")
	testMaxLossBound(t, "sqlite3", dsn, dsn, false)
}

func TestMaxLossBoundPostgres(t *testing.T) {
	dsn := pgSchema(t, "lag")
	testMaxLossBound(t, "pgx", dsn, dsn, true)
}
