// Package flush writes a connector's dirty rows to the database: one worker
// goroutine per back table, so a table whose flush is slow, locked or failing
// never delays the writes, barriers or flushes of another. Each worker decides
// when its table is due (the oldest row's max_loss deadline, evicted rows, a
// barrier's request, Close), takes the rows (dirtyset.Table.Take), groups them
// by statement shape in key order, and writes them in one transaction on a
// connection of the flush pool, which serves high-priority tables first when
// connections are scarce. Transient failures are retried with capped,
// jittered backoff; a batch the database refuses is split in halves until
// the refused rows are alone, and those become dead letters; a COMMIT whose
// answer was lost is resolved with the database before anything is retried.
//
// No worker holds a dirty-set lock across a database call: rows are taken
// out first (collect under the lock, write after unlocking).
package flush

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/logagg"
)

// AttemptTimeout bounds one flush attempt (connect, or one transaction): a
// database that accepts connections and never answers (a black hole, a
// half-open TCP connection) must not stall a worker, its barriers and Close
// forever. Generous: a large batch may legitimately take long.
const AttemptTimeout = 30 * time.Second

// ErrClosed is returned by Request once the flusher has stopped.
var ErrClosed = errors.New("writeback: connector is closed")

// Config configures a Flusher.
type Config struct {
	Connector driver.Connector // the base connector; flush connections come from it
	Dialect   dialect.Dialect
	// Journal, when not nil, gets a checkpoint in every flush transaction.
	Journal *durable.Journal
	Log     *slog.Logger // slog.Default() when nil
	// RowLogs, when not nil, takes the log events of single rows, so a batch
	// of failing rows logs one line, not one per row; its owner closes it
	// after the flusher.
	RowLogs *logagg.Aggregator
	// OnDead is called, on the table's worker, for every row the database
	// refused permanently (err) or that matched no row (noMatch).
	OnDead func(t *Table, r *dirtyset.Row, err error, noMatch bool)
	// CloseTimeout bounds how long Close keeps retrying the final flush.
	CloseTimeout time.Duration
	// Connections bounds the flush connections open at once; 0 means one
	// per table.
	Connections int
	// Hook, when not nil, is called at named points of the
	// flush-and-checkpoint protocol, so crash tests can stop the process at
	// exactly that step: "before-tx", "after-rows" (rows written, checkpoint
	// not yet), "before-commit", "after-commit" (before the dirty set's
	// accounting).
	Hook func(point string)
	// Gate, when not nil, is called before every flush takes rows, with
	// the attempt's timeout; while it fails, flushes fail with its error
	// and the table backs off as from a database error. A connector that
	// opened while the database was down uses it to finish recovery
	// before anything newer is written.
	Gate func(ctx context.Context) error
}

// TableConfig describes one back table to a Flusher.
type TableConfig struct {
	Set      *dirtyset.Table
	Name     string
	MaxLoss  time.Duration
	Batch    int // rows a statement
	Priority int // higher is served first when connections are scarce
	// Locks, when not nil, names the rows that open transactions of the
	// application hold locked in the database: a flush leaves them for
	// when the transaction ends (LocksReleased) rather than wait for a
	// transaction that may be waiting for the flush.
	Locks Locks
	// OrderBy is the normalized name of the table's order_by column ("" for
	// none): the flush writes the assignments of a row that sets it only
	// where the stored value is not newer (dialect.Group.OrderBy).
	OrderBy string
}

// Locks is the set of a table's rows held locked by open transactions.
type Locks interface {
	Any() bool                // one atomic load: false in the common case
	Held(id dirtyset.ID) bool // the row is locked by an open transaction
}

// Flusher runs the flush workers of one connector.
type Flusher struct {
	cfg    Config
	log    *slog.Logger
	pool   *pool
	tables []*Table

	ctx    context.Context // cancelled when Close gives up
	cancel context.CancelFunc
	stop   chan struct{}
	wg     sync.WaitGroup

	mu sync.Mutex // guards the fields below, read by Status
	st Status
	// failingTables counts the tables whose last flush failed: the flusher
	// is failing while any table is, so one outage is one state change,
	// however many tables it hits. retriesAtFail is Retries when the
	// current failing run began.
	failingTables int
	retriesAtFail int64

	abandon bool // Close skips the final flush (a recovery that failed)
}

// Status is the flusher's health.
type Status struct {
	LastErr      error
	LastErrAt    time.Time
	FailingSince time.Time // zero while healthy
	Retries      int64     // failed attempts scheduled for retry
}

// New returns a flusher; add its tables, then Start it.
func New(cfg Config) *Flusher {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Flusher{
		cfg: cfg, log: cfg.Log, ctx: ctx, cancel: cancel, stop: make(chan struct{}),
		pool: &pool{connector: cfg.Connector, dia: cfg.Dialect},
	}
}

// AddTable adds a back table, before Start.
func (f *Flusher) AddTable(tc TableConfig) *Table {
	t := &Table{f: f, cfg: tc, set: tc.Set, reqs: make(chan *request), kick: make(chan struct{}, 1), done: make(chan struct{})}
	if t.cfg.Batch <= 0 {
		t.cfg.Batch = 1000
	}
	f.tables = append(f.tables, t)
	return t
}

// Start starts one worker per table.
func (f *Flusher) Start() {
	f.pool.max = f.cfg.Connections
	if f.pool.max <= 0 {
		f.pool.max = max(len(f.tables), 1)
	}
	for _, t := range f.tables {
		f.wg.Add(1)
		go t.run()
	}
	if j := f.cfg.Journal; j != nil {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			j.CompactLoop(f.stop)
		}()
	}
}

// Request makes the workers of tables commit every row that is dirty now,
// and waits for them all.
func (f *Flusher) Request(ctx context.Context, tables []*Table) error {
	reqs := make([]*request, 0, len(tables))
	for _, t := range tables {
		r := &request{done: make(chan error, 1)}
		select {
		case t.reqs <- r:
			reqs = append(reqs, r)
		case <-ctx.Done():
			return ctx.Err()
		case <-t.done:
			return ErrClosed
		}
	}
	var first error
	for _, r := range reqs {
		select {
		case err := <-r.done:
			if first == nil {
				first = err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}

// Abandon makes Close skip the final flush: a recovery that failed leaves
// its rows in the journal, not half flushed at close.
func (f *Flusher) Abandon() {
	f.mu.Lock()
	f.abandon = true
	f.mu.Unlock()
}

func (f *Flusher) abandoned() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.abandon
}

// Close stops every worker after each has flushed everything it can within
// the close timeout, and returns what could not be flushed.
func (f *Flusher) Close() error { return f.CloseContext(context.Background()) }

// CloseContext is Close, ending the final flushes when ctx ends too.
func (f *Flusher) CloseContext(ctx context.Context) error {
	select {
	case <-f.stop:
		return errors.New("writeback: flusher closed twice")
	default:
		close(f.stop)
	}
	// Whatever a final flush is blocked in (a connect or a statement to a
	// database that does not answer) ends at the close deadline, or when
	// the caller's context ends.
	giveUp := time.AfterFunc(f.cfg.CloseTimeout, f.cancel)
	stopWatch := context.AfterFunc(ctx, f.cancel)
	f.wg.Wait()
	stopWatch()
	giveUp.Stop()
	f.cancel()
	f.pool.close()
	var left int64
	var lastErr error
	for _, t := range f.tables {
		left += t.set.Pending()
		if t.finalErr != nil {
			lastErr = t.finalErr
		}
	}
	if left == 0 || f.abandoned() {
		return nil
	}
	if lastErr == nil {
		lastErr = errors.New("rows were left")
	}
	if ctx.Err() != nil {
		return fmt.Errorf("writeback: close: %d buffered rows could not be flushed before the shutdown context ended: %w", left, lastErr)
	}
	return fmt.Errorf("writeback: close: %d buffered rows could not be flushed within %s: %w", left, f.cfg.CloseTimeout, lastErr)
}

// SchemaChanged tells the flusher that a DDL statement changed the tables:
// the next flushes describe them afresh.
func (f *Flusher) SchemaChanged() { f.pool.schemaChanged() }

// Status returns the flusher's health now.
func (f *Flusher) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// noteFailure records a failed attempt of t that will be retried. It logs
// only when the flusher changes from healthy to failing: an outage of
// minutes retried every few seconds on every table is one warning.
func (f *Flusher) noteFailure(t *Table, err error, first bool) {
	now := time.Now()
	f.mu.Lock()
	f.st.LastErr, f.st.LastErrAt = err, now
	f.st.Retries++
	if first {
		f.failingTables++
	}
	began := f.st.FailingSince.IsZero()
	if began {
		f.st.FailingSince, f.retriesAtFail = now, f.st.Retries-1
	}
	f.mu.Unlock()
	if began {
		f.log.Warn("writeback: flush failing; buffered writes are kept and retried", "table", t.cfg.Name, "err", err)
	}
}

// noteRecovered records that t, which was failing, flushed; when it was the
// last failing table the flusher has recovered, which is logged with the
// outage's length and retries.
func (f *Flusher) noteRecovered(t *Table) {
	f.mu.Lock()
	f.failingTables--
	var since time.Time
	var retries int64
	if f.failingTables == 0 {
		since, retries = f.st.FailingSince, f.st.Retries-f.retriesAtFail
		f.st.FailingSince = time.Time{}
	}
	f.mu.Unlock()
	if !since.IsZero() {
		f.log.Info("writeback: flush recovered", "table", t.cfg.Name, "failing_for", time.Since(since).Round(time.Millisecond), "retries", retries)
	}
}

func (f *Flusher) hook(point string) {
	if f.cfg.Hook != nil {
		f.cfg.Hook(point)
	}
}
