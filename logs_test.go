package writeback

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is the output of a slog handler, safe for the flush worker
// and the test to share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// jsonLines decodes the lines whose message contains msg.
func (b *lockedBuffer) jsonLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(b.buf.Bytes(), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if s, _ := m["msg"].(string); strings.Contains(s, msg) {
			out = append(out, m)
		}
	}
	return out
}

// heldClock never ends a window by itself: only Close does.
type heldClock struct{}

func (heldClock) Now() time.Time                              { return time.Now() }
func (heldClock) AfterFunc(time.Duration, func()) func() bool { return func() bool { return true } }

// rowsIn sums the rows attribute of lines, and checks each names table.
func rowsIn(t *testing.T, lines []map[string]any, table string) int {
	t.Helper()
	n := 0
	for _, l := range lines {
		if l["table"] != table {
			t.Errorf("line names table %v, want %s: %v", l["table"], table, l)
		}
		rows, ok := l["rows"].(float64)
		if !ok {
			t.Fatalf("line without a rows count: %v", l)
		}
		if keys, ok := l["keys"].([]any); !ok || len(keys) == 0 || len(keys) > 5 {
			t.Errorf("line's keys = %v, want 1 to 5 keys", l["keys"])
		}
		n += int(rows)
	}
	return n
}

// noMatchWorkload buffers 1,000 UPDATEs of keys that have no row (assumed
// to exist, so they are acknowledged) and 200 UPDATEs the database refuses
// (a CHECK constraint), flushes them once, closes, and returns the logs.
func noMatchWorkload(t *testing.T, opts ...Option) (*lockedBuffer, time.Duration) {
	t.Helper()
	base := sqliteDSN(t, "quietlogs")
	ddb, err := sql.Open("sqlite3", base)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	execAll(t, ddb, `CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE stock (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0))`)
	if _, err := ddb.Exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 200) INSERT INTO stock SELECT i, 0 FROM s`); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	opts = append([]Option{WithLogger(slog.New(slog.NewJSONHandler(logs, nil)))}, opts...)
	wb, _ := openWritebackWith(t, "sqlite3", base, `tables:
  counters: {mode: back, key: [id], max_loss: 1h, rows_affected: assume}
  stock: {mode: back, key: [id], max_loss: 1h, rows_affected: assume, allow: [check]}
`, opts...)
	for id := 1; id <= 1000; id++ {
		if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
	}
	for id := 1; id <= 200; id++ {
		if _, err := wb.Exec("UPDATE stock SET n = n - 1 WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	st, err := StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Tables["counters"].NoMatch; got != 1000 {
		t.Fatalf("NoMatch = %d, want 1000", got)
	}
	if got := st.Tables["stock"].DeadLetters; got != 200 {
		t.Fatalf("stock's DeadLetters = %d, want 200", got)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	return logs, time.Since(start)
}

// TestNoMatchLogsAggregated: 1,000 UPDATEs that match no row in one flush,
// and 200 rows the database refuses, are one line each, with their counts,
// logged by Close at the latest.
func TestNoMatchLogsAggregated(t *testing.T) {
	logs, _ := noMatchWorkload(t, withLogClock(heldClock{}))
	noMatch := logs.jsonLines(t, "matched no row")
	if len(noMatch) != 1 || rowsIn(t, noMatch, "counters") != 1000 || noMatch[0]["level"] != "WARN" {
		t.Errorf("no-match lines = %v, want one WARN line with rows 1000", noMatch)
	}
	refused := logs.jsonLines(t, "refused")
	if len(refused) != 1 || rowsIn(t, refused, "stock") != 200 || refused[0]["level"] != "ERROR" {
		t.Fatalf("refused lines = %v, want one ERROR line with rows 200", refused)
	}
	if e, _ := refused[0]["err"].(string); !strings.Contains(e, "CHECK") {
		t.Errorf("refused line's err = %q, want the database's CHECK error", e)
	}
	if got := fmt.Sprint(noMatch[0]["keys"]); got != "[[1] [2] [3] [4] [5]]" {
		t.Errorf("keys = %s, want the first five", got)
	}
}

// TestNoMatchLogsAggregatedRealClock is the same with the real clock: a
// line a second at most, and every row counted.
func TestNoMatchLogsAggregatedRealClock(t *testing.T) {
	logs, took := noMatchWorkload(t)
	most := 1 + int(took/time.Second) // one per window begun while the flush ran
	noMatch := logs.jsonLines(t, "matched no row")
	if len(noMatch) > most || rowsIn(t, noMatch, "counters") != 1000 {
		t.Errorf("no-match lines = %v, want at most %d counting 1000 rows", noMatch, most)
	}
	refused := logs.jsonLines(t, "refused")
	if len(refused) > most || rowsIn(t, refused, "stock") != 200 {
		t.Errorf("refused lines = %v, want at most %d counting 200 rows", refused, most)
	}
}
