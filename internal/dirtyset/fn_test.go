package dirtyset

import (
	"math"
	"testing"

	"github.com/writeback-go/writeback/internal/dialect"
)

// Tests of the column functions (dialect.ColFn): how COALESCE deltas,
// GREATEST and LEAST merge with what a row already holds (planUpdate).

func addZ(col string, v any) Change {
	return Change{Col: ident(col), Delta: true, Fn: dialect.FnNullZero, Val: v}
}
func most(col string, v any) Change  { return Change{Col: ident(col), Fn: dialect.FnGreatest, Val: v} }
func least(col string, v any) Change { return Change{Col: ident(col), Fn: dialect.FnLeast, Val: v} }

// wantFn checks column name's value, delta flag and function.
func wantFn(t *testing.T, r *Row, name string, val any, delta bool, fn dialect.ColFn) {
	t.Helper()
	wantCol(t, r, name, val, delta)
	if got := r.FnAt(r.colIndex(name)); got != fn {
		t.Errorf("row %v column %s: function %v, want %v", r.Key(), name, got, fn)
	}
}

func TestColumnFunctionsMerge(t *testing.T) {
	type want struct {
		val   any
		delta bool
		fn    dialect.ColFn
	}
	for _, c := range []struct {
		name   string
		writes []Change
		want   *want // nil: the last write is refused (FlushFirst)
	}{
		{"coalesce alone", []Change{addZ("n", int64(2))}, &want{int64(2), true, dialect.FnNullZero}},
		{"coalesce twice", []Change{addZ("n", int64(2)), addZ("n", int64(3))}, &want{int64(5), true, dialect.FnNullZero}},
		{"delta after coalesce", []Change{addZ("n", "1.5"), add("n", "0.25")}, &want{"1.75", true, dialect.FnNullZero}},
		{"coalesce after delta", []Change{add("n", int64(1)), addZ("n", int64(1))}, nil},
		{"coalesce after NULL", []Change{set("n", nil), addZ("n", int64(4))}, &want{int64(4), false, dialect.FnNone}},
		{"coalesce after NULL, decimal", []Change{set("n", nil), addZ("n", "1.50")}, &want{"1.50", false, dialect.FnNone}},
		{"coalesce after value", []Change{set("n", int64(3)), addZ("n", int64(4))}, &want{int64(7), false, dialect.FnNone}},
		{"coalesce after greatest", []Change{most("n", int64(3)), addZ("n", int64(4))}, nil},
		{"assign after coalesce", []Change{addZ("n", int64(3)), set("n", int64(9))}, &want{int64(9), false, dialect.FnNone}},

		{"greatest alone", []Change{most("n", int64(3))}, &want{int64(3), false, dialect.FnGreatest}},
		{"greatest twice", []Change{most("n", int64(3)), most("n", int64(8)), most("n", int64(5))}, &want{int64(8), false, dialect.FnGreatest}},
		{"least twice", []Change{least("n", int64(3)), least("n", int64(8)), least("n", int64(-5))}, &want{int64(-5), false, dialect.FnLeast}},
		{"greatest tie keeps the older", []Change{most("n", "1.5"), most("n", "1.50")}, &want{"1.5", false, dialect.FnGreatest}},
		{"least tie keeps the older", []Change{set("n", "2.50"), least("n", "2.5")}, &want{"2.50", false, dialect.FnNone}},
		{"greatest after value", []Change{set("n", int64(3)), most("n", int64(8))}, &want{int64(8), false, dialect.FnNone}},
		{"greatest after bigger value", []Change{set("n", 9.5), most("n", 8.25)}, &want{9.5, false, dialect.FnNone}},
		{"greatest after NULL", []Change{set("n", nil), most("n", int64(8))}, nil},
		{"greatest after delta", []Change{add("n", int64(1)), most("n", int64(8))}, nil},
		{"least after greatest", []Change{most("n", int64(1)), least("n", int64(8))}, nil},
		{"delta after greatest", []Change{most("n", int64(1)), add("n", int64(8))}, nil},
		{"greatest mixed kinds", []Change{set("n", int64(1)), most("n", 1.5)}, nil},
		{"greatest float zero", []Change{set("n", 0.0), most("n", 1.5)}, nil},
		{"assign after least", []Change{least("n", int64(1)), set("n", int64(8))}, &want{int64(8), false, dialect.FnNone}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable(8)
			for i, w := range c.writes {
				out := upd(tb, int64(1), w)
				if i == len(c.writes)-1 && c.want == nil {
					if out != FlushFirst {
						t.Fatalf("last write: outcome %d, want FlushFirst", out)
					}
					return
				}
				mustBuffer(t, out)
			}
			wantFn(t, takeOne(t, tb), "n", c.want.val, c.want.delta, c.want.fn)
		})
	}
}

// COALESCE(NULL, 0) + -0.0 is 0, not -0: the sum's sign is the databases'.
func TestCoalesceNegativeZero(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), set("n", nil)))
	mustBuffer(t, upd(tb, int64(1), addZ("n", math.Copysign(0, -1))))
	v, _ := col(t, takeOne(t, tb), "n")
	if f, ok := v.(float64); !ok || f != 0 || math.Signbit(f) {
		t.Errorf("n = %#v, want 0", v)
	}
}

// A function's column stays in its place among the row's sorted columns,
// and rows of different functions are of different shapes.
func TestColumnFunctionsShape(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(1), set("b", int64(1)), most("c", int64(2)), addZ("a", int64(3))))
	mustBuffer(t, upd(tb, int64(2), set("b", int64(1)), least("c", int64(2)), addZ("a", int64(3))))
	mustBuffer(t, upd(tb, int64(3), set("b", int64(1)), most("c", int64(2)), add("a", int64(3))))
	mustBuffer(t, upd(tb, int64(4), set("b", int64(1)), most("c", int64(2)), addZ("a", int64(9))))
	b := tb.Take(true)
	defer b.Release()
	rows := byKey(t, b.Rows)
	b.Done(b.Rows)
	r := rows[int64(1)]
	wantFn(t, r, "a", int64(3), true, dialect.FnNullZero)
	wantFn(t, r, "b", int64(1), false, dialect.FnNone)
	wantFn(t, r, "c", int64(2), false, dialect.FnGreatest)
	for k, same := range map[int64]bool{2: false, 3: false, 4: true} {
		if got := SameShape(r, rows[k]); got != same {
			t.Errorf("SameShape(row 1, row %d) = %v, want %v", k, got, same)
		}
	}
}
