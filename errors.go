package writeback

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"
	"reflect"

	"github.com/jackc/pgx/v5/pgconn"
)

// errorClass says how the flusher treats a database error.
type errorClass uint8

const (
	classPermanent  errorClass = iota // data or constraint: retrying cannot help; isolate the row
	classTransient                    // lock, serialization, resource: retry the same rows
	classConnection                   // the connection is gone: reconnect and retry
)

// errorClassOf classifies an error from a flush. PostgreSQL errors go by
// SQLSTATE class, SQLite errors by result code (read by reflection so that
// PostgreSQL-only programs need not link cgo SQLite); network and context
// errors are connection-level.
func errorClassOf(err error) errorClass {
	if err == nil {
		return classPermanent
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgStateClass(pgErr.Code)
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return classConnection
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return classConnection
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return classConnection
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return classConnection
	}
	if code, ok := sqliteCode(err); ok {
		switch code {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return classTransient
		case 10, 13, 14: // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
			return classTransient
		}
		return classPermanent
	}
	return classPermanent
}

// pgStateClass maps a SQLSTATE to an error class.
func pgStateClass(code string) errorClass {
	if len(code) < 2 {
		return classPermanent
	}
	switch code[:2] {
	case "08": // connection exception
		return classConnection
	case "40": // transaction rollback: serialization failure, deadlock
		return classTransient
	case "53": // insufficient resources
		return classTransient
	case "57": // operator intervention: admin shutdown, cannot connect now
		return classConnection
	case "58": // system error (I/O)
		return classTransient
	case "55": // object not in prerequisite state: only lock_not_available
		if code == "55P03" {
			return classTransient
		}
	case "HV", "XX":
		return classPermanent
	}
	return classPermanent
}

// sqliteCode extracts go-sqlite3's sqlite3.Error.Code without importing it.
func sqliteCode(err error) (int, bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return 0, false
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct || v.Type().PkgPath() != "github.com/mattn/go-sqlite3" || v.Type().Name() != "Error" {
			continue
		}
		if f := v.FieldByName("Code"); f.IsValid() && f.CanInt() {
			return int(f.Int()), true
		}
	}
	return 0, false
}

// isTransient reports whether retrying the same rows may succeed.
func isTransient(err error) bool {
	var cp *checkpointError
	var cf *connectFailure
	if errors.As(err, &cp) || errors.As(err, &cf) {
		return true
	}
	return errorClassOf(err) != classPermanent
}
