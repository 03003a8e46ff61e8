package natstest

import (
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

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/testdb"
	_ "github.com/writeback-go/writeback/natsjournal"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	}
	os.Exit(m.Run())
}

var tableSeq atomic.Int64

// counterTable creates a fresh counters table of keys rows (id, n = 0) in
// the test PostgreSQL and returns its name; it is dropped when the test ends.
func counterTable(t testing.TB, db *sql.DB, keys int) string {
	t.Helper()
	name := fmt.Sprintf("nats_counters_%d_%d", os.Getpid(), tableSeq.Add(1))
	if _, err := db.Exec(fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (id bigint PRIMARY KEY, n bigint NOT NULL)", name, name)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("INSERT INTO %s SELECT g, 0 FROM generate_series(1, %d) g", name, keys)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + name) })
	return name
}

// natsRules writes a rules file for table with a replicated journal on
// urls and returns its path.
func natsRules(t testing.TB, dir, urls, stream, table, ack string, lease time.Duration, takeover bool, maxLoss time.Duration) string {
	t.Helper()
	rules := fmt.Sprintf(`journal:
  nats: %s
  stream: %s
  replicas: 3
  lease: %s
  takeover: %t
tables:
  %s:
    mode: back
    key: [id]
    ack: %s
    max_loss: %s
    rows_affected: assume
`, urls, stream, lease, takeover, table, ack, maxLoss)
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// openWB opens writeback over the test PostgreSQL with rules, as instance.
func openWB(t testing.TB, rules, instance string, opts ...writeback.Option) *sql.DB {
	t.Helper()
	db, err := writeback.OpenDSN("driver=pgx rules="+rules+" instance="+instance+" dsn="+testdb.PostgresDSN(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// counts reads table's counters.
func counts(t testing.TB, db *sql.DB, table string) map[int64]int64 {
	t.Helper()
	rows, err := db.Query("SELECT id, n FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// signalHandler is a slog handler that closes a channel the first time a
// record's message contains match (a log line as the signal of an event
// that has no other).
type signalHandler struct {
	match string
	once  *sync.Once
	ch    chan struct{}
	next  slog.Handler
}

func newSignal(match string) (*slog.Logger, <-chan struct{}) {
	h := signalHandler{match: match, once: new(sync.Once), ch: make(chan struct{}), next: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})}
	return slog.New(h), h.ch
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		h.once.Do(func() { close(h.ch) })
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h signalHandler) WithAttrs(a []slog.Attr) slog.Handler {
	h.next = h.next.WithAttrs(a)
	return h
}

func (h signalHandler) WithGroup(g string) slog.Handler {
	h.next = h.next.WithGroup(g)
	return h
}

// envChild marks a test binary run as a child process of a crash test.
const envChild = "WB_NATS_CHILD"
