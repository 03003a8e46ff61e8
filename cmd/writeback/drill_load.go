package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
)

// The drill's synthetic load on one back table: INSERTs of keys no one
// wrote before, and counter UPDATEs (c = c + 1) of keys the same writer
// inserted, so that what the database must hold is known exactly: every
// acknowledged INSERT is a row, every acknowledged increment one more in
// its counter. Each key is made from a number (id), and so is every other
// value an INSERT needs.

// valueKind is how the drill makes a column's value from an id.
type valueKind string

const (
	valInt  valueKind = "int"  // id
	valText valueKind = "text" // "d<id>"
	valUUID valueKind = "uuid" // a UUID whose last digits are id
	valBool valueKind = "bool" // false
	valTime valueKind = "time" // a fixed instant plus id seconds
)

// loadPlan is the load on one back table; the parent makes it, the child
// runs it (it crosses the process boundary as JSON).
type loadPlan struct {
	Table   string      `json:"table"`
	Insert  string      `json:"insert"`           // INSERT INTO t (keys, counter?, required) VALUES (...)
	Update  string      `json:"update,omitempty"` // UPDATE t SET c = c + 1 WHERE keys; "" without a counter
	KeyVals []valueKind `json:"key_vals"`         // how each key column's value is made
	// InsertVals is how each INSERT value after the key is made; the
	// counter, when there is one, is first and takes 1.
	InsertVals []valueKind `json:"insert_vals"`
	// Select reads the copy back: the key columns as text, then the
	// counter (or 1), one row per key.
	Select string `json:"select"`
	// Counter names the counted column ("" without one).
	Counter string `json:"counter,omitempty"`
}

// planLoad makes the load of a back table from its copy's catalog and its
// rule's key. It says why when the drill cannot make one.
func planLoad(name string, key []string, t *catalog.Table, kind dialect.Kind) (*loadPlan, error) {
	if t == nil {
		return nil, fmt.Errorf("the table does not exist")
	}
	q := func(s string) string { return quoteIdent(s, kind) }
	ph := func(n int) string {
		if kind == dialect.Postgres {
			return "$" + strconv.Itoa(n)
		}
		return "?"
	}
	textType := "TEXT"
	if kind == dialect.MySQL {
		textType = "CHAR"
	}
	p := &loadPlan{Table: name}
	var keyCols []*catalog.Column
	for _, k := range key {
		c := t.Column(k)
		if c == nil {
			return nil, fmt.Errorf("no key column %s", k)
		}
		v, ok := keyValueKind(c)
		if !ok {
			return nil, fmt.Errorf("key column %s is of type %s, for which the drill makes no values", c.Name, c.Type)
		}
		keyCols = append(keyCols, c)
		p.KeyVals = append(p.KeyVals, v)
	}
	isKey := func(c *catalog.Column) bool {
		for _, k := range keyCols {
			if k == c {
				return true
			}
		}
		return false
	}
	var counter *catalog.Column
	for _, c := range t.Columns {
		if !isKey(c) && !c.Generated && c.Class == catalog.Integer {
			counter = c
			break
		}
	}
	cols := append([]*catalog.Column{}, keyCols...)
	if counter != nil {
		cols = append(cols, counter)
		p.InsertVals = append(p.InsertVals, valInt)
		p.Counter = counter.Name
	}
	for _, c := range t.Columns {
		if isKey(c) || c == counter || c.Generated || !c.NotNull || c.Default != "" || c.SequenceDefault {
			continue
		}
		v, ok := otherValueKind(c)
		if !ok {
			return nil, fmt.Errorf("column %s (NOT NULL, no default) is of type %s, for which the drill makes no values", c.Name, c.Type)
		}
		cols = append(cols, c)
		p.InsertVals = append(p.InsertVals, v)
	}
	var names, marks, where, keyText []string
	for i, c := range cols {
		names, marks = append(names, q(c.Name)), append(marks, ph(i+1))
	}
	for i, c := range keyCols {
		keyText = append(keyText, "CAST("+q(c.Name)+" AS "+textType+")")
		where = append(where, q(c.Name)+" = "+ph(i+1))
	}
	table := quoteRuleName(name, kind)
	p.Insert = "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
	count := "1"
	if counter != nil {
		c := q(counter.Name)
		p.Update = "UPDATE " + table + " SET " + c + " = " + c + " + 1 WHERE " + strings.Join(where, " AND ")
		count = "COALESCE(" + c + ", 0)"
	}
	p.Select = "SELECT " + strings.Join(keyText, ", ") + ", " + count + " FROM " + table
	return p, nil
}

// keyValueKind is how a key column's values are made: distinct per id.
func keyValueKind(c *catalog.Column) (valueKind, bool) {
	switch c.Class {
	case catalog.Integer, catalog.Numeric:
		return valInt, true
	case catalog.Text:
		if c.Length == 0 || c.Length >= 12 {
			return valText, true
		}
	case catalog.UUID:
		return valUUID, true
	}
	return "", false
}

// otherValueKind is how a required column's values are made.
func otherValueKind(c *catalog.Column) (valueKind, bool) {
	switch c.Class {
	case catalog.Bool:
		return valBool, true
	case catalog.Time:
		return valTime, true
	case catalog.Float:
		return valInt, true
	}
	return keyValueKind(c)
}

// drillEpoch is the instant time values count from.
var drillEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// value makes the value of kind for id.
func (k valueKind) value(id int64) any {
	switch k {
	case valText:
		return "d" + strconv.FormatInt(id, 10)
	case valUUID:
		return fmt.Sprintf("00000000-0000-4000-8000-%012x", id)
	case valBool:
		return false
	case valTime:
		return drillEpoch.Add(time.Duration(id) * time.Second)
	}
	return id
}

// keyArgs are the key's values for id.
func (p *loadPlan) keyArgs(id int64) []any {
	out := make([]any, len(p.KeyVals))
	for i, k := range p.KeyVals {
		out[i] = k.value(id)
	}
	return out
}

// insertArgs are the INSERT's values for id: the key, the counter at 1,
// the required columns.
func (p *loadPlan) insertArgs(id int64) []any {
	out := p.keyArgs(id)
	for i, k := range p.InsertVals {
		if i == 0 && p.Counter != "" {
			out = append(out, int64(1))
			continue
		}
		out = append(out, k.value(id))
	}
	return out
}

// keyText is the key of id as Select reads it back: each key value as
// text, joined by NUL.
func (p *loadPlan) keyText(id int64) string {
	parts := make([]string, len(p.KeyVals))
	for i, k := range p.KeyVals {
		parts[i] = fmt.Sprint(k.value(id))
	}
	return strings.Join(parts, "\x00")
}
