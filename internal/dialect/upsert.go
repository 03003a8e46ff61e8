package dialect

// This file writes UPSERT groups: one single-row statement per row,
//
//	INSERT INTO tbl AS t (k, a, b) VALUES ($1, $2, $3)
//	  ON CONFLICT (k) DO UPDATE SET a = t.a + $4, b = $5
//
// which is the statement the application's upserts coalesce into, and the
// only form that carries an update part different from the inserted row
// (DO UPDATE sees the proposed row only as EXCLUDED). PostgreSQL through pgx
// sends a group's rows as one pipelined batch; other drivers run a prepared
// statement per row, like the generic writer's other groups.

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// upsertSQL is the one-row upsert of g. castDelta, when not nil, names a
// type to cast a delta's placeholder to (PostgreSQL: a coalesced delta on a
// small integer column may exceed the column's range while the sum does not).
func upsertSQL(g *Group, style sqlparse.ParamStyle, castDelta func(col sqlparse.Ident) string) string {
	var sb strings.Builder
	n := 0
	ph := func() {
		n++
		if style == sqlparse.ParamDollar {
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
		} else {
			sb.WriteByte('?')
		}
	}
	sb.WriteString("INSERT INTO ")
	if g.Schema != nil {
		sb.WriteString(g.Schema.Raw)
		sb.WriteByte('.')
	}
	sb.WriteString(g.Table.Raw)
	sb.WriteString(" (")
	for i, c := range g.Cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c.Raw)
	}
	sb.WriteString(") VALUES (")
	for i := range g.Cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		ph()
	}
	sb.WriteString(") ON CONFLICT (")
	for i, k := range g.KeyCols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(k.Raw)
	}
	sb.WriteString(") DO UPDATE SET ")
	for i, c := range g.UpdCols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c.Raw)
		sb.WriteString(" = ")
		if g.UpdDelta[i] {
			// The existing row's column, qualified by the table's name:
			// PostgreSQL calls a bare column ambiguous with EXCLUDED's.
			sb.WriteString(g.Table.Raw)
			sb.WriteByte('.')
			sb.WriteString(c.Raw)
			sb.WriteString(" + ")
		}
		ph()
		if g.UpdDelta[i] && castDelta != nil {
			if typ := castDelta(c); typ != "" {
				sb.WriteString("::")
				sb.WriteString(typ)
			}
		}
	}
	return sb.String()
}

// upsert writes an UPSERT group as one pipelined batch per batch rows.
func (w *pgTx) upsert(ctx context.Context, g *Group, t *pgTable) error {
	query := upsertSQL(g, sqlparse.ParamDollar, func(col sqlparse.Ident) string {
		if c := t.cols[col.Norm]; c != nil && (c.base == pgOIDInt2 || c.base == pgOIDInt4) {
			return "pg_catalog.int8"
		}
		return ""
	})
	for off := 0; off < len(g.Rows); off += w.batch {
		end := min(off+w.batch, len(g.Rows))
		b := &pgx.Batch{}
		for _, r := range g.Rows[off:end] {
			b.Queue(query, r...)
		}
		br := w.tx.SendBatch(ctx, b)
		for range g.Rows[off:end] {
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
