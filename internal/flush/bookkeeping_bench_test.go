package flush

import (
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// BenchmarkBookkeeping is the flush's work outside the database for 100k
// distinct-key rows: Take, the sort by key, the grouping by shape and the
// accounting of the committed rows (Done, Release). Buffering the rows is
// not timed. It needs no database, so it is far steadier than the flush
// benchmarks on a shared machine:
//
//	go test -run '^$' -bench Bookkeeping -benchmem ./internal/flush
func BenchmarkBookkeeping(b *testing.B) {
	const n = 100_000
	names := testNames()
	cols := []sqlparse.Ident{ident("id"), ident("views")}
	for _, op := range []string{"update", "insert"} {
		b.Run(op, func(b *testing.B) {
			s := dirtyset.NewShared(1 << 40).NewTable(dirtyset.Config{Name: "t", MaxDirty: 2 * n, MaxLoss: time.Hour})
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for k := int64(0); k < n; k++ {
					var out dirtyset.Outcome
					if op == "update" {
						out, _ = s.Update([]any{k}, []dirtyset.Change{add("views", int64(1))}, names, nil, false)
					} else {
						out, _ = s.Insert([][]any{{k}}, [][]any{{k, k % 1000}}, cols, names, nil, false)
					}
					if out != dirtyset.Buffered {
						b.Fatalf("key %d: outcome %d", k, out)
					}
				}
				b.StartTimer()
				bt := s.Take(true)
				bt.Sort()
				rows := bt.Rows
				groups, _ := groupRows(rows, names, "")
				if len(groups) != 1 || len(groups[0].Rows) != n {
					b.Fatalf("%d groups", len(groups))
				}
				bt.Done(rows)
				bt.Release()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
