package writeback

import (
	"cmp"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
)

// DeadLetter is a buffered write that did not take effect in the database: the
// database refused its row permanently, or a flushed UPDATE matched no row.
// It carries everything needed to inspect or replay the write.
type DeadLetter struct {
	Time    time.Time
	Table   string   // the rule's table name
	Key     []any    // key values in the rule's key order
	Op      string   // "insert" or "update"
	Columns []string // the coalesced columns, normalized
	Values  []any    // their values (for an update, a delta where Delta[i])
	Delta   []bool   // update only: Values[i] is added to the column
	Writes  int      // application writes coalesced into this row
	NoMatch bool     // an UPDATE whose key matched no row
	Err     error    // the database's error; nil when NoMatch
}

// flushReq asks the flusher to commit every row of tables that is dirty now.
type flushReq struct {
	tables []*tableState // nil means every table
	done   chan error
}

// flusher owns the connection that writes dirty rows and the goroutine that
// decides when. All flushing happens on that goroutine, so flushes of one
// table never overlap and rows reach the database in the order they were taken.
type flusher struct {
	b         *buffer
	connector driver.Connector
	log       *slog.Logger
	onDead    func(DeadLetter)
	deadFile  *deadLetterFile // nil without WithDeadLetterFile

	ctx    context.Context // cancelled when Close gives up
	cancel context.CancelFunc

	reqs chan *flushReq
	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	closeTimeout time.Duration
	closeErr     error
	// abandon makes Close skip the final flush: a recovery that failed
	// leaves its rows in the journal, not half flushed at close.
	abandon atomic.Bool

	// only the flusher goroutine touches these
	conn    driver.Conn
	writer dialect.Writer
	dia    dialect.Dialect

	mu        sync.Mutex // guards the fields below, read by Stats
	lastErr   error
	lastErrAt time.Time
	// failingSince is when the current run of failures began (zero while
	// healthy); failingTables counts the tables whose last flush failed.
	// The flusher is failing while any table is: one outage is one state
	// change, however many tables it hits.
	failingSince  time.Time
	failingTables int
	// retries counts failed flush attempts that will be retried;
	// retriesAtFail is its value when the current failing run began.
	retries       int64
	retriesAtFail int64
}

// flushAttemptTimeout bounds one flush attempt (connect, or one transaction):
// a database that accepts connections and never answers (a black hole, a
// half-open TCP connection) must not stall the flusher, its barriers and
// Close forever. Generous: a large batch may legitimately take long.
const flushAttemptTimeout = 30 * time.Second

func newFlusher(b *buffer, base driver.Connector, dia dialect.Dialect, log *slog.Logger, onDead func(DeadLetter), deadFile *deadLetterFile, closeTimeout time.Duration) *flusher {
	ctx, cancel := context.WithCancel(context.Background())
	f := &flusher{
		b: b, connector: base, dia: dia, log: log, onDead: onDead, deadFile: deadFile,
		ctx: ctx, cancel: cancel,
		reqs: make(chan *flushReq), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		closeTimeout: closeTimeout,
	}
	b.flusher = f
	go f.run()
	return f
}

// kickNow wakes the flusher without blocking; one pending kick is enough.
func (f *flusher) kickNow() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// request makes the flusher commit the tables' dirty rows and waits for it.
func (f *flusher) request(ctx context.Context, tables []*tableState) error {
	r := &flushReq{tables: tables, done: make(chan error, 1)}
	select {
	case f.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-f.done:
		return ErrClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the flusher after it has flushed everything it can within the
// close timeout, and returns what it could not flush.
func (f *flusher) close() error {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
	return f.closeErr
}

func (f *flusher) run() {
	defer close(f.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wake := f.nextWake(time.Now())
		if d := f.b.dur; d != nil {
			wake = min(wake, d.compactWait(time.Now()))
		}
		timer.Reset(wake)
		var reqs []*flushReq
		select {
		case r := <-f.reqs:
			reqs = append(reqs, r)
		case <-f.kick:
		case <-timer.C:
		case <-f.stop:
			// Whatever final is blocked in (a connect or a statement to
			// a database that does not answer) ends at the close deadline.
			giveUp := time.AfterFunc(f.closeTimeout, f.cancel)
			f.closeErr = f.final()
			giveUp.Stop()
			f.closeConn()
			f.cancel()
			return
		}
		// Serve every request that is already waiting in the same round.
	drain:
		for {
			select {
			case r := <-f.reqs:
				reqs = append(reqs, r)
			default:
				break drain
			}
		}
		f.round(time.Now(), reqs)
		if d := f.b.dur; d != nil {
			if err := d.compact(f.b, false); err != nil && d.compactFailed.CompareAndSwap(false, true) {
				f.log.Error("writeback: journal compaction failed; the journal grows until the connector is reopened", "journal", d.dir, "err", err)
			}
		}
	}
}

// deadline is when a table's flush must start for its oldest row to be
// committed within max_loss: early by the last flush's cost (twice, for
// safety) and at least a tenth of max_loss.
func deadline(t *tableState, oldest time.Time) time.Time {
	ml := t.rule.MaxLoss
	lead := max(ml/10, 2*t.flushCost)
	lead = min(lead, ml/2)
	return oldest.Add(ml - lead)
}

// nextWake is how long the flusher may sleep before some table is due.
func (f *flusher) nextWake(now time.Time) time.Duration {
	wake := now.Add(time.Hour)
	for _, t := range f.b.ordered {
		d := t.dirty()
		n, oldest, evicted, retry := d.n, d.oldest, d.evicted, d.retry
		switch {
		case n == 0:
			continue
		case retry > 0 && t.retryAt.After(now):
			wake = minTime(wake, t.retryAt)
		case evicted > 0 || retry > 0:
			wake = now
		default:
			wake = minTime(wake, deadline(t, oldest))
		}
	}
	return max(wake.Sub(now), 0)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// round flushes every table that is requested, due, or has evicted rows,
// high priority first, and answers the requests.
func (f *flusher) round(now time.Time, reqs []*flushReq) {
	type job struct {
		t         *tableState
		all       bool
		requested bool
		oldest    time.Time
	}
	requested := map[*tableState]bool{}
	for _, r := range reqs {
		if r.tables == nil {
			for _, t := range f.b.ordered {
				requested[t] = true
			}
		}
		for _, t := range r.tables {
			requested[t] = true
		}
	}
	var jobs []job
	for _, t := range f.b.ordered {
		d := t.dirty()
		n, oldest, evicted, retry := d.n, d.oldest, d.evicted, d.retry
		if n == 0 {
			continue
		}
		backingOff := retry > 0 && t.retryAt.After(now)
		due := !oldest.IsZero() && !now.Before(deadline(t, oldest))
		switch {
		case requested[t]:
			jobs = append(jobs, job{t, true, true, oldest})
		case backingOff:
		case due:
			jobs = append(jobs, job{t, true, false, oldest})
		case evicted > 0 || retry > 0:
			jobs = append(jobs, job{t, false, false, oldest})
		}
	}
	sort.SliceStable(jobs, func(i, j int) bool {
		if pi, pj := jobs[i].t.rule.Priority.rank(), jobs[j].t.rule.Priority.rank(); pi != pj {
			return pi > pj
		}
		return jobs[i].oldest.Before(jobs[j].oldest)
	})
	errs := map[*tableState]error{}
	for _, j := range jobs {
		if err := f.flushTable(j.t, j.all); err != nil {
			errs[j.t] = err
		}
	}
	for _, r := range reqs {
		var err error
		if r.tables == nil {
			for _, t := range f.b.ordered {
				err = cmp.Or(err, errs[t])
			}
		}
		for _, t := range r.tables {
			err = cmp.Or(err, errs[t])
		}
		r.done <- err
	}
}

// final flushes everything at Close, retrying transient failures until the
// close timeout, and reports what is left.
func (f *flusher) final() error {
	if f.abandon.Load() {
		return nil
	}
	end := time.Now().Add(f.closeTimeout)
	for {
		var lastErr error
		for _, t := range f.b.ordered {
			if err := f.flushTable(t, true); err != nil {
				lastErr = err
			}
		}
		left := int64(0)
		for _, t := range f.b.ordered {
			left += t.pending.Load()
		}
		if left == 0 {
			return nil
		}
		if lastErr == nil {
			continue
		}
		if time.Now().After(end) || f.ctx.Err() != nil {
			return fmt.Errorf("writeback: close: %d buffered rows could not be flushed within %s: %w", left, f.closeTimeout, lastErr)
		}
		pause := time.NewTimer(max(0, min(250*time.Millisecond, time.Until(end))))
		select {
		case <-pause.C:
		case <-f.ctx.Done():
			pause.Stop()
		}
	}
}

// flushTable writes the table's rows that are due. A full flush (all) writes
// everything the table has, its earlier failures first, in one transaction
// that also advances the journal checkpoint; otherwise only the retry and
// evicted rows are written.
func (f *flusher) flushTable(t *tableState, all bool) error {
	tk, rows, upTo := t.take(all)
	if len(rows) == 0 {
		if t.failures > 0 && t.pending.Load() == 0 {
			// Nothing left to retry: the table is no longer failing.
			f.noteSuccess(t)
		}
		return nil
	}
	defer t.release(tk)
	names := t.names.Load()
	// Key order makes flushes deterministic and, with several processes
	// flushing the same hot rows, takes row locks in one order: no deadlocks.
	// Rows of one key (an earlier failure and a newer row) stay in the
	// order they were made.
	slices.SortFunc(rows, compareRows)
	start := time.Now()
	mark := flushMark{table: t.rule.Name, full: all, upTo: upTo}
	if err := f.writeRows(t, rows, names, mark); err != nil {
		f.noteFailure(t, err)
		return err
	}
	if all && upTo > 0 {
		t.applied.Store(max(t.applied.Load(), upTo))
	}
	t.flushCost = time.Since(start)
	f.noteSuccess(t)
	return nil
}

// flushHook, when not nil, is called by the flusher at named points of the
// flush-and-checkpoint protocol, so crash tests can stop the process at
// exactly that step: "before-tx", "after-rows" (rows written, checkpoint
// not yet), "before-commit", "after-commit" (before the buffer's accounting),
// and "journal:<point>" for the journal's own fault points (compaction).
// Tests only; it must be set before a connector opens.
var flushHook func(point string)

func hook(point string) {
	if flushHook != nil {
		flushHook(point)
	}
}

// writeRows writes rows in one transaction. When the database refuses the
// batch permanently it is split in halves until the refused rows are alone;
// those become dead letters and every other row is written. When the failure
// is transient the rows not written go back to the table, ahead of newer ones.
// mark says what the transaction records in the journal checkpoint; halves
// are partial flushes whatever the whole was.
func (f *flusher) writeRows(t *tableState, rows []*dirtyRow, names *tableNames, mark flushMark) error {
	if len(rows) == 0 {
		return nil
	}
	err := f.writeOnce(t, rows, names, mark)
	if err == nil {
		return nil
	}
	t.stats.flushErrors.Add(1)
	var cu *dialect.CommitUnknownError
	if errors.As(err, &cu) {
		committed, rerr := f.resolveCommit(t, cu)
		switch {
		case rerr != nil:
			// Neither retried (it may have committed) nor dropped: each row
			// goes to the dead letters with the reason, to be checked.
			t.done(rows)
			for _, r := range rows {
				f.deadLetter(t, r, rerr, false)
			}
			return nil
		case committed:
			f.log.Warn("writeback: a flush's COMMIT got no answer but committed; its UPDATEs that matched no row are not reported", "table", t.rule.Name, "rows", len(rows))
			t.done(rows)
			t.stats.flushes.Add(1)
			t.stats.flushedRows.Add(int64(len(rows)))
			return nil
		}
		// Aborted: an ordinary transient failure.
	}
	if isTransient(err) {
		t.fail(rows)
		return err
	}
	mark.full = false
	if len(rows) == 1 {
		t.done(rows)
		f.consumed(t, rows[0], mark)
		f.deadLetter(t, rows[0], err, false)
		return nil
	}
	mid := len(rows) / 2
	if err := f.writeRows(t, rows[:mid], names, mark); err != nil {
		t.fail(rows[mid:])
		return err
	}
	return f.writeRows(t, rows[mid:], names, mark)
}

// consumed records that a dead-lettered row's journal records are used up,
// in a transaction of its own, so recovery does not replay the row again.
// Should that fail, replay would meet the refused row again: it is logged.
func (f *flusher) consumed(t *tableState, r *dirtyRow, mark flushMark) {
	d := f.b.dur
	if d == nil || r.maxLSN == 0 {
		return
	}
	conn, dia, err := f.connection()
	if err == nil {
		ctx, cancel := context.WithTimeout(f.ctx, flushAttemptTimeout)
		_, err = dia.WriteTx(ctx, conn, nil, 1, d.checkpointTx(mark, []*dirtyRow{r}))
		cancel()
		if err != nil && isConnError(err) {
			f.closeConn()
		}
	}
	if err != nil {
		f.log.Error("writeback: could not record a dead-lettered row as consumed; a recovery would replay it", "table", t.rule.Name, "key", r.key, "err", err)
	}
}

// writeOnce is one transaction: rows grouped by shape, handed to the dialect,
// with the journal checkpoint of mark when there is a journal.
func (f *flusher) writeOnce(t *tableState, rows []*dirtyRow, names *tableNames, mark flushMark) error {
	conn, dia, err := f.connection()
	if err != nil {
		return err
	}
	groups, members := groupRows(rows, names)
	var inTx func(dialect.Exec) error
	if d := f.b.dur; d != nil {
		if cp := d.checkpointTx(mark, rows); cp != nil || flushHook != nil {
			inTx = func(exec dialect.Exec) error {
				hook("after-rows")
				if cp != nil {
					if err := cp(exec); err != nil {
						return err
					}
				}
				hook("before-commit")
				return nil
			}
		}
		hook("before-tx")
	}
	ctx, cancel := context.WithTimeout(f.ctx, flushAttemptTimeout)
	noMatch, err := dia.WriteTx(ctx, conn, groups, t.rule.Batch, inTx)
	cancel()
	if err != nil {
		if isConnError(err) {
			f.closeConn()
		}
		return fmt.Errorf("writeback: flush %s: %w", t.rule.Name, err)
	}
	if f.b.dur != nil {
		hook("after-commit")
	}
	t.done(rows)
	t.stats.flushes.Add(1)
	t.stats.flushedRows.Add(int64(len(rows)))
	for gi, idx := range noMatch {
		for _, i := range idx {
			t.stats.noMatch.Add(1)
			f.deadLetter(t, members[gi][i], nil, true)
		}
	}
	return nil
}

// sameShape reports whether two rows are written by the same statement form.
func sameShape(a, b *dirtyRow) bool {
	if a.op != b.op || len(a.cols) != len(b.cols) {
		return false
	}
	for i := range a.cols {
		if a.cols[i].Norm != b.cols[i].Norm || a.op == dialect.Update && a.delta[i] != b.delta[i] {
			return false
		}
	}
	return true
}

// rowValues is a row's statement arguments: for an UPDATE its values then its key.
func rowValues(r *dirtyRow) []any {
	if r.op == dialect.Insert {
		return r.vals
	}
	vals := make([]any, 0, len(r.vals)+len(r.key))
	return append(append(vals, r.vals...), r.key...)
}

// compareRows orders rows by key, and rows of one key by age.
func compareRows(a, b *dirtyRow) int {
	if c := cmp.Compare(a.k.i, b.k.i); c != 0 {
		return c
	}
	if c := strings.Compare(a.k.s, b.k.s); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// groupRows groups rows by statement shape (operation, columns, deltas), in
// order of first appearance, and returns for each group the rows it holds.
//
// rows are sorted by compareRows. A key may have several rows (an earlier
// failure, put back, and a newer row): the n-th row of a key goes into a
// group of generation n, and generations are written in order, so the older
// row's statements run first. One statement never carries a key twice (a
// PostgreSQL UPDATE ... FROM unnest would apply only one of them).
func groupRows(rows []*dirtyRow, names *tableNames) ([]*dialect.Group, [][]*dirtyRow) {
	var groups []*dialect.Group
	var members [][]*dirtyRow
	index := map[string]int{}
	var shapes []string
	var sb strings.Builder
	last := -1
	var gens []int // each group's generation
	gen, lastGen := 0, 0
	for i, r := range rows {
		gen = 0
		if i > 0 && rows[i-1].k == r.k {
			gen = lastGen + 1
		}
		lastGen = gen
		// Rows mostly share one shape: compare with the last row's group
		// before building the shape's key.
		if last >= 0 && gens[last] == gen && sameShape(r, members[last][0]) {
			groups[last].Rows = append(groups[last].Rows, rowValues(r))
			members[last] = append(members[last], r)
			continue
		}
		sb.Reset()
		// The generation leads the shape: groups are sorted by shape.
		sb.WriteByte(byte(gen >> 24))
		sb.WriteByte(byte(gen >> 16))
		sb.WriteByte(byte(gen >> 8))
		sb.WriteByte(byte(gen))
		sb.WriteByte(byte('0' + r.op))
		for i, c := range r.cols {
			sb.WriteByte(0)
			sb.WriteString(c.Norm)
			if r.op == dialect.Update && r.delta[i] {
				sb.WriteByte('+')
			}
		}
		gi, ok := index[sb.String()]
		if !ok {
			gi = len(groups)
			index[sb.String()] = gi
			shapes = append(shapes, sb.String())
			gens = append(gens, gen)
			g := &dialect.Group{Schema: names.schema, Table: names.table, Op: r.op, Cols: r.cols, KeyCols: names.keyCols, Style: names.style}
			if len(groups) == 0 {
				g.Rows = make([][]any, 0, len(rows)) // rows mostly share one shape
			}
			if r.op == dialect.Update {
				g.Delta = r.delta
			}
			groups = append(groups, g)
			members = append(members, nil)
		}
		groups[gi].Rows = append(groups[gi].Rows, rowValues(r))
		members[gi] = append(members[gi], r)
		last = gi
	}
	// Groups in shape order (updates first), whatever order rows came in.
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(shapes[a], shapes[b]) })
	sortedGroups := make([]*dialect.Group, len(groups))
	sortedMembers := make([][]*dirtyRow, len(groups))
	for i, gi := range order {
		sortedGroups[i], sortedMembers[i] = groups[gi], members[gi]
	}
	return sortedGroups, sortedMembers
}

// connection returns the flusher's own connection, opening it on first use or
// after a connection error, and the dialect that fits it.
func (f *flusher) connection() (driver.Conn, dialect.Writer, error) {
	if f.conn != nil {
		return f.conn, f.writer, nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, flushAttemptTimeout)
	conn, err := f.connector.Connect(ctx)
	cancel()
	if err != nil {
		return nil, nil, &connectFailure{err}
	}
	f.conn, f.writer = conn, f.dia.NewWriter(conn)
	return f.conn, f.writer, nil
}

// connectFailure is the flusher's failure to connect. It is always retried:
// whatever its SQLSTATE (an authentication error while the server restarts,
// a database not yet created), it says nothing about the rows, which must not
// be dead-lettered for it.
type connectFailure struct{ err error }

func (e *connectFailure) Error() string { return "writeback: flusher connect: " + e.err.Error() }
func (e *connectFailure) Unwrap() error { return e.err }

func (f *flusher) closeConn() {
	if f.conn != nil {
		_ = f.conn.Close()
		f.conn = nil
	}
}

// noteFailure schedules the table's retry with capped exponential backoff and
// jitter. Every error that reaches it is transient (writeRows dead-letters
// permanent ones), so each call is one more retry. It logs only when the
// flusher changes from healthy to failing: an outage of minutes retried
// every few seconds on every table is one warning, not hundreds.
func (f *flusher) noteFailure(t *tableState, err error) {
	t.failures++
	back := min(5*time.Second, 20*time.Millisecond<<min(t.failures, 10))
	back = back/2 + rand.N(back/2+1)
	now := time.Now()
	t.retryAt = now.Add(back)
	f.mu.Lock()
	f.lastErr, f.lastErrAt = err, now
	f.retries++
	if t.failures == 1 {
		f.failingTables++
	}
	began := f.failingSince.IsZero()
	if began {
		f.failingSince, f.retriesAtFail = now, f.retries-1
	}
	f.mu.Unlock()
	if began {
		f.log.Warn("writeback: flush failing; buffered writes are kept and retried", "table", t.rule.Name, "err", err)
	}
}

// noteSuccess clears the table's failure; when it was the last failing
// table, the flusher has recovered, which is logged with the outage's
// length and retries.
func (f *flusher) noteSuccess(t *tableState) {
	if t.failures == 0 {
		return
	}
	t.failures = 0
	t.retryAt = time.Time{}
	f.mu.Lock()
	f.failingTables--
	var since time.Time
	var retries int64
	if f.failingTables == 0 {
		since, retries = f.failingSince, f.retries-f.retriesAtFail
		f.failingSince = time.Time{}
	}
	f.mu.Unlock()
	if !since.IsZero() {
		f.log.Info("writeback: flush recovered", "table", t.rule.Name, "failing_for", time.Since(since).Round(time.Millisecond), "retries", retries)
	}
}

// deadLetter reports a row that did not take effect: stats, log, file and
// hook. It runs on the flusher goroutine, outside every shard lock.
func (f *flusher) deadLetter(t *tableState, r *dirtyRow, err error, noMatch bool) {
	dl := DeadLetter{Time: time.Now(), Table: t.rule.Name, Key: r.key, Writes: r.writes, NoMatch: noMatch, Err: err}
	dl.Op = "update"
	if r.op == dialect.Insert {
		dl.Op = "insert"
	}
	for _, c := range r.cols {
		dl.Columns = append(dl.Columns, c.Norm)
	}
	dl.Values = r.vals
	dl.Delta = r.delta
	if noMatch {
		f.log.Warn("writeback: flushed UPDATE matched no row", "table", t.rule.Name, "key", r.key, "writes", r.writes)
	} else {
		t.stats.deadLetters.Add(1)
		f.log.Error("writeback: database refused a buffered row", "table", t.rule.Name, "key", r.key, "op", dl.Op, "err", err)
	}
	if f.deadFile != nil {
		if werr := f.deadFile.write(dl); werr != nil {
			// The row is still traced: the log line carries it whole.
			f.log.Error("writeback: could not append to the dead-letter file", "path", f.deadFile.path, "err", werr, "dead_letter", string(encodeDeadLetter(dl)))
		}
	}
	if f.onDead != nil {
		f.onDead(dl)
	}
}

// isConnError reports whether the flusher's connection should be replaced.
func isConnError(err error) bool {
	return errors.Is(err, driver.ErrBadConn) || dialect.ClassOf(err) == dialect.Connection
}

// isTransient reports whether retrying the same rows may succeed.
func isTransient(err error) bool {
	var cp *checkpointError
	var cf *connectFailure
	if errors.As(err, &cp) || errors.As(err, &cf) {
		return true
	}
	return dialect.ClassOf(err) != dialect.Permanent
}
