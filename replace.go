package writeback

import (
	"slices"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file buffers SQLite's INSERT OR REPLACE and REPLACE INTO. REPLACE
// deletes every row the new one conflicts with, on any unique key, then
// inserts it: the columns it leaves out get their defaults, delete triggers
// may fire, foreign keys to the table may act on the deletion, and a rowid
// table's row gets a new rowid. Where none of that can happen it is an
// upsert that assigns every column its proposed value, and it is buffered
// as one (upsert.go); elsewhere it goes to the database.

// planReplace checks a REPLACE against the catalog and, where it is that
// upsert, sets info.c to a copy of the statement whose upsert clause names
// the rule's key as its target and assigns every other column.
func planReplace(info *stmtInfo, t *tableState, sch *schemaState, w *whyNot) bool {
	const what = "REPLACE"
	if sch == nil {
		return w.not(what + " is buffered only with the catalog")
	}
	tab := sch.tables[t.rule.Name]
	if tab == nil {
		return w.noTable(t.rule.Name)
	}
	if why := onlyKeyUnique(t, tab); why != "" {
		return w.not(what + ": " + why + " (REPLACE deletes the rows the new one conflicts with on any unique key)")
	}
	if len(tab.Triggers) > 0 {
		return w.not(what + ": the table has triggers (REPLACE fires insert triggers, and delete triggers under recursive_triggers, where an upsert fires update triggers)")
	}
	if len(tab.ForeignKeysIn) > 0 {
		return w.not(what + ": foreign keys reference the table (their ON DELETE actions run on the rows REPLACE deletes)")
	}
	keys := t.rule.Key
	if !tab.WithoutRowid {
		if col := tab.Column(keys[0]); len(keys) != 1 || col == nil || !col.Identity {
			return w.not(what + ": a rowid table whose key is not its INTEGER PRIMARY KEY (REPLACE gives the row a new rowid)")
		}
	}
	c := info.c
	for _, col := range tab.Columns {
		if col.Generated {
			return w.not(what + ": the table has a generated column (" + col.Name + ")")
		}
		if !slices.ContainsFunc(c.Cols, func(id sqlparse.Ident) bool { return tab.Column(id.Norm) == col }) {
			return w.not(what + " does not list column " + col.Name + " (REPLACE gives it its default, not the existing row's value)")
		}
	}
	u := &sqlparse.UpsertClause{}
	for _, id := range c.Cols {
		if slices.Contains(keys, id.Norm) {
			u.Target = append(u.Target, id)
		} else {
			u.Sets = append(u.Sets, sqlparse.UpsertSet{Col: id, Excluded: true})
		}
	}
	if len(u.Sets) == 0 {
		return w.not(what + " into a table of key columns only")
	}
	n := *c
	n.Upsert = u
	info.c = &n
	return true
}
