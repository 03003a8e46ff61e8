package writeback

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/writeback-go/writeback/internal/lossstate"
)

// This file tells operators what a crash took. The connector keeps a small
// state file (internal/lossstate): per back table the rows and writes
// buffered and not yet committed, the oldest one's time and the recent
// write rate, refreshed at most once a second while anything is buffered,
// and marked clean by a shutdown that flushed everything. The next open
// after an unclean stop reads it and reports, per table, at most how many
// writes to how many rows the stop took, acknowledged between when and
// when: in a log line at ERROR, in Stats.LastCrash and through the
// WithOnCrashReport hook. With a journal the report says nothing was lost
// (the journal replayed it).

// CrashReport is what the connector found at open of the run before it: it
// stopped without a clean shutdown.
type CrashReport struct {
	// StateAt is when the state of the stopped run was last written; the
	// stop came after it, within about a second.
	StateAt time.Time
	// PID is the stopped process's.
	PID int
	// Journal: the stopped run journaled its writes, and recovery replayed
	// what the database lacked: nothing acknowledged was lost.
	Journal bool
	// Tables bounds the loss per table (without a journal): tables with
	// nothing buffered are left out.
	Tables map[string]TableLoss
}

// TableLoss bounds what a stop took from one table: at most Writes
// acknowledged writes to at most Rows rows, acknowledged between From and
// To. The bound is the writes pending at the last state plus what the
// recent write rate could have added before the next state was due.
type TableLoss struct {
	Writes, Rows int64
	From, To     time.Time
}

// Lost reports whether the report bounds a loss above zero.
func (r *CrashReport) Lost() bool {
	if r == nil || r.Journal {
		return false
	}
	for _, t := range r.Tables {
		if t.Writes > 0 {
			return true
		}
	}
	return false
}

// String says the report in one line.
func (r *CrashReport) String() string {
	if r.Journal {
		return fmt.Sprintf("the process before (pid %d) stopped without a clean shutdown; nothing acknowledged was lost: the journal replayed what the database lacked", r.PID)
	}
	if !r.Lost() {
		return fmt.Sprintf("the process before (pid %d) stopped without a clean shutdown, with nothing buffered", r.PID)
	}
	var parts []string
	names := make([]string, 0, len(r.Tables))
	for name := range r.Tables {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t := r.Tables[name]
		parts = append(parts, fmt.Sprintf("%s: at most %d writes to %d rows, acknowledged between %s and %s",
			name, t.Writes, t.Rows, t.From.Format(time.RFC3339), t.To.Format(time.RFC3339)))
	}
	return fmt.Sprintf("the process before (pid %d) stopped without a clean shutdown and without a journal; its buffered writes were lost: %s",
		r.PID, strings.Join(parts, "; "))
}

// WithOnCrashReport calls fn once at open when the run before stopped
// without a clean shutdown (see CrashReport), before the connector serves
// anything: alert on it, so a loss is learned from the driver, not from
// users.
func WithOnCrashReport(fn func(CrashReport)) Option {
	return func(c *config) error {
		c.onCrash = fn
		return nil
	}
}

// WithStateFile sets the file where the connector keeps what a crash could
// take ("" keeps none). The default is writeback.state in the journal's
// directory, or the rules file's path with ".state" appended; rules built
// in Go without a file and without a journal keep none.
func WithStateFile(path string) Option {
	return func(c *config) error {
		c.stateFile, c.stateFileSet = path, true
		return nil
	}
}

// sample is a table's buffered writes at a time.
type sample struct {
	at       time.Time
	buffered int64
}

// tableRates is what the watch keeps of one table between two states.
type tableRates struct {
	buffered int64   // buffered writes at the last state
	measured bool    // buffered is this run's: a state was written
	rate     float64 // the rate over the last interval (while starting)
	since    sample  // the buffered writes about a Refresh ago
	prior    float64 // the crashed run's rate, for the state at open
}

// lossWatch keeps the state file of a connector.
type lossWatch struct {
	file    *lossstate.File
	journal bool
	stop    chan struct{}
	done    chan struct{}
	tables  map[string]*tableRates // by rule name
	started time.Time
	lastAt  time.Time
	wrote   bool // the last state written had something pending
	written bool // a state of this run was written
}

// statePath is where the connector keeps its state file ("" for none).
func (c *Connector) statePath(cfg *config) string {
	switch {
	case cfg.stateFileSet:
		return cfg.stateFile
	case c.buf.journal != nil && c.buf.journal.Dir() != "":
		return filepath.Join(c.buf.journal.Dir(), "writeback.state")
	case c.rules.File != "" && len(c.buf.ordered) > 0 && isFile(c.rules.File):
		// Beside the rules file that was read; rules parsed from text
		// under a name for messages (ParseRules) have no such place.
		return c.rules.File + ".state"
	}
	return ""
}

// isFile reports whether path names a regular file.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// startLossWatch reports the run before, if it stopped uncleanly, and
// starts keeping this run's state.
func (c *Connector) startLossWatch(cfg *config) {
	path := c.statePath(cfg)
	if path == "" {
		return
	}
	f, prev, err := lossstate.Open(path)
	if err != nil {
		if errors.Is(err, lossstate.ErrInUse) {
			c.log.Info("writeback: another process keeps the state file; this one keeps none, and a crash of it will not be reported", "path", path)
		} else {
			c.log.Warn("writeback: cannot keep the state file; a crash will not be reported at the next open", "path", path, "err", err)
		}
		if f == nil {
			return
		}
	}
	if prev != nil && !prev.Clean {
		c.reportCrash(cfg, prev)
	}
	w := &lossWatch{file: f, journal: c.buf.journal != nil, stop: make(chan struct{}), done: make(chan struct{}), tables: map[string]*tableRates{}, started: time.Now()}
	for _, t := range c.buf.ordered {
		w.tables[t.rule.Name] = &tableRates{}
	}
	if prev != nil && !prev.Clean {
		// A crash loop: until this run has measured its own rate, the
		// stopped run's is the best bound of what a crash could take.
		for name, t := range prev.Tables {
			if tr := w.tables[name]; tr != nil {
				tr.prior = t.Rate
			}
		}
	}
	c.loss = w
	w.write(c, time.Now(), false) // this run's, replacing the report's source
	go w.run(c)
}

// reportCrash reports what the stopped run could have lost.
func (c *Connector) reportCrash(cfg *config, prev *lossstate.State) {
	r := &CrashReport{StateAt: prev.At, PID: prev.PID, Journal: prev.Journal, Tables: map[string]TableLoss{}}
	for name, l := range lossstate.Estimate(prev) {
		r.Tables[name] = TableLoss{Writes: l.Writes, Rows: l.Rows, From: l.From, To: l.To}
	}
	c.lastCrash.Store(r)
	if r.Lost() {
		c.log.Error("writeback: "+r.String(), "pid", r.PID, "state_at", r.StateAt)
	} else {
		c.log.Warn("writeback: "+r.String(), "pid", r.PID)
	}
	if cfg.onCrash != nil {
		cfg.onCrash(*r)
	}
}

// run refreshes the state every lossstate.StartRefresh during the run's
// first lossstate.StartWindow, then every lossstate.Refresh.
func (w *lossWatch) run(c *Connector) {
	defer close(w.done)
	tick := time.NewTicker(lossstate.StartRefresh)
	defer tick.Stop()
	fast := true
	for {
		select {
		case <-w.stop:
			return
		case now := <-tick.C:
			if fast && now.Sub(w.started) >= lossstate.StartWindow {
				fast = false
				tick.Reset(lossstate.Refresh)
			}
			w.write(c, now, false)
		}
	}
}

// write records the tables' figures; an idle connector (nothing pending
// now or at the last state) writes nothing. clean marks a shutdown that
// left nothing buffered.
func (w *lossWatch) write(c *Connector, now time.Time, clean bool) {
	starting := now.Sub(w.started) < lossstate.StartWindow
	next := now.Add(lossstate.Refresh)
	if starting {
		// Short refreshes may come late on a loaded machine: the bound
		// reaches half an interval past the next one.
		next = now.Add(lossstate.StartRefresh * 3 / 2)
	}
	s := &lossstate.State{PID: os.Getpid(), Clean: clean, At: now, Next: next, Journal: w.journal, Tables: map[string]lossstate.Table{}}
	pending := false
	elapsed := now.Sub(w.lastAt).Seconds()
	for _, t := range c.buf.ordered {
		sn := t.set.Snapshot()
		lt := lossstate.Table{Rows: sn.Pending, Writes: sn.PendingWrites, Oldest: sn.Oldest, MaxRows: 2 * int64(t.rule.MaxDirty)}
		tr := w.tables[t.rule.Name]
		if tr.measured && elapsed > 0 {
			lt.Rate = float64(sn.Buffered-tr.buffered) / elapsed
			if starting {
				// Short intervals while the run warms up: the higher of
				// this one's rate and the one before (one may have paused).
				lt.Rate, tr.rate = max(lt.Rate, tr.rate), lt.Rate
			} else if h := tr.since; !h.at.IsZero() && now.After(h.at) {
				// Over the last Refresh or so, not over the last short
				// interval of the start.
				lt.Rate = float64(sn.Buffered-h.buffered) / now.Sub(h.at).Seconds()
			}
			if tr.since.at.IsZero() || now.Sub(tr.since.at) >= lossstate.Refresh {
				tr.since = sample{now, sn.Buffered}
			}
		} else {
			lt.Rate = tr.prior // the state at open: no rate of this run yet
		}
		tr.buffered, tr.measured = sn.Buffered, true
		pending = pending || lt.Writes > 0 || lt.Rate > 0
		s.Tables[t.rule.Name] = lt
	}
	w.lastAt = now
	if !pending && !w.wrote && !clean && w.written {
		return // idle, and the file says so already
	}
	w.wrote, w.written = pending, true
	if err := w.file.Write(s); err != nil {
		c.log.Warn("writeback: cannot write the state file", "err", err)
	}
}

// stopLossWatch stops the refreshes and writes the final state: clean when
// the shutdown left nothing buffered.
func (c *Connector) stopLossWatch() {
	w := c.loss
	if w == nil {
		return
	}
	close(w.stop)
	<-w.done
	w.write(c, time.Now(), c.buf.pending() == 0)
	_ = w.file.Close()
}
