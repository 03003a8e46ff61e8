package writeback

import (
	"time"
)

// Stats are a connector's buffer figures at one instant.
type Stats struct {
	// Dirty is the number of rows buffered and not yet committed.
	Dirty int
	// OldestAge is how long the oldest not yet flushed row has waited.
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
	// Bounded memory and backpressure (README): BufferBytes is the
	// approximate memory of the rows not yet committed; Full counts writes
	// that met a full buffer (on_full decided); Throttled counts writes that
	// waited for a flush to keep max_loss; MaxLossViolations counts the
	// times a table's oldest row went past its max_loss, and OverdueSince is
	// the earliest time a table that is past it now went past it (zero when
	// every table is within its max_loss).
	BufferBytes, Full, Throttled, MaxLossViolations int64
	OverdueSince                                    time.Time
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
	// JournalUnapplied counts journaled writes not yet applied to the
	// database (each row of a multi-row INSERT counts once).
	JournalUnapplied int64
	// FsyncLatencyLast and FsyncLatencyAvg are the journal's last and mean
	// fsync durations since the connector opened.
	FsyncLatencyLast, FsyncLatencyAvg time.Duration
	// JournalLag is the age of the oldest journal record not yet fsynced:
	// what a power loss could take under fsync: everysec or no.
	JournalLag time.Duration
	// Tables holds the same figures per back table, by rule name.
	Tables map[string]TableStats
}

// TableStats are one back table's figures.
type TableStats struct {
	Dirty                int
	OldestAge            time.Duration
	Buffered, Coalesced  int64
	PassedThrough        int64
	Barriers             int64
	Flushes, FlushedRows int64
	FlushErrors          int64
	NoMatch              int64
	DeadLetters          int64
	Evictions            int64
	JournalUnapplied     int64
	BufferBytes          int64
	Full, Throttled      int64
	MaxLossViolations    int64
	OverdueSince         time.Time
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
		s.Tables[t.rule.Name] = ts
		s.Dirty += ts.Dirty
		s.OldestAge = max(s.OldestAge, ts.OldestAge)
		s.Buffered += ts.Buffered
		s.Coalesced += ts.Coalesced
		s.PassedThrough += ts.PassedThrough
		s.Barriers += ts.Barriers
		s.Flushes += ts.Flushes
		s.FlushedRows += ts.FlushedRows
		s.FlushErrors += ts.FlushErrors
		s.NoMatch += ts.NoMatch
		s.DeadLetters += ts.DeadLetters
		s.Evictions += ts.Evictions
		if o := t.overdueSince.Load(); o != 0 {
			ts.OverdueSince = time.Unix(0, o)
			s.Tables[t.rule.Name] = ts
			s.OverdueSince = minNonZero(s.OverdueSince, ts.OverdueSince)
		}
		s.BufferBytes += ts.BufferBytes
		s.Full += ts.Full
		s.Throttled += ts.Throttled
		s.MaxLossViolations += ts.MaxLossViolations
		s.JournalUnapplied += ts.JournalUnapplied
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
