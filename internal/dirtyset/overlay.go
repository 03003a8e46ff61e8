package dirtyset

import (
	"slices"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file lets a read by key be answered from the database plus the
// buffer, without a flush: the read's query is rewritten to add the key's
// pending deltas to the columns it returns. It is exact only while no flush
// of the table is under way, from before the pending changes are read until
// after the database answered: a flush could commit rows the read would then
// count twice, or take rows it would then miss. Quiet and StillQuiet tell.

// Quiet reports whether no flush of the table is under way, and returns the
// epoch StillQuiet checks.
func (t *Table) Quiet() (epoch uint64, ok bool) {
	epoch = t.takes.Load()
	return epoch, t.releases.Load() == epoch
}

// StillQuiet reports whether no flush of the table started since Quiet
// returned epoch.
func (t *Table) StillQuiet(epoch uint64) bool { return t.takes.Load() == epoch }

// PendingRow returns a copy of the pending changes of the key's row: its
// columns, values and which are deltas. found is false when nothing is
// pending for the key. ok is false when the key's pending state is not one
// UPDATE row waiting in the buffer (an INSERT, a row in a flush, put back
// by a failed flush or set aside for a transaction, several generations):
// the read must then wait for the flush instead.
func (t *Table) PendingRow(keyVals []any) (cols []sqlparse.Ident, vals []any, delta []bool, found, ok bool) {
	match, set := t.keyKindsMatch(keyVals)
	if !set {
		return nil, nil, nil, false, t.pending.Load() == 0 // nothing was ever buffered
	}
	if !match {
		return nil, nil, nil, false, false
	}
	k := MakeID(keyVals)
	s := t.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.lookupLocked(k)
	if s.inflightHasLocked(k) || slices.ContainsFunc(s.retry, func(o *Row) bool { return o.ID() == k }) ||
		slices.ContainsFunc(s.held, func(o *Row) bool { return o.ID() == k }) {
		return nil, nil, nil, false, false
	}
	if r == nil {
		return nil, nil, nil, false, true
	}
	if r.Op != dialect.Update || slices.ContainsFunc(r.Fn(), func(fn dialect.ColFn) bool { return fn != dialect.FnNone }) {
		return nil, nil, nil, false, false // COALESCE, GREATEST, LEAST: not a plain sum
	}
	return slices.Clone(r.Cols()), slices.Clone(r.Vals), slices.Clone(r.Delta()), true, true
}

// Busy reports whether the key has a row in any state: pending, in a flush,
// put back or set aside. Such a key's row is going to exist in the database
// (an INSERT of it must not be buffered).
func (t *Table) Busy(keyVals []any) bool {
	if match, _ := t.keyKindsMatch(keyVals); !match {
		return false
	}
	k := MakeID(keyVals)
	s := t.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyBusyLocked(k)
}
