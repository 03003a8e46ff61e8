package dialect

// This file writes the multi-instance ordering guard of a table with an
// order_by column O. Instances flush their writes of one row in any order;
// a flushed assignment must not overwrite a newer one another instance
// flushed first. So each assignment of a row that assigns O is written as
//
//	c = CASE WHEN t.O IS NULL OR t.O <= v.O THEN v.c ELSE t.c END
//
// O's own assignment included, while deltas (c = t.c + v) and GREATEST,
// LEAST and COALESCE deltas, which commute, are written as without the
// guard. The guard is in the SET list rather than the WHERE so that the
// statement still matches every row whose key exists: an UPDATE that
// matches no row keeps meaning "no such key" (Stats.NoMatch), and the
// batched statement stays one statement. Its value does not change when
// it is evaluated after O's own assignment (MySQL evaluates a SET list in
// order): where it held, O becomes v.O and v.O <= v.O; where it did not,
// O keeps its value.

import (
	"strings"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// orderCol is the index in cols of the order_by column when it is a plain
// assignment (not a delta, not a function), or -1: only then are the
// row's assignments guarded.
func orderCol(orderBy string, cols []sqlparse.Ident, delta []bool, fn func(i int) ColFn) int {
	if orderBy == "" {
		return -1
	}
	for i, c := range cols {
		if c.Norm == orderBy {
			if i < len(delta) && delta[i] || fn(i) != FnNone {
				return -1
			}
			return i
		}
	}
	return -1
}

// orderIdx is orderCol for an UPDATE group's SET columns.
func (g *Group) orderIdx() int {
	return orderCol(g.OrderBy, g.Cols, g.Delta, g.fnAt)
}

// orderUpdIdx is orderCol for an UPSERT group's DO UPDATE SET columns.
func (g *Group) orderUpdIdx() int {
	return orderCol(g.OrderBy, g.UpdCols, g.UpdDelta, func(int) ColFn { return FnNone })
}

// guarded reports whether column i is written under the guard: the
// group's order column is at o (>= 0) and column i is an assignment.
func guarded(o int, delta []bool, fn ColFn, i int) bool {
	return o >= 0 && !(i < len(delta) && delta[i]) && fn == FnNone
}

// writeOrdered writes CASE WHEN curO IS NULL OR curO <= <newO> THEN
// <value> ELSE cur END: the guarded assignment of column cur, whose new
// value value writes, under the row's order value newO writes.
func writeOrdered(sb *strings.Builder, curO string, newO func(*strings.Builder), cur string, value func(*strings.Builder)) {
	sb.WriteString("CASE WHEN ")
	sb.WriteString(curO)
	sb.WriteString(" IS NULL OR ")
	sb.WriteString(curO)
	sb.WriteString(" <= ")
	newO(sb)
	sb.WriteString(" THEN ")
	value(sb)
	sb.WriteString(" ELSE ")
	sb.WriteString(cur)
	sb.WriteString(" END")
}
