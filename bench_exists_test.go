package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// BenchmarkColdKeys is the price of exact RowsAffected (rows_affected:
// exact): a counter UPDATE on PostgreSQL whose key was never written
// through this connector costs one probe (SELECT 1 ... WHERE id = $1)
// before it is buffered. cold100 is every write to a new key, one
// goroutine: the difference between exact and assume is the probe's cost
// per cold key. cold50 is 8 goroutines, half the writes to 10 hot keys and
// half to new keys. Each run opens a fresh connector, so nothing is known
// at its start; probes/write is reported.
//
//	go test -run '^$' -bench ColdKeys -benchtime 20000x -count 1 .
func BenchmarkColdKeys(b *testing.B) {
	requirePostgres(b)
	const rows = 1_000_000
	const q = "UPDATE counters SET views = views + 1 WHERE id = $1"
	ctx := context.Background()
	dsn := pgSchema(b, "bcold")
	direct := benchOpen(b, "pgx", dsn)
	execAll(b, direct, "CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
	if _, err := direct.Exec("INSERT INTO counters SELECT g, 0 FROM generate_series(0, $1) g", rows-1); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64 // cold keys: each used once, until they run out
	coldKey := func() int64 { return benchHotKeys + next.Add(1)%(rows-benchHotKeys) }
	op := func(db *sql.DB, coldShare float64) func(r *rand.Rand) error {
		return func(r *rand.Rand) error {
			id := int64(r.IntN(benchHotKeys))
			if r.Float64() < coldShare {
				id = coldKey()
			}
			_, err := db.ExecContext(ctx, q, id)
			return err
		}
	}
	for _, w := range []struct {
		name string
		g    int
		cold float64
	}{{"cold100", 1, 1}, {"cold50", 8, 0.5}} {
		b.Run(w.name+"/direct", func(b *testing.B) {
			benchWorkers(b, w.g, op(direct, w.cold), nil)
		})
		for _, policy := range []string{"exact", "assume"} {
			b.Run(fmt.Sprintf("%s/writeback-%s", w.name, policy), func(b *testing.B) {
				db := benchWriteback(b, "pgx", dsn, benchCounterRules+"    rows_affected: "+policy+"\n")
				el := benchWorkers(b, w.g, op(db, w.cold), func() error { return Flush(ctx, db) })
				st := benchStats(b, db)
				b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
				b.ReportMetric(float64(st.Probes)/float64(b.N), "probes/write")
				if st.NoMatch != 0 || st.ProbeFailures != 0 {
					b.Fatalf("no-match %d, probe failures %d", st.NoMatch, st.ProbeFailures)
				}
			})
		}
	}
}
