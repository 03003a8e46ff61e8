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
		case ch.Fn != dialect.FnNone:
			return false // COALESCE, GREATEST, LEAST: not in an upsert's parts
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
func (r *Row) insertPart() colVals { return colVals{cols: r.Cols(), vals: r.Vals} }
func (r *Row) updatePart() colVals {
	return colVals{cols: r.UCols(), vals: r.UVals(), delta: r.UDelta(), upd: true}
}

// setParts stores the parts back into r, a row of t, and returns by how
// much the row grew. The insert part's columns are shared again (a column
// added to them was inserted into a copy: the shared slice has no room).
func (t *Table) setParts(r *Row, ins, upd colVals) (grew int64) {
	before := r.size
	r.cols, r.Vals = t.sharedCols(ins.cols, nil), ins.vals
	r.setUpdatePart(upd.cols, upd.vals, upd.delta)
	r.size = rowSize(r)
	return r.size - before
}

// planInto checks that an update (the update part of an upsert, or a
// plain UPDATE) coalesces into the dirty row r, computing the values it
// leaves in r's insert part into nextIns and in its update part into
// nextUpd (each len(changes)); commitInto then applies it. Planning first
// lets the journal record be appended only for a write that will be
// coalesced. The caller owns the slices (its stack, in the common case).
func (t *Table) planInto(r *Row, changes []Change, nextIns, nextUpd []any) bool {
	switch r.Op {
	case dialect.Insert:
		return r.planUpdate(changes, nextIns)
	case dialect.Upsert:
		ins, upd := r.insertPart(), r.updatePart()
		return ins.plan(changes, nextIns) && upd.plan(changes, nextUpd)
	case dialect.Update:
		// The row exists: an upsert of it is its update part.
		return t.cfg.UpdatesExist && r.planUpdate(changes, nextIns)
	}
	return false
}

// commitInto applies what planInto planned and returns by how much the row grew.
func (t *Table) commitInto(r *Row, changes []Change, nextIns, nextUpd []any) (grew int64) {
	if r.Op == dialect.Insert || r.Op == dialect.Update {
		return t.commitUpdate(r, changes, nextIns)
	}
	// In place: no flush reads a row that can be coalesced into.
	ins, upd := r.insertPart(), r.updatePart()
	ins.commit(changes, nextIns)
	upd.commit(changes, nextUpd)
	r.Writes++
	return t.setParts(r, ins, upd)
}

// upsertPlan is one row's planned coalescing, for a statement of several rows.
type upsertPlan struct {
	r                *Row
	row              int // its index in the statement
	nextIns, nextUpd []any
}

// Upsert buffers the rows of one upsert, all or none: keys[i], the inserted
// row rows[i] (values of cols) and its update part upd[i] (EXCLUDED already
// resolved to the row's own values). No key may repeat within the statement.
// The shards involved are locked together, in index order; rows for keys
// with no dirty row are new and subject to the bounds. The dirty set keeps
// copies of what it needs from the arguments.
func (t *Table) Upsert(keys [][]any, rows [][]any, cols []sqlparse.Ident, upd [][]Change, names *Names, j Journal, adm Admission) (Outcome, uint64) {
	return t.UpsertCounted(keys, rows, cols, upd, names, j, adm, nil)
}

// UpsertCount asks Upsert for MySQL's count of an INSERT ... ON DUPLICATE
// KEY UPDATE: 1 for a row inserted, and for a row whose key exists what
// IfExists says (2 updated; 1, or 0 without clientFoundRows, left as it
// was), decided under
// the shards' locks so that a concurrent write of the key cannot come
// between the answer and the buffering.
type UpsertCount struct {
	// Exists tells whether a key with no dirty row exists in the database.
	Exists Exists
	// IfExists[i] is what row i counts when its key exists (2 updated, 1
	// or 0 left as it was); -1 when that is not known (the statement is
	// then not buffered).
	IfExists []int8
	// Affected is the statement's count, set when Upsert buffered it.
	Affected int64
}

// UpsertCounted is Upsert answering cnt (see UpsertCount): a key with a
// dirty row exists (the row will be written); a key without one is asked of
// cnt.Exists, and Probe comes back when that is unknown. A key whose row is
// being written but is not known to exist comes back FlushFirst.
func (t *Table) UpsertCounted(keys [][]any, rows [][]any, cols []sqlparse.Ident, upd [][]Change, names *Names, j Journal, adm Admission, cnt *UpsertCount) (Outcome, uint64) {
	var idBuf [1]ID
	rk := idBuf[:0]
	if len(keys) > 1 {
		rk = make([]ID, 0, len(keys))
	}
	rk, out := t.upsertIDs(rk, keys)
	if out != Buffered {
		return out, 0
	}
	if len(rk) == 1 {
		s := t.shardFor(rk[0])
		s.mu.Lock()
		defer s.mu.Unlock()
	} else {
		defer t.lockShardsOf(rk)()
	}
	if t.shared.closed.Load() {
		return PassThrough, 0
	}
	return t.upsertLocked(rk, keys, rows, cols, upd, names, j, adm, cnt)
}

// upsertIDs appends the row ids of an upsert's keys to rk; an outcome
// other than Buffered when the statement cannot be buffered whatever the
// rows hold.
func (t *Table) upsertIDs(rk []ID, keys [][]any) ([]ID, Outcome) {
	for _, kv := range keys {
		if !t.CheckKey(kv) {
			return nil, FlushFirst
		}
		k := MakeID(kv)
		if slices.Contains(rk, k) {
			return nil, PassThrough // PostgreSQL refuses a row affected twice; SQLite runs them in turn
		}
		rk = append(rk, k)
	}
	return rk, Buffered
}

// upsertLocked is Upsert with the shards of every key (rk) locked.
func (t *Table) upsertLocked(rk []ID, keys [][]any, rows [][]any, cols []sqlparse.Ident, upd [][]Change, names *Names, j Journal, adm Admission, cnt *UpsertCount) (Outcome, uint64) {
	var affected int64
	if cnt != nil {
		probe := false
		for i, k := range rk {
			s := t.shardFor(k)
			exists := s.lookupOrRetryLocked(k) != nil
			if !exists {
				switch cnt.Exists(k) {
				case ExistYes:
					exists = true
				case ExistUnknown:
					probe = true
					continue
				}
				if !exists && s.keyBusyLocked(k) {
					return FlushFirst, 0 // being written: whether it will exist is the flush's to say
				}
			}
			switch {
			case !exists:
				affected++
			case cnt.IfExists[i] < 0:
				return PassThrough, 0
			default:
				affected += int64(cnt.IfExists[i])
			}
		}
		if probe {
			return Probe, 0
		}
	}
	// One row coalesced (the common case) is planned in fixed arrays.
	var one *Row
	var insBuf, updBuf [8]any
	var plans []upsertPlan
	var made []*Row
	var size int64
	var now time.Time
	inflight := false
	for i, k := range rk {
		s := t.shardFor(k)
		if r := s.lookupOrRetryLocked(k); r != nil {
			n := len(upd[i])
			if len(rk) == 1 && n <= len(insBuf) {
				if !t.planInto(r, upd[i], insBuf[:n], updBuf[:n]) {
					return FlushFirst, 0
				}
				one = r
				continue
			}
			p := upsertPlan{r: r, row: i, nextIns: make([]any, n), nextUpd: make([]any, n)}
			if !t.planInto(r, upd[i], p.nextIns, p.nextUpd) {
				return FlushFirst, 0
			}
			plans = append(plans, p)
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		inflight = inflight || s.inflightHasLocked(k)
		n := &Row{key: rowKey(k, keys[i]), Op: dialect.Upsert, since: monoOf(now), Writes: 1}
		t.initCols(n, len(cols), func(j int) (sqlparse.Ident, any, bool, dialect.ColFn) {
			return cols[j], rows[i][j], false, dialect.FnNone
		})
		u := colVals{upd: true}
		next := make([]any, len(upd[i]))
		u.plan(upd[i], next) // into an empty update part: always true
		u.commit(upd[i], next)
		n.setUpdatePart(u.cols, u.vals, u.delta)
		n.size = rowSize(n)
		size += n.size
		made = append(made, n)
	}
	if len(made) > 0 {
		if out := t.admit(len(made), size, now, adm); out != Buffered {
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
	if one != nil {
		n := len(upd[0])
		t.noteCoalesced(one, t.commitInto(one, upd[0], insBuf[:n], updBuf[:n]), lsn)
	}
	for _, p := range plans {
		t.noteCoalesced(p.r, t.commitInto(p.r, upd[p.row], p.nextIns, p.nextUpd), lsn)
	}
	for _, r := range made {
		t.addNewLocked(r, lsn, now)
	}
	t.noteNames(names)
	if cnt != nil {
		cnt.Affected = affected
	}
	return Buffered, lsn
}

// noteCoalesced is noteCoalescedLocked in r's shard, which the caller holds.
func (t *Table) noteCoalesced(r *Row, grew int64, lsn uint64) {
	t.shardFor(r.ID()).noteCoalescedLocked(r, grew, lsn)
}

// noteCoalescedLocked accounts for a write coalesced into r, a row of s,
// that grew it by grew, with journal record lsn (0: none).
func (s *shard) noteCoalescedLocked(r *Row, grew int64, lsn uint64) {
	if grew != 0 {
		s.t.bytes.Add(grew) // coalescing is always admitted: it makes no new row
	}
	s.noteLSNLocked(r, lsn)
	s.buffered++
	s.coalesced++
}

// lookupOrRetryLocked finds the row a write to k coalesces into.
func (s *shard) lookupOrRetryLocked(k ID) *Row {
	if r := s.lookupLocked(k); r != nil {
		return r
	}
	return s.retryRowLocked(k)
}

// coalesceUpsertLocked merges a plain UPDATE into the key's upsert row r.
func (t *Table) coalesceUpsertLocked(r *Row, changes []Change, j Journal) (Outcome, uint64) {
	var insBuf, updBuf [8]any
	var nextIns, nextUpd []any
	if n := len(changes); n <= len(insBuf) {
		nextIns, nextUpd = insBuf[:n], updBuf[:n]
	} else {
		nextIns, nextUpd = make([]any, n), make([]any, n)
	}
	if !t.planInto(r, changes, nextIns, nextUpd) {
		return FlushFirst, 0
	}
	lsn, err := t.logLocked(j, 1)
	if err != nil {
		return JournalFailed, 0
	}
	t.noteCoalesced(r, t.commitInto(r, changes, nextIns, nextUpd), lsn)
	return Buffered, lsn
}
