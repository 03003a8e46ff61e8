package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for -db postgres
	_ "github.com/mattn/go-sqlite3"    // the "sqlite3" driver for -db sqlite

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/benchchart"
)

// The bench's workload: one counter table, Zipf-skewed keys.
const (
	benchTable     = "writeback_bench_counters"
	benchZipfS     = 1.1 // key popularity skew: key 1 is the most written
	latencyEvery   = 8   // one Exec in this many is timed
	connectTimeout = 5 * time.Second
	sqliteParams   = "_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=10000"
)

// benchOptions are the command's flags.
type benchOptions struct {
	db, dsn           string
	duration, maxLoss time.Duration
	goroutines, keys  int
	svg               string
}

func benchUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `usage: writeback bench [flags]

Runs a counter workload, UPDATE %s SET n = n + 1 WHERE id = ?
over Zipf-skewed keys, for the same time in each mode, one after the other:
  direct                 autocommit UPDATEs on the base driver
  synchronous_commit=off the same, with that session setting (PostgreSQL only)
  ack: memory            through writeback, acknowledged from memory
  memory + journal       the same, with a journal (fsync everysec)
  ack: disk              acknowledged once the journal record is fsynced
It prints a progress line each second, a table (writes/s, ratio to direct,
row writes to the database, Exec latency), and checks that after Flush the
sum of n equals the writes acknowledged (exit 1 if not). -svg writes a chart.

The table is dropped and created afresh before each mode, and dropped at the
end; journals go to a temporary directory. On PostgreSQL the journal modes
leave writeback's tables writeback_checkpoint and writeback_applied behind,
with one checkpoint row per journal.

flags:
`, benchTable)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// runBench is "writeback bench".
func runBench(args []string, stdout, stderr io.Writer) int {
	var o benchOptions
	fs := flag.NewFlagSet("writeback bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	fs.StringVar(&o.db, "db", "sqlite", "the database: sqlite or postgres")
	fs.StringVar(&o.dsn, "dsn", "", "the base driver's DSN (sqlite: default a new file in a temporary directory;\npostgres: as pgx takes it, default the PG* environment variables)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each mode runs")
	fs.IntVar(&o.goroutines, "goroutines", 8, "goroutines writing")
	fs.IntVar(&o.keys, "keys", 1000, "counter rows (keys)")
	fs.DurationVar(&o.maxLoss, "maxloss", time.Second, "max_loss of the counter table")
	fs.StringVar(&o.svg, "svg", "", "write the chart to this SVG file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			benchUsage(stdout, fs)
			return exitOK
		}
		fmt.Fprintln(stderr, `run "writeback bench -h" for usage`)
		return exitUsage
	}
	if err := o.validate(fs.Args()); err != nil {
		fmt.Fprintln(stderr, "writeback bench:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return benchMain(ctx, o, stdout, stderr)
}

func (o benchOptions) validate(rest []string) error {
	switch {
	case len(rest) > 0:
		return fmt.Errorf("unexpected arguments %q", rest)
	case o.db != "sqlite" && o.db != "postgres":
		return fmt.Errorf("-db %q: want sqlite or postgres", o.db)
	case o.duration <= 0:
		return fmt.Errorf("-duration %s: want a positive duration", o.duration)
	case o.maxLoss <= 0:
		return fmt.Errorf("-maxloss %s: want a positive duration", o.maxLoss)
	case o.goroutines < 1 || o.goroutines > 10000:
		return fmt.Errorf("-goroutines %d: want 1 to 10000", o.goroutines)
	case o.keys < 1 || o.keys > 10_000_000:
		return fmt.Errorf("-keys %d: want 1 to 10000000", o.keys)
	}
	return nil
}

// benchMode is one way of running the workload.
type benchMode struct {
	label    string
	async    bool   // direct, with synchronous_commit=off
	buffered bool   // through writeback
	ack      string // writeback: the table's ack level
	fsync    string // writeback: the journal's fsync policy; "" for no journal
}

// benchModes are the modes run on db, in order.
func benchModes(db string) []benchMode {
	modes := []benchMode{{label: "direct"}}
	if db == "postgres" {
		modes = append(modes, benchMode{label: "synchronous_commit=off", async: true})
	}
	return append(modes,
		benchMode{label: "ack: memory", buffered: true, ack: "memory"},
		benchMode{label: "memory + journal (everysec)", buffered: true, ack: "memory", fsync: "everysec"},
		benchMode{label: "ack: disk (fsync always)", buffered: true, ack: "disk", fsync: "always"},
	)
}

// modeResult is what one mode did.
type modeResult struct {
	mode      benchMode
	acked     int64         // UPDATEs that returned no error
	elapsed   time.Duration // the workload, plus the final Flush for write-back
	flushTime time.Duration
	rowWrites int64 // row writes the database executed
	sum       int64 // SUM(n) after the run (and Flush)
	lat       latencyHist
	samples   []benchchart.Sample
	stats     writeback.Stats // write-back: after the final Flush
}

func (r *modeResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.acked) / r.elapsed.Seconds()
}

// benchEnv is what every mode shares: the base database and the directory
// holding the rules files and journals.
type benchEnv struct {
	o        benchOptions
	driver   string // base driver: sqlite3 or pgx
	dsn      string
	dir      string
	admin    *sql.DB // direct connections: schema, sums, and the direct mode
	terminal bool
	stdout   io.Writer
	runs     int // write-back modes run so far: numbers their rules files and journals
}

func benchMain(ctx context.Context, o benchOptions, stdout, stderr io.Writer) int {
	dir, err := os.MkdirTemp("", "writeback-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "writeback bench:", err)
		return exitUsage
	}
	defer os.RemoveAll(dir)
	if strings.ContainsAny(dir, " \t") {
		// The writeback DSN separates its fields with spaces; only dsn= may hold one.
		fmt.Fprintf(stderr, "writeback bench: temporary directory %q contains a space, which a rules= path cannot; set TMPDIR\n", dir)
		return exitUsage
	}
	env := &benchEnv{o: o, dir: dir, dsn: o.dsn, terminal: benchchart.IsTerminal(stdout), stdout: stdout}
	where := o.dsn
	switch o.db {
	case "sqlite":
		env.driver = "sqlite3"
		if env.dsn == "" {
			env.dsn = "file:" + filepath.Join(dir, "bench.db") + "?" + sqliteParams
			where = "a new file in a temporary directory, WAL, synchronous=NORMAL"
		}
	case "postgres":
		env.driver = "pgx"
		where = describePostgres(o.dsn)
	}
	if env.admin, err = openChecked(ctx, env.driver, env.dsn); err != nil {
		fmt.Fprintf(stderr, "writeback bench: cannot connect to %s (%s): %v\n", o.db, where, err)
		return exitUsage
	}
	defer env.admin.Close()
	poolFor(env.admin, o.goroutines)
	defer env.dropTable()

	fmt.Fprintf(stdout, "writeback bench: %s (%s); UPDATE %s SET n = n + 1 WHERE id = ? over %d keys (Zipf s=%.1f); %d goroutines; %s per mode; max_loss %s\n",
		o.db, where, benchTable, o.keys, benchZipfS, o.goroutines, o.duration, o.maxLoss)
	var results []*modeResult
	for _, m := range benchModes(o.db) {
		r, err := env.runMode(ctx, m)
		if err != nil {
			fmt.Fprintf(stderr, "writeback bench: %s: %v\n", m.label, err)
			if errors.Is(err, errConnect) {
				return exitUsage
			}
			return exitProblems
		}
		results = append(results, r)
	}
	fmt.Fprintln(stdout)
	printBenchTable(stdout, results, o.maxLoss)
	if o.db == "sqlite" && o.dsn == "" {
		fmt.Fprintln(stdout, "SQLite in WAL mode with synchronous=NORMAL does not fsync at each commit: direct is not durable against\n"+
			"power loss there, where ack: disk is (its journal record is fsynced before Exec returns).")
	}
	ok := printBenchChecks(stdout, results)
	if o.svg != "" {
		if err := writeBenchChart(o, results); err != nil {
			fmt.Fprintln(stderr, "writeback bench: writing the chart:", err)
			return exitProblems
		}
		fmt.Fprintf(stdout, "chart: %s\n", absPath(o.svg))
	}
	if !ok {
		return exitProblems
	}
	return exitOK
}

// describePostgres names the server and database a pgx DSN leads to,
// without its password: the DSN itself may hold one.
func describePostgres(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "-dsn not understood"
	}
	from := ""
	if dsn == "" {
		from = ", from the PG* environment variables"
	}
	return fmt.Sprintf("user %s, host %s, port %d, database %s%s", cfg.User, cfg.Host, cfg.Port, cfg.Database, from)
}

// errConnect marks the failures to reach the database (exit status 2).
var errConnect = errors.New("cannot connect")

// openChecked opens driverName's dsn and checks that it answers.
func openChecked(ctx context.Context, driverName, dsn string) (*sql.DB, error) {
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// poolFor keeps one connection per goroutine open: database/sql's default of
// two idle connections would close and reopen them all the time.
func poolFor(db *sql.DB, goroutines int) {
	db.SetMaxOpenConns(goroutines + 1)
	db.SetMaxIdleConns(goroutines + 1)
}

// placeholder is the statement's parameter as the base database spells it.
func (e *benchEnv) placeholder() string {
	if e.driver == "pgx" {
		return "$1"
	}
	return "?"
}

// resetTable drops the table and creates it with keys rows of n = 0.
func (e *benchEnv) resetTable(ctx context.Context) error {
	if err := e.dropTableCtx(ctx); err != nil {
		return err
	}
	tx, err := e.admin.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	if _, err := tx.ExecContext(ctx, "CREATE TABLE "+benchTable+" (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)"); err != nil {
		return err
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO "+benchTable+" (id, n) VALUES ("+e.placeholder()+", 0)")
	if err != nil {
		return err
	}
	defer ins.Close()
	for id := 1; id <= e.o.keys; id++ {
		if _, err := ins.ExecContext(ctx, id); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (e *benchEnv) dropTableCtx(ctx context.Context) error {
	_, err := e.admin.ExecContext(ctx, "DROP TABLE IF EXISTS "+benchTable)
	return err
}

// dropTable removes the table at the end, whatever happened.
func (e *benchEnv) dropTable() {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	e.dropTableCtx(ctx) //nolint:errcheck // best effort: the run's result is already reported
}

// asyncDSN is the base DSN with synchronous_commit=off as a session setting
// (pgx passes unknown DSN settings to the server as run-time parameters).
func asyncDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if strings.Contains(dsn, "?") {
			return dsn + "&synchronous_commit=off"
		}
		return dsn + "?synchronous_commit=off"
	}
	return strings.TrimSpace(dsn + " synchronous_commit=off")
}

// rulesFor is the rules file of write-back mode m, the nth run; its journal
// (if any) is a new directory.
func (e *benchEnv) rulesFor(m benchMode, n int) string {
	var b strings.Builder
	if m.fsync != "" {
		fmt.Fprintf(&b, "journal:\n  path: %s\n  fsync: %s\n", filepath.Join(e.dir, fmt.Sprintf("journal-%d", n)), m.fsync)
	}
	fmt.Fprintf(&b, "tables:\n  %s:\n    mode: back\n    key: [id]\n    max_loss: %s\n    ack: %s\n", benchTable, e.o.maxLoss, m.ack)
	return b.String()
}

// runMode runs the workload in mode m on a fresh table and reads back the sum.
func (e *benchEnv) runMode(ctx context.Context, m benchMode) (*modeResult, error) {
	if err := e.resetTable(ctx); err != nil {
		return nil, fmt.Errorf("creating %s: %w", benchTable, err)
	}
	r := &modeResult{mode: m}
	db := e.admin
	switch {
	case m.async:
		adb, err := openChecked(ctx, e.driver, asyncDSN(e.dsn))
		if err != nil {
			return nil, fmt.Errorf("%w with synchronous_commit=off: %v", errConnect, err)
		}
		defer adb.Close()
		var sc string
		if err := adb.QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&sc); err != nil || sc != "off" {
			return nil, fmt.Errorf("synchronous_commit=off in the DSN did not take: %q, %v", sc, err)
		}
		poolFor(adb, e.o.goroutines)
		db = adb
	case m.buffered:
		e.runs++
		rulesPath := filepath.Join(e.dir, fmt.Sprintf("rules-%d.yaml", e.runs))
		if err := os.WriteFile(rulesPath, []byte(e.rulesFor(m, e.runs)), 0o644); err != nil {
			return nil, err
		}
		wb, err := sql.Open("writeback", "driver="+e.driver+" rules="+rulesPath+" dsn="+e.dsn)
		if err == nil {
			err = wb.PingContext(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("opening writeback: %w", err)
		}
		defer wb.Close() // flushes what is left if we return early
		poolFor(wb, e.o.goroutines)
		db = wb
	}

	mon := benchchart.Monitor{Label: m.label, Out: e.stdout, Terminal: e.terminal, SampleTick: 50 * time.Millisecond}
	if m.buffered {
		mon.Buffer = func() (int, time.Duration, bool) {
			st, err := writeback.StatsOf(db)
			return st.Dirty, st.OldestAge, err == nil
		}
	}
	var err error
	r.acked, r.elapsed, err = e.workload(ctx, db, &mon, &r.lat, func(s []benchchart.Sample) { r.samples = s })
	if err != nil {
		return nil, err
	}
	r.rowWrites = r.acked
	if m.buffered {
		t0 := time.Now()
		if err := writeback.Flush(ctx, db); err != nil {
			return nil, fmt.Errorf("final Flush: %w", err)
		}
		r.flushTime = time.Since(t0)
		r.elapsed += r.flushTime
		if r.stats, err = writeback.StatsOf(db); err != nil {
			return nil, err
		}
		r.rowWrites = r.stats.FlushedRows
		if err := db.Close(); err != nil {
			return nil, fmt.Errorf("closing writeback: %w", err)
		}
	}
	if err := e.admin.QueryRowContext(ctx, "SELECT COALESCE(SUM(n), 0) FROM "+benchTable).Scan(&r.sum); err != nil {
		return nil, fmt.Errorf("reading SUM(n): %w", err)
	}
	return r, nil
}

// workload runs the goroutines on db for the run's duration, monitored by
// mon, and returns the UPDATEs acknowledged and how long they took. It stops
// at the first error and returns it. done receives the monitor's samples.
func (e *benchEnv) workload(ctx context.Context, db *sql.DB, mon *benchchart.Monitor, lat *latencyHist, done func([]benchchart.Sample)) (int64, time.Duration, error) {
	q := "UPDATE " + benchTable + " SET n = n + 1 WHERE id = " + e.placeholder()
	var (
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		stop.Store(true)
	}
	acked := benchchart.NewCounter(e.o.goroutines)
	hists := make([]latencyHist, e.o.goroutines)
	mon.Writes = acked.Load
	running := mon.Start()
	start := time.Now()
	timer := time.AfterFunc(e.o.duration, func() { stop.Store(true) })
	defer timer.Stop()
	stopOnCancel := context.AfterFunc(ctx, func() { fail(context.Cause(ctx)) })
	defer stopOnCancel()
	for g := range e.o.goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The same seeds in every mode: the same sequence of keys.
			zipf := rand.NewZipf(rand.New(rand.NewPCG(1, uint64(g))), benchZipfS, 1, uint64(e.o.keys-1))
			h := &hists[g]
			for i := 0; !stop.Load(); i++ {
				id := int64(zipf.Uint64()) + 1
				timed := i%latencyEvery == 0
				var t0 time.Time
				if timed {
					t0 = time.Now()
				}
				// A fresh context: stopping the run must not fail an UPDATE in flight.
				if _, err := db.ExecContext(context.Background(), q, id); err != nil {
					fail(fmt.Errorf("UPDATE (id %d): %w", id, err))
					return
				}
				if timed {
					h.record(time.Since(t0))
				}
				acked.Add(g)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	done(running.Stop())
	for i := range hists {
		lat.merge(&hists[i])
	}
	return acked.Load(), elapsed, firstErr
}

// printBenchTable writes the results table.
func printBenchTable(w io.Writer, results []*modeResult, maxLoss time.Duration) {
	direct := results[0].rate()
	fmt.Fprintf(w, "%-28s %12s %11s %10s %12s %10s %10s\n", "mode", "writes", "writes/s", "× direct", "row writes", "p50 Exec", "p99 Exec")
	for _, r := range results {
		ratio := "-"
		if direct > 0 {
			ratio = fmt.Sprintf("%.1f×", r.rate()/direct)
		}
		p50, p99 := "-", "-"
		if d, ok := r.lat.quantile(0.50); ok {
			p50 = fmtLatency(d)
		}
		if d, ok := r.lat.quantile(0.99); ok {
			p99 = fmtLatency(d)
		}
		fmt.Fprintf(w, "%-28s %12s %11s %10s %12s %10s %10s\n", r.mode.label, benchchart.Count(float64(r.acked)),
			benchchart.Count(r.rate()), ratio, benchchart.Count(float64(r.rowWrites)), p50, p99)
	}
	fmt.Fprintf(w, "writes/s counts the final Flush in the write-back modes' time; row writes are the UPDATEs the database executed\n"+
		"(direct) or the rows the flushes wrote (write-back); Exec latency from one call in %d.\n", latencyEvery)
	for _, r := range results {
		if r.mode.buffered {
			fmt.Fprintf(w, "%-28s oldest dirty row seen %s (max_loss %s); final Flush %s; %d flush transactions\n",
				r.mode.label+":", benchchart.MaxOldest(r.samples).Round(time.Millisecond), maxLoss,
				r.flushTime.Round(10*time.Microsecond), r.stats.Flushes)
		}
	}
}

// printBenchChecks writes one check line per mode and reports whether all
// passed: SUM(n) equals the acknowledged UPDATEs, and the write-back modes'
// Stats agree.
func printBenchChecks(w io.Writer, results []*modeResult) bool {
	ok := true
	for _, r := range results {
		verdict := "OK"
		var why []string
		if r.sum != r.acked {
			why = append(why, fmt.Sprintf("SUM(n) differs by %d", r.sum-r.acked))
		}
		if r.mode.buffered {
			st := r.stats
			if st.Buffered+st.PassedThrough != r.acked {
				why = append(why, fmt.Sprintf("Stats: Buffered %d + PassedThrough %d != %d acknowledged", st.Buffered, st.PassedThrough, r.acked))
			}
			if st.NoMatch != 0 || st.DeadLetters != 0 || st.Dirty != 0 {
				why = append(why, fmt.Sprintf("Stats: NoMatch %d, DeadLetters %d, Dirty %d after Flush (want 0)", st.NoMatch, st.DeadLetters, st.Dirty))
			}
		}
		if len(why) > 0 {
			verdict = "FAILED: " + strings.Join(why, "; ")
			ok = false
		}
		after := ""
		if r.mode.buffered {
			after = " after Flush"
		}
		eq := "="
		if r.sum != r.acked {
			eq = "!="
		}
		fmt.Fprintf(w, "check %-28s SUM(n)%s %s %s acknowledged %s: %s\n", r.mode.label+":", after,
			benchchart.Count(float64(r.sum)), eq, benchchart.Count(float64(r.acked)), verdict)
	}
	return ok
}

// fmtLatency prints d with three significant digits.
func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}

// writeBenchChart writes the SVG chart of the results to o.svg.
func writeBenchChart(o benchOptions, results []*modeResult) error {
	c := benchchart.Chart{
		Title:    fmt.Sprintf("writeback bench: %s, %d keys (Zipf), %d goroutines, %s per mode", o.db, o.keys, o.goroutines, o.duration),
		Subtitle: "UPDATE " + benchTable + " SET n = n + 1 WHERE id = ?; write-back throughput includes the final Flush",
		Unit:     "writes/s",
		MaxLoss:  o.maxLoss,
		Span:     o.duration,
	}
	direct := results[0].rate()
	for _, r := range results {
		note := ""
		if direct > 0 && r != results[0] {
			note = fmt.Sprintf("(%.1f× direct)", r.rate()/direct)
		}
		c.Bars = append(c.Bars, benchchart.Bar{Label: r.mode.label, Value: r.rate(), Note: note})
		if r.mode.buffered {
			c.Series = append(c.Series, benchchart.Series{Label: r.mode.label, Points: benchchart.Points(r.samples)})
		}
	}
	return c.WriteFile(o.svg)
}

// absPath is path made absolute, to say where a file went; path itself if
// that fails.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
