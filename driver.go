// Package writeback is a database/sql driver that adds write-back caching to
// any other driver. Importing it registers the driver name "writeback":
//
//	db, err := sql.Open("writeback", "driver=pgx rules=writeback.yaml dsn=postgres://app@db/app")
//
// Statements on tables the rules file lists as "back" that are provably safe
// to defer (an UPDATE by key, an INSERT with the key) are acknowledged from
// memory, coalesced per row and flushed in batched transactions; everything
// else goes to the base driver unchanged, after the buffered rows of every
// back table it names are committed. See README.md for what a buffered write
// means and what can be lost.
//
// With a journal section in the rules, every buffered write is also appended
// to a crash-safe local journal before it is acknowledged (ack: disk waits
// for its fsync), each flush records in the database, in its own
// transaction, which journal records it applied, and opening the connector
// replays, exactly once, whatever the database lacks (internal/durable).
package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dsn"
	"github.com/writeback-go/writeback/internal/logagg"
)

func init() {
	sql.Register("writeback", &Driver{})
}

// Driver is the registered "writeback" driver. sql.Open calls its
// OpenConnector with the DSN; each connector has a buffer of its own.
type Driver struct{}

var (
	_ driver.Driver        = (*Driver)(nil)
	_ driver.DriverContext = (*Driver)(nil)
)

// Open is not used by database/sql, which calls OpenConnector; a connection
// opened alone would have no buffer to share with its pool.
func (d *Driver) Open(string) (driver.Conn, error) {
	return nil, errors.New("writeback: open the driver with sql.Open or writeback.NewConnector, not Driver.Open")
}

// OpenConnector parses a DSN of space-separated key=value pairs:
// driver=NAME (a registered database/sql driver), rules=PATH (the rules
// file; the WRITEBACK_RULES environment variable when absent), optional
// journal=PATH, dialect=postgres|sqlite|mysql|generic (see WithDialect),
// checks=open|deferred (see WithDeferredChecks), manage_schema=true|false
// (see Rules.SchemaCheckOnly), close_timeout=DURATION (WithCloseTimeout),
// dead_letter_file=PATH (WithDeadLetterFile), max_buffer_bytes=N, with an
// optional KiB, MiB or GiB suffix (WithMaxBufferBytes) and
// log_level=debug|info|warn|error (the level of the driver's records, sent
// to slog.Default()'s handler), instance=NAME (this process's identity for a
// replicated journal, see Rules.Instance), and dsn=BASE last, which takes
// the rest of the string verbatim as the base driver's DSN. journal=,
// instance= and manage_schema= override the rules file.
func (d *Driver) OpenConnector(dsn string) (driver.Connector, error) {
	return connectorFromDSN(dsn, nil)
}

// OpenDSN is sql.Open("writeback", dsn) with options that a DSN cannot carry
// (WithOnDeadLetter, WithLogger, ...). When an option and a DSN key set the
// same thing (WithCloseTimeout and close_timeout=, WithDeadLetterFile and
// dead_letter_file=, WithMaxBufferBytes and max_buffer_bytes=, WithDialect
// and dialect=, WithLogger and log_level=), the option wins: the DSN is
// configuration, the option is the program's explicit choice. Closing the
// *sql.DB flushes every buffered write and closes the connector.
func OpenDSN(dsn string, opts ...Option) (*sql.DB, error) {
	c, err := connectorFromDSN(dsn, opts)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// connectorFromDSN opens the connector a DSN describes; opts come after the
// DSN's own options, so they win.
func connectorFromDSN(dsn string, opts []Option) (*Connector, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	base, err := baseConnector(cfg.driver, cfg.dsn)
	if err != nil {
		return nil, err
	}
	rules, err := LoadRules(cfg.rules)
	if err != nil {
		closeQuietly(base)
		return nil, err
	}
	if cfg.journal != "" {
		if rules.Journal == nil {
			rules.Journal = &JournalRule{}
		}
		rules.Journal.Path = cfg.journal
	}
	if cfg.manageSchema != "" {
		rules.SchemaCheckOnly = cfg.manageSchema == "false"
	}
	if cfg.instance != "" {
		rules.Instance = cfg.instance
	}
	c, err := NewConnector(base, rules, append(cfg.options(), opts...)...)
	if err != nil {
		closeQuietly(base)
		return nil, err
	}
	return c, nil
}

type dsnConfig struct {
	driver, rules, journal, dialect, checks, dsn string
	instance                                     string

	manageSchema   string // "", "true" or "false"
	logLevel       string // "" or a key of logLevels
	deadLetterFile string
	closeTimeout   time.Duration // 0: not given
	maxBufferBytes int64         // 0: not given
}

// rulesEnv names the environment variable that gives the rules file when
// the DSN has no rules= key.
const rulesEnv = "WRITEBACK_RULES"

// dsnKeys lists the keys parseDSN knows, for its error messages.
const dsnKeys = "driver, rules, journal, instance, dialect, checks, manage_schema, close_timeout, dead_letter_file, max_buffer_bytes, log_level, dsn"

// logLevels are the log_level= names.
var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// parseDSN splits "driver=NAME rules=PATH [key=VALUE ...] dsn=BASE" (see
// OpenConnector) and checks every value.
func parseDSN(s string) (dsnConfig, error) {
	var cfg dsnConfig
	fields, base, hasBase, err := dsn.Split(s)
	if err != nil {
		return cfg, fmt.Errorf("writeback: DSN: %v (want driver=NAME rules=PATH dsn=BASE)", err)
	}
	seen := map[string]bool{}
	for _, f := range fields {
		key, val := f.Key, f.Val
		if seen[key] {
			return cfg, fmt.Errorf("writeback: DSN: %s= given twice", key)
		}
		seen[key] = true
		if val == "" {
			return cfg, fmt.Errorf("writeback: DSN: %s= is empty", key)
		}
		switch key {
		case "driver":
			cfg.driver = val
		case "rules":
			cfg.rules = val
		case "journal":
			cfg.journal = val
		case "instance":
			if err := checkNATSName(val); err != nil {
				return cfg, fmt.Errorf("writeback: DSN: instance=%v", err)
			}
			cfg.instance = val
		case "dialect":
			cfg.dialect = val
		case "checks":
			if val != "open" && val != "deferred" {
				return cfg, fmt.Errorf("writeback: DSN: checks=%s: want open or deferred", val)
			}
			cfg.checks = val
		case "manage_schema":
			if val != "true" && val != "false" {
				return cfg, fmt.Errorf("writeback: DSN: manage_schema=%s: want true or false", val)
			}
			cfg.manageSchema = val
		case "close_timeout":
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return cfg, fmt.Errorf("writeback: DSN: close_timeout=%s: want a positive duration like 30s or 1m30s", val)
			}
			cfg.closeTimeout = d
		case "dead_letter_file":
			cfg.deadLetterFile = val
		case "max_buffer_bytes":
			n, err := parseByteSize(val)
			if err != nil {
				return cfg, fmt.Errorf("writeback: DSN: max_buffer_bytes=%s: %v", val, err)
			}
			cfg.maxBufferBytes = n
		case "log_level":
			if _, ok := logLevels[val]; !ok {
				return cfg, fmt.Errorf("writeback: DSN: log_level=%s: want debug, info, warn or error", val)
			}
			cfg.logLevel = val
		default:
			return cfg, fmt.Errorf("writeback: DSN: unknown key %q (known: %s)", key, dsnKeys)
		}
	}
	if cfg.driver == "" {
		return cfg, errors.New("writeback: DSN: driver=NAME is required (the base database/sql driver, e.g. pgx or sqlite3)")
	}
	if cfg.driver == "writeback" {
		return cfg, errors.New("writeback: DSN: driver=writeback would wrap itself")
	}
	if !seen["rules"] {
		cfg.rules = os.Getenv(rulesEnv)
	}
	if cfg.rules == "" {
		return cfg, errors.New("writeback: DSN: rules=PATH is required (or the " + rulesEnv + " environment variable)")
	}
	if !hasBase {
		return cfg, errors.New("writeback: DSN: dsn=BASE is required (it comes last)")
	}
	cfg.dsn = base
	return cfg, nil
}

// options are the NewConnector options the DSN's keys ask for.
func (cfg dsnConfig) options() []Option {
	var opts []Option
	if cfg.dialect != "" {
		opts = append(opts, WithDialect(cfg.dialect))
	}
	if cfg.checks == "deferred" {
		opts = append(opts, WithDeferredChecks())
	}
	if cfg.closeTimeout > 0 {
		opts = append(opts, WithCloseTimeout(cfg.closeTimeout))
	}
	if cfg.deadLetterFile != "" {
		opts = append(opts, WithDeadLetterFile(cfg.deadLetterFile))
	}
	if cfg.maxBufferBytes > 0 {
		opts = append(opts, WithMaxBufferBytes(cfg.maxBufferBytes))
	}
	if cfg.logLevel != "" {
		opts = append(opts, withLogLevel(logLevels[cfg.logLevel]))
	}
	return opts
}

// byteUnits are the suffixes max_buffer_bytes= takes.
var byteUnits = []struct {
	suffix string
	shift  uint
}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}}

// parseByteSize reads a positive byte count: digits, optionally followed by
// KiB, MiB or GiB (powers of 1024).
func parseByteSize(s string) (int64, error) {
	digits, shift := s, uint(0)
	for _, u := range byteUnits {
		if d, ok := strings.CutSuffix(s, u.suffix); ok {
			digits, shift = d, u.shift
			break
		}
	}
	const want = "want a positive number of bytes, optionally with a KiB, MiB or GiB suffix (e.g. 67108864 or 64MiB)"
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, errors.New(want)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	switch {
	case err != nil || n > math.MaxInt64>>shift:
		return 0, errors.New("too large")
	case n == 0:
		return 0, errors.New(want)
	}
	return n << shift, nil
}

// baseConnector finds a registered driver by name and returns a connector
// for dsn. database/sql has no lookup by name, so a throwaway *sql.DB is
// opened (it connects to nothing) and its Driver taken.
func baseConnector(name, dsn string) (driver.Connector, error) {
	found := false
	for _, n := range sql.Drivers() {
		found = found || n == name
	}
	if !found {
		return nil, fmt.Errorf("writeback: DSN: base driver %q is not registered (forgotten import? registered: %s)", name, strings.Join(sql.Drivers(), ", "))
	}
	db, err := sql.Open(name, dsn)
	if err != nil {
		return nil, fmt.Errorf("writeback: base driver %s: %w", name, err)
	}
	drv := db.Driver()
	_ = db.Close()
	if dc, ok := drv.(driver.DriverContext); ok {
		c, err := dc.OpenConnector(dsn)
		if err != nil {
			return nil, fmt.Errorf("writeback: base driver %s: %w", name, err)
		}
		return c, nil
	}
	return dsnConnector{drv: drv, dsn: dsn}, nil
}

// dsnConnector is the connector for a driver without DriverContext, as
// database/sql builds it.
type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }

func closeQuietly(c driver.Connector) {
	if cl, ok := c.(io.Closer); ok {
		_ = cl.Close()
	}
}

// Connector is a driver.Connector that wraps a base connector with a buffer.
// Use it with sql.OpenDB; closing the *sql.DB closes it, which flushes every
// buffered write first.
type Connector struct {
	base  driver.Connector
	rules *Rules
	buf   *buffer
	drv   *connDriver
	log   *slog.Logger
	// loss keeps the state file; lastCrash is what it told of the run
	// before (losswatch.go).
	loss      *lossWatch
	lastCrash atomic.Pointer[CrashReport]

	// dia is the base database's dialect, decided once at open.
	dia dialect.Dialect
	// foundRows: on MySQL, what an upsert counts for a row its update
	// leaves as it was: 1 when the connections count matched rows
	// (clientFoundRows=true), 0 when they count changed rows, -1 when that
	// cannot be told (a wrapped driver): such an upsert then goes to the
	// database.
	foundRows int8

	cache  atomic.Pointer[stmtCache] // classifications under the current catalog
	schema schemaKeeper

	closeOnce sync.Once
	closeErr  error

	// recovery is set when the journal's recovery waits for the database
	// (it was down at open).
	recovery atomic.Pointer[heldRecovery]

	deadFile *deadLetterFile  // nil without WithDeadLetterFile
	onDead   func(DeadLetter) // WithOnDeadLetter

	// rowLogs logs per-row events (dead letters) a line a second per table
	// and kind; Close logs what is pending.
	rowLogs *logagg.Aggregator

	// cfg is the settings the connector was made with, which a takeover's
	// connector inherits (recover.go).
	cfg config

	// dropWrite, when not 0, is the bufferable write (counted by
	// dropCount) that is acknowledged and discarded: withDroppedWrite.
	dropWrite int64
	dropCount atomic.Int64
}

var (
	_ driver.Connector = (*Connector)(nil)
	_ io.Closer        = (*Connector)(nil)
)

// OpenDB wraps base with NewConnector and returns sql.OpenDB of the
// connector: the programmatic counterpart of sql.Open("writeback", dsn), for
// rules built in code or parsed with ParseRules. Closing the *sql.DB flushes
// every buffered write and closes the connector. Flush and StatsOf take the
// returned *sql.DB. When NewConnector fails, OpenDB returns its error and
// leaves base open.
func OpenDB(base driver.Connector, rules *Rules, opts ...Option) (*sql.DB, error) {
	c, err := NewConnector(base, rules, opts...)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// NewConnector wraps base: statements on rules' back tables are buffered, the
// rest go to base. It validates rules and options and returns an error that
// names the problem; it never panics.
//
// The connector works on a copy of rules in which a zero MaxLoss, Batch or
// MaxDirty is replaced by its default; rules itself is not modified, and
// changing it later does not affect the connector.
func NewConnector(base driver.Connector, rules *Rules, opts ...Option) (*Connector, error) {
	if base == nil {
		return nil, errors.New("writeback: NewConnector: nil base connector")
	}
	if rules == nil {
		return nil, errors.New("writeback: NewConnector: nil rules")
	}
	rules, err := rules.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg := config{log: slog.Default(), closeTimeout: DefaultCloseTimeout, maxBufferBytes: DefaultMaxBufferBytes}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("writeback: NewConnector: nil option")
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	c := &Connector{base: base, rules: rules, log: cfg.log, onDead: cfg.onDead, dropWrite: cfg.dropWrite}
	c.rowLogs = logagg.New(logagg.Config{Log: cfg.log, Clock: cfg.logClock})
	c.drv = &connDriver{c: c}
	c.dia = cfg.dialect
	if c.dia == nil {
		c.dia = dialect.Detect(base.Driver())
	}
	c.cfg = cfg
	c.cfg.dialect = c.dia
	c.foundRows = -1
	if found, known := dialect.MySQLFoundRows(base); known {
		c.foundRows = 0
		if found {
			c.foundRows = 1
		}
	}
	c.buf = newBuffer(rules, cfg.maxBufferBytes, cfg.log)
	c.resetStatementCache()
	if err := c.openSchema(cfg.closeTimeout, !cfg.deferChecks); err != nil {
		return nil, err
	}
	if cfg.deadFile != "" {
		dlf, err := openDeadLetterFile(cfg.deadFile)
		if err != nil {
			return nil, err
		}
		c.deadFile = dlf
	}
	if rules.Journal != nil {
		j, err := c.openJournal(rules, &cfg)
		if err != nil {
			_ = c.deadFile.close()
			return nil, err
		}
		c.buf.journal = j
		if !c.schema.pending.Load() {
			c.saveSchema()
		}
	}
	c.startFlusher(&cfg)
	if c.buf.journal != nil {
		// Replay what the journal holds and the database lacks before the
		// connector serves anything.
		ctx, cancel := context.WithTimeout(context.Background(), cfg.closeTimeout)
		err := c.recoverJournal(ctx)
		cancel()
		if err != nil && c.deferRecovery(err) {
			err = c.recoverLater(err)
		}
		if err != nil {
			c.buf.shared.Close()
			c.buf.flusher.Abandon()
			_ = c.buf.flusher.Close()
			c.rowLogs.Close()
			_ = c.buf.journal.Abandon()
			_ = c.deadFile.close()
			return nil, err
		}
	}
	c.startLossWatch(&cfg) // losswatch.go
	return c, nil
}

// Connect opens a base connection and wraps it. When the database cannot be
// reached (a connection or transient error: SQLite's "unable to open" is
// one) it returns a detached connection, which connects on demand.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	base, err := c.base.Connect(ctx)
	if err != nil {
		if dialect.ClassOf(err) == dialect.Permanent {
			return nil, err
		}
		// The database is unreachable: a detached connection still
		// acknowledges write-back writes (conn.go).
		return newConn(nil, c), nil
	}
	return newConn(base, c), nil
}

// Driver returns a driver value that belongs to this connector, so Flush and
// StatsOf can find the buffer from a *sql.DB.
func (c *Connector) Driver() driver.Driver { return c.drv }

// Flush commits every write buffered so far, whatever its table's max_loss.
func (c *Connector) Flush(ctx context.Context) error {
	return c.buf.barrier(ctx, c.buf.ordered)
}

// Close flushes everything buffered (retrying transient failures up to the
// close timeout), stops the flusher and closes the base connector if it is an
// io.Closer. It returns an error that says how many rows were left if the
// flush could not finish. Later calls return the same result.
func (c *Connector) Close() error { return c.Shutdown(context.Background()) }

// Shutdown is Close within the caller's context: the final flush ends when
// ctx ends or the close timeout passes, whichever comes first, and what is
// left is reported (and stays in the journal, if there is one). Like Close,
// it runs once; later calls of either return the same result.
func (c *Connector) Shutdown(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.recovery.Load().stopRetry()
		c.buf.shared.Close()
		if j := c.buf.journal; j != nil && j.Fenced() != nil {
			// Another process may be applying the journal's records: no
			// final flush may apply them too, so none is retried.
			fenced, cancel := context.WithCancel(ctx)
			cancel()
			ctx = fenced
		}
		c.closeErr = c.buf.flusher.CloseContext(ctx)
		c.stopLossWatch() // clean if the final flush left nothing
		// After the flushers, its writers: what is pending is logged.
		c.rowLogs.Close()
		c.closeErr = errors.Join(c.closeErr, c.deadFile.close()) // the flushers, its only writers, have stopped
		if j := c.buf.journal; j != nil {
			c.closeErr = errors.Join(c.closeErr, j.Close(c.buf.pending()))
		}
		if cl, ok := c.base.(io.Closer); ok {
			c.closeErr = errors.Join(c.closeErr, cl.Close())
		}
	})
	return c.closeErr
}

// connDriver is the per-connector driver value returned by Connector.Driver.
type connDriver struct{ c *Connector }

func (d *connDriver) Open(string) (driver.Conn, error) { return d.c.Connect(context.Background()) }

// connectorOf finds the writeback connector behind a *sql.DB.
func connectorOf(db *sql.DB) (*Connector, error) {
	if db == nil {
		return nil, errors.New("writeback: nil *sql.DB")
	}
	d, ok := db.Driver().(*connDriver)
	if !ok {
		return nil, fmt.Errorf("writeback: this *sql.DB uses driver %T, not writeback", db.Driver())
	}
	return d.c, nil
}

// Flush makes every write acknowledged so far through db durable in the
// database before it returns, or returns why it could not.
func Flush(ctx context.Context, db *sql.DB) error {
	c, err := connectorOf(db)
	if err != nil {
		return err
	}
	return c.Flush(ctx)
}

// ShutdownContext flushes every write buffered through db within ctx and
// closes db: the caller decides how long shutting down may take (Close uses
// the connector's close timeout instead). It returns what could not be
// flushed, and db's own Close error.
func ShutdownContext(ctx context.Context, db *sql.DB) error {
	c, err := connectorOf(db)
	if err != nil {
		return err
	}
	_ = c.Shutdown(ctx)
	return db.Close() // closes the connector again, which returns Shutdown's result
}

// StatsOf returns the buffer's figures for a *sql.DB opened with writeback.
func StatsOf(db *sql.DB) (Stats, error) {
	c, err := connectorOf(db)
	if err != nil {
		return Stats{}, err
	}
	return c.Stats(), nil
}
