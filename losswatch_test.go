package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/writeback-go/writeback/internal/lossstate"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestCrashReportWithoutJournal kills a child that buffers increments of 1
// without a journal (max_loss 1h: nothing is flushed), then opens the
// connector again: its report bounds the writes lost from above, within 2×
// of the true number, which the test counts (acknowledged writes against
// the database's sum).
func TestCrashReportWithoutJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run child processes")
	}
	// 600 ms: a crash soon after the open (a crash loop), while the state
	// is refreshed every lossstate.StartRefresh.
	for _, run := range []struct {
		driver string
		killAt time.Duration
	}{{"sqlite3", 2500 * time.Millisecond}, {"pgx", 2500 * time.Millisecond}, {"sqlite3", 600 * time.Millisecond}, {"pgx", 600 * time.Millisecond}} {
		driver := run.driver
		t.Run(fmt.Sprintf("%s/kill-at-%s", driver, run.killAt), func(t *testing.T) {
			if driver == "pgx" {
				requirePostgres(t)
			}
			c := crashConfig{driver: driver, keys: 20, workers: 4, mode: "ones", killAt: run.killAt}
			dsn, direct := crashBase(t, driver, c.keys)
			rules := writeRulesFile(t, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
			acked, _, _, killed, _ := runChild(t, c, dsn, rules, 1<<30)
			var got int64
			for _, v := range counterValues(t, direct) {
				got += v
			}
			lost := int64(len(acked)) - got
			var reports []CrashReport
			db, err := openWithHooks(driver, rules, dsn, WithOnCrashReport(func(r CrashReport) { reports = append(reports, r) }))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			st, err := StatsOf(db)
			if err != nil {
				t.Fatal(err)
			}
			r := st.LastCrash
			if r == nil || len(reports) != 1 || r.Journal || !r.Lost() {
				t.Fatalf("report %+v (hook called %d times), want a loss", r, len(reports))
			}
			tl := r.Tables["counters"]
			t.Logf("acknowledged %d writes, the database has %d: %d lost; the report says at most %d writes to %d rows, acknowledged %s to %s (killed at %s)",
				len(acked), got, lost, tl.Writes, tl.Rows, tl.From.Format(time.StampMilli), tl.To.Format(time.StampMilli), killed.Format(time.StampMilli))
			if lost <= 0 {
				t.Fatalf("nothing was lost (%d acknowledged, %d in the database): the test proves nothing", len(acked), got)
			}
			switch {
			case run.killAt >= lossstate.StartWindow && (tl.Writes < lost || tl.Writes > 2*lost):
				t.Errorf("report bounds %d writes, %d were lost: want between %d and %d", tl.Writes, lost, lost, 2*lost)
			case run.killAt < lossstate.StartWindow && (2*tl.Writes < lost || tl.Writes > 2*lost):
				// While the run warms up its rate climbs between two
				// refreshes: the figure is an estimate, not a bound.
				t.Errorf("report says %d writes, %d were lost: want between %d and %d", tl.Writes, lost, lost/2, 2*lost)
			}
			if tl.Rows > tl.Writes || tl.Rows < 1 || !tl.From.Before(killed) || tl.To.Before(killed.Add(-2*time.Second)) {
				t.Errorf("rows %d, window %v to %v against the kill at %v", tl.Rows, tl.From, tl.To, killed)
			}
			if !strings.Contains(r.String(), "counters: at most") {
				t.Errorf("report text %q", r.String())
			}
			// A clean shutdown leaves nothing to report.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db2, err := sql.Open("writeback", "driver="+driver+" rules="+rules+" dsn="+dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			if st, err := StatsOf(db2); err != nil || st.LastCrash != nil {
				t.Fatalf("after a clean shutdown: %+v, %v", st.LastCrash, err)
			}
		})
	}
}

// TestCrashReportWithJournal: the same kill with a journal reports that
// nothing was lost.
func TestCrashReportWithJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run child processes")
	}
	c := crashConfig{driver: "sqlite3", keys: 20, workers: 4, mode: "ones", killAt: 500 * time.Millisecond}
	dsn, direct := crashBase(t, c.driver, c.keys)
	rules := writeRulesFile(t, journalRules(t.TempDir()+"/journal", "everysec", "memory", "1h"))
	acked, _, _, _, _ := runChild(t, c, dsn, rules, 1<<30)
	db, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := StatsOf(db)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.LastCrash; r == nil || !r.Journal || r.Lost() || !strings.Contains(r.String(), "nothing acknowledged was lost") {
		t.Fatalf("report %+v, want a journaled stop with nothing lost", r)
	}
	if err := Flush(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	var got int64
	for _, v := range counterValues(t, direct) {
		got += v
	}
	if got < int64(len(acked)) {
		t.Fatalf("%d acknowledged writes, the database has %d", len(acked), got)
	}
}

// BenchmarkLossState is the cost of keeping the state file: buffered
// counter updates on SQLite from 8 goroutines with it and without it
// (WithStateFile("")), interleaved in one run.
//
//	go test -run '^$' -bench LossState -benchtime 2s -count 4 .
func BenchmarkLossState(b *testing.B) {
	dsn := sqliteDSN(b, "bloss")
	benchFill(b, benchOpen(b, "sqlite3", dsn), false, "counters", benchCounterKeys)
	rules := writeRulesFile(b, benchCounterRules)
	with, err := openWithHooks("sqlite3", rules, dsn, WithStateFile(rules+".state"))
	if err != nil {
		b.Fatal(err)
	}
	without, err := openWithHooks("sqlite3", rules, dsn, WithStateFile(""))
	if err != nil {
		b.Fatal(err)
	}
	for _, db := range []*sql.DB{with, without} {
		benchPool(db)
		b.Cleanup(func() { db.Close() })
	}
	update := func(db *sql.DB) func(r *rand.Rand) error {
		return func(r *rand.Rand) error {
			_, err := db.Exec("UPDATE counters SET views = views + 1 WHERE id = ?", int64(r.IntN(benchCounterKeys)))
			return err
		}
	}
	for _, v := range []struct {
		name string
		db   *sql.DB
	}{{"state", with}, {"none", without}} {
		b.Run(v.name, func(b *testing.B) {
			el := benchWorkers(b, 8, update(v.db), nil)
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
		})
	}
}
