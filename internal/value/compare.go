package value

import "math"

// Compare orders two values of the same numeric kind as the databases do:
// int64s, float64s (neither NaN nor zero, whose two signs compare equal
// but differ in storage), or decimal strings. ok is false for anything
// else.
func Compare(a, b any) (c int, ok bool) {
	switch x := a.(type) {
	case int64:
		y, ok := b.(int64)
		if !ok {
			return 0, false
		}
		return cmpOrdered(x, y), true
	case float64:
		y, ok := b.(float64)
		if !ok || math.IsNaN(x) || math.IsNaN(y) || x == 0 || y == 0 {
			return 0, false
		}
		return cmpOrdered(x, y), true
	case string:
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		dx, ok1 := parseDecimal(x)
		dy, ok2 := parseDecimal(y)
		if !ok1 || !ok2 {
			return 0, false
		}
		dy.unscaled.Neg(dy.unscaled)
		return dx.add(dy).unscaled.Sign(), true
	}
	return 0, false
}

func cmpOrdered[T int64 | float64](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// AddToZero returns 0 + d for a delta d: COALESCE(NULL, 0) + d. A float's
// -0 becomes 0, as in the databases' arithmetic.
func AddToZero(d any) (any, bool) {
	switch x := d.(type) {
	case int64:
		return x, true
	case float64:
		if x == 0 {
			return float64(0), true
		}
		return x, true
	case string:
		return Add("0", x)
	}
	return nil, false
}
