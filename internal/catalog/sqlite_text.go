package catalog

import (
	"strings"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file reads what SQLite's pragmas do not report from the SQL text
// SQLite stores in sqlite_schema: column collations, CHECK clauses, the
// expressions of generated columns, the names a view mentions, and whether
// a default is evaluated at insert time. It is a tokenizer, not a parser:
// it is crude, and where it may be wrong it errs on the side of reporting
// a fact (a view that mentions a table's name as a word "reads" it, a
// default that calls a function not known to be deterministic is volatile).

// tokKind is the kind of a token.
type tokKind uint8

const (
	tokWord   tokKind = iota // an unquoted name or keyword
	tokIdent                 // a quoted name: "x", `x` or [x], text unquoted
	tokString                // a 'string' literal
	tokNumber                // a numeric literal
	tokPunct                 // one character of punctuation
)

// token is one token of a SQL text; start and end are byte offsets.
type token struct {
	kind       tokKind
	text       string
	start, end int
}

// isWordByte reports whether c may continue an unquoted name.
func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// sqlTokens splits s into tokens, dropping spaces and comments. Quoted names
// and strings lose their quotes; an unclosed one runs to the end of s.
func sqlTokens(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && strings.HasPrefix(s[i:], "--"):
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(s)
			}
		case c == '/' && strings.HasPrefix(s[i:], "/*"):
			if j := strings.Index(s[i+2:], "*/"); j >= 0 {
				i += j + 4
			} else {
				i = len(s)
			}
		case c == '\'' || c == '"' || c == '`' || c == '[':
			end, text := quotedEnd(s, i)
			kind := tokIdent
			if c == '\'' {
				kind = tokString
			}
			toks = append(toks, token{kind, text, i, end})
			i = end
		case '0' <= c && c <= '9' || c == '.' && i+1 < len(s) && '0' <= s[i+1] && s[i+1] <= '9':
			j := i + 1
			for j < len(s) && (isWordByte(s[j]) || s[j] == '.') {
				j++
			}
			toks = append(toks, token{tokNumber, s[i:j], i, j})
			i = j
		case isWordByte(c):
			j := i + 1
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			toks = append(toks, token{tokWord, s[i:j], i, j})
			i = j
		default:
			toks = append(toks, token{tokPunct, s[i : i+1], i, i + 1})
			i++
		}
	}
	return toks
}

// quotedEnd returns the end of the quoted token starting at s[i] and its
// text without quotes. A doubled closing quote stands for itself, except in
// [brackets], which have no escape.
func quotedEnd(s string, i int) (int, string) {
	closer := s[i]
	if closer == '[' {
		closer = ']'
	}
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		if s[j] != closer {
			b.WriteByte(s[j])
			continue
		}
		if closer != ']' && j+1 < len(s) && s[j+1] == closer {
			b.WriteByte(closer)
			j++
			continue
		}
		return j + 1, b.String()
	}
	return len(s), b.String()
}

// isWord reports whether t is the unquoted keyword kw (any case).
func (t token) isWord(kw string) bool {
	return t.kind == tokWord && strings.EqualFold(t.text, kw)
}

// isPunct reports whether t is the punctuation p.
func (t token) isPunct(p string) bool { return t.kind == tokPunct && t.text == p }

// closeParen returns the index of the ")" that closes the "(" at toks[i],
// or len(toks)-1 when it is not closed.
func closeParen(toks []token, i int) int {
	depth := 0
	for j := i; j < len(toks); j++ {
		switch {
		case toks[j].isPunct("("):
			depth++
		case toks[j].isPunct(")"):
			if depth--; depth == 0 {
				return j
			}
		}
	}
	return len(toks) - 1
}

// sqliteTableText is what the CREATE TABLE text says that the pragmas do not.
type sqliteTableText struct {
	collations map[string]string // lower-cased column name → COLLATE name
	generated  map[string]string // lower-cased column name → AS (expression)
	checks     []string          // each CHECK (...) clause, as written
}

// parseCreateTable reads a CREATE TABLE statement's column definitions and
// table constraints: the top-level items between its outer parentheses.
// CREATE TABLE ... AS SELECT has none.
func parseCreateTable(sql string) sqliteTableText {
	out := sqliteTableText{collations: map[string]string{}, generated: map[string]string{}}
	toks := sqlTokens(sql)
	open := -1
	for i, t := range toks {
		if t.isWord("AS") {
			return out
		}
		if t.isPunct("(") {
			open = i
			break
		}
	}
	if open < 0 {
		return out
	}
	end := closeParen(toks, open)
	start := open + 1
	for i := start; i <= end; i++ {
		if i < end && toks[i].isPunct("(") {
			i = closeParen(toks, i)
			continue
		}
		if i == end || toks[i].isPunct(",") {
			out.item(sql, toks[start:i])
			start = i + 1
		}
	}
	return out
}

// item reads one column definition or table constraint.
func (out *sqliteTableText) item(sql string, toks []token) {
	if len(toks) == 0 {
		return
	}
	column, from := "", 0 // a column definition starts with its name
	switch first := toks[0]; {
	case first.isWord("CONSTRAINT"), first.isWord("PRIMARY"), first.isWord("UNIQUE"),
		first.isWord("CHECK"), first.isWord("FOREIGN"):
	default:
		column, from = sqlparse.FoldASCII(first.text), 1
	}
	for i := from; i < len(toks); i++ {
		t := toks[i]
		if t.isPunct("(") {
			i = closeParen(toks, i) // skip nested parentheses: types, expressions
			continue
		}
		hasParen := i+1 < len(toks) && toks[i+1].isPunct("(")
		switch {
		case t.isWord("CHECK") && hasParen:
			j := closeParen(toks, i+1)
			out.checks = append(out.checks, sql[t.start:toks[j].end])
			i = j
		case column != "" && t.isWord("AS") && hasParen:
			j := closeParen(toks, i+1)
			out.generated[column] = sql[toks[i+1].start:toks[j].end]
			i = j
		case column != "" && t.isWord("COLLATE") && i+1 < len(toks):
			out.collations[column] = toks[i+1].text
			i++
		}
	}
}

// sqlWords returns the lower-cased names a SQL text mentions: its unquoted
// words and quoted names, not its string literals.
func sqlWords(sql string) map[string]bool {
	words := map[string]bool{}
	for _, t := range sqlTokens(sql) {
		if t.kind == tokWord || t.kind == tokIdent {
			words[sqlparse.FoldASCII(t.text)] = true
		}
	}
	return words
}

// sqliteDeterministic are the functions (and keywords that may precede a
// parenthesis) whose result depends on their arguments only. Date and time
// functions are not among them: with 'now' they read the clock.
var sqliteDeterministic = map[string]bool{
	"abs": true, "char": true, "coalesce": true, "concat": true, "concat_ws": true,
	"format": true, "glob": true, "hex": true, "ifnull": true, "iif": true,
	"instr": true, "length": true, "like": true, "lower": true, "ltrim": true,
	"max": true, "min": true, "nullif": true, "octet_length": true, "printf": true,
	"quote": true, "replace": true, "round": true, "rtrim": true, "sign": true,
	"substr": true, "substring": true, "trim": true, "typeof": true, "unhex": true,
	"unicode": true, "upper": true, "zeroblob": true, "cast": true, "json": true,
	"json_array": true, "json_object": true, "json_quote": true,
	"and": true, "or": true, "not": true, "in": true, "is": true, "when": true,
	"then": true, "else": true, "case": true, "between": true, "escape": true,
}

// sqliteVolatileDefault reports whether a column default (PRAGMA
// table_xinfo's dflt_value) takes its value when the row is inserted:
// CURRENT_TIME, CURRENT_DATE, CURRENT_TIMESTAMP, or a call to a function
// not in sqliteDeterministic (random(), datetime('now'), an application's).
func sqliteVolatileDefault(dflt string) bool {
	toks := sqlTokens(dflt)
	for i, t := range toks {
		if t.kind != tokWord && t.kind != tokIdent {
			continue
		}
		if t.kind == tokWord && strings.HasPrefix(strings.ToUpper(t.text), "CURRENT_") {
			return true
		}
		if i+1 < len(toks) && toks[i+1].isPunct("(") && !sqliteDeterministic[sqlparse.FoldASCII(t.text)] {
			return true
		}
	}
	return false
}

// sqliteClass classifies a declared type by SQLite's affinity rules (in
// their order), or by a STRICT table's types, where ANY keeps values as given.
func sqliteClass(decl string, strict bool) TypeClass {
	u := strings.ToUpper(strings.TrimSpace(decl))
	switch {
	case strict && u == "ANY":
		return Other
	case strings.Contains(u, "INT"):
		return Integer
	case strings.Contains(u, "CHAR"), strings.Contains(u, "CLOB"), strings.Contains(u, "TEXT"):
		return Text
	case u == "":
		return Other
	case strings.Contains(u, "BLOB"):
		return Bytes
	case strings.Contains(u, "REAL"), strings.Contains(u, "FLOA"), strings.Contains(u, "DOUB"):
		return Float
	}
	return Numeric
}

// sqliteSplitName splits a rules-file name into schema (maybe "") and table,
// unquoting "x", `x` and [x]. ok is false when it is not one or two names.
func sqliteSplitName(name string) (schema, table string, ok bool) {
	toks := sqlTokens(name)
	isName := func(t token) bool { return t.kind == tokWord || t.kind == tokIdent }
	switch {
	case len(toks) == 1 && isName(toks[0]):
		return "", toks[0].text, toks[0].text != ""
	case len(toks) == 3 && isName(toks[0]) && toks[1].isPunct(".") && isName(toks[2]):
		return toks[0].text, toks[2].text, toks[0].text != "" && toks[2].text != ""
	}
	return "", "", false
}

// sqliteQuote quotes an identifier for SQLite.
func sqliteQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
