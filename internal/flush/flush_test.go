package flush

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

func ident(n string) sqlparse.Ident { return sqlparse.Ident{Norm: n, Raw: n} }

func testNames() *dirtyset.Names {
	return &dirtyset.Names{Table: ident("t"), KeyCols: []sqlparse.Ident{ident("id")}, Style: sqlparse.ParamQuestion}
}

func set(col string, v any) dirtyset.Change { return dirtyset.Change{Col: ident(col), Val: v} }
func add(col string, v any) dirtyset.Change {
	return dirtyset.Change{Col: ident(col), Delta: true, Val: v}
}

func newSet(name string) *dirtyset.Table {
	return dirtyset.NewShared(1 << 40).NewTable(dirtyset.Config{Name: name, MaxDirty: 1024, MaxLoss: time.Hour})
}

func mustUpdate(t *testing.T, s *dirtyset.Table, key int64, changes ...dirtyset.Change) {
	t.Helper()
	if out, _ := s.Update([]any{key}, changes, testNames(), nil, false); out != dirtyset.Buffered {
		t.Fatalf("Update of %d: outcome %d, want Buffered", key, out)
	}
}

func mustInsert(t *testing.T, s *dirtyset.Table, key int64, cols []string, vals ...any) {
	t.Helper()
	ids := make([]sqlparse.Ident, len(cols))
	for i, c := range cols {
		ids[i] = ident(c)
	}
	if out, _ := s.Insert([][]any{{key}}, [][]any{vals}, ids, testNames(), nil, false); out != dirtyset.Buffered {
		t.Fatalf("Insert of %d: outcome %d, want Buffered", key, out)
	}
}

func keyOf(r *dirtyset.Row) int64 { return r.Key()[0].(int64) }

func keysOf(rows []*dirtyset.Row) []int64 {
	ks := make([]int64, len(rows))
	for i, r := range rows {
		ks[i] = keyOf(r)
	}
	return ks
}

// TestGroupRows builds rows of several shapes, some keys with a retry row
// and a newer row, and checks how groupRows splits them.
func TestGroupRows(t *testing.T) {
	s := newSet("t")
	mustUpdate(t, s, 1, set("a", int64(1)))
	mustUpdate(t, s, 2, add("a", int64(1)))
	mustInsert(t, s, 3, []string{"a", "b"}, int64(1), int64(2))
	mustUpdate(t, s, 4, set("a", int64(4)))
	mustUpdate(t, s, 5, set("a", int64(5)), set("b", int64(5)))
	b1 := s.Take(true)
	// Newer rows of keys the flush holds.
	mustUpdate(t, s, 2, add("a", int64(20)))
	mustUpdate(t, s, 3, set("a", int64(30)))
	mustUpdate(t, s, 4, set("a", int64(40)))
	b1.Fail(b1.Rows)
	b1.Release()
	mustUpdate(t, s, 6, set("a", int64(6)))
	mustUpdate(t, s, 7, set("b", int64(7)), set("a", int64(7))) // same shape as 5
	b2 := s.Take(true)
	defer b2.Release()
	rows := b2.Rows
	if len(rows) != 10 {
		t.Fatalf("took %d rows, want 10", len(rows))
	}
	slices.SortFunc(rows, dirtyset.Compare)

	names := testNames()
	groups, members := groupRows(rows, names, "")
	if len(groups) != len(members) {
		t.Fatalf("%d groups, %d member lists", len(groups), len(members))
	}

	// The generation of each row: 0 for the first row of its key, 1 for the next.
	gen := map[*dirtyset.Row]int{}
	for i, r := range rows {
		if i > 0 && rows[i-1].ID() == r.ID() {
			gen[r] = gen[rows[i-1]] + 1
		}
	}
	groupOf := map[*dirtyset.Row]int{}
	lastGen := 0
	lastOp := dialect.Update
	for gi, g := range groups {
		ms := members[gi]
		if len(ms) == 0 || len(g.Rows) != len(ms) {
			t.Fatalf("group %d: %d rows, %d members", gi, len(g.Rows), len(ms))
		}
		if g.Table != names.Table || !slices.Equal(g.KeyCols, names.KeyCols) || g.Style != names.Style {
			t.Errorf("group %d: table/key/style not the table's names: %+v", gi, g)
		}
		seen := map[dirtyset.ID]bool{}
		for i, r := range ms {
			if _, dup := groupOf[r]; dup {
				t.Errorf("row %d in two groups", keyOf(r))
			}
			groupOf[r] = gi
			if seen[r.ID()] {
				t.Errorf("group %d holds key %d twice", gi, keyOf(r))
			}
			seen[r.ID()] = true
			if !dirtyset.SameShape(r, ms[0]) || r.Op != g.Op || !slices.Equal(r.Cols(), g.Cols) {
				t.Errorf("group %d: row %d of another shape", gi, keyOf(r))
			}
			if g.Op == dialect.Update && !slices.Equal(r.Delta(), g.Delta) {
				t.Errorf("group %d: row %d deltas %v, group %v", gi, keyOf(r), r.Delta(), g.Delta)
			}
			if !slices.Equal(g.Rows[i], r.Values()) {
				t.Errorf("group %d row %d: args %v, want %v", gi, i, g.Rows[i], r.Values())
			}
			if g.Op != dialect.Insert && cap(g.Rows[i]) != len(g.Rows[i]) {
				// The arguments share an array: appending to one row must
				// not write into the next row's.
				t.Errorf("group %d row %d: args of len %d have room for %d", gi, i, len(g.Rows[i]), cap(g.Rows[i]))
			}
			if gen[r] != gen[ms[0]] {
				t.Errorf("group %d mixes generations", gi)
			}
			if i > 0 && dirtyset.Compare(ms[i-1], r) >= 0 {
				t.Errorf("group %d: keys %v not in key order", gi, keysOf(ms))
			}
		}
		// Generations in order; within one, updates before inserts.
		g0 := gen[ms[0]]
		switch {
		case g0 < lastGen:
			t.Errorf("group %d of generation %d after generation %d", gi, g0, lastGen)
		case g0 == lastGen && lastOp == dialect.Insert && g.Op == dialect.Update:
			t.Errorf("group %d: an update group after an insert group of the same generation", gi)
		}
		lastGen, lastOp = g0, g.Op
		// No two groups of one generation share a shape.
		for gj := 0; gj < gi; gj++ {
			if gen[members[gj][0]] == g0 && dirtyset.SameShape(members[gj][0], ms[0]) {
				t.Errorf("groups %d and %d share a shape and a generation", gj, gi)
			}
		}
	}
	if len(groupOf) != len(rows) {
		t.Fatalf("%d rows grouped, want %d", len(groupOf), len(rows))
	}
	// Each key's retry row goes in a group before its newer row's.
	for i := 1; i < len(rows); i++ {
		if rows[i-1].ID() == rows[i].ID() {
			older, newer := rows[i-1], rows[i]
			if older.Seq >= newer.Seq || !slices.Contains(b1.Rows, older) {
				t.Fatalf("key %d: rows not sorted retry row first", keyOf(older))
			}
			if groupOf[older] >= groupOf[newer] {
				t.Errorf("key %d: retry row in group %d, newer row in group %d: the older must be written first", keyOf(older), groupOf[older], groupOf[newer])
			}
		}
	}
	// Three keys have two rows: two generations.
	if !slices.Equal(keysOf(rows), []int64{1, 2, 2, 3, 3, 4, 4, 5, 6, 7}) || len(gen) != 3 {
		t.Fatalf("sorted keys %v, %d newer rows; want 1 2 2 3 3 4 4 5 6 7 and 3", keysOf(rows), len(gen))
	}
	// The assign-a rows of generation 0, keys 1, 4 and 6, share one group,
	// in key order; the newer rows of 3 and 4 share another.
	if g1, g4, g6 := groupOf[rows[0]], groupOf[rows[5]], groupOf[rows[8]]; g1 != g4 || g4 != g6 || !slices.Equal(keysOf(members[g1]), []int64{1, 4, 6}) {
		t.Errorf("assign-a generation 0: groups %d %d %d, keys %v; want one group of 1, 4, 6", g1, g4, g6, keysOf(members[g1]))
	}
	if g3, g4 := groupOf[rows[4]], groupOf[rows[6]]; g3 != g4 || !slices.Equal(keysOf(members[g3]), []int64{3, 4}) {
		t.Errorf("assign-a generation 1: groups %d %d, keys %v; want one group of 3, 4", g3, g4, keysOf(members[g3]))
	}
	// 5 and 7 wrote a, b in different orders: one group.
	if keyOf(rows[7]) != 5 || keyOf(rows[9]) != 7 || groupOf[rows[7]] != groupOf[rows[9]] {
		t.Errorf("rows 5 and 7 of one shape in different groups")
	}
	// The inserted key 3: its INSERT (generation 0) is written before its
	// newer UPDATE (generation 1), though updates go first in a generation.
	if ins, up := groupOf[rows[3]], groupOf[rows[4]]; groups[ins].Op != dialect.Insert || groups[up].Op != dialect.Update || ins >= up {
		t.Errorf("key 3: insert in group %d (%v), update in group %d (%v)", ins, groups[ins].Op, up, groups[up].Op)
	}
	if want := 6; len(groups) != want {
		t.Errorf("%d groups, want %d (gen 0: a, a+b, a+=, insert; gen 1: a, a+=)", len(groups), want)
	}
}

func TestGroupRowsUpdatesBeforeInsertsWhateverTheInputOrder(t *testing.T) {
	s := newSet("t")
	mustInsert(t, s, 1, []string{"a"}, int64(1))
	mustUpdate(t, s, 2, set("a", int64(2)))
	mustInsert(t, s, 3, []string{"a"}, int64(3))
	mustUpdate(t, s, 4, set("a", int64(4)))
	b := s.Take(true)
	defer b.Release()
	slices.SortFunc(b.Rows, dirtyset.Compare)
	groups, members := groupRows(b.Rows, testNames(), "")
	if len(groups) != 2 {
		t.Fatalf("%d groups, want 2", len(groups))
	}
	if groups[0].Op != dialect.Update || !slices.Equal(keysOf(members[0]), []int64{2, 4}) {
		t.Errorf("first group %v of keys %v, want the updates 2, 4", groups[0].Op, keysOf(members[0]))
	}
	if groups[1].Op != dialect.Insert || !slices.Equal(keysOf(members[1]), []int64{1, 3}) {
		t.Errorf("second group %v of keys %v, want the inserts 1, 3", groups[1].Op, keysOf(members[1]))
	}
	if groups[1].Delta != nil {
		t.Errorf("insert group has deltas %v", groups[1].Delta)
	}
	if !slices.Equal(groups[1].Rows[0], []any{int64(1)}) || !slices.Equal(groups[0].Rows[0], []any{int64(2), int64(2)}) {
		t.Errorf("group args %v / %v", groups[0].Rows, groups[1].Rows)
	}
}

func TestGroupRowsManyGenerations(t *testing.T) {
	// During an outage a key may collect a retry row per failed flush that
	// had a newer row in flight: each generation gets its own groups.
	s := newSet("t")
	var all []*dirtyset.Batch
	for i := int64(1); i <= 3; i++ {
		mustUpdate(t, s, 1, add("n", i))
		mustUpdate(t, s, 2, add("n", 10*i))
		all = append(all, s.Take(true))
	}
	for _, b := range all {
		b.Fail(b.Rows)
	}
	for _, b := range all {
		b.Release()
	}
	b := s.Take(true)
	defer b.Release()
	slices.SortFunc(b.Rows, dirtyset.Compare)
	groups, members := groupRows(b.Rows, testNames(), "")
	if len(groups) != 3 {
		t.Fatalf("%d groups, want one per generation (3)", len(groups))
	}
	for gi := range groups {
		if got := keysOf(members[gi]); !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("group %d keys %v, want [1 2]", gi, got)
		}
		want := []any{int64(gi + 1), int64(10 * (gi + 1))}
		if got := []any{groups[gi].Rows[0][0], groups[gi].Rows[1][0]}; !slices.Equal(got, want) {
			t.Errorf("group %d deltas %v, want %v (oldest generation first)", gi, got, want)
		}
	}
}

func TestDeadline(t *testing.T) {
	oldest := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		maxLoss, cost time.Duration
		want          time.Duration // after oldest
	}{
		{10 * time.Second, 0, 9 * time.Second},                                 // a tenth early
		{10 * time.Second, 400 * time.Millisecond, 9 * time.Second},            // 2×cost < a tenth
		{10 * time.Second, 500 * time.Millisecond, 9 * time.Second},            // 2×cost = a tenth
		{10 * time.Second, 2 * time.Second, 6 * time.Second},                   // twice the cost
		{10 * time.Second, 2500 * time.Millisecond, 5 * time.Second},           // 2×cost = half
		{10 * time.Second, 10 * time.Second, 5 * time.Second},                  // at most half early
		{time.Second, time.Hour, 500 * time.Millisecond},                       // at most half early
		{time.Minute, 4 * time.Second, time.Minute - 8*time.Second},            // twice the cost
		{100 * time.Millisecond, time.Millisecond, 90 * time.Millisecond},      // a tenth
		{100 * time.Millisecond, 20 * time.Millisecond, 60 * time.Millisecond}, // twice the cost
	}
	for _, c := range cases {
		tb := &Table{cfg: TableConfig{MaxLoss: c.maxLoss}, flushCost: c.cost}
		got := tb.deadline(oldest).Sub(oldest)
		if got != c.want {
			t.Errorf("max_loss %v, last flush %v: deadline oldest+%v, want oldest+%v", c.maxLoss, c.cost, got, c.want)
		}
		if lead := c.maxLoss - got; lead < c.maxLoss/10 || lead > c.maxLoss/2 {
			t.Errorf("max_loss %v, last flush %v: %v early, not within [max_loss/10, max_loss/2]", c.maxLoss, c.cost, lead)
		}
	}
}

// wrapped hides an error behind a type of its own, as a driver might.
type wrapped struct{ err error }

func (w wrapped) Error() string { return "wrapped" }
func (w wrapped) Unwrap() error { return w.err }

func TestIsTransient(t *testing.T) {
	unique := &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint"}
	cases := []struct {
		name      string
		err       error
		transient bool
		conn      bool
	}{
		{"checkpoint", &durable.CheckpointError{}, true, false},
		{"checkpoint wrapped", wrapped{&durable.CheckpointError{}}, true, false},
		{"connect failure", &connectFailure{errors.New("connection refused")}, true, false},
		{"connect failure with a permanent SQLSTATE", fmt.Errorf("flush: %w", &connectFailure{&pgconn.PgError{Code: "28P01"}}), true, false},
		{"connect failure with a bad conn", &connectFailure{driver.ErrBadConn}, true, true},
		{"unique violation", unique, false, false},
		{"unique violation wrapped", fmt.Errorf("writeback: flush t: %w", unique), false, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, true, false},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, true, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true, true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true, true},
		{"bad conn", driver.ErrBadConn, true, true},
		{"bad conn wrapped", fmt.Errorf("exec: %w", driver.ErrBadConn), true, true},
		{"deadline", context.DeadlineExceeded, true, true},
		{"plain error", errors.New("syntax error"), false, false},
	}
	for _, c := range cases {
		if got := isTransient(c.err); got != c.transient {
			t.Errorf("%s: isTransient = %v, want %v", c.name, got, c.transient)
		}
		if got := isConnError(c.err); got != c.conn {
			t.Errorf("%s: isConnError = %v, want %v", c.name, got, c.conn)
		}
	}
	cf := &connectFailure{errors.New("refused")}
	if cf.Error() != "writeback: flusher connect: refused" || !errors.Is(fmt.Errorf("x: %w", cf), cf.err) {
		t.Errorf("connectFailure: %q does not wrap its error", cf.Error())
	}
}
