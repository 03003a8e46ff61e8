package sqlparse

// This file recognizes the bufferable shapes (UPDATE and INSERT) over the
// tokens the classifier produced.

import (
	"strconv"
	"strings"
	"unicode"
)

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
	// sqlite: the base database is SQLite, which refuses "::" casts and an
	// UPDATE alias without AS.
	sqlite bool
	// seen holds the fold keys of the columns so far, once there are many.
	seen map[string]struct{}
	// odku: the SET list being read is MySQL's ON DUPLICATE KEY UPDATE,
	// where the proposed row's value of c is VALUES(c), or rowAlias.c
	// after VALUES (...) AS rowAlias.
	odku     bool
	rowAlias *Ident
	// why, when not nil, receives the first reason the text leaves the
	// grammar (WhyNot). It is nil on the statement path, which never
	// builds a reason; it is a pointer so that the reasons, built from the
	// query's text, do not make the parser's own fields (toks) escape.
	why *string
}

// no records why the text is not a bufferable shape, when explaining, and
// returns false. Only the grammar's decisions call it, never a helper that
// backtracks, so the first reason recorded is the innermost one and final.
func (p *parser) no(why string) bool {
	if p.why != nil && *p.why == "" {
		*p.why = why
	}
	return false
}

// noAt is no with what (joined) and a description of the text at token k:
// "WHERE id = ...: a subquery". The reason is built only when explaining.
func (p *parser) noAt(k int, what ...string) bool {
	if p.why != nil && *p.why == "" {
		*p.why = strings.Join(what, "") + ": " + p.describe(k)
	}
	return false
}

// noTok is noAt for a place where a keyword was expected: the token is
// quoted as written.
func (p *parser) noTok(k int, what ...string) bool {
	if p.why != nil && *p.why == "" {
		tok := "the text ends there"
		if k < len(p.toks) && p.toks[k].kind != tkEOF {
			tok = strconv.Quote(clip(p.text(&p.toks[k])))
		}
		*p.why = strings.Join(what, "") + ": " + tok
	}
	return false
}

// describe says what the text at token k is, for a reason: a call, a
// subquery, or the token as written.
func (p *parser) describe(k int) string {
	if k >= len(p.toks) || p.toks[k].kind == tkEOF {
		return "the text ends there"
	}
	t := &p.toks[k]
	next := func(op string) bool {
		return k+1 < len(p.toks) && p.toks[k+1].kind == tkOp && p.text(&p.toks[k+1]) == op
	}
	switch {
	case t.kind == tkIdent && next("("):
		return "a call of " + p.text(t) + "()"
	case t.kind == tkOp && p.text(t) == "(" && kwIs(p.word(k+1), "select"):
		return "a subquery"
	case t.kind == tkOp && p.text(t) == "(":
		return "an expression in parentheses"
	case (t.kind == tkIdent || t.kind == tkQIdent) && next("."):
		return "the qualified name " + clip(p.text(t)+"."+p.text(&p.toks[k+2]))
	case t.kind == tkIdent && !isReserved(p.text(t)), t.kind == tkQIdent:
		return "column " + p.text(t)
	case t.kind == tkOther:
		return strconv.Quote(clip(p.text(t))) + " (not a plain number, string or placeholder)"
	}
	return strconv.Quote(clip(p.text(t)))
}

// nof is no with a reason joined from parts (built only when explaining).
func (p *parser) nof(parts ...string) bool {
	if p.why != nil && *p.why == "" {
		*p.why = strings.Join(parts, "")
	}
	return false
}

// noCond records a WHERE term whose operator, at the current token, is not
// "=".
func (p *parser) noCond() bool {
	if p.why == nil || *p.why != "" {
		return false
	}
	if w := p.word(p.i); kwIs(w, "in") {
		return p.no("WHERE has IN (several keys in one statement)")
	}
	return p.noAt(p.i, "WHERE has a condition other than column = value or column IS [NOT] NULL")
}

// clip shortens s for a reason.
func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// noEnd records why the text goes on where the statement should end:
// after the WHERE clause of an UPDATE, the VALUES rows of an INSERT or an
// upsert's DO UPDATE SET list (after is that clause, for the message).
func (p *parser) noEnd(after string) bool {
	if p.why == nil || *p.why != "" {
		return false
	}
	t := p.peek()
	w := p.word(p.i)
	prev := p.toks[max(p.i-1, 0)]
	switch {
	case t.kind == tkOp && p.text(t) == ";", prev.kind == tkOp && p.text(&prev) == ";":
		return p.no("several statements in one text")
	case kwIs(w, "or") && after == "WHERE":
		return p.no("WHERE has OR")
	case kwIs(w, "returning"):
		return p.no("RETURNING (the database's answer is needed)")
	case kwIs(w, "from"):
		return p.no("UPDATE ... FROM (a join)")
	case kwIs(w, "order"), kwIs(w, "limit"):
		return p.no(strings.ToUpper(w) + " after " + after)
	case kwIs(w, "where") && after == "DO UPDATE SET":
		return p.no("DO UPDATE ... WHERE (a condition the database decides)")
	}
	return p.noTok(p.i, "unexpected text after ", after)
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
func (p *parser) txState(res *Statement) {
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
	res.BeginsTx, res.EndsTx = effect == txBegin, effect == txEnd
	p.schemaAndSession(res)
}

// schemaAndSession sets res.DDL and res.Session from the first words of
// every statement of the text, and from any set_config call in it.
func (p *parser) schemaAndSession(res *Statement) {
	for k := 0; k < len(p.toks); k++ {
		if k == 0 || p.toks[k-1].kind == tkOp && p.text(&p.toks[k-1]) == ";" {
			p.statementStart(res, k)
		}
		if t := &p.toks[k]; t.kind == tkIdent && kwIs(p.text(t), "set_config") {
			name := "*"
			if k+2 < len(p.toks) && p.toks[k+1].kind == tkOp && p.text(&p.toks[k+1]) == "(" && p.toks[k+2].kind == tkStr {
				name = strings.ToLower(stringBody(p.text(&p.toks[k+2])))
			}
			res.Session = append(res.Session, name)
		}
	}
}

// statementStart looks at the statement that starts at token k.
func (p *parser) statementStart(res *Statement, k int) {
	w := p.word(k)
	switch {
	case kwIs(w, "create"), kwIs(w, "alter"), kwIs(w, "drop"), kwIs(w, "rename"):
		res.DDL = true
	case kwIs(w, "set"):
		n := p.word(k + 1)
		if kwIs(n, "local") || kwIs(n, "transaction") {
			return
		}
		if kwIs(n, "session") {
			if kwIs(p.word(k+2), "characteristics") {
				res.Session = append(res.Session, "*")
				return
			}
			n = p.word(k + 2)
		}
		res.Session = append(res.Session, settingName(n))
	case kwIs(w, "reset"):
		res.Session = append(res.Session, settingName(p.word(k+1)))
	case kwIs(w, "pragma"):
		res.Session = append(res.Session, settingName(p.word(k+1)))
	case kwIs(w, "discard"):
		res.Session = append(res.Session, "*")
	}
}

// settingName is a setting's lower-cased name; "*" for none or ALL.
func settingName(w string) string {
	if w == "" || kwIs(w, "all") {
		return "*"
	}
	return strings.ToLower(w)
}

// stringBody is a simple '...' literal's text without quotes ("" otherwise).
func stringBody(lit string) string {
	if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
		return ""
	}
	return strings.ReplaceAll(lit[1:len(lit)-1], "''", "'")
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
func (p *parser) ident() (Ident, bool) {
	t := p.peek()
	raw := p.text(t)
	switch t.kind {
	case tkIdent:
		if isReserved(raw) || len(raw) > maxIdentLen {
			return Ident{}, false
		}
		p.advance()
		return Ident{Norm: FoldASCII(raw), Raw: raw}, true
	case tkQIdent:
		norm := unquoteIdent(raw)
		if norm == "" || len(norm) > maxIdentLen {
			return Ident{}, false
		}
		p.advance()
		return Ident{Norm: norm, Raw: raw, Quoted: true}, true
	}
	return Ident{}, false
}

// table consumes name or schema.name (no alias, no ONLY, no *).
func (p *parser) table(res *Statement) bool {
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
		res.Schema, id = &schema, name
	}
	res.Table = id
	return true
}

// alias consumes an UPDATE's optional alias, AS a or (outside SQLite) a.
// The table's name no longer qualifies its columns then: both databases
// refuse t.c after UPDATE t AS a.
func (p *parser) alias(res *Statement) bool {
	as := p.keyword("as")
	if !as && (p.sqlite || p.peek().kind != tkIdent && p.peek().kind != tkQIdent) {
		return true // SET comes next, or the text fails later
	}
	id, ok := p.ident() // reserved words (SET among them) are no alias
	if !ok {
		return !as
	}
	alias := id // allocated only when there is an alias
	res.Alias = &alias
	return true
}

// column consumes col or q.col, where q is the statement's alias, or its
// table when it has none, as written (compared by norm), and returns col.
func (p *parser) column(res *Statement) (Ident, bool) {
	id, ok := p.ident()
	if !ok {
		return Ident{}, false
	}
	if !p.op(".") {
		return id, true
	}
	qual := res.Table.Norm
	if res.Alias != nil {
		qual = res.Alias.Norm
	}
	if id.Norm != qual {
		return Ident{}, false
	}
	return p.ident()
}

// tryColumn is column, leaving the position unchanged when there is none.
func (p *parser) tryColumn(res *Statement) (Ident, bool) {
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
	vkClock             // the current time (Clock)
)

// value consumes one operand: a placeholder, a signed integer or decimal, a
// plain string, NULL, TRUE or FALSE, optionally cast: v::type (not on
// SQLite, and not after a sign: -v::type is -(v::type), whose cast may
// fail where -v fits) or CAST(v AS type).
func (p *parser) value() (Operand, valueKind) {
	if kwIs(p.word(p.i), "cast") {
		return p.castValue()
	}
	signed := p.peek().kind == tkOp
	v, kind := p.plainValue()
	if kind == vkNone || !p.op("::") {
		return v, kind
	}
	if signed || p.sqlite {
		return Operand{}, vkNone
	}
	var ok bool
	if v.Cast, ok = p.typeName(); !ok {
		return Operand{}, vkNone
	}
	return v, kind
}

// castValue consumes CAST(v AS type).
func (p *parser) castValue() (Operand, valueKind) {
	p.advance()
	if !p.op("(") {
		return Operand{}, vkNone
	}
	v, kind := p.plainValue()
	if kind == vkNone || !p.keyword("as") {
		return Operand{}, vkNone
	}
	var ok bool
	if v.Cast, ok = p.typeName(); !ok || !p.op(")") {
		return Operand{}, vkNone
	}
	return v, kind
}

// typeName consumes a type name of unquoted words: one word, or one of
// the SQL standard's multi-word names (double precision, character
// varying, timestamp with[out] time zone ...). A type modifier or array
// brackets that follow are left to fail the statement.
func (p *parser) typeName() (string, bool) {
	w := p.word(p.i)
	if w == "" {
		return "", false
	}
	p.advance()
	name := FoldASCII(w)
	switch name {
	case "double":
		if !p.keyword("precision") {
			return "", false
		}
		return "double precision", true
	case "character", "char", "bit":
		if p.keyword("varying") {
			name += " varying"
		}
	case "timestamp", "time":
		zone := ""
		switch {
		case p.keyword("with"):
			zone = " with time zone"
		case p.keyword("without"):
			zone = " without time zone"
		default:
			return name, true
		}
		if !p.keyword("time") || !p.keyword("zone") {
			return "", false
		}
		name += zone
	}
	return name, true
}

// plainValue is value without a cast.
func (p *parser) plainValue() (Operand, valueKind) {
	t := p.peek()
	switch t.kind {
	case tkParam:
		p.advance()
		v := Operand{Ordinal: t.num}
		if t.form == pfNamed {
			v.Name = (*p.q)[t.start+1 : t.end]
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
		return Operand{IsLit: true, Lit: s}, vkLiteral
	case tkOp:
		op := p.text(t)
		if op != "-" && op != "+" {
			return Operand{}, vkNone
		}
		n := &p.toks[p.i+1] // tkOp is never the last token
		if n.kind != tkInt && n.kind != tkDec {
			return Operand{}, vkNone
		}
		p.advance()
		p.advance()
		return number(p.text(n), op == "-")
	case tkIdent:
		w := p.text(t)
		if c, ok := p.clock(); ok {
			return Operand{IsLit: true, Lit: c}, vkClock
		}
		var v Operand
		switch {
		case kwIs(w, "null"):
			v = Operand{IsLit: true}
		case kwIs(w, "true"):
			v = Operand{IsLit: true, Lit: true}
		case kwIs(w, "false"):
			v = Operand{IsLit: true, Lit: false}
		default:
			return Operand{}, vkNone
		}
		p.advance()
		return v, vkLiteral
	}
	return Operand{}, vkNone
}

// clock consumes a function of the current time the driver can evaluate
// itself: CURRENT_TIMESTAMP; on PostgreSQL now() and
// transaction_timestamp() (the transaction's start, which is the
// statement's in autocommit); on SQLite datetime('now').
func (p *parser) clock() (Clock, bool) {
	w := p.word(p.i)
	call := func(args ...string) bool {
		k := p.i + 1
		if !p.isOp(k, "(") {
			return false
		}
		k++
		for _, a := range args {
			if t := &p.toks[k]; t.kind != tkStr || p.text(t) != a {
				return false
			}
			k++
		}
		if !p.isOp(k, ")") {
			return false
		}
		p.i = k
		p.advance()
		return true
	}
	switch {
	case kwIs(w, "current_timestamp"):
		p.advance()
		return ClockCurrentTimestamp, true
	case !p.sqlite && kwIs(w, "now") && call():
		return ClockNow, true
	case !p.sqlite && kwIs(w, "transaction_timestamp") && call():
		return ClockTransactionTimestamp, true
	case p.sqlite && kwIs(w, "datetime") && call("'now'"):
		return ClockDatetimeNow, true
	}
	return "", false
}

// isOp reports whether token k is the operator op.
func (p *parser) isOp(k int, op string) bool {
	return k < len(p.toks) && p.toks[k].kind == tkOp && p.text(&p.toks[k]) == op
}

// number makes the literal of an unsigned integer or decimal token: int64
// for integers that fit (others are not bufferable), Decimal for decimals.
func number(digits string, neg bool) (Operand, valueKind) {
	if strings.IndexByte(digits, '.') < 0 {
		u, err := strconv.ParseUint(digits, 10, 64)
		if err != nil || u > 1<<63 || u == 1<<63 && !neg {
			return Operand{}, vkNone
		}
		n := int64(u) // 1<<63 wraps to MinInt64, which is -(1<<63): right for neg
		if neg && n != -1<<63 {
			n = -n
		}
		return Operand{IsLit: true, Lit: n}, vkNumber
	}
	// A decimal keeps its text: its type is the database's to decide
	// (numeric in PostgreSQL, REAL in SQLite), and a bound string or float in
	// its place would not always mean the same (bigint + 1.5 is numeric in
	// PostgreSQL, but bigint + '1.5' is an error).
	if digits[0] == '.' {
		digits = "0" + digits
	}
	digits = strings.TrimSuffix(digits, ".") // 5. is 5, of scale 0
	if neg {
		digits = "-" + digits
	}
	return Operand{IsLit: true, Lit: Decimal(digits)}, vkNumber
}

// end accepts an optional ';' and then the end of the text.
func (p *parser) end() bool {
	p.op(";")
	return p.peek().kind == tkEOF
}

// sameCol reports whether two columns could be one: conservative (Unicode
// case folding, so "A" and a count as one: MySQL and SQLite ignore case)
// because it only ever rejects.
func sameCol(a, b Ident) bool { return strings.EqualFold(a.Norm, b.Norm) }

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
func (p *parser) fresh(res *Statement, col Ident) bool {
	if p.seen == nil {
		if len(res.Sets)+len(res.Where)+len(res.Cols) < smallNames {
			for _, s := range res.Sets {
				if sameCol(s.Col, col) {
					return false
				}
			}
			for _, w := range res.Where {
				if sameCol(w.Col, col) {
					return false
				}
			}
			for _, c := range res.Cols {
				if sameCol(c, col) {
					return false
				}
			}
			return true
		}
		p.seen = make(map[string]struct{})
		for _, s := range res.Sets {
			p.seen[foldKey(s.Col.Norm)] = struct{}{}
		}
		for _, w := range res.Where {
			p.seen[foldKey(w.Col.Norm)] = struct{}{}
		}
		for _, c := range res.Cols {
			p.seen[foldKey(c.Norm)] = struct{}{}
		}
	}
	k := foldKey(col.Norm)
	if _, dup := p.seen[k]; dup {
		return false
	}
	p.seen[k] = struct{}{}
	return true
}

// update recognizes, after UPDATE:
//
//	tbl [[AS] a] SET c = v [, d = d + v | d = d - v | d = v + d ...]
//	WHERE k = v [AND k2 = v ...] [;]
//
// where d in a delta may be written COALESCE(d, 0), a SET clause may also be
// c = GREATEST(c, v) or LEAST(c, v) (max, min on SQLite), and the WHERE
// clause's equalities may be parenthesized in any way (only AND joins them,
// so parentheses change nothing).
func (p *parser) update(res *Statement) bool {
	if !p.table(res) {
		return p.noAt(p.i, "the UPDATE's target is not a table name")
	}
	if !p.alias(res) {
		return p.noTok(p.i, "the table's alias")
	}
	if !p.keyword("set") {
		return p.noTok(p.i, "expected SET after the table")
	}
	p.allocUpdateLists(res)
	if !p.setList(res) {
		return false
	}
	if !p.keyword("where") {
		if p.end() {
			return p.no("UPDATE without WHERE (every row)")
		}
		if kwIs(p.word(p.i), "from") {
			return p.no("UPDATE ... FROM (a join)")
		}
		return p.noAt(p.i, "SET holds an expression, not a value, a delta or GREATEST/LEAST of the column")
	}
	if !p.whereList(res, 0) {
		return false
	}
	if len(res.Where) == 0 {
		return p.no("WHERE has no column = value equality")
	}
	if !p.returning(res) {
		return false
	}
	if res.OrReplace && len(res.Returning) > 0 {
		return p.no("REPLACE with RETURNING")
	}
	if !p.end() {
		return p.noEnd("WHERE")
	}
	return true
}

// returning accepts an optional RETURNING list of plain column names (no
// expressions, no *, no aliases) into res.Returning.
func (p *parser) returning(res *Statement) bool {
	if !p.keyword("returning") {
		return true
	}
	for {
		col, ok := p.column(res)
		if !ok {
			return p.noAt(p.i, "RETURNING holds more than column names")
		}
		res.Returning = append(res.Returning, col)
		if !p.op(",") {
			if t := p.peek(); t.kind != tkEOF && !(t.kind == tkOp && p.text(t) == ";") {
				return p.noAt(p.i, "RETURNING holds more than column names")
			}
			return true
		}
	}
}

// allocUpdateLists sizes res.Sets and res.Where in one allocation each, from
// the tokens after SET: commas before WHERE bound the SET list, ANDs after it
// the WHERE list.
func (p *parser) allocUpdateLists(res *Statement) {
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
	res.Sets = make([]SetClause, 0, nSets)
	res.Where = make([]KeyEq, 0, nWhere)
}

// setList consumes the comma-separated assignments after SET into res.Sets.
func (p *parser) setList(res *Statement) bool {
	for {
		if !p.setClause(res) {
			return false
		}
		if !p.op(",") {
			return true
		}
	}
}

// extreme consumes "GREATEST(" (+1) or "LEAST(" (-1), on SQLite "max("
// or "min(", and returns 0 when neither comes next.
func (p *parser) extreme() int8 {
	w := p.word(p.i)
	if w == "" {
		return 0
	}
	if t := &p.toks[p.i+1]; t.kind != tkOp || p.text(t) != "(" {
		return 0 // p.i+1 is in range: the current token is a word, not EOF
	}
	var e int8
	switch {
	case !p.sqlite && kwIs(w, "greatest"), p.sqlite && kwIs(w, "max"):
		e = 1
	case !p.sqlite && kwIs(w, "least"), p.sqlite && kwIs(w, "min"):
		e = -1
	}
	if e != 0 {
		p.advance()
		p.advance()
	}
	return e
}

// current consumes a column's current value in a delta: the column, as
// column does, or COALESCE(column, 0) (zero is then true). It leaves the
// position unchanged when there is neither.
func (p *parser) current(res *Statement) (col Ident, ok, zero bool) {
	if save := p.i; p.isOp(p.i+1, "(") {
		if !kwIs(p.word(p.i), "coalesce") {
			return Ident{}, false, false // a function: no column
		}
	} else if _, isClock := p.clock(); isClock {
		p.i = save // CURRENT_TIMESTAMP: a value, not a column
		return Ident{}, false, false
	}
	if !kwIs(p.word(p.i), "coalesce") || p.toks[p.i+1].kind != tkOp || p.text(&p.toks[p.i+1]) != "(" {
		col, ok = p.tryColumn(res)
		return col, ok, false
	}
	save := p.i
	p.advance()
	p.advance()
	if col, ok = p.column(res); ok && p.op(",") {
		if t := p.peek(); t.kind == tkInt && p.text(t) == "0" {
			p.advance()
			if p.op(")") {
				return col, true, true
			}
		}
	}
	p.i = save
	return Ident{}, false, false
}

// setClause consumes one assignment and appends it to res.Sets: c = v, or a
// delta of the same column, c = c + v, c = c - v or c = v + c (c possibly
// COALESCE(c, 0)), or c = GREATEST(c, v) or LEAST(c, v), where v is a
// placeholder or a number.
func (p *parser) setClause(res *Statement) bool {
	col, ok := p.ident() // a SET target is never qualified: both databases refuse t.c = ...
	if !ok {
		return p.noAt(p.i, "SET target")
	}
	if !p.op("=") {
		if p.op(".") {
			return p.no("a qualified SET target (t.c = ...), which the databases refuse")
		}
		return p.noAt(p.i, "SET target")
	}
	if !p.fresh(res, col) {
		return p.nof("SET names column ", col.Raw, " twice")
	}
	sc := SetClause{Col: col}
	var kind valueKind
	start := p.i
	if sc.Extreme = p.extreme(); sc.Extreme != 0 {
		// c = GREATEST(c, v): the column first, so that a tie keeps it.
		rc, ok := p.column(res)
		if !ok || rc.Norm != col.Norm || !p.op(",") {
			return p.nof("SET ", col.Raw, " = ", p.text(&p.toks[start]), "(...): not of the column itself first")
		}
		if sc.Val, kind = p.value(); kind != vkParam && kind != vkNumber || !p.op(")") {
			return p.nof("SET ", col.Raw, " = ", p.text(&p.toks[start]), "(", col.Raw, ", ...): the other argument is not one placeholder or number")
		}
	} else if rc, ok, zero := p.current(res); ok {
		sc.NullAsZero = zero
		// c = c + v or c = c - v: the same column exactly, by norm.
		if rc.Norm != col.Norm {
			return p.noAt(start, "SET ", col.Raw, " = ...")
		}
		switch {
		case p.op("+"):
			sc.Delta = 1
		case p.op("-"):
			sc.Delta = -1
		default:
			return p.noAt(p.i, "SET ", col.Raw, " = ", col.Raw, " ...: only + or - a value")
		}
		if sc.Val, kind = p.value(); kind != vkParam && kind != vkNumber {
			return p.noAt(p.i, "SET ", col.Raw, " = ", col.Raw, " ± ...: not a placeholder or number")
		}
	} else {
		if sc.Val, kind = p.value(); kind == vkNone {
			return p.noAt(start, "SET ", col.Raw, " = ...")
		}
		if p.op("+") { // c = v + c
			rc, ok, zero := p.current(res)
			if !ok || rc.Norm != col.Norm {
				return p.noAt(p.i, "SET ", col.Raw, " = v + ...: not the column itself")
			}
			sc.NullAsZero = zero
			if kind != vkParam && kind != vkNumber {
				return p.nof("SET ", col.Raw, " = v + ", col.Raw, ": v is not a placeholder or number")
			}
			sc.Delta = 1
		}
	}
	res.Sets = append(res.Sets, sc)
	return true
}

// maxParenDepth bounds the nesting of parentheses in a WHERE clause: the
// recognizer recurses on them.
const maxParenDepth = 16

// whereList consumes AND-separated terms after WHERE, each a key equality
// or a parenthesized whereList, into res.Where.
func (p *parser) whereList(res *Statement, depth int) bool {
	for {
		if p.op("(") {
			if depth == maxParenDepth {
				return p.no("WHERE nests parentheses too deep")
			}
			if !p.whereList(res, depth+1) {
				return false
			}
			if !p.op(")") {
				return p.noEnd("WHERE")
			}
		} else if !p.guard(res) && !p.keyEq(res) {
			return false
		}
		if !p.keyword("and") {
			return true
		}
	}
}

// guard consumes col IS [NOT] NULL, if that comes next, and appends it to
// res.Guards. The column may also be set by the statement (a soft delete
// sets the column it guards).
func (p *parser) guard(res *Statement) bool {
	save := p.i
	col, ok := p.tryColumn(res)
	if !ok || !p.keyword("is") {
		p.i = save
		return false
	}
	g := Guard{Col: col, NotNull: p.keyword("not")}
	if !p.keyword("null") {
		p.i = save
		return false
	}
	res.Guards = append(res.Guards, g)
	return true
}

// keyEq consumes one key equality, k = v or v = k, and appends it to
// res.Where. v may not be NULL, and k may not be a column named before in
// the statement.
func (p *parser) keyEq(res *Statement) bool {
	var k KeyEq
	var kind valueKind
	start := p.i
	if col, ok := p.tryColumn(res); ok {
		if !p.op("=") {
			return p.noCond()
		}
		k.Col = col
		if k.Val, kind = p.value(); kind == vkNone {
			return p.noAt(p.i, "WHERE ", col.Raw, " = ...")
		}
	} else {
		k.Val, kind = p.value()
		if kind == vkNone {
			return p.noAt(start, "WHERE")
		}
		if !p.op("=") {
			return p.noCond()
		}
		if k.Col, ok = p.column(res); !ok {
			return p.noAt(p.i, "WHERE value = ...: not a column of the table")
		}
	}
	// k = NULL matches no row: the database must say so.
	if kind == vkNone || k.Val.IsLit && k.Val.Lit == nil {
		return p.nof("WHERE ", k.Col.Raw, " = NULL (it matches no row)")
	}
	if kind == vkClock {
		return p.nof("WHERE ", k.Col.Raw, " = the current time")
	}
	// A key twice, or a key the statement also sets (it would change
	// its own key), is not bufferable.
	if !p.fresh(res, k.Col) {
		return p.nof("WHERE names column ", k.Col.Raw, " twice, or a column the statement sets")
	}
	res.Where = append(res.Where, k)
	return true
}

// insert recognizes, after INSERT:
//
//	INTO tbl (c1, c2 ...) VALUES (v, v ...) [, (v, v ...) ...] [;]
func (p *parser) insert(res *Statement) bool {
	if p.keyword("or") {
		switch {
		case p.keyword("ignore"):
			res.IgnoreConflict, res.OrIgnore = true, true
		case p.sqlite && p.keyword("replace"):
			res.OrReplace = true
		default:
			return p.nof("INSERT OR ", strings.ToUpper(p.word(p.i)), " (only OR IGNORE and SQLite's OR REPLACE are buffered)") // OR ABORT ...
		}
	} else if p.keyword("ignore") {
		res.IgnoreConflict, res.InsertIgnore = true, true // MySQL's INSERT IGNORE
	}
	return p.insertInto(res)
}

// replace recognizes, after SQLite's REPLACE, what insert does after
// INSERT OR REPLACE.
func (p *parser) replace(res *Statement) bool {
	res.OrReplace = true
	return p.insertInto(res)
}

// insertInto recognizes an INSERT after INSERT [OR ...] or REPLACE.
func (p *parser) insertInto(res *Statement) bool {
	if !p.keyword("into") {
		return p.noTok(p.i, "INSERT without INTO")
	}
	if !p.table(res) {
		return p.noAt(p.i, "the INSERT's target is not a table name")
	}
	if !p.op("(") {
		switch w := p.word(p.i); {
		case kwIs(w, "values"):
			return p.no("INSERT without a column list")
		case kwIs(w, "select"):
			return p.no("INSERT ... SELECT")
		case kwIs(w, "default"):
			return p.no("INSERT ... DEFAULT VALUES")
		}
		return p.noTok(p.i, "INSERT INTO the table without a column list")
	}
	nCols := 1
	for k := p.i; k < len(p.toks) && !(p.toks[k].kind == tkOp && p.text(&p.toks[k]) == ")"); k++ {
		if p.toks[k].kind == tkOp && p.text(&p.toks[k]) == "," {
			nCols++
		}
	}
	res.Cols = make([]Ident, 0, nCols)
	for {
		col, ok := p.ident()
		if !ok {
			return p.noAt(p.i, "the column list")
		}
		if !p.fresh(res, col) {
			return p.nof("the column list names ", col.Raw, " twice")
		}
		res.Cols = append(res.Cols, col)
		if !p.op(",") {
			break
		}
	}
	if !p.op(")") {
		return p.noAt(p.i, "the column list")
	}
	if !p.keyword("values") {
		if kwIs(p.word(p.i), "select") {
			return p.no("INSERT ... SELECT")
		}
		return p.noTok(p.i, "expected VALUES after the column list")
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
	if nRows == 0 || nRows > len(p.toks)/len(res.Cols) {
		return p.no("the VALUES rows do not match the column list")
	}
	vals := make([]Operand, nRows*len(res.Cols))
	res.Rows = make([][]Operand, 0, nRows)
	for {
		if !p.op("(") || len(res.Rows) == nRows {
			return p.noAt(p.i, "VALUES")
		}
		off := len(res.Rows) * len(res.Cols)
		row := vals[off : off : off+len(res.Cols)]
		for {
			at := p.i
			v, kind := p.value()
			if kind == vkNone {
				return p.noAt(at, "VALUES holds an expression, not a placeholder or literal")
			}
			if len(row) == len(res.Cols) {
				return p.no("a VALUES row has more values than there are columns")
			}
			row = append(row, v)
			if !p.op(",") {
				break
			}
		}
		if !p.op(")") {
			return p.noAt(p.i, "VALUES holds an expression, not a placeholder or literal")
		}
		if len(row) != len(res.Cols) {
			return p.no("a VALUES row has fewer values than there are columns")
		}
		res.Rows = append(res.Rows, row)
		if !p.op(",") {
			break
		}
	}
	var rowAlias *Ident
	if kwIs(p.word(p.i), "as") {
		// MySQL 8's INSERT ... VALUES (...) AS new ON DUPLICATE KEY UPDATE
		p.advance()
		id, ok := p.ident()
		if !ok || p.isOp(p.i, "(") {
			return p.noAt(p.i, "VALUES ... AS holds more than a row alias")
		}
		if id.Norm == res.Table.Norm {
			return p.no("the row alias is the table's name")
		}
		rowAlias = &id
		if !kwIs(p.word(p.i), "on") || !kwIs(p.word(p.i+1), "duplicate") {
			return p.noTok(p.i, "a row alias without ON DUPLICATE KEY UPDATE")
		}
	}
	if kwIs(p.word(p.i), "on") {
		switch {
		case res.OrIgnore:
			return p.no("INSERT OR IGNORE with ON CONFLICT")
		case res.InsertIgnore:
			return p.no("INSERT IGNORE with ON DUPLICATE KEY UPDATE")
		case res.OrReplace:
			return p.no("REPLACE with ON CONFLICT")
		}
		if kwIs(p.word(p.i+1), "duplicate") {
			if !p.onDuplicateKey(res, rowAlias) {
				return false
			}
		} else if !p.onConflict(res) {
			return false
		}
	}
	if !p.returning(res) {
		return false
	}
	if res.OrReplace && len(res.Returning) > 0 {
		return p.no("REPLACE with RETURNING")
	}
	if !p.end() {
		switch {
		case res.OnDuplicateKey:
			return p.noEnd("ON DUPLICATE KEY UPDATE")
		case res.Upsert != nil:
			return p.noEnd("DO UPDATE SET")
		case res.IgnoreConflict:
			return p.noEnd("DO NOTHING")
		}
		return p.noEnd("VALUES")
	}
	return true
}
