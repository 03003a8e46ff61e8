package dirtyset

import (
	"errors"
	"slices"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file admits a group of writes — a committed transaction's, possibly
// to several tables — all together or not at all. Every shard any of them
// touches is locked at once, in one global order (table, then shard), so no
// other writer and no Take sees part of the group:
//
//  1. each write is tried without effect (its record's Log answers a
//     sentinel, which every write path meets only after all its checks and
//     undoes);
//  2. the records are appended to the journal, in order; one that fails
//     leaves the group without its last record, which recovery reads as
//     "none of it" (internal/durable);
//  3. each write is made with the LSN its record got; nothing can fail any
//     more: the shards are locked and the bounds do not apply (admitForce).
//
// The bounds are checked for the group as a whole before (GroupFits), not per
// write: a group must not wait with shard locks held.

// Write is one write of a group (AdmitGroup): an UPDATE (Key, Changes, and
// Guards with Hold), an INSERT (Keys, Rows, Cols) or an upsert (the INSERT's
// fields and Upd), as the table's own methods take them.
type Write struct {
	Table *Table
	Op    dialect.Op
	Names *Names
	// Journal is the write's record; nil without a journal. AdmitGroup
	// appends it before the write is made.
	Journal Journal
	Exists  Exists

	Key     []any
	Changes []Change
	Guards  []Guard
	Hold    GuardsHold

	Keys [][]any
	Rows [][]any
	Cols []sqlparse.Ident
	Upd  [][]Change
}

// errDryRun is what a write's journal answers in the trial: the write path
// reached its record, so every check passed, and it undoes what it did.
var errDryRun = errors.New("dirtyset: trial")

type dryRun struct{}

func (dryRun) Log(int) (uint64, error) { return 0, errDryRun }

// loggedAt is a Journal whose record was appended already, at lsn.
type loggedAt uint64

func (l loggedAt) Log(int) (uint64, error) { return uint64(l), nil }

// ids returns the row ids the write touches; an outcome other than Buffered
// when it cannot be buffered whatever the rows hold.
func (w *Write) ids() ([]ID, Outcome) {
	t := w.Table
	switch w.Op {
	case dialect.Update:
		if !t.CheckKey(w.Key) {
			return nil, FlushFirst
		}
		return []ID{MakeID(w.Key)}, Buffered
	case dialect.Insert:
		return t.insertIDs(w.Keys)
	case dialect.Upsert:
		return t.upsertIDs(nil, w.Keys)
	}
	return nil, PassThrough
}

// apply makes the write with its shards locked.
func (w *Write) apply(ids []ID, j Journal) (Outcome, uint64) {
	t := w.Table
	switch w.Op {
	case dialect.Update:
		s := t.shardFor(ids[0])
		return t.updateLocked(s, ids[0], w.Key, w.Changes, w.Names, j, admitForce, w.Exists, w.Guards, w.Hold)
	case dialect.Insert:
		return t.insertLocked(ids, w.Keys, w.Rows, w.Cols, w.Names, j, admitForce, w.Exists)
	}
	return t.upsertLocked(ids, w.Keys, w.Rows, w.Cols, w.Upd, w.Names, j, admitForce, nil)
}

// rows is how many rows the write's record covers.
func (w *Write) rows() int {
	if w.Op == dialect.Update {
		return 1
	}
	return len(w.Keys)
}

// GroupFits reports whether the group's new rows would fit in every table's
// bounds now (taking at most every write's rows as new); never, when they
// could not fit in an empty table either. It is advisory: the caller waits
// for room with no lock held, then AdmitGroup admits the group whole, up to
// its own size over the bounds if other writers came first.
func (sh *Shared) GroupFits(ws []*Write) (fits, never bool) {
	need := map[*Table]int64{}
	for _, w := range ws {
		need[w.Table] += int64(w.rows())
	}
	fits = sh.Bytes() < sh.maxBytes
	for t, n := range need {
		if n > t.maxPending() {
			return false, true
		}
		if t.pending.Load()+n > t.maxPending() {
			fits = false
		}
	}
	return fits, false
}

// AdmitGroup buffers every write of ws, or none. On Buffered it returns each
// write's record LSN (0 without a journal). JournalFailed means the journal
// refused a record: nothing was buffered, and err is the journal's error.
// Any other outcome is the first write's that could not be buffered (Probe,
// FlushFirst, Unmatched, PassThrough…): nothing was buffered, and the group
// must go to the database.
func (sh *Shared) AdmitGroup(ws []*Write) (out Outcome, lsns []uint64, err error) {
	ids := make([][]ID, len(ws))
	type lockKey struct {
		t *Table
		s int
	}
	type rowKey struct {
		t  *Table
		id ID
	}
	var locks []lockKey
	var seen []rowKey
	for i, w := range ws {
		var o Outcome
		if ids[i], o = w.ids(); o != Buffered {
			return o, nil, nil
		}
		for _, k := range ids[i] {
			// Each write is tried against the state before the group: two
			// writes of one row would see each other only when made.
			rk := rowKey{w.Table, k}
			if slices.Contains(seen, rk) {
				return PassThrough, nil, nil
			}
			seen = append(seen, rk)
			lk := lockKey{w.Table, w.Table.shardIndex(k)}
			if !slices.Contains(locks, lk) {
				locks = append(locks, lk)
			}
		}
	}
	// One order for every group and every Take: a table's index, then its
	// shard's.
	slices.SortFunc(locks, func(a, b lockKey) int {
		if a.t != b.t {
			return a.t.index - b.t.index
		}
		return a.s - b.s
	})
	for _, lk := range locks {
		lk.t.shards[lk.s].mu.Lock()
	}
	defer func() {
		for _, lk := range locks {
			lk.t.shards[lk.s].mu.Unlock()
		}
	}()
	if sh.closed.Load() {
		return PassThrough, nil, nil
	}
	for i, w := range ws {
		if o, _ := w.apply(ids[i], dryRun{}); o != JournalFailed {
			if o == Buffered {
				o = FlushFirst // the trial cannot end so (a write that logs nothing)
			}
			return o, nil, nil
		}
	}
	lsns = make([]uint64, len(ws))
	for i, w := range ws {
		if w.Journal == nil {
			continue
		}
		if lsns[i], err = w.Journal.Log(w.rows()); err != nil {
			return JournalFailed, nil, err
		}
	}
	var last uint64
	for i, w := range ws {
		var j Journal
		if lsns[i] != 0 {
			j = loggedAt(lsns[i])
			last = max(last, lsns[i])
		}
		if o, _ := w.apply(ids[i], j); o != Buffered {
			// Cannot happen: the trial passed under the same locks.
			panic("dirtyset: a group's write failed after its trial")
		}
	}
	if last != 0 {
		for _, lk := range locks {
			lk.t.raiseGroupLSN(last)
		}
	}
	return Buffered, lsns, nil
}

// raiseGroupLSN notes that a group whose last record is lsn has rows in the
// table: a flush of the table first makes the journal durable up to it
// (Batch.SyncTo), so the database never holds part of a group whose
// journal records a power loss could still take.
func (t *Table) raiseGroupLSN(lsn uint64) {
	for {
		cur := t.groupLSN.Load()
		if lsn <= cur || t.groupLSN.CompareAndSwap(cur, lsn) {
			return
		}
	}
}
