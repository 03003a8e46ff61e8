package writeback

import (
	"time"

	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file decides what the recognizer's wider shapes mean for one
// database: a table alias, a cast on an operand, a decimal literal,
// COALESCE(c, 0) + v, GREATEST(c, v) and LEAST(c, v). The recognizer accepts
// them as written; they are buffered only where the column shows that they
// change nothing (a cast to the column's own type, COALESCE on a NOT NULL
// column), say exactly which value is meant (a decimal literal, whose type
// is the database's to decide), or are functions the dirty set can merge
// (on numeric columns: see dialect.ColFn and dirtyset's planUpdate).

// planShapes checks a bufferable statement's alias, casts, decimal
// literals, COALESCE deltas, GREATEST and LEAST against the columns
// planColumns found, and replaces each decimal literal by the value the
// database would make of it for its column (and COALESCE on a NOT NULL
// column by a plain delta), in a copy of the statement kept in info. keyPos is as
// stmtInfo.keyPos. It reports false when the statement must go to the
// database: without a catalog (a generic database) none of these is
// buffered.
func planShapes(kind dialect.Kind, info *stmtInfo, keyPos []int, w *whyNot) bool {
	c := info.c
	if !hasShapes(c) {
		return true
	}
	if kind == dialect.Generic {
		return w.not("an alias, cast, decimal literal, COALESCE, GREATEST or LEAST: the generic dialect has no catalog to check them against")
	}
	if c.Kind == sqlparse.Upsert && !upsertClocksOK(kind, info, w) {
		return false
	}
	var cp *sqlparse.Statement // the copy, made at the first decimal literal
	operand := func(col *catalog.Column, op sqlparse.Operand) (sqlparse.Operand, bool) {
		if op.Cast != "" && (kind != dialect.Postgres || !castIsColumnType(col.Type, op.Cast)) {
			if w.on() {
				w.not("a cast to " + op.Cast + " for column " + col.Name + " of type " + col.Type + " (only a cast to the column's own type, on PostgreSQL, is buffered)")
			}
			return op, false
		}
		if _, isClock := op.Lit.(sqlparse.Clock); isClock {
			if !clockOK(kind, col) {
				if !w.on() {
					return op, false
				}
				return op, w.not("the current time for column " + col.Name + " of type " + col.Type + ", which only a timestamptz on PostgreSQL, or a text-affinity column on SQLite, takes exactly")
			}
			return op, true // evaluated at Exec (clockValue)
		}
		d, isDec := op.Lit.(sqlparse.Decimal)
		if !isDec {
			return op, true
		}
		v, ok := decimalValue(kind, col, d)
		if !ok && w.on() {
			w.not("the decimal " + string(d) + " for column " + col.Name + " of type " + col.Type + ", which the database would round or convert")
		}
		op.Lit = v
		return op, ok
	}
	switch c.Kind {
	case sqlparse.Update:
		for i, s := range c.Sets {
			col := info.setCols[i]
			if (s.NullAsZero || s.Extreme != 0) && (!numericClass(col.Class) || kind == dialect.Postgres && col.Type == "smallint") {
				if w.on() {
					w.not("COALESCE, GREATEST or LEAST on column " + col.Name + " of type " + col.Type + " (buffered on numeric columns, not smallint)")
				}
				return false
			}
			if s.NullAsZero && col.NotNull {
				cp = copyStatement(c, cp) // COALESCE(c, 0) is c: a plain delta, which merges with more
				cp.Sets[i].NullAsZero = false
			}
			op, ok := operand(col, s.Val)
			if !ok {
				return false
			}
			if op != s.Val {
				cp = copyStatement(c, cp)
				cp.Sets[i].Val = op
			}
		}
		for i, p := range keyPos {
			op, ok := operand(info.keyCols[i], c.Where[p].Val)
			if !ok {
				return false
			}
			if op != c.Where[p].Val {
				cp = copyStatement(c, cp)
				cp.Where[p].Val = op
			}
		}
	case sqlparse.Insert:
		for r, row := range c.Rows {
			for j, v := range row {
				op, ok := operand(info.insCols[j], v)
				if !ok {
					return false
				}
				if op != v {
					cp = copyStatement(c, cp)
					cp.Rows[r][j] = op
				}
			}
		}
	}
	if cp != nil {
		info.c = cp
	}
	return true
}

// extremeValueOK reports whether v, the value of a GREATEST or LEAST
// already checked as an assignment, may be buffered: on SQLite a number,
// since max and min order strings as text ('10' < '9'), which the dirty set
// could not follow when it merges two of them.
func extremeValueOK(kind dialect.Kind, v any) bool {
	if kind != dialect.SQLite {
		return true
	}
	switch v.(type) {
	case int64, float64:
		return true
	}
	return false
}

// extremeFn is the dirty set's function of a SET clause's Extreme.
func extremeFn(e int8) dialect.ColFn {
	if e > 0 {
		return dialect.FnGreatest
	}
	return dialect.FnLeast
}

// hasShapes reports whether the statement has an alias, a cast, a decimal
// literal or a function: the common statement has none and is left as it is.
func hasShapes(c *sqlparse.Statement) bool {
	if c.Alias != nil {
		return true
	}
	special := func(op sqlparse.Operand) bool {
		_, dec := op.Lit.(sqlparse.Decimal)
		_, clock := op.Lit.(sqlparse.Clock)
		return dec || clock || op.Cast != ""
	}
	for _, s := range c.Sets {
		if special(s.Val) || s.NullAsZero || s.Extreme != 0 {
			return true
		}
	}
	for _, w := range c.Where {
		if special(w.Val) {
			return true
		}
	}
	for _, row := range c.Rows {
		for _, v := range row {
			if special(v) {
				return true
			}
		}
	}
	return false
}

// upsertClocksOK checks the clocks of an upsert's rows and DO UPDATE SET
// list against their columns (clockOK).
func upsertClocksOK(kind dialect.Kind, info *stmtInfo, w *whyNot) bool {
	c := info.c
	check := func(op sqlparse.Operand, col *catalog.Column) bool {
		if _, isClock := op.Lit.(sqlparse.Clock); !isClock || col != nil && clockOK(kind, col) {
			return true
		}
		if w.on() && col != nil {
			w.not("the current time for column " + col.Name + " of type " + col.Type + ", which only a timestamptz on PostgreSQL, or a text-affinity column on SQLite, takes exactly")
		}
		return false
	}
	for _, row := range c.Rows {
		for j, v := range row {
			if j >= len(info.insCols) || !check(v, info.insCols[j]) {
				return w.not("the current time without the catalog's column")
			}
		}
	}
	for i, s := range c.Upsert.Sets {
		if i >= len(info.updCols) || !check(s.Val, info.updCols[i]) {
			return w.not("the current time without the catalog's column")
		}
	}
	return true
}

// clockOK reports whether the driver can give col the value a clock
// function would, with the application's clock: a timestamptz on
// PostgreSQL (an instant, whatever the session's time zone; a timestamp
// without time zone would take the session's zone, which the driver does
// not follow), and on SQLite a column that stores CURRENT_TIMESTAMP's text
// as text (not INTEGER or REAL affinity).
func clockOK(kind dialect.Kind, col *catalog.Column) bool {
	switch kind {
	case dialect.Postgres:
		return col.Class == catalog.Time && col.Type == "timestamp with time zone"
	case dialect.SQLite:
		return col.Class == catalog.Text || col.Class == catalog.Numeric || col.Class == catalog.Other
	}
	return false
}

// clockReading is one statement's reading of the application's clock,
// taken when its first clock function is met: every clock of the
// statement (two columns, several rows) gets the same instant, as the
// database gives them.
type clockReading struct{ at time.Time }

// value is what a clock function gives a column planned by clockOK: the
// instant on PostgreSQL (which keeps microseconds), SQLite's UTC text
// ("2006-01-02 15:04:05").
func (c *clockReading) value(kind dialect.Kind) any {
	if c.at.IsZero() {
		c.at = time.Now()
	}
	if kind == dialect.SQLite {
		return c.at.UTC().Format(time.DateTime)
	}
	return c.at.Truncate(time.Microsecond)
}

// assignValue is catalog.AssignOK for a value about to be buffered, with a
// clock evaluated from the statement's reading.
func assignValue(kind dialect.Kind, col *catalog.Column, v any, clk *clockReading) (any, bool) {
	if _, isClock := v.(sqlparse.Clock); isClock {
		return clk.value(kind), true
	}
	return catalog.AssignOK(kind, col, v)
}

// copyStatement returns cp, or when it is nil a copy of c whose operand
// lists may be changed without changing c (which the dialect's cache of
// classifications may share).
func copyStatement(c, cp *sqlparse.Statement) *sqlparse.Statement {
	if cp != nil {
		return cp
	}
	n := *c
	n.Sets = append([]sqlparse.SetClause(nil), c.Sets...)
	n.Where = append([]sqlparse.KeyEq(nil), c.Where...)
	if c.Rows != nil {
		n.Rows = make([][]sqlparse.Operand, len(c.Rows))
		for i, r := range c.Rows {
			n.Rows[i] = append([]sqlparse.Operand(nil), r...)
		}
	}
	return &n
}

// decimalValue is the value a decimal literal has as an operand for col,
// in the form the buffer keeps for that column: PostgreSQL makes it a
// numeric (kept as its text, for numeric columns) and converts it to double
// precision exactly as Go rounds its text (correctly); SQLite makes it a
// REAL, by an algorithm that is exact only where the decimal has an exact
// binary value. Anything else (integer and text columns among them, where
// either database rounds or re-formats it) is refused.
func decimalValue(kind dialect.Kind, col *catalog.Column, d sqlparse.Decimal) (any, bool) {
	s := string(d)
	switch {
	case kind == dialect.Postgres && col.Class == catalog.Numeric:
		return s, true
	case kind == dialect.Postgres && col.Class == catalog.Float && col.Type == "double precision":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, false
		}
		if f == 0 {
			f = 0 // numeric has no -0: -0.0 is 0
		}
		return f, true
	case kind == dialect.SQLite && col.Class == catalog.Float:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || f == 0 && strings.HasPrefix(s, "-") {
			return nil, false
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok || new(big.Rat).SetFloat64(f).Cmp(r) != 0 {
			return nil, false
		}
		return f, true
	}
	return nil, false
}

// castIsColumnType reports whether a PostgreSQL cast to the type named cast
// is a cast to the column's own type (its declared type without the type
// modifier, which an assignment applies anyway), so that the operand means
// what it would without the cast: the parameter's deduced type, or the
// literal's value after the assignment's coercion. char and bit are never
// the column's type: without a length they mean char(1) and bit(1), which
// truncate.
func castIsColumnType(colType, cast string) bool {
	want := pgTypeName(cast)
	return want != "" && want == pgTypeName(stripTypmod(colType))
}

// stripTypmod removes the type modifiers of a PostgreSQL type's text:
// "numeric(12,2)" is "numeric", "timestamp(3) with time zone" is
// "timestamp with time zone".
func stripTypmod(t string) string {
	for {
		i := strings.IndexByte(t, '(')
		if i < 0 {
			return t
		}
		j := strings.IndexByte(t[i:], ')')
		if j < 0 {
			return ""
		}
		t = strings.TrimSpace(t[:i]) + t[i+j+1:]
	}
}

// pgTypeName is the catalog's name of a PostgreSQL type written as name
// (lower case, words separated by one space), "" for a type never taken as
// a column's own.
func pgTypeName(name string) string {
	switch name {
	case "int", "int4", "integer":
		return "integer"
	case "int8", "bigint":
		return "bigint"
	case "int2", "smallint":
		return "smallint"
	case "float", "float8", "double precision":
		return "double precision"
	case "float4", "real":
		return "real"
	case "decimal", "numeric":
		return "numeric"
	case "varchar", "character varying", "char varying":
		return "character varying"
	case "bool", "boolean":
		return "boolean"
	case "timestamptz", "timestamp with time zone":
		return "timestamp with time zone"
	case "timestamp", "timestamp without time zone":
		return "timestamp without time zone"
	case "timetz", "time with time zone":
		return "time with time zone"
	case "time", "time without time zone":
		return "time without time zone"
	case "char", "character", "bpchar", "bit", "bit varying", "varbit", "":
		return ""
	}
	return name
}
