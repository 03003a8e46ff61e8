package dialect

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// className names an error class in failure messages.
func className(c ErrorClass) string {
	switch c {
	case Permanent:
		return "Permanent"
	case Transient:
		return "Transient"
	case Connection:
		return "Connection"
	}
	return fmt.Sprintf("ErrorClass(%d)", uint8(c))
}

func TestClassOfPgError(t *testing.T) {
	cases := []struct {
		code string
		want ErrorClass
	}{
		{"08006", Connection}, // connection_failure
		{"08000", Connection}, // connection_exception
		{"08P01", Connection}, // protocol_violation
		{"40001", Transient},  // serialization_failure
		{"40P01", Transient},  // deadlock_detected
		{"53300", Transient},  // too_many_connections
		{"53100", Transient},  // disk_full
		{"57P01", Connection}, // admin_shutdown
		{"57P03", Connection}, // cannot_connect_now
		{"57014", Connection}, // query_canceled (statement_timeout, cancel request)
		{"58030", Transient},  // io_error
		{"55P03", Transient},  // lock_not_available
		{"55000", Permanent},  // object_not_in_prerequisite_state
		{"55006", Permanent},  // object_in_use
		{"23505", Permanent},  // unique_violation
		{"23503", Permanent},  // foreign_key_violation
		{"22P02", Permanent},  // invalid_text_representation
		{"22012", Permanent},  // division_by_zero
		{"42P01", Permanent},  // undefined_table
		{"HV000", Permanent},  // fdw_error
		{"XX000", Permanent},  // internal_error
		{"", Permanent},       // too short to have a class
		{"4", Permanent},
	}
	for _, c := range cases {
		pgErr := &pgconn.PgError{Code: c.code, Message: "test"}
		if got := ClassOf(pgErr); got != c.want {
			t.Errorf("ClassOf(PgError %q) = %s, want %s", c.code, className(got), className(c.want))
		}
		if got := pgStateClass(c.code); got != c.want {
			t.Errorf("pgStateClass(%q) = %s, want %s", c.code, className(got), className(c.want))
		}
		// Wrapped, once or twice, the class is the same.
		wrapped := fmt.Errorf("flush: %w", fmt.Errorf("exec: %w", pgErr))
		if got := ClassOf(wrapped); got != c.want {
			t.Errorf("ClassOf(wrapped PgError %q) = %s, want %s", c.code, className(got), className(c.want))
		}
	}
}

// timeoutErr is a net.Error that is not a *net.OpError.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// retryErr says whether pgconn may retry it (pgconn.SafeToRetry's interface).
type retryErr struct{ safe bool }

func (retryErr) Error() string       { return "retry?" }
func (e retryErr) SafeToRetry() bool { return e.safe }

func TestClassOf(t *testing.T) {
	opErr := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	cases := []struct {
		name string
		err  error
		want ErrorClass
	}{
		{"nil", nil, Permanent},
		{"plain", errors.New("something failed"), Permanent},
		{"io.EOF", io.EOF, Permanent},
		{"driver.ErrBadConn", driver.ErrBadConn, Connection},
		{"context.Canceled", context.Canceled, Connection},
		{"context.DeadlineExceeded", context.DeadlineExceeded, Connection},
		{"net.OpError", opErr, Connection},
		{"empty net.OpError", &net.OpError{}, Connection},
		{"net.DNSError", &net.DNSError{Err: "no such host", Name: "db"}, Connection},
		{"custom net.Error", timeoutErr{}, Connection},
		{"wrapped ErrBadConn", fmt.Errorf("begin: %w", driver.ErrBadConn), Connection},
		{"wrapped Canceled", fmt.Errorf("a: %w", fmt.Errorf("b: %w", context.Canceled)), Connection},
		{"wrapped DeadlineExceeded", fmt.Errorf("a: %w", context.DeadlineExceeded), Connection},
		{"wrapped net.OpError", fmt.Errorf("exec: %w", opErr), Connection},
		{"joined", errors.Join(errors.New("x"), driver.ErrBadConn), Connection},
		// %v (not %w) does not wrap: the cause is invisible.
		{"formatted, not wrapped", fmt.Errorf("exec: %v", driver.ErrBadConn), Permanent},
		{"safe to retry", retryErr{safe: true}, Connection},
		{"not safe to retry", retryErr{safe: false}, Permanent},
		{"pgconn.ConnectError", &pgconn.ConnectError{}, Connection},
		// The PgError decides, even next to a connection-level error.
		{"PgError joined with Canceled", errors.Join(&pgconn.PgError{Code: "23505"}, context.Canceled), Permanent},
		{"CommitUnknownError", &CommitUnknownError{Err: driver.ErrBadConn}, Connection},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ClassOf(c.err); got != c.want {
				t.Errorf("ClassOf = %s, want %s", className(got), className(c.want))
			}
		})
	}
}

func TestClassOfSQLite(t *testing.T) {
	cases := []struct {
		code sqlite3.ErrNo
		want ErrorClass
	}{
		{sqlite3.ErrBusy, Transient},
		{sqlite3.ErrLocked, Transient},
		{sqlite3.ErrIoErr, Transient},
		{sqlite3.ErrFull, Transient},
		{sqlite3.ErrCantOpen, Transient},
		{sqlite3.ErrConstraint, Permanent},
		{sqlite3.ErrError, Permanent},
		{sqlite3.ErrReadonly, Permanent},
		{sqlite3.ErrCorrupt, Permanent},
		{sqlite3.ErrMismatch, Permanent},
		{sqlite3.ErrTooBig, Permanent},
	}
	for _, c := range cases {
		e := sqlite3.Error{Code: c.code}
		for name, err := range map[string]error{
			"value":           e,
			"pointer":         &e,
			"wrapped":         fmt.Errorf("exec: %w", e),
			"wrapped pointer": fmt.Errorf("a: %w", fmt.Errorf("b: %w", &e)),
		} {
			if got := ClassOf(err); got != c.want {
				t.Errorf("ClassOf(sqlite3.Error code %d, %s) = %s, want %s", c.code, name, className(got), className(c.want))
			}
		}
		if code, ok := sqliteCode(e); !ok || code != int(c.code) {
			t.Errorf("sqliteCode(code %d) = %d, %v", c.code, code, ok)
		}
	}
	// The extended code does not change the class: SQLITE_BUSY_SNAPSHOT is busy.
	busy := sqlite3.Error{Code: sqlite3.ErrBusy, ExtendedCode: sqlite3.ErrBusySnapshot}
	if got := ClassOf(busy); got != Transient {
		t.Errorf("ClassOf(SQLITE_BUSY_SNAPSHOT) = %s, want Transient", className(got))
	}
	// A nil *sqlite3.Error carries no code.
	if code, ok := sqliteCode((*sqlite3.Error)(nil)); ok {
		t.Errorf("sqliteCode(nil pointer) = %d, true", code)
	}
	if got := ClassOf((*sqlite3.Error)(nil)); got != Permanent {
		t.Errorf("ClassOf(nil *sqlite3.Error) = %s, want Permanent", className(got))
	}
	// Other packages' Error types are not read as SQLite's.
	if _, ok := sqliteCode(&pgconn.PgError{Code: "40001"}); ok {
		t.Error("sqliteCode read a PgError")
	}
	if _, ok := sqliteCode(errors.New("x")); ok {
		t.Error("sqliteCode read a plain error")
	}
}

func TestCommitUnknownError(t *testing.T) {
	inner := fmt.Errorf("commit: %w", io.ErrUnexpectedEOF)
	e := &CommitUnknownError{Err: inner}
	if got, want := e.Error(), "commit: unexpected EOF (outcome unknown)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if e.Unwrap() != inner {
		t.Errorf("Unwrap() = %v, want the inner error", e.Unwrap())
	}
	if !errors.Is(e, io.ErrUnexpectedEOF) {
		t.Error("errors.Is does not reach the cause")
	}
	var target *CommitUnknownError
	if !errors.As(fmt.Errorf("flush: %w", e), &target) || target != e {
		t.Error("errors.As does not find a wrapped CommitUnknownError")
	}
	// Its class is its cause's.
	for _, c := range []struct {
		cause error
		want  ErrorClass
	}{
		{driver.ErrBadConn, Connection},
		{&pgconn.PgError{Code: "40001"}, Transient},
		{sqlite3.Error{Code: sqlite3.ErrBusy}, Transient},
		{errors.New("x"), Permanent},
	} {
		if got := ClassOf(&CommitUnknownError{Err: c.cause}); got != c.want {
			t.Errorf("ClassOf(CommitUnknownError{%v}) = %s, want %s", c.cause, className(got), className(c.want))
		}
	}
}

// TestClassOfRealConnectError: a refused connection from pgconn is
// connection-level.
func TestClassOfRealConnectError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=2 sslmode=disable")
	if err == nil {
		conn.Close(ctx)
		t.Skip("something listens on 127.0.0.1:1")
	}
	if got := ClassOf(err); got != Connection {
		t.Errorf("ClassOf(%v) = %s, want Connection", err, className(got))
	}
}

// TestClassOfRealPostgres classifies errors PostgreSQL really returns
// through pgx's database/sql driver.
func TestClassOfRealPostgres(t *testing.T) {
	db := pgdOpen(t)
	ctx := context.Background()
	tbl := pgdCreate(t, db, "errclass", "id int PRIMARY KEY")
	pgdExec(t, db, "INSERT INTO "+tbl+" VALUES (1)")

	check := func(name string, err error, code string, want ErrorClass) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		var pgErr *pgconn.PgError
		if code != "" && (!errors.As(err, &pgErr) || pgErr.Code != code) {
			t.Fatalf("%s: %v, want SQLSTATE %s", name, err, code)
		}
		if got := ClassOf(err); got != want {
			t.Errorf("%s: ClassOf(%v) = %s, want %s", name, err, className(got), className(want))
		}
	}

	_, err := db.ExecContext(ctx, "INSERT INTO "+tbl+" VALUES (1)")
	check("unique violation", err, "23505", Permanent)
	_, err = db.ExecContext(ctx, "SELECT 'x'::int")
	check("invalid text", err, "22P02", Permanent)
	_, err = db.ExecContext(ctx, "SELECT 1/0")
	check("division by zero", err, "22012", Permanent)

	// lock_not_available: one transaction holds the table, another gives up.
	holder, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, "LOCK TABLE "+tbl+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	waiter, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waiter.ExecContext(ctx, "SET LOCAL lock_timeout = '50ms'"); err != nil {
		t.Fatal(err)
	}
	_, err = waiter.ExecContext(ctx, "LOCK TABLE "+tbl+" IN ACCESS EXCLUSIVE MODE")
	check("lock timeout", err, "55P03", Transient)
	waiter.Rollback()
	holder.Rollback()

	// A statement cut short by its context: connection-level (whether pgx
	// reports the context's error or the server's 57014).
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = db.ExecContext(cctx, "SELECT pg_sleep(5)")
	check("context deadline", err, "", Connection)
}

// TestClassOfRealSQLite classifies errors go-sqlite3 really returns.
func TestClassOfRealSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "errclass.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(ctx, "INSERT INTO t VALUES (1)")
	if code, ok := sqliteCode(err); !ok || code != int(sqlite3.ErrConstraint) {
		t.Fatalf("duplicate key: %v (code %d, %v)", err, code, ok)
	}
	if got := ClassOf(err); got != Permanent {
		t.Errorf("ClassOf(%v) = %s, want Permanent", err, className(got))
	}

	// Two connections, each wanting the write lock: the second is busy.
	c1, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c1.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer c1.ExecContext(ctx, "ROLLBACK")
	_, err = c2.ExecContext(ctx, "BEGIN IMMEDIATE")
	if code, ok := sqliteCode(err); !ok || code != int(sqlite3.ErrBusy) {
		t.Fatalf("second writer: %v (code %d, %v)", err, code, ok)
	}
	if got := ClassOf(err); got != Transient {
		t.Errorf("ClassOf(%v) = %s, want Transient", err, className(got))
	}
}
