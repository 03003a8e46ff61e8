package dirtyset

import (
	"fmt"
	"testing"
)

// TestSharedColsCopyOnGrow checks that rows of the same columns share one
// column list, and that a row gaining a column (in front of the shared
// ones, the worst case for an in-place shift) leaves the other rows' lists
// as they were.
func TestSharedColsCopyOnGrow(t *testing.T) {
	tb := newTable(100)
	for k := int64(1); k <= 3; k++ {
		if out := upd(tb, k, add("views", int64(1))); out != Buffered {
			t.Fatalf("key %d: %v", k, out)
		}
	}
	for k := int64(10); k <= 11; k++ {
		if out := ins(tb, k, []string{"id", "n"}, k, int64(5)); out != Buffered {
			t.Fatalf("key %d: %v", k, out)
		}
	}
	if out := upd(tb, int64(2), set("a", "x")); out != Buffered { // "a" sorts before "views"
		t.Fatal(out)
	}
	if out := upd(tb, int64(10), set("m", int64(7))); out != Buffered { // between "id" and "n"
		t.Fatal(out)
	}
	rows := byKey(t, tb.Take(true).Rows)
	cols := func(k int64) string {
		s := ""
		for i, c := range rows[k].Cols() {
			s += c.Norm + "=" + fmt.Sprint(rows[k].Vals[i]) + " "
		}
		return s
	}
	want := map[int64]string{
		1:  "views=1 ",
		2:  "a=x views=1 ",
		3:  "views=1 ",
		10: "id=10 m=7 n=5 ",
		11: "id=11 n=5 ",
	}
	for k, w := range want {
		if got := cols(k); got != w {
			t.Errorf("key %d: columns %q, want %q", k, got, w)
		}
	}
	if &rows[int64(1)].Cols()[0] != &rows[int64(3)].Cols()[0] {
		t.Error("rows 1 and 3 do not share their column list")
	}
	if &rows[int64(11)].Cols()[0] == &rows[int64(10)].Cols()[0] {
		t.Error("row 10 gained a column in the list it shared")
	}
}

// TestSharedDeltaCopyOnChange checks that rows of the same columns and
// flags share one set, that a row whose delta becomes an assignment gets
// another (the set of rows written that way), leaving the rows it shared
// with as they were, including one a flush has taken.
func TestSharedDeltaCopyOnChange(t *testing.T) {
	tb := newTable(100)
	for k := int64(1); k <= 3; k++ {
		mustBuffer(t, upd(tb, k, add("views", int64(1))))
	}
	taken := tb.Take(true) // rows 1 to 3, read by "the flush" below
	for k := int64(4); k <= 5; k++ {
		mustBuffer(t, upd(tb, k, add("views", int64(1))))
	}
	mustBuffer(t, upd(tb, int64(6), set("views", int64(9))))
	mustBuffer(t, upd(tb, int64(4), set("views", int64(7)))) // the delta becomes an assignment
	rows := byKey(t, tb.Take(true).Rows)
	old := byKey(t, taken.Rows)
	wantCol(t, rows[int64(4)], "views", int64(7), false)
	wantCol(t, rows[int64(5)], "views", int64(1), true)
	for k, r := range old {
		wantCol(t, r, "views", int64(1), true)
		if r.cols != rows[int64(5)].cols {
			t.Errorf("row %v does not share its columns and flags with row 5", k)
		}
	}
	if rows[int64(4)].cols != rows[int64(6)].cols {
		t.Error("row 4, now an assignment, does not share the set of row 6, written as one")
	}
}
