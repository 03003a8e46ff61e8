package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// boundConnector wraps a real base connector (SQLite or PostgreSQL) for the
// bound and backpressure tests: while down is set every connect and every
// statement fails with a connection-class error, as during an outage; delay
// is added to every statement execution, as a slow database would.
type boundConnector struct {
	base  driver.Connector
	down  atomic.Bool
	delay atomic.Int64 // time.Duration
}

var errBoundDown = fmt.Errorf("boundtest: database down: %w", driver.ErrBadConn)

func (c *boundConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.down.Load() {
		return nil, errBoundDown
	}
	cn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &boundConn{c: c, base: cn}, nil
}

func (c *boundConnector) Driver() driver.Driver { return c.base.Driver() }

func (c *boundConnector) Close() error {
	if cl, ok := c.base.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// check is what every statement meets first: the outage, then the latency.
func (c *boundConnector) check() error {
	if c.down.Load() {
		return errBoundDown
	}
	if d := time.Duration(c.delay.Load()); d > 0 {
		time.Sleep(d) // the database's latency, not synchronisation
	}
	return nil
}

type boundConn struct {
	c    *boundConnector
	base driver.Conn
}

func (b *boundConn) Prepare(q string) (driver.Stmt, error) {
	return b.PrepareContext(context.Background(), q)
}

func (b *boundConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	if b.c.down.Load() {
		return nil, errBoundDown
	}
	var st driver.Stmt
	var err error
	if p, ok := b.base.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, q)
	} else {
		st, err = b.base.Prepare(q)
	}
	if err != nil {
		return nil, err
	}
	return &boundStmt{c: b.c, base: st}, nil
}

func (b *boundConn) Close() error { return b.base.Close() }

func (b *boundConn) Begin() (driver.Tx, error) {
	return b.BeginTx(context.Background(), driver.TxOptions{})
}

func (b *boundConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := b.c.check(); err != nil {
		return nil, err
	}
	if bt, ok := b.base.(driver.ConnBeginTx); ok {
		return bt.BeginTx(ctx, opts)
	}
	//lint:ignore SA1019 fallback of a wrapper
	return b.base.Begin()
}

type boundStmt struct {
	c    *boundConnector
	base driver.Stmt
}

func (s *boundStmt) Close() error  { return s.base.Close() }
func (s *boundStmt) NumInput() int { return s.base.NumInput() }

func (s *boundStmt) Exec(args []driver.Value) (driver.Result, error) {
	return nil, errors.New("boundtest: use ExecContext")
}

func (s *boundStmt) Query(args []driver.Value) (driver.Rows, error) {
	return nil, errors.New("boundtest: use QueryContext")
}

func (s *boundStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.c.check(); err != nil {
		return nil, err
	}
	return s.base.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *boundStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.c.check(); err != nil {
		return nil, err
	}
	return s.base.(driver.StmtQueryContext).QueryContext(ctx, args)
}

// boundSetup creates a table counters(id, v) with rows 0..rows-1 through a
// direct connection, and opens writeback over a boundConnector on the same
// database.
func boundSetup(t *testing.T, driverName, dsn, rules string, rows int, opts ...Option) (wb *sql.DB, direct *sql.DB, fc *boundConnector, cn *Connector) {
	t.Helper()
	direct, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	execAll(t, direct, "CREATE TABLE counters (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
	tx, err := direct.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rows; i++ {
		if _, err := tx.Exec(placeholders("INSERT INTO counters VALUES (?, 0)", driverName == "pgx"), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	base, err := baseConnector(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	fc = &boundConnector{base: base}
	opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	cn, err = NewConnector(fc, mustRules(t, rules), opts...)
	if err != nil {
		t.Fatal(err)
	}
	wb = sql.OpenDB(cn)
	t.Cleanup(func() { wb.Close() })
	// Open a few pool connections while the database is up: an outage then
	// meets the flusher, not the pool (buffered writes need no database).
	wb.SetMaxIdleConns(8)
	var held []*sql.Conn
	for i := 0; i < 4; i++ {
		c, err := wb.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		c.Close()
	}
	return wb, direct, fc, cn
}

// testOnFull fills a table's buffer (max_dirty 4: a bound of 8 rows) while
// the database is down and checks what each on_full policy does with the
// next new row; coalescing into a buffered row is accepted all along. When
// the database is back, every acknowledged write is in it.
func testOnFull(t *testing.T, driverName, dsn string, policy string) {
	rules := `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 50ms
    max_dirty: 4
    on_full: ` + policy + "\n"
	wb, direct, fc, cn := boundSetup(t, driverName, dsn, rules, 20)
	inc := placeholders("UPDATE counters SET v = v + 1 WHERE id = ?", driverName == "pgx")
	want := make([]int64, 20)
	exec := func(ctx context.Context, id int) error {
		_, err := wb.ExecContext(ctx, inc, id)
		if err == nil {
			want[id]++
		}
		return err
	}
	// Open the pool's connection while the database is up: the outage then
	// meets only the flusher.
	if err := wb.Ping(); err != nil {
		t.Fatal(err)
	}
	fc.down.Store(true)
	for id := 0; id < 8; id++ {
		if err := exec(context.Background(), id); err != nil {
			t.Fatalf("write %d of 8 during the outage: %v", id, err)
		}
	}
	if st := cn.Stats(); st.Dirty != 8 || st.BufferBytes <= 0 {
		t.Fatalf("want 8 dirty rows and their bytes counted, got %d rows, %d bytes", st.Dirty, st.BufferBytes)
	}
	// Coalescing into a buffered row is always accepted.
	if err := exec(context.Background(), 0); err != nil {
		t.Fatalf("coalescing into a buffered row while full: %v", err)
	}
	var wg sync.WaitGroup
	switch policy {
	case "error":
		if err := exec(context.Background(), 8); !errors.Is(err, ErrBufferFull) {
			t.Fatalf("new row beyond the bound: want ErrBufferFull, got %v", err)
		}
	case "through":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exec(ctx, 8)
		cancel()
		if err == nil || errors.Is(err, ErrBufferFull) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("new row beyond the bound, database down: want the database's error, got %v", err)
		}
	case "block":
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := exec(ctx, 8)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("new row beyond the bound: want the context's deadline, got %v", err)
		}
		// Two writers wait for room; they must proceed once the database is back.
		for _, id := range []int{9, 10} {
			wg.Add(1)
			go func(id int) {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := wb.ExecContext(ctx, inc, id); err != nil {
					t.Errorf("blocked writer %d: %v", id, err)
				}
			}(id)
			want[id]++
		}
	}
	if st := cn.Stats(); st.Full == 0 {
		t.Fatalf("Stats.Full = 0 after a write met a full buffer")
	}
	if err := exec(context.Background(), 1); err != nil {
		t.Fatalf("coalescing into a buffered row while full: %v", err)
	}
	// The outage outlasts max_loss: the violated bound is reported, by the
	// flusher's next attempt (polled, with a generous limit).
	for limit := time.Now().Add(20 * time.Second); ; {
		st := cn.Stats()
		if st.MaxLossViolations > 0 && !st.OverdueSince.IsZero() && !st.Tables["counters"].OverdueSince.IsZero() {
			break
		}
		if time.Now().After(limit) {
			t.Fatalf("max_loss violation during the outage not reported: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fc.down.Store(false)
	wg.Wait()
	if policy == "through" {
		// Up again: the write goes through (or, room made, is buffered).
		if err := exec(context.Background(), 8); err != nil {
			t.Fatalf("write after the outage: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := make([]int64, 20)
	rows, err := direct.Query("SELECT id, v FROM counters")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		got[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if got[id] != want[id] {
			t.Errorf("row %d: database has %d, acknowledged writes %d", id, got[id], want[id])
		}
	}
	if st := cn.Stats(); st.BufferBytes != 0 || st.Dirty != 0 || !st.OverdueSince.IsZero() {
		t.Errorf("after the flush: %d bytes, %d rows still counted, overdue since %v", st.BufferBytes, st.Dirty, st.OverdueSince)
	}
}

func TestOnFullSQLite(t *testing.T) {
	for _, p := range []string{"block", "through", "error"} {
		t.Run(p, func(t *testing.T) { testOnFull(t, "sqlite3", sqliteDSN(t, "onfull"), p) })
	}
}

func TestOnFullPostgres(t *testing.T) {
	for _, p := range []string{"block", "through", "error"} {
		t.Run(p, func(t *testing.T) { testOnFull(t, "pgx", pgSchema(t, "onfull"), p) })
	}
}

// TestMaxBufferBytes: the connector-wide byte bound holds whatever max_dirty
// says, and the option is validated.
func TestMaxBufferBytes(t *testing.T) {
	if _, err := NewConnector(&boundConnector{}, mustRules(t, "tables: {}\n"), WithMaxBufferBytes(0)); err == nil {
		t.Fatal("WithMaxBufferBytes(0) accepted")
	}
	rules := `
tables:
  counters:
    mode: back
    key: [id]
    on_full: error
`
	const limit = 4096
	wb, _, fc, cn := boundSetup(t, "sqlite3", sqliteDSN(t, "bytes"), rules, 100, WithMaxBufferBytes(limit))
	if err := wb.Ping(); err != nil {
		t.Fatal(err)
	}
	fc.down.Store(true)
	inc := "UPDATE counters SET v = v + 1 WHERE id = ?"
	n := 0
	for ; n < 100; n++ {
		if _, err := wb.Exec(inc, n); err != nil {
			if !errors.Is(err, ErrBufferFull) {
				t.Fatal(err)
			}
			break
		}
	}
	st := cn.Stats()
	if n == 0 || n == 100 || st.BufferBytes > limit {
		t.Fatalf("%d rows accepted, %d bytes counted, bound %d", n, st.BufferBytes, limit)
	}
	if _, err := wb.Exec(inc, 0); err != nil {
		t.Fatalf("coalescing while full: %v", err)
	}
	fc.down.Store(false)
	if err := cn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := wb.Exec(inc, n); err != nil {
		t.Fatalf("after the flush there is room again: %v", err)
	}
}

// testBackpressure: the database takes a while per statement, writers make
// new rows flat out, and the oldest row not yet committed must stay within
// max_loss plus slack because writers are made to wait for flushes.
func testBackpressure(t *testing.T, driverName, dsn string, slow func(fc *boundConnector, on bool)) {
	const maxLoss = 300 * time.Millisecond
	const slack = 300 * time.Millisecond // scheduling on a shared machine under -race
	rules := `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 300ms
`
	const keys = 200000
	wb, direct, fc, cn := boundSetup(t, driverName, dsn, rules, 0)
	ins := placeholders("INSERT INTO counters (id, v) VALUES (?, ?)", driverName == "pgx")
	slow(fc, true)
	// Warm up: one flush teaches the buffer what a row costs to flush
	// (a flush of fewer than 64 rows teaches nothing).
	var next atomic.Int64
	for i := 0; i < 100; i++ {
		if _, err := wb.Exec(ins, next.Add(1), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := cn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := next.Add(1)
				if id >= keys {
					return
				}
				if _, err := wb.Exec(ins, id, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var worst time.Duration
	tick := time.NewTicker(10 * time.Millisecond)
	end := time.After(2 * time.Second)
watch:
	for {
		select {
		case <-tick.C:
			worst = max(worst, cn.Stats().OldestAge)
		case <-end:
			break watch
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	st := cn.Stats()
	t.Logf("writes %d, worst oldest age %s, throttled %d, flushes %d", next.Load(), worst, st.Throttled, st.Flushes)
	if worst > maxLoss+slack {
		t.Errorf("oldest dirty row reached %s, bound %s + %s slack", worst, maxLoss, slack)
	}
	if st.Throttled == 0 {
		t.Errorf("writers were never slowed")
	}
	slow(fc, false)
	if err := cn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := direct.QueryRow("SELECT count(*) FROM counters").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if acked := min(next.Load(), keys-1); n < acked-4 || n > acked {
		// Up to one id per writer was taken but not written when it stopped.
		t.Errorf("database has %d rows, %d acknowledged", n, acked)
	}
}

// slowStatements makes the database take 0.5 ms per statement (a driver wrapper).
func slowStatements(fc *boundConnector, on bool) {
	if on {
		fc.delay.Store(int64(500 * time.Microsecond))
	} else {
		fc.delay.Store(0)
	}
}

func TestBackpressureSQLite(t *testing.T) {
	testBackpressure(t, "sqlite3", sqliteDSN(t, "backpressure"), slowStatements)
}

func TestBackpressurePostgres(t *testing.T) {
	testBackpressure(t, "pgx", pgSchema(t, "backpressure"), slowStatements)
}

// TestBackpressurePostgresSlowNetwork: the fault proxy adds latency to every
// packet between the driver and PostgreSQL, so flushes are slower than the writes.
func TestBackpressurePostgresSlowNetwork(t *testing.T) {
	p, viaProxy, _ := proxiedPostgres(t, "bpnet")
	testBackpressure(t, "pgx", viaProxy, func(_ *boundConnector, on bool) {
		if on {
			p.setMode(proxyDelay, 5*time.Millisecond)
		} else {
			p.setMode(proxyPass, 0)
		}
	})
}
