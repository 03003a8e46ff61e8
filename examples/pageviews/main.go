// Command pageviews is writeback's main job, measured: a web app counting
// page views in SQLite, run twice for the same time, first with every view an
// autocommit UPDATE on SQLite, then through the writeback driver, which
// acknowledges the UPDATEs from memory, coalesces them per page and flushes
// them in batched transactions.
//
// Run it from the repository root; it needs no set-up:
//
//	go run ./examples/pageviews [-pages 1000] [-goroutines 8] [-duration 3s] [-maxloss 1s] [-svg pageviews.svg] [-keep]
//
// It creates a temporary folder holding two SQLite databases (WAL,
// synchronous=NORMAL, busy_timeout) and the rules file (writeback.yaml from
// this folder, with max_loss set by -maxloss), and removes it at exit unless
// -keep is given. Page popularity is skewed (Zipf, s=1.1), as on a real site.
// A second, write-through table, orders, gets at most one INSERT every 5ms in
// both runs, to show the split: its rows are in the database as soon as Exec
// returns, while page_views lags by at most max_loss until writeback.Flush.
//
// While each run goes it prints a progress line every second: updates per
// second and, through writeback, the dirty rows and the oldest one's age
// (rewritten in place on a terminal). At the end it writes a chart,
// pageviews.svg in the current directory (-svg names another file, -svg ""
// none): both throughputs, and the write-back run's dirty rows and oldest age
// over time against max_loss.
//
// The report ends with a check: after Flush, SUM(views) in each database
// equals the number of UPDATEs acknowledged to the application. The command
// exits 1 when the check fails or any statement returns an error.
package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/benchchart"
)

// defaultRules is the rules file; its max_loss is replaced by -maxloss.
//
//go:embed writeback.yaml
var defaultRules string

const (
	zipfS         = 1.1                  // popularity skew: page 1 is the most viewed
	orderInterval = 5 * time.Millisecond // one write-through INSERT INTO orders per interval
	sqliteParams  = "_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=10000"
)

type options struct {
	pages, goroutines int
	duration, maxLoss time.Duration
	keep              bool
	svg               string // the chart's file; "" writes none
	terminal          bool   // stdout is a terminal: progress rewritten in place
}

func main() {
	var o options
	flag.IntVar(&o.pages, "pages", 1000, "number of pages (rows in page_views)")
	flag.IntVar(&o.goroutines, "goroutines", 8, "goroutines counting page views")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "how long each of the two runs lasts")
	flag.DurationVar(&o.maxLoss, "maxloss", time.Second, "max_loss of page_views in the rules file")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary folder (databases and rules file)")
	flag.StringVar(&o.svg, "svg", "pageviews.svg", `write the chart to this SVG file ("" for none)`)
	flag.Parse()
	o.terminal = benchchart.IsTerminal(os.Stdout)
	if err := validate(o); err != nil {
		fmt.Fprintln(os.Stderr, "pageviews:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pageviews: FAIL:", err)
		os.Exit(1)
	}
}

func validate(o options) error {
	switch {
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	case o.pages < 1:
		return fmt.Errorf("-pages %d: want at least 1", o.pages)
	case o.goroutines < 1:
		return fmt.Errorf("-goroutines %d: want at least 1", o.goroutines)
	case o.duration <= 0:
		return fmt.Errorf("-duration %s: want a positive duration", o.duration)
	case o.maxLoss <= 0:
		return fmt.Errorf("-maxloss %s: want a positive duration", o.maxLoss)
	}
	return nil
}

var maxLossLine = regexp.MustCompile(`(?m)^([ \t]*max_loss:[ \t]*)[^ \t\n#]+`)

// rulesText is the embedded rules file with page_views' max_loss set to d.
func rulesText(d time.Duration) (string, error) {
	if n := len(maxLossLine.FindAllStringIndex(defaultRules, -1)); n != 1 {
		return "", fmt.Errorf("embedded writeback.yaml has %d max_loss lines, want 1", n)
	}
	return maxLossLine.ReplaceAllString(defaultRules, "${1}"+d.String()), nil
}

// result is what one run acknowledged to the application.
type result struct {
	views, orders int64 // UPDATEs of page_views and INSERTs into orders that returned no error
	elapsed       time.Duration
	samples       []benchchart.Sample // the run's progress, sampled
}

// dbFigures are what a plain sqlite3 connection reads from a database file.
type dbFigures struct{ views, orders int64 }

// setup is what prepare leaves in the temporary folder.
type setup struct {
	rulesPath          string // the rules file, with -maxloss applied
	directDSN, backDSN string // the two SQLite databases, schema created
}

// directRun is the outcome of run (a): every view an autocommit UPDATE.
type directRun struct {
	res   result
	after dbFigures // SQLite after the run
}

// writeBackRun is the outcome of run (b): the same workload through writeback.
type writeBackRun struct {
	res       result
	oldest    time.Duration   // largest Stats.OldestAge seen while the workload ran
	before    writeback.Stats // at the end of the workload, before the final Flush
	figBefore dbFigures       // what SQLite holds before the final Flush
	flushTime time.Duration   // how long the final Flush took
	st        writeback.Stats // after the final Flush
	after     dbFigures       // SQLite after the final Flush and Close
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "writeback-pageviews-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(out, "kept: %s\n", dir)
			return
		}
		if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	s, err := prepare(ctx, dir, o)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "pageviews: %d pages (Zipf s=%.1f), %d goroutines, %s per run, SQLite WAL synchronous=NORMAL, page_views max_loss %s\n",
		o.pages, zipfS, o.goroutines, o.duration, o.maxLoss)

	d, err := runDirect(ctx, o, s.directDSN, out)
	if err != nil {
		return err
	}
	b, err := runWriteBack(ctx, o, s.rulesPath, s.backDSN, out)
	if err != nil {
		return err
	}
	printReport(out, o, d, b)
	if o.svg != "" {
		if err := writeChart(o, d, b); err != nil {
			return fmt.Errorf("writing the chart: %w", err)
		}
		fmt.Fprintf(out, "chart: %s\n", absPath(o.svg))
	}
	return printChecks(out, d, b)
}

// prepare writes the rules file into dir and creates the two databases.
func prepare(ctx context.Context, dir string, o options) (s setup, err error) {
	if strings.ContainsAny(dir, " \t") {
		// The writeback DSN separates its fields with spaces; only dsn= may hold one.
		return s, fmt.Errorf("temporary folder %q contains a space, which a rules= path cannot; set TMPDIR", dir)
	}
	rules, err := rulesText(o.maxLoss)
	if err != nil {
		return s, err
	}
	s.rulesPath = filepath.Join(dir, "writeback.yaml")
	if err := os.WriteFile(s.rulesPath, []byte(rules), 0o644); err != nil {
		return s, err
	}
	s.directDSN = "file:" + filepath.Join(dir, "direct.db") + "?" + sqliteParams
	s.backDSN = "file:" + filepath.Join(dir, "writeback.db") + "?" + sqliteParams
	for _, dsn := range []string{s.directDSN, s.backDSN} {
		if err := createSchema(ctx, dsn, o.pages); err != nil {
			return s, err
		}
	}
	return s, nil
}

// runDirect is run (a): the workload directly on sqlite3, every view an
// autocommit UPDATE.
func runDirect(ctx context.Context, o options, dsn string, out io.Writer) (d directRun, err error) {
	direct, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return d, err
	}
	poolFor(direct, o)
	d.res, err = workload(ctx, direct, o, benchchart.Monitor{Label: "direct", Out: out, Terminal: o.terminal})
	if cerr := direct.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return d, fmt.Errorf("direct run: %w", err)
	}
	d.after, err = readFigures(ctx, dsn)
	return d, err
}

// runWriteBack is run (b): the same workload through writeback, page_views
// buffered, followed by a final Flush and Close.
func runWriteBack(ctx context.Context, o options, rulesPath, dsn string, out io.Writer) (b writeBackRun, err error) {
	wb, err := sql.Open("writeback", "driver=sqlite3 rules="+rulesPath+" dsn="+dsn)
	if err != nil {
		return b, err
	}
	defer wb.Close() // flushes what is left if we return early
	poolFor(wb, o)
	b.res, err = workload(ctx, wb, o, benchchart.Monitor{
		Label: "write-back", Out: out, Terminal: o.terminal,
		SampleTick: 10 * time.Millisecond, // often: the oldest age reported is the largest sampled
		Buffer: func() (int, time.Duration, bool) {
			st, err := writeback.StatsOf(wb)
			return st.Dirty, st.OldestAge, err == nil
		},
	})
	if err != nil {
		return b, fmt.Errorf("write-back run: %w", err)
	}
	b.oldest = benchchart.MaxOldest(b.res.samples)
	if b.before, err = writeback.StatsOf(wb); err != nil {
		return b, err
	}
	if b.figBefore, err = readFigures(ctx, dsn); err != nil {
		return b, err
	}
	t0 := time.Now()
	if err := writeback.Flush(ctx, wb); err != nil {
		return b, fmt.Errorf("final Flush: %w", err)
	}
	b.flushTime = time.Since(t0)
	if b.st, err = writeback.StatsOf(wb); err != nil {
		return b, err
	}
	if err := wb.Close(); err != nil {
		return b, fmt.Errorf("closing the write-back database: %w", err)
	}
	b.after, err = readFigures(ctx, dsn)
	return b, err
}

// printReport writes the table comparing the two runs.
func printReport(out io.Writer, o options, d directRun, b writeBackRun) {
	dres, bres, st := d.res, b.res, b.st
	dRate := float64(dres.views) / dres.elapsed.Seconds()
	bRate := float64(bres.views) / (bres.elapsed + b.flushTime).Seconds()
	w := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	w("%-36s %14s %14s", "", "direct", "write-back")
	w("%-36s %14s %14s", "page view UPDATEs acknowledged", num(dres.views), num(bres.views))
	w("%-36s %14s %14s   write-back/direct = %.1fx", "updates/s", num(int64(dRate)), num(int64(bRate)), bRate/dRate)
	w("%-36s %14s %14s   (write-back: %s application writes -> %s)", "page_views row writes in SQLite",
		num(dres.views), num(st.FlushedRows), num(st.Buffered), num(st.FlushedRows))
	w("%-36s %14.5f %14.5f   %.3f%% of row writes saved by coalescing (Coalesced %s)", "row writes per application write",
		1.0, st.RowWritesPerWrite(), 100*(1-st.RowWritesPerWrite()), num(st.Coalesced))
	w("%-36s %14s %14s   %.1f rows per flush", "transactions on page_views",
		num(dres.views), num(st.Flushes), float64(st.FlushedRows)/float64(max(st.Flushes, 1)))
	w("%-36s %14s %14s   (write-through; 1 goroutine, at most one per %s)", "orders INSERTs acknowledged", num(dres.orders), num(bres.orders), orderInterval)
	w("write-back at end of run, before Flush: orders in SQLite %s/%s acknowledged; page_views views in SQLite %s/%s, dirty rows %s",
		num(b.figBefore.orders), num(bres.orders), num(b.figBefore.views), num(bres.views), num(int64(b.before.Dirty)))
	w("write-back durability lag: oldest dirty row seen %s (max_loss %s); final Flush %s",
		b.oldest.Round(time.Millisecond), o.maxLoss, b.flushTime.Round(10*time.Microsecond))
}

// printChecks writes the two check lines and returns an error naming every
// figure in SQLite or in writeback's Stats that disagrees with what was
// acknowledged to the application.
func printChecks(out io.Writer, d directRun, b writeBackRun) error {
	dres, dAfter, bres, bAfter, st := d.res, d.after, b.res, b.after, b.st
	w := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	var failures []string
	check := func(name string, got, want int64) string {
		if got != want {
			failures = append(failures, fmt.Sprintf("%s: SQLite has %d, %d acknowledged", name, got, want))
			return "MISMATCH"
		}
		return "OK"
	}
	w("check direct:     SUM(views) %s = acknowledged %s %s; orders %s = %s %s",
		num(dAfter.views), num(dres.views), check("direct SUM(views)", dAfter.views, dres.views),
		num(dAfter.orders), num(dres.orders), check("direct orders", dAfter.orders, dres.orders))
	w("check write-back: SUM(views) after Flush %s = acknowledged %s %s; orders %s = %s %s (before Flush: %s)",
		num(bAfter.views), num(bres.views), check("write-back SUM(views) after Flush", bAfter.views, bres.views),
		num(bAfter.orders), num(bres.orders), check("write-back orders", bAfter.orders, bres.orders),
		check("write-back orders before Flush", b.figBefore.orders, bres.orders))
	if st.Buffered+st.PassedThrough != bres.views {
		failures = append(failures, fmt.Sprintf("Stats: Buffered %d + PassedThrough %d != %d acknowledged UPDATEs",
			st.Buffered, st.PassedThrough, bres.views))
	}
	if st.NoMatch != 0 || st.DeadLetters != 0 || st.FlushErrors != 0 {
		failures = append(failures, fmt.Sprintf("Stats: NoMatch %d, DeadLetters %d, FlushErrors %d (want 0; last error: %v)",
			st.NoMatch, st.DeadLetters, st.FlushErrors, st.LastError))
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "; "))
	}
	return nil
}

// poolFor keeps one connection per goroutine open: database/sql's default of
// two idle connections would close and reopen them all the time.
func poolFor(db *sql.DB, o options) {
	db.SetMaxOpenConns(o.goroutines + 1)
	db.SetMaxIdleConns(o.goroutines + 1)
}

func createSchema(ctx context.Context, dsn string, pages int) error {
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	for _, ddl := range []string{
		`CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL DEFAULT 0)`,
		`CREATE TABLE orders (order_id INTEGER PRIMARY KEY, page_id INTEGER NOT NULL, amount_cents INTEGER NOT NULL)`,
	} {
		if _, err := tx.ExecContext(ctx, ddl); err != nil {
			return err
		}
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO page_views (page_id) VALUES (?)`)
	if err != nil {
		return err
	}
	for id := 1; id <= pages; id++ {
		if _, err := ins.ExecContext(ctx, id); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func readFigures(ctx context.Context, dsn string) (f dbFigures, err error) {
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return f, err
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, `SELECT (SELECT COALESCE(SUM(views), 0) FROM page_views), (SELECT COUNT(*) FROM orders)`).
		Scan(&f.views, &f.orders)
	return f, err
}

// runState is what the goroutines of one workload share: the flag that stops
// them and the first error one of them met.
type runState struct {
	stop     atomic.Bool
	errOnce  sync.Once
	firstErr error
}

// fail records err if it is the first error and stops the run.
func (s *runState) fail(err error) {
	s.errOnce.Do(func() { s.firstErr = err })
	s.stop.Store(true)
}

// workload runs o.goroutines page-view counters and one order writer on db
// for o.duration, watched by mon (its progress lines and samples). It stops
// at the first error and returns it.
func workload(ctx context.Context, db *sql.DB, o options, mon benchchart.Monitor) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var (
		s      runState
		orders atomic.Int64
		wg     sync.WaitGroup
	)
	views := benchchart.NewCounter(o.goroutines)
	mon.Writes = views.Load
	running := mon.Start()
	start := time.Now()
	go func() { <-ctx.Done(); s.stop.Store(true) }()
	for g := range o.goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			countViews(db, o, g, &s, views)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		writeOrders(ctx, db, o, &s, &orders)
	}()
	wg.Wait()
	res := result{views: views.Load(), orders: orders.Load(), elapsed: time.Since(start)}
	res.samples = running.Stop()
	if s.firstErr != nil {
		return res, s.firstErr
	}
	// The run's own timeout ends it; a parent's cancellation (Ctrl-C) is an error.
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return res, err
	}
	return res, nil
}

// countViews is page-view counter number g: it UPDATEs page_views, one view
// of a Zipf-distributed page at a time, until the run stops, counting in
// views (slot g) each UPDATE that returned no error.
func countViews(db *sql.DB, o options, g int, s *runState, views *benchchart.Counter) {
	// The same seeds in both runs: the same sequence of pages.
	zipf := rand.NewZipf(rand.New(rand.NewPCG(1, uint64(g))), zipfS, 1, uint64(o.pages-1))
	for !s.stop.Load() {
		page := int64(zipf.Uint64()) + 1
		// A fresh context: stopping the run must not fail an UPDATE in flight.
		if _, err := db.ExecContext(context.Background(), `UPDATE page_views SET views = views + 1 WHERE page_id = ?`, page); err != nil {
			s.fail(fmt.Errorf("UPDATE page_views (page %d): %w", page, err))
			return
		}
		views.Add(g)
	}
}

// writeOrders is the checkout traffic on a write-through table: at most one
// INSERT INTO orders per orderInterval until the run stops, each counted in
// orders once it returns no error.
func writeOrders(ctx context.Context, db *sql.DB, o options, s *runState, orders *atomic.Int64) {
	tick := time.NewTicker(orderInterval)
	defer tick.Stop()
	r := rand.New(rand.NewPCG(2, 0))
	for !s.stop.Load() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := db.ExecContext(context.Background(), `INSERT INTO orders (page_id, amount_cents) VALUES (?, ?)`,
			1+r.IntN(o.pages), 100+r.IntN(10000)); err != nil {
			s.fail(fmt.Errorf("INSERT INTO orders: %w", err))
			return
		}
		orders.Add(1)
	}
}

// writeChart writes the chart of the two runs to o.svg: both throughputs,
// and the write-back run's dirty rows and oldest age against max_loss.
func writeChart(o options, d directRun, b writeBackRun) error {
	dRate := float64(d.res.views) / d.res.elapsed.Seconds()
	bRate := float64(b.res.views) / (b.res.elapsed + b.flushTime).Seconds()
	note := ""
	if dRate > 0 {
		note = fmt.Sprintf("(%.1f× direct)", bRate/dRate)
	}
	c := benchchart.Chart{
		Title:    fmt.Sprintf("pageviews: %d pages (Zipf s=%.1f), %d goroutines, %s per run, SQLite", o.pages, zipfS, o.goroutines, o.duration),
		Subtitle: "UPDATE page_views SET views = views + 1 WHERE page_id = ?; write-back throughput includes the final Flush",
		Unit:     "updates/s",
		Bars:     []benchchart.Bar{{Label: "direct", Value: dRate}, {Label: "write-back", Value: bRate, Note: note}},
		Series:   []benchchart.Series{{Label: "write-back", Points: benchchart.Points(b.res.samples)}},
		MaxLoss:  o.maxLoss,
		Span:     o.duration,
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

// num formats n with thousands separators.
var num = benchchart.Thousands
