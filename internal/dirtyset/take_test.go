package dirtyset

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func keysOf(rows []*Row) []any {
	ks := make([]any, len(rows))
	for i, r := range rows {
		ks[i] = r.Key()[0]
	}
	return ks
}

func TestTakeNotAllTakesOnlyEvictedAndRetryRows(t *testing.T) {
	tb := newTable(1) // one shard of one row: a second key sets the first aside
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	if b := tb.Take(false); len(b.Rows) != 0 {
		t.Fatalf("Take(false) with nothing evicted took %v", keysOf(b.Rows))
	}
	mustBuffer(t, upd(tb, int64(2), set("a", int64(2))))
	b := tb.Take(false)
	if got := keysOf(b.Rows); !slices.Equal(got, []any{int64(1)}) {
		t.Fatalf("Take(false) took %v, want the evicted row [1]", got)
	}
	b.Fail(b.Rows) // key 1 goes back as a retry row
	b.Release()
	if d := tb.Dirty(); d.N != 2 || d.Retry != 1 || d.Evicted != 0 {
		t.Fatalf("Dirty() = %+v, want 2 rows, 1 retry, 0 evicted", d)
	}
	b = tb.Take(false)
	if got := keysOf(b.Rows); !slices.Equal(got, []any{int64(1)}) {
		t.Fatalf("Take(false) took %v, want the retry row [1]", got)
	}
	b.Done(b.Rows)
	b.Release()
	if d := tb.Dirty(); d.N != 1 || d.Retry != 0 {
		t.Fatalf("Dirty() = %+v, want only the LRU row", d)
	}
	b = tb.Take(true)
	if got := keysOf(b.Rows); !slices.Equal(got, []any{int64(2)}) {
		t.Fatalf("Take(true) took %v, want [2]", got)
	}
	b.Done(b.Rows)
	b.Release()
	if p := tb.Pending(); p != 0 {
		t.Errorf("Pending = %d, want 0", p)
	}
}

func TestTakeAllTakesEverything(t *testing.T) {
	tb := newTable(16)
	for k := int64(1); k <= 12; k++ {
		mustBuffer(t, upd(tb, k, set("a", k)))
	}
	// Make one a retry row.
	b := tb.Take(true)
	if len(b.Rows) != 12 {
		t.Fatalf("Take(true) took %d rows, want 12", len(b.Rows))
	}
	var failed, done []*Row
	for _, r := range b.Rows {
		if r.Key()[0] == int64(5) {
			failed = append(failed, r)
		} else {
			done = append(done, r)
		}
	}
	b.Fail(failed)
	b.Done(done)
	b.Release()
	for k := int64(20); k < 24; k++ {
		mustBuffer(t, upd(tb, k, set("a", k)))
	}
	b = tb.Take(true)
	got := keysOf(b.Rows)
	if len(got) != 5 || got[0] != int64(5) {
		t.Fatalf("Take(true) took %v, want the retry row 5 first then 20..23", got)
	}
	slices.SortFunc(got[1:], func(a, b any) int { return int(a.(int64) - b.(int64)) })
	if !slices.Equal(got[1:], []any{int64(20), int64(21), int64(22), int64(23)}) {
		t.Errorf("took %v, want 5 then 20..23", got)
	}
	if d := tb.Dirty(); d.N != 0 {
		t.Errorf("Dirty().N = %d after a full take, want 0", d.N)
	}
	b.Done(b.Rows)
	b.Release()
	if b := tb.Take(true); len(b.Rows) != 0 {
		t.Errorf("second Take(true) took %v", keysOf(b.Rows))
	}
}

func TestTakenKeysStayBusyUntilRelease(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	b := tb.Take(true)
	if out := ins(tb, int64(1), []string{"a"}, int64(1)); out != FlushFirst {
		t.Fatalf("INSERT of a taken key: outcome %d, want FlushFirst", out)
	}
	b.Done(b.Rows)
	if out := ins(tb, int64(1), []string{"a"}, int64(1)); out != FlushFirst {
		t.Fatalf("INSERT of a key committed but not released: outcome %d, want FlushFirst", out)
	}
	b.Release()
	mustBuffer(t, ins(tb, int64(1), []string{"a"}, int64(1)))
}

func TestUpdateDuringFlushMakesNewerRow(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), add("n", int64(1))))
	b1 := tb.Take(true)
	old := b1.Rows[0]
	mustBuffer(t, upd(tb, int64(1), add("n", int64(2))))
	if v, _ := col(t, old, "n"); v != int64(1) {
		t.Fatalf("a write changed a row taken by a flush: n = %v", v)
	}
	if d := tb.Dirty(); d.N != 1 {
		t.Fatalf("Dirty().N = %d, want the newer row", d.N)
	}
	if p := tb.Pending(); p != 2 {
		t.Fatalf("Pending = %d, want 2 (one in flight, one newer)", p)
	}
	b1.Done(b1.Rows)
	b1.Release()
	wantCol(t, takeOne(t, tb), "n", int64(2), true)
}

func TestFailPutsRowsBackAheadOfNewerRows(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), add("n", int64(1))))
	mustBuffer(t, upd(tb, int64(2), add("n", int64(1))))
	b1 := tb.Take(true)
	if b1.Rows[0].Seq == b1.Rows[1].Seq {
		t.Fatalf("two rows share Seq %d", b1.Rows[0].Seq)
	}
	// Newer writes to both keys while the flush runs.
	mustBuffer(t, upd(tb, int64(1), add("n", int64(10))))
	mustBuffer(t, upd(tb, int64(2), add("n", int64(10))))
	b1.Fail(b1.Rows)
	if sn := tb.Snapshot(); !sn.Failing {
		t.Error("Snapshot().Failing = false after Fail")
	}
	b1.Release()
	// A write after the failure goes to the newer row, not the retry row.
	mustBuffer(t, upd(tb, int64(1), add("n", int64(100))))

	if d := tb.Dirty(); d.N != 4 || d.Retry != 2 {
		t.Fatalf("Dirty() = %+v, want 4 rows of which 2 retry", d)
	}
	b2 := tb.Take(true)
	if len(b2.Rows) != 4 {
		t.Fatalf("took %d rows, want 4", len(b2.Rows))
	}
	for i := 0; i < 2; i++ {
		if !slices.Contains(b1.Rows, b2.Rows[i]) {
			t.Errorf("Rows[%d] (key %v) is not a retry row: failures must come first", i, b2.Rows[i].Key())
		}
	}
	// Sorted by Compare: per key, the retry row (older Seq) first.
	rows := slices.Clone(b2.Rows)
	slices.Reverse(rows)
	slices.SortFunc(rows, Compare)
	wantN := []int64{1, 110, 1, 10}
	for i, r := range rows {
		if r.Key()[0] != int64(i/2+1) {
			t.Fatalf("sorted rows %v: row %d has key %v", keysOf(rows), i, r.Key()[0])
		}
		if v, _ := col(t, r, "n"); v != wantN[i] {
			t.Errorf("sorted row %d (key %v) n = %v, want %d", i, r.Key()[0], v, wantN[i])
		}
	}
	for i := 0; i < len(rows); i += 2 {
		if !(rows[i].Seq < rows[i+1].Seq) || Compare(rows[i], rows[i+1]) >= 0 || Compare(rows[i+1], rows[i]) <= 0 {
			t.Errorf("key %v: retry row Seq %d not ordered before newer row Seq %d", rows[i].Key()[0], rows[i].Seq, rows[i+1].Seq)
		}
	}
	if Compare(rows[0], rows[0]) != 0 {
		t.Error("Compare(r, r) != 0")
	}
	b2.Done(b2.Rows)
	b2.Release()
	if sn := tb.Snapshot(); sn.Failing || sn.Pending != 0 || sn.Bytes != 0 {
		t.Errorf("after Done: Failing %v Pending %d Bytes %d, want false 0 0", sn.Failing, sn.Pending, sn.Bytes)
	}
}

func TestWriteCoalescesIntoLoneRetryRow(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), add("n", int64(1))))
	b := tb.Take(true)
	b.Fail(b.Rows)
	// Not while the failed flush still holds the key.
	mustBuffer(t, upd(tb, int64(1), add("n", int64(2))))
	b.Release()
	if d := tb.Dirty(); d.N != 2 {
		t.Fatalf("Dirty().N = %d, want 2 (retry row and a newer row)", d.N)
	}
	b = tb.Take(true)
	if len(b.Rows) != 2 {
		t.Fatalf("took %d rows, want 2", len(b.Rows))
	}
	b.Fail(b.Rows)
	b.Release()
	// Both rows are retry rows now; the newest takes the write. During an
	// outage a key stays at a bounded number of rows.
	mustBuffer(t, upd(tb, int64(1), add("n", int64(4))))
	if d := tb.Dirty(); d.N != 2 || d.Retry != 2 {
		t.Fatalf("Dirty() = %+v, want the 2 retry rows and no new row", d)
	}
	b = tb.Take(true)
	slices.SortFunc(b.Rows, Compare)
	wantCol(t, b.Rows[0], "n", int64(1), true)
	wantCol(t, b.Rows[1], "n", int64(6), true)
	b.Done(b.Rows)
	b.Release()
}

func TestDoneDecrementsPendingAndBytes(t *testing.T) {
	sh := NewShared(1 << 30)
	tb := sh.NewTable(Config{Name: "t", MaxDirty: 8})
	other := sh.NewTable(Config{Name: "u", MaxDirty: 8})
	mustBuffer(t, upd(other, int64(1), set("a", "xyz")))
	for k := int64(1); k <= 3; k++ {
		mustBuffer(t, upd(tb, k, set("a", "value"), add("n", int64(1))))
	}
	sn := tb.Snapshot()
	if sn.Pending != 3 || sn.Bytes <= 0 {
		t.Fatalf("Pending %d Bytes %d, want 3 and positive", sn.Pending, sn.Bytes)
	}
	if sh.Bytes() != sn.Bytes+other.Snapshot().Bytes {
		t.Errorf("Shared.Bytes() = %d, want the tables' sum %d", sh.Bytes(), sn.Bytes+other.Snapshot().Bytes)
	}
	// A coalesced write that grows a value grows the bytes.
	mustBuffer(t, upd(tb, int64(1), set("a", "a much longer value than before")))
	grown := tb.Snapshot().Bytes
	if grown <= sn.Bytes {
		t.Errorf("Bytes %d -> %d after a value grew", sn.Bytes, grown)
	}
	b := tb.Take(true)
	if p := tb.Pending(); p != 3 {
		t.Errorf("Pending = %d after Take, want 3: taken rows are pending until Done", p)
	}
	b.Done(b.Rows[:1])
	if p := tb.Pending(); p != 2 {
		t.Errorf("Pending = %d after Done of one row, want 2", p)
	}
	if by := tb.Snapshot().Bytes; by >= grown || by <= 0 {
		t.Errorf("Bytes = %d after Done of one row, want between 0 and %d", by, grown)
	}
	b.Done(b.Rows[1:])
	b.Release()
	if sn := tb.Snapshot(); sn.Pending != 0 || sn.Bytes != 0 {
		t.Errorf("after Done of all: Pending %d Bytes %d, want 0 0", sn.Pending, sn.Bytes)
	}
	if sh.Bytes() != other.Snapshot().Bytes {
		t.Errorf("Shared.Bytes() = %d, want only the other table's %d", sh.Bytes(), other.Snapshot().Bytes)
	}
}

func TestApplied(t *testing.T) {
	tb := newTable(8)
	if tb.Applied() != 0 {
		t.Fatalf("Applied() = %d on a new table", tb.Applied())
	}
	tb.RaiseApplied(5)
	tb.RaiseApplied(3)
	if a := tb.Applied(); a != 5 {
		t.Errorf("Applied() = %d after raising to 5 then 3, want 5", a)
	}
	tb.RaiseApplied(9)
	if a := tb.Applied(); a != 9 {
		t.Errorf("Applied() = %d, want 9", a)
	}
	tb.SetApplied(2) // a new journal id resets it
	if a := tb.Applied(); a != 2 {
		t.Errorf("Applied() = %d after SetApplied(2), want 2", a)
	}
}

func TestUpToIsHighestLoggedLSN(t *testing.T) {
	tb := newTable(1024) // no evictions
	j := &fakeJournal{}
	var lsns []uint64
	for i := 0; i < 20; i++ {
		out, lsn := tb.Update([]any{int64(i % 7)}, []Change{add("n", int64(1))}, testNames(), j, false)
		mustBuffer(t, out)
		lsns = append(lsns, lsn)
	}
	if !slices.IsSorted(lsns) || lsns[0] != 1 || lsns[19] != 20 {
		t.Fatalf("LSNs returned %v, want 1..20", lsns)
	}
	if b := tb.Take(false); b.UpTo != 0 {
		t.Errorf("UpTo = %d on a partial take, want 0", b.UpTo)
	}
	b := tb.Take(true)
	if b.UpTo != j.last() || b.UpTo != 20 {
		t.Fatalf("UpTo = %d, want the highest LSN %d", b.UpTo, j.last())
	}
	var recs int64
	for _, r := range b.Rows {
		recs += r.Recs
		if r.MaxLSN == 0 || r.MaxLSN > b.UpTo {
			t.Errorf("row %v last LSN %d outside 1..%d", r.Key(), r.MaxLSN, b.UpTo)
		}
		if r.Key()[0] == int64(0) && (r.MaxLSN != 15 || r.Recs != 3) {
			t.Errorf("row 0: last LSN %d (%d records), want 15 (3)", r.MaxLSN, r.Recs)
		}
	}
	if recs != 20 {
		t.Errorf("rows hold %d records, want 20", recs)
	}
	if u := tb.Snapshot().JournalUnapplied; u != 20 {
		t.Errorf("JournalUnapplied = %d, want 20", u)
	}
	// Records logged while the batch is out are not covered by it.
	out, lsn := tb.Update([]any{int64(0)}, []Change{add("n", int64(1))}, testNames(), j, false)
	mustBuffer(t, out)
	if lsn != 21 {
		t.Fatalf("lsn = %d, want 21", lsn)
	}
	b.Done(b.Rows)
	b.Release()
	tb.RaiseApplied(b.UpTo)
	if u := tb.Snapshot().JournalUnapplied; u != 1 {
		t.Errorf("JournalUnapplied = %d after the batch, want 1", u)
	}
	b = tb.Take(true)
	if b.UpTo != 21 {
		t.Errorf("UpTo = %d, want 21", b.UpTo)
	}
	b.Done(b.Rows)
	b.Release()
}

func TestJournalFailureBuffersNothing(t *testing.T) {
	tb := newTable(8)
	j := &fakeJournal{}
	out, _ := tb.Update([]any{int64(1)}, []Change{add("n", int64(1))}, testNames(), j, false)
	mustBuffer(t, out)
	before := tb.Snapshot()
	j.fail = true

	// A new row.
	if out, lsn := tb.Update([]any{int64(2)}, []Change{add("n", int64(1))}, testNames(), j, false); out != JournalFailed || lsn != 0 {
		t.Fatalf("new row with a failing journal: outcome %d lsn %d, want JournalFailed 0", out, lsn)
	}
	// A write that would coalesce.
	if out, _ := tb.Update([]any{int64(1)}, []Change{add("n", int64(5)), set("m", "x")}, testNames(), j, false); out != JournalFailed {
		t.Fatalf("coalescing with a failing journal: outcome %d, want JournalFailed", out)
	}
	// An INSERT.
	if out, _ := tb.Insert([][]any{{int64(3)}, {int64(4)}}, [][]any{{int64(1)}, {int64(1)}}, []sqlparse.Ident{ident("a")}, testNames(), j, false); out != JournalFailed {
		t.Fatalf("INSERT with a failing journal: outcome %d, want JournalFailed", out)
	}
	if j.calls != 4 {
		t.Fatalf("journal called %d times, want 4", j.calls)
	}
	after := tb.Snapshot()
	if after.Pending != before.Pending || after.Bytes != before.Bytes || after.Buffered != before.Buffered || after.JournalUnapplied != before.JournalUnapplied {
		t.Errorf("a write the journal refused changed the figures: %+v -> %+v", before, after)
	}
	if d := tb.Dirty(); d.N != 1 {
		t.Errorf("Dirty().N = %d, want 1", d.N)
	}
	r := takeOne(t, tb)
	if len(r.Cols()) != 1 || r.Recs != 1 || r.Writes != 1 {
		t.Errorf("row changed by refused writes: cols %v recs %d writes %d", r.Cols(), r.Recs, r.Writes)
	}
	wantCol(t, r, "n", int64(1), true)
}

// Bounds.

func TestEvictionSetsRowsAside(t *testing.T) {
	var wakes atomic.Int64
	tb := NewShared(1 << 30).NewTable(Config{Name: "t", MaxDirty: 1, Wake: func() { wakes.Add(1) }})
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	w0 := wakes.Load()
	mustBuffer(t, upd(tb, int64(2), set("a", int64(2))))
	d := tb.Dirty()
	if d.Evicted != 1 || d.N != 2 {
		t.Fatalf("Dirty() = %+v, want 2 rows, 1 evicted", d)
	}
	if e := tb.Snapshot().Evictions; e != 1 {
		t.Errorf("Evictions = %d, want 1", e)
	}
	if wakes.Load() <= w0 {
		t.Error("Wake not called on eviction")
	}
	// An evicted row still takes writes.
	mustBuffer(t, upd(tb, int64(1), set("a", int64(10))))
	if d := tb.Dirty(); d.N != 2 || d.Evicted != 1 {
		t.Fatalf("Dirty() = %+v after a write to the evicted row, want unchanged", d)
	}
	b := tb.Take(false)
	if len(b.Rows) != 1 {
		t.Fatalf("Take(false) took %d rows, want the evicted one", len(b.Rows))
	}
	wantCol(t, b.Rows[0], "a", int64(10), false)
	b.Done(b.Rows)
	b.Release()
}

func TestPendingBoundGivesFull(t *testing.T) {
	tb := newTable(2) // pending bound 4
	for k := int64(1); k <= 4; k++ {
		mustBuffer(t, upd(tb, k, set("a", k)))
	}
	if out := upd(tb, int64(5), set("a", int64(5))); out != Full {
		t.Fatalf("fifth row with max_dirty 2: outcome %d, want Full", out)
	}
	if out := ins(tb, int64(6), []string{"a"}, int64(1)); out != Full {
		t.Fatalf("INSERT beyond the bound: outcome %d, want Full", out)
	}
	// Coalescing needs no row: still buffered.
	mustBuffer(t, upd(tb, int64(4), set("a", int64(40))))
	if p := tb.Pending(); p != 4 {
		t.Fatalf("Pending = %d, want 4", p)
	}
	// More rows than the bound in one statement could never fit.
	tb2 := newTable(2)
	out, _ := tb2.Insert([][]any{{int64(1)}, {int64(2)}, {int64(3)}, {int64(4)}, {int64(5)}}, [][]any{{nil}, {nil}, {nil}, {nil}, {nil}}, []sqlparse.Ident{ident("a")}, testNames(), nil, false)
	if out != FlushFirst {
		t.Fatalf("INSERT of 5 rows with a bound of 4: outcome %d, want FlushFirst", out)
	}
	// Room comes back when rows are committed.
	room := tb.shared.Room()
	b := tb.Take(true)
	select {
	case <-room:
		t.Fatal("Room() closed by a Take")
	default:
	}
	b.Done(b.Rows)
	select {
	case <-room:
	default:
		t.Fatal("Room() not closed after Done")
	}
	b.Release()
	mustBuffer(t, upd(tb, int64(5), set("a", int64(5))))
}

func TestByteBoundGivesFull(t *testing.T) {
	// Learn one row's size from a probe table.
	probe := newTable(8)
	mustBuffer(t, upd(probe, int64(1), set("a", int64(1))))
	size := probe.Snapshot().Bytes

	sh := NewShared(2*size + size/2) // room for two such rows
	t1 := sh.NewTable(Config{Name: "t1", MaxDirty: 100})
	t2 := sh.NewTable(Config{Name: "t2", MaxDirty: 100})
	mustBuffer(t, upd(t1, int64(1), set("a", int64(1))))
	mustBuffer(t, upd(t2, int64(1), set("a", int64(1))))
	// The bound is shared: neither table may make a third row.
	if out := upd(t1, int64(2), set("a", int64(1))); out != Full {
		t.Fatalf("t1: outcome %d, want Full", out)
	}
	if out := ins(t2, int64(2), []string{"a"}, int64(1)); out != Full {
		t.Fatalf("t2: outcome %d, want Full", out)
	}
	if p := t1.Pending(); p != 1 {
		t.Errorf("Pending = %d after Full, want 1: the refused row is not counted", p)
	}
	// A row bigger than the whole bound could never fit.
	big := make([]byte, 3*size)
	for i := range big {
		big[i] = 'x'
	}
	if out := upd(t1, int64(3), set("a", string(big))); out != FlushFirst {
		t.Fatalf("row larger than the byte bound: outcome %d, want FlushFirst", out)
	}
	room := sh.Room()
	b := t2.Take(true)
	b.Done(b.Rows)
	b.Release()
	select {
	case <-room:
	default:
		t.Fatal("Room() not closed after another table's rows were committed")
	}
	mustBuffer(t, upd(t1, int64(2), set("a", int64(1))))
}

func TestFullInflight(t *testing.T) {
	tb := newTable(1) // pending bound 2
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	mustBuffer(t, upd(tb, int64(2), set("a", int64(2))))
	b := tb.Take(true)
	if out := upd(tb, int64(1), set("a", int64(3))); out != FullInflight {
		t.Fatalf("full, key in flight: outcome %d, want FullInflight", out)
	}
	if out := upd(tb, int64(3), set("a", int64(3))); out != Full {
		t.Fatalf("full, key not in flight: outcome %d, want Full", out)
	}
	b.Done(b.Rows)
	b.Release()
	mustBuffer(t, upd(tb, int64(1), set("a", int64(3))))
}

func TestRoomSignal(t *testing.T) {
	sh := NewShared(1 << 30)
	tb := sh.NewTable(Config{Name: "t", MaxDirty: 4})
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	r1 := sh.Room()
	if r2 := sh.Room(); r1 != r2 {
		t.Error("two Room() calls before a change returned different channels")
	}
	b := tb.Take(true)
	b.Done(b.Rows)
	select {
	case <-r1:
	default:
		t.Fatal("Room() not closed after Done")
	}
	b.Release()
	r3 := sh.Room()
	select {
	case <-r3:
		t.Fatal("a fresh Room() channel is already closed")
	default:
	}
	// A refused new row (journal failure) gives its reservation back and
	// wakes waiters too.
	j := &fakeJournal{fail: true}
	if out, _ := tb.Update([]any{int64(2)}, []Change{set("a", int64(1))}, testNames(), j, false); out != JournalFailed {
		t.Fatalf("outcome %d, want JournalFailed", out)
	}
	select {
	case <-r3:
	default:
		t.Fatal("Room() not closed after a reservation was given back")
	}
}

// Figures.

func TestSnapshotFigures(t *testing.T) {
	tb := newTable(8)
	if sn := tb.Snapshot(); sn.Pending != 0 || !sn.Oldest.IsZero() || sn.Buffered != 0 {
		t.Fatalf("new table's snapshot %+v", sn)
	}
	start := time.Now()
	mustBuffer(t, upd(tb, int64(1), add("n", int64(1))))
	first := time.Now()
	mustBuffer(t, upd(tb, int64(1), add("n", int64(1))))
	mustBuffer(t, upd(tb, int64(2), add("n", int64(1))))
	mustBuffer(t, ins(tb, int64(3), []string{"n"}, int64(1)))
	mustBuffer(t, upd(tb, int64(3), set("n", int64(2))))
	if out := upd(tb, int64(3), add("m", int64(1))); out != FlushFirst { // not counted
		t.Fatalf("outcome %d, want FlushFirst", out)
	}
	sn := tb.Snapshot()
	if sn.Buffered != 5 || sn.Coalesced != 2 || sn.Pending != 3 {
		t.Errorf("Buffered %d Coalesced %d Pending %d, want 5 2 3", sn.Buffered, sn.Coalesced, sn.Pending)
	}
	if sn.Oldest.Before(start) || sn.Oldest.After(first) {
		t.Errorf("Oldest %v not the first write's time (between %v and %v)", sn.Oldest, start, first)
	}
	if d := tb.Dirty(); d.N != 3 || !d.Oldest.Equal(sn.Oldest) {
		t.Errorf("Dirty() = %+v, want 3 rows, oldest %v", d, sn.Oldest)
	}
	if tb.PendingSynced() != 3 {
		t.Errorf("PendingSynced() = %d, want 3", tb.PendingSynced())
	}
	b := tb.Take(true)
	if d := tb.Dirty(); d.N != 0 || !d.Oldest.IsZero() {
		t.Errorf("Dirty() = %+v after a full take, want none", d)
	}
	// Rows in flight are still the oldest not committed.
	if sn2 := tb.Snapshot(); !sn2.Oldest.Equal(sn.Oldest) || sn2.Pending != 3 {
		t.Errorf("during the flush: Oldest %v Pending %d, want %v 3", sn2.Oldest, sn2.Pending, sn.Oldest)
	}
	b.Done(b.Rows)
	b.Release()
	sn = tb.Snapshot()
	if sn.Pending != 0 || !sn.Oldest.IsZero() || sn.Buffered != 5 || sn.Coalesced != 2 {
		t.Errorf("after the flush: %+v, want Pending 0, no Oldest, Buffered 5, Coalesced 2", sn)
	}
	if tb.Name() != "t" {
		t.Errorf("Name() = %q", tb.Name())
	}
	if n := tb.Names(); n == nil || n.Table.Norm != "t" {
		t.Errorf("Names() = %+v, want the names of the first write", n)
	}
}

func TestMaxLossViolationCounted(t *testing.T) {
	// A negative max_loss: any pending row is past it.
	tb := NewShared(1 << 30).NewTable(Config{Name: "t", MaxDirty: 8, MaxLoss: -time.Hour, Log: quietLog()})
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	mustBuffer(t, upd(tb, int64(2), set("a", int64(1))))
	b := tb.Take(false) // nothing taken; the rows stay pending
	if len(b.Rows) != 0 {
		t.Fatalf("Take(false) took %d rows", len(b.Rows))
	}
	b.Release()
	sn := tb.Snapshot()
	if sn.MaxLossViolations != 1 || sn.OverdueSince.IsZero() {
		t.Fatalf("MaxLossViolations %d OverdueSince %v, want 1 and set", sn.MaxLossViolations, sn.OverdueSince)
	}
	// Still past it: counted once.
	b = tb.Take(false)
	b.Release()
	if v := tb.Snapshot().MaxLossViolations; v != 1 {
		t.Errorf("MaxLossViolations = %d after a second check, want 1", v)
	}
	b = tb.Take(true)
	b.Done(b.Rows)
	b.Release()
	sn = tb.Snapshot()
	if sn.MaxLossViolations != 1 || !sn.OverdueSince.IsZero() {
		t.Errorf("after the flush: MaxLossViolations %d OverdueSince %v, want 1 and zero", sn.MaxLossViolations, sn.OverdueSince)
	}
}

func TestOldestCountsRetryAndInflightRows(t *testing.T) {
	tb := newTable(1)
	mustBuffer(t, upd(tb, int64(1), set("a", int64(1))))
	since := tb.Snapshot().Oldest
	if since.IsZero() {
		t.Fatal("no Oldest with a row pending")
	}
	b := tb.Take(true)
	b.Fail(b.Rows)
	b.Release()
	if sn, d := tb.Snapshot(), tb.Dirty(); !sn.Oldest.Equal(since) || !d.Oldest.Equal(since) {
		t.Fatalf("retry row: Snapshot().Oldest %v Dirty().Oldest %v, want %v", sn.Oldest, d.Oldest, since)
	}
	// Taken again (by a partial take, as a retry row): still the oldest
	// row not committed, though no longer dirty.
	b = tb.Take(false)
	if len(b.Rows) != 1 {
		t.Fatalf("Take(false) took %d rows, want the retry row", len(b.Rows))
	}
	if sn, d := tb.Snapshot(), tb.Dirty(); !sn.Oldest.Equal(since) || !d.Oldest.IsZero() {
		t.Fatalf("retry row in flight: Snapshot().Oldest %v Dirty().Oldest %v, want %v and zero", sn.Oldest, d.Oldest, since)
	}
	b.Fail(b.Rows)
	b.Release()
	// An evicted row in flight counts the same.
	mustBuffer(t, upd(tb, int64(2), set("a", int64(1))))
	b = tb.Take(true)
	b.Done(b.Rows)
	b.Release()
	mustBuffer(t, upd(tb, int64(3), set("a", int64(1))))
	evictedSince := tb.Snapshot().Oldest
	mustBuffer(t, upd(tb, int64(4), set("a", int64(1)))) // sets 3 aside
	b = tb.Take(false)
	if len(b.Rows) != 1 || b.Rows[0].Key()[0] != int64(3) {
		t.Fatalf("Take(false) took %v, want the evicted row 3", keysOf(b.Rows))
	}
	if sn := tb.Snapshot(); !sn.Oldest.Equal(evictedSince) {
		t.Errorf("evicted row in flight: Snapshot().Oldest %v, want %v", sn.Oldest, evictedSince)
	}
	b.Done(b.Rows)
	b.Release()
	b = tb.Take(true)
	b.Done(b.Rows)
	b.Release()
	if sn := tb.Snapshot(); !sn.Oldest.IsZero() || sn.Pending != 0 {
		t.Errorf("all committed: Oldest %v Pending %d, want zero 0", sn.Oldest, sn.Pending)
	}
}

// TestKeepSetsRowsAsideUntilUnhold: rows a flush keeps for a transaction's
// lock stay pending and keep their key busy for INSERT, but no take sees
// them and they do not age the table, until Unhold puts them first again.
func TestKeepSetsRowsAsideUntilUnhold(t *testing.T) {
	tb := newTable(100)
	mustBuffer(t, upd(tb, int64(1), add("n", int64(1))))
	mustBuffer(t, upd(tb, int64(2), add("n", int64(2))))
	b := tb.Take(true)
	byK := byKey(t, b.Rows)
	b.Keep([]*Row{byK[int64(1)]})
	b.Done([]*Row{byK[int64(2)]})
	b.Release()
	if tb.Pending() != 1 {
		t.Fatalf("Pending = %d, want the kept row", tb.Pending())
	}
	if d := tb.Dirty(); d.N != 0 || !d.Oldest.IsZero() {
		t.Fatalf("Dirty = %+v: a kept row is seen", d)
	}
	if b := tb.Take(true); len(b.Rows) != 0 {
		t.Fatalf("a take saw %d kept rows", len(b.Rows))
	}
	if out := ins(tb, int64(1), []string{"n"}, int64(5)); out == Buffered {
		t.Fatal("an INSERT of a kept key was buffered")
	}
	mustBuffer(t, upd(tb, int64(1), add("n", int64(10)))) // a newer row of the key
	if !tb.Unhold() || tb.Unhold() {
		t.Fatal("Unhold did not report the kept rows once")
	}
	b = tb.Take(true)
	slices.SortFunc(b.Rows, Compare)
	if len(b.Rows) != 2 || b.Rows[0].Vals[0] != int64(1) || b.Rows[1].Vals[0] != int64(10) {
		t.Fatalf("after Unhold: %+v, want the kept row, then the newer one", b.Rows)
	}
	b.Done(b.Rows)
	b.Release()
}

// TestTakeSortOrdersAsCompare: Sort orders what a take found (LRU,
// evicted and retry rows of many shards, several rows of a key) as Compare
// does, for integer keys (sorted from the keys the take read) and text keys.
func TestTakeSortOrdersAsCompare(t *testing.T) {
	for _, text := range []bool{false, true} {
		tb := newTable(200) // 16 shards of 12 rows: a third of the keys are set aside
		key := func(i int) any {
			k := int64(i*7919%2001) - 1000
			if text {
				return fmt.Sprint("k", k)
			}
			return k
		}
		for i := 0; i < 250; i++ {
			mustBuffer(t, upd(tb, key(i), add("n", int64(1))))
		}
		b := tb.Take(false) // the rows set aside go back as retry rows
		if len(b.Rows) == 0 {
			t.Fatal("nothing was set aside")
		}
		for i := 0; i < 250; i += 3 { // newer rows of the keys in flight
			mustBuffer(t, upd(tb, key(i), add("n", int64(1))))
		}
		b.Fail(b.Rows)
		b.Release()
		b = tb.Take(true)
		want := slices.Clone(b.Rows)
		slices.SortFunc(want, Compare)
		b.Sort()
		if !slices.Equal(b.Rows, want) {
			t.Fatalf("text %v: Sort gave %v, want %v", text, keysOf(b.Rows), keysOf(want))
		}
		if len(b.Rows) <= 250 {
			t.Fatalf("text %v: took %d rows, want more than 250 (keys with a retry row and a newer one)", text, len(b.Rows))
		}
		b.Done(b.Rows)
		b.Release()
	}
}
