package dirtyset

import "time"

// Dirty is what a flush worker needs to know of a table to schedule it.
type Dirty struct {
	N       int       // rows not yet taken
	Oldest  time.Time // Since of the oldest of them
	Evicted int       // of those, rows set aside by the LRU: flush early
	Retry   int       // of those, rows put back by a failed flush
}

// Dirty counts the rows not yet taken.
func (t *Table) Dirty() Dirty {
	var d Dirty
	for _, s := range t.shards {
		s.mu.Lock()
		d.N += s.lru.Len() + len(s.evicted) + len(s.retry)
		d.Evicted += len(s.evicted)
		d.Retry += len(s.retry)
		d.Oldest = minNonZero(d.Oldest, s.oldest)
		s.mu.Unlock()
	}
	return d
}

// Snapshot is a table's figures at one instant.
type Snapshot struct {
	Pending           int64     // rows not yet committed, in any state
	Oldest            time.Time // Since of the oldest of them; zero when none
	Buffered          int64     // writes acknowledged from memory
	Coalesced         int64     // of those, merged into a row already dirty
	Bytes             int64     // approximate memory of the pending rows
	Evictions         int64     // rows set aside early because the LRU was full
	MaxLossViolations int64     // times the table went past its max_loss
	OverdueSince      time.Time // when it went past max_loss, if it is now
	JournalUnapplied  int64     // journaled writes not yet applied
	// PendingWrites are the writes buffered and not yet committed (or
	// dead-lettered); never below the true number.
	PendingWrites int64
	Failing       bool // the last flush failed transiently
}

// Snapshot reads the table's figures, one shard at a time.
func (t *Table) Snapshot() Snapshot {
	var sn Snapshot
	// done and applied before the shards' counts: a later write can only
	// add to those, so the differences are never negative.
	done := t.doneWrites.Load()
	applied := t.appliedRecs.Load()
	var journaled int64
	for _, s := range t.shards {
		s.mu.Lock()
		sn.Oldest = minNonZero(sn.Oldest, s.oldestLocked())
		sn.Buffered += s.buffered
		sn.Coalesced += s.coalesced
		journaled += s.journaled
		s.mu.Unlock()
	}
	sn.PendingWrites = max(sn.Buffered-done, 0)
	sn.Pending = t.pending.Load()
	sn.Bytes = t.bytes.Load()
	sn.Evictions = t.evictions.Load()
	sn.MaxLossViolations = t.violations.Load()
	if o := t.overdueSince.Load(); o != 0 {
		sn.OverdueSince = time.Unix(0, o)
	}
	sn.JournalUnapplied = max(journaled-applied, 0)
	sn.Failing = t.failing.Load()
	return sn
}

// Pending is the number of rows not yet committed: one atomic load, for
// barriers on clean tables.
func (t *Table) Pending() int64 { return t.pending.Load() }

// PendingSynced is Pending read while every shard lock is held: every
// journal record appended before the call (under its row's shard lock) has
// its row counted. Compaction relies on it.
func (t *Table) PendingSynced() int64 {
	for _, s := range t.shards {
		s.mu.Lock()
	}
	n := t.pending.Load()
	for _, s := range t.shards {
		s.mu.Unlock()
	}
	return n
}

// Applied is the journal checkpoint watermark last committed for the table.
func (t *Table) Applied() uint64 { return t.applied.Load() }

// SetApplied raises (or, for a journal given a new id, resets) the watermark.
func (t *Table) SetApplied(lsn uint64) { t.applied.Store(lsn) }

// RaiseApplied raises the watermark to lsn if it is higher.
func (t *Table) RaiseApplied(lsn uint64) {
	for {
		cur := t.applied.Load()
		if lsn <= cur || t.applied.CompareAndSwap(cur, lsn) {
			return
		}
	}
}

// Name is the table's rule name.
func (t *Table) Name() string { return t.cfg.Name }
