package dirtyset

import (
	"slices"
	"sort"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
	"github.com/writeback-go/writeback/internal/value"
)

// This file coalesces upserts. A dirty row of Op dialect.Upsert means "insert
// the row Cols/Vals if its key is absent, else apply the update part
// UCols/UVals/UDelta to the existing row". Writes to one key compose into one
// such row:
//
//   - upsert (I2, U2) after upsert (I1, U1): absent, the first inserts I1
//     and the second updates it; present, both update. So (U2 applied to
//     I1, U1 then U2).
//   - plain UPDATE U2 after upsert (I1, U1): the row exists after the
//     upsert, whichever part ran: (U2 applied to I1, U1 then U2).
//   - upsert (I2, U2) after a buffered INSERT I1: the row exists, so the
//     update part applies to the inserted row, which stays an INSERT.
//   - upsert after a buffered UPDATE: whether the UPDATE matched a row is
//     the database's to say, so the table is flushed first.
//
// "U2 applied to I" needs the value of every column a delta of U2 adds to:
// a delta on a column the insert part leaves to its default cannot be
// coalesced (the default is the database's), nor can a sum that does not fit.

// colVals is one part of a row: its sorted columns and values, and for an
// update part which of them are deltas (nil for an insert part).
type colVals struct {
	cols  []sqlparse.Ident
	vals  []any
	delta []bool
	upd   bool
}

// plan computes into next (len(changes)) the values changes leave in the
// part, without touching it; false when that is not exact.
func (p *colVals) plan(changes []Change, next []any) bool {
	for i, ch := range changes {
		j := p.index(ch.Col.Norm)
		switch {
		case !ch.Delta:
			next[i] = ch.Val
		case j < 0:
			if !p.upd {
				return false // the inserted row's default for this column is unknown here
			}
			next[i] = ch.Val
		default:
			sum, ok := value.Add(p.vals[j], ch.Val)
			if !ok {
				return false
			}
			next[i] = sum
		}
	}
	return true
}

// commit applies changes with the values plan computed.
func (p *colVals) commit(changes []Change, next []any) {
	for i, ch := range changes {
		j := p.index(ch.Col.Norm)
		if j < 0 {
			k := sort.Search(len(p.cols), func(k int) bool { return p.cols[k].Norm >= ch.Col.Norm })
			p.cols = slices.Insert(p.cols, k, ch.Col)
			p.vals = slices.Insert(p.vals, k, next[i])
			if p.upd {
				p.delta = slices.Insert(p.delta, k, ch.Delta)
			}
			continue
		}
		p.vals[j] = next[i]
		if p.upd {
			p.delta[j] = ch.Delta && p.delta[j]
		}
	}
}

func (p *colVals) index(norm string) int {
	for i := range p.cols {
		if p.cols[i].Norm == norm {
			return i
		}
	}
	return -1
}

// insertPart and updatePart are views of an upsert row's two parts.
func (r *Row) insertPart() colVals { return colVals{cols: r.Cols, vals: r.Vals} }
func (r *Row) updatePart() colVals {
	return colVals{cols: r.UCols, vals: r.UVals, delta: r.UDelta, upd: true}
}

// setParts stores the parts back and returns by how much the row grew.
func (r *Row) setParts(ins, upd colVals) (grew int64) {
	before := r.size
	r.Cols, r.Vals = ins.cols, ins.vals
	r.UCols, r.UVals, r.UDelta = upd.cols, upd.vals, upd.delta
	r.size = rowSize(r)
	return r.size - before
}

// planUpsertInto checks that an update (the update part of an upsert, or a
// plain UPDATE) coalesces into the dirty row r and returns what commits it;
// nil when it does not.
func planUpsertInto(r *Row, changes []Change) func() (grew int64) {
	switch r.Op {
	case dialect.Insert:
		next := make([]any, len(changes))
		if !r.planUpdate(changes, next) {
			return nil
		}
		return func() int64 { return r.commitUpdate(changes, next) }
	case dialect.Upsert:
		ins, upd := r.insertPart(), r.updatePart()
		nextIns, nextUpd := make([]any, len(changes)), make([]any, len(changes))
		if !ins.plan(changes, nextIns) || !upd.plan(changes, nextUpd) {
			return nil
		}
		return func() int64 {
			// In place: no flush reads a row that can be coalesced into.
			ins.commit(changes, nextIns)
			upd.commit(changes, nextUpd)
			r.Writes++
			return r.setParts(ins, upd)
		}
	}
	return nil
}

// Upsert buffers the rows of one upsert, all or none: keys[i], the inserted
// row rows[i] (values of cols) and its update part upd[i] (EXCLUDED already
// resolved to the row's own values). No key may repeat within the statement.
// The shards involved are locked together, in index order; rows for keys
// with no dirty row are new and subject to the bounds.
func (t *Table) Upsert(keys [][]any, rows [][]any, cols []sqlparse.Ident, upd [][]Change, names *Names, j Journal, throttle bool) (Outcome, uint64) {
	rk := make([]ID, len(keys))
	for i, kv := range keys {
		if !t.CheckKey(kv) {
			return FlushFirst, 0
		}
		rk[i] = MakeID(kv)
		if slices.Contains(rk[:i], rk[i]) {
			return PassThrough, 0 // PostgreSQL refuses a row affected twice; SQLite runs them in turn
		}
	}
	unlock := t.lockShardsOf(rk)
	defer unlock()
	if t.shared.closed.Load() {
		return PassThrough, 0
	}
	commits := make([]func() int64, len(keys))
	var made []*Row
	var size int64
	now := time.Now()
	inflight := false
	for i, k := range rk {
		s := t.shardFor(k)
		r := s.lookupLocked(k)
		if r == nil && len(s.retry) > 0 {
			r = s.retryRowLocked(k)
		}
		if r != nil {
			if commits[i] = planUpsertInto(r, upd[i]); commits[i] == nil {
				return FlushFirst, 0
			}
			continue
		}
		inflight = inflight || s.inflightHasLocked(k)
		n := &Row{id: k, sh: s, Key: keys[i], Op: dialect.Upsert, Since: now, Writes: 1}
		for j, c := range cols {
			n.insertCol(c, rows[i][j], false)
		}
		u := colVals{upd: true}
		next := make([]any, len(upd[i]))
		u.plan(upd[i], next) // into an empty update part: always true
		u.commit(upd[i], next)
		n.UCols, n.UVals, n.UDelta = u.cols, u.vals, u.delta
		n.size = rowSize(n)
		size += n.size
		made = append(made, n)
	}
	if len(made) > 0 {
		if out := t.admit(len(made), size, now, throttle); out != Buffered {
			if out == Full && inflight {
				return FullInflight, 0
			}
			return out, 0
		}
	}
	lsn, err := t.logLocked(j, len(keys))
	if err != nil {
		if len(made) > 0 {
			t.unadmit(len(made), size)
		}
		return JournalFailed, 0
	}
	for i, c := range commits {
		if c == nil {
			continue
		}
		r := t.shardFor(rk[i]).lookupOrRetryLocked(rk[i])
		if grew := c(); grew != 0 {
			t.bytes.Add(grew) // coalescing is always admitted: it makes no new row
		}
		r.noteLSN(lsn)
		r.sh.buffered++
		r.sh.coalesced++
	}
	for _, r := range made {
		r.Seq = t.rowSeq.Add(1)
		r.noteLSN(lsn)
		r.sh.addLocked(r, now)
	}
	t.noteNames(names)
	return Buffered, lsn
}

// lookupOrRetryLocked finds the row a write to k coalesces into.
func (s *shard) lookupOrRetryLocked(k ID) *Row {
	if r := s.lookupLocked(k); r != nil {
		return r
	}
	return s.retryRowLocked(k)
}

// coalesceUpsertLocked merges a plain UPDATE into the key's upsert row r.
func (t *Table) coalesceUpsertLocked(s *shard, r *Row, changes []Change, j Journal) (Outcome, uint64) {
	commit := planUpsertInto(r, changes)
	if commit == nil {
		return FlushFirst, 0
	}
	lsn, err := t.logLocked(j, 1)
	if err != nil {
		return JournalFailed, 0
	}
	if grew := commit(); grew != 0 {
		t.bytes.Add(grew)
	}
	r.noteLSN(lsn)
	s.buffered++
	s.coalesced++
	return Buffered, lsn
}
