package flush

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/writeback-go/writeback/internal/dirtyset"
)

// harness is a Flusher of one table over a fakeDB, started.
type harness struct {
	f   *Flusher
	db  *fakeDB
	set *dirtyset.Table
	tab *Table

	mu   sync.Mutex
	dead []deadRec
}

type deadRec struct {
	key     int64
	err     error
	noMatch bool
}

func newHarness(t *testing.T, closeTimeout time.Duration) *harness {
	t.Helper()
	h := &harness{db: &fakeDB{}, set: newSet("t")}
	h.f = New(Config{
		Connector: h.db.connector(),
		Dialect:   genericDialect(t),
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnDead: func(tab *Table, r *dirtyset.Row, err error, noMatch bool) {
			if tab != h.tab {
				t.Errorf("OnDead for table %q", tab.Name())
			}
			h.mu.Lock()
			h.dead = append(h.dead, deadRec{keyOf(r), err, noMatch})
			h.mu.Unlock()
		},
		CloseTimeout: closeTimeout,
	})
	h.tab = h.f.AddTable(TableConfig{Set: h.set, Name: "t", MaxLoss: time.Hour})
	h.f.Start()
	t.Cleanup(func() { _ = h.f.Close() }) // a second Close only reports it
	return h
}

func (h *harness) request() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return h.f.Request(ctx, []*Table{h.tab})
}

func (h *harness) deadLetters() []deadRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.dead)
}

// keyArg is the key of a one-row statement of the test table: its last
// argument.
func keyArg(args []driver.Value) int64 { return args[len(args)-1].(int64) }

func committedKeys(recs []execRec) []int64 {
	var ks []int64
	for _, r := range recs {
		ks = append(ks, keyArg(r.args))
	}
	return ks
}

func TestFlushWritesEveryShapeInOneTransaction(t *testing.T) {
	h := newHarness(t, time.Second)
	mustUpdate(t, h.set, 1, add("n", int64(1)))
	mustUpdate(t, h.set, 1, add("n", int64(2)))
	mustUpdate(t, h.set, 2, set("a", "x"))
	mustInsert(t, h.set, 3, []string{"id", "a"}, int64(3), "z")
	if err := h.request(); err != nil {
		t.Fatalf("Request: %v", err)
	}
	want := []execRec{
		{"UPDATE t SET a = ? WHERE id = ?", []driver.Value{"x", int64(2)}},
		{"UPDATE t SET n = n + ? WHERE id = ?", []driver.Value{int64(3), int64(1)}},
		{"INSERT INTO t (a, id) VALUES (?, ?)", []driver.Value{"z", int64(3)}},
	}
	got := h.db.commits()
	if len(got) != len(want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
	for i := range want {
		if got[i].query != want[i].query || !slices.Equal(got[i].args, want[i].args) {
			t.Errorf("statement %d: %q %v, want %q %v", i, got[i].query, got[i].args, want[i].query, want[i].args)
		}
	}
	if p := h.set.Pending(); p != 0 {
		t.Errorf("Pending = %d after the flush, want 0", p)
	}
	if st := h.tab.Stats(); st.Flushes != 1 || st.FlushedRows != 3 || st.FlushErrors != 0 || st.DeadLetters != 0 {
		t.Errorf("Stats = %+v, want 1 flush of 3 rows", st)
	}
	// A request on a clean table writes nothing.
	if err := h.request(); err != nil || len(h.db.commits()) != 3 {
		t.Errorf("Request on a clean table: %v, %d statements", err, len(h.db.commits()))
	}
}

func TestFlushIsolatesRefusedRows(t *testing.T) {
	h := newHarness(t, time.Second)
	unique := &pgconn.PgError{Code: "23505", Message: "duplicate key"}
	h.db.script(func(q string, args []driver.Value) error {
		if keyArg(args) == 3 {
			return unique
		}
		return nil
	}, nil)
	for k := int64(1); k <= 4; k++ {
		mustUpdate(t, h.set, k, add("n", k))
	}
	if err := h.request(); err != nil {
		t.Fatalf("Request: %v (a permanent refusal is not the flush's error)", err)
	}
	if got := committedKeys(h.db.commits()); !slices.Equal(got, []int64{1, 2, 4}) {
		t.Errorf("committed keys %v, want 1 2 4", got)
	}
	dead := h.deadLetters()
	var pgErr *pgconn.PgError
	if len(dead) != 1 || dead[0].key != 3 || dead[0].noMatch || !errors.As(dead[0].err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("dead letters %+v, want key 3 with the unique violation", dead)
	}
	st := h.tab.Stats()
	// 4 rows fail, then [3 4], then [3]; [1 2] and [4] commit.
	if st.DeadLetters != 1 || st.Flushes != 2 || st.FlushedRows != 3 || st.FlushErrors != 3 {
		t.Errorf("Stats = %+v, want 1 dead letter, 2 flushes of 3 rows, 3 errors", st)
	}
	if p := h.set.Pending(); p != 0 {
		t.Errorf("Pending = %d, want 0", p)
	}
	if s := h.f.Status(); !s.FailingSince.IsZero() {
		t.Errorf("a permanent refusal made the flusher failing: %+v", s)
	}
}

func TestFlushReportsUnmatchedUpdates(t *testing.T) {
	h := newHarness(t, time.Second)
	h.db.script(nil, func(q string, args []driver.Value) int64 {
		if keyArg(args) == 2 {
			return 0
		}
		return 1
	})
	for k := int64(1); k <= 3; k++ {
		mustUpdate(t, h.set, k, set("a", k))
	}
	if err := h.request(); err != nil {
		t.Fatalf("Request: %v", err)
	}
	dead := h.deadLetters()
	if len(dead) != 1 || dead[0].key != 2 || !dead[0].noMatch || dead[0].err != nil {
		t.Fatalf("dead letters %+v, want key 2 as no match", dead)
	}
	if st := h.tab.Stats(); st.NoMatch != 1 || st.DeadLetters != 0 || st.FlushedRows != 3 {
		t.Errorf("Stats = %+v, want 1 no-match, no dead letter, 3 rows", st)
	}
}

func TestFlushRetriesTransientFailureOlderRowsFirst(t *testing.T) {
	h := newHarness(t, time.Second)
	mustUpdate(t, h.set, 1, add("n", int64(1)))
	mustUpdate(t, h.set, 2, add("n", int64(2)))
	serialization := &pgconn.PgError{Code: "40001"}
	outcome := make(chan dirtyset.Outcome, 1)
	var once sync.Once
	h.db.script(func(q string, args []driver.Value) error {
		// A write to key 1 while its row is being flushed makes a newer row.
		once.Do(func() {
			out, _ := h.set.Update([]any{int64(1)}, []dirtyset.Change{add("n", int64(10))}, testNames(), nil, false)
			outcome <- out
		})
		return serialization
	}, nil)
	err := h.request()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "40001" {
		t.Fatalf("Request: %v, want the serialization failure", err)
	}
	if out := <-outcome; out != dirtyset.Buffered {
		t.Fatalf("write during the flush: outcome %d", out)
	}
	if d := h.set.Dirty(); d.N != 3 || d.Retry != 2 {
		t.Fatalf("Dirty() = %+v, want the 2 rows put back and a newer one", d)
	}
	st := h.f.Status()
	if st.FailingSince.IsZero() || st.Retries != 1 || !errors.As(st.LastErr, &pgErr) {
		t.Errorf("Status = %+v, want failing with 1 retry", st)
	}
	if len(h.db.commits()) != 0 || len(h.deadLetters()) != 0 {
		t.Fatalf("a transient failure committed or dead-lettered rows")
	}

	h.db.script(nil, nil)
	if err := h.request(); err != nil {
		t.Fatalf("Request after recovery: %v", err)
	}
	got := h.db.commits()
	var key1 []driver.Value
	for _, r := range got {
		if keyArg(r.args) == 1 {
			key1 = append(key1, r.args[0])
		}
	}
	if len(got) != 3 || !slices.Equal(key1, []driver.Value{int64(1), int64(10)}) {
		t.Errorf("committed %v; key 1's deltas %v, want the retried +1 before the newer +10", got, key1)
	}
	if st := h.f.Status(); !st.FailingSince.IsZero() {
		t.Errorf("Status = %+v after recovery, want healthy", st)
	}
	if p := h.set.Pending(); p != 0 {
		t.Errorf("Pending = %d, want 0", p)
	}
}

func TestFlushReplacesBrokenConnection(t *testing.T) {
	h := newHarness(t, time.Second)
	mustUpdate(t, h.set, 1, set("a", int64(1)))
	var once sync.Once
	h.db.script(func(string, []driver.Value) error {
		var err error
		once.Do(func() { err = driver.ErrBadConn })
		return err
	}, nil)
	if err := h.request(); !errors.Is(err, driver.ErrBadConn) {
		t.Fatalf("Request: %v, want ErrBadConn", err)
	}
	if !h.db.conn(0).closed.Load() {
		t.Error("the broken connection was not closed")
	}
	if d := h.set.Dirty(); d.Retry != 1 {
		t.Fatalf("Dirty() = %+v, want the row put back", d)
	}
	if err := h.request(); err != nil {
		t.Fatalf("Request: %v", err)
	}
	if n := h.db.connects(); n != 2 {
		t.Errorf("%d connections, want 2 (the broken one replaced)", n)
	}
	if got := committedKeys(h.db.commits()); !slices.Equal(got, []int64{1}) {
		t.Errorf("committed keys %v, want [1]", got)
	}
}

func TestFlushConnectFailureKeepsRows(t *testing.T) {
	h := newHarness(t, time.Second)
	h.db.mu.Lock()
	h.db.connectErr = &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}
	h.db.mu.Unlock()
	mustUpdate(t, h.set, 1, set("a", int64(1)))
	err := h.request()
	var cf *connectFailure
	if !errors.As(err, &cf) {
		t.Fatalf("Request: %v, want a connect failure", err)
	}
	if len(h.deadLetters()) != 0 || h.set.Dirty().Retry != 1 {
		t.Fatalf("a connect failure dead-lettered or dropped the row: %+v", h.set.Dirty())
	}
	h.db.mu.Lock()
	h.db.connectErr = nil
	h.db.mu.Unlock()
	if err := h.request(); err != nil {
		t.Fatalf("Request: %v", err)
	}
	if h.set.Pending() != 0 {
		t.Errorf("Pending = %d, want 0", h.set.Pending())
	}
}

func TestCloseFlushesWhatIsLeft(t *testing.T) {
	h := newHarness(t, time.Second)
	mustUpdate(t, h.set, 1, set("a", int64(1)))
	mustUpdate(t, h.set, 2, set("a", int64(2)))
	if err := h.f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := committedKeys(h.db.commits()); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("committed keys %v at close, want 1 2", got)
	}
	if err := h.f.Request(context.Background(), []*Table{h.tab}); !errors.Is(err, ErrClosed) {
		t.Errorf("Request after Close: %v, want ErrClosed", err)
	}
	if err := h.f.Close(); err == nil {
		t.Error("a second Close reported nothing")
	}
	if !h.db.conn(0).closed.Load() {
		t.Error("Close left the flush connection open")
	}
}

func TestCloseReportsRowsLeft(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond)
	h.db.script(func(string, []driver.Value) error { return &pgconn.PgError{Code: "40001"} }, nil)
	mustUpdate(t, h.set, 1, set("a", int64(1)))
	err := h.f.Close()
	// The last error is the database's, or the cancellation of the attempt
	// the close timeout cut short.
	var pgErr *pgconn.PgError
	if err == nil || !strings.Contains(err.Error(), "1 buffered rows could not be flushed") || !errors.As(err, &pgErr) && !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: %v, want the row left and the last error", err)
	}
	if h.set.Pending() != 1 {
		t.Errorf("Pending = %d, want 1", h.set.Pending())
	}
}
