package catalog

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
)

// Table tests for coerce.go: KeyValue, DeltaExact, AssignOK and their
// helpers, for both kinds that have a catalog. A case with ok false wants
// the value refused (the statement goes to the database); with ok true, the
// exact value returned, type included (int64(1) is not "1").

const (
	pg = dialect.Postgres
	sq = dialect.SQLite
)

var bothKinds = []dialect.Kind{pg, sq}

type coerceCase struct {
	name string
	kind dialect.Kind
	col  Column
	in   any
	want any
	ok   bool
}

func (c coerceCase) String() string {
	return fmt.Sprintf("%s/%s(%s len=%d scale=%d notnull=%v)/%T(%#v)",
		c.kind, c.name, c.col.Class, c.col.Length, c.col.Scale, c.col.NotNull, c.in, c.in)
}

func runCoerce(t *testing.T, fn string, f func(dialect.Kind, *Column, any) (any, bool), cases []coerceCase) {
	t.Helper()
	for _, c := range cases {
		col := c.col
		got, ok := f(c.kind, &col, c.in)
		if ok != c.ok {
			t.Errorf("%s %v: ok = %v (value %T %#v), want %v", fn, c, ok, got, got, c.ok)
			continue
		}
		if !ok {
			if got != nil {
				t.Errorf("%s %v: refused but returned %T %#v, want nil", fn, c, got, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s %v = %T %#v, want %T %#v", fn, c, got, got, c.want, c.want)
		}
	}
}

// forKinds returns the case once per kind.
func forKinds(kinds []dialect.Kind, c coerceCase) []coerceCase {
	out := make([]coerceCase, len(kinds))
	for i, k := range kinds {
		out[i] = c
		out[i].kind = k
	}
	return out
}

func TestKeyValueInteger(t *testing.T) {
	col := Column{Class: Integer, NotNull: true}
	var cases []coerceCase
	for _, c := range []coerceCase{
		{name: "int64", in: int64(5), want: int64(5), ok: true},
		{name: "negative int64", in: int64(-9), want: int64(-9), ok: true},
		{name: "leading zero", in: "01", want: int64(1), ok: true},
		{name: "spaces", in: " 7 ", want: int64(7), ok: true},
		{name: "tab and newline", in: "\t7\n", want: int64(7), ok: true},
		{name: "plus sign", in: "+3", want: int64(3), ok: true},
		{name: "minus", in: "-42", want: int64(-42), ok: true},
		{name: "minus zero", in: "-0", want: int64(0), ok: true},
		{name: "max int64", in: "9223372036854775807", want: int64(9223372036854775807), ok: true},
		{name: "not a number", in: "x"},
		{name: "empty", in: ""},
		{name: "blank", in: "   "},
		{name: "decimal text", in: "1.0"},
		{name: "exponent", in: "1e3"},
		{name: "hex", in: "0x10"},
		{name: "underscore", in: "1_000"},
		{name: "inner space", in: "1 2"},
		{name: "overflow", in: "9223372036854775808"},
		{name: "float64", in: float64(1)},
		{name: "int", in: 1},
		{name: "bytes", in: []byte("1")},
		{name: "bool", in: true},
		{name: "nil", in: nil},
	} {
		c.col = col
		cases = append(cases, forKinds(bothKinds, c)...)
	}
	runCoerce(t, "KeyValue", KeyValue, cases)
}

func TestKeyValueText(t *testing.T) {
	col := Column{Class: Text, NotNull: true}
	cases := []coerceCase{
		{name: "string", kind: pg, col: col, in: "abc", want: "abc", ok: true},
		{name: "string", kind: sq, col: col, in: "abc", want: "abc", ok: true},
		// Trailing blanks are significant in text (unlike char(n)).
		{name: "trailing blanks kept", kind: pg, col: col, in: "a  ", want: "a  ", ok: true},
		{name: "trailing blanks kept", kind: sq, col: col, in: "a  ", want: "a  ", ok: true},
		{name: "empty string", kind: pg, col: col, in: "", want: "", ok: true},
		{name: "empty string", kind: sq, col: col, in: "", want: "", ok: true},
		// SQLite's TEXT affinity stores an integer as its decimal text.
		{name: "int64", kind: sq, col: col, in: int64(5), want: "5", ok: true},
		{name: "negative int64", kind: sq, col: col, in: int64(-12), want: "-12", ok: true},
		{name: "int64", kind: pg, col: col, in: int64(5)},
		{name: "float64", kind: pg, col: col, in: float64(5)},
		{name: "float64", kind: sq, col: col, in: float64(5)},
		{name: "bytes", kind: pg, col: col, in: []byte("abc")},
		{name: "bytes", kind: sq, col: col, in: []byte("abc")},
		{name: "nil", kind: pg, col: col, in: nil},
		{name: "nil", kind: sq, col: col, in: nil},
	}
	runCoerce(t, "KeyValue", KeyValue, cases)
}

func TestKeyValueChar(t *testing.T) {
	c3 := Column{Class: Char, Length: 3, NotNull: true}
	c0 := Column{Class: Char, NotNull: true}
	cases := []coerceCase{
		// PostgreSQL: char(n) compares blank-padded; trailing blanks are no
		// part of the key.
		{name: "trailing blanks", kind: pg, col: c3, in: "ab  ", want: "ab", ok: true},
		{name: "padded to length", kind: pg, col: c3, in: "ab ", want: "ab", ok: true},
		{name: "full length plus blanks", kind: pg, col: c3, in: "abc   ", want: "abc", ok: true},
		{name: "all blanks", kind: pg, col: c3, in: "   ", want: "", ok: true},
		{name: "leading blank kept", kind: pg, col: c3, in: " a", want: " a", ok: true},
		{name: "runes not bytes", kind: pg, col: c3, in: "ééé", want: "ééé", ok: true},
		{name: "too long", kind: pg, col: c3, in: "abcd"},
		{name: "too long runes", kind: pg, col: c3, in: "éééé"},
		{name: "too long before blanks", kind: pg, col: c3, in: "abcd  "},
		{name: "no length", kind: pg, col: c0, in: "abcdef  ", want: "abcdef", ok: true},
		// SQLite: no padding semantics, no length enforced.
		{name: "trailing blanks kept", kind: sq, col: c3, in: "ab  ", want: "ab  ", ok: true},
		{name: "too long kept", kind: sq, col: c3, in: "abcd", want: "abcd", ok: true},
		{name: "int64", kind: pg, col: c3, in: int64(1)},
		{name: "int64", kind: sq, col: c3, in: int64(1)},
		{name: "bytes", kind: pg, col: c3, in: []byte("ab")},
		{name: "nil", kind: sq, col: c3, in: nil},
	}
	runCoerce(t, "KeyValue", KeyValue, cases)
}

const canonUUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"

// uuidSpellings: PostgreSQL's uuid input accepts each spelling with want
// non-empty, as want; it refuses each with want "". Checked against the
// server by TestKeyValueUUIDPostgresAgrees.
var uuidSpellings = []struct{ name, in, want string }{
	{"canonical", canonUUID, canonUUID},
	{"upper case", strings.ToUpper(canonUUID), canonUUID},
	{"mixed case", "A0EEbc99-9C0B-4ef8-BB6D-6bb9bd380a11", canonUUID},
	{"no dashes", "a0eebc999c0b4ef8bb6d6bb9bd380a11", canonUUID},
	{"braces", "{" + canonUUID + "}", canonUUID},
	{"braces no dashes", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}", canonUUID},
	{"dash after every four", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", canonUUID},
	{"one dash", "a0eebc99-9c0b4ef8bb6d6bb9bd380a11", canonUUID},
	{"dash at 8 of 3", "a0eebc999c0b4ef8-bb6d6bb9bd380a11", canonUUID},
	{"bad dash position", "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11", ""},
	{"dash after two", "a0-eebc999c0b4ef8bb6d6bb9bd380a11", ""},
	{"leading dash", "-a0eebc999c0b4ef8bb6d6bb9bd380a11", ""},
	{"trailing dash", "a0eebc999c0b4ef8bb6d6bb9bd380a11-", ""},
	{"double dash", "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11", ""},
	{"trailing dash in braces", "{a0eebc999c0b4ef8bb6d6bb9bd380a11-}", ""},
	{"too short", canonUUID[:len(canonUUID)-1], ""},
	{"too long", canonUUID + "0", ""},
	{"too long 36 hex", "a0eebc999c0b4ef8bb6d6bb9bd380a110000", ""},
	{"non-hex", "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ""},
	{"non-hex no dashes", "a0eebc999c0b4ef8bb6d6bb9bd380a1z", ""},
	{"open brace only", "{" + canonUUID, ""},
	{"close brace only", canonUUID + "}", ""},
	{"empty braces", "{}", ""},
	{"empty", "", ""},
	{"inner space", "a0eebc99 9c0b-4ef8-bb6d-6bb9bd380a11", ""},
	{"non-ASCII digit", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1١", ""},
}

func TestKeyValueUUID(t *testing.T) {
	col := Column{Class: UUID, NotNull: true}
	var cases []coerceCase
	for _, s := range uuidSpellings {
		c := coerceCase{name: s.name, col: col, in: s.in}
		if s.want != "" {
			c.want, c.ok = s.want, true
		}
		cases = append(cases, forKinds(bothKinds, c)...)
	}
	for _, c := range []coerceCase{
		{name: "bytes", in: []byte(canonUUID)},
		{name: "int64", in: int64(1)},
		{name: "nil", in: nil},
	} {
		c.col = col
		cases = append(cases, forKinds(bothKinds, c)...)
	}
	runCoerce(t, "KeyValue", KeyValue, cases)
}

// decimalSpellings: canonical decimal text, or "" for refused. Checked
// against PostgreSQL's numeric by TestKeyValueNumericPostgresAgrees.
var decimalSpellings = []struct{ in, want string }{
	{"1.50", "1.5"},
	{"01.0", "1"},
	{"-0.0", "0"},
	{"+0", "0"},
	{"-0", "0"},
	{"000", "0"},
	{".5", "0.5"},
	{"-.50", "-0.5"},
	{"5.", "5"},
	{"+7", "7"},
	{"-1.20", "-1.2"},
	{"0010.0100", "10.01"},
	{" 2.50 ", "2.5"},
	{"123456789012345678901234567890.000000000000000000001", "123456789012345678901234567890.000000000000000000001"},
	{"abc", ""},
	{"1e3", ""},
	{"1E3", ""},
	{"", ""},
	{" ", ""},
	{".", ""},
	{"-", ""},
	{"+", ""},
	{"-.", ""},
	{"1.2.3", ""},
	{"1,5", ""},
	{"--1", ""},
	{"+-1", ""},
	{"1-", ""},
	{"0x10", ""},
	{"NaN", ""},
	{"Infinity", ""},
	{"1 000", ""},
}

func TestKeyValueNumeric(t *testing.T) {
	col := Column{Class: Numeric, Precision: 10, Scale: 2, NotNull: true}
	free := Column{Class: Numeric, Scale: -1, NotNull: true}
	var cases []coerceCase
	for _, s := range decimalSpellings {
		c := coerceCase{name: "decimal", kind: pg, col: free, in: s.in}
		if s.want != "" {
			c.want, c.ok = s.want, true
		}
		cases = append(cases, c)
		// SQLite: only an int64 has a canonical form; no string does.
		cases = append(cases, coerceCase{name: "decimal", kind: sq, col: free, in: s.in})
	}
	cases = append(cases,
		// PostgreSQL: an int64 becomes the same text as its string spelling,
		// so 42 and "42.0" are one key.
		coerceCase{name: "int64", kind: pg, col: col, in: int64(42), want: "42", ok: true},
		coerceCase{name: "negative int64", kind: pg, col: col, in: int64(-3), want: "-3", ok: true},
		coerceCase{name: "zero int64", kind: pg, col: col, in: int64(0), want: "0", ok: true},
		coerceCase{name: "float64", kind: pg, col: col, in: float64(1.5)},
		coerceCase{name: "bytes", kind: pg, col: col, in: []byte("1")},
		coerceCase{name: "nil", kind: pg, col: col, in: nil},
		// SQLite keeps an int64 an int64.
		coerceCase{name: "int64", kind: sq, col: free, in: int64(42), want: int64(42), ok: true},
		coerceCase{name: "float64", kind: sq, col: free, in: float64(1.5)},
		coerceCase{name: "nil", kind: sq, col: free, in: nil},
	)
	runCoerce(t, "KeyValue", KeyValue, cases)

	// Two spellings of one key meet.
	a, _ := KeyValue(pg, &col, int64(42))
	b, _ := KeyValue(pg, &col, "042.00")
	if a != b {
		t.Errorf("KeyValue(42) = %#v, KeyValue(\"042.00\") = %#v: one key, two forms", a, b)
	}
}

func TestKeyValueOtherClasses(t *testing.T) {
	var cases []coerceCase
	for _, class := range []TypeClass{Other, Float, Bool, Time, Bytes, JSON} {
		for _, v := range []any{int64(1), float64(1), "1", []byte("1"), true, nil} {
			cases = append(cases, forKinds(bothKinds, coerceCase{name: "no key form", col: Column{Class: class, NotNull: true}, in: v})...)
		}
	}
	runCoerce(t, "KeyValue", KeyValue, cases)
}

func TestCanonicalDecimalDirect(t *testing.T) {
	for _, c := range []struct {
		in   any
		want any
		ok   bool
	}{
		{int64(7), "7", true},
		{int64(-7), "-7", true},
		{"7.0", "7", true},
		{float64(7), nil, false},
		{[]byte("7"), nil, false},
		{nil, nil, false},
	} {
		got, ok := canonicalDecimal(c.in)
		if ok != c.ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("canonicalDecimal(%#v) = %#v, %v; want %#v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestFitsScale(t *testing.T) {
	for _, c := range []struct {
		s     string
		scale int
		want  bool
	}{
		{"1", 0, true},
		{"1.0", 0, true}, // canonical "1": nothing to round
		{"1.5", 0, false},
		{"0.25", 2, true},
		{"0.250", 2, true},
		{"0.125", 2, false},
		{"-0.125", 2, false},
		{"12345678901234567890.12", 2, true},
		{"1.123456789", -1, true}, // unconstrained
		{"abc", -1, false},
		{"abc", 2, false},
		{"", 2, false},
		{"1e3", -1, false},
	} {
		col := &Column{Class: Numeric, Precision: 30, Scale: c.scale}
		if c.scale == -1 {
			col.Precision = 0 // unconstrained numeric
		}
		if got := fitsScale(c.s, col); got != c.want {
			t.Errorf("fitsScale(%q, %d) = %v, want %v", c.s, c.scale, got, c.want)
		}
	}
}

func TestDeltaExact(t *testing.T) {
	type dc struct {
		kind dialect.Kind
		col  Column
		v    any
		want bool
	}
	intCol := Column{Class: Integer}
	num2 := Column{Class: Numeric, Precision: 12, Scale: 2}
	num0 := Column{Class: Numeric, Precision: 12, Scale: 0}
	numFree := Column{Class: Numeric, Scale: -1}
	flt := Column{Class: Float}
	var cases []dc
	for _, k := range bothKinds {
		cases = append(cases,
			// Integer: only integers sum as the statements would.
			dc{k, intCol, int64(1), true},
			dc{k, intCol, int64(-5), true},
			dc{k, intCol, float64(1), false},
			dc{k, intCol, "1", false},
			dc{k, intCol, nil, false},
			dc{k, intCol, int64(math.MaxInt64), true},
			// A delta out of the type's range fails directly.
			dc{k, Column{Class: Integer, Type: "integer"}, int64(1 << 31), false},
			dc{k, Column{Class: Integer, Type: "integer"}, int64(-1 << 31), true},
			dc{k, Column{Class: Integer, Type: "smallint"}, int64(-1<<15 - 1), false},
			// Numeric: an int64 always.
			dc{k, num2, int64(3), true},
			dc{k, numFree, int64(-3), true},
			dc{k, num2, float64(0.5), false},
			dc{k, num2, nil, false},
			// Float: any number.
			dc{k, flt, int64(1), true},
			dc{k, flt, float64(0.1), true},
			dc{k, flt, "0.1", false},
			dc{k, flt, nil, false},
		)
		for _, class := range []TypeClass{Text, Char, UUID, Bool, Time, Bytes, JSON, Other} {
			for _, v := range []any{int64(1), float64(1), "1", nil} {
				cases = append(cases, dc{k, Column{Class: class}, v, false})
			}
		}
	}
	cases = append(cases,
		// PostgreSQL numeric: a decimal string within the scale.
		dc{pg, num2, "0.25", true},
		dc{pg, num2, "-0.25", true},
		dc{pg, num2, "0.250", true},
		dc{pg, num2, "0.125", false},
		dc{pg, num0, "1", true},
		dc{pg, num0, "1.5", false},
		dc{pg, numFree, "1.123456789", true},
		dc{pg, numFree, "abc", false},
		dc{pg, num2, "1e3", false},
		// SQLite: no string delta into a numeric column.
		dc{sq, num2, "0.25", false},
		dc{sq, numFree, "1", false},
	)
	for _, c := range cases {
		col := c.col
		if got := DeltaExact(c.kind, &col, c.v); got != c.want {
			t.Errorf("DeltaExact(%s, %s scale=%d, %T %#v) = %v, want %v", c.kind, c.col.Class, c.col.Scale, c.v, c.v, got, c.want)
		}
	}
}

func TestAssignOKNull(t *testing.T) {
	var cases []coerceCase
	for _, class := range []TypeClass{Other, Integer, Numeric, Float, Text, Char, UUID, Bool, Time, Bytes, JSON} {
		cases = append(cases, forKinds(bothKinds, coerceCase{name: "nil into NOT NULL", col: Column{Class: class, NotNull: true}, in: nil})...)
		cases = append(cases, forKinds(bothKinds, coerceCase{name: "nil into nullable", col: Column{Class: class}, in: nil, want: nil, ok: true})...)
	}
	runCoerce(t, "AssignOK", AssignOK, cases)
}

func TestAssignOKPostgres(t *testing.T) {
	intCol := Column{Class: Integer, NotNull: true}
	num2 := Column{Class: Numeric, Precision: 12, Scale: 2}
	num0 := Column{Class: Numeric, Precision: 12, Scale: 0}
	numFree := Column{Class: Numeric, Scale: -1}
	vc3 := Column{Class: Text, Length: 3}
	text := Column{Class: Text}
	ch3 := Column{Class: Char, Length: 3}
	cases := []coerceCase{
		// Integer: an int64, or text the database reads as one, which is
		// buffered as the int64 so that a later delta sums.
		{name: "int64", col: intCol, in: int64(7), want: int64(7), ok: true},
		{name: "leading zero", col: intCol, in: "01", want: int64(1), ok: true},
		{name: "spaces and sign", col: intCol, in: " +5 ", want: int64(5), ok: true},
		{name: "not an integer", col: intCol, in: "x"},
		{name: "decimal text", col: intCol, in: "1.5"},
		{name: "float64", col: intCol, in: float64(1)},
		{name: "bool", col: intCol, in: true},
		// Numeric: an int64, or a decimal the column's scale does not round
		// (kept as written).
		{name: "int64", col: num2, in: int64(10), want: int64(10), ok: true},
		{name: "within scale", col: num2, in: "1.25", want: "1.25", ok: true},
		{name: "within scale, spelling kept", col: num2, in: "1.50", want: "1.50", ok: true},
		{name: "trailing zeros beyond scale", col: num2, in: "1.2500", want: "1.2500", ok: true},
		{name: "beyond scale", col: num2, in: "1.255"},
		{name: "scale 0", col: num0, in: "3", want: "3", ok: true},
		{name: "scale 0 fraction", col: num0, in: "3.5"},
		{name: "unconstrained", col: numFree, in: "1.23456789", want: "1.23456789", ok: true},
		{name: "not a decimal", col: num2, in: "abc"},
		{name: "exponent", col: numFree, in: "1e3"},
		{name: "float64", col: num2, in: float64(1.25)},
		{name: "bytes", col: num2, in: []byte("1")},
		// Text and char(n): valid UTF-8 within the length, trailing blanks
		// not counted; []byte as text.
		{name: "string", col: vc3, in: "abc", want: "abc", ok: true},
		{name: "bytes", col: vc3, in: []byte("abc"), want: []byte("abc"), ok: true},
		{name: "runes not bytes", col: vc3, in: "ééé", want: "ééé", ok: true},
		{name: "trailing blanks not counted", col: vc3, in: "abc   ", want: "abc   ", ok: true},
		{name: "too long", col: vc3, in: "abcd"},
		{name: "too long runes", col: vc3, in: "éééé"},
		{name: "too long bytes", col: vc3, in: []byte("abcd")},
		{name: "leading blanks counted", col: vc3, in: "  ab"},
		{name: "non-UTF-8", col: text, in: "a\xffb"},
		{name: "non-UTF-8 bytes", col: text, in: []byte{'a', 0xff}},
		{name: "unbounded", col: text, in: strings.Repeat("x", 10000), want: strings.Repeat("x", 10000), ok: true},
		{name: "int64 into text", col: text, in: int64(1)},
		{name: "float64 into text", col: text, in: float64(1)},
		{name: "char string", col: ch3, in: "ab", want: "ab", ok: true},
		{name: "char bytes", col: ch3, in: []byte("ab"), want: []byte("ab"), ok: true},
		{name: "char trailing blanks", col: ch3, in: "abc  ", want: "abc  ", ok: true},
		{name: "char too long", col: ch3, in: "abcd"},
		{name: "char non-UTF-8", col: ch3, in: "\xc3"},
		{name: "char int64", col: ch3, in: int64(1)},
		// Other classes: passed through.
		{name: "float", col: Column{Class: Float, NotNull: true}, in: float64(1.5), want: float64(1.5), ok: true},
		{name: "bool", col: Column{Class: Bool, NotNull: true}, in: true, want: true, ok: true},
		{name: "uuid", col: Column{Class: UUID, NotNull: true}, in: canonUUID, want: canonUUID, ok: true},
		{name: "bytes", col: Column{Class: Bytes, NotNull: true}, in: []byte{0xff}, want: []byte{0xff}, ok: true},
	}
	for i := range cases {
		cases[i].kind = pg
	}
	runCoerce(t, "AssignOK", AssignOK, cases)
}

func TestAssignOKSQLite(t *testing.T) {
	intCol := Column{Class: Integer, NotNull: true}
	cases := []coerceCase{
		// Integer column: anything but a float, as given (SQLite's affinity
		// converts it at flush as it would at Exec).
		{name: "int64", col: intCol, in: int64(7), want: int64(7), ok: true},
		{name: "text kept as written", col: intCol, in: "01", want: "01", ok: true},
		{name: "not an integer", col: intCol, in: "x", want: "x", ok: true},
		{name: "bytes", col: intCol, in: []byte("1"), want: []byte("1"), ok: true},
		{name: "bool", col: intCol, in: true, want: true, ok: true},
		{name: "float64", col: intCol, in: float64(1)},
		{name: "float64 fraction", col: intCol, in: float64(1.5)},
		// Other columns: anything.
		{name: "float into numeric", col: Column{Class: Numeric, Scale: -1}, in: float64(1.5), want: float64(1.5), ok: true},
		{name: "decimal beyond any scale", col: Column{Class: Numeric, Scale: -1}, in: "1.23456", want: "1.23456", ok: true},
		{name: "float into real", col: Column{Class: Float}, in: float64(1.5), want: float64(1.5), ok: true},
		{name: "int64 into text", col: Column{Class: Text}, in: int64(1), want: int64(1), ok: true},
		{name: "non-UTF-8 text", col: Column{Class: Text}, in: "a\xff", want: "a\xff", ok: true},
		{name: "longer than length", col: Column{Class: Text, Length: 2}, in: "abcd", want: "abcd", ok: true},
		{name: "char too long", col: Column{Class: Char, Length: 2}, in: "abcd", want: "abcd", ok: true},
		{name: "float into text", col: Column{Class: Text}, in: float64(2), want: float64(2), ok: true},
	}
	for i := range cases {
		cases[i].kind = sq
	}
	runCoerce(t, "AssignOK", AssignOK, cases)
}

// The PostgreSQL tests below check the tables above against the server: a
// spelling KeyValue accepts is one the server reads as the same value, and
// the UUID spellings it refuses, the server refuses too (canonicalUUID
// claims to be PostgreSQL's uuid input).

func TestKeyValueUUIDPostgresAgrees(t *testing.T) {
	db := pgOpen(t)
	col := Column{Class: UUID, NotNull: true}
	for _, s := range uuidSpellings {
		var server string
		err := db.QueryRow("SELECT $1::text::uuid::text", s.in).Scan(&server)
		got, ok := KeyValue(pg, &col, s.in)
		switch {
		case s.want == "" && err == nil:
			t.Errorf("%s %q: the server reads %q, the test wants it refused", s.name, s.in, server)
		case s.want != "" && err != nil:
			t.Errorf("%s %q: the server refuses it (%v), the test wants %q", s.name, s.in, err, s.want)
		case ok && server != got:
			t.Errorf("%s %q: KeyValue = %q, server = %q", s.name, s.in, got, server)
		}
	}
}

func TestKeyValueNumericPostgresAgrees(t *testing.T) {
	db := pgOpen(t)
	col := Column{Class: Numeric, Scale: -1, NotNull: true}
	for _, s := range decimalSpellings {
		got, ok := KeyValue(pg, &col, s.in)
		if !ok {
			continue // refusing is always allowed: the server decides
		}
		var same bool
		var server string
		err := db.QueryRow("SELECT $1::text::numeric = $2::text::numeric, $2::text::numeric::text", s.in, got).Scan(&same, &server)
		if err != nil {
			t.Errorf("%q: KeyValue = %q, the server: %v", s.in, got, err)
			continue
		}
		if !same || server != got {
			t.Errorf("%q: KeyValue = %q; server equal = %v, server text of the key = %q", s.in, got, same, server)
		}
	}
}

func TestKeyValueIntegerCharPostgresAgrees(t *testing.T) {
	db := pgOpen(t)
	ic := Column{Class: Integer, NotNull: true}
	for _, in := range []string{"01", " 7 ", "\t7\n", "+3", "-0", "-42", "9223372036854775807"} {
		got, ok := KeyValue(pg, &ic, in)
		var server int64
		if err := db.QueryRow("SELECT $1::text::int8", in).Scan(&server); err != nil || !ok || got != server {
			t.Errorf("%q: KeyValue = %#v, %v; server = %d, %v", in, got, ok, server, err)
		}
	}
	cc := Column{Class: Char, Length: 3, NotNull: true}
	for _, in := range []string{"ab  ", "ab ", "abc   ", "ééé", " a"} {
		got, ok := KeyValue(pg, &cc, in)
		var same bool
		if err := db.QueryRow("SELECT $1::text::char(3) = $2::text::char(3)", in, got).Scan(&same); err != nil || !ok || !same {
			t.Errorf("%q: KeyValue = %#v, %v; server equal = %v, %v", in, got, ok, same, err)
		}
	}
	// What KeyValue refuses as too long, the server refuses on assignment.
	if _, ok := KeyValue(pg, &cc, "abcd"); ok {
		t.Errorf("KeyValue(char(3), \"abcd\") accepted")
	}
}

// TestAssignOKPostgresAgrees stores each value into a column of the type the
// case describes: what AssignOK accepts, the server stores unchanged (a
// numeric not rounded); what it refuses as too long, not UTF-8 or not an
// integer, the server refuses, and a numeric it refuses, the server rounds.
func TestAssignOKPostgresAgrees(t *testing.T) {
	db := pgOpen(t)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec("CREATE TEMP TABLE wb_assign (i int8, n numeric(12,2), v varchar(3), c char(3)) ON COMMIT DROP"); err != nil {
		t.Fatal(err)
	}
	cols := map[string]Column{
		"i": {Class: Integer},
		"n": {Class: Numeric, Precision: 12, Scale: 2},
		"v": {Class: Text, Length: 3},
		"c": {Class: Char, Length: 3},
	}
	for _, c := range []struct {
		col string
		v   any
	}{
		{"i", "01"}, {"i", " +5 "}, {"i", "x"}, {"i", "1.5"}, {"i", int64(3)},
		{"n", "1.25"}, {"n", "1.2500"}, {"n", "1.255"}, {"n", int64(4)},
		{"v", "abc"}, {"v", "abc   "}, {"v", "ééé"}, {"v", "abcd"}, {"v", "éééé"}, {"v", "a\xffb"}, {"v", []byte("ab")},
		{"c", "ab"}, {"c", "abc  "}, {"c", "abcd"}, {"c", "\xc3"},
	} {
		col := cols[c.col]
		got, ok := AssignOK(pg, &col, c.v)
		if _, err := tx.Exec("SAVEPOINT s"); err != nil {
			t.Fatal(err)
		}
		arg := c.v
		if ok {
			arg = got
		}
		var stored string
		err := tx.QueryRow("INSERT INTO wb_assign ("+c.col+") VALUES ($1) RETURNING "+c.col+"::text", arg).Scan(&stored)
		if _, rerr := tx.Exec("ROLLBACK TO SAVEPOINT s"); rerr != nil {
			t.Fatal(rerr)
		}
		what := fmt.Sprintf("%s %T %q", c.col, c.v, c.v)
		switch {
		case ok && err != nil:
			t.Errorf("%s: AssignOK accepts it (%#v), the server refuses: %v", what, got, err)
		case ok && c.col == "n":
			// Not rounded: the stored value equals the one given.
			var same bool
			if err := tx.QueryRow("SELECT $1::numeric = $2::text::numeric", stored, fmt.Sprint(got)).Scan(&same); err != nil || !same {
				t.Errorf("%s: stored as %s, not the value given (%v)", what, stored, err)
			}
		case !ok && c.col == "n":
			if err == nil && stored == fmt.Sprint(c.v) {
				t.Errorf("%s: AssignOK refuses it, but the server stores it unchanged", what)
			}
		case !ok && err == nil:
			t.Errorf("%s: AssignOK refuses it, the server stores %q", what, stored)
		}
	}
}

// TestCoerceReviewCases pins the cases a review found: a negative scale
// rounds, PostgreSQL's uuid input refuses surrounding spaces, only ASCII
// white space is skipped around numbers, integer types have ranges, and
// text with NUL is refused.
func TestCoerceReviewCases(t *testing.T) {
	neg := &Column{Class: Numeric, Type: "numeric(3,-1)", Precision: 3, Scale: -1}
	if _, ok := AssignOK(dialect.Postgres, neg, "15"); ok {
		t.Error("numeric(3,-1) takes '15' as 20: must not be buffered")
	}
	if DeltaExact(dialect.Postgres, neg, int64(5)) {
		t.Error("deltas on numeric(3,-1) round per statement: not exact")
	}
	uuidCol := &Column{Class: UUID, Type: "uuid"}
	if _, ok := KeyValue(dialect.Postgres, uuidCol, " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 "); ok {
		t.Error("PostgreSQL refuses a uuid with surrounding spaces")
	}
	intCol := &Column{Class: Integer, Type: "bigint"}
	if _, ok := KeyValue(dialect.Postgres, intCol, "\u00a07"); ok {
		t.Error("a non-breaking space is not white space to int8in")
	}
	if v, ok := KeyValue(dialect.Postgres, intCol, " \t7\n"); !ok || v != int64(7) {
		t.Errorf("ASCII white space around an integer: %v %v", v, ok)
	}
	small := &Column{Class: Integer, Type: "smallint"}
	if _, ok := AssignOK(dialect.Postgres, small, int64(40000)); ok {
		t.Error("40000 is out of smallint's range")
	}
	if _, ok := AssignOK(dialect.Postgres, &Column{Class: Integer, Type: "integer"}, int64(1<<31)); ok {
		t.Error("2^31 is out of integer's range")
	}
	if _, ok := AssignOK(dialect.Postgres, &Column{Class: Text, Type: "text"}, "a\x00b"); ok {
		t.Error("PostgreSQL's text refuses NUL")
	}
	if _, ok := KeyValue(dialect.Postgres, &Column{Class: Text, Type: "text"}, "a\xffb"); ok {
		t.Error("PostgreSQL's text refuses invalid UTF-8 in a key")
	}
	num2 := &Column{Class: Numeric, Type: "numeric(10,2)", Precision: 10, Scale: 2}
	if _, ok := KeyValue(dialect.Postgres, num2, "1.555"); ok {
		t.Error("numeric(10,2) rounds 1.555: another spelling of another key")
	}
}

// TestKeyClassOK: KeyValue gives no value a key form in the classes
// KeyClassOK rejects, and some value one in each class it accepts.
func TestKeyClassOK(t *testing.T) {
	samples := []any{int64(7), "7", "0f8fad5b-d9cb-469f-a165-70867728950e", 7.5, true, []byte("7"), time.Unix(7, 0)}
	for _, kind := range []dialect.Kind{dialect.Postgres, dialect.SQLite} {
		for class := Other; class <= JSON; class++ {
			c := &Column{Name: "k", Class: class, NotNull: true, Scale: -1}
			some := false
			for _, v := range samples {
				if _, ok := KeyValue(kind, c, v); ok {
					some = true
				}
			}
			if some != KeyClassOK(c) {
				t.Errorf("%s %s: KeyValue takes a sample: %v, KeyClassOK: %v", kind, class, some, KeyClassOK(c))
			}
		}
	}
}
