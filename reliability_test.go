package writeback

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// openWritebackWith opens writeback over a base driver's DSN with options
// (which the DSN form cannot carry); the *sql.DB is closed when the test ends
// if the test has not closed it.
func openWritebackWith(t testing.TB, driverName, baseDSN, rules string, opts ...Option) (*sql.DB, *Connector) {
	t.Helper()
	base, err := baseConnector(driverName, baseDSN)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(base, mustRules(t, rules), opts...)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db, c
}

// stateLog is a slog handler that records the flusher's state-change
// messages and signals each one, so tests wait for the state rather than
// for a guessed time.
type stateLog struct {
	mu      sync.Mutex
	failing []string // errors of "flush failing" records
	recover []string // "flush recovered" records
	signal  chan string
}

func newStateLog() *stateLog { return &stateLog{signal: make(chan string, 64)} }

func (h *stateLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *stateLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *stateLog) WithGroup(string) slog.Handler            { return h }

func (h *stateLog) Handle(_ context.Context, r slog.Record) error {
	var attrs []string
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a.Key+"="+a.Value.String())
		return true
	})
	line := r.Message + " " + strings.Join(attrs, " ")
	var kind string
	h.mu.Lock()
	switch {
	case strings.HasPrefix(r.Message, "writeback: flush failing"):
		h.failing = append(h.failing, line)
		kind = "failing"
	case strings.HasPrefix(r.Message, "writeback: flush recovered"):
		h.recover = append(h.recover, line)
		kind = "recovered"
	case strings.HasPrefix(r.Message, "writeback: journal reconciled"):
		kind = "reconciled"
	}
	h.mu.Unlock()
	if kind != "" {
		select {
		case h.signal <- kind:
		default:
		}
	}
	return nil
}

func (h *stateLog) counts() (failing, recovered int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.failing), len(h.recover)
}

// await waits for the state-change message kind, or fails the test.
func (h *stateLog) await(t testing.TB, kind string, within time.Duration) {
	t.Helper()
	tm := time.NewTimer(within)
	defer tm.Stop()
	for {
		select {
		case k := <-h.signal:
			if k == kind {
				return
			}
		case <-tm.C:
			t.Fatalf("no %q log record within %s (%v)", kind, within, h)
		}
	}
}

// TestOutageThroughProxy runs write-back writes from several goroutines
// while the proxy in front of PostgreSQL cuts every connection and refuses
// new ones for three seconds. Every buffered write is acknowledged during the
// outage; write-through statements and reads that need a barrier fail within
// their context; the flusher recovers by itself and the table ends with
// exactly the acknowledged sums. The failing state is in Stats and logged
// once each way.
func TestOutageThroughProxy(t *testing.T) {
	p, viaProxy, direct := proxiedPostgres(t, "outage")
	ddb, err := sql.Open("pgx", direct)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	const keys = 16
	execAll(t, ddb, fmt.Sprintf(`CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL);
		INSERT INTO counters SELECT g, 0 FROM generate_series(0, %d) g;
		CREATE TABLE orders (id bigserial PRIMARY KEY, note text)`, keys-1))
	logs := newStateLog()
	wb, _ := openWritebackWith(t, "pgx", viaProxy, `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 100ms
  orders:
    mode: through
`, WithLogger(slog.New(logs)), WithCloseTimeout(10*time.Second))

	var acked [keys]atomic.Int64
	var writes, writeErrs atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, d := (w*7+i)%keys, int64(1+i%3)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := wb.ExecContext(ctx, "UPDATE counters SET n = n + $1 WHERE id = $2", d, id)
				cancel()
				if err != nil {
					writeErrs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				acked[id].Add(d)
				writes.Add(1)
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()

	// Healthy first: a flush goes through the proxy.
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatalf("flush before the outage: %v", err)
	}
	before := writes.Load()

	end := p.outage()
	outageEnds := time.NewTimer(3 * time.Second) // the outage's length is the fault itself
	logs.await(t, "failing", 3*time.Second)
	st, _ := StatsOf(wb)
	if st.FailingSince.IsZero() || st.LastError == nil {
		t.Errorf("during the outage: FailingSince %v LastError %v; want both set", st.FailingSince, st.LastError)
	}

	// Write-through statements fail with an error, within about their context.
	throughCheck := func(name string, run func(ctx context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := run(ctx)
		took := time.Since(start)
		if err == nil || took > 2*time.Second {
			t.Errorf("%s during the outage: err %v after %s; want an error within 2s", name, err, took)
		}
	}
	throughCheck("write-through INSERT", func(ctx context.Context) error {
		_, err := wb.ExecContext(ctx, "INSERT INTO orders (note) VALUES ($1)", "during outage")
		return err
	})
	throughCheck("read of a back table (barrier)", func(ctx context.Context) error {
		var n int64
		return wb.QueryRowContext(ctx, "SELECT n FROM counters WHERE id = $1", 1).Scan(&n)
	})
	throughCheck("Flush", func(ctx context.Context) error { return Flush(ctx, wb) })

	<-outageEnds.C
	during := writes.Load() - before
	end()

	// The flusher recovers by itself, without a Flush asking it to.
	logs.await(t, "recovered", 10*time.Second)
	stopWriters()
	if n := writeErrs.Load(); n != 0 {
		t.Fatalf("%d write-back writes failed (first: %v); every one must be acknowledged", n, firstErr.Load())
	}
	if during == 0 {
		t.Fatal("no write-back write was acknowledged during the outage")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Flush(ctx, wb); err != nil {
		t.Fatalf("flush after the outage: %v", err)
	}
	st, _ = StatsOf(wb)
	if !st.FailingSince.IsZero() || st.Retries == 0 || st.Dirty != 0 {
		t.Errorf("after recovery: FailingSince %v Retries %d Dirty %d; want zero, >0, 0", st.FailingSince, st.Retries, st.Dirty)
	}
	if f, r := logs.counts(); f != 1 || r != 1 {
		t.Errorf("state-change log records: %d failing, %d recovered; want one of each (not one per retry)", f, r)
	}
	got := map[int64]int64{}
	rows, err := ddb.Query("SELECT id, n FROM counters")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		got[id] = n
	}
	rows.Close()
	for id := range keys {
		if want := acked[id].Load(); got[int64(id)] != want {
			t.Errorf("counter %d = %d, acknowledged %d", id, got[int64(id)], want)
		}
	}
	t.Logf("%d writes acknowledged (%d during the 3s outage), %d retries", writes.Load(), during, st.Retries)
}

// poisonRow buffers 1000 INSERTs of which one violates a CHECK constraint,
// flushes, and checks that the 999 others are in the database, the one is in
// the dead-letter file with the database's error, the stats count it, and
// later writes flush normally.
func poisonRow(t *testing.T, driverName, baseDSN string, ph func(int) string) {
	ddb, err := sql.Open(driverName, baseDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	execAll(t, ddb, "CREATE TABLE items (id bigint PRIMARY KEY, qty bigint NOT NULL CHECK (qty >= 0), label text)")
	dlPath := filepath.Join(t.TempDir(), "dead.jsonl")
	var hooked atomic.Int64
	wb, _ := openWritebackWith(t, driverName, baseDSN, `
tables:
  items:
    mode: back
    key: [id]
    max_loss: 1h
    allow: [check]
`, WithDeadLetterFile(dlPath), WithOnDeadLetter(func(DeadLetter) { hooked.Add(1) }))
	const n, bad = 1000, 437
	insert := fmt.Sprintf("INSERT INTO items (id, qty, label) VALUES (%s, %s, %s)", ph(1), ph(2), ph(3))
	for i := range n {
		qty := int64(i)
		if i == bad {
			qty = -1
		}
		if _, err := wb.Exec(insert, i, qty, []byte(fmt.Sprintf("item-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatalf("flush: %v (a permanent error is dead-lettered, not returned)", err)
	}
	var count, badCount int
	if err := ddb.QueryRow("SELECT count(*), count(*) FILTER (WHERE id = "+fmt.Sprint(bad)+") FROM items").Scan(&count, &badCount); err != nil {
		// SQLite before 3.30 has no FILTER: count the two apart.
		if err := ddb.QueryRow("SELECT count(*), sum(id = "+fmt.Sprint(bad)+") FROM items").Scan(&count, &badCount); err != nil {
			t.Fatal(err)
		}
	}
	if count != n-1 || badCount != 0 {
		t.Fatalf("database holds %d rows (bad one: %d); want %d without it", count, badCount, n-1)
	}
	st, _ := StatsOf(wb)
	if st.DeadLetters != 1 || hooked.Load() != 1 || st.Dirty != 0 {
		t.Fatalf("DeadLetters %d, hook calls %d, Dirty %d; want 1, 1, 0", st.DeadLetters, hooked.Load(), st.Dirty)
	}

	// Later writes flush normally.
	if _, err := wb.Exec(insert, n, 5, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := wb.Exec(fmt.Sprintf("UPDATE items SET qty = qty + %s WHERE id = %s", ph(1), ph(2)), 10, 1); err != nil {
		t.Fatal(err)
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	var qty1, qtyN int64
	if err := ddb.QueryRow("SELECT (SELECT qty FROM items WHERE id = 1), (SELECT qty FROM items WHERE id = "+fmt.Sprint(n)+")").Scan(&qty1, &qtyN); err != nil {
		t.Fatal(err)
	}
	if qty1 != 11 || qtyN != 5 {
		t.Fatalf("after the poison row: qty(1) = %d, qty(%d) = %d; want 11, 5", qty1, n, qtyN)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}

	// The dead-letter file holds exactly the refused row, replayable.
	f, err := os.Open(dlPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 1 {
		t.Fatalf("dead-letter file holds %d lines; want 1:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	dl, err := ParseDeadLetter([]byte(lines[0]))
	if err != nil {
		t.Fatalf("%v: %s", err, lines[0])
	}
	if dl.Table != "items" || dl.Op != "insert" || len(dl.Key) != 1 || dl.Key[0] != int64(bad) || dl.NoMatch || dl.Writes != 1 {
		t.Fatalf("dead letter %+v; want the insert of id %d", dl, bad)
	}
	// MariaDB says "CONSTRAINT `items.qty` failed".
	if dl.Err == nil || !strings.Contains(strings.ToLower(dl.Err.Error()), "check") && !strings.Contains(strings.ToLower(dl.Err.Error()), "constraint") {
		t.Fatalf("dead letter error %v; want the CHECK violation", dl.Err)
	}
	vals := map[string]any{}
	for i, c := range dl.Columns {
		vals[c] = dl.Values[i]
	}
	if vals["qty"] != int64(-1) || string(asBytes(vals["label"])) != fmt.Sprintf("item-%d", bad) {
		t.Fatalf("dead letter values %v; want qty -1 and the label's bytes", vals)
	}
	if time.Since(dl.Time) > time.Minute {
		t.Fatalf("dead letter time %v", dl.Time)
	}
}

func asBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return nil
}

func TestPoisonRowPostgres(t *testing.T) {
	poisonRow(t, "pgx", pgSchema(t, "poison"), func(i int) string { return fmt.Sprintf("$%d", i) })
}

func TestPoisonRowSQLite(t *testing.T) {
	poisonRow(t, "sqlite3", sqliteDSN(t, "poison"), func(int) string { return "?" })
}

// TestDeadLetterFileNoMatch checks that an UPDATE that matched no row is a
// dead letter in the file too, counted as NoMatch, not as DeadLetters.
func TestDeadLetterFileNoMatch(t *testing.T) {
	base := sqliteDSN(t, "nomatch")
	ddb, err := sql.Open("sqlite3", base)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	execAll(t, ddb, "CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, at TEXT, r REAL)")
	dlPath := filepath.Join(t.TempDir(), "dead.jsonl")
	wb, _ := openWritebackWith(t, "sqlite3", base, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    rows_affected: assume\n", WithDeadLetterFile(dlPath))
	at := time.Date(2026, 11, 25, 18, 0, 0, 123456789, time.UTC)
	if _, err := wb.Exec("UPDATE counters SET n = n + ?, at = ?, r = ? WHERE id = ?", 3, at, 2.0, 99); err != nil {
		t.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(dlPath)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := ParseDeadLetter(data[:len(data)-1])
	if err != nil {
		t.Fatal(err)
	}
	if !dl.NoMatch || dl.Err != nil || dl.Op != "update" || dl.Key[0] != int64(99) || len(dl.Delta) != 3 {
		t.Fatalf("dead letter %+v from %s", dl, data)
	}
	vals := map[string]any{}
	for i, c := range dl.Columns {
		vals[c] = dl.Values[i]
	}
	if vals["n"] != int64(3) || vals["r"] != 2.0 {
		t.Fatalf("values %#v; want n int64 3 and r float64 2", vals)
	}
	if tm, ok := vals["at"].(time.Time); ok && !tm.Equal(at) {
		t.Fatalf("time value %v; want %v", tm, at)
	}
}

func TestWithDeadLetterFileValidation(t *testing.T) {
	if _, err := NewConnector(dsnConnector{}, mustRules(t, "tables: {}\n"), WithDeadLetterFile("")); err == nil {
		t.Fatal("empty path accepted")
	}
	bad := filepath.Join(t.TempDir(), "no", "such", "dir", "dead.jsonl")
	_, err := NewConnector(dsnConnector{}, mustRules(t, "tables: {}\n"), WithDeadLetterFile(bad))
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("unopenable path: %v; want an error naming it", err)
	}
}

// TestNoGoroutineLeftAfterClosePostgres is the same over pgx (no journal).
func TestNoGoroutineLeftAfterClosePostgres(t *testing.T) {
	dsn := pgSchema(t, "leak")
	ddb, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	execAll(t, ddb, "CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL); INSERT INTO counters SELECT g, 0 FROM generate_series(0, 9) g")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	base, err := baseConnector("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(base, mustRules(t, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 20ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	wb := sql.OpenDB(c)
	for i := range 500 {
		if _, err := wb.Exec("UPDATE counters SET n = n + $1 WHERE id = $2", 1, i%10); err != nil {
			t.Fatal(err)
		}
	}
	var n int64
	if err := wb.QueryRow("SELECT sum(n) FROM counters").Scan(&n); err != nil || n != 500 {
		t.Fatalf("sum %d, %v; want 500", n, err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNoGoroutineLeftAfterClose opens writeback (with and without a journal,
// with a dead-letter file), writes, closes, and finds no goroutine left.
func TestNoGoroutineLeftAfterClose(t *testing.T) {
	for _, journal := range []bool{false, true} {
		t.Run(fmt.Sprintf("journal=%v", journal), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			base := sqliteDSN(t, "leak")
			ddb, err := sql.Open("sqlite3", base)
			if err != nil {
				t.Fatal(err)
			}
			defer ddb.Close()
			execAll(t, ddb, "CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n < 1000)); WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < 79) INSERT INTO counters (id, n) SELECT i, 0 FROM g")
			rules := "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 50ms\n"
			if journal {
				rules = journalRules(filepath.Join(t.TempDir(), "journal"), "everysec", "disk", "50ms")
			}
			rules += "    allow: [check]\n"
			base2, err := baseConnector("sqlite3", base)
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewConnector(base2, mustRules(t, rules), WithDeadLetterFile(filepath.Join(t.TempDir(), "dead.jsonl")))
			if err != nil {
				t.Fatal(err)
			}
			wb := sql.OpenDB(c)
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 200 {
						if _, err := wb.Exec("UPDATE counters SET n = n + ? WHERE id = ?", 1, w*20+i%20); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if _, err := wb.Exec("INSERT INTO counters (id, n) VALUES (?, ?)", 99999, 5000); err != nil {
				t.Fatal(err) // refused at flush: a dead letter
			}
			var n int
			if err := wb.QueryRow("SELECT count(*) FROM counters").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if err := wb.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCommitAnswerLost cuts the flusher's connection right after its COMMIT
// reaches PostgreSQL, before the answer comes back: the server committed, the
// flusher saw only a broken connection. Retrying would apply every delta
// twice; the flusher asks txid_status instead and counts the rows flushed.
func TestCommitAnswerLost(t *testing.T) { commitAnswerLost(t, "pgx") }

// commitAnswerLost is TestCommitAnswerLost through a base driver that sends
// COMMIT as pgx does.
func commitAnswerLost(t *testing.T, driverName string, opts ...Option) {
	p, viaProxy, direct := proxiedPostgres(t, "commitlost")
	ddb, err := sql.Open("pgx", direct)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	execAll(t, ddb, "CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL); INSERT INTO counters SELECT g, 0 FROM generate_series(0, 9) g")
	wb, _ := openWritebackWith(t, driverName, viaProxy, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n", opts...)
	sum := flushCommitCut(t, p, wb, ddb, "UPDATE counters SET n = n + $1 WHERE id = $2", 10*time.Second, func(b []byte) bool {
		// pgx commits with a simple query: 'Q', length, "commit\x00".
		return strings.Contains(strings.ToLower(string(b)), "commit\x00")
	})
	if sum != 100 {
		t.Fatalf("sum = %d after a COMMIT whose answer was lost; want 100 (each delta once)", sum)
	}
	if st, _ := StatsOf(wb); st.Dirty != 0 || st.DeadLetters != 0 {
		t.Fatalf("Dirty %d DeadLetters %d; want 0, 0", st.Dirty, st.DeadLetters)
	}
}

// flushCommitCut adds 1 a hundred times to counters 0 to 9 through wb
// (update is the statement in the base driver's placeholders), has proxy p
// cut the connection right after the first chunk isCommit takes for a
// COMMIT, flushes within timeout, and requires exactly one COMMIT cut. The
// flush may report the broken connection; it is flushed again then (the
// rows must not be written again either way). It returns the counters' sum
// read through direct.
func flushCommitCut(t *testing.T, p *faultProxy, wb, direct *sql.DB, update string, timeout time.Duration, isCommit func(chunk []byte) bool) int64 {
	t.Helper()
	for i := range 100 {
		if _, err := wb.Exec(update, 1, i%10); err != nil {
			t.Fatal(err)
		}
	}
	var commits atomic.Int64
	p.cutAfterChunk(func(b []byte) bool {
		if isCommit(b) {
			commits.Add(1)
			return true
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := Flush(ctx, wb); err != nil {
		t.Logf("flush: %v", err)
		if err := Flush(ctx, wb); err != nil {
			t.Fatal(err)
		}
	}
	if commits.Load() != 1 {
		t.Fatalf("the proxy cut %d COMMITs; want 1", commits.Load())
	}
	var sum int64
	if err := direct.QueryRow("SELECT sum(n) FROM counters").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	return sum
}
