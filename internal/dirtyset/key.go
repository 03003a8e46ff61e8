package dirtyset

import (
	"encoding/binary"
	"strconv"
	"strings"
)

// ID identifies a dirty row within its table. A single int64 key uses i; a
// single string key uses s; a composite key is encoded into s.
type ID struct {
	i int64
	s string
}

// KeyKind is the Go type of one key column's value. Only int64 and string
// keys are buffered: the type is fixed per table, so 1 and "1" never name two
// dirty rows that the database would see as one.
type KeyKind uint8

const (
	KeyNone   KeyKind = iota // not a key type: the statement is not buffered
	KeyInt                   // int64
	KeyString                // string
)

// KindOfKey is the key kind of a value.
func KindOfKey(v any) KeyKind {
	switch v.(type) {
	case int64:
		return KeyInt
	case string:
		return KeyString
	}
	return KeyNone
}

// KeysValid reports whether every key value is of a kind rows are keyed by.
func KeysValid(k []any) bool {
	for _, v := range k {
		if KindOfKey(v) == KeyNone {
			return false
		}
	}
	return len(k) > 0
}

// MakeID builds the row identity from key values whose kinds were checked.
func MakeID(vals []any) ID {
	if len(vals) == 1 {
		switch v := vals[0].(type) {
		case int64:
			return ID{i: v}
		case string:
			return ID{s: v}
		}
	}
	var sb strings.Builder
	var n [binary.MaxVarintLen64]byte
	for _, v := range vals {
		switch x := v.(type) {
		case int64:
			sb.WriteByte('i')
			sb.Write(n[:binary.PutVarint(n[:], x)])
		case string:
			sb.WriteByte('s')
			sb.Write(n[:binary.PutUvarint(n[:], uint64(len(x)))])
			sb.WriteString(x)
		}
	}
	return ID{s: sb.String()}
}

// KeyText is a row's key as text, one-to-one within a table (key kinds are
// fixed per table): the decimal integer for a single integer key, Go-quoted
// text of the row identity otherwise (valid UTF-8 without NUL bytes, which
// PostgreSQL's text needs). The journal's checkpoints store it.
func KeyText(vals []any) string {
	if len(vals) == 1 {
		if i, isInt := vals[0].(int64); isInt {
			return strconv.FormatInt(i, 10)
		}
	}
	return strconv.Quote(MakeID(vals).s)
}

// compareID orders identities: by integer, then by text.
func compareID(a, b ID) int {
	switch {
	case a.i < b.i:
		return -1
	case a.i > b.i:
		return 1
	}
	return strings.Compare(a.s, b.s)
}
