package dirtyset

import "testing"

func TestPendingRowAndQuiet(t *testing.T) {
	tb := newTable(16)
	n := ident("n")
	key := []any{int64(1)}
	if _, _, _, found, ok := tb.PendingRow(key); found || !ok {
		t.Fatalf("empty table: found %v ok %v", found, ok)
	}
	names := testNames()
	for i := 0; i < 3; i++ {
		if out, _ := tb.Update(key, []Change{{Col: n, Delta: true, Val: int64(2)}}, names, nil, false); out != Buffered {
			t.Fatalf("update: %v", out)
		}
	}
	cols, vals, delta, found, ok := tb.PendingRow(key)
	if !found || !ok || len(cols) != 1 || vals[0] != int64(6) || !delta[0] {
		t.Fatalf("pending: %v %v %v %v %v", cols, vals, delta, found, ok)
	}
	if _, _, _, found, ok := tb.PendingRow([]any{"1"}); found || ok {
		t.Fatal("a key of another kind must not be answered")
	}
	epoch, quiet := tb.Quiet()
	if !quiet {
		t.Fatal("no flush yet: quiet")
	}
	b := tb.Take(true)
	if tb.StillQuiet(epoch) {
		t.Fatal("a take must end the quiet epoch")
	}
	if _, q := tb.Quiet(); q {
		t.Fatal("a flush under way is not quiet")
	}
	if _, _, _, _, ok := tb.PendingRow(key); ok {
		t.Fatal("a row in a flush must not be answered")
	}
	b.Done(b.Rows)
	b.Release()
	if _, q := tb.Quiet(); !q {
		t.Fatal("released: quiet again")
	}
	if e, _ := tb.Quiet(); true {
		tb.Take(true) // nothing to take: counted as ended
		if _, q := tb.Quiet(); !q || tb.StillQuiet(e) {
			t.Fatal("an empty take is a quick flush: quiet, new epoch")
		}
	}
}
