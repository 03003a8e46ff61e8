package writeback

import (
	"slices"
	"strings"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
)

// This file buffers UPDATEs whose WHERE adds IS [NOT] NULL conditions to
// the key — the soft-delete shape ORMs write: UPDATE pages SET views =
// views + 1 WHERE id = $1 AND deleted_at IS NULL. Whether such an UPDATE
// matches its row depends on the guarded column's value: the key's buffered
// row decides where it sets the column (dirtyset.UpdateGuarded); otherwise
// the database's row does, known from a probe that asks for the key and the
// guards together and remembered beside the table's known keys until a
// write may have changed the column. The write is then buffered as a plain
// UPDATE, or, when a guard is false, answered with 0 rows and not buffered.

// planGuards checks an UPDATE's guards against the rule and the catalog
// and records them in info; false sends the statement to the database.
func (cn *Connector) planGuards(info *stmtInfo, t *tableState, sch *schemaState, w *whyNot) bool {
	if t.known == nil || sch == nil {
		// rows_affected: assume, or no catalog: the database decides
		return w.not("WHERE has IS [NOT] NULL besides the key, which is buffered only with rows_affected: exact and the catalog")
	}
	tab := sch.tables[t.rule.Name]
	if tab == nil {
		return w.noTable(t.rule.Name)
	}
	for _, g := range info.c.Guards {
		if slices.Contains(t.rule.Key, g.Col.Norm) || tab.Column(g.Col.Norm) == nil {
			if w.on() {
				w.not("WHERE has IS [NOT] NULL on " + g.Col.Norm + ", a key column or no column of the table")
			}
			return false
		}
		info.guards = append(info.guards, dirtyset.Guard{Col: g.Col.Norm, Null: !g.NotNull, Fold: cn.dia.Kind() == dialect.SQLite || cn.dia.Kind() == dialect.MySQL})
	}
	return true
}

// guardKey is what is known of one key's row against one set of guards.
type guardKey struct {
	id   dirtyset.ID
	spec string // the guards, as guardSpec writes them
}

// guardSpec names a set of guards: "deleted_at null", "a null,b not null".
func guardSpec(guards []dirtyset.Guard) string {
	var sb strings.Builder
	for i, g := range guards {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(g.Col)
		if g.Null {
			sb.WriteString(" null")
		} else {
			sb.WriteString(" not null")
		}
	}
	return sb.String()
}

// guardsHold tells what is known of id's row against the guards: ExistYes
// (it exists and satisfies them), ExistNo (no row does), ExistUnknown.
func (k *knownRows) guardsHold(id dirtyset.ID, guards []dirtyset.Guard) dirtyset.Existence {
	if !k.hasGuards.Load() {
		return dirtyset.ExistUnknown
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	holds, ok := k.guards.Get(guardKey{id, guardSpec(guards)})
	switch {
	case !ok:
		return dirtyset.ExistUnknown
	case holds:
		return dirtyset.ExistYes
	}
	return dirtyset.ExistNo
}

// learnGuards records what the database said of id's row against the
// guards, unless the set was forgotten since epoch.
func (k *knownRows) learnGuards(epoch uint64, id dirtyset.ID, guards []dirtyset.Guard, holds bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.epoch.Load() != epoch {
		return
	}
	spec := guardSpec(guards)
	if k.specs == nil {
		k.specs = map[string][]string{}
	}
	if _, ok := k.specs[spec]; !ok {
		cols := make([]string, len(guards))
		for i, g := range guards {
			cols[i] = g.Col
		}
		k.specs[spec] = cols
	}
	k.hasGuards.Store(true)
	k.guards.Add(guardKey{id, spec}, holds)
}

// dropGuards forgets what is known of every row against guards: a write
// may have changed a guarded column.
func (k *knownRows) dropGuards() {
	if !k.hasGuards.Load() {
		return
	}
	k.mu.Lock()
	k.guards.Purge()
	k.epoch.Add(1) // a probe answered before the write must not be learned after it
	k.mu.Unlock()
}

// dropGuardsOf forgets what is known of the rows of ids against the
// guards on any of cols, after a write to them set those columns; with all,
// against every guard (the write may have inserted the row).
func (k *knownRows) dropGuardsOf(ids []dirtyset.ID, cols []string, all bool) {
	if !k.hasGuards.Load() {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for spec, guarded := range k.specs {
		if !all && !slices.ContainsFunc(guarded, func(c string) bool { return slices.Contains(cols, c) }) {
			continue
		}
		for _, id := range ids {
			k.guards.Remove(guardKey{id, spec})
		}
	}
}

// setCols lists the columns an UPDATE sets.
func setCols(info *stmtInfo) []string {
	cols := make([]string, len(info.c.Sets))
	for i, s := range info.c.Sets {
		cols[i] = s.Col.Norm
	}
	return cols
}

// planIgnore checks an INSERT that skips a row whose key exists (ON
// CONFLICT DO NOTHING, INSERT OR IGNORE, MySQL's INSERT IGNORE): it is
// buffered, one row at a time, only where the key is the one thing that can
// make the database skip the row — no other unique constraint, no CHECK,
// and on MySQL no foreign key (INSERT IGNORE skips a row its parent lacks)
// — and its result can be exact.
func planIgnore(info *stmtInfo, t *tableState, sch *schemaState, kind dialect.Kind, w *whyNot) bool {
	c := info.c
	const what = "an INSERT that skips an existing key (ON CONFLICT DO NOTHING, OR IGNORE, INSERT IGNORE)"
	if t.known == nil || sch == nil {
		return w.not(what + " is buffered only with rows_affected: exact and the catalog")
	}
	if c.ConflictTarget != nil {
		if len(c.ConflictTarget) != len(t.rule.Key) {
			return w.not("the ON CONFLICT target is not the key")
		}
		for _, id := range c.ConflictTarget {
			if !slices.Contains(t.rule.Key, id.Norm) {
				return w.not("the ON CONFLICT target is not the key")
			}
		}
	}
	tab := sch.tables[t.rule.Name]
	if tab == nil {
		return w.noTable(t.rule.Name)
	}
	if len(tab.Checks) > 0 {
		return w.not(what + ": the table has CHECK constraints, which could skip the row too")
	}
	if kind == dialect.MySQL && len(tab.ForeignKeysOut) > 0 {
		return w.not(what + ": the table has foreign keys, whose failure INSERT IGNORE skips too")
	}
	if why := onlyKeyUnique(t, tab); why != "" {
		return w.not(what + ": " + why + ", which could skip the row too")
	}
	info.ignore = true
	return true
}

// planDuplicateKey checks MySQL's INSERT ... ON DUPLICATE KEY UPDATE: it
// names no conflict target, so it is buffered only where the rule's key is
// the table's one unique key (any other could be the one a row hits), and
// with rows_affected: exact and the catalog, since MySQL counts an
// inserted row 1 and an updated one 2: whether the key exists must be known.
func planDuplicateKey(t *tableState, sch *schemaState, w *whyNot) bool {
	const what = "INSERT ... ON DUPLICATE KEY UPDATE"
	if t.known == nil || sch == nil {
		return w.not(what + " is buffered only with rows_affected: exact and the catalog (MySQL counts an inserted row 1, an updated one 2)")
	}
	tab := sch.tables[t.rule.Name]
	if tab == nil {
		return w.noTable(t.rule.Name)
	}
	if why := onlyKeyUnique(t, tab); why != "" {
		return w.not(what + ": " + why + ", which the row could hit instead of the key")
	}
	return true
}

// onlyKeyUnique says why the rule's key is not the only unique key of tab,
// "" when it is.
func onlyKeyUnique(t *tableState, tab *catalog.Table) string {
	if len(tab.OtherUniques) > 0 {
		return "the table has a partial or expression unique index"
	}
	isKey := func(cols []string) bool {
		if len(cols) != len(t.rule.Key) {
			return false
		}
		for _, col := range cols {
			if !slices.ContainsFunc(t.rule.Key, func(k string) bool { return strings.EqualFold(k, col) }) {
				return false
			}
		}
		return true
	}
	if len(tab.PrimaryKey) > 0 && !isKey(tab.PrimaryKey) {
		return "the table's primary key is not the rule's key"
	}
	for _, u := range tab.Uniques {
		if !isKey(u.Columns) {
			return "the table has a unique index other than the key"
		}
	}
	return ""
}
