package writeback

import (
	"slices"

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
func (cn *Connector) planGuards(info *stmtInfo, t *tableState, sch *schemaState) bool {
	if t.known == nil || sch == nil {
		return false // rows_affected: assume, or no catalog: the database decides
	}
	tab := sch.tables[t.rule.Name]
	if tab == nil {
		return false
	}
	for _, g := range info.c.Guards {
		if slices.Contains(t.rule.Key, g.Col.Norm) || tab.Column(g.Col.Norm) == nil {
			return false
		}
		info.guards = append(info.guards, dirtyset.Guard{Col: g.Col.Norm, Null: !g.NotNull, Fold: cn.dia.Kind() == dialect.SQLite})
	}
	return true
}

// guardKey is one key's guard known to hold in the database.
type guardKey struct {
	id   dirtyset.ID
	col  string
	null bool
}

// guardsHold reports whether every guard is known to hold for id's row.
func (k *knownRows) guardsHold(id dirtyset.ID, guards []dirtyset.Guard) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, g := range guards {
		if _, ok := k.guards.Get(guardKey{id, g.Col, g.Null}); !ok {
			return false
		}
	}
	return true
}

// learnGuards records that the guards hold for id's row, unless the set was
// forgotten since epoch.
func (k *knownRows) learnGuards(epoch uint64, id dirtyset.ID, guards []dirtyset.Guard) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.epoch.Load() != epoch {
		return
	}
	k.hasGuards.Store(true)
	for _, g := range guards {
		k.guards.Add(guardKey{id, g.Col, g.Null}, struct{}{})
	}
}

// dropGuards forgets every guard known to hold: a write may have changed a
// guarded column.
func (k *knownRows) dropGuards() {
	if !k.hasGuards.Load() {
		return
	}
	k.mu.Lock()
	k.guards.Purge()
	k.epoch.Add(1) // a probe answered before the write must not be learned after it
	k.mu.Unlock()
}

// dropGuardsOf forgets the guards known for the rows of ids, after a
// buffered write to them: it may set a guarded column.
func (k *knownRows) dropGuardsOf(ids []dirtyset.ID, cols []string) {
	if !k.hasGuards.Load() {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range ids {
		for _, c := range cols {
			k.guards.Remove(guardKey{id, c, true})
			k.guards.Remove(guardKey{id, c, false})
		}
	}
}

// changedCols lists the columns a bufferable write sets.
func changedCols(info *stmtInfo) []string {
	var cols []string
	for _, s := range info.c.Sets {
		cols = append(cols, s.Col.Norm)
	}
	for _, c := range info.c.Cols {
		cols = append(cols, c.Norm)
	}
	if u := info.c.Upsert; u != nil {
		for _, s := range u.Sets {
			cols = append(cols, s.Col.Norm)
		}
	}
	return cols
}
