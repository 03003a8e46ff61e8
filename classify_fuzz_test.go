package writeback

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzClassify checks that classify never panics, that what it calls
// bufferable has the promised shape, and three oracles that do not trust the
// recognizer: the statement starts with the keyword its kind says (read by
// re-lexing); removing clean comments, or re-spacing the tokens, changes
// nothing; and a bufferable statement re-written in canonical form from the
// result classifies to the same result (the form flush SQL is written in).
func FuzzClassify(f *testing.F) {
	f.Fuzz(func(t *testing.T, query string) {
		for _, sqlite := range []bool{false, true} {
			checkClassify(t, query, sqlite)
		}
	})
}

// TestClassifyOracles runs the fuzz checks on every statement of the shape
// table and on deterministic mutations of each (comments and spaces put
// between tokens, letters' case flipped, a byte dropped or doubled; up to
// three at once), so the oracles run in every plain `go test` too.
func TestClassifyOracles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inserts := []string{"/**/", " /* c */ ", " -- c\n", "\n", "\t", "(", ")", ",", "'", "\"", "$", "?", ":", "-", "+", ";", "::", "@", "\\", "é"}
	for _, tc := range shapeTests {
		checkClassify(t, tc.query, tc.sqlite)
		for range 40 {
			q := []byte(tc.query)
			for range 1 + rng.IntN(3) {
				if len(q) == 0 {
					break
				}
				i := rng.IntN(len(q))
				switch rng.IntN(4) {
				case 0:
					q = slices.Insert(q, i, []byte(inserts[rng.IntN(len(inserts))])...)
				case 1:
					if c := q[i]; 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
						q[i] ^= 0x20
					}
				case 2:
					q = slices.Delete(q, i, i+1)
				default:
					q = slices.Insert(q, i, q[i])
				}
			}
			checkClassify(t, string(q), tc.sqlite)
		}
	}
}

// checkClassify classifies q and checks the result against the invariants
// and the oracles described at FuzzClassify.
func checkClassify(t *testing.T, q string, sqlite bool) {
	t.Helper()
	c := classify(q, sqlite)
	if c == nil {
		t.Fatalf("classify(%q, %v) = nil", q, sqlite)
	}
	checkClassifiedInvariants(t, q, sqlite, c)

	// Re-lex independently of classify: comments, the first word, and every
	// identifier, which names must hold.
	lx := lexer{s: q, sqlite: sqlite}
	var toks []token
	var comments []token
	ambComment := false
	for {
		tok := lx.next()
		if tok.kind == tkEOF {
			break
		}
		if tok.kind == tkComment {
			comments = append(comments, tok)
			ambComment = ambComment || tok.amb
			continue
		}
		toks = append(toks, tok)
	}
	first := ""
	if len(toks) > 0 && toks[0].kind == tkIdent {
		first = q[toks[0].start:toks[0].end]
	}
	switch c.kind {
	case stmtUpdate:
		if !strings.EqualFold(first, "update") {
			t.Fatalf("classify(%q, %v): update, but the first word is %q", q, sqlite, first)
		}
	case stmtInsert:
		if !strings.EqualFold(first, "insert") {
			t.Fatalf("classify(%q, %v): insert, but the first word is %q", q, sqlite, first)
		}
	}
	names := map[string]bool{}
	for _, n := range c.names {
		names[n] = true
	}
	for _, tok := range toks {
		var n string
		switch tok.kind {
		case tkIdent:
			n = q[tok.start:tok.end]
		case tkQIdent:
			n = unquoteIdent(q[tok.start:tok.end])
		default:
			continue
		}
		if n != "" && !names[asciiLower(n)] {
			t.Fatalf("classify(%q, %v): names %q lack identifier %q", q, sqlite, c.names, n)
		}
	}

	if ambComment || !utf8.ValidString(q) || strings.IndexByte(q, 0) >= 0 {
		// Such a comment, or bytes a database rejects anywhere in the
		// text, rightly make the statement unsafe whatever is removed.
		return
	}
	// Metamorphic: a clean comment is just a separator.
	if len(comments) > 0 {
		var b strings.Builder
		last := 0
		for _, cm := range comments {
			b.WriteString(q[last:cm.start])
			b.WriteByte(' ')
			last = cm.end
		}
		b.WriteString(q[last:])
		if c2 := classify(b.String(), sqlite); !reflect.DeepEqual(c, c2) {
			t.Fatalf("comments matter:\n%q -> %s %+v\n%q -> %s %+v", q, describeClassified(c), c, b.String(), describeClassified(c2), c2)
		}
	}
	// Metamorphic: spacing between tokens does not matter.
	parts := make([]string, len(toks))
	for i, tok := range toks {
		parts[i] = q[tok.start:tok.end]
	}
	spaced := strings.Join(parts, " ")
	if c2 := classify(spaced, sqlite); !reflect.DeepEqual(c, c2) {
		t.Fatalf("spacing matters:\n%q -> %s %+v\n%q -> %s %+v", q, describeClassified(c), c, spaced, describeClassified(c2), c2)
	}

	// Round trip: canonical SQL written from the result means the same.
	if c.kind != stmtOther {
		canon := classifiedSQL(c)
		c2 := classify(canon, sqlite)
		c2.names, c2.beginsTx, c2.endsTx = c.names, c.beginsTx, c.endsTx
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs:\n%q -> %s %+v\n%q -> %s %+v", q, describeClassified(c), c, canon, describeClassified(c2), c2)
		}
	}
}

// checkClassifiedInvariants checks the shape promised for each kind.
func checkClassifiedInvariants(t *testing.T, q string, sqlite bool, c *classified) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("classify(%q, %v) = %s: %s", q, sqlite, describeClassified(c), fmt.Sprintf(format, args...))
	}
	if c.beginsTx && c.endsTx {
		fail("both beginsTx and endsTx")
	}
	if c.numParams < 0 || (c.numParams > 0) != (c.style != paramNone) {
		fail("style %d with numParams %d", c.style, c.numParams)
	}
	seen := map[string]bool{}
	for _, n := range c.names {
		if n == "" || seen[n] {
			fail("names %q: empty or repeated", c.names)
		}
		seen[n] = true
	}
	maxOrd := 0
	checkVal := func(v valueSrc) {
		t.Helper()
		if v.isLit {
			switch v.lit.(type) {
			case nil, int64, bool, string:
			default:
				fail("literal of type %T", v.lit)
			}
			if v.ordinal != 0 || v.name != "" {
				fail("literal with ordinal or name")
			}
			return
		}
		if v.ordinal < 1 || v.ordinal > c.numParams {
			fail("ordinal %d out of 1..%d", v.ordinal, c.numParams)
		}
		maxOrd = max(maxOrd, v.ordinal)
	}
	checkIdent := func(id ident) {
		t.Helper()
		if id.norm == "" || id.raw == "" || !strings.Contains(q, id.raw) {
			fail("bad identifier %+v", id)
		}
		if id.quoted != strings.ContainsAny(id.raw[:1], "\"`[") {
			fail("identifier %+v quoted wrongly", id)
		}
	}
	switch c.kind {
	case stmtUpdate:
		if len(c.sets) == 0 || len(c.where) == 0 || c.cols != nil || c.rows != nil {
			fail("update shape")
		}
		checkIdent(c.table)
		for i, s := range c.sets {
			checkIdent(s.col)
			checkVal(s.val)
			if s.delta < -1 || s.delta > 1 {
				fail("delta %d", s.delta)
			}
			if s.delta != 0 && s.val.isLit {
				if _, ok := s.val.lit.(int64); !ok {
					if _, ok := s.val.lit.(string); !ok {
						fail("non-numeric delta %v", s.val.lit)
					}
				}
			}
			for _, o := range c.sets[:i] {
				if strings.EqualFold(o.col.norm, s.col.norm) {
					fail("column %q set twice", s.col.norm)
				}
			}
			for _, w := range c.where {
				if strings.EqualFold(w.col.norm, s.col.norm) {
					fail("column %q in SET and WHERE", s.col.norm)
				}
			}
		}
		for i, w := range c.where {
			checkIdent(w.col)
			checkVal(w.val)
			if w.val.isLit && w.val.lit == nil {
				fail("WHERE k = NULL")
			}
			for _, o := range c.where[:i] {
				if strings.EqualFold(o.col.norm, w.col.norm) {
					fail("key %q twice", w.col.norm)
				}
			}
		}
	case stmtInsert:
		if len(c.cols) == 0 || len(c.rows) == 0 || c.sets != nil || c.where != nil {
			fail("insert shape")
		}
		checkIdent(c.table)
		for i, col := range c.cols {
			checkIdent(col)
			for _, o := range c.cols[:i] {
				if strings.EqualFold(o.norm, col.norm) {
					fail("column %q twice", col.norm)
				}
			}
		}
		for _, r := range c.rows {
			if len(r) != len(c.cols) {
				fail("row of %d values for %d columns", len(r), len(c.cols))
			}
			for _, v := range r {
				checkVal(v)
			}
		}
	default:
		if c.schema != nil || c.table != (ident{}) || c.sets != nil || c.where != nil || c.cols != nil || c.rows != nil {
			fail("stmtOther with shape fields")
		}
		return
	}
	if c.schema != nil {
		checkIdent(*c.schema)
	}
	// Every placeholder of a bufferable statement is an operand.
	if maxOrd != c.numParams {
		fail("largest ordinal %d, numParams %d", maxOrd, c.numParams)
	}
}

// classifiedSQL writes a bufferable classification back as SQL: raw names,
// unqualified columns, c = c + v deltas, placeholders in the statement's
// style with their ordinals or names.
func classifiedSQL(c *classified) string {
	val := func(v valueSrc, delta bool) string {
		if !v.isLit {
			switch {
			case v.name != "":
				return ":" + v.name
			case c.style == paramDollar:
				return "$" + strconv.Itoa(v.ordinal)
			default:
				return "?" + strconv.Itoa(v.ordinal)
			}
		}
		switch x := v.lit.(type) {
		case nil:
			return "NULL"
		case bool:
			return strings.ToUpper(strconv.FormatBool(x))
		case int64:
			return strconv.FormatInt(x, 10)
		case string:
			if delta { // a numeric delta kept as decimal text
				return x
			}
			return "'" + strings.ReplaceAll(x, "'", "''") + "'"
		}
		return "?bad"
	}
	var b strings.Builder
	tbl := c.table.raw
	if c.schema != nil {
		tbl = c.schema.raw + "." + tbl
	}
	if c.kind == stmtUpdate {
		b.WriteString("UPDATE " + tbl + " SET ")
		for i, s := range c.sets {
			if i > 0 {
				b.WriteString(", ")
			}
			switch s.delta {
			case 0:
				b.WriteString(s.col.raw + " = " + val(s.val, false))
			case 1:
				b.WriteString(s.col.raw + " = " + s.col.raw + " + " + val(s.val, true))
			default:
				b.WriteString(s.col.raw + " = " + s.col.raw + " - " + val(s.val, true))
			}
		}
		b.WriteString(" WHERE ")
		for i, w := range c.where {
			if i > 0 {
				b.WriteString(" AND ")
			}
			b.WriteString(w.col.raw + " = " + val(w.val, false))
		}
		return b.String()
	}
	b.WriteString("INSERT INTO " + tbl + " (")
	for i, col := range c.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(col.raw)
	}
	b.WriteString(") VALUES ")
	for i, r := range c.rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(")
		for j, v := range r {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(val(v, false))
		}
		b.WriteString(")")
	}
	return b.String()
}
