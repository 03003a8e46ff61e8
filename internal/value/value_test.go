package value

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

// valuer is a driver.Valuer with a value receiver: a nil *valuer is NULL to
// database/sql without Value being called.
type valuer struct {
	v   driver.Value
	err error
}

func (x valuer) Value() (driver.Value, error) { return x.v, x.err }

// ptrValuer is a driver.Valuer with a pointer receiver that gives a nil
// receiver a non-NULL value.
type ptrValuer struct{ v driver.Value }

func (x *ptrValuer) Value() (driver.Value, error) {
	if x == nil {
		return "nil receiver", nil
	}
	return x.v, nil
}

// nestedValuer returns another Valuer from Value, which database/sql rejects.
type nestedValuer struct{}

func (nestedValuer) Value() (driver.Value, error) { return valuer{v: int64(1)}, nil }

type (
	label    string
	labels   []label
	rawBytes []byte
)

func TestCopy(t *testing.T) {
	now := time.Date(2024, 2, 29, 12, 30, 0, 123, time.FixedZone("X", 3600))
	cases := []struct {
		name string
		in   any
		want any
		ok   bool
	}{
		{"nil", nil, nil, true},
		{"int64", int64(-7), int64(-7), true},
		{"float64", 2.5, 2.5, true},
		{"bool", true, true, true},
		{"string", "héllo", "héllo", true},
		{"empty string", "", "", true},
		{"bytes", []byte("ab"), []byte("ab"), true},
		// An empty, non-nil []byte stays an empty value, not NULL.
		{"empty bytes", []byte{}, []byte{}, true},
		// database/sql sends a nil []byte as NULL: an untyped nil.
		{"nil bytes", []byte(nil), nil, true},
		{"time", now, now, true},

		// Integers normalize to int64.
		{"int", int(-3), int64(-3), true},
		{"int32", int32(math.MinInt32), int64(math.MinInt32), true},
		{"int16", int16(-16), int64(-16), true},
		{"int8", int8(-8), int64(-8), true},
		{"uint32", uint32(math.MaxUint32), int64(math.MaxUint32), true},
		{"uint16", uint16(16), int64(16), true},
		{"uint8", uint8(255), int64(255), true},
		{"uint max int64", uint(math.MaxInt64), int64(math.MaxInt64), true},
		{"uint64 max int64", uint64(math.MaxInt64), int64(math.MaxInt64), true},
		// Unsigned values past int64 cannot be normalized: pass through.
		{"uint over int64", uint(math.MaxInt64) + 1, nil, false},
		{"uint64 over int64", uint64(math.MaxUint64), nil, false},
		// float32 widens exactly (the float64 nearest 0.1 is not the result).
		{"float32", float32(0.1), float64(float32(0.1)), true},

		// driver.Valuer: snapshotted and normalized.
		{"valuer int", valuer{v: int(5)}, int64(5), true},
		{"valuer string", valuer{v: "s"}, "s", true},
		{"valuer nil", valuer{v: nil}, nil, true},
		{"valuer error", valuer{err: errors.New("boom")}, nil, false},
		{"valuer unsupported", valuer{v: struct{}{}}, nil, false},
		{"valuer returns valuer", nestedValuer{}, nil, false},
		{"nil pointer, value receiver", (*valuer)(nil), nil, true},
		{"pointer, value receiver", &valuer{v: int64(9)}, int64(9), true},
		{"pointer receiver", &ptrValuer{v: 1.5}, 1.5, true},
		// As database/sql's callValuerValue: Value is called on a nil
		// pointer whose Value method has a pointer receiver.
		{"nil pointer, pointer receiver", (*ptrValuer)(nil), "nil receiver", true},
		{"sql.NullInt64 valid", sql.NullInt64{Int64: 4, Valid: true}, int64(4), true},
		{"sql.NullInt64 null", sql.NullInt64{}, nil, true},
		{"sql.NullString valid", sql.NullString{String: "x", Valid: true}, "x", true},
		{"sql.NullTime valid", sql.NullTime{Time: now, Valid: true}, now, true},
		{"sql.NullInt32 valid", sql.NullInt32{Int32: 3, Valid: true}, int64(3), true},

		// Slices of plain scalars (arrays through pgx) keep their type.
		{"[]int64", []int64{1, 2}, []int64{1, 2}, true},
		{"[]int", []int{1, 2}, []int{1, 2}, true},
		{"[]int8", []int8{-1}, []int8{-1}, true},
		{"[]uint16", []uint16{1}, []uint16{1}, true},
		{"[]float32", []float32{1.5}, []float32{1.5}, true},
		{"[]bool", []bool{true}, []bool{true}, true},
		{"[]string", []string{"a", "b"}, []string{"a", "b"}, true},
		{"named slice of named strings", labels{"a"}, labels{"a"}, true},
		{"empty []string", []string{}, []string{}, true},
		// A typed nil slice stays a typed nil slice (pgx sends it as NULL).
		{"nil []int64", []int64(nil), []int64(nil), true},

		// Everything else passes through.
		{"struct", struct{ A int }{1}, nil, false},
		{"map", map[string]int{"a": 1}, nil, false},
		{"pointer to int", new(int64), nil, false},
		{"nil pointer to int", (*int64)(nil), nil, false},
		{"array", [2]int64{1, 2}, nil, false},
		{"complex", complex(1, 2), nil, false},
		{"[]any", []any{int64(1)}, nil, false},
		{"[][]byte", [][]byte{[]byte("a")}, nil, false},
		{"[]time.Time", []time.Time{now}, nil, false},
		// A named byte slice is not []byte, and uint8 elements are not
		// copied element-wise (only []byte itself is).
		{"named []byte", rawBytes("a"), nil, false},
		{"named string", label("a"), nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Copy(c.in)
			if ok != c.ok {
				t.Fatalf("Copy(%#v) ok = %v, want %v", c.in, ok, c.ok)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Copy(%#v) = %#v (%T), want %#v (%T)", c.in, got, got, c.want, c.want)
			}
		})
	}
}

// TestCopyIsDeep: mutating the source after Copy does not change the copy.
func TestCopyIsDeep(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		src := []byte("abc")
		got, _ := Copy(src)
		src[0] = 'X'
		if string(got.([]byte)) != "abc" {
			t.Fatalf("copy aliases the source: %q", got)
		}
	})
	t.Run("bytes from valuer", func(t *testing.T) {
		src := []byte("abc")
		got, _ := Copy(valuer{v: src})
		src[0] = 'X'
		if string(got.([]byte)) != "abc" {
			t.Fatalf("copy aliases the valuer's bytes: %q", got)
		}
	})
	t.Run("int slice", func(t *testing.T) {
		src := []int64{1, 2, 3}
		got, _ := Copy(src)
		src[0] = 99
		if !reflect.DeepEqual(got, []int64{1, 2, 3}) {
			t.Fatalf("copy aliases the source: %v", got)
		}
	})
	t.Run("string slice", func(t *testing.T) {
		src := []string{"a", "b"}
		got, _ := Copy(src)
		src[1] = "z"
		if !reflect.DeepEqual(got, []string{"a", "b"}) {
			t.Fatalf("copy aliases the source: %v", got)
		}
	})
	t.Run("capacity", func(t *testing.T) {
		// Appending to the source's spare capacity must not show in the copy.
		src := make([]byte, 2, 10)
		got, _ := Copy(src)
		b := got.([]byte)
		_ = append(src, 'x')
		if len(b) != 2 {
			t.Fatalf("len %d", len(b))
		}
		if &b[0] == &src[0] {
			t.Fatal("copy shares the backing array")
		}
	})
}

// TestCopyValuerSnapshot: Value is called once, at Copy time.
func TestCopyValuerSnapshot(t *testing.T) {
	v := &valuer{v: int64(1)}
	got, ok := Copy(v)
	v.v = int64(2)
	if !ok || got != int64(1) {
		t.Fatalf("Copy = %v, %v; want the value at Copy time", got, ok)
	}
}

func TestAdd(t *testing.T) {
	cases := []struct {
		name string
		a, b any
		want any
		ok   bool
	}{
		{"int", int64(2), int64(3), int64(5), true},
		{"int negative", int64(-5), int64(3), int64(-2), true},
		{"int zero", int64(math.MaxInt64), int64(0), int64(math.MaxInt64), true},
		{"int min zero", int64(math.MinInt64), int64(0), int64(math.MinInt64), true},
		{"int max plus min", int64(math.MaxInt64), int64(math.MinInt64), int64(-1), true},
		{"int to max", int64(math.MaxInt64 - 1), int64(1), int64(math.MaxInt64), true},
		{"int to min", int64(math.MinInt64 + 1), int64(-1), int64(math.MinInt64), true},
		{"int overflow", int64(math.MaxInt64), int64(1), nil, false},
		{"int overflow big", int64(math.MaxInt64), int64(math.MaxInt64), nil, false},
		{"int underflow", int64(math.MinInt64), int64(-1), nil, false},
		{"int underflow big", int64(math.MinInt64), int64(math.MinInt64), nil, false},

		// float64 sums the way float64 arithmetic does, inexactly.
		{"float", 1.5, 2.25, 3.75, true},
		{"float inexact", 0.1, 0.2, 0.30000000000000004, true}, // not 0.3: float64 rounding
		{"float inf", math.Inf(1), 1.0, math.Inf(1), true},

		// Decimal strings are summed exactly, at the larger scale.
		{"decimal", "0.1", "0.2", "0.3", true},
		{"decimal scales", "1", "2.50", "3.50", true},
		{"decimal keeps scale", "0.10", "0.2", "0.30", true},
		{"decimal negative", "-1.5", "0.25", "-1.25", true},
		{"decimal both negative", "-0.5", "-0.75", "-1.25", true},
		{"decimal to zero", "-0.1", "0.1", "0.0", true},
		{"decimal zero scale 3", "100", "-100.000", "0.000", true},
		{"decimal small negative", "0.001", "-0.01", "-0.009", true},
		{"decimal plus sign", "+1", "1", "2", true},
		{"decimal no int part", ".5", "1", "1.5", true},
		{"decimal leading zeros", "007", "0.5", "7.5", true},
		{"decimal negative zero", "-0", "0", "0", true},
		{"decimal past int64", "9223372036854775807", "1", "9223372036854775808", true},
		{"decimal big", "99999999999999999999999999.99", "0.01", "100000000000000000000000000.00", true},

		// Text the database could read otherwise is refused.
		{"decimal exponent", "1e3", "1", nil, false},
		{"decimal space", " 1", "1", nil, false},
		{"decimal trailing dot", "1.", "1", nil, false},
		{"decimal empty", "", "1", nil, false},
		{"decimal sign only", "-", "1", nil, false},
		{"decimal dot only", ".", "1", nil, false},
		{"decimal double sign", "+-1", "1", nil, false},
		{"decimal two dots", "1.2.3", "1", nil, false},
		{"decimal hex", "0x10", "1", nil, false},
		{"decimal word", "abc", "1", nil, false},
		{"decimal NaN", "NaN", "1", nil, false},
		{"decimal bad second", "1", "1,5", nil, false},
		{"decimal too long", strings.Repeat("1", 201), "1", nil, false},

		// NULL + d is NULL as in SQL (c = c + ? leaves a NULL column NULL).
		// The delta is not examined: callers only pass values IsDelta
		// accepted (a NULL delta is made an assignment before Add).
		{"null plus int", nil, int64(1), nil, true},
		{"null plus decimal", nil, "0.5", nil, true},
		{"null plus null", nil, nil, nil, true},
		{"null plus anything", nil, struct{}{}, nil, true},
		// A NULL delta is not summed: the caller never passes one.
		{"int plus null", int64(1), nil, nil, false},
		{"decimal plus null", "1", nil, nil, false},

		// Mixed kinds are refused: the database's result type is unknown.
		{"int plus float", int64(1), 1.0, nil, false},
		{"float plus int", 1.0, int64(1), nil, false},
		{"int plus decimal", int64(1), "1", nil, false},
		{"decimal plus int", "1", int64(1), nil, false},
		{"float plus decimal", 1.0, "1", nil, false},
		{"decimal plus float", "1", 1.0, nil, false},
		// Non-numeric kinds are refused.
		{"bool", true, true, nil, false},
		{"int not normalized", int(1), int(1), nil, false},
		{"bytes", []byte("1"), []byte("1"), nil, false},
		{"time", time.Unix(0, 0), time.Unix(0, 0), nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Add(c.a, c.b)
			if ok != c.ok {
				t.Fatalf("Add(%#v, %#v) ok = %v, want %v", c.a, c.b, ok, c.ok)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Add(%#v, %#v) = %#v (%T), want %#v (%T)", c.a, c.b, got, got, c.want, c.want)
			}
		})
	}
}

// TestAddFloatNaN: NaN is not DeepEqual to itself, so it is checked apart.
func TestAddFloatNaN(t *testing.T) {
	got, ok := Add(math.Inf(1), math.Inf(-1))
	if f, isF := got.(float64); !ok || !isF || !math.IsNaN(f) {
		t.Fatalf("Add(+Inf, -Inf) = %v, %v; want NaN, true", got, ok)
	}
}

// TestAddDoesNotMutate: decimal sums do not alias or change their operands
// (parseDecimal builds fresh big.Ints; add copies before scaling).
func TestAddDoesNotMutate(t *testing.T) {
	a, b := "1.5", "2.25"
	for range 3 {
		if got, ok := Add(a, b); !ok || got != "3.75" {
			t.Fatalf("Add = %v, %v", got, ok)
		}
	}
	if a != "1.5" || b != "2.25" {
		t.Fatal("operands changed")
	}
}

// TestAddDecimalLengthLimit: a sum may be longer than parseDecimal accepts;
// it is still formed, and the next Add on it is refused (the row then
// flushes) rather than misread.
func TestAddDecimalLengthLimit(t *testing.T) {
	nines := strings.Repeat("9", 200)
	sum, ok := Add(nines, "1")
	if !ok || sum != "1"+strings.Repeat("0", 200) {
		t.Fatalf("Add(9..9, 1) = %v, %v", sum, ok)
	}
	if _, ok := Add(sum, "1"); ok {
		t.Fatal("Add on a 201-digit decimal accepted")
	}
	if IsDelta(sum) {
		t.Fatal("201-digit decimal is a delta")
	}
}

func TestNegate(t *testing.T) {
	cases := []struct {
		name string
		in   any
		want any
		ok   bool
	}{
		{"int", int64(5), int64(-5), true},
		{"int negative", int64(-5), int64(5), true},
		{"int zero", int64(0), int64(0), true},
		{"int max", int64(math.MaxInt64), int64(-math.MaxInt64), true},
		{"int min+1", int64(math.MinInt64 + 1), int64(math.MaxInt64), true},
		// -MinInt64 does not fit in int64.
		{"int min", int64(math.MinInt64), nil, false},

		{"float", 1.5, -1.5, true},
		{"float negative", -0.25, 0.25, true},
		{"float inf", math.Inf(1), math.Inf(-1), true},

		{"decimal", "1.50", "-1.50", true},
		{"decimal negative", "-2.5", "2.5", true},
		{"decimal plus sign", "+3", "-3", true},
		{"decimal integer", "42", "-42", true},
		// The text is re-formatted: a leading zero appears, zero loses its sign.
		{"decimal no int part", ".5", "-0.5", true},
		{"decimal zero", "0", "0", true},
		{"decimal negative zero", "-0.00", "0.00", true},
		{"decimal leading zeros", "-007", "7", true},
		{"decimal big", "123456789012345678901234567890.5", "-123456789012345678901234567890.5", true},

		{"decimal exponent", "1e3", nil, false},
		{"decimal word", "x", nil, false},
		{"decimal empty", "", nil, false},
		{"nil", nil, nil, false},
		{"bool", true, nil, false},
		{"int not normalized", int(1), nil, false},
		{"float32", float32(1), nil, false},
		{"bytes", []byte("1"), nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Negate(c.in)
			if ok != c.ok {
				t.Fatalf("Negate(%#v) ok = %v, want %v", c.in, ok, c.ok)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Negate(%#v) = %#v (%T), want %#v (%T)", c.in, got, got, c.want, c.want)
			}
		})
	}
}

// TestNegateFloatZero: -0.0 is a negative zero, which still sums as zero.
func TestNegateFloatZero(t *testing.T) {
	got, ok := Negate(0.0)
	f, isF := got.(float64)
	if !ok || !isF || f != 0 || !math.Signbit(f) {
		t.Fatalf("Negate(0.0) = %v, %v", got, ok)
	}
	if s, _ := Add(2.5, got); s != 2.5 {
		t.Fatalf("2.5 + -0.0 = %v", s)
	}
}

func TestIsDelta(t *testing.T) {
	cases := []struct {
		in   any
		want bool
	}{
		{int64(1), true},
		{int64(math.MinInt64), true},
		{0.5, true},
		{math.NaN(), true}, // float64 sums the way float64 does
		{"1", true},
		{"-1.25", true},
		{"+.5", true},
		{strings.Repeat("9", 200), true},
		{strings.Repeat("9", 201), false},
		{"1e3", false},
		{"1.", false},
		{"", false},
		{"abc", false},
		{" 1", false},
		{nil, false},
		{true, false},
		{int(1), false}, // Copy normalizes ints first
		{int32(1), false},
		{float32(1), false},
		{[]byte("1"), false},
		{time.Unix(0, 0), false},
	}
	for _, c := range cases {
		if got := IsDelta(c.in); got != c.want {
			t.Errorf("IsDelta(%#v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestDeltaValuesAdd: whatever IsDelta accepts, Negate and Add handle.
func TestDeltaValuesAdd(t *testing.T) {
	for _, v := range []any{int64(3), 1.25, "7.5", "-0.001"} {
		if !IsDelta(v) {
			t.Fatalf("IsDelta(%#v) = false", v)
		}
		n, ok := Negate(v)
		if !ok {
			t.Fatalf("Negate(%#v) refused", v)
		}
		sum, ok := Add(v, n)
		if !ok {
			t.Fatalf("Add(%#v, %#v) refused", v, n)
		}
		switch s := sum.(type) {
		case int64:
			if s != 0 {
				t.Fatalf("v + -v = %v", s)
			}
		case float64:
			if s != 0 {
				t.Fatalf("v + -v = %v", s)
			}
		case string:
			if strings.Trim(s, "0.") != "" {
				t.Fatalf("v + -v = %q", s)
			}
		}
	}
}

func TestSize(t *testing.T) {
	cases := []struct {
		in   any
		want int64
	}{
		{nil, valOverhead},
		{int64(1), valOverhead},
		{1.5, valOverhead},
		{true, valOverhead},
		{"", valOverhead},
		{"abcd", valOverhead + 4},
		{[]byte{}, valOverhead + 24},
		{[]byte("abcd"), valOverhead + 24 + 4},
		{time.Unix(0, 0), valOverhead + 24},
		{[]int64{1, 2, 3}, valOverhead + 24 + 3*8},
		{[]int16{1, 2}, valOverhead + 24 + 2*2},
		{[]string{"ab", "cde"}, valOverhead + 24 + 2*16 + 5},
		{struct{}{}, valOverhead + 64},
	}
	for _, c := range cases {
		if got := Size(c.in); got != c.want {
			t.Errorf("Size(%#v) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestSizeMonotone: a longer string, byte slice or slice never counts as
// smaller, and every value counts as at least its slot.
func TestSizeMonotone(t *testing.T) {
	var prevS, prevB, prevL, prevSS int64
	for n := 0; n <= 4096; n = n*2 + 1 {
		s := Size(strings.Repeat("x", n))
		b := Size(make([]byte, n))
		l := Size(make([]int64, n))
		ss := Size([]string{strings.Repeat("x", n)})
		if n > 0 && (s <= prevS || b <= prevB || l <= prevL || ss <= prevSS) {
			t.Fatalf("n=%d: sizes %d %d %d %d not above %d %d %d %d", n, s, b, l, ss, prevS, prevB, prevL, prevSS)
		}
		if s < int64(n) || b < int64(n) || l < 8*int64(n) {
			t.Fatalf("n=%d: sizes %d %d %d below the payload", n, s, b, l)
		}
		prevS, prevB, prevL, prevSS = s, b, l, ss
	}
	for _, v := range []any{nil, int64(0), "", []byte(nil), time.Time{}, map[int]int{}, new(int)} {
		if Size(v) < valOverhead {
			t.Errorf("Size(%#v) = %d, below the slot", v, Size(v))
		}
	}
}

// TestSizeOfCopy: Copy's normalized outputs are sized by their payload.
func TestSizeOfCopy(t *testing.T) {
	src := []byte(strings.Repeat("y", 1000))
	cp, _ := Copy(src)
	if Size(cp) < 1000 {
		t.Fatalf("Size of a 1000-byte copy = %d", Size(cp))
	}
}

// FuzzAdd checks Add of two int64s against math/big: the exact sum when it
// fits in int64, a refusal when it does not; the same both ways round; and
// Negate agrees with -x.
func FuzzAdd(f *testing.F) {
	for _, p := range [][2]int64{
		{0, 0}, {1, -1}, {math.MaxInt64, 1}, {math.MinInt64, -1},
		{math.MaxInt64, math.MinInt64}, {math.MinInt64, math.MinInt64},
		{math.MaxInt64, math.MaxInt64}, {-1, math.MinInt64 + 1},
	} {
		f.Add(p[0], p[1])
	}
	minI, maxI := big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64)
	f.Fuzz(func(t *testing.T, a, b int64) {
		want := new(big.Int).Add(big.NewInt(a), big.NewInt(b))
		fits := want.Cmp(minI) >= 0 && want.Cmp(maxI) <= 0
		for _, p := range [][2]int64{{a, b}, {b, a}} {
			got, ok := Add(p[0], p[1])
			if ok != fits {
				t.Fatalf("Add(%d, %d) ok = %v, sum %s fits = %v", p[0], p[1], ok, want, fits)
			}
			if ok && (reflect.TypeOf(got) != reflect.TypeOf(int64(0)) || got.(int64) != want.Int64()) {
				t.Fatalf("Add(%d, %d) = %#v, want %s", p[0], p[1], got, want)
			}
			if !ok && got != nil {
				t.Fatalf("Add(%d, %d) refused with %#v", p[0], p[1], got)
			}
		}
		n, ok := Negate(a)
		if ok != (a != math.MinInt64) || ok && n.(int64) != -a {
			t.Fatalf("Negate(%d) = %v, %v", a, n, ok)
		}
	})
}

// FuzzAddDecimal checks Add of two strings against big.Rat: when Add
// accepts, both are decimals big.Rat reads the same, the sum is exact, and it
// has the larger scale of the two; it never panics on any text.
func FuzzAddDecimal(f *testing.F) {
	for _, p := range [][2]string{
		{"0.1", "0.2"}, {"-1.5", "0.25"}, {".5", "+1"}, {"1e3", "1"}, {"-", "."},
		{"99999999999999999999.99", "0.01"}, {"-0", "0.000"}, {"١", "1"},
	} {
		f.Add(p[0], p[1])
	}
	scale := func(s string) int {
		if _, frac, ok := strings.Cut(s, "."); ok {
			return len(frac)
		}
		return 0
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		got, ok := Add(a, b)
		if ok != (IsDelta(a) && IsDelta(b)) {
			t.Fatalf("Add(%q, %q) ok = %v, IsDelta %v %v", a, b, ok, IsDelta(a), IsDelta(b))
		}
		if !ok {
			return
		}
		ra, okA := new(big.Rat).SetString(a)
		rb, okB := new(big.Rat).SetString(b)
		if !okA || !okB {
			t.Fatalf("Add accepted %q, %q that big.Rat cannot read", a, b)
		}
		s := got.(string)
		rs, okS := new(big.Rat).SetString(s)
		if !okS || rs.Cmp(new(big.Rat).Add(ra, rb)) != 0 {
			t.Fatalf("Add(%q, %q) = %q, want %s", a, b, s, new(big.Rat).Add(ra, rb).FloatString(10))
		}
		if scale(s) != max(scale(a), scale(b)) {
			t.Fatalf("Add(%q, %q) = %q: scale %d, want %d", a, b, s, scale(s), max(scale(a), scale(b)))
		}
		if n, ok := Negate(a); !ok {
			t.Fatalf("Negate(%q) refused an addend", a)
		} else if rn, _ := new(big.Rat).SetString(n.(string)); rn.Cmp(new(big.Rat).Neg(ra)) != 0 {
			t.Fatalf("Negate(%q) = %q", a, n)
		}
	})
}

// TestCopyImmutableNoAlloc checks that Copy hands back a value that cannot
// change (int64, float64, bool, string, time.Time) as it came: boxing it
// again would cost an allocation per argument on the buffered path.
func TestCopyImmutableNoAlloc(t *testing.T) {
	for _, v := range []any{int64(1) << 40, 2.5, true, "text", time.Unix(1700000000, 0)} {
		var out any
		if n := testing.AllocsPerRun(100, func() { out, _ = Copy(v) }); n != 0 {
			t.Errorf("Copy(%T) allocates %v times", v, n)
		}
		if out != v {
			t.Errorf("Copy(%v) = %v", v, out)
		}
	}
}
