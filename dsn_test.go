package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseDSNOptionKeys(t *testing.T) {
	t.Setenv(rulesEnv, "")
	in := "driver=pgx rules=r manage_schema=false close_timeout=1m30s dead_letter_file=/var/dl.jsonl max_buffer_bytes=64MiB log_level=warn dsn=x"
	want := dsnConfig{driver: "pgx", rules: "r", dsn: "x", manageSchema: "false", closeTimeout: 90 * time.Second,
		deadLetterFile: "/var/dl.jsonl", maxBufferBytes: 64 << 20, logLevel: "warn"}
	if got, err := parseDSN(in); err != nil || got != want {
		t.Fatalf("parseDSN(%q) = %+v, %v; want %+v", in, got, err, want)
	}
	bad := map[string]string{
		"manage_schema=no":                       "manage_schema=no: want true or false",
		"close_timeout=soon":                     "close_timeout=soon: want a positive duration",
		"close_timeout=30":                       "close_timeout=30: want a positive duration",
		"close_timeout=0s":                       "close_timeout=0s: want a positive duration",
		"close_timeout=-1s":                      "close_timeout=-1s: want a positive duration",
		"max_buffer_bytes=lots":                  "max_buffer_bytes=lots: want a positive number of bytes",
		"max_buffer_bytes=0":                     "max_buffer_bytes=0: want a positive number of bytes",
		"max_buffer_bytes=-5":                    "max_buffer_bytes=-5: want a positive number of bytes",
		"max_buffer_bytes=10MB":                  "max_buffer_bytes=10MB: want a positive number of bytes, optionally with a KiB, MiB or GiB suffix",
		"max_buffer_bytes=1GiB1":                 "max_buffer_bytes=1GiB1: want",
		"max_buffer_bytes=1.5GiB":                "max_buffer_bytes=1.5GiB: want",
		"max_buffer_bytes=9999999999GiB":         "max_buffer_bytes=9999999999GiB: too large",
		"log_level=verbose":                      "log_level=verbose: want debug, info, warn or error",
		"log_level=INFO":                         "log_level=INFO: want debug, info, warn or error",
		"dead_letter_file=":                      "dead_letter_file= is empty",
		"max_buffer_bytes=":                      "max_buffer_bytes= is empty",
		"manage_schema=true manage_schema=false": "manage_schema= given twice",
	}
	for keys, want := range bad {
		in := "driver=pgx rules=r " + keys + " dsn=x"
		_, err := parseDSN(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseDSN(%q) error = %v; want one containing %q", in, err, want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{
		"1": 1, "4096": 4096, "4KiB": 4096, "64MiB": 64 << 20, "2GiB": 2 << 30, "007": 7,
		"9223372036854775807": math.MaxInt64, "8589934591GiB": 8589934591 << 30,
	}
	for in, want := range good {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0KiB", "KiB", "+1", "-1", " 1", "1 KiB", "1kib", "1KB", "1K", "1e6", "0x10",
		"9223372036854775808", "8589934592GiB", "9223372036854775807KiB"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
}

// TestRulesFromEnvironment: WRITEBACK_RULES names the rules file when the
// DSN has no rules= key; a rules= key wins over it.
func TestRulesFromEnvironment(t *testing.T) {
	rules := writeRulesFile(t, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	t.Setenv(rulesEnv, rules)
	if cfg, err := parseDSN("driver=sqlite3 dsn=x"); err != nil || cfg.rules != rules {
		t.Fatalf("parseDSN without rules= = %+v, %v; want rules %s", cfg, err, rules)
	}
	if cfg, err := parseDSN("driver=sqlite3 rules=other.yaml dsn=x"); err != nil || cfg.rules != "other.yaml" {
		t.Fatalf("parseDSN with rules= = %+v, %v; want rules other.yaml", cfg, err)
	}

	base := sqliteDSN(t, "env")
	direct, err := sql.Open("sqlite3", base)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	createCounters(t, direct, 3, false)
	wb, err := sql.Open("writeback", "driver=sqlite3 dsn="+base)
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", 1); err != nil {
		t.Fatal(err)
	}
	st, err := StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tables["counters"].Dirty != 1 {
		t.Fatalf("counters has %d dirty rows, want 1: the rules of %s were not used", st.Tables["counters"].Dirty, rulesEnv)
	}

	missing := filepath.Join(t.TempDir(), "none.yaml")
	t.Setenv(rulesEnv, missing)
	if db, err := sql.Open("writeback", "driver=sqlite3 dsn="+base); err == nil || !strings.Contains(err.Error(), missing) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("open with %s=%s: %v, want an error naming the file", rulesEnv, missing, err)
	}
	t.Setenv(rulesEnv, "")
	if _, err := parseDSN("driver=sqlite3 dsn=x"); err == nil || !strings.Contains(err.Error(), "rules=PATH is required (or the "+rulesEnv+" environment variable)") {
		t.Fatalf("parseDSN without rules and %s: %v", rulesEnv, err)
	}
}

// recordLog is a slog handler that keeps the messages of the records it
// is handed, with a level of its own.
type recordLog struct {
	level slog.Level
	mu    sync.Mutex
	msgs  []string
}

func (l *recordLog) Enabled(_ context.Context, level slog.Level) bool { return level >= l.level }
func (l *recordLog) WithAttrs([]slog.Attr) slog.Handler               { return l }
func (l *recordLog) WithGroup(string) slog.Handler                    { return l }
func (l *recordLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func (l *recordLog) has(substr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			return true
		}
	}
	return false
}

// genericInfo is the info record an open with dialect=generic logs.
const genericInfo = "no catalog for the generic dialect"

// TestDSNLogLevel: log_level= sets the level of the driver's records sent
// to slog.Default()'s handler, whatever that handler's own level; without
// it the handler decides, as before.
func TestDSNLogLevel(t *testing.T) {
	rules := writeRulesFile(t, "tables: {}\n")
	base := sqliteDSN(t, "loglevel")
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	cases := []struct {
		handler slog.Level
		key     string
		logged  bool
	}{
		{slog.LevelDebug, "", true},
		{slog.LevelError, "", false},
		{slog.LevelDebug, "log_level=error", false},
		{slog.LevelDebug, "log_level=warn", false},
		{slog.LevelError, "log_level=info", true},
		{slog.LevelError, "log_level=debug", true},
	}
	for _, c := range cases {
		logs := &recordLog{level: c.handler}
		slog.SetDefault(slog.New(logs))
		db, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dialect=generic "+c.key+" dsn="+base)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if logs.has(genericInfo) != c.logged {
			t.Errorf("handler at %v, %q: info record logged = %v, want %v", c.handler, c.key, !c.logged, c.logged)
		}
	}
}

// outageDriver is a registered driver over SQLite whose database can be
// made unreachable, so that tests reach a boundConnector through a
// writeback DSN: outageConnectors holds the connector of each base DSN.
// Its connectors name it as their driver (database/sql and baseConnector
// find it so), which makes its dialect unknown: the DSN says dialect=sqlite.
type outageDriver struct{}

type outageConnector struct{ *boundConnector }

func (outageConnector) Driver() driver.Driver { return outageDriver{} }

var outageConnectors sync.Map // base DSN -> *boundConnector

func init() { sql.Register("writeback-outage-test", outageDriver{}) }

func (outageDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("outage test driver: use OpenConnector")
}

func (outageDriver) OpenConnector(dsn string) (driver.Connector, error) {
	base, err := baseConnector("sqlite3", dsn)
	if err != nil {
		return nil, err
	}
	c := &boundConnector{base: base}
	outageConnectors.Store(dsn, c)
	return outageConnector{c}, nil
}

// openOutage opens writeback over a fresh SQLite database with counters
// 0..99 through the outage driver, with extra DSN keys, and returns its
// connector's outage switch.
func openOutage(t *testing.T, rules, keys string) (*sql.DB, *boundConnector) {
	t.Helper()
	base := sqliteDSN(t, "outage")
	direct, err := sql.Open("sqlite3", base)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	createCounters(t, direct, 100, false)
	wb, err := sql.Open("writeback", "driver=writeback-outage-test dialect=sqlite rules="+writeRulesFile(t, rules)+" "+keys+" dsn="+base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wb.Close() })
	if err := wb.Ping(); err != nil {
		t.Fatal(err)
	}
	c, ok := outageConnectors.Load(base)
	if !ok {
		t.Fatal("no connector for the outage driver")
	}
	return wb, c.(*boundConnector)
}

// TestDSNMaxBufferBytes: max_buffer_bytes= bounds the buffer: while the
// database is down, writes to new rows meet a full buffer under it, and
// not under the default bound.
func TestDSNMaxBufferBytes(t *testing.T) {
	const rules = "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    on_full: error\n    rows_affected: assume\n"
	fill := func(wb *sql.DB, fc *boundConnector) (accepted int, bytes int64) {
		t.Helper()
		fc.down.Store(true)
		for ; accepted < 100; accepted++ {
			if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", accepted); err != nil {
				if !errors.Is(err, ErrBufferFull) {
					t.Fatal(err)
				}
				break
			}
		}
		st, err := StatsOf(wb)
		if err != nil {
			t.Fatal(err)
		}
		fc.down.Store(false)
		if err := Flush(context.Background(), wb); err != nil {
			t.Fatal(err)
		}
		return accepted, st.BufferBytes
	}
	wb, fc := openOutage(t, rules, "max_buffer_bytes=4KiB")
	n, bytes := fill(wb, fc)
	if n == 0 || n == 100 || bytes > 4096 {
		t.Fatalf("max_buffer_bytes=4KiB: %d new rows accepted holding %d bytes; want some, not all 100, within 4096 bytes", n, bytes)
	}
	wb, fc = openOutage(t, rules, "")
	if n, bytes := fill(wb, fc); n != 100 || bytes <= 4096 {
		t.Fatalf("default bound: %d new rows accepted holding %d bytes; want all 100, beyond 4096 bytes", n, bytes)
	}
}

// TestDSNCloseTimeout: Close gives up on a flush the database refuses
// after close_timeout, not after DefaultCloseTimeout.
func TestDSNCloseTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	wb, fc := openOutage(t, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    rows_affected: assume\n", "close_timeout="+timeout.String())
	if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", 1); err != nil {
		t.Fatal(err)
	}
	fc.down.Store(true)
	start := time.Now()
	err := wb.Close()
	took := time.Since(start)
	if err == nil {
		t.Fatal("Close flushed while the database was down")
	}
	if took < timeout || took > DefaultCloseTimeout/3 {
		t.Fatalf("Close took %v with close_timeout=%v (default %v): %v", took, timeout, DefaultCloseTimeout, err)
	}
}

// deadLetterSetup makes a SQLite database whose flush of an UPDATE of
// counter 99, which does not exist, is a dead letter.
func deadLetterSetup(t *testing.T) (rules, base string) {
	t.Helper()
	base = sqliteDSN(t, "dead")
	direct, err := sql.Open("sqlite3", base)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	createCounters(t, direct, 3, false)
	return writeRulesFile(t, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    rows_affected: assume\n"), base
}

// writeDeadLetter updates the missing counter 99 through wb and closes it.
func writeDeadLetter(t *testing.T, wb *sql.DB) {
	t.Helper()
	if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", 99); err != nil {
		t.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
}

// readDeadLetter reads the one dead letter in the file at path.
func readDeadLetter(t *testing.T, path string) DeadLetter {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines in %s, want 1: %q", len(lines), path, data)
	}
	dl, err := ParseDeadLetter([]byte(lines[0]))
	if err != nil {
		t.Fatal(err)
	}
	return dl
}

// TestDSNDeadLetterFile: dead_letter_file= receives the dead letters.
func TestDSNDeadLetterFile(t *testing.T) {
	rules, base := deadLetterSetup(t)
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	wb, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dead_letter_file="+path+" dsn="+base)
	if err != nil {
		t.Fatal(err)
	}
	writeDeadLetter(t, wb)
	if dl := readDeadLetter(t, path); !dl.NoMatch || dl.Table != "counters" || len(dl.Key) != 1 || dl.Key[0] != int64(99) {
		t.Fatalf("dead letter %+v, want the UPDATE of counter 99 that matched no row", dl)
	}
	bad := filepath.Join(t.TempDir(), "no", "such", "dir", "dead.jsonl")
	if db, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dead_letter_file="+bad+" dsn="+base); err == nil || !strings.Contains(err.Error(), bad) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("open with a dead-letter file that cannot be created: %v", err)
	}
}

// TestOpenDSNOptionsWin: an option given to OpenDSN wins over the DSN key
// that sets the same thing.
func TestOpenDSNOptionsWin(t *testing.T) {
	rules, base := deadLetterSetup(t)
	dir := t.TempDir()
	fromDSN, fromOption := filepath.Join(dir, "dsn.jsonl"), filepath.Join(dir, "option.jsonl")
	wb, err := OpenDSN("driver=sqlite3 rules="+rules+" dead_letter_file="+fromDSN+" dsn="+base, WithDeadLetterFile(fromOption))
	if err != nil {
		t.Fatal(err)
	}
	writeDeadLetter(t, wb)
	if dl := readDeadLetter(t, fromOption); len(dl.Key) != 1 || dl.Key[0] != int64(99) {
		t.Fatalf("dead letter %+v", dl)
	}
	if _, err := os.Stat(fromDSN); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the DSN's dead-letter file was opened: %v", err)
	}

	logs := &recordLog{level: slog.LevelDebug}
	wb, err = OpenDSN("driver=sqlite3 rules="+rules+" dialect=generic log_level=error dsn="+base, WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	if !logs.has(genericInfo) {
		t.Fatal("log_level=error silenced the logger given with WithLogger")
	}

	// The DSN is checked as sql.Open checks it, and so are the options.
	if _, err := OpenDSN("driver=sqlite3 rules="+rules+" log_level=loud dsn="+base, WithLogger(slog.New(logs))); err == nil || !strings.Contains(err.Error(), "log_level=loud") {
		t.Fatalf("OpenDSN with a bad key: %v", err)
	}
	if _, err := OpenDSN("driver=sqlite3 rules="+rules+" dsn="+base, nil); err == nil {
		t.Fatal("OpenDSN accepted a nil option")
	}
}
