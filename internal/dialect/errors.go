package dialect

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"
	"reflect"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrorClass says how the flusher treats a database error.
type ErrorClass uint8

const (
	Permanent  ErrorClass = iota // data or constraint: retrying cannot help; isolate the row
	Transient                    // lock, serialization, resource: retry the same rows
	Connection                   // the connection is gone: reconnect and retry
)

// ClassOf classifies an error from a flush. Errors that carry a SQLSTATE
// (PostgreSQL's, through pgx or lib/pq) go by its class, SQLite errors by
// result code (read by reflection so that PostgreSQL-only programs need not
// link cgo SQLite), MySQL errors by number (also read by reflection); network and context errors are connection-level.
func ClassOf(err error) ErrorClass {
	if err == nil {
		return Permanent
	}
	if code, ok := SQLState(err); ok {
		return pgStateClass(code)
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Connection
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return Connection
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return Connection
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return Connection
	}
	if n, ok := MySQLErrorNumber(err); ok {
		return mysqlClass(n)
	}
	if isMySQLInvalidConn(err) {
		return Connection
	}
	if code, ok := sqliteCode(err); ok {
		switch code {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return Transient
		case 10, 13, 14: // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
			return Transient
		}
		return Permanent
	}
	return Permanent
}

// sqlStater is what a driver's database error offers to say its SQLSTATE:
// pgx's *pgconn.PgError and lib/pq's *pq.Error have it.
type sqlStater interface{ SQLState() string }

// SQLState returns the SQLSTATE of the database error in err's chain, and
// whether there is one: an error with a SQLSTATE is the server's answer, one
// without is the driver's or the network's.
func SQLState(err error) (string, bool) {
	var s sqlStater
	if errors.As(err, &s) {
		return s.SQLState(), true
	}
	return "", false
}

// pgStateClass maps a SQLSTATE to an error class.
func pgStateClass(code string) ErrorClass {
	if len(code) < 2 {
		return Permanent
	}
	switch code[:2] {
	case "08": // connection exception
		return Connection
	case "40": // transaction rollback: serialization failure, deadlock
		return Transient
	case "53": // insufficient resources
		return Transient
	case "57": // operator intervention: admin shutdown, cannot connect now
		return Connection
	case "58": // system error (I/O)
		return Transient
	case "55": // object not in prerequisite state: only lock_not_available
		if code == "55P03" {
			return Transient
		}
	case "HV", "XX":
		return Permanent
	}
	return Permanent
}

// sqliteCode extracts go-sqlite3's sqlite3.Error.Code without importing it.
func sqliteCode(err error) (int, bool) {
	if f, ok := driverErrorField(err, "github.com/mattn/go-sqlite3", "Error", "Code"); ok && f.CanInt() {
		return int(f.Int()), true
	}
	return 0, false
}

// driverErrorField finds in err's chain the error of struct type pkg.typ
// (by reflection, so that the driver need not be linked) and returns its
// field; ok is false when there is none.
func driverErrorField(err error, pkg, typ, field string) (f reflect.Value, ok bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct || v.Type().PkgPath() != pkg || v.Type().Name() != typ {
			continue
		}
		f := v.FieldByName(field)
		return f, f.IsValid()
	}
	return reflect.Value{}, false
}

// ErrCommitAmbiguous is a CommitUnknownError's Resolve answer when the
// database cannot tell whether the transaction committed (a crash may have
// given its id to another): asking again will not help. Only a fact the
// transaction wrote itself (the journal's checkpoint) can decide.
var ErrCommitAmbiguous = errors.New("writeback: the outcome of a flush transaction cannot be told")

// CommitUnknownError is a COMMIT that got no answer: the connection broke after
// the server may have committed. Retrying the rows blindly could apply a
// counter's delta twice, so the flusher first asks the database what became
// of the transaction (resolve, on a new connection).
type CommitUnknownError struct {
	Err     error
	Resolve func(ctx context.Context, conn driver.Conn) (committed, known bool, err error)
}

func (e *CommitUnknownError) Error() string { return e.Err.Error() + " (outcome unknown)" }
func (e *CommitUnknownError) Unwrap() error { return e.Err }

// MySQLErrorNumber returns the number of go-sql-driver/mysql's *MySQLError
// in err's chain (read by reflection, so that programs on other databases
// need not link the driver), and whether there is one: an error with a
// number is the server's answer.
func MySQLErrorNumber(err error) (int, bool) {
	if f, ok := driverErrorField(err, "github.com/go-sql-driver/mysql", "MySQLError", "Number"); ok && f.CanUint() {
		return int(f.Uint()), true
	}
	return 0, false
}

// isMySQLInvalidConn reports whether err is go-sql-driver/mysql's
// ErrInvalidConn ("invalid connection"): the connection broke mid-statement.
func isMySQLInvalidConn(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			continue
		}
		if t := v.Type().Elem(); t.PkgPath() == "errors" && t.Name() == "errorString" && e.Error() == "invalid connection" {
			return true
		}
	}
	return false
}

// mysqlClass maps a MySQL or MariaDB error number to an error class.
func mysqlClass(n int) ErrorClass {
	switch n {
	case 1213, // ER_LOCK_DEADLOCK
		1205,             // ER_LOCK_WAIT_TIMEOUT
		1040,             // ER_CON_COUNT_ERROR: too many connections
		1203,             // ER_TOO_MANY_USER_CONNECTIONS
		1226,             // ER_USER_LIMIT_REACHED
		1021,             // ER_DISK_FULL
		1114,             // ER_RECORD_FILE_FULL: the table is full
		1037, 1038, 1041, // out of memory
		1290, // ER_OPTION_PREVENTS_STATEMENT: --read-only (a failover under way)
		1836, // ER_READ_ONLY_MODE
		1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
		1969, // MariaDB ER_STATEMENT_TIMEOUT: max_statement_time
		3024, // MySQL ER_QUERY_TIMEOUT: max_execution_time
		1317: // ER_QUERY_INTERRUPTED
		return Transient
	case 2006, // CR_SERVER_GONE_ERROR
		2013, // CR_SERVER_LOST
		1053, // ER_SERVER_SHUTDOWN
		1927, // MariaDB ER_CONNECTION_KILLED
		1152, // ER_ABORTING_CONNECTION
		1184: // ER_NEW_ABORTING_CONNECTION
		return Connection
	}
	// 1062 duplicate key, 1406 data too long, 1264 out of range, 1048
	// NULL into NOT NULL, 3819 and 4025 CHECK, 1452 foreign key, and the
	// rest: the data or the statement.
	return Permanent
}
