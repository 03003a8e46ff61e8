package writeback

import (
	"database/sql/driver"
	"strings"
	"unicode"

	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/sqlparse"
	"github.com/writeback-go/writeback/internal/value"
)

// stmtInfo is what the connector knows about one SQL text: its
// classification and what it means under this connector's rules. It is built
// once per distinct text and shared, read-only.
type stmtInfo struct {
	c *sqlparse.Statement
	// target is the back table a bufferable UPDATE or INSERT writes; nil when
	// the statement can never be buffered.
	target *tableState
	// keyPos: for an UPDATE, the index in c.where of each key column in the
	// rule's order; for an INSERT, the index in c.cols.
	keyPos []int
	names  *dirtyset.Names
	// barrier lists the back tables to commit before the statement runs.
	barrier []*tableState
}

// maxCachedStatements bounds the classification cache: an application that
// inlines literals into its SQL would otherwise grow it without end. Beyond
// it, statements are classified each time.
const maxCachedStatements = 10000

// info returns the cached classification of query, building it on first use.
func (cn *Connector) info(query string) *stmtInfo {
	if v, ok := cn.cache.Load(query); ok {
		return v.(*stmtInfo)
	}
	info := cn.buildInfo(query)
	if cn.cacheLen.Load() < maxCachedStatements {
		if _, loaded := cn.cache.LoadOrStore(query, info); !loaded {
			cn.cacheLen.Add(1)
		}
	}
	return info
}

func (cn *Connector) buildInfo(query string) *stmtInfo {
	c := cn.dia.Classify(query)
	info := &stmtInfo{c: c}
	named := cn.buf.tablesNamed(c.Names)
	reads := isPlainSelect(query)
	for _, t := range named {
		if reads && t.rule.Reads == ReadsStale {
			continue
		}
		info.barrier = append(info.barrier, t)
	}
	if c.Kind == sqlparse.Other || !cn.dia.Accepts(c) {
		return info
	}
	t := cn.buf.tableFor(c.Schema, c.Table)
	if t == nil {
		return info
	}
	keys := t.rule.Key
	pos := make([]int, len(keys))
	keyCols := make([]sqlparse.Ident, len(keys))
	switch c.Kind {
	case sqlparse.Update:
		if len(c.Where) != len(keys) {
			return info
		}
		for i, k := range keys {
			pos[i] = -1
			for j, w := range c.Where {
				if w.Col.Norm == k {
					pos[i], keyCols[i] = j, w.Col
				}
			}
			if pos[i] < 0 {
				return info
			}
		}
	case sqlparse.Insert:
		for i, k := range keys {
			pos[i] = -1
			for j, col := range c.Cols {
				if col.Norm == k {
					pos[i], keyCols[i] = j, col
				}
			}
			if pos[i] < 0 {
				return info
			}
		}
	}
	info.target, info.keyPos = t, pos
	info.names = &dirtyset.Names{Schema: c.Schema, Table: c.Table, KeyCols: keyCols, Style: c.Style}
	return info
}

// isPlainSelect reports whether the statement starts with SELECT (after
// spaces, comments and parentheses): a read, which a reads: stale table lets
// through without a barrier.
func isPlainSelect(q string) bool {
	for i := 0; i < len(q); {
		switch {
		case q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r' || q[i] == '(':
			i++
		case strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return false
			}
			i += j + 1
		case strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return false
			}
			i += j + 4
		default:
			w := q[i:]
			if len(w) < 6 || !strings.EqualFold(w[:6], "select") {
				return false
			}
			return len(w) == 6 || !(unicode.IsLetter(rune(w[6])) || unicode.IsDigit(rune(w[6])) || w[6] == '_')
		}
	}
	return false
}

// resolveSets resolves an UPDATE's SET list against the arguments into
// changes (appended to dst): values copied, subtractions negated. ok is false
// when a value cannot be buffered.
func resolveSets(dst []dirtyset.Change, sets []sqlparse.SetClause, args []driver.NamedValue) ([]dirtyset.Change, bool) {
	for _, s := range sets {
		v, ok := argValue(s.Val, args)
		if !ok {
			return nil, false
		}
		if s.Delta != 0 && v == nil {
			dst = append(dst, dirtyset.Change{Col: s.Col}) // c = c + NULL is NULL: an assignment
			continue
		}
		if s.Delta != 0 {
			if !value.IsDelta(v) {
				return nil, false
			}
			if s.Delta < 0 {
				if v, ok = value.Negate(v); !ok {
					return nil, false
				}
			}
		}
		dst = append(dst, dirtyset.Change{Col: s.Col, Delta: s.Delta != 0, Val: v})
	}
	return dst, true
}

// argValue resolves an operand against the bound arguments and returns a
// private, normalized copy of its value.
func argValue(src sqlparse.Operand, args []driver.NamedValue) (any, bool) {
	if src.IsLit {
		return src.Lit, true
	}
	if src.Name != "" {
		for i := range args {
			if args[i].Name == src.Name {
				return value.Copy(args[i].Value)
			}
		}
	}
	// Positional arguments bind by position, named placeholders included (SQLite's rule);
	// a named argument never binds to a positional placeholder here: the driver decides.
	if i := src.Ordinal - 1; i >= 0 && i < len(args) && args[i].Name == "" {
		return value.Copy(args[i].Value)
	}
	return nil, false
}
