package writeback

import (
	"time"
)

// Stats are a connector's buffer figures at one instant: the per-table
// figures summed over every back table (OldestAge is the oldest of any
// table, OverdueSince the earliest), and the connector-wide ones.
type Stats struct {
	TableStats
	// LastError is the last flush error and when it happened (zero if none).
	LastError   error
	LastErrorAt time.Time
	// FailingSince is when the current run of failed flushes began; it is
	// zero while flushes succeed (and again once one succeeds after an
	// outage). Retries counts failed flush attempts that were scheduled for
	// retry, since the connector opened.
	FailingSince time.Time
	Retries      int64
	// JournalBytes is the size of the journal's files (0 without a journal).
	JournalBytes int64
	// FsyncLatencyLast and FsyncLatencyAvg are the journal's last and mean
	// fsync durations since the connector opened.
	FsyncLatencyLast, FsyncLatencyAvg time.Duration
	// JournalLag is the age of the oldest journal record not yet fsynced:
	// what a power loss could take under fsync: everysec or no.
	JournalLag time.Duration
	// Tables holds the figures per back table, by rule name.
	Tables map[string]TableStats
}

// TableStats are one back table's figures.
type TableStats struct {
	// Dirty is the number of rows buffered and not yet committed.
	Dirty int
	// OldestAge is how long the oldest not yet committed row has waited.
	OldestAge time.Duration
	// Buffered counts writes acknowledged from memory; Coalesced counts those
	// merged into a row that was already dirty.
	Buffered, Coalesced int64
	// PassedThrough counts UPDATEs and INSERTs of a bufferable shape on back
	// tables that went to the database instead (inside a transaction, with
	// AckThrough, or where a merge would have changed their meaning).
	PassedThrough int64
	// Barriers counts statements that waited for a back table's flush.
	Barriers int64
	// Flushes counts committed flush transactions; FlushedRows the rows they wrote.
	Flushes, FlushedRows int64
	// FlushErrors counts failed flush attempts (each retried or isolated).
	FlushErrors int64
	// NoMatch counts flushed UPDATEs that matched no row.
	NoMatch int64
	// DeadLetters counts rows the database refused permanently.
	DeadLetters int64
	// Evictions counts rows flushed early because their table's LRU was full.
	Evictions int64
	// JournalUnapplied counts journaled writes not yet applied to the
	// database (each row of a multi-row INSERT counts once).
	JournalUnapplied int64
	// Bounded memory and backpressure (README): BufferBytes is the
	// approximate memory of the rows not yet committed; Full counts writes
	// that met a full buffer (on_full decided); Throttled counts writes that
	// waited for a flush to keep max_loss; MaxLossViolations counts the
	// times the oldest row went past max_loss, and OverdueSince is when the
	// table went past it, if it is past it now (zero otherwise).
	BufferBytes, Full, Throttled, MaxLossViolations int64
	OverdueSince                                    time.Time
}

// add sums another table's figures into s: counts add up, ages take the worst.
func (s *TableStats) add(t TableStats) {
	s.Dirty += t.Dirty
	s.OldestAge = max(s.OldestAge, t.OldestAge)
	s.Buffered += t.Buffered
	s.Coalesced += t.Coalesced
	s.PassedThrough += t.PassedThrough
	s.Barriers += t.Barriers
	s.Flushes += t.Flushes
	s.FlushedRows += t.FlushedRows
	s.FlushErrors += t.FlushErrors
	s.NoMatch += t.NoMatch
	s.DeadLetters += t.DeadLetters
	s.Evictions += t.Evictions
	s.JournalUnapplied += t.JournalUnapplied
	s.BufferBytes += t.BufferBytes
	s.Full += t.Full
	s.Throttled += t.Throttled
	s.MaxLossViolations += t.MaxLossViolations
	s.OverdueSince = minNonZero(s.OverdueSince, t.OverdueSince)
}

// RowWritesPerWrite is the database row writes per buffered application
// write: FlushedRows / Buffered (0 when nothing was buffered).
func (s Stats) RowWritesPerWrite() float64 {
	if s.Buffered == 0 {
		return 0
	}
	return float64(s.FlushedRows) / float64(s.Buffered)
}

// Stats returns the buffer's figures now.
func (c *Connector) Stats() Stats {
	now := time.Now()
	s := Stats{Tables: map[string]TableStats{}}
	for _, t := range c.buf.ordered {
		var oldest time.Time
		var buffered, coalesced int64
		for _, sh := range t.shards {
			sh.mu.Lock()
			oldest = minNonZero(oldest, sh.oldest)
			for _, ts := range sh.inflight {
				oldest = minNonZero(oldest, ts.since)
			}
			for _, r := range sh.retry {
				oldest = minNonZero(oldest, r.since)
			}
			buffered += sh.buffered
			coalesced += sh.coalesced
			sh.mu.Unlock()
		}
		ts := TableStats{
			Dirty:         int(t.pending.Load()),
			Buffered:      buffered,
			Coalesced:     coalesced,
			PassedThrough: t.stats.passed.Load(),
			Barriers:      t.stats.barriers.Load(),
			Flushes:       t.stats.flushes.Load(),
			FlushedRows:   t.stats.flushedRows.Load(),
			FlushErrors:   t.stats.flushErrors.Load(),
			NoMatch:       t.stats.noMatch.Load(),
			DeadLetters:   t.stats.deadLetters.Load(),
			Evictions:     t.stats.evictions.Load(),

			BufferBytes:       t.bytes.Load(),
			Full:              t.stats.full.Load(),
			Throttled:         t.stats.throttled.Load(),
			MaxLossViolations: t.stats.violations.Load(),

			JournalUnapplied: t.unapplied.Load(),
		}
		if !oldest.IsZero() {
			ts.OldestAge = now.Sub(oldest)
		}
		if o := t.overdueSince.Load(); o != 0 {
			ts.OverdueSince = time.Unix(0, o)
		}
		s.Tables[t.rule.Name] = ts
		s.add(ts)
	}
	if d := c.buf.dur; d != nil {
		js := d.j.Stats()
		s.JournalBytes = js.Bytes
		s.FsyncLatencyLast, s.FsyncLatencyAvg = js.SyncLatencyLast, js.SyncLatencyAvg
		s.JournalLag = js.Lag
	}
	f := c.buf.flusher
	f.mu.Lock()
	s.LastError, s.LastErrorAt = f.lastErr, f.lastErrAt
	s.FailingSince, s.Retries = f.failingSince, f.retries
	f.mu.Unlock()
	return s
}

func minNonZero(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
