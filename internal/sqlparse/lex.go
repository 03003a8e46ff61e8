package sqlparse

// This file is the lexer: tokens, quoting, comments, numbers and keywords.

import (
	"strings"
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

// next returns the next token, comments included. It dispatches on the
// first byte; identifiers and operators, most of any statement, are lexed
// here, the rarer forms by the lex* helpers below. Each helper is given the
// token starting at t.start, sets its kind (and amb, form, num) and returns
// its end; t is passed by pointer so the hot loop copies no token.
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
		j = identEnd(s, j)
		t.kind = tkIdent
		if j == i+1 && nc == '\'' && strings.IndexByte("eExXbBnN", c) >= 0 {
			j = lexPrefixedString(s, &t)
		}
	case isDigit(c) || c == '.' && isDigit(nc):
		j, t.kind = scanNumber(s, i)
	case c == '\'':
		j = lexString(s, &t)
	case c == '"' || c == '`':
		j = lexQuotedIdent(s, &t)
	case c == '[':
		j = lexBracketIdent(s, &t)
	case c == '-' && nc == '-':
		j = lexLineComment(s, &t)
	case c == '/' && nc == '*':
		j = lexBlockComment(s, &t)
	case c == '?':
		j = l.lexQuestionParam(&t)
	case c == ':':
		j = lexColon(s, &t)
	case c == '@':
		j = lexAt(s, &t)
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

// lexPrefixedString lexes a one-letter-prefixed string: E'...' (backslash
// escapes, PostgreSQL), X'..', B'..' or N'..'. None is an operand.
func lexPrefixedString(s string, t *token) int {
	i := t.start
	j, bs, ok := scanQuoted(s, i+1, '\'', s[i] == 'e' || s[i] == 'E')
	t.kind, t.amb = tkOther, bs || !ok
	return j
}

// lexString lexes a '...' string: tkStr when it is plain.
func lexString(s string, t *token) int {
	j, bs, ok := scanQuoted(s, t.start, '\'', false)
	t.kind = tkStr
	if bs || !ok {
		// MySQL reads a backslash as an escape, PostgreSQL and SQLite
		// as itself: where the string ends is in doubt.
		t.kind, t.amb = tkOther, true
	}
	return j
}

// lexQuotedIdent lexes a "..." or `...` quoted identifier.
func lexQuotedIdent(s string, t *token) int {
	j, bs, ok := scanQuoted(s, t.start, s[t.start], false)
	t.kind, t.amb = tkQIdent, bs // "..." is a string in MySQL, with escapes
	if !ok {
		t.kind, t.amb = tkOther, true
	}
	return j
}

// lexBracketIdent lexes a [...] quoted identifier (no escapes).
func lexBracketIdent(s string, t *token) int {
	i := t.start
	if k := strings.IndexByte(s[i+1:], ']'); k >= 0 {
		t.kind = tkQIdent
		return i + 1 + k + 1
	}
	t.kind, t.amb = tkOther, true
	return len(s)
}

// lexLineComment lexes a -- comment, up to the end of the line.
func lexLineComment(s string, t *token) int {
	i := t.start
	j := len(s)
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
	return j
}

// lexBlockComment lexes a /* */ comment.
func lexBlockComment(s string, t *token) int {
	j, amb := scanBlockComment(s, t.start)
	t.kind, t.amb = tkComment, amb
	if j < 0 { // unterminated: an error everywhere
		j, t.kind, t.amb = len(s), tkOther, true
	}
	return j
}

// lexQuestionParam lexes a ? or ?NNN placeholder; an out-of-range ?NNN is
// tkOther.
func (l *lexer) lexQuestionParam(t *token) int {
	s, i := l.s, t.start
	j := i + 1
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
	return j
}

// lexColon lexes a token starting with ':': the PostgreSQL cast "::", a
// :name placeholder, or a lone ':' operator.
func lexColon(s string, t *token) int {
	i := t.start
	switch {
	case i+1 < len(s) && s[i+1] == ':': // PostgreSQL cast, not a :name
		t.kind = tkOp
		return i + 2
	case i+1 < len(s) && isIdentChar(s[i+1]):
		t.kind, t.form = tkParam, pfNamed
		return identEnd(s, i+1)
	}
	t.kind = tkOp
	return i + 1
}

// lexAt lexes a token starting with '@': a MySQL @@system_variable, an
// @name placeholder, or a lone '@' operator.
func lexAt(s string, t *token) int {
	i := t.start
	switch {
	case i+1 < len(s) && s[i+1] == '@': // MySQL @@system_variable
		t.kind = tkOther
		return identEnd(s, i+2)
	case i+1 < len(s) && isIdentChar(s[i+1]):
		t.kind, t.form = tkParam, pfNamed
		return identEnd(s, i+1)
	}
	t.kind = tkOp
	return i + 1
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

// FoldASCII lower-cases ASCII letters only, as PostgreSQL and SQLite fold
// unquoted identifiers (and as the rules file does). It does not allocate
// when there is nothing to change or when s is a known keyword, which is
// most of the upper-case words of a statement.
func FoldASCII(s string) string {
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
