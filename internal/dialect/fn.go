package dialect

import "strings"

// ColFn is a function of a column's current value that an UPDATE of a
// flushed row applies, beyond col = v and col = col + v.
type ColFn uint8

const (
	FnNone     ColFn = iota // col = v, or col = col + v for a delta
	FnNullZero              // with a delta: col = COALESCE(col, 0) + v
	FnGreatest              // col = GREATEST(col, v); SQLite: max(col, v)
	FnLeast                 // col = LEAST(col, v); SQLite: min(col, v)
)

// String is the function's name as the dead-letter file shows it ("" for
// FnNone).
func (f ColFn) String() string {
	switch f {
	case FnNullZero:
		return "coalesce"
	case FnGreatest:
		return "greatest"
	case FnLeast:
		return "least"
	}
	return ""
}

// writeSet writes the SET expression of column col (as cur, the column's
// current value, reads it) for value param: v, cur + v, COALESCE(cur, 0) +
// v, GREATEST(cur, v) or LEAST(cur, v) (max and min on SQLite, whose
// GREATEST and LEAST do not exist).
func writeSet(sb *strings.Builder, cur string, delta bool, fn ColFn, sqlite bool, param func(*strings.Builder)) {
	switch {
	case fn == FnGreatest || fn == FnLeast:
		name := "GREATEST("
		switch {
		case sqlite && fn == FnGreatest:
			name = "max("
		case sqlite:
			name = "min("
		case fn == FnLeast:
			name = "LEAST("
		}
		sb.WriteString(name)
		sb.WriteString(cur)
		sb.WriteString(", ")
		param(sb)
		sb.WriteByte(')')
		return
	case delta && fn == FnNullZero:
		sb.WriteString("COALESCE(")
		sb.WriteString(cur)
		sb.WriteString(", 0) + ")
	case delta:
		sb.WriteString(cur)
		sb.WriteString(" + ")
	}
	param(sb)
}

// fnAt is g.Fn[i], FnNone when g has no functions.
func (g *Group) fnAt(i int) ColFn {
	if i < len(g.Fn) {
		return g.Fn[i]
	}
	return FnNone
}
