// Package sqlparse is the SQL recognizer of writeback. It decides, once per
// distinct SQL text, whether a statement is one of the few shapes that may be
// buffered — UPDATE t SET c = v, d = d + v WHERE key = v, and INSERT INTO t
// (cols) VALUES (...) — and lists the names every statement mentions, for
// barriers. It is a hand-written lexer and a small recursive-descent
// recognizer: it runs for every new SQL text, including texts with inlined
// literals, so it must be fast, and it must never misread a statement, so
// anything it does not fully understand is Other and goes to the database
// unchanged.
//
// The lexer does not know the dialect beyond sqliteParams. Where PostgreSQL,
// MySQL and SQLite would read the same text differently (a backslash in a
// string, a nested comment, "--" not followed by a space, MySQL's /*! ... */
// executable comments), the statement is marked unsafe: it is never buffered,
// and the identifier-shaped words of the doubtful region are added to names so
// that barriers stay conservative whatever the dialect made of it.
package sqlparse

import (
	"strings"
	"unicode/utf8"
)

// unquoteIdent returns a quoted identifier's name: the quotes removed and a
// doubled quote undone ([...] has no escape).
func unquoteIdent(raw string) string {
	if len(raw) < 2 {
		return ""
	}
	q, body := raw[0], raw[1:len(raw)-1]
	if q == '[' {
		return body
	}
	pair := raw[:1] + raw[:1]
	if strings.Contains(body, pair) {
		return strings.ReplaceAll(body, pair, raw[:1])
	}
	return body
}

// namedParam remembers the ordinal given to a named parameter.
type namedParam struct {
	name   string // without prefix
	prefix byte
	ord    int
}

// smallNames is how many names or named parameters are searched linearly
// before a map is built: statements are small, maps cost allocations.
const smallNames = 16

// classifier holds the state of one classify call.
type classifier struct {
	q      string
	sqlite bool
	// unsafe: the statement must not be buffered whatever its shape;
	// unsafeWhy says why (the first reason found), for WhyNot.
	unsafe    bool
	unsafeWhy string

	names   []string
	nameSet map[string]struct{}

	nVar     int // largest bind position used so far (SQLite's nVar)
	forms    uint8
	style    ParamStyle
	named    []namedParam
	namedMap map[string]namedParam
}

// addName adds one name (already lower-cased) to names, once.
func (c *classifier) addName(n string) {
	if n == "" {
		return
	}
	if c.nameSet != nil {
		if _, ok := c.nameSet[n]; ok {
			return
		}
		c.nameSet[n] = struct{}{}
		c.names = append(c.names, n)
		return
	}
	for _, o := range c.names {
		if o == n {
			return
		}
	}
	if c.names == nil {
		c.names = make([]string, 0, 8) // most statements name fewer
	}
	c.names = append(c.names, n)
	if len(c.names) > smallNames {
		c.nameSet = make(map[string]struct{}, 2*len(c.names))
		for _, o := range c.names {
			c.nameSet[o] = struct{}{}
		}
	}
}

// addIdentName adds a name as written (unquoted or unquoted-from-quotes).
// Names are lower-cased the ASCII way, like rules, and also the Unicode way
// when that differs, because barriers look names up by strings.ToLower of
// the rule's name: either spelling must find the table.
func (c *classifier) addIdentName(n string) {
	l := FoldASCII(n)
	c.addName(l)
	for i := 0; i < len(l); i++ {
		if l[i] >= utf8.RuneSelf {
			if u := strings.ToLower(l); u != l {
				c.addName(u)
			}
			return
		}
	}
}

// addWords adds every identifier-shaped word of text to names: used for text
// whose meaning depends on the dialect (see the package comment above).
func (c *classifier) addWords(text string) {
	for i := 0; i < len(text); {
		if !isIdentStart(text[i]) {
			i++
			continue
		}
		j := identEnd(text, i)
		c.addIdentName(text[i:j])
		i = j
	}
}

// bind gives a placeholder token its ordinal the way SQLite does: ? takes
// the next position after the largest used so far, ?NNN and $NNN their
// number, and a name the next position at its first appearance and the same
// one after that.
func (c *classifier) bind(t *token) {
	switch t.form {
	case pfPositional:
		c.nVar++
		t.num = c.nVar
		if c.nVar > maxOrdinal {
			t.kind = tkOther
		}
	case pfNumbered, pfDollar:
		c.nVar = max(c.nVar, t.num)
	case pfNamed:
		t.num = c.namedOrdinal(c.q[t.start], c.q[t.start+1:t.end])
	}
	c.forms |= 1 << t.form
	if c.style == ParamNone {
		switch t.form {
		case pfPositional, pfNumbered:
			c.style = ParamQuestion
		case pfDollar:
			c.style = ParamDollar
		default:
			c.style = ParamNamed
		}
	}
}

// namedOrdinal returns the ordinal of a named parameter. The same name under
// two prefixes (:a and @a) is two parameters to SQLite but one to a driver
// binding sql.Named("a", ...): the statement is not buffered.
func (c *classifier) namedOrdinal(prefix byte, name string) int {
	var p namedParam
	found := false
	if c.namedMap != nil {
		p, found = c.namedMap[name]
	} else {
		for _, o := range c.named {
			if o.name == name {
				p, found = o, true
				break
			}
		}
	}
	if found {
		if p.prefix == prefix {
			return p.ord
		}
		c.setUnsafe("the same parameter name is written with two prefixes (:a and @a): drivers bind them differently")
		c.nVar++
		return c.nVar
	}
	c.nVar++
	p = namedParam{name: name, prefix: prefix, ord: c.nVar}
	if c.namedMap != nil {
		c.namedMap[name] = p
		return p.ord
	}
	c.named = append(c.named, p)
	if len(c.named) > smallNames {
		c.namedMap = make(map[string]namedParam, 2*len(c.named))
		for _, o := range c.named {
			c.namedMap[o.name] = o
		}
	}
	return p.ord
}

// Classify classifies one SQL text. sqliteParams says the base driver is
// SQLite, where $NNN and $name are named parameters rather than PostgreSQL's
// $N placeholders and dollar quotes. It never returns nil and never panics:
// what it does not fully understand is Other.
//
// Every result, bufferable or not, carries names (every identifier and
// keyword outside strings and comments, plus the words of dialect-dependent
// text), the transaction effect (beginsTx, endsTx; never both), and the
// placeholder style and count, numbered the way SQLite numbers them. The
// shape fields (schema, table, sets, where, cols, rows) are set only for
// Update and Insert.
func Classify(query string, sqliteParams bool) *Statement {
	st, _ := classify(query, sqliteParams, false)
	return st
}

// WhyNot says, in words, why query is not one of the bufferable UPDATE or
// INSERT shapes: "WHERE has OR", "SET n = random(): a call of random()". It
// returns "" when the text is one of them, and when it is no UPDATE or
// INSERT at all (the caller says what it is). It classifies the text again
// with reasons recorded, so Classify itself never builds them.
func WhyNot(query string, sqliteParams bool) string {
	_, why := classify(query, sqliteParams, true)
	return why
}

// classify is Classify; with explain it also returns why an UPDATE or
// INSERT is not a bufferable shape.
func classify(query string, sqliteParams, explain bool) (*Statement, string) {
	c := classifier{q: query, sqlite: sqliteParams}
	res := &Statement{}
	lx := lexer{s: query, sqlite: sqliteParams}
	var buf [48]token
	toks := buf[:0]
	for {
		t := lx.next()
		text := query[t.start:t.end]
		if t.amb {
			c.setUnsafe("part of the text reads differently in PostgreSQL, MySQL and SQLite (a backslash in a string, a nested or executable comment, -- without a space)")
			c.addWords(text)
		}
		switch t.kind {
		case tkComment:
			continue
		case tkIdent:
			c.addIdentName(text)
		case tkQIdent:
			c.addIdentName(unquoteIdent(text))
			if text[0] == '[' {
				// In PostgreSQL [ ] is an array subscript that may hold a
				// subquery: its words may name tables.
				c.addWords(text)
			}
		case tkParam:
			c.bind(&t)
		}
		toks = append(toks, t)
		if t.kind == tkEOF {
			break
		}
	}
	res.Names = c.names
	res.Style = c.style
	res.NumParams = c.nVar
	if c.forms&(c.forms-1) != 0 {
		// Mixed placeholder syntaxes: how a driver binds them is anybody's guess.
		c.setUnsafe("it mixes placeholder syntaxes (? and $1, or positional and named)")
	}
	if !utf8.ValidString(query) || strings.IndexByte(query, 0) >= 0 {
		// PostgreSQL rejects such text; SQLite may stop at a NUL.
		c.setUnsafe("the text is not valid UTF-8 or holds a NUL byte")
	}
	p := parser{q: &query, toks: toks, sqlite: sqliteParams}
	var why string
	if explain {
		p.why = &why
	}
	p.txState(res)
	first := p.word(0)
	switch {
	case c.unsafe:
		if kwIs(first, "update") || kwIs(first, "insert") || c.sqlite && kwIs(first, "replace") {
			why = c.unsafeWhy
		}
	case kwIs(first, "update"):
		p.i = 1
		if p.update(res) {
			res.Kind = Update
		} else {
			res.Schema, res.Table, res.Alias, res.Sets, res.Where, res.Guards, res.Returning = nil, Ident{}, nil, nil, nil, nil, nil
		}
	case kwIs(first, "insert"), c.sqlite && kwIs(first, "replace"):
		p.i = 1
		ok := false
		if kwIs(first, "insert") {
			ok = p.insert(res)
		} else {
			ok = p.replace(res)
		}
		if ok {
			res.Kind = Insert
			if res.OrReplace {
				res.Upsert = replaceClause(res.Cols)
			}
			if res.Upsert != nil {
				res.Kind = Upsert
			}
		} else {
			res.Schema, res.Table, res.Cols, res.Rows, res.Upsert, res.Returning = nil, Ident{}, nil, nil, nil, nil
			res.IgnoreConflict, res.OrIgnore, res.ConflictTarget = false, false, nil
			res.InsertIgnore, res.OnDuplicateKey, res.OrReplace = false, false, false
		}
	}
	if explain && res.Kind == Other && why == "" && (kwIs(first, "update") || kwIs(first, "insert") || c.sqlite && kwIs(first, "replace")) {
		why = "not one of the bufferable shapes"
	}
	return res, why
}

// replaceClause is the update part of a REPLACE that inserted cols: every
// column assigned its proposed value (see Statement.OrReplace).
func replaceClause(cols []Ident) *UpsertClause {
	u := &UpsertClause{Sets: make([]UpsertSet, len(cols))}
	for i, c := range cols {
		u.Sets[i] = UpsertSet{Col: c, Excluded: true}
	}
	return u
}

// setUnsafe marks the statement never bufferable, keeping the first reason.
func (c *classifier) setUnsafe(why string) {
	if !c.unsafe {
		c.unsafeWhy = why
	}
	c.unsafe = true
}
