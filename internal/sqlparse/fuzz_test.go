package sqlparse

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
	c := Classify(q, sqlite)
	if c == nil {
		t.Fatalf("classify(%q, %v) = nil", q, sqlite)
	}
	checkClassifiedInvariants(t, q, sqlite, c)
	toks, comments, ambComment := relex(q, sqlite)
	checkFirstWordAndNames(t, q, sqlite, c, toks)
	checkWhyNot(t, q, sqlite, c, toks)

	if ambComment || !utf8.ValidString(q) || strings.IndexByte(q, 0) >= 0 {
		// Such a comment, or bytes a database rejects anywhere in the
		// text, rightly make the statement unsafe whatever is removed.
		return
	}
	checkMetamorphic(t, q, sqlite, c, toks, comments)

	// Round trip: canonical SQL written from the result means the same.
	if c.Kind != Other {
		canon := classifiedSQL(c, sqlite)
		c2 := Classify(canon, sqlite)
		c2.Names, c2.BeginsTx, c2.EndsTx = c.Names, c.BeginsTx, c.EndsTx
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs:\n%q -> %s %+v\n%q -> %s %+v", q, describeClassified(c), c, canon, describeClassified(c2), c2)
		}
	}
}

// checkWhyNot: classifying with reasons gives the same result as without,
// and WhyNot gives a reason exactly for the UPDATE and INSERT texts that
// are not bufferable.
func checkWhyNot(t *testing.T, q string, sqlite bool, c *Statement, toks []token) {
	t.Helper()
	st, why := classify(q, sqlite, true)
	if !reflect.DeepEqual(st, c) {
		t.Fatalf("%q: classify with reasons differs:\n%+v\n%+v", q, st, c)
	}
	write := false
	if len(toks) > 0 && toks[0].kind == tkIdent {
		w := q[toks[0].start:toks[0].end]
		write = kwIs(w, "update") || kwIs(w, "insert") || sqlite && kwIs(w, "replace")
	}
	switch {
	case c.Kind != Other && why != "":
		t.Fatalf("%q is bufferable, but WhyNot says %q", q, why)
	case c.Kind == Other && write && why == "":
		t.Fatalf("%q is not bufferable, and WhyNot says nothing", q)
	case !write && why != "":
		t.Fatalf("%q is no UPDATE or INSERT, and WhyNot says %q", q, why)
	}
}

// relex lexes q independently of classify: the tokens without comments,
// the comments, and whether any comment is ambiguous.
func relex(q string, sqlite bool) (toks, comments []token, ambComment bool) {
	lx := lexer{s: q, sqlite: sqlite}
	for {
		tok := lx.next()
		if tok.kind == tkEOF {
			return toks, comments, ambComment
		}
		if tok.kind == tkComment {
			comments = append(comments, tok)
			ambComment = ambComment || tok.amb
			continue
		}
		toks = append(toks, tok)
	}
}

// checkFirstWordAndNames checks, against the re-lexed tokens, that a
// bufferable statement starts with its kind's keyword and that names hold
// every identifier.
func checkFirstWordAndNames(t *testing.T, q string, sqlite bool, c *Statement, toks []token) {
	t.Helper()
	first := ""
	if len(toks) > 0 && toks[0].kind == tkIdent {
		first = q[toks[0].start:toks[0].end]
	}
	switch c.Kind {
	case Update:
		if !strings.EqualFold(first, "update") {
			t.Fatalf("classify(%q, %v): update, but the first word is %q", q, sqlite, first)
		}
	case Insert:
		if !strings.EqualFold(first, "insert") {
			t.Fatalf("classify(%q, %v): insert, but the first word is %q", q, sqlite, first)
		}
	}
	names := map[string]bool{}
	for _, n := range c.Names {
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
		if n != "" && !names[FoldASCII(n)] {
			t.Fatalf("classify(%q, %v): names %q lack identifier %q", q, sqlite, c.Names, n)
		}
	}
}

// checkMetamorphic checks that replacing clean comments by a space, or
// re-spacing the tokens, does not change the classification.
func checkMetamorphic(t *testing.T, q string, sqlite bool, c *Statement, toks, comments []token) {
	t.Helper()
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
		if c2 := Classify(b.String(), sqlite); !reflect.DeepEqual(c, c2) {
			t.Fatalf("comments matter:\n%q -> %s %+v\n%q -> %s %+v", q, describeClassified(c), c, b.String(), describeClassified(c2), c2)
		}
	}
	// Metamorphic: spacing between tokens does not matter.
	parts := make([]string, len(toks))
	for i, tok := range toks {
		parts[i] = q[tok.start:tok.end]
	}
	spaced := strings.Join(parts, " ")
	if c2 := Classify(spaced, sqlite); !reflect.DeepEqual(c, c2) {
		t.Fatalf("spacing matters:\n%q -> %s %+v\n%q -> %s %+v", q, describeClassified(c), c, spaced, describeClassified(c2), c2)
	}
}

// checkClassifiedInvariants checks the shape promised for each kind.
func checkClassifiedInvariants(t *testing.T, q string, sqlite bool, c *Statement) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("classify(%q, %v) = %s: %s", q, sqlite, describeClassified(c), fmt.Sprintf(format, args...))
	}
	if c.BeginsTx && c.EndsTx {
		fail("both beginsTx and endsTx")
	}
	if c.NumParams < 0 || (c.NumParams > 0) != (c.Style != ParamNone) {
		fail("style %d with numParams %d", c.Style, c.NumParams)
	}
	seen := map[string]bool{}
	for _, n := range c.Names {
		if n == "" || seen[n] {
			fail("names %q: empty or repeated", c.Names)
		}
		seen[n] = true
	}
	maxOrd := 0
	checkVal := func(v Operand) {
		t.Helper()
		if v.IsLit {
			switch x := v.Lit.(type) {
			case nil, int64, bool, string:
			case Decimal:
				checkDecimal(fail, x)
			case Clock:
				switch x {
				case ClockCurrentTimestamp, ClockNow, ClockTransactionTimestamp, ClockDatetimeNow:
				default:
					fail("clock %q", x)
				}
			default:
				fail("literal of type %T", v.Lit)
			}
			if v.Ordinal != 0 || v.Name != "" {
				fail("literal with ordinal or name")
			}
			return
		}
		if v.Ordinal < 1 || v.Ordinal > c.NumParams {
			fail("ordinal %d out of 1..%d", v.Ordinal, c.NumParams)
		}
		maxOrd = max(maxOrd, v.Ordinal)
	}
	checkIdent := func(id Ident) {
		t.Helper()
		if id.Norm == "" || id.Raw == "" || !strings.Contains(q, id.Raw) {
			fail("bad identifier %+v", id)
		}
		if id.Quoted != strings.ContainsAny(id.Raw[:1], "\"`[") {
			fail("identifier %+v quoted wrongly", id)
		}
	}
	sc := shapeCheck{t: t, fail: fail, val: checkVal, ident: checkIdent}
	switch c.Kind {
	case Update:
		sc.update(c)
	case Insert, Upsert:
		sc.insert(c)
	default:
		if c.Schema != nil || c.Table != (Ident{}) || c.Sets != nil || c.Where != nil || c.Cols != nil || c.Rows != nil {
			fail("Other with shape fields")
		}
		return
	}
	if c.Schema != nil {
		checkIdent(*c.Schema)
	}
	// Every placeholder of a bufferable statement is an operand.
	if maxOrd != c.NumParams {
		fail("largest ordinal %d, numParams %d", maxOrd, c.NumParams)
	}
}

// shapeCheck holds the checks checkClassifiedInvariants shares with its
// per-kind shape checks.
type shapeCheck struct {
	t     *testing.T
	fail  func(format string, args ...any)
	val   func(Operand)
	ident func(Ident)
}

// update checks an Update's shape: SET and WHERE lists, deltas numeric, no
// column twice, no key also set.
func (k shapeCheck) update(c *Statement) {
	k.t.Helper()
	fail, checkVal, checkIdent := k.fail, k.val, k.ident
	if len(c.Sets) == 0 || len(c.Where) == 0 || c.Cols != nil || c.Rows != nil {
		fail("update shape")
	}
	checkIdent(c.Table)
	if c.Alias != nil {
		checkIdent(*c.Alias)
	}
	for i, s := range c.Sets {
		checkIdent(s.Col)
		checkVal(s.Val)
		if s.Delta < -1 || s.Delta > 1 || s.NullAsZero && s.Delta == 0 || s.Extreme < -1 || s.Extreme > 1 || s.Extreme != 0 && (s.Delta != 0 || s.NullAsZero) {
			fail("delta %d, null as zero %v, extreme %d", s.Delta, s.NullAsZero, s.Extreme)
		}
		if s.Extreme != 0 && s.Val.IsLit {
			switch s.Val.Lit.(type) {
			case int64, Decimal:
			default:
				fail("non-numeric extreme %v", s.Val.Lit)
			}
		}
		if s.Delta != 0 && s.Val.IsLit {
			switch s.Val.Lit.(type) {
			case int64, Decimal:
			default:
				fail("non-numeric delta %v", s.Val.Lit)
			}
		}
		for _, o := range c.Sets[:i] {
			if strings.EqualFold(o.Col.Norm, s.Col.Norm) {
				fail("column %q set twice", s.Col.Norm)
			}
		}
		for _, w := range c.Where {
			if strings.EqualFold(w.Col.Norm, s.Col.Norm) {
				fail("column %q in SET and WHERE", s.Col.Norm)
			}
		}
	}
	for i, w := range c.Where {
		checkIdent(w.Col)
		checkVal(w.Val)
		if w.Val.IsLit && w.Val.Lit == nil {
			fail("WHERE k = NULL")
		}
		for _, o := range c.Where[:i] {
			if strings.EqualFold(o.Col.Norm, w.Col.Norm) {
				fail("key %q twice", w.Col.Norm)
			}
		}
	}
}

// checkDecimal checks a Decimal's promised form: [-]digits[.digits].
func checkDecimal(fail func(format string, args ...any), d Decimal) {
	s := strings.TrimPrefix(string(d), "-")
	ip, frac, dot := strings.Cut(s, ".")
	ok := ip != "" && (!dot || frac != "")
	for _, r := range ip + frac {
		ok = ok && '0' <= r && r <= '9'
	}
	if !ok {
		fail("bad decimal %q", d)
	}
}

// insert checks an Insert's shape: distinct columns, full rows.
func (k shapeCheck) insert(c *Statement) {
	k.t.Helper()
	fail, checkVal, checkIdent := k.fail, k.val, k.ident
	if len(c.Cols) == 0 || len(c.Rows) == 0 || c.Sets != nil || c.Where != nil {
		fail("insert shape")
	}
	checkIdent(c.Table)
	for i, col := range c.Cols {
		checkIdent(col)
		for _, o := range c.Cols[:i] {
			if strings.EqualFold(o.Norm, col.Norm) {
				fail("column %q twice", col.Norm)
			}
		}
	}
	for _, r := range c.Rows {
		if len(r) != len(c.Cols) {
			fail("row of %d values for %d columns", len(r), len(c.Cols))
		}
		for _, v := range r {
			checkVal(v)
		}
	}
	if u := c.Upsert; u != nil {
		for _, s := range u.Sets {
			checkIdent(s.Col)
			if !s.Excluded {
				checkVal(s.Val)
			}
		}
	}
}

// classifiedSQL writes a bufferable classification back as SQL: raw names,
// unqualified columns, c = c + v deltas, placeholders in the statement's
// style with their ordinals or names.
func classifiedSQL(c *Statement, sqlite bool) string {
	var val func(v Operand, delta bool) string
	val = func(v Operand, delta bool) string {
		if v.Cast != "" { // CAST(...) rather than ::, which SQLite refuses
			plain := v
			plain.Cast = ""
			return "CAST(" + val(plain, delta) + " AS " + v.Cast + ")"
		}
		if !v.IsLit {
			switch {
			case v.Name != "":
				return ":" + v.Name
			case c.Style == ParamDollar:
				return "$" + strconv.Itoa(v.Ordinal)
			default:
				return "?" + strconv.Itoa(v.Ordinal)
			}
		}
		switch x := v.Lit.(type) {
		case nil:
			return "NULL"
		case bool:
			return strings.ToUpper(strconv.FormatBool(x))
		case int64:
			return strconv.FormatInt(x, 10)
		case Decimal:
			if !strings.Contains(string(x), ".") {
				return string(x) + "." // 5. stays a decimal
			}
			return string(x)
		case string:
			return "'" + strings.ReplaceAll(x, "'", "''") + "'"
		case Clock:
			return string(x)
		}
		return "?bad"
	}
	var b strings.Builder
	tbl := c.Table.Raw
	if c.Schema != nil {
		tbl = c.Schema.Raw + "." + tbl
	}
	if c.Alias != nil {
		tbl += " AS " + c.Alias.Raw
	}
	if c.Kind == Update {
		b.WriteString("UPDATE " + tbl + " SET ")
		for i, s := range c.Sets {
			if i > 0 {
				b.WriteString(", ")
			}
			cur := s.Col.Raw
			if s.NullAsZero {
				cur = "COALESCE(" + cur + ", 0)"
			}
			fns := [2]string{"LEAST", "GREATEST"}
			if sqlite {
				fns = [2]string{"min", "max"}
			}
			switch {
			case s.Extreme != 0:
				b.WriteString(s.Col.Raw + " = " + fns[(s.Extreme+1)/2] + "(" + s.Col.Raw + ", " + val(s.Val, true) + ")")
			case s.Delta == 0:
				b.WriteString(s.Col.Raw + " = " + val(s.Val, false))
			case s.Delta == 1:
				b.WriteString(s.Col.Raw + " = " + cur + " + " + val(s.Val, true))
			default:
				b.WriteString(s.Col.Raw + " = " + cur + " - " + val(s.Val, true))
			}
		}
		b.WriteString(" WHERE ")
		for i, w := range c.Where {
			if i > 0 {
				b.WriteString(" AND ")
			}
			b.WriteString(w.Col.Raw + " = " + val(w.Val, false))
		}
		for _, g := range c.Guards {
			b.WriteString(" AND " + g.Col.Raw + " IS ")
			if g.NotNull {
				b.WriteString("NOT ")
			}
			b.WriteString("NULL")
		}
		writeReturning(&b, c)
		return b.String()
	}
	if c.OrReplace {
		b.WriteString("INSERT OR REPLACE INTO " + tbl + " (")
	} else if c.OrIgnore {
		b.WriteString("INSERT OR IGNORE INTO " + tbl + " (")
	} else if c.InsertIgnore {
		b.WriteString("INSERT IGNORE INTO " + tbl + " (")
	} else {
		b.WriteString("INSERT INTO " + tbl + " (")
	}
	for i, col := range c.Cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(col.Raw)
	}
	b.WriteString(") VALUES ")
	for i, r := range c.Rows {
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
	if u := c.Upsert; u != nil && c.OnDuplicateKey {
		b.WriteString(" ON DUPLICATE KEY UPDATE ")
		for i, s := range u.Sets {
			if i > 0 {
				b.WriteString(", ")
			}
			src := val(s.Val, s.Delta != 0)
			if s.Excluded {
				src = "VALUES(" + s.Col.Raw + ")"
			}
			cur := c.Table.Raw + "." + s.Col.Raw
			if s.BareRef {
				cur = s.Col.Raw
			}
			switch s.Delta {
			case 0:
				b.WriteString(s.Col.Raw + " = " + src)
			case 1:
				b.WriteString(s.Col.Raw + " = " + cur + " + " + src)
			default:
				b.WriteString(s.Col.Raw + " = " + cur + " - " + src)
			}
		}
	} else if u != nil && !c.OrReplace {
		b.WriteString(" ON CONFLICT (")
		for i, id := range u.Target {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(id.Raw)
		}
		b.WriteString(") DO UPDATE SET ")
		for i, s := range u.Sets {
			if i > 0 {
				b.WriteString(", ")
			}
			src := val(s.Val, s.Delta != 0)
			if s.Excluded {
				src = "EXCLUDED." + s.Col.Raw
			}
			cur := c.Table.Raw + "." + s.Col.Raw
			if s.BareRef {
				cur = s.Col.Raw
			}
			switch s.Delta {
			case 0:
				b.WriteString(s.Col.Raw + " = " + src)
			case 1:
				b.WriteString(s.Col.Raw + " = " + cur + " + " + src)
			default:
				b.WriteString(s.Col.Raw + " = " + cur + " - " + src)
			}
		}
	}
	if c.IgnoreConflict && !c.OrIgnore && !c.InsertIgnore {
		b.WriteString(" ON CONFLICT ")
		if c.ConflictTarget != nil {
			b.WriteString("(")
			for i, id := range c.ConflictTarget {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(id.Raw)
			}
			b.WriteString(") ")
		}
		b.WriteString("DO NOTHING")
	}
	writeReturning(&b, c)
	return b.String()
}

// writeReturning writes a statement's RETURNING list, if any.
func writeReturning(b *strings.Builder, c *Statement) {
	for i, id := range c.Returning {
		if i == 0 {
			b.WriteString(" RETURNING ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(id.Raw)
	}
}
