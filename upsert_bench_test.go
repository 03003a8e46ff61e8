package writeback

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkUpsertCounter is the upsert counter workload: INSERT ... ON
// CONFLICT (id) DO UPDATE SET views = counters.views + EXCLUDED.views over
// benchHotKeys keys (absent at first: the first upserts insert them), from 8
// goroutines, on the database directly and through writeback (max_loss 1s).
// The writeback runs end with a Flush inside the timed span, so upserts/s
// counts committed work; rowwrites/write is the database rows written per
// application upsert.
func BenchmarkUpsertCounter(b *testing.B) {
	const q = "INSERT INTO counters (id, views) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET views = counters.views + EXCLUDED.views"
	ctx := context.Background()
	const g = 8
	run := func(b *testing.B, driverName, dsn string, dollar, via bool) {
		base := benchOpen(b, driverName, dsn)
		execAll(b, base, "CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
		db := base
		if via {
			db = benchWriteback(b, driverName, dsn, benchCounterRules)
		}
		query := placeholders(q, dollar)
		op := func(r *rand.Rand) error {
			_, err := db.ExecContext(ctx, query, int64(r.IntN(benchHotKeys)), int64(1+r.IntN(3)))
			return err
		}
		var finish func() error
		var before Stats
		if via {
			finish = func() error { return Flush(ctx, db) }
			before = benchStats(b, db)
		}
		el := benchWorkers(b, g, op, finish)
		b.ReportMetric(float64(b.N)/el.Seconds(), "upserts/s")
		if via {
			after := benchStats(b, db)
			benchRowWrites(b, before, after)
			if after.PassedThrough != before.PassedThrough {
				b.Fatalf("%d upserts went through", after.PassedThrough-before.PassedThrough)
			}
		}
	}
	for _, via := range []bool{false, true} {
		name := "direct"
		if via {
			name = "writeback"
		}
		b.Run(fmt.Sprintf("pg-%s/g%d", name, g), func(b *testing.B) {
			requirePostgres(b)
			run(b, "pgx", pgSchema(b, "bups"), true, via)
		})
		b.Run(fmt.Sprintf("sqlite-%s/g%d", name, g), func(b *testing.B) {
			run(b, "sqlite3", sqliteDSN(b, "bups"), false, via)
		})
	}
}
