package writeback

import (
	"time"
)

// Stats are a connector's buffer figures at one instant: the per-table
// figures summed over every back table (OldestAge is the oldest of any
// table, OverdueSince the earliest), and the connector-wide ones.
type Stats struct {
	TableStats
	// LastCrash is what the connector found at open of the run before it
	// when that run stopped without a clean shutdown; nil otherwise.
	LastCrash *CrashReport
	// LastError is the last flush error and when it happened (zero if none).
	LastError   error
	LastErrorAt time.Time
	// FailingSince is when the current run of failed flushes began; it is
	// zero while flushes succeed (and again once one succeeds after an
	// outage). Retries counts failed flush attempts that were scheduled for
	// retry, since the connector opened.
	FailingSince time.Time
	Retries      int64
	// JournalBytes is the size of the journal's files (0 without a
	// journal); for a replicated journal, the bytes of records waiting for
	// JetStream's acknowledgment.
	JournalBytes int64
	// FsyncLatencyLast and FsyncLatencyAvg are the journal's last and mean
	// fsync durations since the connector opened; for a replicated
	// journal, its publishes' round trips.
	FsyncLatencyLast, FsyncLatencyAvg time.Duration
	// JournalSyncs counts the journal's completed fsyncs since the
	// connector opened; for a replicated journal, its messages
	// acknowledged by JetStream. Journaled writes over JournalSyncs is how
	// many records each fsync or message carried.
	JournalSyncs int64
	// JournalLag is the age of the oldest journal record not yet fsynced
	// (what a power loss could take under fsync: everysec or no), or not
	// yet acknowledged by JetStream (what a host loss could take).
	JournalLag time.Duration
	// JournalPending counts the journal's records not yet durable: not
	// fsynced, or not yet stored by JetStream (all of them while NATS is
	// unreachable).
	JournalPending int64
	// Tables holds the figures per back table, by rule name.
	Tables map[string]TableStats
}

// TableStats are one back table's figures.
type TableStats struct {
	// Dirty is the number of rows buffered and not yet committed.
	Dirty int
	// OldestAge is how long the oldest not yet committed row has waited.
	OldestAge time.Duration
	// MaxLoss is the table's max_loss rule, the bound OldestAge is kept
	// under; it is zero in Stats' sums, since each table has its own.
	MaxLoss time.Duration
	// Buffered counts writes acknowledged from memory; Coalesced counts those
	// merged into a row that was already dirty.
	Buffered, Coalesced int64
	// PassedThrough counts UPDATEs and INSERTs of a bufferable shape on back
	// tables that went to the database instead (inside a transaction, with
	// AckThrough, or where a merge would have changed their meaning).
	PassedThrough int64
	// Barriers counts statements that waited for a back table's flush.
	Barriers int64
	// ReadsByKey counts reads of one row by key (SELECT cols FROM t WHERE
	// key = ...) answered from the database plus the row's buffered deltas,
	// without waiting for a flush.
	ReadsByKey int64
	// Probes counts the queries asking whether rows exist (rows_affected:
	// exact), made for keys not known to exist; one query may ask for the
	// keys of several writers that waited for another;
	// ProbeFailures counts the writes whose probe the database did not
	// answer; they were acknowledged as with rows_affected: assume.
	Probes, ProbeFailures int64
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

// add sums another table's figures into s: counts add up, ages take the
// worst; MaxLoss, a rule rather than a figure, is left alone.
func (s *TableStats) add(t TableStats) {
	s.Dirty += t.Dirty
	s.OldestAge = max(s.OldestAge, t.OldestAge)
	s.Buffered += t.Buffered
	s.Coalesced += t.Coalesced
	s.PassedThrough += t.PassedThrough
	s.Barriers += t.Barriers
	s.ReadsByKey += t.ReadsByKey
	s.Probes += t.Probes
	s.ProbeFailures += t.ProbeFailures
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
	s := Stats{Tables: map[string]TableStats{}, LastCrash: c.lastCrash.Load()}
	for _, t := range c.buf.ordered {
		ts := t.stats(now)
		s.Tables[t.rule.Name] = ts
		s.add(ts)
	}
	if j := c.buf.journal; j != nil {
		js := j.Stats()
		s.JournalBytes = js.Bytes
		s.FsyncLatencyLast, s.FsyncLatencyAvg = js.SyncLatencyLast, js.SyncLatencyAvg
		s.JournalSyncs = int64(js.Syncs)
		s.JournalLag = js.Lag
		s.JournalPending = int64(js.LastLSN - js.DurableLSN) // LSNs are dense in both kinds of journal
	}
	st := c.buf.flusher.Status()
	s.LastError, s.LastErrorAt = st.LastErr, st.LastErrAt
	s.FailingSince, s.Retries = st.FailingSince, st.Retries
	return s
}

// stats reads one table's figures from its dirty set, its flush worker and
// the statement path.
func (t *tableState) stats(now time.Time) TableStats {
	sn := t.set.Snapshot()
	fs := t.flush.Stats()
	ts := TableStats{
		Dirty:             int(sn.Pending),
		MaxLoss:           t.rule.MaxLoss,
		Buffered:          sn.Buffered,
		Coalesced:         sn.Coalesced,
		PassedThrough:     t.passed.Load(),
		Probes:            t.probes.Load(),
		ReadsByKey:        t.readsByKey.Load(),
		ProbeFailures:     t.probeFailures.Load(),
		Barriers:          t.barriers.Load(),
		Flushes:           fs.Flushes,
		FlushedRows:       fs.FlushedRows,
		FlushErrors:       fs.FlushErrors,
		NoMatch:           fs.NoMatch,
		DeadLetters:       fs.DeadLetters,
		Evictions:         sn.Evictions,
		BufferBytes:       sn.Bytes,
		Full:              t.full.Load(),
		Throttled:         t.throttled.Load(),
		MaxLossViolations: sn.MaxLossViolations,
		JournalUnapplied:  sn.JournalUnapplied,
		OverdueSince:      sn.OverdueSince,
	}
	if !sn.Oldest.IsZero() {
		ts.OldestAge = now.Sub(sn.Oldest)
	}
	return ts
}

func minNonZero(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
