package catalog

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/writeback-go/writeback/internal/dialect"
)

// This file decides, from a column's type, what a buffered value means: the
// canonical form of a key value (so two spellings of one key are one row),
// whether a delta sums exactly, and whether a value would be refused by the
// database. Where it cannot tell, it says no, and the statement goes to the
// database unbuffered.

// KeyValue returns the canonical form of v as a value of key column c: the
// value two spellings of one database key both become. ok is false when v
// has no canonical form here (the statement then goes to the database, which
// decides, or refuses with its own error).
func KeyValue(kind dialect.Kind, c *Column, v any) (any, bool) {
	switch c.Class {
	case Integer:
		if s, isStr := v.(string); isStr && kind == dialect.MySQL && !exactAsDouble(s) {
			// MySQL documents comparing an integer with a string as
			// doubles: beyond 2^53 one string could match several keys.
			return nil, false
		}
		return integerValue(c, v)
	case Text:
		k, ok := textKey(kind, v)
		if s, isStr := k.(string); ok && isStr && kind == dialect.Postgres && !textOK(s) {
			return nil, false
		}
		return k, ok
	case Char:
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		if kind == dialect.Postgres {
			// char(n) compares and stores blank-padded: trailing blanks do
			// not make another key.
			s = strings.TrimRight(s, " ")
			if c.Length > 0 && utf8.RuneCountInString(s) > c.Length {
				return nil, false // too long: the database refuses it
			}
		}
		return s, true
	case UUID:
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		return canonicalUUID(s)
	case Numeric:
		if kind != dialect.Postgres {
			if i, ok := v.(int64); ok {
				return i, true
			}
			return nil, false
		}
		if str, isStr := v.(string); isStr && !fitsScale(str, c) {
			return nil, false // the column rounds it: another spelling of another key
		}
		if _, isInt := v.(int64); isInt && c.Precision != 0 && c.Scale < 0 {
			return nil, false
		}
		return canonicalDecimal(v)
	}
	return nil, false
}

// KeyClassOK reports whether KeyValue gives any value of column c's class a
// canonical form: for other classes (floats, booleans, times, bytes, JSON,
// anything else) every statement keyed by the column goes to the database.
func KeyClassOK(c *Column) bool {
	switch c.Class {
	case Integer, Text, Char, UUID, Numeric:
		return true
	}
	return false
}

// exactAsDouble reports whether s is an integer whose magnitude is below
// 2^53, so that a double holds it exactly.
func exactAsDouble(s string) bool {
	i, ok := integerKey(s)
	if !ok {
		return false
	}
	n := i.(int64)
	return -1<<53 < n && n < 1<<53
}

// integerValue is integerKey within the column type's range.
func integerValue(c *Column, v any) (any, bool) {
	k, ok := integerKey(v)
	if !ok {
		return nil, false
	}
	lo, hi := intRange(c)
	if i := k.(int64); i < lo || i > hi {
		return nil, false
	}
	return k, true
}

// integerKey accepts an int64, or a string the database reads as the same
// integer ("01", " 7 ", "+3").
//
// Values already canonical are returned as given, not boxed again: this runs
// on every buffered write.
func integerKey(v any) (any, bool) {
	switch x := v.(type) {
	case int64:
		return v, true
	case string:
		s := strings.Trim(x, asciiSpace) // int8in skips ASCII white space only
		if s == "" {
			return nil, false
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, false
		}
		return i, true
	}
	return nil, false
}

// textKey accepts a string; on SQLite, whose TEXT affinity stores an integer
// as its decimal text, an int64 too.
func textKey(kind dialect.Kind, v any) (any, bool) {
	switch x := v.(type) {
	case string:
		return v, true
	case int64:
		if kind == dialect.SQLite {
			return strconv.FormatInt(x, 10), true
		}
	}
	return nil, false
}

// canonicalUUID is PostgreSQL's uuid input: 32 hex digits, optionally in
// braces, with dashes after any group of four; output lower-case 8-4-4-4-12.
func canonicalUUID(s string) (any, bool) {
	if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
		s = s[1 : len(s)-1]
	}
	var hex []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
			hex = append(hex, c)
		case 'A' <= c && c <= 'F':
			hex = append(hex, c+('a'-'A'))
		case c == '-' && len(hex)%4 == 0 && len(hex) > 0 && i+1 < len(s) && s[i+1] != '-':
		default:
			return nil, false
		}
	}
	if len(hex) != 32 {
		return nil, false
	}
	h := string(hex)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], true
}

// canonicalDecimal is a numeric key's value as normalized decimal text:
// no sign for zero, no leading zeros, no trailing fractional zeros.
func canonicalDecimal(v any) (any, bool) {
	var s string
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10), true
	case string:
		s = strings.Trim(x, asciiSpace)
	default:
		return nil, false
	}
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" || !digits(intPart) || !digits(frac) {
		return nil, false
	}
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	if intPart == "" {
		intPart = "0"
	}
	out := intPart
	if frac != "" {
		out += "." + frac
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// DeltaExact reports whether a delta v added to column c, coalesced with
// other deltas and summed in memory, gives what the statements one by one
// would: integers within the type's range to integer columns, decimals
// within a numeric column's scale, numbers to float columns (float64 sums,
// whose rounding may differ in the last bit from one addition at a time).
// Anything else — a float to an integer column (truncated per statement),
// text +, a scale the column would round — is not coalesced.
func DeltaExact(kind dialect.Kind, c *Column, v any) bool {
	switch c.Class {
	case Integer:
		// A delta outside the type's range fails directly, whatever the row.
		i, ok := v.(int64)
		lo, hi := intRange(c)
		return ok && lo <= i && i <= hi
	case Numeric:
		if c.Precision != 0 && c.Scale < 0 {
			return false
		}
		switch x := v.(type) {
		case int64:
			return true
		case string:
			return kind == dialect.Postgres && fitsScale(x, c)
		}
	case Float:
		switch v.(type) {
		case int64, float64:
			return true
		}
	}
	return false
}

// AssignOK reports whether v may be buffered as the new value of column c
// (and returns it in canonical form), checking what can be checked cheaply
// so that the database's refusal comes at Exec, as it would directly: NULL
// into NOT NULL, a string longer than varchar(n) or not valid text, text
// that is not an integer or an integer out of the type's range into an
// integer column, a scale a numeric column would round (which a later delta
// would then sum differently). Values for other types (float, uuid, time,
// json, ...) are taken as they are: the flush casts them to the column's
// type, and a value the database refuses then is a dead letter, not an
// error at Exec.
func AssignOK(kind dialect.Kind, c *Column, v any) (any, bool) {
	if v == nil {
		return nil, !c.NotNull
	}
	if kind == dialect.SQLite {
		// SQLite stores what it is given, converted by the column's
		// affinity at flush as at Exec; only integer columns need care,
		// where a delta may follow.
		if c.Class == Integer {
			if _, isFloat := v.(float64); isFloat {
				return nil, false
			}
		}
		return v, true
	}
	switch c.Class {
	case Integer:
		return integerValue(c, v)
	case Numeric:
		switch x := v.(type) {
		case int64:
			if c.Precision != 0 && c.Scale < 0 {
				return nil, false
			}
			return v, true
		case string:
			if fitsScale(x, c) {
				return v, true
			}
		}
		return nil, false
	case Text, Char:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case []byte: // pgx sends bytes to a text column as its text
			s = string(x)
		default:
			return nil, false
		}
		if !textOK(s) || c.Length > 0 && utf8.RuneCountInString(strings.TrimRight(s, " ")) > c.Length {
			return nil, false
		}
		return v, true
	}
	return v, true
}

// asciiSpace is the white space PostgreSQL's number input skips.
const asciiSpace = " \t\n\v\f\r"

// fitsScale reports whether s is a decimal whose fractional digits fit
// numeric column c's scale (no precision: unconstrained). A negative scale
// (numeric(3,-1)) rounds integers: nothing fits it here.
func fitsScale(s string, c *Column) bool {
	d, ok := canonicalDecimal(s)
	if !ok {
		return false
	}
	if c.Precision == 0 {
		return true
	}
	_, frac, _ := strings.Cut(d.(string), ".")
	return c.Scale >= 0 && len(frac) <= c.Scale
}

// intRange is the range of an integer column's type: PostgreSQL's smallint
// and integer (whose catalog names are these, lower-case); int64's for
// bigint and for SQLite, whose integers are 64-bit whatever the declared type.
// It runs on every buffered write: no allocation.
func intRange(c *Column) (lo, hi int64) {
	switch c.Type {
	case "smallint":
		return -1 << 15, 1<<15 - 1
	case "integer", "int": // PostgreSQL's, MySQL's
		return -1 << 31, 1<<31 - 1
	case "tinyint": // MySQL's integer types from here
		return -1 << 7, 1<<7 - 1
	case "mediumint":
		return -1 << 23, 1<<23 - 1
	case "tinyint unsigned":
		return 0, 1<<8 - 1
	case "smallint unsigned":
		return 0, 1<<16 - 1
	case "mediumint unsigned":
		return 0, 1<<24 - 1
	case "int unsigned":
		return 0, 1<<32 - 1
	case "bigint unsigned":
		return 0, 1<<63 - 1
	}
	return -1 << 63, 1<<63 - 1
}

// textOK reports whether PostgreSQL's text input takes s: valid UTF-8
// without NUL bytes.
func textOK(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}
