// Package writebackprom exports a writeback database's figures (StatsOf) as
// Prometheus metrics:
//
//	c, err := writebackprom.NewCollector(db)
//	if err != nil { ... }
//	prometheus.MustRegister(c)
//
// Per-table figures carry the label table (the rule's name); connector-wide
// ones have no label. Every scrape reads one StatsOf snapshot, so the figures
// of a scrape agree with each other. To export two writeback databases from
// one registry, register each through prometheus.WrapRegistererWith with a
// label telling them apart.
package writebackprom

import (
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writeback-go/writeback"
)

// tableMetric is one per-table figure.
type tableMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(writeback.TableStats) float64
}

// connectorMetric is one connector-wide figure.
type connectorMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(writeback.Stats) float64
}

// collector exports StatsOf(db) at each Collect.
type collector struct {
	db        *sql.DB
	tables    []tableMetric
	connector []connectorMetric
}

// NewCollector returns a collector of db's figures. It returns an error when
// db was not opened with writeback (sql.Open("writeback", ...) or
// writeback.OpenDB).
func NewCollector(db *sql.DB) (prometheus.Collector, error) {
	if _, err := writeback.StatsOf(db); err != nil {
		return nil, err
	}
	c := &collector{db: db}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	tbl := func(name, help string, kind prometheus.ValueType, value func(writeback.TableStats) float64) {
		c.tables = append(c.tables, tableMetric{prometheus.NewDesc("writeback_"+name, help, []string{"table"}, nil), kind, value})
	}
	conn := func(name, help string, kind prometheus.ValueType, value func(writeback.Stats) float64) {
		c.connector = append(c.connector, connectorMetric{prometheus.NewDesc("writeback_"+name, help, nil, nil), kind, value})
	}
	count := func(n int64) float64 { return float64(n) }

	tbl("dirty_rows", "Rows buffered and not yet committed to the database.", gauge,
		func(t writeback.TableStats) float64 { return float64(t.Dirty) })
	tbl("oldest_dirty_age_seconds", "How long the oldest row not yet committed has waited (0 when none).", gauge,
		func(t writeback.TableStats) float64 { return t.OldestAge.Seconds() })
	tbl("max_loss_seconds", "The table's max_loss rule: the bound oldest_dirty_age_seconds is kept under.", gauge,
		func(t writeback.TableStats) float64 { return t.MaxLoss.Seconds() })
	tbl("overdue", "1 while the table's oldest row not yet committed is past max_loss, 0 otherwise.", gauge,
		func(t writeback.TableStats) float64 { return flag(!t.OverdueSince.IsZero()) })
	tbl("buffer_bytes", "Approximate memory of the rows not yet committed.", gauge,
		func(t writeback.TableStats) float64 { return count(t.BufferBytes) })
	tbl("journal_unapplied_writes", "Journaled writes not yet applied to the database (0 without a journal).", gauge,
		func(t writeback.TableStats) float64 { return count(t.JournalUnapplied) })
	tbl("buffered_writes_total", "Writes acknowledged from memory.", counter,
		func(t writeback.TableStats) float64 { return count(t.Buffered) })
	tbl("coalesced_writes_total", "Buffered writes merged into a row that was already dirty.", counter,
		func(t writeback.TableStats) float64 { return count(t.Coalesced) })
	tbl("passed_through_writes_total", "Writes of a bufferable shape that went to the database instead.", counter,
		func(t writeback.TableStats) float64 { return count(t.PassedThrough) })
	tbl("barriers_total", "Statements that waited for the table's flush.", counter,
		func(t writeback.TableStats) float64 { return count(t.Barriers) })
	tbl("reads_by_key_total", "Reads of one row by key answered from the database plus its buffered writes.", counter,
		func(t writeback.TableStats) float64 { return count(t.ReadsByKey) })
	tbl("probes_total", "Queries asking whether rows exist (rows_affected: exact).", counter,
		func(t writeback.TableStats) float64 { return count(t.Probes) })
	tbl("probe_failures_total", "Writes whose existence probe the database did not answer.", counter,
		func(t writeback.TableStats) float64 { return count(t.ProbeFailures) })
	tbl("flushes_total", "Committed flush transactions.", counter,
		func(t writeback.TableStats) float64 { return count(t.Flushes) })
	tbl("flushed_rows_total", "Rows written by committed flush transactions.", counter,
		func(t writeback.TableStats) float64 { return count(t.FlushedRows) })
	tbl("flush_errors_total", "Failed flush attempts (each retried or isolated).", counter,
		func(t writeback.TableStats) float64 { return count(t.FlushErrors) })
	tbl("no_match_rows_total", "Flushed UPDATEs that matched no row.", counter,
		func(t writeback.TableStats) float64 { return count(t.NoMatch) })
	tbl("dead_letters_total", "Rows the database refused permanently.", counter,
		func(t writeback.TableStats) float64 { return count(t.DeadLetters) })
	tbl("evictions_total", "Rows flushed early because the table's max_dirty was reached.", counter,
		func(t writeback.TableStats) float64 { return count(t.Evictions) })
	tbl("full_buffer_writes_total", "Writes that met a full buffer (on_full decided).", counter,
		func(t writeback.TableStats) float64 { return count(t.Full) })
	tbl("throttled_writes_total", "Writes that waited for a flush to keep max_loss.", counter,
		func(t writeback.TableStats) float64 { return count(t.Throttled) })
	tbl("max_loss_violations_total", "Times the oldest row not yet committed went past max_loss.", counter,
		func(t writeback.TableStats) float64 { return count(t.MaxLossViolations) })

	conn("failing", "1 while flushes fail (since the first failure of a run of them), 0 otherwise.", gauge,
		func(s writeback.Stats) float64 { return flag(!s.FailingSince.IsZero()) })
	conn("flush_retries_total", "Failed flush attempts scheduled for retry.", counter,
		func(s writeback.Stats) float64 { return count(s.Retries) })
	conn("last_flush_error_timestamp_seconds", "When the last flush error happened, in Unix seconds (0 if none).", gauge,
		func(s writeback.Stats) float64 { return unixSeconds(s.LastErrorAt) })
	conn("journal_bytes", "Size of the journal's files, or of the records waiting for JetStream for a replicated journal (0 without a journal).", gauge,
		func(s writeback.Stats) float64 { return count(s.JournalBytes) })
	conn("journal_lag_seconds", "Age of the oldest journal record not yet fsynced, or not yet stored by JetStream for a replicated journal (0 without a journal).", gauge,
		func(s writeback.Stats) float64 { return s.JournalLag.Seconds() })
	conn("journal_pending_records", "Journal records not yet durable: not fsynced, or not yet stored by JetStream (0 without a journal).", gauge,
		func(s writeback.Stats) float64 { return count(s.JournalPending) })
	conn("journal_fsync_last_seconds", "Duration of the journal's last fsync, or of its last publish round trip for a replicated journal.", gauge,
		func(s writeback.Stats) float64 { return s.FsyncLatencyLast.Seconds() })
	conn("journal_fsync_avg_seconds", "Mean duration of the journal's fsyncs (or publish round trips) since the database was opened.", gauge,
		func(s writeback.Stats) float64 { return s.FsyncLatencyAvg.Seconds() })
	conn("journal_syncs_total", "The journal's completed fsyncs, or messages acknowledged by JetStream for a replicated journal.", counter,
		func(s writeback.Stats) float64 { return count(s.JournalSyncs) })
	conn("last_crash_lost_writes", "At most how many acknowledged writes the unclean stop of the run before lost (0: a clean stop, or a journal that replayed them); see writeback.CrashReport.", gauge,
		func(s writeback.Stats) float64 {
			var n int64
			if s.LastCrash.Lost() {
				for _, t := range s.LastCrash.Tables {
					n += t.Writes
				}
			}
			return count(n)
		})
	return c, nil
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.tables {
		ch <- m.desc
	}
	for _, m := range c.connector {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector: one StatsOf snapshot, as constant
// metrics.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, err := writeback.StatsOf(c.db)
	if err != nil { // NewCollector checked db; report rather than panic all the same
		ch <- prometheus.NewInvalidMetric(c.connector[0].desc, err)
		return
	}
	for _, m := range c.tables {
		for name, t := range st.Tables {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(t), name)
		}
	}
	for _, m := range c.connector {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st))
	}
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
