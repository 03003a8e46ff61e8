package writeback

// The classifier decides, once per distinct SQL text, whether a statement is
// one of the few shapes that may be buffered (see README.md) and lists the
// names every statement mentions, for barriers. It is a hand-written lexer
// and a small recursive-descent recognizer: it runs for every new SQL text,
// including texts with inlined literals, so it must be fast, and it must
// never misread a statement, so anything it does not fully understand is
// stmtOther and goes to the database unchanged.
//
// The lexer does not know the dialect beyond sqliteParams. Where PostgreSQL,
// MySQL and SQLite would read the same text differently (a backslash in a
// string, a nested comment, "--" not followed by a space, MySQL's /*! ... */
// executable comments), the statement is marked unsafe: it is never buffered,
// and the identifier-shaped words of the doubtful region are added to names so
// that barriers stay conservative whatever the dialect made of it.

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Largest bind position accepted: SQLite's SQLITE_MAX_VARIABLE_NUMBER default
// for ?NNN, and the wire-protocol limit of PostgreSQL and MySQL otherwise. A
// larger number is an error in the database, so the statement is not buffered.
const (
	maxOrdinalSQLite = 32766
	maxOrdinal       = 65535
)

// tokKind is the lexical class of a token.
type tokKind uint8

const (
	tkEOF     tokKind = iota
	tkIdent           // unquoted identifier or keyword
	tkQIdent          // "quoted", `quoted` or [quoted] identifier
	tkInt             // decimal integer digits, without sign
	tkDec             // decimal number with a '.', no exponent, without sign
	tkStr             // plain '...' string without backslashes
	tkParam           // a placeholder
	tkOp              // punctuation or operator: one byte, or "::"
	tkComment         // -- or /* */ comment; never given to the recognizer
	// tkOther is lexically meaningful but never an operand the buffer takes:
	// exponent, hex or malformed numbers; E'', X'', B'', N'', dollar-quoted
	// and backslash strings; @@variables; stray $; out-of-range
	// placeholders; and anything unterminated (which runs to the end).
	tkOther
)

// paramForm is the syntax of one placeholder.
type paramForm uint8

const (
	pfNone       paramForm = iota
	pfPositional           // ?
	pfNumbered             // ?NNN
	pfDollar               // $NNN (not SQLite)
	pfNamed                // :name, @name, and $name in SQLite
)

// token is one lexeme of the query: its byte range and what the lexer learnt.
type token struct {
	start, end int
	kind       tokKind
	// amb marks text the supported dialects would lex differently; see the
	// package comment above.
	amb  bool
	form paramForm
	// num is N for ?N and $N as lexed, and the bind ordinal once bound.
	num int
}

// lexer splits a query into tokens, one call to next at a time. It never
// fails: anything it cannot read becomes a tkOther token, and every call but
// the one returning tkEOF consumes at least one byte.
type lexer struct {
	s      string
	pos    int
	sqlite bool // $NNN and $name are SQLite named parameters, not $N / dollar quotes
}

// isSpace: the whitespace of every dialect. \v is not, because PostgreSQL
// before 16 rejects it, so a statement holding one is not buffered.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isIdentStart: every byte of a non-ASCII character counts as a letter, as in
// PostgreSQL, MySQL and SQLite.
func isIdentStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// next returns the next token, comments included.
func (l *lexer) next() token {
	s := l.s
	i := l.pos
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	t := token{start: i, end: i}
	if i >= len(s) {
		l.pos = i
		return t
	}
	c := s[i]
	var nc byte // the byte after c, or 0
	if i+1 < len(s) {
		nc = s[i+1]
	}
	j := i + 1
	switch {
	case isIdentStart(c):
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
		t.kind = tkIdent
		if j == i+1 && nc == '\'' && strings.IndexByte("eExXbBnN", c) >= 0 {
			// E'...' (backslash escapes, PostgreSQL), X'..', B'..', N'..'.
			var bs, ok bool
			j, bs, ok = scanQuoted(s, i+1, '\'', c == 'e' || c == 'E')
			t.kind, t.amb = tkOther, bs || !ok
		}
	case isDigit(c) || c == '.' && isDigit(nc):
		j, t.kind = scanNumber(s, i)
	case c == '\'':
		var bs, ok bool
		j, bs, ok = scanQuoted(s, i, '\'', false)
		t.kind = tkStr
		if bs || !ok {
			// MySQL reads a backslash as an escape, PostgreSQL and SQLite
			// as itself: where the string ends is in doubt.
			t.kind, t.amb = tkOther, true
		}
	case c == '"' || c == '`':
		var bs, ok bool
		j, bs, ok = scanQuoted(s, i, c, false)
		t.kind, t.amb = tkQIdent, bs // "..." is a string in MySQL, with escapes
		if !ok {
			t.kind, t.amb = tkOther, true
		}
	case c == '[':
		if k := strings.IndexByte(s[i+1:], ']'); k >= 0 {
			j, t.kind = i+1+k+1, tkQIdent
		} else {
			j, t.kind, t.amb = len(s), tkOther, true
		}
	case c == '-' && nc == '-':
		j = len(s)
		if k := strings.IndexByte(s[i:], '\n'); k >= 0 {
			j = i + k
		}
		t.kind = tkComment
		// MySQL only starts a comment at "-- " (a space or control
		// character after the dashes): "a--1" is a - (-1) there.
		t.amb = i+2 >= len(s) || !isSpace(s[i+2])
		// PostgreSQL also ends it at a lone \r, SQLite and MySQL do not.
		for k := i + 2; k < j && !t.amb; k++ {
			t.amb = s[k] == '\r' && k+1 < j
		}
	case c == '/' && nc == '*':
		j, t.amb = scanBlockComment(s, i)
		t.kind = tkComment
		if j < 0 { // unterminated: an error everywhere
			j, t.kind, t.amb = len(s), tkOther, true
		}
	case c == '?':
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		t.kind, t.form = tkParam, pfPositional
		if j > i+1 {
			t.form = pfNumbered
			limit := maxOrdinal
			if l.sqlite {
				limit = maxOrdinalSQLite
			}
			var ok bool
			if t.num, ok = smallAtoi(s[i+1:j], limit); !ok {
				t.kind, t.form = tkOther, pfNone
			}
		}
	case c == ':':
		switch {
		case nc == ':': // PostgreSQL cast, not a :name
			j = i + 2
			t.kind = tkOp
		case isIdentChar(nc):
			j = identEnd(s, i+1)
			t.kind, t.form = tkParam, pfNamed
		default:
			t.kind = tkOp
		}
	case c == '@':
		switch {
		case nc == '@': // MySQL @@system_variable
			j = identEnd(s, i+2)
			t.kind = tkOther
		case isIdentChar(nc):
			j = identEnd(s, i+1)
			t.kind, t.form = tkParam, pfNamed
		default:
			t.kind = tkOp
		}
	case c == '$':
		j, t = l.dollar(i, t)
	default:
		t.kind = tkOp
	}
	if j > len(s) {
		j = len(s)
	}
	l.pos, t.end = j, j
	return t
}

// dollar lexes a token starting with '$' at i: a SQLite named parameter, a
// $N placeholder, or a PostgreSQL $tag$ dollar-quoted string.
func (l *lexer) dollar(i int, t token) (int, token) {
	s := l.s
	if l.sqlite {
		if i+1 < len(s) && isIdentChar(s[i+1]) {
			t.kind, t.form = tkParam, pfNamed
			return identEnd(s, i+1), t
		}
		t.kind = tkOther
		return i + 1, t
	}
	if i+1 < len(s) && isDigit(s[i+1]) {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		n, ok := smallAtoi(s[i+1:j], maxOrdinal)
		if j < len(s) && isIdentChar(s[j]) {
			// "$1abc": trailing junk after a parameter is an error in
			// PostgreSQL.
			j, ok = identEnd(s, j), false
		}
		if ok {
			t.kind, t.form, t.num = tkParam, pfDollar, n
		} else {
			t.kind = tkOther
		}
		return j, t
	}
	// $tag$ ... $tag$: the tag is an identifier without '$' (possibly empty).
	k := i + 1
	for k < len(s) && isIdentChar(s[k]) && s[k] != '$' {
		k++
	}
	// Dollar-quoted text is usually a function body or a DO block: it is
	// code, so its words go to names (amb) to keep barriers conservative.
	t.kind, t.amb = tkOther, true
	if k < len(s) && s[k] == '$' {
		delim := s[i : k+1]
		if m := strings.Index(s[k+1:], delim); m >= 0 {
			return k + 1 + m + len(delim), t
		}
		return len(s), t // unterminated
	}
	// "$abc" is an identifier in MySQL, an error in PostgreSQL.
	return k, t
}

// identEnd returns the end of the run of identifier characters at i.
func identEnd(s string, i int) int {
	for i < len(s) && isIdentChar(s[i]) {
		i++
	}
	return i
}

// scanQuoted scans a string or quoted identifier whose opening quote q is at
// s[i]. A doubled quote stands for one; with bsEsc a backslash escapes the
// next byte. It returns the end (after the closing quote, or len(s) when
// unterminated), whether the body has a backslash, and whether it was closed.
func scanQuoted(s string, i int, q byte, bsEsc bool) (end int, backslash, closed bool) {
	j := i + 1
	if bsEsc {
		for j < len(s) {
			switch s[j] {
			case '\\':
				backslash = true
				j += 2
				continue
			case q:
				if j+1 < len(s) && s[j+1] == q {
					j += 2
					continue
				}
				return j + 1, backslash, true
			}
			j++
		}
		return len(s), backslash, false
	}
	for {
		k := strings.IndexByte(s[j:], q)
		if k < 0 {
			return len(s), backslash || strings.IndexByte(s[j:], '\\') >= 0, false
		}
		backslash = backslash || strings.IndexByte(s[j:j+k], '\\') >= 0
		j += k + 1
		if j < len(s) && s[j] == q {
			j++
			continue
		}
		return j, backslash, true
	}
}

// scanBlockComment scans a /* */ comment at s[i], nesting as PostgreSQL
// does. It returns the end, or -1 when unterminated, and whether the comment
// is read differently elsewhere: nested (MySQL and SQLite do not nest) or
// MySQL's executable /*! ... */ (and MariaDB's /*M! ... */).
func scanBlockComment(s string, i int) (end int, amb bool) {
	j := i + 2
	amb = strings.HasPrefix(s[j:], "!") || strings.HasPrefix(s[j:], "M!")
	depth := 1
	for j+1 < len(s) {
		switch {
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j, amb
			}
		case s[j] == '/' && s[j+1] == '*':
			depth++
			amb = true
			j += 2
		default:
			j++
		}
	}
	return -1, true
}

// scanNumber scans a numeric literal at s[i] (a digit, or '.' and a digit).
// Integers and plain decimals are operands; exponents, hex, binary and octal
// forms, digit separators and trailing letters make it tkOther.
func scanNumber(s string, i int) (int, tokKind) {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	kind := tkInt
	if j < len(s) && s[j] == '.' {
		kind = tkDec
		j++
		for j < len(s) && isDigit(s[j]) {
			j++
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		kind = tkOther
		j++
		if j+1 < len(s) && (s[j] == '+' || s[j] == '-') && isDigit(s[j+1]) {
			j++
		}
	}
	if j < len(s) && isIdentChar(s[j]) {
		kind = tkOther
		j = identEnd(s, j)
	}
	return j, kind
}

// smallAtoi parses the digits of a bind position: 1 <= n <= limit.
func smallAtoi(d string, limit int) (int, bool) {
	n := 0
	for i := 0; i < len(d); i++ {
		n = n*10 + int(d[i]-'0')
		if n > limit {
			return 0, false
		}
	}
	return n, n >= 1
}

// asciiLower lower-cases ASCII letters only, as PostgreSQL and SQLite fold
// unquoted identifiers (and as the rules file does). It does not allocate
// when there is nothing to change or when s is a known keyword, which is
// most of the upper-case words of a statement.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			if kw, ok := lookupKeyword(s); ok {
				return kw.word
			}
			b := []byte(s)
			for k := i; k < len(b); k++ {
				if c := b[k]; 'A' <= c && c <= 'Z' {
					b[k] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// kwIs reports whether s is the keyword kw (given in lower case), comparing
// ASCII letters without case. Unicode folding would be wrong: PostgreSQL does
// not read "ſet" (long s) as SET.
func kwIs(s, kw string) bool {
	if len(s) != len(kw) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != kw[i] {
			return false
		}
	}
	return true
}

// keyword is an entry of the keyword table.
type keyword struct {
	word string // lower case
	// reserved: the word may not be an unquoted table or column name in a
	// bufferable statement. Each is a keyword, a niladic function
	// (CURRENT_USER, USER ...) or a statement modifier (IGNORE,
	// LOW_PRIORITY) in at least one dialect, so reading it as a name could
	// misread the statement.
	reserved bool
}

// keywords holds the reserved words and, so that lower-casing them for names
// costs no allocation, other common keywords (which may be names).
var keywords = func() map[string]keyword {
	m := map[string]keyword{}
	// PostgreSQL's reserved words (SQL key words appendix, both reserved
	// columns), and the statement modifiers and operators of MySQL and
	// SQLite that could sit where a name is expected.
	for _, w := range strings.Fields(`all analyse analyze and any array as asc
		asymmetric authorization between binary both by case cast check collate
		collation column concurrently constraint create cross current_catalog
		current_date current_role current_schema current_time current_timestamp
		current_user default deferrable delayed delete desc distinct div do drop
		else end escape except exists false fetch for foreign freeze from full
		glob grant group having high_priority ignore ilike in initially inner
		insert intersect interval into is isnull join lateral leading left like
		limit localtime localtimestamp low_priority match mod natural not notnull
		null offset on only or order outer over overlaps placing primary quick
		references regexp replace returning right rlike row select session_user
		set similar some symmetric system_user table tablesample then to
		trailing true union unique unknown update user using values variadic
		verbose when where window with xor`) {
		m[w] = keyword{word: w, reserved: true}
	}
	for _, w := range strings.Fields(`abort add alter avg begin call chain
		coalesce commit conflict count deallocate duplicate execute explain first
		function if index key last length lock lower max min mode nothing now
		nowait nulls prepare procedure release rename rollback savepoint share
		show start sum temp temporary transaction trigger truncate upper vacuum
		value view work`) {
		if _, ok := m[w]; !ok {
			m[w] = keyword{word: w}
		}
	}
	return m
}()

// maxKeywordLen is the length of the longest keyword.
const maxKeywordLen = 17

// lookupKeyword finds s, compared without ASCII case, in keywords.
func lookupKeyword(s string) (keyword, bool) {
	if len(s) < 2 || len(s) > maxKeywordLen {
		return keyword{}, false
	}
	var b [maxKeywordLen]byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case 'a' <= c && c <= 'z' || c == '_':
		default:
			return keyword{}, false // keywords are letters and '_' only
		}
		b[i] = c
	}
	kw, ok := keywords[string(b[:len(s)])]
	return kw, ok
}

func isReserved(s string) bool {
	kw, _ := lookupKeyword(s)
	return kw.reserved
}

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
	// unsafe: the statement must not be buffered whatever its shape.
	unsafe bool

	names   []string
	nameSet map[string]struct{}

	nVar     int // largest bind position used so far (SQLite's nVar)
	forms    uint8
	style    paramStyle
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
	l := asciiLower(n)
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
	if c.style == paramNone {
		switch t.form {
		case pfPositional, pfNumbered:
			c.style = paramQuestion
		case pfDollar:
			c.style = paramDollar
		default:
			c.style = paramNamed
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
		c.unsafe = true
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

// classify classifies one SQL text. sqliteParams says the base driver is
// SQLite, where $NNN and $name are named parameters rather than PostgreSQL's
// $N placeholders and dollar quotes. It never returns nil and never panics:
// what it does not fully understand is stmtOther.
//
// Every result, bufferable or not, carries names (every identifier and
// keyword outside strings and comments, plus the words of dialect-dependent
// text), the transaction effect (beginsTx, endsTx; never both), and the
// placeholder style and count, numbered the way SQLite numbers them. The
// shape fields (schema, table, sets, where, cols, rows) are set only for
// stmtUpdate and stmtInsert.
func classify(query string, sqliteParams bool) *classified {
	c := classifier{q: query, sqlite: sqliteParams}
	res := &classified{}
	lx := lexer{s: query, sqlite: sqliteParams}
	var buf [48]token
	toks := buf[:0]
	for {
		t := lx.next()
		text := query[t.start:t.end]
		if t.amb {
			c.unsafe = true
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
	res.names = c.names
	res.style = c.style
	res.numParams = c.nVar
	if c.forms&(c.forms-1) != 0 {
		// Mixed placeholder syntaxes: how a driver binds them is anybody's guess.
		c.unsafe = true
	}
	if !utf8.ValidString(query) || strings.IndexByte(query, 0) >= 0 {
		// PostgreSQL rejects such text; SQLite may stop at a NUL.
		c.unsafe = true
	}
	p := parser{q: &query, toks: toks}
	p.txState(res)
	first := p.word(0)
	switch {
	case c.unsafe:
	case kwIs(first, "update"):
		p.i = 1
		if p.update(res) {
			res.kind = stmtUpdate
		} else {
			res.schema, res.table, res.sets, res.where = nil, ident{}, nil, nil
		}
	case kwIs(first, "insert"):
		p.i = 1
		if p.insert(res) {
			res.kind = stmtInsert
		} else {
			res.schema, res.table, res.cols, res.rows = nil, ident{}, nil, nil
		}
	}
	return res
}

// parser recognizes the bufferable shapes over the tokens of one statement
// (comments removed; the last token is tkEOF). Every method returns false as
// soon as the text leaves the grammar; the caller then discards the result.
type parser struct {
	// q points to the query rather than holding it: strings sliced from it
	// flow into the result, and escape analysis would otherwise move toks
	// (reached through the same pointer) to the heap as well.
	q    *string
	toks []token
	i    int
	// seen holds the fold keys of the columns so far, once there are many.
	seen map[string]struct{}
}

// word returns the text of token k when it is an unquoted identifier.
func (p *parser) word(k int) string {
	if k < len(p.toks) && p.toks[k].kind == tkIdent {
		return (*p.q)[p.toks[k].start:p.toks[k].end]
	}
	return ""
}

// Effects of a statement on the connection's transaction state.
const (
	txNone  = 0
	txBegin = 1  // in a transaction afterwards
	txEnd   = -1 // out of one afterwards
)

// txState sets beginsTx and endsTx. A text of several statements is
// followed statement by statement and the last one that matters decides.
// There, END is ignored: it also closes the BEGIN ... END bodies of SQLite
// triggers, MySQL procedures and PostgreSQL BEGIN ATOMIC functions, which
// hold ';'. Any error of this kind leaves the connection believed in a
// transaction, which only stops buffering.
func (p *parser) txState(res *classified) {
	// A ';' followed by more text starts another statement (EOF is always
	// the last token, so k+1 is in range).
	next := func(k int) bool {
		t := &p.toks[k]
		return t.kind == tkOp && p.text(t) == ";" && p.toks[k+1].kind != tkEOF
	}
	multi := false
	for k := range p.toks {
		if next(k) {
			multi = true
			break
		}
	}
	effect := p.txEffect(0, !multi)
	for k := 0; multi && k < len(p.toks); k++ {
		if next(k) {
			if e := p.txEffect(k+1, false); e != txNone {
				effect = e
			}
		}
	}
	res.beginsTx, res.endsTx = effect == txBegin, effect == txEnd
}

// txEffect is the effect of the statement starting at token k: BEGIN, START
// TRANSACTION and SAVEPOINT begin a transaction; COMMIT, END (when allowEnd),
// ROLLBACK other than ROLLBACK TO, ABORT and PREPARE TRANSACTION end it.
// "... AND CHAIN" ends one and starts the next at once: the connection is
// still in a transaction afterwards, so it counts as beginning one.
func (p *parser) txEffect(k int, allowEnd bool) int {
	w := p.word(k)
	switch {
	case kwIs(w, "begin") || kwIs(w, "savepoint"):
		return txBegin
	case kwIs(w, "start"):
		if kwIs(p.word(k+1), "transaction") {
			return txBegin
		}
		return txNone
	case kwIs(w, "prepare"):
		if kwIs(p.word(k+1), "transaction") {
			return txEnd
		}
		return txNone
	case kwIs(w, "commit") || kwIs(w, "abort") || allowEnd && kwIs(w, "end"):
	case kwIs(w, "rollback"):
		n := k + 1
		if w := p.word(n); kwIs(w, "work") || kwIs(w, "transaction") || kwIs(w, "tran") {
			n++
		}
		if kwIs(p.word(n), "to") { // ROLLBACK TO SAVEPOINT stays in the transaction
			return txNone
		}
	default:
		return txNone
	}
	for n := k + 1; n+1 < len(p.toks); n++ {
		if t := &p.toks[n]; t.kind == tkOp && p.text(t) == ";" {
			break
		}
		if kwIs(p.word(n), "and") && kwIs(p.word(n+1), "chain") {
			return txBegin
		}
	}
	return txEnd
}

func (p *parser) peek() *token { return &p.toks[p.i] }

func (p *parser) advance() {
	if p.toks[p.i].kind != tkEOF {
		p.i++
	}
}

func (p *parser) text(t *token) string { return (*p.q)[t.start:t.end] }

// keyword consumes the keyword kw (lower case) if it comes next.
func (p *parser) keyword(kw string) bool {
	t := p.peek()
	if t.kind == tkIdent && kwIs(p.text(t), kw) {
		p.advance()
		return true
	}
	return false
}

// op consumes the operator or punctuation op if it comes next.
func (p *parser) op(op string) bool {
	t := p.peek()
	if t.kind == tkOp && p.text(t) == op {
		p.advance()
		return true
	}
	return false
}

// maxIdentLen is PostgreSQL's identifier length (NAMEDATALEN-1 bytes). It
// silently truncates longer names, so two different long names in the text
// could be one column: such statements are not buffered.
const maxIdentLen = 63

// ident consumes one identifier usable as a table or column name: quoted and
// not empty, or unquoted and not reserved; at most maxIdentLen bytes.
func (p *parser) ident() (ident, bool) {
	t := p.peek()
	raw := p.text(t)
	switch t.kind {
	case tkIdent:
		if isReserved(raw) || len(raw) > maxIdentLen {
			return ident{}, false
		}
		p.advance()
		return ident{norm: asciiLower(raw), raw: raw}, true
	case tkQIdent:
		norm := unquoteIdent(raw)
		if norm == "" || len(norm) > maxIdentLen {
			return ident{}, false
		}
		p.advance()
		return ident{norm: norm, raw: raw, quoted: true}, true
	}
	return ident{}, false
}

// table consumes name or schema.name (no alias, no ONLY, no *).
func (p *parser) table(res *classified) bool {
	id, ok := p.ident()
	if !ok {
		return false
	}
	if p.op(".") {
		name, ok := p.ident()
		if !ok {
			return false
		}
		schema := id
		res.schema, id = &schema, name
	}
	res.table = id
	return true
}

// column consumes col or tbl.col, where tbl is the statement's table as
// written (compared by norm), and returns col.
func (p *parser) column(res *classified) (ident, bool) {
	id, ok := p.ident()
	if !ok {
		return ident{}, false
	}
	if !p.op(".") {
		return id, true
	}
	if id.norm != res.table.norm {
		return ident{}, false
	}
	return p.ident()
}

// tryColumn is column, leaving the position unchanged when there is none.
func (p *parser) tryColumn(res *classified) (ident, bool) {
	save := p.i
	id, ok := p.column(res)
	if !ok {
		p.i = save
	}
	return id, ok
}

// valueKind tells what value parsed; deltas must be numeric.
type valueKind uint8

const (
	vkNone    valueKind = iota
	vkParam             // a placeholder
	vkNumber            // an integer or decimal literal
	vkLiteral           // NULL, TRUE, FALSE or a string
)

// value consumes one operand: a placeholder, a signed integer or decimal, a
// plain string, NULL, TRUE or FALSE.
func (p *parser) value() (valueSrc, valueKind) {
	t := p.peek()
	switch t.kind {
	case tkParam:
		p.advance()
		v := valueSrc{ordinal: t.num}
		if t.form == pfNamed {
			v.name = (*p.q)[t.start+1 : t.end]
		}
		return v, vkParam
	case tkInt, tkDec:
		p.advance()
		return number(p.text(t), false)
	case tkStr:
		p.advance()
		raw := p.text(t)
		s := raw[1 : len(raw)-1]
		if strings.Contains(s, "''") {
			s = strings.ReplaceAll(s, "''", "'")
		}
		return valueSrc{isLit: true, lit: s}, vkLiteral
	case tkOp:
		op := p.text(t)
		if op != "-" && op != "+" {
			return valueSrc{}, vkNone
		}
		n := &p.toks[p.i+1] // tkOp is never the last token
		if n.kind != tkInt && n.kind != tkDec {
			return valueSrc{}, vkNone
		}
		p.advance()
		p.advance()
		return number(p.text(n), op == "-")
	case tkIdent:
		w := p.text(t)
		var v valueSrc
		switch {
		case kwIs(w, "null"):
			v = valueSrc{isLit: true}
		case kwIs(w, "true"):
			v = valueSrc{isLit: true, lit: true}
		case kwIs(w, "false"):
			v = valueSrc{isLit: true, lit: false}
		default:
			return valueSrc{}, vkNone
		}
		p.advance()
		return v, vkLiteral
	}
	return valueSrc{}, vkNone
}

// number makes the literal of an unsigned integer token: int64 for integers
// that fit; others, and decimals, are not bufferable.
func number(digits string, neg bool) (valueSrc, valueKind) {
	if strings.IndexByte(digits, '.') < 0 {
		u, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || u > 1<<63 || u == 1<<63 && !neg {
			return valueSrc{}, vkNone
		}
		n := int64(u) // 1<<63 wraps to MinInt64, which is -(1<<63): right for neg
		if neg && n != -1<<63 {
			n = -n
		}
		return valueSrc{isLit: true, lit: n}, vkNumber
	}
	// A decimal literal is not buffered: its type is the database's to decide
	// (numeric in PostgreSQL, REAL in SQLite), and a bound string or float in
	// its place would not always mean the same (bigint + 1.5 is numeric in
	// PostgreSQL, but bigint + '1.5' is an error). Bound decimals are buffered.
	return valueSrc{}, vkNone
}

// end accepts an optional ';' and then the end of the text.
func (p *parser) end() bool {
	p.op(";")
	return p.peek().kind == tkEOF
}

// sameCol reports whether two columns could be one: conservative (Unicode
// case folding, so "A" and a count as one: MySQL and SQLite ignore case)
// because it only ever rejects.
func sameCol(a, b ident) bool { return strings.EqualFold(a.norm, b.norm) }

// foldKey maps a name to a key that is equal for two names exactly when
// strings.EqualFold says they are: each rune becomes the smallest rune of its
// case-folding orbit.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// fresh reports whether col is not (by sameCol) one of the columns already
// in res.sets, res.where and res.cols, and records it: the caller adds col
// to one of those lists next. Small statements compare linearly; past
// smallNames columns a map keeps a statement with thousands of them linear.
func (p *parser) fresh(res *classified, col ident) bool {
	if p.seen == nil {
		if len(res.sets)+len(res.where)+len(res.cols) < smallNames {
			for _, s := range res.sets {
				if sameCol(s.col, col) {
					return false
				}
			}
			for _, w := range res.where {
				if sameCol(w.col, col) {
					return false
				}
			}
			for _, c := range res.cols {
				if sameCol(c, col) {
					return false
				}
			}
			return true
		}
		p.seen = make(map[string]struct{})
		for _, s := range res.sets {
			p.seen[foldKey(s.col.norm)] = struct{}{}
		}
		for _, w := range res.where {
			p.seen[foldKey(w.col.norm)] = struct{}{}
		}
		for _, c := range res.cols {
			p.seen[foldKey(c.norm)] = struct{}{}
		}
	}
	k := foldKey(col.norm)
	if _, dup := p.seen[k]; dup {
		return false
	}
	p.seen[k] = struct{}{}
	return true
}

// update recognizes, after UPDATE:
//
//	tbl SET c = v [, d = d + v | d = d - v | d = v + d ...]
//	WHERE k = v [AND k2 = v ...] [;]
func (p *parser) update(res *classified) bool {
	if !p.table(res) || !p.keyword("set") {
		return false
	}
	// Size both lists in one allocation each: commas before WHERE bound
	// the SET list, ANDs after it the WHERE list.
	nSets, nWhere, inWhere := 1, 1, false
	for k := p.i; k < len(p.toks); k++ {
		t := &p.toks[k]
		switch {
		case t.kind == tkOp && !inWhere && p.text(t) == ",":
			nSets++
		case t.kind == tkIdent && !inWhere && kwIs(p.text(t), "where"):
			inWhere = true
		case t.kind == tkIdent && inWhere && kwIs(p.text(t), "and"):
			nWhere++
		}
	}
	res.sets = make([]setClause, 0, nSets)
	res.where = make([]keyEq, 0, nWhere)
	for {
		col, ok := p.column(res)
		if !ok || !p.op("=") {
			return false
		}
		if !p.fresh(res, col) {
			return false
		}
		sc := setClause{col: col}
		var kind valueKind
		if rc, ok := p.tryColumn(res); ok {
			// c = c + v or c = c - v: the same column exactly, by norm.
			if rc.norm != col.norm {
				return false
			}
			switch {
			case p.op("+"):
				sc.delta = 1
			case p.op("-"):
				sc.delta = -1
			default:
				return false
			}
			if sc.val, kind = p.value(); kind != vkParam && kind != vkNumber {
				return false
			}
		} else {
			if sc.val, kind = p.value(); kind == vkNone {
				return false
			}
			if p.op("+") { // c = v + c
				if rc, ok := p.column(res); !ok || rc.norm != col.norm {
					return false
				}
				if kind != vkParam && kind != vkNumber {
					return false
				}
				sc.delta = 1
			}
		}
		res.sets = append(res.sets, sc)
		if !p.op(",") {
			break
		}
	}
	if !p.keyword("where") {
		return false
	}
	for {
		var k keyEq
		var kind valueKind
		if col, ok := p.tryColumn(res); ok {
			if !p.op("=") {
				return false
			}
			k.col = col
			k.val, kind = p.value()
		} else {
			k.val, kind = p.value()
			if kind == vkNone || !p.op("=") {
				return false
			}
			if k.col, ok = p.column(res); !ok {
				return false
			}
		}
		// k = NULL matches no row: the database must say so.
		if kind == vkNone || k.val.isLit && k.val.lit == nil {
			return false
		}
		// A key twice, or a key the statement also sets (it would change
		// its own key), is not bufferable.
		if !p.fresh(res, k.col) {
			return false
		}
		res.where = append(res.where, k)
		if !p.keyword("and") {
			break
		}
	}
	return p.end()
}

// insert recognizes, after INSERT:
//
//	INTO tbl (c1, c2 ...) VALUES (v, v ...) [, (v, v ...) ...] [;]
func (p *parser) insert(res *classified) bool {
	if !p.keyword("into") || !p.table(res) || !p.op("(") {
		return false
	}
	nCols := 1
	for k := p.i; k < len(p.toks) && !(p.toks[k].kind == tkOp && p.text(&p.toks[k]) == ")"); k++ {
		if p.toks[k].kind == tkOp && p.text(&p.toks[k]) == "," {
			nCols++
		}
	}
	res.cols = make([]ident, 0, nCols)
	for {
		col, ok := p.ident()
		if !ok {
			return false
		}
		if !p.fresh(res, col) {
			return false
		}
		res.cols = append(res.cols, col)
		if !p.op(",") {
			break
		}
	}
	if !p.op(")") || !p.keyword("values") {
		return false
	}
	// Every row opens with '(' and no value may hold one, so counting them
	// sizes the rows; all values share one backing array. A valid statement
	// has a token per value, which bounds the allocation.
	nRows := 0
	for k := p.i; k < len(p.toks); k++ {
		if p.toks[k].kind == tkOp && p.text(&p.toks[k]) == "(" {
			nRows++
		}
	}
	if nRows == 0 || nRows > len(p.toks)/len(res.cols) {
		return false
	}
	vals := make([]valueSrc, nRows*len(res.cols))
	res.rows = make([][]valueSrc, 0, nRows)
	for {
		if !p.op("(") || len(res.rows) == nRows {
			return false
		}
		off := len(res.rows) * len(res.cols)
		row := vals[off : off : off+len(res.cols)]
		for {
			v, kind := p.value()
			if kind == vkNone || len(row) == len(res.cols) {
				return false
			}
			row = append(row, v)
			if !p.op(",") {
				break
			}
		}
		if !p.op(")") || len(row) != len(res.cols) {
			return false
		}
		res.rows = append(res.rows, row)
		if !p.op(",") {
			break
		}
	}
	return p.end()
}
