package writeback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/drillfault"
	"github.com/writeback-go/writeback/internal/logagg"
)

// Option configures a Connector.
type Option func(*config) error

type config struct {
	log            *slog.Logger
	onDead         func(DeadLetter)
	closeTimeout   time.Duration
	deadFile       string
	maxBufferBytes int64
	dialect        dialect.Dialect // nil: detected from the base driver
	flushConns     int             // 0: one per back table
	deferChecks    bool            // WithDeferredChecks
	onCrash        func(CrashReport)
	stateFile      string // WithStateFile
	stateFileSet   bool
	instance       string // WithInstance
	takeover       bool   // the connector applies a dead instance's records (withTakeoverOf)

	// Test seams (crash tests): see withTestHooks and withJournalFault.
	hook         func(point string)
	journalFault func(point string) error
	segmentBytes int64
	compactEvery time.Duration
	logClock     logagg.Clock // withLogClock: when per-row log lines are aggregated
	dropWrite    int64        // withDroppedWrite: the write acknowledged and discarded (0: none)
}

// withTestHooks sets the crash tests' seams: hook is called at the named
// points of the flush-and-checkpoint protocol ("before-tx", "after-rows",
// "before-commit", "after-commit") and of the journal ("journal:<point>");
// segmentBytes and compactEvery shrink the journal's segments and the time
// between compactions, so tests see segments compacted away.
func withTestHooks(hook func(point string), segmentBytes int64, compactEvery time.Duration) Option {
	return func(c *config) error {
		c.hook, c.segmentBytes, c.compactEvery = hook, segmentBytes, compactEvery
		return nil
	}
}

// withLogClock sets the clock that ends the windows of aggregated log lines
// (tests: a fake one that only Close ends).
func withLogClock(clock logagg.Clock) Option {
	return func(c *config) error {
		c.logClock = clock
		return nil
	}
}

// withDroppedWrite makes the connector acknowledge its nth bufferable write
// and discard it, journal record and buffered row alike: a broken promise
// that the drill's tests make on purpose (internal/drillfault).
func withDroppedWrite(nth int64) Option {
	return func(c *config) error {
		c.dropWrite = nth
		return nil
	}
}

func init() {
	drillfault.DropAckedWrite = func(nth int64) any { return Option(withDroppedWrite(nth)) }
}

// withJournalFault injects failures into the journal's file layer at its
// fault points (tests: a full disk).
func withJournalFault(fault func(point string) error) Option {
	return func(c *config) error {
		c.journalFault = fault
		return nil
	}
}

// WithFlushConnections bounds the connections the flush workers open to the
// base database at once (default: one per back table). With fewer
// connections than back tables, tables of higher priority get the next free
// connection first; a table whose flush is blocked holds its connection, so
// keep the bound above the number of tables that may be slow at once.
func WithFlushConnections(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("writeback: WithFlushConnections: %d is not positive", n)
		}
		c.flushConns = n
		return nil
	}
}

// WithDialect names the base database's dialect instead of detecting it from
// the driver's package: "postgres", "sqlite", "mysql" (MariaDB too) or
// "generic". Use it for drivers that wrap pgx, go-sqlite3 or
// go-sql-driver/mysql (otelsql, sqlmw), which are otherwise treated as
// generic: fewer statement shapes buffered, one statement per row when
// flushing. lib/pq is detected as PostgreSQL.
func WithDialect(name string) Option {
	return func(c *config) error {
		d, err := dialect.ByName(name)
		if err != nil {
			return fmt.Errorf("writeback: WithDialect: %w", err)
		}
		c.dialect = d
		return nil
	}
}

// WithLogger sends the driver's logs (flush failures, UPDATEs that matched no
// row, refused rows) to l instead of slog.Default(). Events of single rows
// are logged at most once a second per table and kind, as one line with their
// count (README "Logs").
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("writeback: WithLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

// withLogLevel is the DSN's log_level=: the driver's records at level and
// above go to slog.Default()'s handler, whatever level that handler is set
// to (the DSN sets the driver's level, not the program's). A WithLogger
// given after it replaces it.
func withLogLevel(level slog.Level) Option {
	return func(c *config) error {
		c.log = slog.New(levelHandler{min: level, h: slog.Default().Handler()})
		return nil
	}
}

// levelHandler passes the records at or above min to h.
type levelHandler struct {
	min slog.Level
	h   slog.Handler
}

func (l levelHandler) Enabled(_ context.Context, level slog.Level) bool { return level >= l.min }

func (l levelHandler) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }

func (l levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{min: l.min, h: l.h.WithAttrs(attrs)}
}

func (l levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{min: l.min, h: l.h.WithGroup(name)}
}

// WithOnDeadLetter calls fn, from the flusher's goroutine, for every buffered
// write that did not take effect: a row the database refused permanently, or
// a flushed UPDATE that matched no row. fn must not block for long.
func WithOnDeadLetter(fn func(DeadLetter)) Option {
	return func(c *config) error {
		if fn == nil {
			return errors.New("writeback: WithOnDeadLetter: nil function")
		}
		c.onDead = fn
		return nil
	}
}

// WithDeadLetterFile appends every dead letter (see WithOnDeadLetter) to the
// file at path as one JSON line, fsynced, so refused rows can be inspected
// and replayed (ParseDeadLetter reads a line back; README "Dead-letter file"
// gives the format). The file is opened, or created, by NewConnector and
// closed by Close.
func WithDeadLetterFile(path string) Option {
	return func(c *config) error {
		if path == "" {
			return errors.New("writeback: WithDeadLetterFile: empty path")
		}
		c.deadFile = path
		return nil
	}
}

// DefaultCloseTimeout is how long Close keeps retrying a flush that fails
// transiently before it gives up and reports what is left.
const DefaultCloseTimeout = 30 * time.Second

// WithCloseTimeout sets how long Close keeps retrying to flush what is
// buffered (default DefaultCloseTimeout).
func WithCloseTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("writeback: WithCloseTimeout: %s is not positive", d)
		}
		c.closeTimeout = d
		return nil
	}
}

// WithMaxBufferBytes bounds the approximate memory held by dirty rows not yet
// committed, across all back tables (default DefaultMaxBufferBytes). A write
// that would make a new row beyond it meets a full buffer and its table's
// on_full decides; a write coalesced into an existing row is always taken.
func WithMaxBufferBytes(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("writeback: WithMaxBufferBytes: %d is not positive", n)
		}
		c.maxBufferBytes = n
		return nil
	}
}

// WithDeferredChecks lets a connector open although a rule does not fit the
// database's schema yet — typically because the tables are created after
// opening, by migrations that run through the returned *sql.DB. Each such
// table is logged at open, its writes go to the database unbuffered, and it
// is checked again after every DDL statement that names it: once it fits,
// its writes are buffered. Without this option (the default) the connector
// refuses to open on such a rule, naming the rules file and line. The DSN
// key checks=deferred does the same.
func WithDeferredChecks() Option {
	return func(c *config) error {
		c.deferChecks = true
		return nil
	}
}

// WithInstance names this process for a replicated journal (journal.nats):
// its records, lease and checkpoints are named by it, so another process
// restarting it, on any host, or taking it over, finds them. It overrides
// the rules' instance: and the DSN's instance=. Letters, digits, - and _;
// one name per running process (a pod name, a host name).
func WithInstance(name string) Option {
	return func(c *config) error {
		if err := checkNATSName(name); err != nil {
			return fmt.Errorf("writeback: WithInstance: %v", err)
		}
		c.instance = name
		return nil
	}
}

// withTakeoverOf makes the connector one that applies a dead instance's
// records: it takes that instance's lease without waiting (and fails when
// another process took it first), keeps no state file and takes over no
// other instance.
func withTakeoverOf(instance string) Option {
	return func(c *config) error {
		c.instance, c.takeover = instance, true
		c.stateFile, c.stateFileSet = "", true
		return nil
	}
}
