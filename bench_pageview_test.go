package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkPageView is a web request that counts a view and shows the count:
// UPDATE of the page's counter by key, then a SELECT of the same row, which
// through writeback waits at the table's barrier for the flush of the
// buffered increments (concurrent requests share it). 8 goroutines over
// 1000 pages on PostgreSQL, directly and through writeback, in one run.
//
//	go test -run '^$' -bench PageView -benchtime 3s -count 1 .
func BenchmarkPageView(b *testing.B) {
	requirePostgres(b)
	ctx := context.Background()
	dsn := pgSchema(b, "bpage")
	direct := benchOpen(b, "pgx", dsn)
	benchFill(b, direct, true, "counters", benchCounterKeys)
	wb := benchWriteback(b, "pgx", dsn, benchCounterRules)
	request := func(db *sql.DB) func(r *rand.Rand) error {
		return func(r *rand.Rand) error {
			id := int64(r.IntN(benchCounterKeys))
			if _, err := db.ExecContext(ctx, "UPDATE counters SET views = views + 1 WHERE id = $1", id); err != nil {
				return err
			}
			var views int64
			return db.QueryRowContext(ctx, "SELECT views FROM counters WHERE id = $1", id).Scan(&views)
		}
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("direct/g%d", g), func(b *testing.B) {
			el := benchWorkers(b, g, request(direct), nil)
			b.ReportMetric(float64(b.N)/el.Seconds(), "requests/s")
		})
		b.Run(fmt.Sprintf("writeback/g%d", g), func(b *testing.B) {
			before := benchStats(b, wb)
			el := benchWorkers(b, g, request(wb), func() error { return Flush(ctx, wb) })
			b.ReportMetric(float64(b.N)/el.Seconds(), "requests/s")
			benchRowWrites(b, before, benchStats(b, wb))
		})
	}
}
