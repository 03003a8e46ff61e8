package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkTransfer is a transaction of two counter UPDATEs (a transfer
// between two of 1000 rows), directly and through writeback, which buffers
// it at COMMIT as one group (all or none), from 1 and 8 goroutines on
// PostgreSQL, in one run.
//
//	go test -run '^$' -bench Transfer -benchtime 3s -count 1 .
func BenchmarkTransfer(b *testing.B) {
	requirePostgres(b)
	ctx := context.Background()
	dsn := pgSchema(b, "btx")
	direct := benchOpen(b, "pgx", dsn)
	benchFill(b, direct, true, "counters", benchCounterKeys)
	wb := benchWriteback(b, "pgx", dsn, benchCounterRules)
	transfer := func(db *sql.DB) func(r *rand.Rand) error {
		return func(r *rand.Rand) error {
			from := int64(r.IntN(benchCounterKeys))
			to := (from + 1 + int64(r.IntN(benchCounterKeys-1))) % benchCounterKeys
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE counters SET views = views - 1 WHERE id = $1", from); err != nil {
				_ = tx.Rollback()
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE counters SET views = views + 1 WHERE id = $1", to); err != nil {
				_ = tx.Rollback()
				return err
			}
			return tx.Commit()
		}
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("direct/g%d", g), func(b *testing.B) {
			el := benchWorkers(b, g, transfer(direct), nil)
			b.ReportMetric(float64(b.N)/el.Seconds(), "tx/s")
		})
		b.Run(fmt.Sprintf("writeback/g%d", g), func(b *testing.B) {
			before := benchStats(b, wb)
			el := benchWorkers(b, g, transfer(wb), func() error { return Flush(ctx, wb) })
			b.ReportMetric(float64(b.N)/el.Seconds(), "tx/s")
			if st := benchStats(b, wb); st.Buffered-before.Buffered < int64(2*b.N) {
				b.Fatalf("buffered %d writes of %d transactions", st.Buffered-before.Buffered, b.N)
			}
		})
	}
}
