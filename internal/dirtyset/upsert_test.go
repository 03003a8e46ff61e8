package dirtyset

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// ups runs a one-row upsert of key: insert id and cols = vals, else apply changes.
func ups(tb *Table, key int64, cols []string, vals []any, changes ...Change) Outcome {
	ids := []sqlparse.Ident{ident("id")}
	row := []any{key}
	for i, c := range cols {
		ids = append(ids, ident(c))
		row = append(row, vals[i])
	}
	out, _ := tb.Upsert([][]any{{key}}, [][]any{row}, ids, [][]Change{changes}, testNames(), nil, AdmitNow)
	return out
}

// parts renders an upsert row's two parts for comparison.
func parts(r *Row) string {
	s := fmt.Sprint(r.Op, " ins")
	for i, c := range r.Cols() {
		s += fmt.Sprintf(" %s=%v", c.Norm, r.Vals[i])
	}
	s += " upd"
	for i, c := range r.UCols() {
		op := "="
		if r.UDelta()[i] {
			op = "+="
		}
		s += fmt.Sprintf(" %s%s%v", c.Norm, op, r.UVals()[i])
	}
	return s
}

func TestUpsertComposition(t *testing.T) {
	up := fmt.Sprint(dialect.Upsert)
	insOp := fmt.Sprint(dialect.Insert)
	cases := []struct {
		name  string
		write func(tb *Table) []Outcome
		want  string
	}{
		{"one upsert", func(tb *Table) []Outcome {
			return []Outcome{ups(tb, 1, []string{"n"}, []any{int64(3)}, add("n", int64(3)))}
		}, up + " ins id=1 n=3 upd n+=3"},
		{"excluded deltas: insert value and delta stay equal", func(tb *Table) []Outcome {
			return []Outcome{
				ups(tb, 1, []string{"n"}, []any{int64(3)}, add("n", int64(3))),
				ups(tb, 1, []string{"n"}, []any{int64(4)}, add("n", int64(4))),
			}
		}, up + " ins id=1 n=7 upd n+=7"},
		{"literal delta: the first insert value, the summed delta", func(tb *Table) []Outcome {
			return []Outcome{
				ups(tb, 1, []string{"n"}, []any{int64(0)}, add("n", int64(1))),
				ups(tb, 1, []string{"n"}, []any{int64(0)}, add("n", int64(1))),
				ups(tb, 1, []string{"n"}, []any{int64(0)}, add("n", int64(1))),
			}
		}, up + " ins id=1 n=2 upd n+=3"},
		{"assign after delta", func(tb *Table) []Outcome {
			return []Outcome{
				ups(tb, 1, []string{"n"}, []any{int64(5)}, add("n", int64(5))),
				ups(tb, 1, []string{"n", "s"}, []any{int64(9), "x"}, set("n", int64(9)), set("s", "x")),
			}
		}, up + " ins id=1 n=9 s=x upd n=9 s=x"},
		{"delta after assign", func(tb *Table) []Outcome {
			return []Outcome{
				ups(tb, 1, []string{"n"}, []any{int64(5)}, set("n", int64(5))),
				ups(tb, 1, []string{"n"}, []any{int64(2)}, add("n", int64(2))),
			}
		}, up + " ins id=1 n=7 upd n=7"},
		{"plain update after upsert applies to both parts", func(tb *Table) []Outcome {
			return []Outcome{
				ups(tb, 1, []string{"n"}, []any{int64(5)}, add("n", int64(5))),
				upd(tb, int64(1), add("n", int64(10)), set("s", "y")),
			}
		}, up + " ins id=1 n=15 s=y upd n+=15 s=y"},
		{"upsert after insert amends the insert", func(tb *Table) []Outcome {
			return []Outcome{
				ins(tb, int64(1), []string{"n"}, int64(5)),
				ups(tb, 1, []string{"n"}, []any{int64(2)}, add("n", int64(2))),
			}
		}, insOp + " ins n=7 upd"},
		{"NULL inserted then delta stays NULL", func(tb *Table) []Outcome {
			return []Outcome{
				ups(tb, 1, []string{"n"}, []any{nil}, set("n", nil)),
				ups(tb, 1, []string{"n"}, []any{int64(2)}, add("n", int64(2))),
			}
		}, up + " ins id=1 n=<nil> upd n=<nil>"},
		{"delta on a column left to its default, once", func(tb *Table) []Outcome {
			return []Outcome{ups(tb, 1, nil, nil, add("n", int64(1)))}
		}, up + " ins id=1 upd n+=1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable(8)
			for i, out := range c.write(tb) {
				if out != Buffered {
					t.Fatalf("write %d: outcome %d", i, out)
				}
			}
			if got := parts(takeOne(t, tb)); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestUpsertNotCoalescedFlushesFirst(t *testing.T) {
	cases := []struct {
		name  string
		first func(tb *Table) Outcome
		then  func(tb *Table) Outcome
	}{
		{"a second delta on a column left to its default", func(tb *Table) Outcome {
			return ups(tb, 1, nil, nil, add("n", int64(1)))
		}, func(tb *Table) Outcome { return ups(tb, 1, nil, nil, add("n", int64(1))) }},
		{"an upsert after a buffered UPDATE (did it match?)", func(tb *Table) Outcome {
			return upd(tb, int64(1), add("n", int64(1)))
		}, func(tb *Table) Outcome { return ups(tb, 1, []string{"n"}, []any{int64(1)}, add("n", int64(1))) }},
		{"an INSERT after an upsert", func(tb *Table) Outcome {
			return ups(tb, 1, []string{"n"}, []any{int64(1)}, add("n", int64(1)))
		}, func(tb *Table) Outcome { return ins(tb, int64(1), []string{"n"}, int64(1)) }},
		{"an overflowing sum", func(tb *Table) Outcome {
			return ups(tb, 1, []string{"n"}, []any{int64(1) << 62}, add("n", int64(1)<<62))
		}, func(tb *Table) Outcome {
			return ups(tb, 1, []string{"n"}, []any{int64(1) << 62}, add("n", int64(1)<<62))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable(8)
			mustBuffer(t, c.first(tb))
			before := parts(takeOneKeep(t, tb))
			if out := c.then(tb); out != FlushFirst {
				t.Fatalf("outcome %d, want FlushFirst", out)
			}
			if after := parts(takeOneKeep(t, tb)); after != before {
				t.Fatalf("the refused write changed the row: %s, was %s", after, before)
			}
		})
	}
}

// takeOneKeep returns the table's one dirty row without taking it.
func takeOneKeep(t *testing.T, tb *Table) *Row {
	t.Helper()
	var rows []*Row
	for _, s := range tb.shards {
		s.mu.Lock()
		rows = append(rows, s.lru.Values()...)
		s.mu.Unlock()
	}
	if len(rows) != 1 {
		t.Fatalf("%d dirty rows, want 1", len(rows))
	}
	return rows[0]
}

func TestUpsertAllOrNone(t *testing.T) {
	tb := newTable(8)
	mustBuffer(t, upd(tb, int64(2), add("n", int64(1))))
	ids := []sqlparse.Ident{ident("id"), ident("n")}
	out, _ := tb.Upsert([][]any{{int64(1)}, {int64(2)}}, [][]any{{int64(1), int64(1)}, {int64(2), int64(1)}}, ids,
		[][]Change{{add("n", int64(1))}, {add("n", int64(1))}}, testNames(), nil, AdmitNow)
	if out != FlushFirst {
		t.Fatalf("outcome %d, want FlushFirst (key 2 has a pending UPDATE)", out)
	}
	if n := tb.Pending(); n != 1 {
		t.Fatalf("%d rows pending, want 1: the upsert's other row was buffered", n)
	}
	out, _ = tb.Upsert([][]any{{int64(3)}, {int64(3)}}, [][]any{{int64(3), int64(1)}, {int64(3), int64(1)}}, ids,
		[][]Change{{add("n", int64(1))}, {add("n", int64(1))}}, testNames(), nil, AdmitNow)
	if out != PassThrough {
		t.Fatalf("a key twice: outcome %d, want PassThrough", out)
	}
}

func TestUpsertJournalsOncePerStatement(t *testing.T) {
	tb := newTable(8)
	j := &fakeJournal{}
	ids := []sqlparse.Ident{ident("id"), ident("n")}
	for i := 0; i < 3; i++ {
		out, lsn := tb.Upsert([][]any{{int64(1)}, {int64(2)}}, [][]any{{int64(1), int64(1)}, {int64(2), int64(1)}}, ids,
			[][]Change{{add("n", int64(1))}, {add("n", int64(1))}}, testNames(), j, AdmitNow)
		mustBuffer(t, out)
		if lsn == 0 {
			t.Fatal("no LSN")
		}
	}
	if j.calls != 3 || j.rows != 6 {
		t.Fatalf("journal calls %d rows %d, want 3 and 6", j.calls, j.rows)
	}
	b := tb.Take(true)
	defer b.Release()
	for _, r := range b.Rows {
		if r.Recs != 3 || r.Writes != 3 || !reflect.DeepEqual(r.Values(), []any{r.Key()[0], int64(3), int64(3), r.Key()[0]}) {
			t.Errorf("row %v: Recs %d Writes %d Values %v", r.Key(), r.Recs, r.Writes, r.Values())
		}
	}
	b.Done(b.Rows)
}

// TestUpsertAfterUpdateOfExistingRow: where every UPDATE row's key exists
// (UpdatesExist), an upsert after a buffered UPDATE is its update part,
// coalesced; otherwise the UPDATE is flushed first.
func TestUpsertAfterUpdateOfExistingRow(t *testing.T) {
	for _, exist := range []bool{true, false} {
		tb := NewShared(1 << 40).NewTable(Config{Name: "t", MaxDirty: 16, MaxLoss: time.Hour, UpdatesExist: exist})
		if out := upd(tb, int64(1), add("n", int64(2))); out != Buffered {
			t.Fatalf("update: %v", out)
		}
		out := ups(tb, 1, []string{"n"}, []any{int64(5)}, add("n", int64(5)))
		if !exist {
			if out != FlushFirst {
				t.Fatalf("without UpdatesExist: %v, want FlushFirst", out)
			}
			continue
		}
		if out != Buffered {
			t.Fatalf("with UpdatesExist: %v, want Buffered", out)
		}
		b := tb.Take(true)
		if len(b.Rows) != 1 || b.Rows[0].Op != dialect.Update || b.Rows[0].Vals[0] != int64(7) || b.Rows[0].Writes != 2 {
			t.Fatalf("rows %+v: want one UPDATE of n + 7 from 2 writes", b.Rows)
		}
		b.Done(b.Rows)
		b.Release()
	}
}
