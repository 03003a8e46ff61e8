package dirtyset

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// Test helpers shared by this package's tests.

func ident(n string) sqlparse.Ident { return sqlparse.Ident{Norm: n, Raw: n} }

func testNames() *Names {
	return &Names{Table: ident("t"), KeyCols: []sqlparse.Ident{ident("id")}, Style: sqlparse.ParamQuestion}
}

func set(col string, v any) Change { return Change{Col: ident(col), Val: v} }
func add(col string, v any) Change { return Change{Col: ident(col), Delta: true, Val: v} }

// newTable returns a table of its own Shared with a generous byte bound.
func newTable(maxDirty int) *Table {
	return NewShared(1 << 40).NewTable(Config{Name: "t", MaxDirty: maxDirty, MaxLoss: time.Hour})
}

// upd runs an UPDATE of the row keyed key without a journal.
func upd(tb *Table, key any, changes ...Change) Outcome {
	out, _ := tb.Update([]any{key}, changes, testNames(), nil, false)
	return out
}

// ins runs a one-row INSERT of key with cols = vals (the key column is not
// among cols: the dirty set does not need it to be).
func ins(tb *Table, key any, cols []string, vals ...any) Outcome {
	ids := make([]sqlparse.Ident, len(cols))
	for i, c := range cols {
		ids[i] = ident(c)
	}
	out, _ := tb.Insert([][]any{{key}}, [][]any{vals}, ids, testNames(), nil, false)
	return out
}

// byKey indexes rows of a single-column key by that key; it fails on a key
// seen twice.
func byKey(t *testing.T, rows []*Row) map[any]*Row {
	t.Helper()
	m := map[any]*Row{}
	for _, r := range rows {
		if _, dup := m[r.Key()[0]]; dup {
			t.Fatalf("key %v taken twice in %v", r.Key()[0], rows)
		}
		m[r.Key()[0]] = r
	}
	return m
}

// takeOne takes everything, expects exactly one row, and ends the batch as
// committed.
func takeOne(t *testing.T, tb *Table) *Row {
	t.Helper()
	b := tb.Take(true)
	if len(b.Rows) != 1 {
		t.Fatalf("Take(true) returned %d rows, want 1", len(b.Rows))
	}
	b.Done(b.Rows)
	b.Release()
	return b.Rows[0]
}

// col returns the value of column name in r and whether it is a delta.
func col(t *testing.T, r *Row, name string) (any, bool) {
	t.Helper()
	i := r.colIndex(name)
	if i < 0 {
		t.Fatalf("row %v has no column %q (cols %v)", r.Key(), name, r.Cols())
	}
	delta := false
	if r.Op == dialect.Update {
		delta = r.Delta()[i]
	}
	return r.Vals[i], delta
}

func wantCol(t *testing.T, r *Row, name string, val any, delta bool) {
	t.Helper()
	v, d := col(t, r, name)
	if v != val || d != delta {
		t.Errorf("row %v column %s = %#v (delta %v), want %#v (delta %v)", r.Key(), name, v, d, val, delta)
	}
}

func mustBuffer(t *testing.T, out Outcome) {
	t.Helper()
	if out != Buffered {
		t.Fatalf("outcome %d, want Buffered", out)
	}
}

// fakeJournal hands out increasing LSNs, or fails.
type fakeJournal struct {
	mu    sync.Mutex
	next  uint64
	calls int
	rows  int
	fail  bool
}

var errJournal = errors.New("journal: disk full")

func (j *fakeJournal) Log(rows int) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.calls++
	if j.fail {
		return 0, errJournal
	}
	j.next++
	j.rows += rows
	return j.next, nil
}

func (j *fakeJournal) last() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.next
}

// Coalescing.

func TestAssignAfterAnythingIsAssign(t *testing.T) {
	for _, first := range []Change{set("a", int64(1)), add("a", int64(1))} {
		tb := newTable(8)
		mustBuffer(t, upd(tb, int64(1), first))
		mustBuffer(t, upd(tb, int64(1), set("a", int64(7))))
		r := takeOne(t, tb)
		wantCol(t, r, "a", int64(7), false)
		if r.Writes != 2 {
			t.Errorf("after %+v: Writes = %d, want 2", first, r.Writes)
		}
	}
}

func TestDeltaAfterDeltaIsSummedDelta(t *testing.T) {
	cases := []struct {
		name string
		a, b any
		sum  any
	}{
		{"int64", int64(2), int64(3), int64(5)},
		{"int64 negative", int64(2), int64(-5), int64(-3)},
		{"decimal", "1.5", "2.25", "3.75"},
		{"decimal negative", "-0.1", "0.35", "0.25"},
		{"float64", 0.5, 0.25, 0.75},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable(8)
			mustBuffer(t, upd(tb, int64(1), add("n", c.a)))
			mustBuffer(t, upd(tb, int64(1), add("n", c.b)))
			wantCol(t, takeOne(t, tb), "n", c.sum, true)
		})
	}
}

func TestDeltaAfterAssignIsAssignOfSum(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), set("n", int64(10))))
	mustBuffer(t, upd(tb, int64(1), add("n", int64(5))))
	mustBuffer(t, upd(tb, int64(1), add("n", int64(-2))))
	wantCol(t, takeOne(t, tb), "n", int64(13), false)

	// Decimal text the same way.
	tb = newTable(8)
	mustBuffer(t, upd(tb, int64(1), set("n", "10.00")))
	mustBuffer(t, upd(tb, int64(1), add("n", "0.5")))
	wantCol(t, takeOne(t, tb), "n", "10.50", false)
}

func TestDeltaOnNullStaysNull(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), set("n", nil)))
	mustBuffer(t, upd(tb, int64(1), add("n", int64(5))))
	wantCol(t, takeOne(t, tb), "n", nil, false)
}

func TestColumnsKeptSortedWhateverTheWriteOrder(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), set("b", int64(1)), add("a", int64(2))))
	mustBuffer(t, upd(tb, int64(2), add("a", int64(3)), set("b", int64(4))))
	mustBuffer(t, upd(tb, int64(3), set("c", int64(1))))
	mustBuffer(t, upd(tb, int64(3), add("a", int64(1)), set("b", int64(1)))) // c then a, b: sorted a, b, c
	b := tb.Take(true)
	m := byKey(t, b.Rows)
	for _, k := range []int64{1, 2, 3} {
		r := m[k]
		for i := 1; i < len(r.Cols()); i++ {
			if r.Cols()[i-1].Norm >= r.Cols()[i].Norm {
				t.Errorf("row %d: columns not sorted: %v", k, r.Cols())
			}
		}
	}
	if !SameShape(m[int64(1)], m[int64(2)]) {
		t.Errorf("rows writing the same columns in a different order have different shapes: %v / %v", m[int64(1)].Cols(), m[int64(2)].Cols())
	}
	if SameShape(m[int64(1)], m[int64(3)]) {
		t.Errorf("rows of different columns share a shape")
	}
	if got := m[int64(1)].Values(); len(got) != 3 || got[0] != int64(2) || got[1] != int64(1) || got[2] != int64(1) {
		t.Errorf("Values() = %v, want [2 1 1] (a, b, then the key)", got)
	}
}

func TestUpdateAfterInsertAmendsInsert(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, ins(tb, int64(1), []string{"b", "a"}, int64(10), "x"))
	mustBuffer(t, upd(tb, int64(1), add("b", int64(3))))
	mustBuffer(t, upd(tb, int64(1), set("a", "y"), set("c", int64(4))))
	r := takeOne(t, tb)
	if r.Op != dialect.Insert {
		t.Fatalf("Op = %v, want Insert", r.Op)
	}
	if r.Delta() != nil {
		t.Errorf("an INSERT row has deltas: %v", r.Delta())
	}
	wantCol(t, r, "a", "y", false)
	wantCol(t, r, "b", int64(13), false)
	wantCol(t, r, "c", int64(4), false)
	if got := r.Values(); len(got) != 3 || got[0] != "y" || got[1] != int64(13) || got[2] != int64(4) {
		t.Errorf("Values() = %v, want the insert's values [y 13 4]", got)
	}
	if r.Writes != 3 {
		t.Errorf("Writes = %d, want 3", r.Writes)
	}
}

func TestDeltaOnColumnNotInsertedFlushesFirst(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, ins(tb, int64(1), []string{"a"}, int64(1)))
	before := tb.Snapshot()
	if out := upd(tb, int64(1), add("n", int64(1))); out != FlushFirst {
		t.Fatalf("delta on a column the INSERT did not set: outcome %d, want FlushFirst", out)
	}
	// Nor is a mixed statement half applied.
	if out := upd(tb, int64(1), set("a", int64(9)), add("n", int64(1))); out != FlushFirst {
		t.Fatalf("outcome %d, want FlushFirst", out)
	}
	after := tb.Snapshot()
	if after.Buffered != before.Buffered || after.Bytes != before.Bytes {
		t.Errorf("a refused write changed the figures: %+v -> %+v", before, after)
	}
	r := takeOne(t, tb)
	if len(r.Cols()) != 1 {
		t.Fatalf("cols %v, want only a", r.Cols())
	}
	wantCol(t, r, "a", int64(1), false)
}

func TestIntOverflowAndMixedKindsFlushFirst(t *testing.T) {
	cases := []struct {
		name         string
		first, other Change
		keep         any
	}{
		{"overflow up", add("n", int64(math.MaxInt64)), add("n", int64(1)), int64(math.MaxInt64)},
		{"overflow down", add("n", int64(math.MinInt64)), add("n", int64(-1)), int64(math.MinInt64)},
		{"overflow after assign", set("n", int64(math.MaxInt64-1)), add("n", int64(2)), int64(math.MaxInt64 - 1)},
		{"int then float", add("n", int64(1)), add("n", 1.5), int64(1)},
		{"int then decimal", add("n", int64(1)), add("n", "1.5"), int64(1)},
		{"assigned text then delta", set("n", "abc"), add("n", "1"), "abc"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable(8)
			mustBuffer(t, upd(tb, int64(1), c.first))
			if out := upd(tb, int64(1), c.other); out != FlushFirst {
				t.Fatalf("outcome %d, want FlushFirst", out)
			}
			r := takeOne(t, tb)
			if v, _ := col(t, r, "n"); v != c.keep {
				t.Errorf("value %#v after a refused write, want %#v unchanged", v, c.keep)
			}
			if r.Writes != 1 {
				t.Errorf("Writes = %d, want 1", r.Writes)
			}
		})
	}
	// Summing up to the bound exactly is fine.
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), add("n", int64(math.MaxInt64-1))))
	mustBuffer(t, upd(tb, int64(1), add("n", int64(1))))
	wantCol(t, takeOne(t, tb), "n", int64(math.MaxInt64), true)
}

func TestInsertOfPendingKeyFlushesFirst(t *testing.T) {
	cols := []string{"a"}
	cases := []struct {
		name  string
		setup func(t *testing.T, tb *Table) (cleanup func())
	}{
		{"dirty update", func(t *testing.T, tb *Table) func() {
			mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
			return nil
		}},
		{"dirty insert", func(t *testing.T, tb *Table) func() {
			mustBuffer(t, ins(tb, int64(1), cols, int64(1)))
			return nil
		}},
		{"evicted", func(t *testing.T, tb *Table) func() {
			mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
			mustBuffer(t, upd(tb, int64(2), set("a", int64(1)))) // MaxDirty 1: key 1 is set aside
			if d := tb.Dirty(); d.Evicted != 1 {
				t.Fatalf("Evicted = %d, want 1", d.Evicted)
			}
			return nil
		}},
		{"in a flush", func(t *testing.T, tb *Table) func() {
			mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
			b := tb.Take(true)
			return func() { b.Done(b.Rows); b.Release() }
		}},
		{"put back after a failed flush", func(t *testing.T, tb *Table) func() {
			mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
			b := tb.Take(true)
			b.Fail(b.Rows)
			b.Release()
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable(1)
			cleanup := c.setup(t, tb)
			pending := tb.Pending()
			if out := ins(tb, int64(1), cols, int64(2)); out != FlushFirst {
				t.Fatalf("INSERT of a pending key: outcome %d, want FlushFirst", out)
			}
			// A multi-row INSERT touching the key is refused whole.
			out, _ := tb.Insert([][]any{{int64(3)}, {int64(1)}}, [][]any{{int64(1)}, {int64(1)}}, []sqlparse.Ident{ident("a")}, testNames(), nil, false)
			if out != FlushFirst {
				t.Fatalf("multi-row INSERT with a pending key: outcome %d, want FlushFirst", out)
			}
			if got := tb.Pending(); got != pending {
				t.Errorf("Pending %d -> %d after refused INSERTs", pending, got)
			}
			if cleanup != nil {
				cleanup()
			}
		})
	}
}

func TestInsertAfterCommitIsBuffered(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, ins(tb, int64(1), []string{"a"}, int64(1)))
	takeOne(t, tb)
	mustBuffer(t, ins(tb, int64(1), []string{"a"}, int64(2)))
}

func TestDuplicateKeyInOneInsertPassesThrough(t *testing.T) {
	tb := newTable(8)
	out, _ := tb.Insert([][]any{{int64(1)}, {int64(2)}, {int64(1)}}, [][]any{{int64(1)}, {int64(2)}, {int64(3)}}, []sqlparse.Ident{ident("a")}, testNames(), nil, false)
	if out != PassThrough {
		t.Fatalf("outcome %d, want PassThrough", out)
	}
	if p := tb.Pending(); p != 0 {
		t.Errorf("Pending = %d after a refused INSERT, want 0", p)
	}
	if d := tb.Dirty(); d.N != 0 {
		t.Errorf("Dirty().N = %d, want 0", d.N)
	}
	// Composite keys: ("a","b") twice is a duplicate, ("ab","") is not.
	tb = newTable(8)
	out, _ = tb.Insert([][]any{{"a", "b"}, {"ab", ""}}, [][]any{{int64(1)}, {int64(2)}}, []sqlparse.Ident{ident("v")}, testNames(), nil, false)
	mustBuffer(t, out)
	out, _ = tb.Insert([][]any{{"x", "y"}, {"x", "y"}}, [][]any{{int64(1)}, {int64(2)}}, []sqlparse.Ident{ident("v")}, testNames(), nil, false)
	if out != PassThrough {
		t.Fatalf("composite duplicate: outcome %d, want PassThrough", out)
	}
}

func TestMultiRowInsert(t *testing.T) {
	tb := newTable(8)
	j := &fakeJournal{}
	out, lsn := tb.Insert([][]any{{int64(1)}, {int64(2)}, {int64(3)}}, [][]any{{int64(10)}, {int64(20)}, {int64(30)}}, []sqlparse.Ident{ident("a")}, testNames(), j, false)
	mustBuffer(t, out)
	if j.calls != 1 || j.rows != 3 || lsn != 1 {
		t.Errorf("journal: %d calls for %d rows, lsn %d; want one record of 3 rows, lsn 1", j.calls, j.rows, lsn)
	}
	if p := tb.Pending(); p != 3 {
		t.Errorf("Pending = %d, want 3", p)
	}
	b := tb.Take(true)
	m := byKey(t, b.Rows)
	for k, want := range map[int64]int64{1: 10, 2: 20, 3: 30} {
		r := m[k]
		if r == nil {
			t.Fatalf("row %d not taken", k)
		}
		wantCol(t, r, "a", want, false)
		if r.MaxLSN != 1 || r.Recs != 1 {
			t.Errorf("row %d last LSN %d (%d records), want 1 (1)", k, r.MaxLSN, r.Recs)
		}
	}
	if sn := tb.Snapshot(); sn.JournalUnapplied != 3 {
		t.Errorf("JournalUnapplied = %d, want 3", sn.JournalUnapplied)
	}
	b.Done(b.Rows)
	b.Release()
	if sn := tb.Snapshot(); sn.JournalUnapplied != 0 {
		t.Errorf("JournalUnapplied = %d after Done, want 0", sn.JournalUnapplied)
	}
}

func TestKeyKindFixedByFirstWrite(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	if out := upd(tb, "1", set("a", int64(1))); out != FlushFirst {
		t.Fatalf("string key after int64 keys: outcome %d, want FlushFirst", out)
	}
	if out := ins(tb, "2", []string{"a"}, int64(1)); out != FlushFirst {
		t.Fatalf("INSERT of a string key after int64 keys: outcome %d, want FlushFirst", out)
	}
	out, _ := tb.Update([]any{int64(1), int64(2)}, []Change{set("a", int64(1))}, testNames(), nil, false)
	if out != FlushFirst {
		t.Fatalf("two-column key on a one-column table: outcome %d, want FlushFirst", out)
	}
	if d := tb.Dirty(); d.N != 1 {
		t.Errorf("Dirty().N = %d, want 1", d.N)
	}

	// The first write fixes it, whatever kind it is.
	tb = newTable(8)
	mustBuffer(t, upd(tb, "a", set("a", int64(1))))
	if out := upd(tb, int64(1), set("a", int64(1))); out != FlushFirst {
		t.Fatalf("int64 key after string keys: outcome %d, want FlushFirst", out)
	}

	// A key of no bufferable kind never fixes anything.
	tb = newTable(8)
	if out := upd(tb, int32(1), set("a", int64(1))); out != FlushFirst {
		t.Fatalf("int32 key: outcome %d, want FlushFirst", out)
	}
	mustBuffer(t, upd(tb, "s", set("a", int64(1))))
}

func TestClosedPassesThrough(t *testing.T) {
	sh := NewShared(1 << 30)
	tb := sh.NewTable(Config{Name: "t", MaxDirty: 8})
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	sh.Close()
	if !sh.Closed() {
		t.Fatal("Closed() = false after Close")
	}
	if out := upd(tb, int64(1), set("a", int64(2))); out != PassThrough {
		t.Errorf("coalescing UPDATE after Close: outcome %d, want PassThrough", out)
	}
	if out := upd(tb, int64(2), set("a", int64(2))); out != PassThrough {
		t.Errorf("new-row UPDATE after Close: outcome %d, want PassThrough", out)
	}
	if out := ins(tb, int64(3), []string{"a"}, int64(1)); out != PassThrough {
		t.Errorf("INSERT after Close: outcome %d, want PassThrough", out)
	}
	// What was buffered before is still there to flush, unchanged.
	wantCol(t, takeOne(t, tb), "a", int64(1), false)
}

// TestSmallFlushTeachesNoCost: a flush of a few rows is mostly its fixed
// part, so it must not set the cost per row that backpressure extrapolates
// from (after a one-row flush of 5 s, two pending rows would look past a
// max_loss of 1 s); a flush of costMinRows rows does.
func TestSmallFlushTeachesNoCost(t *testing.T) {
	sh := NewShared(1 << 30)
	tb := sh.NewTable(Config{Name: "t", MaxDirty: 1 << 20, MaxLoss: time.Second, Log: quietLog()})
	flushSlowly := func(rows int) {
		t.Helper()
		for i := 0; i < rows; i++ {
			mustBuffer(t, upd(tb, int64(i), set("a", int64(1))))
		}
		b := tb.Take(true)
		if len(b.Rows) != rows {
			t.Fatalf("took %d rows, want %d", len(b.Rows), rows)
		}
		b.start = b.start.Add(-5 * time.Second) // as if the flush had taken 5 s
		b.Done(b.Rows)
		b.Release()
	}
	newRows := func() Outcome {
		t.Helper()
		var out Outcome
		for i := 1000; i < 1000+costMinRows; i++ {
			if out, _ = tb.Update([]any{int64(i)}, []Change{set("a", int64(1))}, testNames(), nil, true); out != Buffered {
				return out
			}
		}
		return out
	}
	flushSlowly(1)
	if out := newRows(); out != Buffered {
		t.Fatalf("after a slow one-row flush, new rows: outcome %d, want Buffered", out)
	}
	b := tb.Take(true)
	b.Done(b.Rows)
	b.Release()
	flushSlowly(costMinRows) // 5 s for 64 rows: 78 ms a row, so 13 pending rows are past max_loss
	if out := newRows(); out != Throttled {
		t.Fatalf("after a slow flush of %d rows, new rows: outcome %d, want Throttled", costMinRows, out)
	}
}

func TestThrottledWhenBehindMaxLoss(t *testing.T) {
	sh := NewShared(1 << 30)
	tb := sh.NewTable(Config{Name: "t", MaxDirty: 8, MaxLoss: -time.Hour, Log: quietLog()}) // always behind once a row is pending
	out, _ := tb.Update([]any{int64(1)}, []Change{set("a", int64(1))}, testNames(), nil, true)
	mustBuffer(t, out) // nothing pending yet: not behind
	if out, _ := tb.Update([]any{int64(2)}, []Change{set("a", int64(1))}, testNames(), nil, true); out != Throttled {
		t.Fatalf("new row while behind: outcome %d, want Throttled", out)
	}
	// Coalescing makes no row: never throttled.
	if out, _ := tb.Update([]any{int64(1)}, []Change{set("a", int64(2))}, testNames(), nil, true); out != Buffered {
		t.Fatalf("coalescing while behind: outcome %d, want Buffered", out)
	}
	// Without throttle, the same write is buffered.
	mustBuffer(t, upd(tb, int64(2), set("a", int64(1))))
	// While flushes fail, waiting would not help: not throttled.
	b := tb.Take(true)
	b.Fail(b.Rows)
	b.Release()
	if out, _ := tb.Update([]any{int64(3)}, []Change{set("a", int64(1))}, testNames(), nil, true); out != Buffered {
		t.Fatalf("new row while failing: outcome %d, want Buffered", out)
	}
}

func TestWakeOnFirstDirtyRow(t *testing.T) {
	var wakes atomic.Int64
	tb := NewShared(1 << 30).NewTable(Config{Name: "t", MaxDirty: 1, Wake: func() { wakes.Add(1) }})
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	if w := wakes.Load(); w != 1 {
		t.Fatalf("wakes = %d after the first row, want 1", w)
	}
	mustBuffer(t, upd(tb, int64(1), set("a", int64(2))))
	if w := wakes.Load(); w != 1 {
		t.Errorf("wakes = %d after coalescing, want 1", w)
	}
	takeOne(t, tb)
	mustBuffer(t, upd(tb, int64(1), set("a", int64(3))))
	if w := wakes.Load(); w != 2 {
		t.Errorf("wakes = %d after the table went dirty again, want 2", w)
	}
}
