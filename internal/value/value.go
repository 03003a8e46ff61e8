// Package value holds writeback's value arithmetic: private copies of bound
// arguments normalized to a few Go types, exact sums of deltas (int64 with an
// overflow check, decimal strings through math/big, never float64 for them),
// and memory estimates. It has no state and takes no locks.
package value

import (
	"database/sql/driver"
	"math"
	"math/big"
	"reflect"
	"strings"
	"time"
)

var valuerType = reflect.TypeFor[driver.Valuer]()

// Copy returns a private copy of a bound value, normalized to a small set
// of Go types, so a buffered write never aliases memory the caller may reuse.
// ok is false when the value's type is not one the buffer can copy and compare
// safely; the statement then passes through.
func Copy(v any) (out any, ok bool) {
	switch x := v.(type) {
	case nil:
		return nil, true
	case int64, float64, bool, string, time.Time:
		// Immutable already: v itself, not x boxed again (an allocation
		// per argument on the buffered path).
		return v, true
	case []byte:
		if x == nil {
			return nil, true // database/sql sends a nil []byte as NULL
		}
		return append([]byte{}, x...), true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, false
		}
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return nil, false
		}
		return int64(x), true
	case float32:
		return float64(x), true
	case driver.Valuer:
		// Snapshot the value now: database/sql would call Value at Exec time
		// too. Like database/sql, a nil pointer whose Value method is the
		// value type's (auto-generated for the pointer, it would panic) is
		// NULL; a pointer-receiver Value is called, nil or not.
		if rv := reflect.ValueOf(x); rv.Kind() == reflect.Pointer && rv.IsNil() && rv.Type().Elem().Implements(valuerType) {
			return nil, true
		}
		dv, err := x.Value()
		if err != nil {
			return nil, false
		}
		if _, again := dv.(driver.Valuer); again {
			return nil, false
		}
		return Copy(dv)
	}
	// Slices of plain scalars (PostgreSQL arrays through pgx) are copied
	// element by element; anything else (pointers, maps, structs) passes through.
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && isPlainScalar(rv.Type().Elem().Kind()) {
		if rv.IsNil() {
			return v, true
		}
		cp := reflect.MakeSlice(rv.Type(), rv.Len(), rv.Len())
		reflect.Copy(cp, rv)
		return cp.Interface(), true
	}
	return nil, false
}

func isPlainScalar(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String:
		return true
	}
	return false
}

// Negate returns -v for a delta value.
func Negate(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		if x == math.MinInt64 {
			return nil, false
		}
		return -x, true
	case float64:
		return -x, true
	case string:
		d, ok := parseDecimal(x)
		if !ok {
			return nil, false
		}
		d.unscaled.Neg(d.unscaled)
		return d.String(), true
	}
	return nil, false
}

// IsDelta reports whether v can be a delta the buffer can sum exactly (or, for
// float64, the way float64 arithmetic sums it).
func IsDelta(v any) bool {
	switch x := v.(type) {
	case int64, float64:
		return true
	case string:
		_, ok := parseDecimal(x)
		return ok
	}
	return false
}

// Add returns a + b for two numeric values of the same kind; NULL + d is
// NULL as in SQL. ok is false when the sum cannot be formed exactly the way the
// database would (mixed kinds, overflow, non-numeric).
func Add(a, b any) (any, bool) {
	if a == nil {
		return nil, true
	}
	switch x := a.(type) {
	case int64:
		y, ok := b.(int64)
		if !ok {
			return nil, false
		}
		s := x + y
		if (s > x) != (y > 0) { // overflow
			return nil, false
		}
		return s, true
	case float64:
		y, ok := b.(float64)
		if !ok {
			return nil, false
		}
		return x + y, true
	case string:
		y, ok := b.(string)
		if !ok {
			return nil, false
		}
		dx, ok1 := parseDecimal(x)
		dy, ok2 := parseDecimal(y)
		if !ok1 || !ok2 {
			return nil, false
		}
		return dx.add(dy).String(), true
	}
	return nil, false
}

// decimal is an exact decimal number: unscaled × 10^-scale.
type decimal struct {
	unscaled *big.Int
	scale    int
}

// parseDecimal accepts [+-]digits[.digits]; no exponent, no spaces, so that the
// text means the same to every database.
func parseDecimal(s string) (decimal, bool) {
	if len(s) == 0 || len(s) > 200 {
		return decimal{}, false
	}
	neg := false
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" && frac == "" {
		return decimal{}, false
	}
	if hasDot && frac == "" {
		return decimal{}, false
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return decimal{}, false
			}
		}
	}
	u, ok := new(big.Int).SetString(intPart+frac, 10)
	if !ok {
		return decimal{}, false
	}
	if neg {
		u.Neg(u)
	}
	return decimal{unscaled: u, scale: len(frac)}, true
}

func (d decimal) add(e decimal) decimal {
	a, b := new(big.Int).Set(d.unscaled), new(big.Int).Set(e.unscaled)
	scale := d.scale
	switch {
	case d.scale < e.scale:
		a.Mul(a, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e.scale-d.scale)), nil))
		scale = e.scale
	case e.scale < d.scale:
		b.Mul(b, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.scale-e.scale)), nil))
	}
	return decimal{unscaled: a.Add(a, b), scale: scale}
}

// String formats the decimal with exactly its scale of fractional digits.
func (d decimal) String() string {
	neg := d.unscaled.Sign() < 0
	digits := new(big.Int).Abs(d.unscaled).String()
	if d.scale > 0 {
		if len(digits) <= d.scale {
			digits = strings.Repeat("0", d.scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-d.scale] + "." + digits[len(digits)-d.scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// valOverhead is a value slot's own memory, erring high.
const valOverhead = 16

// Size is a conservative estimate of the memory a buffered value holds.
func Size(v any) int64 {
	switch x := v.(type) {
	case nil, int64, float64, bool:
		return valOverhead
	case string:
		return valOverhead + int64(len(x))
	case []byte:
		return valOverhead + 24 + int64(len(x))
	case time.Time:
		return valOverhead + 24
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		n := valOverhead + 24 + int64(rv.Len())*int64(rv.Type().Elem().Size())
		if rv.Type().Elem().Kind() == reflect.String {
			for i := 0; i < rv.Len(); i++ {
				n += int64(rv.Index(i).Len())
			}
		}
		return n
	}
	return valOverhead + 64
}
