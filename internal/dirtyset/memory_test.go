package dirtyset

import (
	"math"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// The memory of buffered rows, measured: the heap a table holds for n
// distinct rows (runtime.MemStats after a GC before and after buffering
// them, with the table's max_loss long enough that nothing flushes) against
// what the table counts in its bytes, which WithMaxBufferBytes bounds.

// rowShape is one kind of buffered row: fill buffers row i of it.
type rowShape struct {
	name string
	fill func(tb testing.TB, t *Table, i int)
}

// memShapes are the rows measured: a counter (bigint key, bigint counter,
// UPDATE … SET views = views + 1) and a five-column INSERT (bigint key,
// bigint, text, double, timestamp). Values are made per row the way the
// driver hands them over (copied arguments, each key boxed apart); keys
// start at 1000 so no key is one of Go's preallocated small integers.
var memShapes = []rowShape{
	{"counter", func(tb testing.TB, t *Table, i int) {
		views := sqlparse.Ident{Norm: "views", Raw: "views"}
		out, _ := t.Update([]any{int64(1000 + i)}, []Change{{Col: views, Delta: true, Val: int64(1)}}, memNames, nil, false)
		if out != Buffered {
			tb.Fatalf("row %d: %v", i, out)
		}
	}},
	{"5col", func(tb testing.TB, t *Table, i int) {
		k := int64(1000 + i)
		row := []any{k, int64(i) * 7, "name-" + strconv.Itoa(i), float64(i) / 3, time.Unix(1700000000+int64(i), 0).UTC()}
		out, _ := t.Insert([][]any{{k}}, [][]any{row}, memCols, memNames, nil, false)
		if out != Buffered {
			tb.Fatalf("row %d: %v", i, out)
		}
	}},
}

var (
	memNames = &Names{Table: ident("t"), KeyCols: []sqlparse.Ident{ident("id")}, Style: sqlparse.ParamQuestion}
	memCols  = []sqlparse.Ident{ident("id"), ident("n"), ident("name"), ident("score"), ident("seen")}
)

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// measureRows buffers n distinct rows of shape into a fresh table and
// returns the heap they hold and the bytes the table counts for them, per
// row.
func measureRows(tb testing.TB, shape rowShape, n int) (measured, estimated float64) {
	t := NewShared(math.MaxInt64).NewTable(Config{Name: "t", MaxDirty: n, MaxLoss: time.Hour})
	before := heapInUse()
	for i := 0; i < n; i++ {
		shape.fill(tb, t, i)
	}
	after := heapInUse()
	if got := t.Pending(); got != int64(n) {
		tb.Fatalf("%d rows pending, want %d", got, n)
	}
	est := t.Snapshot().Bytes
	runtime.KeepAlive(t)
	return float64(int64(after)-int64(before)) / float64(n), float64(est) / float64(n)
}

// TestRowSizeEstimate checks that the size the dirty set counts for a
// buffered row, which WithMaxBufferBytes bounds, is within 25% of the heap
// the row holds, for a counter row and a five-column row.
func TestRowSizeEstimate(t *testing.T) {
	const n = 20000
	for _, shape := range memShapes {
		measured, estimated := measureRows(t, shape, n)
		t.Logf("%s: measured %.0f B/row, estimated %.0f B/row (%.2fx)", shape.name, measured, estimated, estimated/measured)
		if measured <= 0 {
			t.Fatalf("%s: measured %.0f B/row: the heap did not grow", shape.name, measured)
		}
		if r := estimated / measured; r < 0.75 || r > 1.25 {
			t.Errorf("%s: the estimate is %.0f B/row, the rows hold %.0f B/row (%.2fx): not within 25%%", shape.name, estimated, measured, r)
		}
	}
}

// BenchmarkRowMemory reports the heap a buffered row holds (B/row) and the
// ratio of the table's estimate to it, over 100,000 distinct rows per shape:
//
//	go test -run '^$' -bench RowMemory -benchtime 1x ./internal/dirtyset
func BenchmarkRowMemory(b *testing.B) {
	const n = 100_000
	for _, shape := range memShapes {
		b.Run(shape.name, func(b *testing.B) {
			var measured, estimated float64
			for i := 0; i < b.N; i++ {
				measured, estimated = measureRows(b, shape, n)
			}
			b.ReportMetric(measured, "B/row")
			b.ReportMetric(estimated, "est-B/row")
			b.ReportMetric(estimated/measured, "est/measured")
		})
	}
}
