package dirtyset

import (
	"slices"
	"testing"
)

// fixedJournal is a replayed record: it hands out the LSN it already has.
type fixedJournal uint64

func (j fixedJournal) Log(int) (uint64, error) { return uint64(j), nil }

// TestAdoptedRowsFlushBeforeLiveRows adopts older rows into a table that
// already has rows of the same keys: a full take writes, per key, the older
// rows first (in the order they were adopted), and the table's figures and
// LSN watermark count them.
func TestAdoptedRowsFlushBeforeLiveRows(t *testing.T) {
	live := newTable(100)
	j := &fakeJournal{next: 100}
	if out, _ := live.Update([]any{int64(1)}, []Change{add("n", int64(5))}, testNames(), j, false); out != Buffered {
		t.Fatal(out)
	}
	older := live.NewOlder()
	mustBuffer(t, func() Outcome {
		out, _ := older.Update([]any{int64(1)}, []Change{set("n", int64(3))}, testNames(), fixedJournal(7), false)
		return out
	}())
	mustBuffer(t, func() Outcome {
		out, _ := older.Update([]any{int64(2)}, []Change{add("n", int64(1))}, testNames(), fixedJournal(8), false)
		return out
	}())
	live.Adopt(older)
	// A second generation: a record that could not coalesce with the first.
	second := live.NewOlder()
	mustBuffer(t, func() Outcome {
		out, _ := second.Update([]any{int64(1)}, []Change{add("m", int64(2))}, testNames(), fixedJournal(9), false)
		return out
	}())
	live.Adopt(second)

	if got := live.Pending(); got != 4 {
		t.Fatalf("Pending = %d, want 4", got)
	}
	if d := live.Dirty(); d.Retry != 3 || d.N != 4 {
		t.Fatalf("Dirty = %+v, want 3 retry rows of 4", d)
	}
	b := live.Take(true)
	if b.UpTo != 101 {
		t.Fatalf("UpTo = %d, want the live record's LSN 101", b.UpTo)
	}
	slices.SortFunc(b.Rows, Compare)
	var got []string
	for _, r := range b.Rows {
		got = append(got, r.Cols()[0].Norm)
	}
	// key 1: SET n = 3 (lsn 7), then m + 2 (lsn 9), then the live n + 5; key 2.
	if want := []string{"n", "m", "n", "n"}; !slices.Equal(got, want) || b.Rows[0].MaxLSN != 7 || b.Rows[1].MaxLSN != 9 || b.Rows[2].MaxLSN != 101 || b.Rows[3].Key()[0] != int64(2) {
		t.Fatalf("flush order: cols %v, rows %+v", got, b.Rows)
	}
	b.Done(b.Rows)
	b.Release()
	if un := live.Snapshot().JournalUnapplied; live.Pending() != 0 || un != 0 {
		t.Fatalf("after commit: pending %d, unapplied %d", live.Pending(), un)
	}
}

// TestLiveWriteCoalescesIntoAdoptedRow: once adopted, an older row that is
// the newest of its key takes the next write, as a row put back by a
// failed flush does.
func TestLiveWriteCoalescesIntoAdoptedRow(t *testing.T) {
	live := newTable(100)
	older := live.NewOlder()
	mustBuffer(t, func() Outcome {
		out, _ := older.Update([]any{int64(1)}, []Change{add("n", int64(3))}, testNames(), fixedJournal(4), false)
		return out
	}())
	live.Adopt(older)
	mustBuffer(t, upd(live, int64(1), add("n", int64(2))))
	r := takeOne(t, live)
	wantCol(t, r, "n", int64(5), true)
}
