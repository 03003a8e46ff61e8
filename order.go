package writeback

import "github.com/writeback-go/writeback/internal/sqlparse"

// This file is the statement side of the multi-instance ordering guard
// (TableRule.OrderBy): the flush writes a buffered row's assignments only
// where the stored order_by value is not newer than the row's
// (internal/dialect/order.go). A write that assigns columns without
// assigning the order_by column has no value to be ordered by: it goes to
// the database, after the barrier, as any statement the buffer cannot
// take. A write of deltas (and GREATEST, LEAST) alone commutes with every
// other write and needs no order; an INSERT writes a row that does not
// exist yet, so it needs none either.

// planOrder reports whether the statement of info can be buffered under
// t's order_by rule.
func planOrder(info *stmtInfo, t *tableState, w *whyNot) bool {
	ob := t.rule.OrderBy
	if ob == "" {
		return true
	}
	assigns, ordered := false, false
	note := func(col sqlparse.Ident, assignment bool) {
		if assignment {
			assigns = true
			ordered = ordered || col.Norm == ob
		}
	}
	c := info.c
	switch c.Kind {
	case sqlparse.Update:
		for _, s := range c.Sets {
			note(s.Col, s.Delta == 0 && s.Extreme == 0)
		}
	case sqlparse.Upsert:
		if c.Upsert != nil {
			for _, s := range c.Upsert.Sets {
				note(s.Col, s.Delta == 0)
			}
		}
	}
	if assigns && !ordered {
		if w.on() {
			w.not("the statement assigns columns of " + t.rule.Name + " but not its order_by column " + ob + ", so its flush could not be ordered against other instances' writes")
		}
		return false
	}
	return true
}
