package dirtyset

import (
	"strings"

	"github.com/writeback-go/writeback/internal/dialect"
)

// Guard is a condition an UPDATE's WHERE puts on a column of its row
// besides the key, the soft-delete shape: WHERE id = ? AND deleted_at IS
// NULL. A buffered UPDATE holds no guard: the guard is decided when the
// write is buffered, against the key's buffered row or, where that does not
// set the column, against what the caller knows of the database's row, and
// the write is buffered as a plain UPDATE or not at all.
type Guard struct {
	Col  string // the column's normalized name
	Null bool   // IS NULL; otherwise IS NOT NULL
	// Fold compares column names ignoring ASCII case (SQLite's names).
	Fold bool
}

// GuardsHold tells whether the database's row of a key satisfies an
// UPDATE's guards, as far as the caller knows: ExistYes (the row exists and
// they hold), ExistNo (no row satisfies them: missing, or a guard false),
// ExistUnknown. It is called with the key's shard lock held, so it must not
// block.
type GuardsHold func(ID) Existence

// col finds the guard's column among cols.
func (g Guard) col(cols []string) int {
	for i, c := range cols {
		if c == g.Col || g.Fold && strings.EqualFold(c, g.Col) {
			return i
		}
	}
	return -1
}

// guardsOnRow decides guards against the key's buffered row r: Buffered
// when they hold, Unmatched when one is false, Probe when a column r does
// not set leaves it to the database's row and hold does not know it,
// FlushFirst when r cannot tell (a delta on the column, an INSERT's default,
// an upsert).
func guardsOnRow(r *Row, guards []Guard, hold GuardsHold) Outcome {
	if r.Op != dialect.Update && r.Op != dialect.Insert {
		return FlushFirst
	}
	names := make([]string, len(r.Cols()))
	for i, c := range r.Cols() {
		names[i] = c.Norm
	}
	fromDB := false
	for _, g := range guards {
		i := g.col(names)
		switch {
		case i < 0 && r.Op == dialect.Insert:
			return FlushFirst // the column's default: the database's to say
		case i < 0:
			fromDB = true
		case r.Op == dialect.Update && (r.Delta()[i] || r.FnAt(i) != dialect.FnNone):
			return FlushFirst // the column's value depends on the database's
		case (r.Vals[i] == nil) != g.Null:
			return Unmatched
		}
	}
	if !fromDB {
		return Buffered
	}
	if hold == nil {
		return Probe
	}
	switch hold(r.ID()) {
	case ExistYes:
		return Buffered
	case ExistNo:
		return Unmatched
	}
	return Probe
}

// GuardCheck decides, without buffering anything, what UpdateGuarded would
// do with an UPDATE of the key with guards now: Buffered (it matches the
// row), Unmatched, Probe, FlushFirst or PassThrough. A transaction that
// holds the UPDATE until its COMMIT answers it by this.
func (t *Table) GuardCheck(keyVals []any, exists Exists, guards []Guard, hold GuardsHold) Outcome {
	if match, set := t.keyKindsMatch(keyVals); set && !match {
		return FlushFirst
	}
	k := MakeID(keyVals)
	s := t.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.lookupLocked(k)
	if r == nil && len(s.retry) > 0 {
		r = s.retryRowLocked(k)
	}
	return s.guardsLocked(k, r, exists, guards, hold)
}

// guardsLocked decides guards for key k, whose buffered row is r (nil:
// none), under the shard lock: against r, or against the database's row as
// exists and hold know it; a row of k in a flush, held or put back cannot
// tell (FlushFirst).
func (s *shard) guardsLocked(k ID, r *Row, exists Exists, guards []Guard, hold GuardsHold) Outcome {
	if r != nil {
		return guardsOnRow(r, guards, hold)
	}
	if s.keyBusyLocked(k) {
		return FlushFirst
	}
	return guardsOnNoRow(k, exists, hold)
}

// guardsOnNoRow decides guards for a key with no row buffered: the
// database's row decides, as hold knows it.
func guardsOnNoRow(k ID, exists Exists, hold GuardsHold) Outcome {
	if exists == nil || hold == nil {
		return PassThrough
	}
	switch {
	case exists(k) == ExistNo:
		return Unmatched
	case hold(k) == ExistNo:
		return Unmatched
	case hold(k) == ExistYes:
		return Buffered // the row exists, and the guards hold
	}
	return Probe
}
