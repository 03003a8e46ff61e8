package natstest

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/testdb"
)

// BenchmarkReplicated compares the acknowledgment levels on hot counters
// (UPDATE ... SET n = n + 1 on 1000 rows, 8 goroutines), all in one run,
// against an embedded 3-node JetStream cluster (R=3) on this machine:
//
//		go test -run '^$' -bench Replicated -benchtime 2s ./natsjournal/natstest/
//
//	  - pg-synccommit-on: each UPDATE committed by PostgreSQL with
//	    synchronous_commit=on, the anchor;
//	  - ack-replicated: writeback acknowledging each write once JetStream
//	    stored its record on a quorum;
//	  - ack-disk-fsync-always: once the local journal fsynced it;
//	  - ack-memory-nats and ack-memory-no-journal: from memory, with the
//	    replicated journal publishing in the background, and without a
//	    journal.
//
// Throughput includes the final Flush. The ratios to the anchor and between
// the memory variants are printed at the end.
func BenchmarkReplicated(b *testing.B) {
	const g, keys = 8, 1000
	c := startCluster(b, 3)
	direct := testdb.OpenPostgres(b)
	table := counterTable(b, direct, keys)
	q := fmt.Sprintf("UPDATE %s SET n = n + 1 WHERE id = $1", table)
	rate := map[string]float64{}
	var mu sync.Mutex
	record := func(name string, n int, el time.Duration) {
		mu.Lock()
		rate[name] = float64(n) / el.Seconds()
		mu.Unlock()
	}

	sync, err := sql.Open("pgx", testdb.PostgresDSN()+" synchronous_commit=on")
	if err != nil {
		b.Fatal(err)
	}
	defer sync.Close()
	sync.SetMaxOpenConns(g)
	sync.SetMaxIdleConns(g)
	b.Run("pg-synccommit-on", func(b *testing.B) {
		el := workers(b, g, func(r *rand.Rand) error {
			_, err := sync.Exec(q, r.IntN(keys)+1)
			return err
		}, nil)
		record("pg-synccommit-on", b.N, el)
		b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
	})

	dir := b.TempDir()
	variant := func(name, journal, ack string) {
		b.Run(name, func(b *testing.B) {
			rules := fmt.Sprintf("tables:\n  %s:\n    mode: back\n    key: [id]\n    max_loss: 1s\n    rows_affected: assume\n    ack: %s\n", table, ack)
			switch journal {
			case "nats":
				rules = fmt.Sprintf("journal:\n  nats: %s\n  stream: wbbench\n  replicas: 3\n", c.URLs()) + rules
			case "file":
				rules = fmt.Sprintf("journal:\n  path: %s\n  fsync: always\n", filepath.Join(dir, name)) + rules
			}
			path := filepath.Join(dir, name+".yaml")
			if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
				b.Fatal(err)
			}
			wb := openWB(b, path, "bench-"+name)
			wb.SetMaxOpenConns(g)
			wb.SetMaxIdleConns(g)
			defer func() {
				if err := wb.Close(); err != nil {
					b.Error(err)
				}
			}()
			ctx := context.Background()
			el := workers(b, g, func(r *rand.Rand) error {
				_, err := wb.ExecContext(ctx, q, r.IntN(keys)+1)
				return err
			}, func() error { return writeback.Flush(ctx, wb) })
			record(name, b.N, el)
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
			if journal != "" {
				st, err := writeback.StatsOf(wb)
				if err == nil {
					b.ReportMetric(float64(st.FsyncLatencyAvg.Microseconds()), "ack-µs")
					if st.JournalSyncs > 0 {
						b.ReportMetric(float64(b.N)/float64(st.JournalSyncs), "records/sync")
					}
				}
			}
		})
	}
	variant("ack-replicated", "nats", "replicated")
	variant("ack-disk-fsync-always", "file", "disk")
	variant("ack-memory-nats", "nats", "memory")
	variant("ack-memory-no-journal", "", "memory")

	anchor := rate["pg-synccommit-on"]
	if anchor > 0 && rate["ack-memory-no-journal"] > 0 {
		fmt.Printf("ratios: ack-replicated/pg-synccommit-on %.1fx, ack-replicated/ack-disk-fsync-always %.2fx, ack-memory-nats/ack-memory-no-journal %.2fx\n",
			rate["ack-replicated"]/anchor, rate["ack-replicated"]/rate["ack-disk-fsync-always"], rate["ack-memory-nats"]/rate["ack-memory-no-journal"])
	}
}

// workers runs b.N calls of op over g goroutines, then end (if not nil),
// and returns the time taken.
func workers(b *testing.B, g int, op func(*rand.Rand) error, end func() error) time.Duration {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(b.N)))
			for next.Add(1) <= int64(b.N) {
				if err := op(r); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if end != nil {
		if err := end(); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return el
}
