package dirtyset

import (
	"context"
	"slices"
	"time"
)

// takenSet is what a flush took from a shard in one go: the whole LRU
// (swapped for a fresh one, not walked and purged), the evicted rows and the
// retry rows. Until the batch is released, its keys count as busy.
type takenSet struct {
	lru     *rowLRU // nil when the LRU was not taken; only its maps are read after the take
	evicted map[ID]*Row
	retry   []*Row
	since   time.Time // the oldest row's Since
}

func (ts *takenSet) contains(k ID) bool {
	if ts.lru != nil && ts.lru.Contains(k) {
		return true
	}
	if _, ok := ts.evicted[k]; ok {
		return true
	}
	for _, r := range ts.retry {
		if r.ID() == k {
			return true
		}
	}
	return false
}

// takenKeys are the integer keys of a take's rows, in the rows' order, read
// from the shards' maps; text is set when a key is not an integer (then
// Sort reads the rows).
type takenKeys struct {
	ints []int64
	text bool
}

func (k *takenKeys) add(id ID) {
	k.ints = append(k.ints, id.i)
	k.text = k.text || id.s != ""
}

// takeLen is how many rows takeLocked(all) would hand out, retry rows
// included; the caller holds s.mu.
func (s *shard) takeLen(all bool) int {
	n := len(s.retry) + len(s.evicted)
	if all {
		n += s.lru.Len()
	}
	return n
}

// takeLocked hands the shard's rows to a flush: the retry rows (older than
// anything in the set) and, when all is set, every dirty row, otherwise only
// the evicted ones, appended to rows (the retry rows are in ts.retry). The
// taken set stays listed as inflight until released.
func (s *shard) takeLocked(all bool, rows []*Row, keys *takenKeys) (*takenSet, []*Row) {
	ts := &takenSet{retry: s.retry}
	s.retry = nil
	for _, r := range ts.retry {
		ts.since = minNonZero(ts.since, r.Since())
	}
	n := len(rows)
	if len(s.evicted) > 0 {
		ts.evicted = s.evicted
		s.evicted = map[ID]*Row{}
		for k, r := range ts.evicted {
			rows = append(rows, r)
			keys.add(k)
			ts.since = minNonZero(ts.since, r.Since())
		}
	}
	if all && s.lru.Len() > 0 {
		ts.lru = s.lru
		s.lru = s.newLRU()
		// In the map's order, not the list's: the flush sorts the rows by
		// key anyway, and walking the list is a chain of dependent loads
		// through rows scattered in memory (most of a take's time). The
		// keys come from the maps too, for Sort, without reading the rows.
		ts.lru.each(func(k ID, r *Row) {
			rows = append(rows, r)
			keys.add(k)
		})
		ts.since = minNonZero(ts.since, s.oldest)
		s.oldest = time.Time{}
	}
	if len(ts.retry) == 0 && len(rows) == n {
		return nil, rows
	}
	if s.lru.Len() == 0 {
		// Nothing left untaken: oldest must not keep the age of retry or
		// evicted rows taken here (Fail sets it again for rows put back).
		s.oldest = time.Time{}
	}
	s.inflight = append(s.inflight, ts)
	return ts, rows
}

// Batch is what one flush took from a table. Its rows are the flush's until
// Release; each must end as Done (committed or dead-lettered) or Fail (put
// back, to be written again before any newer row of its key).
type Batch struct {
	t      *Table
	shards []*shard
	sets   []*takenSet
	start  time.Time // when the flush took its rows
	ended  bool      // counted in the table's releases (overlay.go)
	// Rows are the rows taken: earlier failures first, then the others,
	// until Sort.
	Rows []*Row
	keys takenKeys // of Rows, until Sort
	// UpTo (a full take only) is the table's highest journal LSN at the
	// instant of the take: no record can be appended between two shards'
	// takes, so every record of the table up to UpTo is in this batch or was
	// flushed before, and a commit of the whole batch may advance the
	// table's checkpoint to UpTo.
	UpTo uint64
	// SyncTo is the journal LSN up to which the records must be durable
	// before the batch is committed: the last record of every group with
	// rows in the table (group.go); 0 when none.
	SyncTo uint64
}

// Take collects the table's rows to flush from every shard: the retry rows,
// the evicted rows and, with all, every other dirty row. A full take holds
// every shard's lock at once, in index order.
func (t *Table) Take(all bool) *Batch {
	t.takes.Add(1) // before any row leaves the shards (overlay.go)
	b := &Batch{t: t, start: time.Now()}
	var retry, rows []*Row
	var keys takenKeys
	add := func(s *shard) {
		var ts *takenSet
		ts, rows = s.takeLocked(all, rows, &keys)
		if ts != nil {
			b.shards = append(b.shards, s)
			b.sets = append(b.sets, ts)
			retry = append(retry, ts.retry...)
		}
	}
	if all {
		n := 0
		for _, s := range t.shards {
			s.mu.Lock()
			n += s.takeLen(true)
		}
		rows, keys.ints = make([]*Row, 0, n), make([]int64, 0, n)
		for _, s := range t.shards {
			add(s)
		}
		for _, s := range t.shards {
			b.UpTo = max(b.UpTo, s.lastLSN)
			s.mu.Unlock()
		}
	} else {
		for _, s := range t.shards {
			s.mu.Lock()
			add(s)
			s.mu.Unlock()
		}
	}
	if len(retry) > 0 {
		// Earlier failures first.
		rows = append(rows, retry...)
		copy(rows[len(retry):], rows[:len(rows)-len(retry)])
		copy(rows, retry)
		ints := append(keys.ints, make([]int64, len(retry))...)
		copy(ints[len(retry):], ints[:len(ints)-len(retry)])
		for i, r := range retry {
			id := r.ID()
			ints[i] = id.i
			keys.text = keys.text || id.s != ""
		}
		keys.ints = ints
	}
	b.Rows, b.keys = rows, keys
	b.SyncTo = t.groupLSN.Load() // after the shards: covers every group whose rows were taken
	if len(b.Rows) == 0 {
		b.ended = true // nothing taken: nothing to release
		t.releases.Add(1)
	}
	return b
}

// Sort orders Rows as Compare does (SortRows), from the keys the take
// read from the shards' maps: rows of integer keys are not read at all
// unless two share a key.
func (b *Batch) Sort() {
	if b.keys.text || len(b.keys.ints) != len(b.Rows) {
		SortRows(b.Rows)
	} else {
		sortIntRows(b.Rows, b.keys.ints)
	}
	b.keys = takenKeys{}
}

// Done accounts for committed (or dead-lettered) rows of the batch. The
// database answered, so the table is not failing; the room the rows held
// wakes writers blocked on a full buffer.
func (b *Batch) Done(rows []*Row) {
	t := b.t
	var recs, size, writes int64
	for _, r := range rows {
		recs += r.Recs
		size += r.size
		writes += int64(r.Writes)
	}
	t.doneWrites.Add(writes)
	t.bytes.Add(-size)
	t.pending.Add(-int64(len(rows)))
	if recs != 0 {
		t.appliedRecs.Add(recs)
	}
	t.failing.Store(false)
	t.shared.room.broadcast()
}

// Fail puts rows that could not be written back, ahead of any newer write
// to the same keys: they are flushed first, in their own transaction.
func (b *Batch) Fail(rows []*Row) {
	b.t.failing.Store(true)
	b.putBack(rows, false)
}

// Keep sets aside rows that the flush left for later because an open
// transaction holds their keys locked: they stay pending, and busy for
// INSERT, but no take sees them, and they do not age the table (its
// max_loss and backpressure), until Unhold.
func (b *Batch) Keep(rows []*Row) { b.putBack(rows, true) }

// Unhold makes the rows set aside by Keep flushable again, ahead of newer
// rows of their keys, and reports whether there were any.
func (t *Table) Unhold() bool {
	any := false
	for _, s := range t.shards {
		s.mu.Lock()
		if len(s.held) > 0 {
			any = true
			t.unholds.Add(1)
			t.kept.Add(-int64(len(s.held)))
			for _, r := range s.held {
				s.oldest = minNonZero(s.oldest, r.Since())
			}
			s.retry = append(s.retry, s.held...)
			s.held = nil
		}
		s.mu.Unlock()
	}
	return any
}

// Kept is the number of rows set aside by Keep: one atomic load.
func (t *Table) Kept() int64 { return t.kept.Load() }

// Unholds counts the times Unhold moved rows: a flush requested before a
// change may not have written them.
func (t *Table) Unholds() uint64 { return t.unholds.Load() }

// KeptKeys lists the keys of the rows set aside by Keep.
func (t *Table) KeptKeys() []ID {
	var ids []ID
	for _, s := range t.shards {
		s.mu.Lock()
		for _, r := range s.held {
			ids = append(ids, r.ID())
		}
		s.mu.Unlock()
	}
	return ids
}

func (b *Batch) putBack(rows []*Row, hold bool) {
	t := b.t
	var byShard [maxShards][]*Row
	for _, r := range rows {
		i := t.shardIndex(r.ID())
		byShard[i] = append(byShard[i], r)
	}
	for i, mine := range byShard {
		if len(mine) == 0 {
			continue
		}
		s := t.shards[i]
		s.mu.Lock()
		if hold {
			s.held = append(s.held, mine...)
			t.kept.Add(int64(len(mine)))
		} else {
			for _, r := range mine {
				s.oldest = minNonZero(s.oldest, r.Since())
			}
			s.retry = append(s.retry, mine...)
		}
		s.mu.Unlock()
	}
}

// AwaitIdle waits until no flush holds a row of any of ids (a flush that
// took one before the caller locked it in the database must end first), or
// ctx ends.
func (t *Table) AwaitIdle(ctx context.Context, ids []ID) error {
	for {
		room := t.shared.room.wait() // before the check: a Release after it closes room
		busy := false
		for _, id := range ids {
			s := t.shardFor(id)
			s.mu.Lock()
			busy = s.inflightHasLocked(id)
			s.mu.Unlock()
			if busy {
				break
			}
		}
		if !busy {
			return nil
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// costMinRows is the fewest rows a flush must carry to teach the table its
// cost per row. A flush's fixed part (a transaction, its round trips, a
// commit) dominates a small one: a first flush of one row taking 5 ms would
// be read as 5 ms a row, and a table with a thousand new rows pending would
// then seem five seconds behind and throttle its writers, where the real
// flush takes milliseconds.
const costMinRows = 64

// Release ends the flush: its keys are no longer busy. Rows that failed
// were put back (Fail) before this. It learns the flush's cost per row (for
// backpressure), recomputes the table's oldest row not yet committed, and
// logs, once each way, when the table goes past its max_loss and when it is
// back within it.
func (b *Batch) Release() {
	t := b.t
	for i, s := range b.shards {
		s.mu.Lock()
		s.inflight = slices.DeleteFunc(s.inflight, func(ts *takenSet) bool { return ts == b.sets[i] })
		s.mu.Unlock()
	}
	now := time.Now()
	if len(b.Rows) >= costMinRows && !t.failing.Load() {
		t.rowCost.Store(int64(now.Sub(b.start)) / int64(len(b.Rows)))
	}
	t.checkMaxLoss(now)
	if !b.ended {
		b.ended = true
		t.releases.Add(1) // after the rows are committed or back in the shards
	}
}

// checkMaxLoss recomputes the table's oldest row not yet committed under
// every shard lock and records whether it is past max_loss.
func (t *Table) checkMaxLoss(now time.Time) {
	for _, s := range t.shards {
		s.mu.Lock()
	}
	oldest := t.oldestLocked()
	// Under every shard lock: a row made after this sees 0 and sets itself.
	if oldest.IsZero() {
		t.oldest.Store(0)
	} else {
		t.oldest.Store(oldest.UnixNano())
	}
	for _, s := range t.shards {
		s.mu.Unlock()
	}
	// Rows put back by a failed flush can take writes again: writers
	// waiting on a full buffer look again (once per flush, not a busy loop).
	t.shared.room.broadcast()
	over := !oldest.IsZero() && now.Sub(oldest) > t.cfg.MaxLoss
	was := t.overdueSince.Load()
	switch {
	case over && was == 0:
		t.overdueSince.Store(oldest.Add(t.cfg.MaxLoss).UnixNano())
		t.violations.Add(1)
		t.cfg.Log.Warn("writeback: max_loss exceeded: the oldest buffered row is older than the table's max_loss", "table", t.cfg.Name, "max_loss", t.cfg.MaxLoss, "age", now.Sub(oldest), "failing", t.failing.Load())
	case !over && was != 0:
		t.overdueSince.Store(0)
		t.cfg.Log.Info("writeback: back within max_loss", "table", t.cfg.Name, "overdue_for", now.Sub(time.Unix(0, was)))
	}
}

// oldestLocked is the Since of the table's oldest row not yet committed,
// in any state; the caller holds every shard lock.
func (t *Table) oldestLocked() time.Time {
	var oldest time.Time
	for _, s := range t.shards {
		oldest = minNonZero(oldest, s.oldestLocked())
	}
	return oldest
}

// oldestLocked is the Since of the shard's oldest row not yet committed:
// untaken, in a flush, or put back; the caller holds s.mu.
func (s *shard) oldestLocked() time.Time {
	oldest := s.oldest
	for _, ts := range s.inflight {
		oldest = minNonZero(oldest, ts.since)
	}
	for _, r := range s.retry {
		oldest = minNonZero(oldest, r.Since())
	}
	return oldest
}

func minNonZero(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
