package sqlparse

// This file recognizes the ON CONFLICT clause of an upsert after the VALUES
// rows of an INSERT:
//
//	ON CONFLICT (k [, k2 ...]) DO UPDATE SET c = <rhs> [, d = <rhs> ...]
//
// where each <rhs> is one of
//
//	v                      an assignment of a literal or placeholder
//	EXCLUDED.c             an assignment of the row's own proposed value
//	t.c + v | v + t.c      a delta (t.c - v too)
//	t.c + EXCLUDED.c       a delta of the row's own proposed value (either order)
//
// with t the statement's table as written; SQLite also takes the column
// unqualified (PostgreSQL calls that ambiguous, so the flag BareRef lets its
// dialect refuse the statement). Anything else (DO NOTHING, a WHERE, a
// conflict target with an index predicate or ON CONSTRAINT, RETURNING) leaves
// the statement unbuffered.

// UpsertClause is the ON CONFLICT ... DO UPDATE clause of an upsert.
type UpsertClause struct {
	// Target is the conflict target's columns, as written.
	Target []Ident
	// Sets is the DO UPDATE SET list, in order.
	Sets []UpsertSet
}

// UpsertSet is one assignment of an upsert's DO UPDATE SET list.
type UpsertSet struct {
	Col Ident
	// Delta is 0 for col = src, +1 for col = col + src, -1 for col = col - src.
	Delta int8
	// Excluded: src is the proposed row's value of Col (EXCLUDED.col);
	// otherwise src is Val.
	Excluded bool
	Val      Operand
	// BareRef: the existing row's column was written unqualified (SQLite
	// reads it as the table's; PostgreSQL refuses it as ambiguous).
	BareRef bool
}

// onConflict consumes the ON CONFLICT clause and sets res.Upsert.
func (p *parser) onConflict(res *Statement) bool {
	if res.Table.Norm == "excluded" {
		return p.no("an upsert into a table named excluded")
	}
	if !p.keyword("on") || !p.keyword("conflict") {
		return p.noTok(p.i, "ON other than ON CONFLICT")
	}
	if p.keyword("do") { // ON CONFLICT DO NOTHING, no target
		res.IgnoreConflict = p.keyword("nothing")
		if !res.IgnoreConflict {
			return p.no("ON CONFLICT DO UPDATE without a conflict target")
		}
		return true
	}
	if !p.op("(") {
		if kwIs(p.word(p.i), "on") {
			return p.no("ON CONFLICT ON CONSTRAINT (a constraint's name, not the key's columns)")
		}
		return p.noTok(p.i, "ON CONFLICT target")
	}
	u := &UpsertClause{}
	for {
		id, ok := p.ident()
		if !ok {
			return p.noAt(p.i, "the ON CONFLICT target is not a list of columns")
		}
		for _, o := range u.Target {
			if sameCol(o, id) {
				return p.no("the ON CONFLICT target names a column twice")
			}
		}
		u.Target = append(u.Target, id)
		if !p.op(",") {
			break
		}
	}
	if !p.op(")") {
		return p.noAt(p.i, "the ON CONFLICT target is not a list of columns")
	}
	if !p.keyword("do") {
		if kwIs(p.word(p.i), "where") {
			return p.no("the ON CONFLICT target has a WHERE (a partial index)")
		}
		return p.noTok(p.i, "expected DO after the ON CONFLICT target")
	}
	if p.keyword("nothing") {
		res.IgnoreConflict, res.ConflictTarget = true, u.Target
		return true
	}
	if !p.keyword("update") || !p.keyword("set") {
		return p.noTok(p.i, "expected DO UPDATE SET or DO NOTHING")
	}
	if !p.upsertSets(res, u, "DO UPDATE SET", "v, EXCLUDED.c, t.c + v or t.c + EXCLUDED.c") {
		return false
	}
	res.Upsert = u
	return true
}

// upsertSets reads the comma-separated assignments of an upsert's update
// clause (clause names it in messages; forms lists the shapes it takes)
// into u, each column once.
func (p *parser) upsertSets(res *Statement, u *UpsertClause, clause, forms string) bool {
	for {
		at := p.i
		s, ok := p.upsertSet(res)
		if !ok {
			return p.nof(clause+" ", p.text(&p.toks[at]), " = ...: not "+forms)
		}
		for _, o := range u.Sets {
			if sameCol(o.Col, s.Col) {
				return p.nof(clause+" names column ", s.Col.Raw, " twice")
			}
		}
		u.Sets = append(u.Sets, s)
		if !p.op(",") {
			return true
		}
	}
}

// upsertSet consumes one assignment of the DO UPDATE SET list.
func (p *parser) upsertSet(res *Statement) (UpsertSet, bool) {
	col, ok := p.ident()
	if !ok || !p.op("=") {
		return UpsertSet{}, false
	}
	s := UpsertSet{Col: col}
	if bare, ok := p.existingRef(res, col); ok {
		// t.c + src | t.c - v
		s.BareRef = bare
		switch {
		case p.op("+"):
			s.Delta = 1
		case p.op("-"):
			s.Delta = -1
		default:
			return UpsertSet{}, false
		}
		if p.excludedRef(col) {
			s.Excluded = s.Delta > 0 // c - EXCLUDED.c is left to the database
			return s, s.Excluded
		}
		var kind valueKind
		if s.Val, kind = p.value(); kind != vkParam && kind != vkNumber {
			return UpsertSet{}, false
		}
		return s, true
	}
	if p.excludedRef(col) {
		s.Excluded = true
	} else {
		var kind valueKind
		if s.Val, kind = p.value(); kind == vkNone {
			return UpsertSet{}, false
		}
		if !p.op("+") {
			return s, true
		}
		if kind != vkParam && kind != vkNumber {
			return UpsertSet{}, false
		}
	}
	if !s.Excluded {
		// v + t.c
		bare, ok := p.existingRef(res, col)
		s.Delta, s.BareRef = 1, bare
		return s, ok
	}
	if !p.op("+") {
		return s, true // EXCLUDED.c
	}
	// EXCLUDED.c + t.c
	bare, ok := p.existingRef(res, col)
	s.Delta, s.BareRef = 1, bare
	return s, ok
}

// excludedRef consumes EXCLUDED.col for exactly the column col (under
// ON DUPLICATE KEY UPDATE: VALUES(col), or alias.col after VALUES ... AS
// alias).
func (p *parser) excludedRef(col Ident) bool {
	save := p.i
	if p.odku {
		if p.keyword("values") {
			if p.op("(") {
				if id, ok := p.ident(); ok && id.Norm == col.Norm && p.op(")") {
					return true
				}
			}
		} else if p.rowAlias != nil {
			if id, ok := p.ident(); ok && id.Norm == p.rowAlias.Norm && p.op(".") {
				if c, ok := p.ident(); ok && c.Norm == col.Norm {
					return true
				}
			}
		}
		p.i = save
		return false
	}
	t := p.peek()
	if t.kind == tkIdent && kwIs(p.text(t), "excluded") || t.kind == tkQIdent && unquoteIdent(p.text(t)) == "excluded" {
		p.advance()
		if p.op(".") {
			if id, ok := p.ident(); ok && id.Norm == col.Norm {
				return true
			}
		}
	}
	p.i = save
	return false
}

// onDuplicateKey consumes MySQL's ON DUPLICATE KEY UPDATE c = <rhs>, ...
// and sets res.Upsert (with no Target: MySQL names none) and
// res.OnDuplicateKey. The forms of <rhs> are those of ON CONFLICT, with
// VALUES(c) (or alias.c after VALUES ... AS alias) for EXCLUDED.c; a bare
// c is the existing row's, as MySQL reads it.
func (p *parser) onDuplicateKey(res *Statement, rowAlias *Ident) bool {
	if !p.keyword("on") || !p.keyword("duplicate") || !p.keyword("key") || !p.keyword("update") {
		return p.noTok(p.i, "expected ON DUPLICATE KEY UPDATE")
	}
	p.odku, p.rowAlias = true, rowAlias
	defer func() { p.odku, p.rowAlias = false, nil }()
	u := &UpsertClause{}
	if !p.upsertSets(res, u, "ON DUPLICATE KEY UPDATE", "v, VALUES(c), c + v or c + VALUES(c)") {
		return false
	}
	res.Upsert, res.OnDuplicateKey = u, true
	return true
}

// existingRef consumes a reference to the existing row's column col: t.col,
// or col alone (bare). It leaves EXCLUDED.col alone.
func (p *parser) existingRef(res *Statement, col Ident) (bare, ok bool) {
	save := p.i
	id, ok := p.ident()
	if !ok {
		return false, false
	}
	if p.op(".") {
		if id.Norm != res.Table.Norm || p.rowAlias != nil && id.Norm == p.rowAlias.Norm {
			p.i = save
			return false, false
		}
		c, ok := p.ident()
		if !ok || c.Norm != col.Norm {
			p.i = save
			return false, false
		}
		return false, true
	}
	if id.Norm != col.Norm {
		p.i = save
		return false, false
	}
	return true, true
}
