package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"slices"
	"testing"
)

// The fakes below are built from embedded parts, as in sqlhooks'
// interface tests: a bare driver.Conn with nothing optional, and one with
// every optional interface, each call recorded. The wrapper must work over
// the bare one through database/sql's fallbacks and forward to the full one.

type bareConn struct{ log *[]string }

func (c bareConn) Prepare(q string) (driver.Stmt, error) {
	*c.log = append(*c.log, "prepare "+q)
	return bareStmt(c), nil
}
func (c bareConn) Close() error              { return nil }
func (c bareConn) Begin() (driver.Tx, error) { *c.log = append(*c.log, "begin"); return bareTx(c), nil }

type bareStmt struct{ log *[]string }

func (s bareStmt) Close() error  { return nil }
func (s bareStmt) NumInput() int { return -1 }
func (s bareStmt) Exec(args []driver.Value) (driver.Result, error) {
	*s.log = append(*s.log, "exec")
	return driver.RowsAffected(1), nil
}
func (s bareStmt) Query(args []driver.Value) (driver.Rows, error) {
	*s.log = append(*s.log, "query")
	return &oneRow{}, nil
}

type bareTx struct{ log *[]string }

func (t bareTx) Commit() error   { *t.log = append(*t.log, "commit"); return nil }
func (t bareTx) Rollback() error { *t.log = append(*t.log, "rollback"); return nil }

type oneRow struct{ done bool }

func (r *oneRow) Columns() []string { return []string{"v"} }
func (r *oneRow) Close() error      { return nil }
func (r *oneRow) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(1)
	return nil
}

// fullConn has every optional interface.
type fullConn struct {
	bareConn
}

func (c fullConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	*c.log = append(*c.log, "execctx "+q)
	return driver.RowsAffected(1), nil
}
func (c fullConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	*c.log = append(*c.log, "queryctx "+q)
	return &oneRow{}, nil
}
func (c fullConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	*c.log = append(*c.log, "preparectx "+q)
	return bareStmt(c.bareConn), nil
}
func (c fullConn) BeginTx(ctx context.Context, o driver.TxOptions) (driver.Tx, error) {
	*c.log = append(*c.log, "begintx")
	return bareTx(c.bareConn), nil
}
func (c fullConn) Ping(ctx context.Context) error { *c.log = append(*c.log, "ping"); return nil }
func (c fullConn) ResetSession(ctx context.Context) error {
	*c.log = append(*c.log, "reset")
	return nil
}
func (c fullConn) IsValid() bool { *c.log = append(*c.log, "valid"); return true }
func (c fullConn) CheckNamedValue(nv *driver.NamedValue) error {
	*c.log = append(*c.log, "check")
	return nil
}

type fakeConnector struct {
	conn   func() driver.Conn
	closed bool
}

func (f *fakeConnector) Connect(context.Context) (driver.Conn, error) { return f.conn(), nil }
func (f *fakeConnector) Driver() driver.Driver                        { return nil }
func (f *fakeConnector) Close() error                                 { f.closed = true; return nil }

func TestWrapperOverBareConnUsesFallbacks(t *testing.T) {
	var log []string
	fc := &fakeConnector{conn: func() driver.Conn { return bareConn{&log} }}
	c, err := NewConnector(fc, mustRules(t, counterRules))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	if _, err := db.Exec("DELETE FROM orders WHERE id = ?", 1); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := db.QueryRow("SELECT 1").Scan(&v); err != nil || v != 1 {
		t.Fatalf("query: %v %d", err, v)
	}
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelSerializable}); err == nil {
		t.Fatal("a non-default isolation level on a driver without drivercall.BeginTx must fail")
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	// A statement that is not a bufferable write opens the transaction on
	// the base (until then it is held: txlazy.go).
	if _, err := tx.Exec("DELETE FROM orders WHERE id = ?", 2); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// database/sql falls back to Prepare+Exec when the conn has no ExecerContext.
	want := []string{"prepare DELETE FROM orders WHERE id = ?", "exec", "prepare SELECT 1", "query",
		"begin", "prepare DELETE FROM orders WHERE id = ?", "exec", "commit"}
	if len(log) != len(want) {
		t.Fatalf("calls %q; want %q", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("calls %q; want %q", log, want)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if !fc.closed {
		t.Fatal("Close did not reach the base connector's io.Closer")
	}
}

func TestWrapperForwardsOptionalInterfaces(t *testing.T) {
	var log []string
	fc := &fakeConnector{conn: func() driver.Conn { return fullConn{bareConn{&log}} }}
	c, err := NewConnector(fc, mustRules(t, counterRules))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "DELETE FROM orders WHERE id = ?", 1); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, "SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := any(rows).(*sql.Rows); !ok {
		t.Fatal("not sql.Rows")
	}
	rows.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	st, err := db.PrepareContext(ctx, "SELECT 2")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.Raw(func(dc any) error {
		base, ok := BaseConn(dc)
		if !ok {
			return errors.New("BaseConn: not a writeback conn")
		}
		if _, ok := base.(fullConn); !ok {
			return errors.New("BaseConn did not return the base connection")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	has := map[string]bool{}
	for _, l := range log {
		has[l] = true
	}
	for _, w := range []string{"execctx DELETE FROM orders WHERE id = ?", "check", "queryctx SELECT 1", "ping", "begintx", "rollback", "preparectx SELECT 2", "reset", "valid"} {
		if !has[w] {
			t.Errorf("call %q did not reach the base; calls: %q", w, log)
		}
	}
}

// resetConn is fullConn whose ResetSession reports the connection bad while
// *bad is set.
type resetConn struct {
	fullConn
	bad *bool
}

func (c resetConn) ResetSession(context.Context) error {
	*c.log = append(*c.log, "reset")
	if *c.bad {
		return driver.ErrBadConn
	}
	return nil
}

// database/sql resets a connection's session each time it hands it out
// again. Buffered writes never use the base connection, so its reset waits
// until a statement needs it; a base that reports itself bad then is
// replaced before that statement runs.
func TestBaseSessionResetWaitsForItsUse(t *testing.T) {
	var log []string
	bad := false
	connects := 0
	fc := &fakeConnector{conn: func() driver.Conn {
		connects++
		return resetConn{fullConn{bareConn{&log}}, &bad}
	}}
	c, err := NewConnector(fc, mustRules(t, counterRules))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	// calls are the base calls since log[from:] that talk to the database
	// (not CheckNamedValue's and IsValid's checks).
	calls := func(from int) []string {
		var out []string
		for _, l := range log[from:] {
			if l != "check" && l != "valid" {
				out = append(out, l)
			}
		}
		return out
	}
	const update = "UPDATE counters SET views = views + ? WHERE id = ?"
	// The first write of the key asks the database whether its row exists
	// (exact RowsAffected); the others coalesce into the buffered row.
	if _, err := db.ExecContext(ctx, update, 1, 7); err != nil {
		t.Fatal(err)
	}
	from := len(log)
	for i := 0; i < 5; i++ {
		if _, err := db.ExecContext(ctx, update, 1, 7); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := StatsOf(db); st.Buffered != 6 {
		t.Fatalf("buffered %d writes; want 6", st.Buffered)
	}
	if got := calls(from); len(got) != 0 {
		t.Fatalf("buffered writes reached the base connection: %q", got)
	}
	var v int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if got, want := calls(from), []string{"reset", "queryctx SELECT 1"}; !slices.Equal(got, want) {
		t.Fatalf("base calls for the query = %q; want %q (one reset, before the statement)", got, want)
	}

	bad = true
	from, before := len(log), connects
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&v); err != nil {
		t.Fatalf("query after the base reported itself bad: %v", err)
	}
	if connects != before+1 {
		t.Fatalf("%d new base connections; want the bad one replaced by 1", connects-before)
	}
	if got, want := calls(from), []string{"reset", "queryctx SELECT 1"}; !slices.Equal(got, want) {
		t.Fatalf("base calls = %q; want %q (the reset that found it bad, then the query on its replacement)", got, want)
	}
}
