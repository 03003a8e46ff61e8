package dialect

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// genericWriter writes a flush with what every database/sql driver has: a
// transaction and one prepared statement per group shape, executed once per
// row, so RowsAffected tells each UPDATE that matched no row. SQLite takes this
// path too: in one transaction a prepared statement is its fastest way.
type genericWriter struct {
	dialectName string
	// question forces ? placeholders whatever the application used (SQLite).
	question bool
}

func (d *genericWriter) Name() string { return d.dialectName }

func (d *genericWriter) WriteTx(ctx context.Context, conn driver.Conn, groups []*Group, batch int, inTx func(exec Exec) error) (noMatch [][]int, err error) {
	if d.question {
		// SQLite is local: go-sqlite3 starts a goroutine per statement to watch a
		// cancellable context, which costs more than the row. Check the context
		// between rows instead (execGroup does).
		ctx = uncancellable{ctx}
	}
	tx, err := drivercall.BeginTx(ctx, conn, driver.TxOptions{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	noMatch = make([][]int, len(groups))
	for gi, g := range groups {
		style := g.Style
		if d.question {
			style = sqlparse.ParamQuestion
		}
		if g.Op == Upsert {
			if err = execUpsertGroup(ctx, conn, g, style); err != nil {
				return nil, err
			}
			continue
		}
		query, argIdx := genericSQLArgs(g, style, d.question)
		if noMatch[gi], err = execGroup(ctx, conn, query, argIdx, g); err != nil {
			return nil, err
		}
	}
	if inTx != nil {
		if err = inTx(func(query string, args ...any) error { return connExec(ctx, conn, query, args) }); err != nil {
			return nil, err
		}
	}
	if err = tx.Commit(); err != nil {
		return nil, err
	}
	return noMatch, nil
}

// connExec runs one statement with positional arguments on conn, directly
// when the driver can, through a prepared statement otherwise.
func connExec(ctx context.Context, conn driver.Conn, query string, args []any) error {
	named := drivercall.ValuesToNamed(args)
	if e, ok := conn.(driver.ExecerContext); ok {
		_, err := e.ExecContext(ctx, query, named)
		if err != driver.ErrSkip {
			return err
		}
	}
	st, err := drivercall.Prepare(ctx, conn, query)
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = drivercall.StmtExec(ctx, st, named)
	return err
}

// execGroup prepares query once and runs it for every row of g. argIdx,
// when not nil, lists the row's value each placeholder takes (see
// genericSQLArgs); nil binds the row's values in order.
func execGroup(ctx context.Context, conn driver.Conn, query string, argIdx []int, g *Group) ([]int, error) {
	st, err := drivercall.Prepare(ctx, conn, query)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var missed []int
	args := make([]driver.NamedValue, 0, len(g.Cols)+len(g.KeyCols))
	for i, row := range g.Rows {
		args = bindRow(args, row, argIdx)
		if i%1024 == 0 {
			if err := ctxErr(ctx); err != nil {
				return nil, err
			}
		}
		res, err := drivercall.StmtExec(ctx, st, args)
		if err != nil {
			return nil, err
		}
		if g.Op == Update {
			n, err := res.RowsAffected()
			if err != nil {
				return nil, err
			}
			if n == 0 {
				missed = append(missed, i)
			}
		}
	}
	return missed, nil
}

// bindRow fills args (reused) with row's values: in order, or the ones
// argIdx lists.
func bindRow(args []driver.NamedValue, row []any, argIdx []int) []driver.NamedValue {
	args = args[:0]
	if argIdx == nil {
		for j, v := range row {
			args = append(args, driver.NamedValue{Ordinal: j + 1, Value: v})
		}
		return args
	}
	for j, idx := range argIdx {
		args = append(args, driver.NamedValue{Ordinal: j + 1, Value: row[idx]})
	}
	return args
}

// genericSQL is the one-row statement for a group, in the placeholder style
// the application used: UPDATE t SET a = ?, b = b + ? WHERE k = ?, or
// INSERT INTO t (a, b) VALUES (?, ?). sqlite names SQLite's functions.
func genericSQL(g *Group, style sqlparse.ParamStyle, sqlite bool) string {
	query, _ := genericSQLArgs(g, style, sqlite)
	return query
}

// genericSQLArgs is genericSQL and, when a placeholder does not take the
// row's next value (the order_by guard reads the row's order value once
// per assignment: order.go), the index in the row of each placeholder's
// value; nil when they take the row's values in order.
func genericSQLArgs(g *Group, style sqlparse.ParamStyle, sqlite bool) (string, []int) {
	var sb strings.Builder
	n := 0
	var argIdx []int
	ph := func(idx int) string {
		n++
		argIdx = append(argIdx, idx)
		if style == sqlparse.ParamDollar {
			return "$" + strconv.Itoa(n)
		}
		return "?"
	}
	table := g.Table.Raw
	if g.Schema != nil {
		table = g.Schema.Raw + "." + table
	}
	if g.Op == Insert {
		writeInsertInto(&sb, table, g.Cols)
		sb.WriteString(" VALUES (")
		for i := range g.Cols {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(ph(i))
		}
		sb.WriteString(")")
		return sb.String(), nil
	}
	fmt.Fprintf(&sb, "UPDATE %s SET ", table)
	o := g.orderIdx()
	for i, c := range g.Cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c.Raw)
		sb.WriteString(" = ")
		if guarded(o, g.Delta, g.fnAt(i), i) {
			writeOrdered(&sb, g.Cols[o].Raw, func(sb *strings.Builder) { sb.WriteString(ph(o)) }, c.Raw, func(sb *strings.Builder) { sb.WriteString(ph(i)) })
			continue
		}
		writeSet(&sb, c.Raw, g.Delta[i], g.fnAt(i), sqlite, func(sb *strings.Builder) { sb.WriteString(ph(i)) })
	}
	sb.WriteString(" WHERE ")
	for i, k := range g.KeyCols {
		if i > 0 {
			sb.WriteString(" AND ")
		}
		fmt.Fprintf(&sb, "%s = %s", k.Raw, ph(len(g.Cols)+i))
	}
	if o < 0 {
		argIdx = nil // in order
	}
	return sb.String(), argIdx
}

// uncancellable hides a context's Done channel from the driver (so it starts
// no watcher per statement) while ctxErr still sees its cancellation.
type uncancellable struct{ parent context.Context }

func (u uncancellable) Deadline() (time.Time, bool) { return time.Time{}, false }
func (u uncancellable) Done() <-chan struct{}       { return nil }
func (u uncancellable) Err() error                  { return nil }
func (u uncancellable) Value(key any) any           { return u.parent.Value(key) }

// ctxErr is the context's error, looking through uncancellable.
func ctxErr(ctx context.Context) error {
	if u, ok := ctx.(uncancellable); ok {
		return u.parent.Err()
	}
	return ctx.Err()
}
