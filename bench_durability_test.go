package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkDurability measures what the journal costs: counter updates at 8
// goroutines on PostgreSQL, all in one process:
//
//		go test -run '^$' -bench 'Durability' -benchtime 2s -count 1 .
//
//	  - pg-synccommit-on: the anchor, each UPDATE committed by PostgreSQL with
//	    synchronous_commit=on (what an application gets without writeback);
//	  - ack-disk-fsync-always: writeback acknowledging each write once its
//	    journal record is fsynced (group commit), the target being at least 3x
//	    the anchor at 8 goroutines and 5x at 64 (both run at 8 and 64, each
//	    side with a connection per goroutine at 64: poolFor);
//	  - ack-memory-*: writes acknowledged from memory, without a journal and
//	    with one under fsync no and everysec: the journal's own cost, one
//	    sub-benchmark after the other (BenchmarkJournalCost pairs them
//	    round by round, which background load moves far less).
//
// Throughput includes the final Flush, as in bench_test.go.
func BenchmarkDurability(b *testing.B) {
	const q = "UPDATE counters SET views = views + 1 WHERE id = $1"
	const g = 8
	ctx := context.Background()
	if !benchPGReachable() {
		requirePostgres(b)
	}
	pgDSN := pgSchema(b, "bdur")
	direct := benchOpen(b, "pgx", pgDSN+" synchronous_commit=on")
	benchFill(b, direct, true, "counters", benchCounterKeys)
	update := func(r *rand.Rand) error {
		_, err := direct.ExecContext(ctx, q, int64(r.IntN(benchCounterKeys)))
		return err
	}
	// checkpoint makes PostgreSQL write out what the sub-benchmark before
	// left dirty, untimed, before each one: otherwise the checkpoint the
	// anchor's WAL brings on writes during the next sub-benchmark, whose
	// fsyncs then share the disk with it.
	checkpoint := func(b *testing.B) {
		b.StopTimer()
		if _, err := direct.ExecContext(ctx, "CHECKPOINT"); err != nil {
			b.Logf("CHECKPOINT: %v (the sub-benchmarks share the disk with its writes)", err)
		}
		b.StartTimer()
	}
	for _, g := range []int{g, 64} {
		b.Run(fmt.Sprintf("pg-synccommit-on/g%d", g), func(b *testing.B) {
			checkpoint(b)
			poolFor(direct, g)
			el := benchWorkers(b, g, update, nil)
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
		})
	}
	benchPool(direct) // its idle connections back to 16: writeback's pool needs the server's slots
	journalDir := b.TempDir()
	variant := func(name, journal, ack string, g int) {
		b.Run(fmt.Sprintf("%s/g%d", name, g), func(b *testing.B) {
			rules := "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1s\n    ack: " + ack + "\n"
			if journal != "" {
				rules = fmt.Sprintf("journal:\n  path: %s\n  fsync: %s\n", filepath.Join(journalDir, fmt.Sprintf("%s-g%d", name, g)), journal) + rules
			}
			wb := openWriteback(b, "pgx", pgDSN, rules)
			poolFor(wb, g)
			checkpoint(b)
			defer func() {
				if err := wb.Close(); err != nil {
					b.Error(err)
				}
			}()
			op := func(r *rand.Rand) error {
				_, err := wb.ExecContext(ctx, q, int64(r.IntN(benchCounterKeys)))
				return err
			}
			before := benchStats(b, wb)
			el := benchWorkers(b, g, op, func() error { return Flush(ctx, wb) })
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
			after := benchStats(b, wb)
			benchRowWrites(b, before, after)
			if journal != "" {
				b.ReportMetric(float64(after.FsyncLatencyAvg.Microseconds()), "fsync-µs")
				if n := after.JournalSyncs - before.JournalSyncs; n > 0 {
					b.ReportMetric(float64(b.N)/float64(n), "writes/fsync")
				}
			}
		})
	}
	variant("ack-disk-fsync-always", "always", "disk", g)
	variant("ack-disk-fsync-always", "always", "disk", 64)
	variant("ack-memory-no-journal", "", "memory", g)
	variant("ack-memory-fsync-no", "no", "memory", g)
	variant("ack-memory-fsync-everysec", "everysec", "memory", g)
}

// poolFor sizes db's pool for g goroutines: benchPool's 16 connections, or
// one per goroutine beyond that, so that at 64 goroutines 64 statements are
// in flight on either side (PostgreSQL's group commit and the journal's
// both cover what is in flight when they sync).
func poolFor(db *sql.DB, g int) {
	benchPool(db)
	if g > 16 {
		db.SetMaxOpenConns(g)
		db.SetMaxIdleConns(g)
	}
}

// BenchmarkJournalCost measures the journal's own cost at ack: memory as
// the ack-memory variants of BenchmarkDurability do (counter updates, 8
// goroutines, 1000 keys, on PostgreSQL), but paired: two writeback pools
// are open side by side, one without a journal and one with it, and each
// round times a block of journalCostBlock updates on each, in alternating
// order. Background load on the machine then meets both sides of a ratio
// alike, where two sub-benchmarks run seconds apart may each meet a
// different load.
//
//	go test -run '^$' -bench JournalCost -benchtime 60x .
//
// x-no-journal is the median over the rounds of the journal side's
// throughput over the other's (the targets: at least 0.7 with fsync no,
// 0.67 with everysec); -min and -max are the extremes.
func BenchmarkJournalCost(b *testing.B) {
	const g = 8
	ctx := context.Background()
	if !benchPGReachable() {
		requirePostgres(b)
	}
	pgDSN := pgSchema(b, "bjcost")
	direct := benchOpen(b, "pgx", pgDSN)
	journalDir := b.TempDir()
	for _, fsync := range []string{"no", "everysec"} {
		// A table each, so that the two pools' flushes never wait for each
		// other's row locks.
		open := func(table, journal string) (*sql.DB, func(*testing.B) time.Duration) {
			benchFill(b, direct, true, table, benchCounterKeys)
			rules := "tables:\n  " + table + ":\n    mode: back\n    key: [id]\n    max_loss: 1s\n    ack: memory\n"
			if journal != "" {
				rules = fmt.Sprintf("journal:\n  path: %s\n  fsync: %s\n", journal, fsync) + rules
			}
			wb := openWriteback(b, "pgx", pgDSN, rules)
			poolFor(wb, g)
			q := "UPDATE " + table + " SET views = views + 1 WHERE id = $1"
			op := func(r *rand.Rand) error {
				_, err := wb.ExecContext(ctx, q, int64(r.IntN(benchCounterKeys)))
				return err
			}
			return wb, func(b *testing.B) time.Duration {
				el, err := runWorkers(g, journalCostBlock, op, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				return el
			}
		}
		plain, plainRound := open("jc_plain_"+fsync, "")
		logged, loggedRound := open("jc_logged_"+fsync, filepath.Join(journalDir, fsync))
		b.Run("fsync-"+fsync, func(b *testing.B) {
			benchPairedOf(b, journalCostBlock, "updates/s", loggedRound, []benchAnchor{{"no-journal", plainRound}})
		})
		for _, wb := range []*sql.DB{plain, logged} {
			if err := Flush(ctx, wb); err != nil {
				b.Fatal(err)
			}
			if err := wb.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// journalCostBlock is the number of updates in one round of each side of
// BenchmarkJournalCost: about 20 ms of work, short enough that a change of
// load rarely falls inside one round.
const journalCostBlock = 16000
