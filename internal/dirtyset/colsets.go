package dirtyset

import (
	"slices"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// maxColSets bounds the column lists a table keeps to share between rows.
const maxColSets = 8

// sharedCols returns a column set equal to cols and delta that rows of the
// same columns share, so a buffered row keeps neither its column names (40
// bytes a column) nor its delta flags of its own, only a pointer. It
// copies what it keeps: the caller may reuse cols and delta. Nothing
// writes to a shared set: a row whose columns or flags change gets a new
// set (Row.ownCols), and the flush reads the set of a row it took while
// writers make other rows with it.
//
// The table keeps its last few sets in an immutable slice replaced whole,
// so the lookup takes no lock; a set missed in a race is only not shared.
func (t *Table) sharedCols(cols []sqlparse.Ident, delta []bool) *colSet {
	var known []*colSet
	if p := t.colSets.Load(); p != nil {
		known = *p
	}
	for _, c := range known {
		if slices.Equal(c.cols, cols) && slices.Equal(c.delta, delta) {
			return c
		}
	}
	// Clipped: an insert into a shared slice (colVals.commit) copies it.
	own := &colSet{cols: slices.Clip(slices.Clone(cols)), delta: slices.Clip(slices.Clone(delta))}
	next := make([]*colSet, 0, maxColSets)
	next = append(append(next, own), known[:min(len(known), maxColSets-1)]...)
	t.colSets.Store(&next)
	return own
}
