package dirtyset

import "testing"

func TestUpdateGuarded(t *testing.T) {
	tb := newTable(16)
	yes := func(ID) Existence { return ExistYes }
	known := ExistUnknown
	hold := func(ID) Existence { return known }
	notDeleted := []Guard{{Col: "deleted_at", Null: true}}
	upd := func(key int64, guards []Guard, changes ...Change) Outcome {
		out, _ := tb.UpdateGuarded([]any{key}, changes, testNames(), nil, AdmitNow, yes, guards, hold)
		return out
	}
	// Nothing buffered, the guard not known: ask the database.
	if out := upd(1, notDeleted, add("n", int64(1))); out != Probe {
		t.Fatalf("unknown guard: %v, want Probe", out)
	}
	known = ExistNo
	if out := upd(1, notDeleted, add("n", int64(1))); out != Unmatched {
		t.Fatalf("guard known false: %v, want Unmatched", out)
	}
	known = ExistYes
	if out := upd(1, notDeleted, add("n", int64(1))); out != Buffered {
		t.Fatalf("known guard: %v, want Buffered", out)
	}
	// The soft delete: the guarded assignment of the guard's column.
	if out := upd(1, notDeleted, set("deleted_at", "2026-11-30")); out != Buffered {
		t.Fatalf("soft delete: %v, want Buffered", out)
	}
	// Now the buffered row says the row is deleted: no match, whatever is known.
	if out := upd(1, notDeleted, add("n", int64(1))); out != Unmatched {
		t.Fatalf("after the soft delete: %v, want Unmatched", out)
	}
	if out := upd(1, []Guard{{Col: "DELETED_AT", Null: false, Fold: true}}, add("n", int64(1))); out != Buffered {
		t.Fatalf("IS NOT NULL, folded name: %v, want Buffered", out)
	}
	// A delta on the guarded column: the buffered row cannot tell.
	if out := upd(2, nil, add("v", int64(1))); out != Buffered {
		t.Fatal(out)
	}
	if out := upd(2, []Guard{{Col: "v", Null: true}}, add("n", int64(1))); out != FlushFirst {
		t.Fatalf("delta on the guard column: %v, want FlushFirst", out)
	}
	b := tb.Take(true)
	writes := map[any]int{}
	for _, r := range b.Rows {
		writes[r.Key()[0]] = r.Writes
	}
	if len(b.Rows) != 2 || writes[int64(1)] != 3 || writes[int64(2)] != 1 {
		t.Fatalf("writes by key %v: want key 1 from 3 writes, key 2 from 1", writes)
	}
}
