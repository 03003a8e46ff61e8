package writeback

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
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
	// The catalog's columns (nil without a catalog): of the key, in the
	// rule's order; of each SET clause; of each inserted column; of each
	// upsert's DO UPDATE SET clause.
	keyCols, setCols, insCols, updCols []*catalog.Column
	// provisional: built before the catalog could be read; not cached.
	provisional bool
	// writes: not a plain SELECT, so it may lock rows of the back tables
	// it names (txlocks.go).
	writes bool
	// read: a read of one row by key, answered from the database plus the
	// buffer (readkey.go); nil for every other statement.
	read *readPlan
	// guards: an UPDATE's IS [NOT] NULL conditions besides its key
	// (guard.go); nil when it has none.
	guards []dirtyset.Guard
	// ignore: an INSERT that skips a row whose key exists (ON CONFLICT DO
	// NOTHING, INSERT OR IGNORE: guard.go).
	ignore bool
	// returning: the RETURNING list of a bufferable write, answered from
	// its own values (returning.go); nil when it has none.
	returning []returnCol
}

// stmtCache holds the classifications of one schema: it is replaced whole
// when the catalog is read again.
type stmtCache struct {
	m sync.Map // SQL text → *stmtInfo
	n atomic.Int64
}

// resetStatementCache drops every classification: they were made against
// an older catalog.
func (cn *Connector) resetStatementCache() { cn.cache.Store(&stmtCache{}) }

// maxCachedStatements bounds the classification cache: an application that
// inlines literals into its SQL would otherwise grow it without end. Beyond
// it, statements are classified each time.
const maxCachedStatements = 10000

// info returns the cached classification of query, building it on first use.
func (cn *Connector) info(query string) *stmtInfo {
	cache := cn.cache.Load()
	if v, ok := cache.m.Load(query); ok {
		return v.(*stmtInfo)
	}
	if cn.schema.pending.Load() {
		cn.ensureSchema(context.Background())
		cache = cn.cache.Load()
	}
	info := cn.buildInfo(query)
	if !info.provisional && cache.n.Load() < maxCachedStatements {
		if _, loaded := cache.m.LoadOrStore(query, info); !loaded {
			cache.n.Add(1)
		}
	}
	return info
}

// recentStmts is one connection's last few classifications, looked up
// before the connector's shared cache. An application sends a handful of
// statements again and again, most often the same constant string: a
// comparison here is a length and a pointer check, where the shared cache
// hashes the whole text (about a tenth of a buffered Exec). The entries
// belong to the cache they were read from and are ignored once the catalog
// is read again. Only the connection's own goroutine touches them (see
// conn).
type recentStmts struct {
	from  *stmtCache
	query [recentStmtSlots]string
	info  [recentStmtSlots]*stmtInfo
	next  int
}

const recentStmtSlots = 4

// info is cn.info(query) through the connection's recent statements.
func (c *conn) info(query string) *stmtInfo {
	r := &c.recent
	cache := c.cn.cache.Load()
	if r.from == cache {
		for i := range r.query {
			if r.info[i] != nil && r.query[i] == query {
				return r.info[i]
			}
		}
	} else {
		*r = recentStmts{from: cache}
	}
	info := c.cn.info(query)
	if !info.provisional && c.cn.cache.Load() == cache {
		// Kept only when built against the cache the entries belong to:
		// a catalog read meanwhile made a new one.
		r.query[r.next], r.info[r.next] = query, info
		r.next = (r.next + 1) % recentStmtSlots
	}
	return info
}

func (cn *Connector) buildInfo(query string) *stmtInfo { return cn.planStatement(query, nil) }

// whyNot collects why a statement is not buffered, for the writeback
// command's explain (inspect.go). The statement path passes nil, and then
// no reason is ever built: formatted reasons are made only under w.on().
type whyNot struct{ reason string }

// on reports whether reasons are wanted.
func (w *whyNot) on() bool { return w != nil }

// not records reason, unless one was recorded before (the first decision
// is the one that counts), and returns false.
func (w *whyNot) not(reason string) bool {
	if w != nil && w.reason == "" {
		w.reason = reason
	}
	return false
}

// planStatement is buildInfo, recording in w (when not nil) why the
// statement is not buffered.
func (cn *Connector) planStatement(query string, w *whyNot) *stmtInfo {
	c := cn.dia.Classify(query)
	info := &stmtInfo{c: c}
	sch := cn.schema.state.Load()
	named := cn.buf.tablesNamed(c.Names)
	if sch != nil {
		named = appendViewTables(named, sch, c.Names)
	}
	reads := isPlainSelect(query)
	info.writes = !reads
	for _, t := range named {
		if reads && t.rule.Reads == ReadsStale {
			continue
		}
		info.barrier = append(info.barrier, t)
	}
	if reads && len(info.barrier) > 0 {
		info.read = cn.planRead(query, info, sch)
	}
	if c.Kind == sqlparse.Other {
		return info // why: dialect.WhyNot, asked by the explainer itself
	}
	if !cn.dia.Accepts(c) {
		if w.on() {
			w.not(dialect.Refusal(cn.dia, c))
		}
		return info
	}
	t := cn.buf.tableFor(c.Schema, c.Table)
	if t == nil {
		if w.on() {
			w.not(cn.notBackTable(c))
		}
		return info
	}
	if hasCatalog(cn.dia) && sch == nil {
		info.provisional = true // nothing is buffered before the catalog is read
		return w.infoNot(info, "the catalog has not been read yet (the database did not answer): nothing is buffered until it is")
	}
	keys := t.rule.Key
	pos := make([]int, len(keys))
	keyCols := make([]sqlparse.Ident, len(keys))
	notKey := func(what string) *stmtInfo {
		if w.on() {
			w.not(fmt.Sprintf("%s is not exactly the key (%s) of %s", what, strings.Join(keys, ", "), t.rule.Name))
		}
		return info
	}
	switch c.Kind {
	case sqlparse.Update:
		if len(c.Where) != len(keys) {
			return notKey("WHERE")
		}
		for i, k := range keys {
			pos[i] = -1
			for j, eq := range c.Where {
				if eq.Col.Norm == k {
					pos[i], keyCols[i] = j, eq.Col
				}
			}
			if pos[i] < 0 {
				return notKey("WHERE")
			}
		}
		if len(c.Guards) > 0 && !cn.planGuards(info, t, sch, w) {
			return info
		}
	case sqlparse.Insert, sqlparse.Upsert:
		if c.OrReplace {
			if !planReplace(info, t, sch, w) { // replace.go
				return info
			}
			c = info.c
		}
		for i, k := range keys {
			pos[i] = -1
			for j, col := range c.Cols {
				if col.Norm == k {
					pos[i], keyCols[i] = j, col
				}
			}
			if pos[i] < 0 {
				if w.on() {
					w.not(fmt.Sprintf("the INSERT does not set key column %s of %s", k, t.rule.Name))
				}
				return info
			}
		}
		if c.Kind == sqlparse.Upsert && !upsertShapeOK(c, keys, cn.dia.Kind(), w) {
			return info
		}
		if c.OnDuplicateKey && !planDuplicateKey(t, sch, w) {
			return info
		}
		if c.IgnoreConflict && !planIgnore(info, t, sch, cn.dia.Kind(), w) {
			return info
		}
	}
	if sch != nil && !planColumns(info, sch, t, pos, w) {
		return info
	}
	if !planShapes(cn.dia.Kind(), info, pos, w) { // shapes.go
		return info
	}
	if !planOrder(info, t, w) { // order.go
		return info
	}
	if len(c.Returning) > 0 && !planReturning(cn.dia.Kind(), info, pos) {
		return w.infoNot(info, "RETURNING asks for what only the database knows (a column the statement does not give, a type other than integer or text, several rows, or a row it may skip)")
	}
	info.target, info.keyPos = t, pos
	info.names = &dirtyset.Names{Schema: c.Schema, Table: c.Table, KeyCols: keyCols, Style: c.Style}
	return info
}

// noTable records that a rule's table is not in the database.
func (w *whyNot) noTable(name string) bool {
	if w.on() {
		w.not("table " + name + " does not exist in the database")
	}
	return false
}

// infoNot records reason and returns info.
func (w *whyNot) infoNot(info *stmtInfo, reason string) *stmtInfo {
	w.not(reason)
	return info
}

// notBackTable says why a write's target is not buffered: its rule is
// through, or it has none.
func (cn *Connector) notBackTable(c *sqlparse.Statement) string {
	name := c.Table.Norm
	if c.Schema != nil {
		name = c.Schema.Norm + "." + name
	}
	for _, cand := range []string{name, "public." + name, "main." + name} {
		if r := cn.rules.Tables[cand]; r != nil {
			return "table " + r.Name + " is mode: " + r.Mode.String()
		}
	}
	return "table " + name + " is not in the rules (write-through)"
}

// appendViewTables adds the back tables that the views a statement names
// read: a read of a view waits for them like a read of the tables.
func appendViewTables(named []*tableState, sch *schemaState, names []string) []*tableState {
	for _, n := range names {
		for _, t := range sch.views[n] {
			if !slices.Contains(named, t) {
				named = append(named, t)
			}
		}
	}
	return named
}

// planColumns finds the catalog's column of every column a bufferable
// statement writes, and reports whether the statement may be buffered at all
// as far as the column types tell: every column exists, a delta is on a
// numeric column, and a placeholder used twice is used for columns of one
// type class (PostgreSQL refuses one parameter deduced as two types).
func planColumns(info *stmtInfo, sch *schemaState, t *tableState, keyPos []int, w *whyNot) bool {
	if err := sch.broken[t.rule.Name]; err != nil {
		if w.on() {
			w.not("table " + t.rule.Name + " does not fit its rule: " + err.Error())
		}
		return false
	}
	tab := sch.tables[t.rule.Name]
	if tab == nil {
		return w.noTable(t.rule.Name)
	}
	c := info.c
	classes := map[int]catalog.TypeClass{}
	use := func(col *catalog.Column, src sqlparse.Operand, name string) bool {
		if col == nil {
			if w.on() {
				w.not(fmt.Sprintf("column %s does not exist in table %s", name, t.rule.Name))
			}
			return false
		}
		if src.IsLit {
			return true
		}
		k := src.Ordinal
		if prev, ok := classes[k]; ok && prev != col.Class {
			if w.on() {
				w.not(fmt.Sprintf("placeholder %d is used for columns of two types (%s, and %s for %s)", k, prev, col.Class, col.Name))
			}
			return false
		}
		classes[k] = col.Class
		return true
	}
	switch c.Kind {
	case sqlparse.Update:
		info.setCols = make([]*catalog.Column, len(c.Sets))
		for i, s := range c.Sets {
			col := tab.Column(s.Col.Norm)
			if !use(col, s.Val, s.Col.Norm) {
				return false
			}
			if s.Delta != 0 && !numericClass(col.Class) {
				return w.notNumeric(col)
			}
			info.setCols[i] = col
		}
		info.keyCols = make([]*catalog.Column, len(keyPos))
		for i, p := range keyPos {
			col := tab.Column(c.Where[p].Col.Norm)
			if !use(col, c.Where[p].Val, c.Where[p].Col.Norm) {
				return false
			}
			info.keyCols[i] = col
		}
	case sqlparse.Insert, sqlparse.Upsert:
		if c.Kind == sqlparse.Upsert && !planUpsertSets(info, tab, use, w) {
			return false
		}
		info.insCols = make([]*catalog.Column, len(c.Cols))
		for i, id := range c.Cols {
			if info.insCols[i] = tab.Column(id.Norm); info.insCols[i] == nil {
				return use(nil, sqlparse.Operand{}, id.Norm)
			}
		}
		for _, row := range c.Rows {
			for i, src := range row {
				if !use(info.insCols[i], src, c.Cols[i].Norm) {
					return false
				}
			}
		}
		info.keyCols = make([]*catalog.Column, len(keyPos))
		for i, p := range keyPos {
			info.keyCols[i] = info.insCols[p]
		}
		// A NOT NULL column without a default that the INSERT leaves out
		// fails directly: leave that to the database.
		for _, col := range tab.Columns {
			if col.NotNull && col.Default == "" && !col.Identity && !col.Generated && !slices.Contains(info.insCols, col) {
				if w.on() {
					w.not("the INSERT leaves out column " + col.Name + ", NOT NULL without a default (the database refuses it)")
				}
				return false
			}
		}
	}
	return true
}

// notNumeric records a delta on a column whose values cannot be summed.
func (w *whyNot) notNumeric(col *catalog.Column) bool {
	if w.on() {
		w.not("a delta on column " + col.Name + ", of type " + col.Type + ", which is not numeric")
	}
	return false
}

// numericClass reports whether deltas on a column of class k can ever be
// summed in memory.
func numericClass(k catalog.TypeClass) bool {
	return k == catalog.Integer || k == catalog.Numeric || k == catalog.Float
}

// isPlainSelect reports whether the statement starts with SELECT (after
// spaces, comments and parentheses): a read, which a reads: stale table lets
// through without a barrier.
func isPlainSelect(q string) bool {
	w, rest := firstWord(q)
	if !strings.EqualFold(w, "select") {
		return false
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return rest == "" || !(unicode.IsLetter(r) || unicode.IsDigit(r))
}

// firstWord returns the statement's first word (ASCII letters, digits and
// _), after spaces, comments and parentheses, and the text after it.
func firstWord(q string) (word, rest string) {
	for i := 0; i < len(q); {
		switch {
		case q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r' || q[i] == '(':
			i++
		case strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return "", ""
			}
			i += j + 1
		case strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return "", ""
			}
			i += j + 4
		default:
			j := i
			for j < len(q) && (q[j] == '_' || '0' <= q[j] && q[j] <= '9' || 'a' <= q[j]|0x20 && q[j]|0x20 <= 'z') {
				j++
			}
			return q[i:j], q[j:]
		}
	}
	return "", ""
}

// resolveSets resolves an UPDATE's SET list against the arguments into
// changes (appended to dst): values copied, subtractions negated. ok is false
// when a value cannot be buffered.
func resolveSets(dst []dirtyset.Change, sets []sqlparse.SetClause, args []driver.NamedValue) ([]dirtyset.Change, bool) {
	for i := range sets {
		s := &sets[i] // not copied: this runs for every buffered UPDATE
		v, ok := argValue(&s.Val, args)
		if !ok {
			return nil, false
		}
		if s.Extreme != 0 {
			if v == nil {
				return nil, false // GREATEST(c, NULL) is c on PostgreSQL, max(c, NULL) NULL on SQLite: through
			}
			dst = append(dst, dirtyset.Change{Col: s.Col, Fn: extremeFn(s.Extreme), Val: v})
			continue
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
		ch := dirtyset.Change{Col: s.Col, Delta: s.Delta != 0, Val: v}
		if s.NullAsZero {
			ch.Fn = dialect.FnNullZero
		}
		dst = append(dst, ch)
	}
	return dst, true
}

// argValue resolves an operand against the bound arguments and returns a
// private, normalized copy of its value.
func argValue(src *sqlparse.Operand, args []driver.NamedValue) (any, bool) {
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
