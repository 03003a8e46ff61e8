package dirtyset

import (
	"slices"
	"testing"
)

// TestRowLRU checks the shard LRU's order, eviction and purge.
func TestRowLRU(t *testing.T) {
	var evicted []int64
	l := newRowLRU(3, func(k ID, r *Row) {
		if r.ID() != k {
			t.Errorf("evicted %v under key %v", r.ID(), k)
		}
		evicted = append(evicted, k.i)
	})
	row := func(i int64) *Row { return &Row{key: i} }
	keys := func() []int64 {
		var ks []int64
		for _, r := range l.Values() {
			ks = append(ks, r.ID().i)
		}
		return ks
	}
	r1, r2, r3 := row(1), row(2), row(3)
	l.Add(r1.ID(), r1)
	l.Add(r2.ID(), r2)
	l.Add(r3.ID(), r3)
	if got := keys(); !slices.Equal(got, []int64{1, 2, 3}) || l.Len() != 3 {
		t.Fatalf("values %v (len %d), want [1 2 3]", got, l.Len())
	}
	if r, ok := l.Get(ID{i: 1}); !ok || r != r1 {
		t.Fatalf("Get(1) = %v, %v", r, ok)
	}
	if !l.Contains(ID{i: 2}) || l.Contains(ID{i: 9}) {
		t.Fatal("Contains wrong")
	}
	if got := keys(); !slices.Equal(got, []int64{2, 3, 1}) {
		t.Fatalf("after Get(1): %v, want [2 3 1]", got)
	}
	r4 := row(4)
	l.Add(r4.ID(), r4) // pushes out 2, the least recently used
	if got := keys(); !slices.Equal(got, []int64{3, 1, 4}) || !slices.Equal(evicted, []int64{2}) || l.Contains(ID{i: 2}) {
		t.Fatalf("after Add(4): %v evicted %v, want [3 1 4] evicted [2]", got, evicted)
	}
	r3b := row(3)
	l.Add(r3b.ID(), r3b) // replaces 3's row, moves it to the front, evicts nothing
	if got := keys(); !slices.Equal(got, []int64{1, 4, 3}) || len(evicted) != 1 || l.Len() != 3 {
		t.Fatalf("after re-Add(3): %v evicted %v", got, evicted)
	}
	if r, _ := l.Get(ID{i: 3}); r != r3b {
		t.Fatal("re-Add did not replace the row")
	}
	l.Get(ID{i: 3}) // already at the front
	l.Get(ID{i: 4})
	if got := keys(); !slices.Equal(got, []int64{1, 3, 4}) {
		t.Fatalf("after Get(3), Get(4): %v, want [1 3 4]", got)
	}
	evicted = nil
	l.Purge()
	slices.Sort(evicted)
	if l.Len() != 0 || len(l.Values()) != 0 || !slices.Equal(evicted, []int64{1, 3, 4}) {
		t.Fatalf("after Purge: len %d, evicted %v", l.Len(), evicted)
	}
	l.Add(r1.ID(), r1)
	if got := keys(); !slices.Equal(got, []int64{1}) {
		t.Fatalf("after Purge and Add(1): %v", got)
	}
}
