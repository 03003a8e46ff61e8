package durable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file is the encoding of one buffered statement as a journal record:
// enough to re-buffer it after a crash and to rebuild the flush SQL the
// application's statement would have led to (the table's names as written,
// their quoting, the placeholder style), without the statement text.
//
//	record  = [group] version(1) op(1) table(str) names changes-or-rows
//	group   = groupTag(1) id(8) index(uvarint) count(uvarint)
//	names   = hasSchema(1) [schema(ident)] table(ident) nkeys(uvarint) keyCols(ident)... style(1)
//	update  = key(values) nchanges(uvarint) { col(ident) kind(1) value }...
//	insert  = ncols(uvarint) cols(ident)... nrows(uvarint) { key(values) row(values) }...
//	upsert  = ncols(uvarint) cols(ident)... nrows(uvarint) { key(values) row(values) nchanges(uvarint) { col(ident) delta(1) value }... }...
//	values  = n(uvarint) value...
//	ident   = norm(str) form(1) [raw(str)]
//	str     = len(uvarint) bytes
//
// An ident's form has bit 0 set when it was quoted and bit 1 when its raw
// spelling differs from norm, which then follows: most identifiers are
// written as they are normalized, and a hot counter's record is a fifth
// shorter for not repeating them (less for the journal to write and
// fsync). Version 1 records, written before, spell an ident norm(str)
// raw(str) quoted(1); they are read as they were.
//
// A change's kind is 0 for an assignment, 1 for a delta (so far, the bool
// they were), 2 for a COALESCE delta, 3 for GREATEST and 4 for LEAST.
//
// A value is a tag byte and its payload (see the val* constants); time.Time
// uses its MarshalBinary form, which keeps the instant to the nanosecond and
// the zone offset. Slices of scalars (PostgreSQL arrays) keep their element
// type; a named slice type comes back as the unnamed slice of its element kind.

const journalRecordVersion = 2

// identForms: the bits of an ident's form byte.
const (
	identQuoted = 1 << iota
	identRaw
)

// groupTag starts the envelope of a record that is one of the writes of a
// committed transaction (AppendGroupHead): recovery replays the group's
// records only when its last one is in the journal.
const groupTag byte = 0x47

// maxGroup bounds a group's records, so a damaged count is not believed.
const maxGroup = 1 << 16

// Group places a record in its transaction's group.
type Group struct {
	ID    uint64 // random, the same for every record of the group
	Index int    // the record's place in the group, from 0
	Count int    // the group's records
}

// Last reports whether the record is its group's last.
func (g *Group) Last() bool { return g.Index == g.Count-1 }

// AppendGroupHead appends the envelope that makes the record encoded after
// it (by EncodeUpdate, EncodeInsert or EncodeUpsert) record index of a
// group of count.
func AppendGroupHead(dst []byte, g Group) []byte {
	dst = append(dst, groupTag)
	dst = binary.LittleEndian.AppendUint64(dst, g.ID)
	dst = binary.AppendUvarint(dst, uint64(g.Index))
	return binary.AppendUvarint(dst, uint64(g.Count))
}

// Record is one buffered statement as the journal holds it.
type Record struct {
	Table string // the rule's normalized name
	Op    dialect.Op
	Names dirtyset.Names
	// UPDATE: the row's key values (rule order) and its resolved changes.
	Key     []any
	Changes []dirtyset.Change
	// INSERT: the columns, and per row its key values and its values.
	Cols []sqlparse.Ident
	Keys [][]any
	Rows [][]any
	// UPSERT: Cols, Keys and Rows as for an INSERT, and per row the update
	// to apply when its key exists.
	Upd [][]dirtyset.Change
	// Group is the record's transaction group; nil for a write alone.
	Group *Group
}

// Value tags.
const (
	valNil byte = iota
	valInt
	valFloat
	valFalse
	valTrue
	valString
	valBytes
	valTime
	valSlice
)

// sliceKinds are the element kinds a journaled slice may have, with their
// unnamed slice types for decoding.
var sliceTypes = map[reflect.Kind]reflect.Type{
	reflect.Bool:    reflect.TypeFor[[]bool](),
	reflect.Int:     reflect.TypeFor[[]int](),
	reflect.Int8:    reflect.TypeFor[[]int8](),
	reflect.Int16:   reflect.TypeFor[[]int16](),
	reflect.Int32:   reflect.TypeFor[[]int32](),
	reflect.Int64:   reflect.TypeFor[[]int64](),
	reflect.Uint:    reflect.TypeFor[[]uint](),
	reflect.Uint16:  reflect.TypeFor[[]uint16](),
	reflect.Uint32:  reflect.TypeFor[[]uint32](),
	reflect.Uint64:  reflect.TypeFor[[]uint64](),
	reflect.Float32: reflect.TypeFor[[]float32](),
	reflect.Float64: reflect.TypeFor[[]float64](),
	reflect.String:  reflect.TypeFor[[]string](),
}

// errUnjournalable is returned for a value the codec cannot hold; the
// statement then goes to the database instead of the buffer.
var errUnjournalable = errors.New("writeback: value cannot be journaled")

// EncodeUpdate encodes a buffered UPDATE onto dst.
func EncodeUpdate(dst []byte, table string, names *dirtyset.Names, key []any, changes []dirtyset.Change) ([]byte, error) {
	dst = encodeHead(dst, table, dialect.Update, names)
	var err error
	if dst, err = encodeValues(dst, key); err != nil {
		return nil, err
	}
	dst = binary.AppendUvarint(dst, uint64(len(changes)))
	for _, ch := range changes {
		dst = encodeIdent(dst, ch.Col)
		dst = append(dst, changeKind(ch))
		if dst, err = encodeValue(dst, ch.Val); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// EncodeInsert encodes a buffered INSERT (all its rows) onto dst.
func EncodeInsert(dst []byte, table string, names *dirtyset.Names, cols []sqlparse.Ident, keys, rows [][]any) ([]byte, error) {
	return encodeRows(dst, table, dialect.Insert, names, cols, keys, rows, nil)
}

// EncodeUpsert encodes a buffered upsert (all its rows) onto dst: per row
// its key, its inserted values and its resolved update.
func EncodeUpsert(dst []byte, table string, names *dirtyset.Names, cols []sqlparse.Ident, keys, rows [][]any, upd [][]dirtyset.Change) ([]byte, error) {
	return encodeRows(dst, table, dialect.Upsert, names, cols, keys, rows, upd)
}

// encodeRows encodes the rows of an INSERT, or of an upsert with the
// update of each row (upd, nil for an INSERT).
func encodeRows(dst []byte, table string, op dialect.Op, names *dirtyset.Names, cols []sqlparse.Ident, keys, rows [][]any, upd [][]dirtyset.Change) ([]byte, error) {
	dst = encodeHead(dst, table, op, names)
	dst = binary.AppendUvarint(dst, uint64(len(cols)))
	for _, c := range cols {
		dst = encodeIdent(dst, c)
	}
	dst = binary.AppendUvarint(dst, uint64(len(rows)))
	var err error
	for i := range rows {
		if dst, err = encodeValues(dst, keys[i]); err != nil {
			return nil, err
		}
		if dst, err = encodeValues(dst, rows[i]); err != nil {
			return nil, err
		}
		if upd != nil {
			if dst, err = encodeChanges(dst, upd[i]); err != nil {
				return nil, err
			}
		}
	}
	return dst, nil
}

// encodeChanges encodes an UPDATE's resolved changes.
func encodeChanges(dst []byte, changes []dirtyset.Change) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(changes)))
	var err error
	for _, ch := range changes {
		dst = encodeIdent(dst, ch.Col)
		dst = encodeBool(dst, ch.Delta)
		if dst, err = encodeValue(dst, ch.Val); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// changes decodes what encodeChanges wrote.
func (d *decoder) changes() []dirtyset.Change {
	n := d.count()
	var out []dirtyset.Change
	for i := 0; i < n && d.err == nil; i++ {
		col := d.ident()
		delta := d.bool1()
		out = append(out, dirtyset.Change{Col: col, Delta: delta, Val: d.value()})
	}
	return out
}

func encodeHead(dst []byte, table string, op dialect.Op, n *dirtyset.Names) []byte {
	dst = append(dst, journalRecordVersion, byte(op))
	dst = encodeString(dst, table)
	if n.Schema != nil {
		dst = append(dst, 1)
		dst = encodeIdent(dst, *n.Schema)
	} else {
		dst = append(dst, 0)
	}
	dst = encodeIdent(dst, n.Table)
	dst = binary.AppendUvarint(dst, uint64(len(n.KeyCols)))
	for _, k := range n.KeyCols {
		dst = encodeIdent(dst, k)
	}
	return append(dst, byte(n.Style))
}

func encodeString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func encodeBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func encodeIdent(dst []byte, id sqlparse.Ident) []byte {
	dst = encodeString(dst, id.Norm)
	var form byte
	if id.Quoted {
		form |= identQuoted
	}
	if id.Raw != id.Norm {
		form |= identRaw
	}
	dst = append(dst, form)
	if form&identRaw != 0 {
		dst = encodeString(dst, id.Raw)
	}
	return dst
}

func encodeValues(dst []byte, vals []any) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(vals)))
	var err error
	for _, v := range vals {
		if dst, err = encodeValue(dst, v); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// encodeValue encodes one value as copyValue produces it.
func encodeValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, valNil), nil
	case int64:
		return binary.AppendVarint(append(dst, valInt), x), nil
	case float64:
		return binary.LittleEndian.AppendUint64(append(dst, valFloat), math.Float64bits(x)), nil
	case bool:
		if x {
			return append(dst, valTrue), nil
		}
		return append(dst, valFalse), nil
	case string:
		return encodeString(append(dst, valString), x), nil
	case []byte:
		dst = binary.AppendUvarint(append(dst, valBytes), uint64(len(x)))
		return append(dst, x...), nil
	case time.Time:
		b, err := x.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUnjournalable, err)
		}
		return encodeString(append(dst, valTime), string(b)), nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice || sliceTypes[rv.Type().Elem().Kind()] == nil {
		return nil, fmt.Errorf("%w: %T", errUnjournalable, v)
	}
	kind := rv.Type().Elem().Kind()
	dst = append(dst, valSlice, byte(kind))
	if rv.IsNil() {
		return append(dst, 0), nil
	}
	dst = append(dst, 1)
	n := rv.Len()
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := 0; i < n; i++ {
		e := rv.Index(i)
		switch kind {
		case reflect.Bool:
			dst = encodeBool(dst, e.Bool())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			dst = binary.AppendVarint(dst, e.Int())
		case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			dst = binary.AppendUvarint(dst, e.Uint())
		case reflect.Float32, reflect.Float64:
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.Float()))
		case reflect.String:
			dst = encodeString(dst, e.String())
		}
	}
	return dst, nil
}

// errBadRecord is wrapped by every decoding error: the record's checksum was
// right (the journal checked it) but its content is not a record this
// version wrote.
var errBadRecord = errors.New("writeback: journal record does not decode")

// decoder reads a record; the first error sticks and every later read
// returns zero values, so decoding code reads straight through and checks once.
type decoder struct {
	b       []byte
	err     error
	version byte // the record's format version (journalRecordVersion or before)
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errBadRecord, what)
	}
}

func (d *decoder) byte1() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length and checks it against what is left: every counted
// item takes at least one byte, so no count can make the decoder allocate
// more than the record's size.
func (d *decoder) count() int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.fail("count beyond the record")
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.count()
	if d.err != nil {
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) str() string { return string(d.bytes()) }

// changeKind is the kind byte of a change (see the format above).
func changeKind(ch dirtyset.Change) byte {
	switch {
	case ch.Fn == dialect.FnGreatest:
		return 3
	case ch.Fn == dialect.FnLeast:
		return 4
	case ch.Delta && ch.Fn == dialect.FnNullZero:
		return 2
	case ch.Delta:
		return 1
	}
	return 0
}

// change makes the change of a kind byte, without its column and value.
func (d *decoder) change(kind byte) dirtyset.Change {
	switch kind {
	case 0:
		return dirtyset.Change{}
	case 1:
		return dirtyset.Change{Delta: true}
	case 2:
		return dirtyset.Change{Delta: true, Fn: dialect.FnNullZero}
	case 3:
		return dirtyset.Change{Fn: dialect.FnGreatest}
	case 4:
		return dirtyset.Change{Fn: dialect.FnLeast}
	}
	d.fail("bad change kind")
	return dirtyset.Change{}
}

func (d *decoder) bool1() bool {
	switch d.byte1() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad bool")
	return false
}

func (d *decoder) u64() uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) ident() sqlparse.Ident {
	if d.version == 1 {
		return sqlparse.Ident{Norm: d.str(), Raw: d.str(), Quoted: d.bool1()}
	}
	id := sqlparse.Ident{Norm: d.str()}
	form := d.byte1()
	if form&^(identQuoted|identRaw) != 0 {
		d.fail("bad identifier form")
	}
	id.Quoted, id.Raw = form&identQuoted != 0, id.Norm
	if form&identRaw != 0 {
		id.Raw = d.str()
	}
	return id
}

func (d *decoder) values() []any {
	n := d.count()
	if d.err != nil {
		return nil
	}
	vals := make([]any, n)
	for i := range vals {
		vals[i] = d.value()
	}
	return vals
}

func (d *decoder) value() any {
	switch tag := d.byte1(); tag {
	case valNil:
		return nil
	case valInt:
		return d.varint()
	case valFloat:
		return math.Float64frombits(d.u64())
	case valFalse:
		return false
	case valTrue:
		return true
	case valString:
		return d.str()
	case valBytes:
		b := d.bytes()
		if d.err != nil {
			return nil
		}
		return append([]byte{}, b...) // a non-nil []byte, even when empty
	case valTime:
		b := d.bytes()
		if d.err != nil {
			return nil
		}
		var t time.Time
		if err := t.UnmarshalBinary(b); err != nil {
			d.fail("bad time")
			return nil
		}
		return t
	case valSlice:
		return d.slice()
	default:
		if d.err == nil {
			d.fail(fmt.Sprintf("unknown value tag %d", tag))
		}
		return nil
	}
}

func (d *decoder) slice() any {
	kind := reflect.Kind(d.byte1())
	typ := sliceTypes[kind]
	if typ == nil {
		d.fail("bad slice kind")
		return nil
	}
	if !d.bool1() {
		if d.err != nil {
			return nil
		}
		return reflect.Zero(typ).Interface()
	}
	n := d.count()
	if d.err != nil {
		return nil
	}
	s := reflect.MakeSlice(typ, n, n)
	for i := 0; i < n; i++ {
		e := s.Index(i)
		switch kind {
		case reflect.Bool:
			e.SetBool(d.bool1())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			v := d.varint()
			if e.OverflowInt(v) {
				d.fail("slice element out of range")
			}
			e.SetInt(v)
		case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			v := d.uvarint()
			if e.OverflowUint(v) {
				d.fail("slice element out of range")
			}
			e.SetUint(v)
		case reflect.Float32, reflect.Float64:
			e.SetFloat(math.Float64frombits(d.u64()))
		case reflect.String:
			e.SetString(d.str())
		}
		if d.err != nil {
			return nil
		}
	}
	return s.Interface()
}

// DecodeRecord decodes a journal record. It never panics: anything that is
// not a record this version wrote is an error wrapping errBadRecord.
func DecodeRecord(b []byte) (*Record, error) {
	d := &decoder{b: b}
	var g *Group
	if len(b) > 0 && b[0] == groupTag {
		d.byte1()
		id, index, count := d.u64(), d.uvarint(), d.uvarint()
		g = &Group{ID: id, Index: int(index), Count: int(count)}
		if d.err == nil && (count < 2 || count > maxGroup || index >= count) {
			d.fail("bad group")
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if d.version = d.byte1(); d.err == nil && (d.version < 1 || d.version > journalRecordVersion) {
		return nil, fmt.Errorf("%w: version %d, this driver reads 1 to %d", errBadRecord, d.version, journalRecordVersion)
	}
	r := &Record{Op: dialect.Op(d.byte1()), Group: g}
	r.Table = d.str()
	if d.bool1() {
		s := d.ident()
		r.Names.Schema = &s
	}
	r.Names.Table = d.ident()
	nk := d.count()
	for i := 0; i < nk && d.err == nil; i++ {
		r.Names.KeyCols = append(r.Names.KeyCols, d.ident())
	}
	r.Names.Style = sqlparse.ParamStyle(d.byte1())
	if d.err == nil && r.Names.Style > sqlparse.ParamNamed {
		d.fail("bad placeholder style")
	}
	switch r.Op {
	case dialect.Update:
		r.Key = d.values()
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			col := d.ident()
			ch := d.change(d.byte1())
			ch.Col, ch.Val = col, d.value()
			r.Changes = append(r.Changes, ch)
		}
		if d.err == nil && len(r.Key) != nk {
			d.fail("key values do not match the key columns")
		}
	case dialect.Insert:
		nc := d.count()
		for i := 0; i < nc && d.err == nil; i++ {
			r.Cols = append(r.Cols, d.ident())
		}
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			k, row := d.values(), d.values()
			if d.err == nil && (len(k) != nk || len(row) != nc) {
				d.fail("row does not match its columns")
			}
			r.Keys = append(r.Keys, k)
			r.Rows = append(r.Rows, row)
		}
	case dialect.Upsert:
		nc := d.count()
		for i := 0; i < nc && d.err == nil; i++ {
			r.Cols = append(r.Cols, d.ident())
		}
		n := d.count()
		for i := 0; i < n && d.err == nil; i++ {
			k, row, ch := d.values(), d.values(), d.changes()
			if d.err == nil && (len(k) != nk || len(row) != nc) {
				d.fail("row does not match its columns")
			}
			r.Keys = append(r.Keys, k)
			r.Rows = append(r.Rows, row)
			r.Upd = append(r.Upd, ch)
		}
	default:
		d.fail("bad operation")
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}
