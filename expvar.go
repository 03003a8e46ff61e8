package writeback

import (
	"database/sql"
	"errors"
	"expvar"
	"fmt"
	"sync"
	"time"
)

// publishMu makes PublishExpvar's check for a taken name and its Publish one
// step, so two calls with one name get an error, not expvar's panic.
var publishMu sync.Mutex

// PublishExpvar publishes db's figures (StatsOf) as the expvar variable name,
// read afresh each time the variable is (at /debug/vars when the program
// serves expvar's handler). The JSON object has the figures of Stats in
// snake_case: durations in seconds (oldest_age_seconds: 0.25), instants as
// RFC 3339 strings or null (failing_since), the last flush error as a string
// or null, and "tables" with each back table's figures by rule name.
//
// It returns an error, and publishes nothing, when db was not opened with
// writeback, when name is empty, or when a variable of that name is already
// published (expvar itself would panic).
func PublishExpvar(name string, db *sql.DB) error {
	c, err := connectorOf(db)
	if err != nil {
		return err
	}
	if name == "" {
		return errors.New("writeback: PublishExpvar: empty name")
	}
	publishMu.Lock()
	defer publishMu.Unlock()
	if expvar.Get(name) != nil {
		return fmt.Errorf("writeback: PublishExpvar: an expvar named %q is already published", name)
	}
	expvar.Publish(name, expvar.Func(func() any { return statsJSONOf(c.Stats()) }))
	return nil
}

// statsJSON is the expvar form of Stats.
type statsJSON struct {
	tableStatsJSON
	LastError        *string                   `json:"last_error"`
	LastErrorAt      *string                   `json:"last_error_at"`
	FailingSince     *string                   `json:"failing_since"`
	Retries          int64                     `json:"retries"`
	JournalBytes     int64                     `json:"journal_bytes"`
	FsyncLatencyLast float64                   `json:"fsync_latency_last_seconds"`
	FsyncLatencyAvg  float64                   `json:"fsync_latency_avg_seconds"`
	JournalSyncs     int64                     `json:"journal_syncs"`
	JournalLag       float64                   `json:"journal_lag_seconds"`
	JournalPending   int64                     `json:"journal_pending_records"`
	Tables           map[string]tableStatsJSON `json:"tables"`
}

// tableStatsJSON is the expvar form of TableStats.
type tableStatsJSON struct {
	Dirty             int      `json:"dirty"`
	OldestAge         float64  `json:"oldest_age_seconds"`
	MaxLoss           *float64 `json:"max_loss_seconds,omitempty"` // per table only
	Buffered          int64    `json:"buffered"`
	Coalesced         int64    `json:"coalesced"`
	PassedThrough     int64    `json:"passed_through"`
	Barriers          int64    `json:"barriers"`
	ReadsByKey        int64    `json:"reads_by_key"`
	Probes            int64    `json:"probes"`
	ProbeFailures     int64    `json:"probe_failures"`
	Flushes           int64    `json:"flushes"`
	FlushedRows       int64    `json:"flushed_rows"`
	FlushErrors       int64    `json:"flush_errors"`
	NoMatch           int64    `json:"no_match"`
	DeadLetters       int64    `json:"dead_letters"`
	Evictions         int64    `json:"evictions"`
	JournalUnapplied  int64    `json:"journal_unapplied"`
	BufferBytes       int64    `json:"buffer_bytes"`
	Full              int64    `json:"full"`
	Throttled         int64    `json:"throttled"`
	MaxLossViolations int64    `json:"max_loss_violations"`
	OverdueSince      *string  `json:"overdue_since"`
}

func statsJSONOf(s Stats) statsJSON {
	j := statsJSON{
		tableStatsJSON:   tableJSONOf(s.TableStats),
		LastErrorAt:      instantJSON(s.LastErrorAt),
		FailingSince:     instantJSON(s.FailingSince),
		Retries:          s.Retries,
		JournalBytes:     s.JournalBytes,
		FsyncLatencyLast: s.FsyncLatencyLast.Seconds(),
		FsyncLatencyAvg:  s.FsyncLatencyAvg.Seconds(),
		JournalSyncs:     s.JournalSyncs,
		JournalLag:       s.JournalLag.Seconds(),
		JournalPending:   s.JournalPending,
		Tables:           make(map[string]tableStatsJSON, len(s.Tables)),
	}
	if s.LastError != nil {
		e := s.LastError.Error()
		j.LastError = &e
	}
	for name, t := range s.Tables {
		tj := tableJSONOf(t)
		ml := t.MaxLoss.Seconds()
		tj.MaxLoss = &ml
		j.Tables[name] = tj
	}
	return j
}

func tableJSONOf(t TableStats) tableStatsJSON {
	return tableStatsJSON{
		Dirty: t.Dirty, OldestAge: t.OldestAge.Seconds(),
		Buffered: t.Buffered, Coalesced: t.Coalesced, PassedThrough: t.PassedThrough,
		Barriers: t.Barriers, ReadsByKey: t.ReadsByKey,
		Probes: t.Probes, ProbeFailures: t.ProbeFailures,
		Flushes: t.Flushes, FlushedRows: t.FlushedRows, FlushErrors: t.FlushErrors,
		NoMatch: t.NoMatch, DeadLetters: t.DeadLetters, Evictions: t.Evictions,
		JournalUnapplied: t.JournalUnapplied, BufferBytes: t.BufferBytes,
		Full: t.Full, Throttled: t.Throttled, MaxLossViolations: t.MaxLossViolations,
		OverdueSince: instantJSON(t.OverdueSince),
	}
}

// instantJSON is t in RFC 3339 with nanoseconds, or nil for the zero time.
func instantJSON(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}
