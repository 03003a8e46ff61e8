package writebackprom_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/writebackprom"
)

// The workload: N buffered UPDATEs spread over K existing rows of counters,
// flushed; M UPDATEs of views' keys that have no row (rows_affected:
// assume acknowledges them), which the flush reports as no-match; then D
// more UPDATEs of counters left buffered.
const (
	N = 200
	K = 7
	M = 3
	D = 4
)

// openWorkload opens a writeback SQLite database, runs the workload and
// returns it with the plain *sql.DB of the same file.
func openWorkload(t *testing.T) (wb, plain *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	rules := filepath.Join(dir, "writeback.yaml")
	if err := os.WriteFile(rules, []byte(`tables:
  counters: {mode: back, key: [id], max_loss: 1h}
  views: {mode: back, key: [page], max_loss: 90s, rows_affected: assume}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	dsn := "file:" + filepath.Join(dir, "app.db") + "?_journal_mode=WAL&_busy_timeout=10000"
	plain, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	for _, s := range []string{
		"CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
		"CREATE TABLE views (page INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
	} {
		if _, err := plain.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	for id := range K {
		if _, err := plain.Exec("INSERT INTO counters VALUES (?, 0)", id); err != nil {
			t.Fatal(err)
		}
	}
	wb, err = sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wb.Close() })
	for i := range N {
		if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", i%K); err != nil {
			t.Fatal(err)
		}
	}
	for page := range M {
		if _, err := wb.Exec("UPDATE views SET n = n + 1 WHERE page = ?", 1000+page); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeback.Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	for i := range D {
		if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", i); err != nil {
			t.Fatal(err)
		}
	}
	return wb, plain
}

// The figures each family exports, as StatsOf gives them.
var (
	perTable = map[string]func(writeback.TableStats) float64{
		"writeback_dirty_rows":                  func(t writeback.TableStats) float64 { return float64(t.Dirty) },
		"writeback_oldest_dirty_age_seconds":    func(t writeback.TableStats) float64 { return t.OldestAge.Seconds() },
		"writeback_max_loss_seconds":            func(t writeback.TableStats) float64 { return t.MaxLoss.Seconds() },
		"writeback_overdue":                     func(t writeback.TableStats) float64 { return b2f(!t.OverdueSince.IsZero()) },
		"writeback_buffer_bytes":                func(t writeback.TableStats) float64 { return float64(t.BufferBytes) },
		"writeback_journal_unapplied_writes":    func(t writeback.TableStats) float64 { return float64(t.JournalUnapplied) },
		"writeback_buffered_writes_total":       func(t writeback.TableStats) float64 { return float64(t.Buffered) },
		"writeback_coalesced_writes_total":      func(t writeback.TableStats) float64 { return float64(t.Coalesced) },
		"writeback_passed_through_writes_total": func(t writeback.TableStats) float64 { return float64(t.PassedThrough) },
		"writeback_barriers_total":              func(t writeback.TableStats) float64 { return float64(t.Barriers) },
		"writeback_reads_by_key_total":          func(t writeback.TableStats) float64 { return float64(t.ReadsByKey) },
		"writeback_probes_total":                func(t writeback.TableStats) float64 { return float64(t.Probes) },
		"writeback_probe_failures_total":        func(t writeback.TableStats) float64 { return float64(t.ProbeFailures) },
		"writeback_flushes_total":               func(t writeback.TableStats) float64 { return float64(t.Flushes) },
		"writeback_flushed_rows_total":          func(t writeback.TableStats) float64 { return float64(t.FlushedRows) },
		"writeback_flush_errors_total":          func(t writeback.TableStats) float64 { return float64(t.FlushErrors) },
		"writeback_no_match_rows_total":         func(t writeback.TableStats) float64 { return float64(t.NoMatch) },
		"writeback_dead_letters_total":          func(t writeback.TableStats) float64 { return float64(t.DeadLetters) },
		"writeback_evictions_total":             func(t writeback.TableStats) float64 { return float64(t.Evictions) },
		"writeback_full_buffer_writes_total":    func(t writeback.TableStats) float64 { return float64(t.Full) },
		"writeback_throttled_writes_total":      func(t writeback.TableStats) float64 { return float64(t.Throttled) },
		"writeback_max_loss_violations_total":   func(t writeback.TableStats) float64 { return float64(t.MaxLossViolations) },
	}
	perConnector = map[string]func(writeback.Stats) float64{
		"writeback_failing":             func(s writeback.Stats) float64 { return b2f(!s.FailingSince.IsZero()) },
		"writeback_flush_retries_total": func(s writeback.Stats) float64 { return float64(s.Retries) },
		"writeback_last_flush_error_timestamp_seconds": func(s writeback.Stats) float64 {
			if s.LastErrorAt.IsZero() {
				return 0
			}
			return float64(s.LastErrorAt.UnixNano()) / 1e9
		},
		"writeback_journal_bytes":              func(s writeback.Stats) float64 { return float64(s.JournalBytes) },
		"writeback_journal_lag_seconds":        func(s writeback.Stats) float64 { return s.JournalLag.Seconds() },
		"writeback_journal_pending_records":    func(s writeback.Stats) float64 { return float64(s.JournalPending) },
		"writeback_journal_fsync_last_seconds": func(s writeback.Stats) float64 { return s.FsyncLatencyLast.Seconds() },
		"writeback_journal_fsync_avg_seconds":  func(s writeback.Stats) float64 { return s.FsyncLatencyAvg.Seconds() },
		"writeback_journal_syncs_total":        func(s writeback.Stats) float64 { return float64(s.JournalSyncs) },
		"writeback_last_crash_lost_writes":     func(s writeback.Stats) float64 { return 0 }, // TestCrashReportWithoutJournal: a report with a loss
	}
)

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// value is a gathered metric's value, whatever its type.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return -1
}

// TestCollectorMatchesStatsOf gathers the collector through a pedantic
// registry (which checks Describe against Collect) and compares every family
// and table label with StatsOf snapshots taken before and after.
func TestCollectorMatchesStatsOf(t *testing.T) {
	wb, _ := openWorkload(t)
	c, err := writebackprom.NewCollector(wb)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	before, err := writeback.StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	after, err := writeback.StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}

	// The workload's own figures, so the comparison is not of zeros.
	if got := before.Tables["counters"]; got.Buffered != N+D || got.FlushedRows != K || got.Dirty != D || got.OldestAge <= 0 || got.MaxLoss != time.Hour {
		t.Fatalf("counters' StatsOf = %+v; want %d buffered, %d flushed, %d dirty, an age, max_loss 1h", got, N+D, K, D)
	}
	if got := before.Tables["views"]; got.NoMatch != M || got.MaxLoss != 90*time.Second {
		t.Fatalf("views' StatsOf = %+v; want %d no-match, max_loss 90s", got, M)
	}

	seen := map[string]bool{}
	for _, mf := range families {
		name := mf.GetName()
		seen[name] = true
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
		wantType := dto.MetricType_GAUGE
		if strings.HasSuffix(name, "_total") {
			wantType = dto.MetricType_COUNTER
		}
		if mf.GetType() != wantType {
			t.Errorf("%s is a %v, want a %v", name, mf.GetType(), wantType)
		}
		if fig, ok := perConnector[name]; ok {
			if len(mf.Metric) != 1 || len(mf.Metric[0].Label) != 0 {
				t.Errorf("%s: %v, want one metric without labels", name, mf.Metric)
				continue
			}
			if got, want := value(mf.Metric[0]), fig(before); got != want || fig(after) != want {
				t.Errorf("%s = %v, want %v (StatsOf)", name, got, want)
			}
			continue
		}
		fig, ok := perTable[name]
		if !ok {
			t.Errorf("unexpected family %s", name)
			continue
		}
		var tables []string
		for _, m := range mf.Metric {
			if len(m.Label) != 1 || m.Label[0].GetName() != "table" {
				t.Errorf("%s: labels %v, want table alone", name, m.Label)
				continue
			}
			table := m.Label[0].GetValue()
			tables = append(tables, table)
			got, lo, hi := value(m), fig(before.Tables[table]), fig(after.Tables[table])
			if name == "writeback_oldest_dirty_age_seconds" {
				// The age grows while the test runs: between the snapshots.
				if got < lo || got > hi {
					t.Errorf("%s{table=%q} = %v, want within [%v, %v]", name, table, got, lo, hi)
				}
			} else if got != lo || lo != hi {
				t.Errorf("%s{table=%q} = %v, want %v (StatsOf before) = %v (after)", name, table, got, lo, hi)
			}
		}
		sort.Strings(tables)
		if fmt.Sprint(tables) != "[counters views]" {
			t.Errorf("%s: tables %v, want [counters views]", name, tables)
		}
	}
	for name := range perTable {
		if !seen[name] {
			t.Errorf("family %s missing", name)
		}
	}
	for name := range perConnector {
		if !seen[name] {
			t.Errorf("family %s missing", name)
		}
	}
	if n, want := testutil.CollectAndCount(c), 2*len(perTable)+len(perConnector); n != want {
		t.Errorf("CollectAndCount = %d, want %d", n, want)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestCollectorWorkloadFigures compares the figures the workload decides
// with the exposition format.
func TestCollectorWorkloadFigures(t *testing.T) {
	wb, _ := openWorkload(t)
	c, err := writebackprom.NewCollector(wb)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`
# HELP writeback_buffered_writes_total Writes acknowledged from memory.
# TYPE writeback_buffered_writes_total counter
writeback_buffered_writes_total{table="counters"} %d
writeback_buffered_writes_total{table="views"} %d
# HELP writeback_coalesced_writes_total Buffered writes merged into a row that was already dirty.
# TYPE writeback_coalesced_writes_total counter
writeback_coalesced_writes_total{table="counters"} %d
writeback_coalesced_writes_total{table="views"} 0
# HELP writeback_dirty_rows Rows buffered and not yet committed to the database.
# TYPE writeback_dirty_rows gauge
writeback_dirty_rows{table="counters"} %d
writeback_dirty_rows{table="views"} 0
# HELP writeback_flushed_rows_total Rows written by committed flush transactions.
# TYPE writeback_flushed_rows_total counter
writeback_flushed_rows_total{table="counters"} %d
writeback_flushed_rows_total{table="views"} %d
# HELP writeback_max_loss_seconds The table's max_loss rule: the bound oldest_dirty_age_seconds is kept under.
# TYPE writeback_max_loss_seconds gauge
writeback_max_loss_seconds{table="counters"} 3600
writeback_max_loss_seconds{table="views"} 90
# HELP writeback_no_match_rows_total Flushed UPDATEs that matched no row.
# TYPE writeback_no_match_rows_total counter
writeback_no_match_rows_total{table="counters"} 0
writeback_no_match_rows_total{table="views"} %d
# HELP writeback_failing 1 while flushes fail (since the first failure of a run of them), 0 otherwise.
# TYPE writeback_failing gauge
writeback_failing 0
`, N+D, M, N-K, D, K, M, M)
	// views' no-match rows were written by the flush (an UPDATE that
	// matched nothing) and counted as flushed too: FlushedRows counts
	// statements' rows, NoMatch says which had no effect.
	names := []string{"writeback_buffered_writes_total", "writeback_coalesced_writes_total", "writeback_dirty_rows",
		"writeback_flushed_rows_total", "writeback_max_loss_seconds", "writeback_no_match_rows_total", "writeback_failing"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestNewCollectorRefusesOtherDatabases(t *testing.T) {
	_, plain := openWorkload(t)
	if c, err := writebackprom.NewCollector(plain); err == nil || c != nil {
		t.Errorf("plain SQLite *sql.DB: collector %v, error %v; want an error", c, err)
	} else if !strings.Contains(err.Error(), "not writeback") {
		t.Errorf("error %q does not say the database is not writeback", err)
	}
	if c, err := writebackprom.NewCollector(nil); err == nil || c != nil {
		t.Errorf("nil *sql.DB: collector %v, error %v; want an error", c, err)
	}
}

// A closed database still reports its last figures; a scrape never panics.
func TestCollectorAfterClose(t *testing.T) {
	wb, _ := openWorkload(t)
	c, err := writebackprom.NewCollector(wb)
	if err != nil {
		t.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := writeback.StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dirty != 0 || st.Tables["counters"].FlushedRows != K+D {
		t.Fatalf("after Close: %+v; want nothing dirty and %d rows flushed", st.Tables["counters"], K+D)
	}
	want := fmt.Sprintf(`
# HELP writeback_flushed_rows_total Rows written by committed flush transactions.
# TYPE writeback_flushed_rows_total counter
writeback_flushed_rows_total{table="counters"} %d
writeback_flushed_rows_total{table="views"} %d
`, K+D, st.Tables["views"].FlushedRows)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "writeback_flushed_rows_total"); err != nil {
		t.Error(err)
	}
}

// Two writeback databases export into one registry, told apart by a label
// added with WrapRegistererWith.
func TestTwoDatabasesOneRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	for _, name := range []string{"a", "b"} {
		wb, _ := openWorkload(t)
		c, err := writebackprom.NewCollector(wb)
		if err != nil {
			t.Fatal(err)
		}
		if err := prometheus.WrapRegistererWith(prometheus.Labels{"db": name}, reg).Register(c); err != nil {
			t.Fatalf("registering db %s: %v", name, err)
		}
	}
	want := fmt.Sprintf(`
# HELP writeback_buffered_writes_total Writes acknowledged from memory.
# TYPE writeback_buffered_writes_total counter
writeback_buffered_writes_total{db="a",table="counters"} %[1]d
writeback_buffered_writes_total{db="a",table="views"} %[2]d
writeback_buffered_writes_total{db="b",table="counters"} %[1]d
writeback_buffered_writes_total{db="b",table="views"} %[2]d
`, N+D, M)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "writeback_buffered_writes_total"); err != nil {
		t.Error(err)
	}
	// Without the label the second registration collides with the first.
	wb, _ := openWorkload(t)
	c, err := writebackprom.NewCollector(wb)
	if err != nil {
		t.Fatal(err)
	}
	plainReg := prometheus.NewRegistry()
	plainReg.MustRegister(c)
	c2, err := writebackprom.NewCollector(wb)
	if err != nil {
		t.Fatal(err)
	}
	if err := plainReg.Register(c2); err == nil {
		t.Error("a second collector with the same metrics registered without a label")
	}
}
