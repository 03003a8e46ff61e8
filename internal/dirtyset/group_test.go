package dirtyset

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// twoTables returns two tables of one Shared.
func twoTables() (*Shared, *Table, *Table) {
	sh := NewShared(1 << 40)
	a := sh.NewTable(Config{Name: "a", MaxDirty: 64, MaxLoss: time.Hour})
	b := sh.NewTable(Config{Name: "b", MaxDirty: 64, MaxLoss: time.Hour})
	return sh, a, b
}

func groupUpdate(t *Table, key int64, j Journal, ch ...Change) *Write {
	return &Write{Table: t, Op: dialect.Update, Names: testNames(), Journal: j, Key: []any{key}, Changes: ch}
}

func groupInsert(t *Table, key int64, j Journal) *Write {
	return &Write{Table: t, Op: dialect.Insert, Names: testNames(), Journal: j,
		Keys: [][]any{{key}}, Rows: [][]any{{key, int64(1)}}, Cols: []sqlparse.Ident{ident("id"), ident("n")}}
}

func TestAdmitGroupAllOrNone(t *testing.T) {
	sh, a, b := twoTables()
	mustBuffer(t, ins(b, int64(7), []string{"n"}, int64(1))) // key 7 is busy in b: an INSERT of it cannot be buffered
	before := b.Pending()
	out, _, err := sh.AdmitGroup([]*Write{
		groupUpdate(a, 1, nil, add("n", int64(1))),
		groupInsert(b, 7, nil),
	})
	if err != nil || out != FlushFirst {
		t.Fatalf("outcome %d, %v; want FlushFirst", out, err)
	}
	if a.Pending() != 0 || b.Pending() != before {
		t.Fatalf("pending a=%d b=%d after a refused group: part of it was buffered", a.Pending(), b.Pending())
	}

	out, lsns, err := sh.AdmitGroup([]*Write{
		groupUpdate(a, 1, nil, add("n", int64(1))),
		groupInsert(b, 8, nil),
	})
	if err != nil || out != Buffered || len(lsns) != 2 {
		t.Fatalf("outcome %d, %v, lsns %v", out, err, lsns)
	}
	if a.Pending() != 1 || b.Pending() != before+1 {
		t.Fatalf("pending a=%d b=%d, want 1 and %d", a.Pending(), b.Pending(), before+1)
	}
}

func TestAdmitGroupRowTwice(t *testing.T) {
	sh, a, _ := twoTables()
	out, _, _ := sh.AdmitGroup([]*Write{
		groupUpdate(a, 1, nil, add("n", int64(1))),
		groupUpdate(a, 1, nil, add("n", int64(2))),
	})
	if out != PassThrough || a.Pending() != 0 {
		t.Fatalf("outcome %d, pending %d: a row written twice by a group must go to the database", out, a.Pending())
	}
}

func TestAdmitGroupJournal(t *testing.T) {
	sh, a, b := twoTables()
	j := &fakeJournal{}
	out, lsns, err := sh.AdmitGroup([]*Write{groupUpdate(a, 1, j, add("n", int64(1))), groupInsert(b, 2, j)})
	if out != Buffered || err != nil {
		t.Fatalf("outcome %d, %v", out, err)
	}
	if lsns[0] == 0 || lsns[1] <= lsns[0] || j.calls != 2 {
		t.Fatalf("lsns %v after %d appends: want two records in order", lsns, j.calls)
	}
	// A flush of either table makes the journal durable up to the group's
	// last record first.
	for _, tb := range []*Table{a, b} {
		batch := tb.Take(true)
		if batch.SyncTo != lsns[1] {
			t.Fatalf("table %s: SyncTo %d, want %d", tb.cfg.Name, batch.SyncTo, lsns[1])
		}
		batch.Done(batch.Rows)
		batch.Release()
	}

	// The journal refuses the second record: nothing is buffered.
	j2 := &failAfter{ok: 1}
	out, _, err = sh.AdmitGroup([]*Write{groupUpdate(a, 3, j2, add("n", int64(1))), groupInsert(b, 4, j2)})
	if out != JournalFailed || !errors.Is(err, errJournal) {
		t.Fatalf("outcome %d, %v; want JournalFailed", out, err)
	}
	if a.Pending() != 0 || b.Pending() != 0 {
		t.Fatalf("pending a=%d b=%d after the journal failed", a.Pending(), b.Pending())
	}
}

// failAfter appends ok records, then fails.
type failAfter struct {
	ok, n int
}

func (f *failAfter) Log(int) (uint64, error) {
	if f.n >= f.ok {
		return 0, errJournal
	}
	f.n++
	return uint64(100 + f.n), nil
}

func TestAdmitGroupIgnoresBounds(t *testing.T) {
	sh := NewShared(1 << 40)
	a := sh.NewTable(Config{Name: "a", MaxDirty: 1, MaxLoss: time.Hour})
	mustBuffer(t, upd(a, int64(1), add("n", int64(1))))
	mustBuffer(t, upd(a, int64(2), add("n", int64(1)))) // 2 × max_dirty: full
	if out := upd(a, int64(3), add("n", int64(1))); out != Full {
		t.Fatalf("outcome %d, want Full", out)
	}
	ws := []*Write{groupUpdate(a, 3, nil, add("n", int64(1))), groupUpdate(a, 4, nil, add("n", int64(1)))}
	if fits, never := sh.GroupFits(ws); fits || never {
		t.Fatalf("GroupFits: %v, %v on a full table", fits, never)
	}
	big := []*Write{groupUpdate(a, 5, nil), groupUpdate(a, 6, nil), groupUpdate(a, 7, nil)}
	if _, never := sh.GroupFits(big); !never {
		t.Fatal("GroupFits: three rows could fit a table of max_dirty 1")
	}
	if out, _, _ := sh.AdmitGroup(ws); out != Buffered || a.Pending() != 4 {
		t.Fatalf("outcome %d, pending %d: a group is admitted whole once let in", out, a.Pending())
	}
}

func TestAdmitGroupClosed(t *testing.T) {
	sh, a, _ := twoTables()
	sh.Close()
	if out, _, _ := sh.AdmitGroup([]*Write{groupUpdate(a, 1, nil, add("n", int64(1)))}); out != PassThrough || a.Pending() != 0 {
		t.Fatalf("outcome %d after Close", out)
	}
}

// TestAdmitGroupTakesAllOrNone races groups of two rows of one table with
// full takes: every take holds both rows of a group or neither.
func TestAdmitGroupTakesAllOrNone(t *testing.T) {
	sh := NewShared(1 << 40)
	a := sh.NewTable(Config{Name: "a", MaxDirty: 1 << 12, MaxLoss: time.Hour})
	const groups = 500
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for g := int64(0); g < groups; g++ {
			out, _, _ := sh.AdmitGroup([]*Write{
				groupUpdate(a, 2*g, nil, add("n", int64(1))),
				groupUpdate(a, 2*g+1, nil, add("n", int64(1))),
			})
			if out != Buffered {
				t.Errorf("group %d: outcome %d", g, out)
				return
			}
		}
	}()
	seen := 0
	check := func() {
		b := a.Take(true)
		keys := map[int64]bool{}
		for _, r := range b.Rows {
			keys[r.Key()[0].(int64)] = true
		}
		for k := range keys {
			if !keys[k^1] {
				t.Errorf("a take holds key %d without %d", k, k^1)
			}
		}
		seen += len(b.Rows)
		b.Done(b.Rows)
		b.Release()
	}
	for seen < 2*groups && !t.Failed() {
		check()
	}
	wg.Wait()
}
