package value

import (
	"math"
	"testing"
)

func TestCompare(t *testing.T) {
	for _, c := range []struct {
		a, b any
		want int
		ok   bool
	}{
		{int64(1), int64(2), -1, true},
		{int64(2), int64(2), 0, true},
		{int64(math.MaxInt64), int64(math.MinInt64), 1, true},
		{1.5, 1.25, 1, true},
		{"1.50", "1.5", 0, true},
		{"-0.001", "0", -1, true},
		{"10", "9.99", 1, true},
		{int64(1), 1.0, 0, false},
		{int64(1), "1", 0, false},
		{0.0, 1.0, 0, false}, // ±0 compare equal but are stored apart
		{math.NaN(), 1.0, 0, false},
		{"abc", "1", 0, false},
		{nil, int64(1), 0, false},
		{true, false, 0, false},
	} {
		got, ok := Compare(c.a, c.b)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("Compare(%#v, %#v) = %d, %v; want %d, %v", c.a, c.b, got, ok, c.want, c.ok)
		}
	}
}

func TestAddToZero(t *testing.T) {
	for _, c := range []struct {
		d, want any
		ok      bool
	}{
		{int64(-3), int64(-3), true},
		{1.5, 1.5, true},
		{math.Copysign(0, -1), 0.0, true},
		{"1.50", "1.50", true},
		{"1e3", nil, false},
		{true, nil, false},
	} {
		got, ok := AddToZero(c.d)
		if ok != c.ok || got != c.want {
			t.Errorf("AddToZero(%#v) = %#v, %v; want %#v, %v", c.d, got, ok, c.want, c.ok)
		}
		if f, isF := got.(float64); isF && math.Signbit(f) {
			t.Errorf("AddToZero(%#v) = -0", c.d)
		}
	}
}
