package writeback

import (
	"database/sql/driver"
	"slices"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/sqlparse"
	"github.com/writeback-go/writeback/internal/value"
)

// This file buffers upserts, INSERT ... ON CONFLICT (key) DO UPDATE SET ...,
// on PostgreSQL and SQLite: each row becomes "insert this row if the key is
// absent, else apply this update", coalesced per key in the dirty set
// (internal/dirtyset/upsert.go) and flushed as one upsert per row. Both
// databases count one affected row per proposed row, inserted or updated,
// so RowsAffected is exact without knowing whether the key exists.

// upsertShapeOK reports whether an upsert's ON CONFLICT clause can be
// buffered for a table keyed by keys: the conflict target is exactly the
// key, no SET changes a key column, and every EXCLUDED.c names an inserted
// column (otherwise its value is the column's default, the database's).
func upsertShapeOK(c *sqlparse.Statement, keys []string, kind dialect.Kind, w *whyNot) bool {
	u := c.Upsert
	switch {
	case c.OnDuplicateKey:
		// MySQL names no target: planDuplicateKey checks that the key is
		// the table's only unique key.
	case kind != dialect.Postgres && kind != dialect.SQLite:
		return w.not("ON CONFLICT upserts are buffered on PostgreSQL and SQLite only")
	case len(u.Target) != len(keys):
		return w.not("the ON CONFLICT target is not the key")
	}
	for _, k := range keys {
		if !c.OnDuplicateKey && !slices.ContainsFunc(u.Target, func(id sqlparse.Ident) bool { return id.Norm == k }) {
			return w.not("the ON CONFLICT target is not the key")
		}
	}
	for _, s := range u.Sets {
		if slices.Contains(keys, s.Col.Norm) {
			return w.not("the upsert's update changes a key column")
		}
		if s.Excluded && upsertInsertIndex(c, s.Col) < 0 {
			if w.on() {
				w.not("DO UPDATE SET reads EXCLUDED." + s.Col.Norm + ", a column the INSERT does not set (its default is the database's)")
			}
			return false
		}
	}
	return true
}

// upsertInsertIndex is the position of col among the inserted columns, or -1.
func upsertInsertIndex(c *sqlparse.Statement, col sqlparse.Ident) int {
	return slices.IndexFunc(c.Cols, func(id sqlparse.Ident) bool { return id.Norm == col.Norm })
}

// planUpsertSets finds the catalog's column of each DO UPDATE SET clause:
// every one exists, a delta is on a numeric column, and a placeholder is
// used for one type class (use).
//
// A table with CHECK constraints is refused: both databases check each
// upsert's proposed row against them even when its key exists (the
// statement then fails and updates nothing), and a buffered upsert whose
// key exists is flushed as an UPDATE, which would apply what the statement
// would have been refused. The other checks of a proposed row (types, NOT
// NULL) are made at Exec by the catalog.
func planUpsertSets(info *stmtInfo, tab *catalog.Table, use func(*catalog.Column, sqlparse.Operand, string) bool, w *whyNot) bool {
	if len(tab.Checks) > 0 {
		return w.not("an upsert into a table with CHECK constraints (both databases check the proposed row even when the key exists)")
	}
	sets := info.c.Upsert.Sets
	info.updCols = make([]*catalog.Column, len(sets))
	for i, s := range sets {
		col := tab.Column(s.Col.Norm)
		if col == nil {
			return use(nil, sqlparse.Operand{}, s.Col.Norm)
		}
		if !s.Excluded && !use(col, s.Val, s.Col.Norm) {
			return false
		}
		if s.Delta != 0 && !numericClass(col.Class) {
			return w.notNumeric(col)
		}
		info.updCols[i] = col
	}
	return true
}

// bufferUpsert buffers a bufferable upsert, all its rows or none.
func (cn *Connector) bufferUpsert(a *writeAttempt, t *tableState, info *stmtInfo, args []driver.NamedValue, adm dirtyset.Admission) (driver.Result, uint64, dirtyset.Outcome, error) {
	c := info.c
	if c.OnDuplicateKey {
		return cn.bufferDuplicateKey(a, t, info, args, adm)
	}
	if len(c.Rows) == 1 && len(c.Cols) <= 8 && len(info.keyPos) <= 4 && len(c.Upsert.Sets) <= 8 {
		// Small fixed arrays keep the common one-row statement off the
		// heap: the dirty set copies what it keeps.
		var rowBuf [8]any
		var keyBuf [4]any
		var changeBuf [8]dirtyset.Change
		row, kv := rowBuf[:len(c.Cols)], keyBuf[:len(info.keyPos)]
		var clk clockReading
		changes, ok := cn.upsertRow(info, c.Rows[0], args, row, kv, changeBuf[:0], &clk)
		if !ok {
			return nil, 0, dirtyset.PassThrough, nil
		}
		return cn.upsertRows(t, info, [][]any{kv}, [][]any{row}, [][]dirtyset.Change{changes}, adm, nil)
	}
	keys, rows, upd, ok := cn.upsertValues(info, args)
	if !ok {
		return nil, 0, dirtyset.PassThrough, nil
	}
	return cn.upsertRows(t, info, keys, rows, upd, adm, nil)
}

// bufferDuplicateKey buffers MySQL's INSERT ... ON DUPLICATE KEY UPDATE
// (planDuplicateKey). MySQL counts 1 for a row it inserts, 2 for a row it
// updates and 0 for a row the update leaves as it was (1 with
// clientFoundRows, which a buffered UPDATE's count follows too), so the
// statement is buffered only when, for every row, whether its key exists
// is known (a row buffered for it, a key known to exist, or the probe's
// answer) and, where it exists, whether the update changes the row
// (upsertCount).
func (cn *Connector) bufferDuplicateKey(a *writeAttempt, t *tableState, info *stmtInfo, args []driver.NamedValue, adm dirtyset.Admission) (driver.Result, uint64, dirtyset.Outcome, error) {
	if a == nil || a.assume || t.known == nil {
		return nil, 0, dirtyset.PassThrough, nil // the count cannot be told
	}
	epoch := t.known.epoch.Load()
	keys, rows, upd, ok := cn.upsertValues(info, args)
	if !ok {
		return nil, 0, dirtyset.PassThrough, nil
	}
	ids := make([]dirtyset.ID, len(keys))
	for i, kv := range keys {
		ids[i] = dirtyset.MakeID(kv)
	}
	cnt := &dirtyset.UpsertCount{IfExists: make([]int8, len(rows)), Exists: func(id dirtyset.ID) dirtyset.Existence {
		switch {
		case t.known.has(id):
			return dirtyset.ExistYes
		case slices.Contains(a.probed, id) && a.present:
			return dirtyset.ExistYes // the probe asked for this key alone
		case slices.Contains(a.probed, id) && a.absent:
			return dirtyset.ExistNo
		}
		return dirtyset.ExistUnknown
	}}
	for i := range upd {
		cnt.IfExists[i] = upsertCount(info, upd[i], cn.foundRows)
	}
	res, lsn, out, err := cn.upsertRows(t, info, keys, rows, upd, adm, cnt)
	switch out {
	case dirtyset.Probe:
		if a.present || a.absent {
			return nil, 0, dirtyset.PassThrough, nil // asked once already: the database decides
		}
		// The keys neither buffered nor known: one probe asks for them all.
		a.probed = a.probed[:0]
		for i, kv := range keys {
			if !t.set.Busy(kv) && !t.known.has(ids[i]) {
				a.probeKeys, a.probed = append(a.probeKeys, kv), append(a.probed, ids[i])
			}
		}
		if len(a.probeKeys) == 0 {
			return nil, 0, dirtyset.PassThrough, nil // they changed meanwhile: the database decides
		}
	case dirtyset.Buffered:
		t.known.learn(epoch, ids...) // every key exists once the statement ran
	}
	return res, lsn, out, err
}

// upsertCount is what MySQL counts for an upsert row whose key exists: 2
// when its update surely changes the row (a delta other than 0 on a NOT
// NULL integer or decimal column); when it surely leaves it as it was
// (every change a delta of 0), 1 with clientFoundRows and 0 without
// (foundRows, see Connector.foundRows); -1 when that depends on the row's
// values, which only the database knows, or the count of an unchanged row
// cannot be told.
func upsertCount(info *stmtInfo, changes []dirtyset.Change, foundRows int8) int8 {
	same := true
	for i, ch := range changes {
		zero := ch.Delta && ch.Val == int64(0)
		if !zero {
			same = false
		}
		if !ch.Delta || zero || info.updCols == nil {
			continue
		}
		col := info.updCols[i]
		if _, isInt := ch.Val.(int64); isInt && col.NotNull && (col.Class == catalog.Integer || col.Class == catalog.Numeric) {
			return 2
		}
	}
	if same {
		return foundRows
	}
	return -1
}

// upsertValues resolves every row of an upsert (upsertRow); ok is false
// when it cannot be buffered exactly.
func (cn *Connector) upsertValues(info *stmtInfo, args []driver.NamedValue) (keys, rows [][]any, upd [][]dirtyset.Change, ok bool) {
	c := info.c
	keys = make([][]any, len(c.Rows))
	rows = make([][]any, len(c.Rows))
	upd = make([][]dirtyset.Change, len(c.Rows))
	var clk clockReading // one instant for every row
	for i, src := range c.Rows {
		row, kv := make([]any, len(src)), make([]any, len(info.keyPos))
		changes, ok := cn.upsertRow(info, src, args, row, kv, nil, &clk)
		if !ok {
			return nil, nil, nil, false
		}
		keys[i], rows[i], upd[i] = kv, row, changes
	}
	return keys, rows, upd, true
}

// upsertRow resolves one VALUES row of an upsert into row (its values), kv
// (its key values) and changes (its update part, appended), with the
// statement's clock reading; ok is false when it cannot be buffered exactly.
func (cn *Connector) upsertRow(info *stmtInfo, src []sqlparse.Operand, args []driver.NamedValue, row, kv []any, changes []dirtyset.Change, clk *clockReading) ([]dirtyset.Change, bool) {
	for j := range src {
		v, ok := argValue(&src[j], args)
		if !ok {
			return nil, false
		}
		row[j] = v
	}
	if !cn.exactInsertRow(info, row, clk) {
		return nil, false
	}
	for j, p := range info.keyPos {
		if kv[j] = row[p]; kv[j] == nil {
			return nil, false
		}
	}
	return cn.upsertChanges(changes, info, row, args, clk)
}

// upsertRows journals and buffers an upsert's resolved rows; cnt, when not
// nil, asks for MySQL's count (dirtyset.UpsertCount), which is then the
// result's RowsAffected.
func (cn *Connector) upsertRows(t *tableState, info *stmtInfo, keys, rows [][]any, upd [][]dirtyset.Change, adm dirtyset.Admission, cnt *dirtyset.UpsertCount) (driver.Result, uint64, dirtyset.Outcome, error) {
	var jw dirtyset.Journal
	var w *durable.Write
	if j := cn.buf.journal; j != nil {
		bp := j.Buffer()
		defer j.PutBuffer(bp)
		rec, err := durable.EncodeUpsert((*bp)[:0], t.rule.Name, info.names, info.c.Cols, keys, rows, upd)
		if err != nil {
			return nil, 0, dirtyset.PassThrough, nil
		}
		*bp = rec
		w = j.NewWrite(rec)
		defer j.PutWrite(w)
		jw = w
	}
	out, lsn := t.set.UpsertCounted(keys, rows, info.c.Cols, upd, info.names, jw, adm, cnt)
	if cnt != nil && out == dirtyset.Buffered {
		return bufferAnswer(out, lsn, int(cnt.Affected), w)
	}
	return bufferAnswer(out, lsn, len(rows), w)
}

// upsertChanges resolves the DO UPDATE SET list for one proposed row,
// appending to changes: EXCLUDED.c is the row's own value of c, t.c + NULL
// is an assignment of NULL, a subtraction is a negated delta; each value is
// checked exact for its column by the catalog (when there is one).
func (cn *Connector) upsertChanges(changes []dirtyset.Change, info *stmtInfo, row []any, args []driver.NamedValue, clk *clockReading) ([]dirtyset.Change, bool) {
	sets := info.c.Upsert.Sets
	kind := cn.dia.Kind()
	for i := range sets {
		s := &sets[i]
		var v any
		if s.Excluded {
			v = row[upsertInsertIndex(info.c, s.Col)]
		} else {
			var ok bool
			if v, ok = argValue(&s.Val, args); !ok {
				return nil, false
			}
		}
		var col *catalog.Column
		if info.updCols != nil {
			col = info.updCols[i]
		}
		if s.Delta == 0 || v == nil {
			if col != nil {
				var ok bool
				if v, ok = assignValue(kind, col, v, clk); !ok {
					return nil, false
				}
			}
			changes = append(changes, dirtyset.Change{Col: s.Col, Val: v})
			continue
		}
		if !value.IsDelta(v) {
			return nil, false
		}
		if s.Delta < 0 {
			var ok bool
			if v, ok = value.Negate(v); !ok {
				return nil, false
			}
		}
		if col != nil && !catalog.DeltaExact(kind, col, v) {
			return nil, false
		}
		changes = append(changes, dirtyset.Change{Col: s.Col, Delta: true, Val: v})
	}
	return changes, true
}
