// Package drivercall calls a database/sql/driver connection the way
// database/sql itself does: through the optional context-aware interfaces when
// the driver has them, through the legacy ones otherwise. The wrapper
// connection and the flush writers share it, so both fall back alike.
package drivercall

import (
	"context"
	"database/sql/driver"
	"errors"
)

// Prepare prepares query on c, with ctx when the driver takes one.
func Prepare(ctx context.Context, c driver.Conn, query string) (driver.Stmt, error) {
	if p, ok := c.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.Prepare(query)
}

// BeginTx begins a transaction on c. Without driver.ConnBeginTx only the
// default isolation level and read-write transactions can be had.
func BeginTx(ctx context.Context, c driver.Conn, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	if opts.Isolation != 0 {
		return nil, errors.New("writeback: base driver does not support non-default isolation level")
	}
	if opts.ReadOnly {
		return nil, errors.New("writeback: base driver does not support read-only transactions")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 fallback for drivers without BeginTx
	return c.Begin()
}

// StmtExec executes st with named arguments, converting them to values
// for a driver without driver.StmtExecContext.
func StmtExec(ctx context.Context, st driver.Stmt, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := st.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	vals, err := NamedToValues(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 fallback for drivers without StmtExecContext
	return st.Exec(vals)
}

// StmtQuery queries st with named arguments, converting them to values
// for a driver without driver.StmtQueryContext.
func StmtQuery(ctx context.Context, st driver.Stmt, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := st.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	vals, err := NamedToValues(args)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 fallback for drivers without StmtQueryContext
	return st.Query(vals)
}

// NamedToValues converts named arguments to positional values; a named
// argument is an error, as in database/sql.
func NamedToValues(named []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(named))
	for i, nv := range named {
		if nv.Name != "" {
			return nil, errors.New("writeback: base driver does not support named parameters")
		}
		vals[i] = nv.Value
	}
	return vals, nil
}

// ValuesToNamed converts positional values (driver.Value or any) to
// ordinal named arguments.
func ValuesToNamed[V any](vals []V) []driver.NamedValue {
	named := make([]driver.NamedValue, len(vals))
	for i, v := range vals {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return named
}

// AppendNamed appends vals to dst as named values of ordinals len(dst)+1...:
// ValuesToNamed into a buffer the caller reuses.
func AppendNamed(dst []driver.NamedValue, vals []any) []driver.NamedValue {
	n := len(dst)
	for i, v := range vals {
		dst = append(dst, driver.NamedValue{Ordinal: n + i + 1, Value: v})
	}
	return dst
}

// NoClose hides a connector's Close from sql.OpenDB, whose Close would close
// it: for a short-lived *sql.DB that borrows a connector owned elsewhere.
func NoClose(c driver.Connector) driver.Connector { return noClose{c} }

type noClose struct{ driver.Connector }
