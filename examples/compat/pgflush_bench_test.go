package compat

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/writeback-go/writeback"
)

// BenchmarkPgFlush times writeback.Flush of n dirty rows (UPDATE deltas of
// existing rows, or INSERTs of new ones) through native pgx, lib/pq (also
// with a journal), and otelsql over each. One iteration flushes once through every driver in
// turn, so the drivers are compared in the same run under the same load;
// buffering the rows is not timed. It reports each driver's milliseconds a
// flush (<driver>_ms) and its ratio to native pgx (<driver>_vs_pgx):
//
//	go test -run '^$' -bench BenchmarkPgFlush -benchtime 3x ./examples/compat
func BenchmarkPgFlush(b *testing.B) {
	admin := pgAdmin(b)
	quiet(b)
	var setups []pgSetup
	for _, s := range pgSetups(b) {
		// wb_hiddenpq takes wb_pq's path: the oracle test is enough for it.
		if s.writeback && s.name != "wb_hiddenpq" {
			setups = append(setups, s)
		}
	}
	for _, op := range []string{"update", "insert"} {
		for _, n := range []int{20_000, 100_000} {
			b.Run(fmt.Sprintf("%s_%dk", op, n/1000), func(b *testing.B) {
				pgBenchFlush(b, admin, setups, op, n)
			})
		}
	}
}

// pgBenchFlush runs b.N rounds of op on n rows through every setup.
func pgBenchFlush(b *testing.B, admin *sql.DB, setups []pgSetup, op string, n int) {
	b.StopTimer() // only the flushes are timed: ns/op is the four flushes of a round
	ctx := context.Background()
	dbs := make([]*sql.DB, len(setups))
	prefixes := make([]string, len(setups))
	for i, s := range setups {
		prefixes[i] = fmt.Sprintf("wb_bench_%d_%d", os.Getpid(), i)
		seed := n
		if op == "insert" {
			seed = 1
		}
		rules := pgTables(b, admin, prefixes[i], seed)
		dbs[i] = pgOpen(b, s, rules)
		defer dbs[i].Close()
	}
	elapsed := make([]time.Duration, len(setups))
	for round := 0; round < b.N; round++ {
		for i, db := range dbs {
			prefix := prefixes[i]
			var query string
			if op == "insert" {
				if _, err := admin.Exec("TRUNCATE " + prefix + "_events"); err != nil {
					b.Fatal(err)
				}
				query = "INSERT INTO " + prefix + "_events (id, kind, amount) VALUES ($1, $2, $3)"
			} else {
				query = "UPDATE " + prefix + "_counters SET views = views + $1 WHERE id = $2"
			}
			for k := 0; k < n; k++ {
				var err error
				if op == "insert" {
					_, err = db.ExecContext(ctx, query, int64(k), "bench", "12.50")
				} else {
					_, err = db.ExecContext(ctx, query, int64(k%7+1), int64(k))
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			before, err := writeback.StatsOf(db)
			if err != nil {
				b.Fatal(err)
			}
			if before.Dirty != n {
				b.Fatalf("%s: %d dirty rows before the flush, want %d", setups[i].name, before.Dirty, n)
			}
			b.StartTimer()
			start := time.Now()
			err = writeback.Flush(ctx, db)
			elapsed[i] += time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			after, err := writeback.StatsOf(db)
			if err != nil {
				b.Fatal(err)
			}
			if after.Dirty != 0 || after.FlushedRows-before.FlushedRows != int64(n) || after.FlushErrors != before.FlushErrors || after.NoMatch != 0 {
				b.Fatalf("%s: flush left %d dirty, wrote %d rows, %d errors, %d no match",
					setups[i].name, after.Dirty, after.FlushedRows-before.FlushedRows, after.FlushErrors-before.FlushErrors, after.NoMatch)
			}
		}
	}
	for i, s := range setups {
		name := strings.TrimPrefix(s.name, "wb_")
		ms := float64(elapsed[i].Milliseconds()) / float64(b.N)
		b.ReportMetric(ms, name+"_ms")
		if i > 0 {
			b.ReportMetric(float64(elapsed[i])/float64(elapsed[0]), name+"_vs_pgx")
		}
	}
}
