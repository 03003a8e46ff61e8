package dialect

// This file writes the text of the PostgreSQL flush statements.

import (
	"strconv"
	"strings"
)

// pgElem is column i's value after unnest, as SQL: v.<alias>, cast when the
// column travels as text.
func pgElem(sb *strings.Builder, alias string, i int, c pgColSQL) {
	sb.WriteString("v.")
	sb.WriteString(alias)
	sb.WriteString(strconv.Itoa(i))
	if c.cast != "" {
		sb.WriteString("::")
		sb.WriteString(c.cast)
	}
}

// pgUnnest writes `unnest($p::typ[], ...)` for cols, numbering parameters
// from first.
func pgUnnest(sb *strings.Builder, first int, cols ...[]pgColSQL) {
	sb.WriteString("unnest(")
	p := first
	for _, cs := range cols {
		for _, c := range cs {
			if p > first {
				sb.WriteString(", ")
			}
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(p))
			sb.WriteString("::")
			sb.WriteString(c.typ)
			sb.WriteString("[]")
			p++
		}
	}
	sb.WriteByte(')')
}

// pgAliases writes `prefix0, prefix1, ...` for n columns.
func pgAliases(sb *strings.Builder, prefix string, n int) {
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(prefix)
		sb.WriteString(strconv.Itoa(i))
	}
}

// pgUpdateSQL is the UPDATE a group's batches run: set and key describe the
// parameter arrays of g.cols and g.keyCols, in that order ($1...). The
// unnested columns are named c0.. and k0.., so no application name can clash
// with them, and every table column is qualified by the alias t.
func pgUpdateSQL(g *Group, set, key []pgColSQL) string {
	var sb strings.Builder
	pgUpdateSet(&sb, g, func(sb *strings.Builder, i int) { pgElem(sb, "c", i, set[i]) })
	sb.WriteString(" FROM ")
	pgUnnest(&sb, 1, set, key)
	pgUpdateMatch(&sb, g, key)
	return sb.String()
}

// pgUpdateSet writes `UPDATE table AS t SET c = <value>, ...` for g's
// columns: an assignment, a delta, COALESCE(c, 0) + v, GREATEST or LEAST of
// the row's value, which param writes for column i; assignments under the
// order_by guard where g has one. Both PostgreSQL writers' UPDATEs begin so.
func pgUpdateSet(sb *strings.Builder, g *Group, param func(sb *strings.Builder, i int)) {
	sb.WriteString("UPDATE ")
	sb.WriteString(pgTableName(g))
	sb.WriteString(" AS t SET ")
	o := g.orderIdx()
	for i, c := range g.Cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c.Raw)
		sb.WriteString(" = ")
		if guarded(o, g.Delta, g.fnAt(i), i) {
			// Under the order_by guard (order.go).
			writeOrdered(sb, "t."+g.Cols[o].Raw, func(sb *strings.Builder) { param(sb, o) }, "t."+c.Raw, func(sb *strings.Builder) { param(sb, i) })
			continue
		}
		delta := i < len(g.Delta) && g.Delta[i]
		writeSet(sb, "t."+c.Raw, delta, g.fnAt(i), false, func(sb *strings.Builder) { param(sb, i) })
	}
}

// pgUpdateMatch writes the end of an UPDATE's FROM source: its columns
// named c0.. and k0.. and the key match `WHERE t.k1 = v.k0 ...`.
func pgUpdateMatch(sb *strings.Builder, g *Group, key []pgColSQL) {
	sb.WriteString(" AS v(")
	pgAliases(sb, "c", len(g.Cols))
	sb.WriteString(", ")
	pgAliases(sb, "k", len(g.KeyCols))
	sb.WriteString(") WHERE ")
	pgKeyMatch(sb, g, key)
}

// pgKeyMatch writes `t.k1 = v.k0 AND t.k2 = v.k1`.
func pgKeyMatch(sb *strings.Builder, g *Group, key []pgColSQL) {
	for i, k := range g.KeyCols {
		if i > 0 {
			sb.WriteString(" AND ")
		}
		sb.WriteString("t.")
		sb.WriteString(k.Raw)
		sb.WriteString(" = ")
		pgElem(sb, "k", i, key[i])
	}
}

// pgMissingSQL is the query that lists, 1-based, the keys of a batch that
// match no row; it takes the same key arrays as the UPDATE, as $1...
func pgMissingSQL(g *Group, key []pgColSQL) string {
	var sb strings.Builder
	sb.WriteString("SELECT v.n FROM ")
	pgUnnest(&sb, 1, key)
	sb.WriteString(" WITH ORDINALITY AS v(")
	pgAliases(&sb, "k", len(key))
	sb.WriteString(", n) WHERE NOT EXISTS (SELECT 1 FROM ")
	sb.WriteString(pgTableName(g))
	sb.WriteString(" AS t WHERE ")
	pgKeyMatch(&sb, g, key)
	sb.WriteString(")")
	return sb.String()
}

// pgInsertSQL is the INSERT a group's batches run when COPY is not used.
func pgInsertSQL(g *Group, cols []pgColSQL) string {
	var sb strings.Builder
	writeInsertInto(&sb, pgTableName(g), g.Cols)
	sb.WriteString(" SELECT ")
	for i := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		pgElem(&sb, "c", i, cols[i])
	}
	sb.WriteString(" FROM ")
	pgUnnest(&sb, 1, cols)
	sb.WriteString(" AS v(")
	pgAliases(&sb, "c", len(cols))
	sb.WriteString(")")
	return sb.String()
}
