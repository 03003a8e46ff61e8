package dialect

// This file writes UPSERT groups. Each row is written in two steps, in the
// flush's transaction: the update part as an UPDATE of the key, then, for
// the keys that UPDATE matched no row of, the one-row upsert
//
//	INSERT INTO tbl (k, a, b) VALUES ($1, $2, $3)
//	  ON CONFLICT (k) DO UPDATE SET a = tbl.a + $4, b = $5
//
// The UPDATE comes first because both databases check the proposed row of
// an upsert (its types, NOT NULL and CHECK constraints) even when the key
// exists: a coalesced row's insert part is the row its writes would have
// made from nothing, which the writes themselves never proposed when the
// key existed, and it must not be checked then. The upsert after an UPDATE
// that matched nothing covers a row inserted by another session in between.

import (
	"context"
	"database/sql/driver"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// upsertParts splits an UPSERT group's row into its inserted values, and
// its update values followed by its key (an UPDATE row's layout).
func upsertParts(g *Group, row []any) (ins, updKey []any) {
	return row[:len(g.Cols)], row[len(g.Cols):]
}

// upsertUpdate is the UPDATE group of g's update parts.
func upsertUpdate(g *Group) *Group {
	u := &Group{Schema: g.Schema, Table: g.Table, Op: Update, Cols: g.UpdCols, Delta: g.UpdDelta, KeyCols: g.KeyCols, Style: g.Style,
		OrderBy: g.OrderBy, Rows: make([][]any, len(g.Rows))}
	for i, r := range g.Rows {
		_, u.Rows[i] = upsertParts(g, r)
	}
	return u
}

// upsertSQL is the one-row upsert of g, whose arguments are a row's
// inserted values then its update values. castDelta, when not nil, names a
// type to cast a delta's placeholder to (PostgreSQL: a coalesced delta on a
// small integer column may exceed the column's range while the sum does not).
// Under the order_by guard (order.go) a placeholder may not take the row's
// next value: argIdx then lists the index in the row of each one's value
// (nil: in order).
func upsertSQL(g *Group, style sqlparse.ParamStyle, castDelta func(col sqlparse.Ident) string) (query string, argIdx []int) {
	var sb strings.Builder
	n := 0
	ph := func(idx int) {
		argIdx = append(argIdx, idx)
		n++
		if style == sqlparse.ParamDollar {
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
		} else {
			sb.WriteByte('?')
		}
	}
	table := g.Table.Raw
	if g.Schema != nil {
		table = g.Schema.Raw + "." + table
	}
	writeInsertInto(&sb, table, g.Cols)
	sb.WriteString(" VALUES (")
	for i := range g.Cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		ph(i)
	}
	sb.WriteString(") ON CONFLICT (")
	for i, k := range g.KeyCols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(k.Raw)
	}
	sb.WriteString(") DO UPDATE SET ")
	o, nIns := g.orderUpdIdx(), len(g.Cols)
	for i, c := range g.UpdCols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c.Raw)
		sb.WriteString(" = ")
		if guarded(o, g.UpdDelta, FnNone, i) {
			writeOrdered(&sb, g.Table.Raw+"."+g.UpdCols[o].Raw, func(*strings.Builder) { ph(nIns + o) },
				g.Table.Raw+"."+c.Raw, func(*strings.Builder) { ph(nIns + i) })
			continue
		}
		if g.UpdDelta[i] {
			// The existing row's column, qualified by the table's name:
			// PostgreSQL calls a bare column ambiguous with EXCLUDED's.
			sb.WriteString(g.Table.Raw)
			sb.WriteByte('.')
			sb.WriteString(c.Raw)
			sb.WriteString(" + ")
		}
		ph(nIns + i)
		if g.UpdDelta[i] && castDelta != nil {
			if typ := castDelta(c); typ != "" {
				sb.WriteString("::")
				sb.WriteString(typ)
			}
		}
	}
	if o < 0 {
		argIdx = nil
	}
	return sb.String(), argIdx
}

// execUpsertGroup writes an UPSERT group with one prepared UPDATE and one
// prepared upsert, row by row.
func execUpsertGroup(ctx context.Context, conn driver.Conn, g *Group, style sqlparse.ParamStyle) error {
	u := upsertUpdate(g)
	updSQL, updIdx := genericSQLArgs(u, style, false) // an update part has no column functions
	upd, err := drivercall.Prepare(ctx, conn, updSQL)
	if err != nil {
		return err
	}
	defer upd.Close()
	var ups driver.Stmt
	defer func() {
		if ups != nil {
			ups.Close()
		}
	}()
	var upsIdx []int
	args := make([]driver.NamedValue, 0, len(g.Cols)+len(g.UpdCols)+len(g.KeyCols))
	for i, row := range g.Rows {
		if i%1024 == 0 {
			if err := ctxErr(ctx); err != nil {
				return err
			}
		}
		args = bindRow(args, u.Rows[i], updIdx)
		res, err := drivercall.StmtExec(ctx, upd, args)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 0 {
			if err != nil {
				return err
			}
			continue
		}
		if ups == nil {
			var upsSQL string
			upsSQL, upsIdx = upsertSQL(g, style, nil)
			if ups, err = drivercall.Prepare(ctx, conn, upsSQL); err != nil {
				return err
			}
		}
		args = bindRow(args, row[:len(g.Cols)+len(g.UpdCols)], upsIdx)
		if _, err := drivercall.StmtExec(ctx, ups, args); err != nil {
			return err
		}
	}
	return nil
}

// upsert writes an UPSERT group: its update parts as the dialect's batched
// UPDATE, then the rows whose key that matched nothing as one pipelined
// batch of one-row upserts per batch rows.
func (w *pgTx) upsert(ctx context.Context, g *Group, t *pgTable) error {
	missed, err := w.group(ctx, upsertUpdate(g))
	if err != nil || len(missed) == 0 {
		return err
	}
	query, argIdx := upsertSQL(g, sqlparse.ParamDollar, func(col sqlparse.Ident) string {
		if c := t.cols[col.Norm]; c != nil && (c.base == pgOIDInt2 || c.base == pgOIDInt4) {
			return "pg_catalog.int8"
		}
		return ""
	})
	n := len(g.Cols) + len(g.UpdCols)
	for off := 0; off < len(missed); off += w.batch {
		end := min(off+w.batch, len(missed))
		b := &pgx.Batch{}
		for _, i := range missed[off:end] {
			args := g.Rows[i][:n]
			if argIdx != nil {
				args = make([]any, len(argIdx))
				for j, idx := range argIdx {
					args[j] = g.Rows[i][idx]
				}
			}
			b.Queue(query, args...)
		}
		br := w.tx.SendBatch(ctx, b)
		for range missed[off:end] {
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				return err
			}
		}
		if err := br.Close(); err != nil {
			return err
		}
	}
	return nil
}
