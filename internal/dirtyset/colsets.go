package dirtyset

import (
	"slices"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// maxColSets bounds the column lists a table keeps to share between rows.
const maxColSets = 8

// sharedCols returns a column list equal to cols that rows of the same
// columns share, so a buffered row does not keep a copy of its column
// names of its own (40 bytes a column). The list has no spare capacity: a
// row that later gains a column (insertCol) appends to a copy, never to
// the shared array, which nothing writes to once shared.
//
// The table keeps its last few lists in an immutable slice replaced whole,
// so the lookup takes no lock; a list missed in a race is only not shared.
func (t *Table) sharedCols(cols []sqlparse.Ident) []sqlparse.Ident {
	var known [][]sqlparse.Ident
	if p := t.colSets.Load(); p != nil {
		known = *p
	}
	for _, c := range known {
		if slices.Equal(c, cols) {
			return c
		}
	}
	own := slices.Clip(slices.Clone(cols))
	next := make([][]sqlparse.Ident, 0, maxColSets)
	next = append(append(next, own), known[:min(len(known), maxColSets-1)]...)
	t.colSets.Store(&next)
	return own
}
