package sqlparse

import (
	"strings"
	"unicode/utf8"
)

// This file recognizes a read of one row by its key:
//
//	SELECT * | col [, col ...] FROM t WHERE k = v [AND k2 = v2 ...]
//	    [ORDER BY col [ASC | DESC] [, ...]] [LIMIT n] [;]
//
// where each col is a column of t (optionally written t.col) and each v a
// placeholder or literal. Such a read returns at most the row of one key, so
// the driver can answer it from the database plus that key's buffered
// deltas instead of waiting for a flush.

// SelectCol is one column of a key read's select list.
type SelectCol struct {
	Col Ident
	// Raw is the item as written (t.col included), replaced by an
	// expression of it when the driver rewrites the list.
	Raw string
}

// KeyRead is a read of the row of one key.
type KeyRead struct {
	Schema *Ident // set when the read wrote schema.table
	Table  Ident
	// Select is the select list; SelectAll is set for *, and Select is nil.
	Select    []SelectCol
	SelectAll bool
	// ListStart and ListEnd are where the select list is in the text.
	ListStart, ListEnd int
	// Where holds the equalities of the WHERE clause, in order.
	Where     []KeyEq
	Style     ParamStyle
	NumParams int
}

// ClassifyKeyRead returns the read of one row by key that query is, or nil
// when it is anything else (sqliteParams as for Classify). A nil result is
// always safe: the read then waits for the flush of the tables it names.
func ClassifyKeyRead(query string, sqliteParams bool) *KeyRead {
	if !utf8.ValidString(query) || strings.IndexByte(query, 0) >= 0 {
		return nil
	}
	c := classifier{q: query, sqlite: sqliteParams}
	lx := lexer{s: query, sqlite: sqliteParams}
	var buf [48]token
	toks := buf[:0]
	for {
		t := lx.next()
		if t.amb || t.kind == tkOther {
			return nil
		}
		switch t.kind {
		case tkComment:
			continue
		case tkParam:
			c.bind(&t)
		}
		toks = append(toks, t)
		if t.kind == tkEOF {
			break
		}
	}
	if c.unsafe || c.forms&(c.forms-1) != 0 {
		return nil
	}
	p := parser{q: &query, toks: toks}
	if !kwIs(p.word(0), "select") {
		return nil
	}
	p.i = 1
	kr := &KeyRead{Style: c.style, NumParams: c.nVar}
	if !p.keyRead(kr) {
		return nil
	}
	return kr
}

// keyRead parses what follows SELECT.
func (p *parser) keyRead(kr *KeyRead) bool {
	// The parser's helpers take a Statement: the table and WHERE are read
	// into one and copied.
	res := &Statement{}
	var quals []Ident
	kr.ListStart = p.peek().start
	if p.op("*") {
		kr.SelectAll = true
	} else {
		for {
			start := p.peek().start
			q, ok := p.ident()
			if !ok {
				return false
			}
			col, qual := q, Ident{}
			if p.op(".") {
				if col, ok = p.ident(); !ok {
					return false
				}
				qual = q
			}
			kr.Select = append(kr.Select, SelectCol{Col: col, Raw: (*p.q)[start:p.toks[p.i-1].end]})
			quals = append(quals, qual)
			if !p.op(",") {
				break
			}
		}
	}
	kr.ListEnd = p.toks[p.i-1].end
	if !p.keyword("from") || !p.table(res) || !p.keyword("where") {
		return false
	}
	for _, qual := range quals {
		if qual.Raw != "" && qual.Norm != res.Table.Norm {
			return false
		}
	}
	for {
		col, ok := p.column(res)
		if !ok || !p.op("=") || !p.fresh(res, col) {
			return false
		}
		v, kind := p.value()
		if kind == vkNone || kind == vkClock || v.IsLit && v.Lit == nil {
			return false
		}
		res.Where = append(res.Where, KeyEq{Col: col, Val: v})
		if !p.keyword("and") {
			break
		}
	}
	if p.keyword("order") {
		if !p.keyword("by") {
			return false
		}
		for {
			if _, ok := p.column(res); !ok {
				return false
			}
			_ = p.keyword("asc") || p.keyword("desc")
			if !p.op(",") {
				break
			}
		}
	}
	if p.keyword("limit") {
		if _, kind := p.value(); kind != vkParam && kind != vkNumber {
			return false
		}
	}
	if !p.end() {
		return false
	}
	kr.Schema, kr.Table, kr.Where = res.Schema, res.Table, res.Where
	return true
}
