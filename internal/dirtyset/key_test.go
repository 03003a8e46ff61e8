package dirtyset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"unicode/utf8"
)

func TestMakeIDAndKeyText(t *testing.T) {
	if a, b := MakeID([]any{int64(42)}), MakeID([]any{int64(42)}); a != b {
		t.Error("MakeID is not deterministic for an int key")
	}
	if MakeID([]any{int64(1)}) == MakeID([]any{int64(2)}) {
		t.Error("int keys 1 and 2 share an ID")
	}
	if a, a2 := MakeID([]any{"a"}), MakeID([]any{"a"}); a == MakeID([]any{"b"}) || a != a2 {
		t.Error("single string keys not identified by their text")
	}
	// Composite keys whose parts concatenate alike stay distinct.
	distinct := [][]any{
		{"a", "b"},
		{"ab", ""},
		{"", "ab"},
		{"a", "b", ""},
		{int64(1), "a"},
		{int64(1), "b"},
		{int64(2), "a"},
		{"a", int64(1)},
		{int64(-1), int64(1)},
		{int64(1), int64(-1)},
		{int64(math.MinInt64), int64(math.MaxInt64)},
	}
	ids := map[ID][]any{}
	texts := map[string][]any{}
	for _, k := range distinct {
		id := MakeID(k)
		if prev, dup := ids[id]; dup {
			t.Errorf("keys %v and %v share an ID", prev, k)
		}
		ids[id] = k
		txt := KeyText(k)
		if prev, dup := texts[txt]; dup {
			t.Errorf("keys %v and %v share the key text %q", prev, k, txt)
		}
		texts[txt] = k
		if !utf8.ValidString(txt) {
			t.Errorf("KeyText(%v) = %q is not valid UTF-8", k, txt)
		}
		for i := 0; i < len(txt); i++ {
			if txt[i] == 0 {
				t.Errorf("KeyText(%v) = %q holds a NUL byte", k, txt)
			}
		}
		if MakeID(k) != id || KeyText(k) != txt {
			t.Errorf("MakeID/KeyText of %v not deterministic", k)
		}
	}

	// A single int key is its decimal text.
	for _, i := range []int64{0, 7, -12, math.MaxInt64, math.MinInt64} {
		if got := KeyText([]any{i}); got != strconv.FormatInt(i, 10) {
			t.Errorf("KeyText(%d) = %q, want %q", i, got, strconv.FormatInt(i, 10))
		}
	}
	// A single string key is its quoted text, whatever bytes it holds.
	for _, s := range []string{"abc", "", "a\x00b", "\xff", `"q"`} {
		got := KeyText([]any{s})
		back, err := strconv.Unquote(got)
		if err != nil || back != s {
			t.Errorf("KeyText(%q) = %q, which does not unquote to the key (%v)", s, got, err)
		}
		if !utf8.ValidString(got) {
			t.Errorf("KeyText(%q) = %q is not valid UTF-8", s, got)
		}
	}
	if KeyText([]any{"12"}) == KeyText([]any{int64(12)}) {
		t.Error(`string key "12" and int key 12 have the same key text`)
	}
	for _, k := range [][]any{{int64(5)}, {int64(-7)}, {"12"}, {""}, {int64(1), "a"}, {"a", "b"}} {
		id := MakeID(k)
		r := &Row{key: rowKey(id, k)}
		if got, want := r.KeyText(), KeyText(k); got != want {
			t.Errorf("Row.KeyText() of key %v = %q, want %q", k, got, want)
		}
		if r.ID() != id || !slices.Equal(r.Key(), k) || r.keyLen() != len(k) || !slices.Equal(r.appendKey(nil), k) {
			t.Errorf("row of key %v: ID %v Key %v keyLen %d appendKey %v", k, r.ID(), r.Key(), r.keyLen(), r.appendKey(nil))
		}
	}
}

func TestKindOfKeyAndKeysValid(t *testing.T) {
	cases := []struct {
		v    any
		kind KeyKind
	}{
		{int64(1), KeyInt},
		{"x", KeyString},
		{int32(1), KeyNone},
		{1, KeyNone},
		{1.5, KeyNone},
		{[]byte("x"), KeyNone},
		{nil, KeyNone},
	}
	for _, c := range cases {
		if got := KindOfKey(c.v); got != c.kind {
			t.Errorf("KindOfKey(%#v) = %d, want %d", c.v, got, c.kind)
		}
	}
	if !KeysValid([]any{int64(1), "a"}) {
		t.Error("KeysValid(int64, string) = false")
	}
	if KeysValid([]any{int64(1), nil}) || KeysValid(nil) {
		t.Error("KeysValid accepts a NULL key or no key")
	}
}

func TestCompositeKeyRows(t *testing.T) {
	tb := newTable(64)
	up := func(k []any, v int64) {
		t.Helper()
		out, _ := tb.Update(k, []Change{add("n", v)}, testNames(), nil, false)
		mustBuffer(t, out)
	}
	up([]any{"a", "b"}, 1)
	up([]any{"ab", ""}, 10)
	up([]any{"a", "b"}, 2)
	b := tb.Take(true)
	if len(b.Rows) != 2 {
		t.Fatalf("took %d rows, want 2", len(b.Rows))
	}
	for _, r := range b.Rows {
		want := int64(3)
		if r.Key()[0] == "ab" {
			want = 10
		}
		wantCol(t, r, "n", want, true)
		if r.ID() != MakeID(r.Key()) {
			t.Errorf("row %v: ID() differs from MakeID of its key", r.Key())
		}
		if got := r.Values(); len(got) != 3 || got[1] != r.Key()[0] || got[2] != r.Key()[1] {
			t.Errorf("Values() = %v, want the value then both key parts", got)
		}
	}
	b.Done(b.Rows)
	b.Release()
}

// TestSortRows: SortRows orders rows as Compare does (integer and text
// keys, several rows of one key by Seq). Integer keys alone take the radix
// sort: negative and large keys, keys differing only in their high bytes,
// input already sorted, reversed, and with duplicate keys.
func TestSortRows(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ints := []func(n, j int) int64{
		func(n, _ int) int64 { return int64(r.IntN(n/3 + 1)) },
		func(n, _ int) int64 { return int64(r.IntN(2*n+1) - n) },
		func(int, int) int64 { return int64(r.Uint64()) },
		func(int, int) int64 { return int64(r.IntN(4)) << 56 },
		func(int, int) int64 { return []int64{math.MinInt64, -1, 0, 1, math.MaxInt64}[r.IntN(5)] },
		func(_, j int) int64 { return int64(j) },
		func(n, j int) int64 { return int64(n - j) },
		func(_, j int) int64 { return int64(j / 3) },
	}
	for _, n := range []int{0, 1, 2, 50, 5000} {
		for kind := -1; kind < len(ints); kind++ {
			var rows []*Row
			for j := range n {
				var k any
				switch {
				case kind >= 0:
					k = ints[kind](n, j)
				case r.IntN(2) == 0:
					k = int64(r.IntN(n/3 + 1))
				default:
					k = fmt.Sprint("k", r.IntN(n/3+1))
				}
				rows = append(rows, &Row{key: k, Seq: uint64(r.IntN(4)*n + j)})
			}
			want := slices.Clone(rows)
			slices.SortFunc(want, Compare)
			SortRows(rows)
			for j := range rows {
				if rows[j] != want[j] {
					t.Fatalf("n=%d kind %d: row %d is %+v, want %+v", n, kind, j, rows[j], want[j])
				}
			}
		}
	}
}
