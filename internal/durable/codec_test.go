package durable

import (
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// codecValues are values of every kind copyValue produces.
func codecValues() []any {
	return []any{
		nil, int64(0), int64(-1 << 63), int64(1<<63 - 1), 3.25, math.Copysign(0, -1), true, false,
		"", "héllo\x00world", []byte{}, []byte{0, 1, 255},
		time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 1, time.FixedZone("", 5*3600+1800)),
		time.Time{},
		[]int64{1, -2, 3}, []int32{-7, 8}, []int16{1}, []int8{-1}, []int{5}, []uint{7}, []uint16{9}, []uint32{1 << 31}, []uint64{1 << 62},
		[]float64{1.5, -2}, []float32{0.5}, []bool{true, false}, []string{"a", "", "ß"}, []string(nil), []int64{},
	}
}

// TestJournalCodecChangeKinds: every kind of change comes back as it went,
// and a kind byte the codec does not know is an error.
func TestJournalCodecChangeKinds(t *testing.T) {
	names := dirtyset.Names{Table: sqlparse.Ident{Norm: "t", Raw: "t"}, KeyCols: []sqlparse.Ident{{Norm: "id", Raw: "id"}}}
	c := sqlparse.Ident{Norm: "c", Raw: "c"}
	changes := []dirtyset.Change{
		{Col: c, Val: int64(1)},
		{Col: c, Delta: true, Val: int64(2)},
		{Col: c, Delta: true, Fn: dialect.FnNullZero, Val: "1.5"},
		{Col: c, Fn: dialect.FnGreatest, Val: 2.5},
		{Col: c, Fn: dialect.FnLeast, Val: int64(-4)},
	}
	b, err := EncodeUpdate(nil, "t", &names, []any{int64(1)}, changes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Changes, changes) {
		t.Fatalf("changes:\n got %#v\nwant %#v", got.Changes, changes)
	}
	// The kind byte is where the records of a LEAST and a GREATEST differ.
	least, err1 := EncodeUpdate(nil, "t", &names, []any{int64(1)}, changes[4:])
	most, err2 := EncodeUpdate(nil, "t", &names, []any{int64(1)}, []dirtyset.Change{{Col: c, Fn: dialect.FnGreatest, Val: int64(-4)}})
	if err1 != nil || err2 != nil || len(least) != len(most) {
		t.Fatal(err1, err2)
	}
	i := -1
	for k := range least {
		if least[k] != most[k] {
			i = k
			break
		}
	}
	if i < 0 || least[i] != 4 || most[i] != 3 {
		t.Fatalf("kind byte not found: %v, %v", least, most)
	}
	least[i] = 9
	if _, err := DecodeRecord(least); err == nil {
		t.Errorf("kind 9 decoded without an error")
	}
}

func TestJournalCodecRoundTrip(t *testing.T) {
	schema := sqlparse.Ident{Norm: "app", Raw: `"app"`, Quoted: true}
	names := dirtyset.Names{Schema: &schema, Table: sqlparse.Ident{Norm: "counters", Raw: "Counters"}, KeyCols: []sqlparse.Ident{{Norm: "id", Raw: "ID"}, {Norm: "k2", Raw: "k2"}}, Style: sqlparse.ParamDollar}
	vals := codecValues()
	var changes []dirtyset.Change
	for i, v := range vals {
		changes = append(changes, dirtyset.Change{Col: sqlparse.Ident{Norm: "c", Raw: "C"}, Delta: i%2 == 0, Val: v})
	}
	b, err := EncodeUpdate(nil, "app.counters", &names, []any{int64(7), "x"}, changes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &Record{Table: "app.counters", Op: dialect.Update, Names: names, Key: []any{int64(7), "x"}, Changes: changes}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("update round trip:\n got %#v\nwant %#v", got, want)
	}
	for i, v := range vals {
		if tv, ok := v.(time.Time); ok {
			gv := got.Changes[i].Val.(time.Time)
			_, wo := tv.Zone()
			_, go_ := gv.Zone()
			if !gv.Equal(tv) || wo != go_ {
				t.Errorf("time %v came back as %v", tv, gv)
			}
		}
	}

	names.Schema = nil
	names.Style = sqlparse.ParamQuestion
	cols := []sqlparse.Ident{{Norm: "id", Raw: "id"}, {Norm: "k2", Raw: "k2"}, {Norm: "v", Raw: `"v"`, Quoted: true}}
	keys := [][]any{{int64(1), "a"}, {int64(2), "b"}}
	rows := [][]any{{int64(1), "a", vals[12]}, {int64(2), "b", []byte("z")}}
	b, err = EncodeInsert(nil, "counters", &names, cols, keys, rows)
	if err != nil {
		t.Fatal(err)
	}
	got, err = DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	want = &Record{Table: "counters", Op: dialect.Insert, Names: names, Cols: cols, Keys: keys, Rows: rows}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("insert round trip:\n got %#v\nwant %#v", got, want)
	}
	// Every prefix is refused, never a panic.
	for i := range b {
		if _, err := DecodeRecord(b[:i]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", i)
		}
	}
	if _, err := EncodeUpdate(nil, "t", &names, []any{int64(1)}, []dirtyset.Change{{Val: struct{}{}}}); err == nil {
		t.Fatal("a struct value was journaled")
	}
}

// FuzzJournalDecode feeds the decoder arbitrary bytes: it must return an
// error or a record, never panic, and a record it returns must encode back
// to bytes that decode to the same record.
func FuzzJournalDecode(f *testing.F) {
	names := dirtyset.Names{Table: sqlparse.Ident{Norm: "t", Raw: "t"}, KeyCols: []sqlparse.Ident{{Norm: "id", Raw: "id"}}}
	var changes []dirtyset.Change
	for _, v := range codecValues() {
		changes = append(changes, dirtyset.Change{Col: sqlparse.Ident{Norm: "c", Raw: "c"}, Val: v})
	}
	b, _ := EncodeUpdate(nil, "t", &names, []any{int64(1)}, changes)
	f.Add(b)
	b, _ = EncodeInsert(nil, "t", &names, []sqlparse.Ident{{Norm: "id", Raw: "id"}}, [][]any{{int64(1)}}, [][]any{{int64(1)}})
	f.Add(b)
	b, _ = EncodeUpsert(nil, "t", &names, []sqlparse.Ident{{Norm: "id", Raw: "id"}}, [][]any{{int64(1)}}, [][]any{{int64(1)}}, [][]dirtyset.Change{changes[:3]})
	f.Add(b)
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := DecodeRecord(data)
		if err != nil {
			return
		}
		var again []byte
		switch rec.Op {
		case dialect.Update:
			again, err = EncodeUpdate(nil, rec.Table, &rec.Names, rec.Key, rec.Changes)
		case dialect.Upsert:
			again, err = EncodeUpsert(nil, rec.Table, &rec.Names, rec.Cols, rec.Keys, rec.Rows, rec.Upd)
		default:
			again, err = EncodeInsert(nil, rec.Table, &rec.Names, rec.Cols, rec.Keys, rec.Rows)
		}
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		rec2, err := DecodeRecord(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(rec, rec2) && !hasNaN(rec) {
			t.Fatalf("round trip changed the record:\n%#v\n%#v", rec, rec2)
		}
	})
}

// hasNaN reports whether a record holds a NaN, which DeepEqual never equals.
func hasNaN(r *Record) bool {
	check := func(v any) bool {
		switch x := v.(type) {
		case float64:
			return x != x
		case []float64:
			for _, e := range x {
				if e != e {
					return true
				}
			}
		case []float32:
			for _, e := range x {
				if e != e {
					return true
				}
			}
		}
		return false
	}
	anyOf := func(vals []any) bool {
		for _, v := range vals {
			if check(v) {
				return true
			}
		}
		return false
	}
	anyChange := func(changes []dirtyset.Change) bool {
		for _, c := range changes {
			if check(c.Val) {
				return true
			}
		}
		return false
	}
	if anyOf(r.Key) || anyChange(r.Changes) {
		return true
	}
	for _, vals := range slices.Concat(r.Keys, r.Rows) {
		if anyOf(vals) {
			return true
		}
	}
	for _, changes := range r.Upd {
		if anyChange(changes) {
			return true
		}
	}
	return false
}

func TestJournalCodecUpsertRoundTrip(t *testing.T) {
	names := dirtyset.Names{Table: sqlparse.Ident{Norm: "counters", Raw: `"counters"`, Quoted: true}, KeyCols: []sqlparse.Ident{{Norm: "id", Raw: "id"}}, Style: sqlparse.ParamDollar}
	cols := []sqlparse.Ident{{Norm: "id", Raw: "id"}, {Norm: "n", Raw: "n"}, {Norm: "s", Raw: "s"}}
	keys := [][]any{{int64(1)}, {int64(2)}}
	rows := [][]any{{int64(1), int64(5), "a"}, {int64(2), nil, []byte("b")}}
	upd := [][]dirtyset.Change{
		{{Col: cols[1], Delta: true, Val: int64(5)}, {Col: cols[2], Val: "a"}},
		{{Col: cols[1], Val: nil}},
	}
	b, err := EncodeUpsert(nil, "counters", &names, cols, keys, rows, upd)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	want := &Record{Table: "counters", Op: dialect.Upsert, Names: names, Cols: cols, Keys: keys, Rows: rows, Upd: upd}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("upsert round trip:\n got %#v\nwant %#v", got, want)
	}
	if recordCovered(&Checkpoints{}, got, 1) {
		t.Fatal("an empty checkpoint covers the record")
	}
	if !recordCovered(&Checkpoints{watermark: map[string]uint64{"counters": 1}}, got, 1) {
		t.Fatal("the watermark does not cover the record")
	}
	for i := range b {
		if _, err := DecodeRecord(b[:i]); err == nil {
			t.Fatalf("prefix of %d bytes decoded", i)
		}
	}
}

// TestJournalCodecReadsVersion1: a journal written before identifiers
// stopped repeating their raw spelling (record version 1) is replayed as
// it was written, and a counter's record is now a fifth shorter.
func TestJournalCodecReadsVersion1(t *testing.T) {
	// version1 is an UPDATE of one key value and one delta as version 1
	// spelled it: an ident is norm(str) raw(str) quoted(1).
	version1 := func(table string, names dirtyset.Names, key any, ch dirtyset.Change) []byte {
		t.Helper()
		str := func(b []byte, s string) []byte { return append(append(b, byte(len(s))), s...) }
		ident := func(b []byte, id sqlparse.Ident) []byte {
			b = str(str(b, id.Norm), id.Raw)
			if id.Quoted {
				return append(b, 1)
			}
			return append(b, 0)
		}
		b := str([]byte{1, byte(dialect.Update)}, table)
		b = append(b, 0) // no schema
		b = ident(b, names.Table)
		b = ident(append(b, 1), names.KeyCols[0])
		b = append(b, byte(names.Style))
		b, err := encodeValues(b, []any{key})
		if err != nil {
			t.Fatal(err)
		}
		b = ident(append(b, 1), ch.Col)
		if b, err = encodeValue(append(b, 1), ch.Val); err != nil { // kind 1: a delta
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		name  string
		names dirtyset.Names
		col   sqlparse.Ident
	}{
		{"spelled otherwise", dirtyset.Names{Table: sqlparse.Ident{Norm: "counters", Raw: "Counters"}, KeyCols: []sqlparse.Ident{{Norm: "id", Raw: "id"}}, Style: sqlparse.ParamDollar},
			sqlparse.Ident{Norm: "views", Raw: `"views"`, Quoted: true}},
		{"as an application writes it", dirtyset.Names{Table: sqlparse.Ident{Norm: "counters", Raw: "counters"}, KeyCols: []sqlparse.Ident{{Norm: "id", Raw: "id"}}, Style: sqlparse.ParamDollar},
			sqlparse.Ident{Norm: "views", Raw: "views"}},
	} {
		ch := dirtyset.Change{Col: c.col, Delta: true, Val: int64(1)}
		v2, err := EncodeUpdate(nil, "counters", &c.names, []any{int64(7)}, []dirtyset.Change{ch})
		if err != nil {
			t.Fatal(err)
		}
		v1 := version1("counters", c.names, int64(7), ch)
		want := &Record{Table: "counters", Op: dialect.Update, Names: c.names, Key: []any{int64(7)}, Changes: []dirtyset.Change{ch}}
		for _, b := range [][]byte{v1, v2} {
			got, err := DecodeRecord(b)
			if err != nil {
				t.Fatalf("%s, version %d: %v", c.name, b[0], err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s, version %d decodes to\n%#v\nwant %#v", c.name, b[0], got, want)
			}
		}
		if c.names.Table.Raw == c.names.Table.Norm && len(v2)*5 > len(v1)*4 {
			t.Errorf("%s: %d bytes, version 1 %d; want a fifth less", c.name, len(v2), len(v1))
		}
	}
	for _, bad := range [][]byte{{9, byte(dialect.Update)}, {0, byte(dialect.Update)}} {
		if _, err := DecodeRecord(bad); err == nil {
			t.Errorf("record of version %d decoded", bad[0])
		}
	}
}
