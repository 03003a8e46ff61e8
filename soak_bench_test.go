package writeback

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var soakFlag = flag.Duration("soak", 0, "BenchmarkSoak: how long the soak runs (default 60s when -bench names BenchmarkSoak alone)")

// soakDuration is how long BenchmarkSoak runs, or 0 to skip it: a soak is a
// minute long, so it runs only when asked for by name or with -soak.
func soakDuration() time.Duration {
	if *soakFlag > 0 {
		return *soakFlag
	}
	if f := flag.Lookup("test.bench"); f != nil {
		switch f.Value.String() {
		case "Soak", "BenchmarkSoak", "^BenchmarkSoak$", "Soak$", "^Soak$":
			return 60 * time.Second
		}
	}
	return 0
}

// BenchmarkSoak runs a mixed load (buffered deltas and inserts, reads of back
// tables, write-through inserts) through the fault proxy in front of
// PostgreSQL, with an outage (cut every connection, refuse new ones for 1-3
// s) about every 10 s. At the end it flushes and compares what was
// acknowledged with what the database holds: nothing may be lost.
//
//	go test -run '^$' -bench '^BenchmarkSoak$' -benchtime 1x            # 60 s
//	go test -run '^$' -bench '^BenchmarkSoak$' -benchtime 1x -soak 5m
func BenchmarkSoak(b *testing.B) {
	d := soakDuration()
	if d == 0 {
		b.Skip("a soak runs for a minute: name it (-bench '^BenchmarkSoak$') or give -soak DURATION")
	}
	p, viaProxy, direct := proxiedPostgres(b, "soak")
	ddb, err := sql.Open("pgx", direct)
	if err != nil {
		b.Fatal(err)
	}
	defer ddb.Close()
	const keys = 1000
	execAll(b, ddb, fmt.Sprintf(`CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL);
		INSERT INTO counters SELECT g, 0 FROM generate_series(0, %d) g;
		CREATE TABLE events (id bigint PRIMARY KEY, worker int NOT NULL, payload text);
		CREATE TABLE audit (id bigserial PRIMARY KEY, note text)`, keys-1))
	wb, _ := openWritebackWith(b, "pgx", viaProxy, `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 200ms
  events:
    mode: back
    key: [id]
    max_loss: 500ms
  audit:
    mode: through
`, WithCloseTimeout(time.Minute))

	var (
		acked                      [keys]atomic.Int64
		deltas, inserts, writeErrs atomic.Int64
		reads, readErrs            atomic.Int64
		throughOK, throughErrs     atomic.Int64
		outages                    atomic.Int64
		outageTime                 atomic.Int64 // nanoseconds
		firstWriteErr              atomic.Value
		workers                    = 8
		stop                       = make(chan struct{})
		wg                         sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				switch op := rng.IntN(100); {
				case op < 70:
					id, dv := rng.IntN(keys), int64(1+rng.IntN(5))
					if _, err := wb.ExecContext(ctx, "UPDATE counters SET n = n + $1 WHERE id = $2", dv, id); err != nil {
						writeErrs.Add(1)
						firstWriteErr.CompareAndSwap(nil, err.Error())
					} else {
						acked[id].Add(dv)
						deltas.Add(1)
					}
				case op < 90:
					if _, err := wb.ExecContext(ctx, "INSERT INTO events (id, worker, payload) VALUES ($1, $2, $3)", int64(w)<<40|int64(i), w, "e"); err != nil {
						writeErrs.Add(1)
						firstWriteErr.CompareAndSwap(nil, err.Error())
					} else {
						inserts.Add(1)
					}
				case op < 97:
					var n int64
					if err := wb.QueryRowContext(ctx, "SELECT n FROM counters WHERE id = $1", rng.IntN(keys)).Scan(&n); err != nil {
						readErrs.Add(1)
					} else {
						reads.Add(1)
					}
				default:
					if _, err := wb.ExecContext(ctx, "INSERT INTO audit (note) VALUES ($1)", "soak"); err != nil {
						throughErrs.Add(1)
					} else {
						throughOK.Add(1)
					}
				}
				cancel()
			}
		}()
	}

	// Outages: every 8-12 s, cut everything and refuse for 1-3 s. Their
	// timing is the fault being injected.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(7, 7))
		for {
			gap := time.NewTimer(8*time.Second + rand.N(4*time.Second))
			select {
			case <-stop:
				gap.Stop()
				return
			case <-gap.C:
			}
			length := time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
			end := p.outage()
			outages.Add(1)
			start := time.Now()
			over := time.NewTimer(length)
			select {
			case <-stop:
				over.Stop()
			case <-over.C:
			}
			end()
			outageTime.Add(int64(time.Since(start)))
		}
	}()

	b.ResetTimer()
	run := time.NewTimer(d)
	<-run.C
	close(stop)
	wg.Wait()
	b.StopTimer()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Flush(ctx, wb); err != nil {
		b.Fatalf("final flush: %v", err)
	}
	st, _ := StatsOf(wb)

	// lost counts writes acknowledged and not in the database; extra counts
	// row changes the database holds that were not acknowledged once (a
	// delta applied twice).
	var lost, extra int64
	rows, err := ddb.Query("SELECT id, n FROM counters")
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			b.Fatal(err)
		}
		if diff := acked[id].Load() - n; diff > 0 {
			lost += diff
		} else {
			extra -= diff
		}
	}
	rows.Close()
	var events int64
	if err := ddb.QueryRow("SELECT count(*) FROM events").Scan(&events); err != nil {
		b.Fatal(err)
	}
	if events < inserts.Load() {
		lost += inserts.Load() - events
	} else {
		extra += events - inserts.Load()
	}

	writes := deltas.Load() + inserts.Load()
	b.Logf("soak %s: writes %d acknowledged (%d deltas, %d inserts), %d refused; reads %d ok, %d failed; write-through %d ok, %d failed",
		d, writes, deltas.Load(), inserts.Load(), writeErrs.Load(), reads.Load(), readErrs.Load(), throughOK.Load(), throughErrs.Load())
	b.Logf("soak %s: outages %d (%.1f s in all), retries %d, flush errors %d, dead letters %d, lost %d, applied twice %d",
		d, outages.Load(), time.Duration(outageTime.Load()).Seconds(), st.Retries, st.FlushErrors, st.DeadLetters+st.NoMatch, lost, extra)
	b.ReportMetric(float64(writes)/d.Seconds(), "writes/s")
	b.ReportMetric(float64(outages.Load()), "outages")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(extra), "twice")
	if n := writeErrs.Load(); n != 0 {
		b.Errorf("%d write-back writes were refused (first: %v)", n, firstWriteErr.Load())
	}
	if lost != 0 || extra != 0 || st.DeadLetters+st.NoMatch != 0 {
		b.Fatalf("lost %d, applied twice %d, dead letters %d: the database does not hold what was acknowledged", lost, extra, st.DeadLetters+st.NoMatch)
	}
}
