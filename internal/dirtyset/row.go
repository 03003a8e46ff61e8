package dirtyset

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
	"github.com/writeback-go/writeback/internal/value"
)

// Row is the coalesced, not yet flushed state of one row: either a pending
// INSERT or a pending UPDATE. Cols are kept sorted by their normalized name
// so rows of the same shape group together whatever order the application
// wrote its columns in. A row handed out by Take belongs to the flush that
// took it until the batch is released; its exported fields are then read-only.
type Row struct {
	// key is the row's key, stored once (ID and Key derive from it): a
	// single key column's value itself (an int64 or a string, in the box
	// the caller's value came in), a *compositeKey for several columns.
	// Its shard is t.shardFor(r.ID()) in the table that holds it.
	key any
	// lruPrev and lruNext link the row into its shard's LRU (lru.go).
	lruPrev, lruNext *Row
	// cols is the row's columns and which are deltas, shared with the
	// other rows of the same (colsets.go): read through Cols and Delta,
	// replaced whole, never written to.
	cols *colSet
	Vals []any // the values of Cols(), in their order
	// rare holds what few rows have (Fn, an upsert's update part): nil for
	// the others, which keeps a row in a smaller allocation size.
	rare *rareParts
	// since is when the oldest write coalesced into this row was
	// acknowledged (see Since), in 8 bytes rather than a time.Time's 24.
	since  monoTime
	Writes int
	// Seq orders the rows of one key (a retry row and a newer one) so a
	// flush writes them in the order they were made.
	Seq uint64
	// MaxLSN is the last journal record coalesced into the row (0 without
	// a journal); Recs counts them. (No field keeps the first: nothing
	// read it, and 8 bytes less puts the row in the 128-byte size class.)
	MaxLSN uint64
	Recs   int64
	// size is the row's approximate memory, counted in its table's bytes
	// while the row is not committed.
	size int64
	Op   dialect.Op
}

// colSet is a row's columns, sorted by normalized name, and for an UPDATE
// which of them are deltas.
type colSet struct {
	cols  []sqlparse.Ident
	delta []bool // UPDATE only
}

// Cols are the row's columns, sorted by their normalized names. Rows share
// them: the slice is read-only.
func (r *Row) Cols() []sqlparse.Ident {
	if r.cols == nil {
		return nil
	}
	return r.cols.cols
}

// Delta (UPDATE only) says which columns are deltas: Cols()[i] =
// Cols()[i] + Vals[i]. Rows share it: the slice is read-only.
func (r *Row) Delta() []bool {
	if r.cols == nil {
		return nil
	}
	return r.cols.delta
}

// rareParts are the parts of a row that most rows do not have.
type rareParts struct {
	fn     []dialect.ColFn
	uCols  []sqlparse.Ident
	uVals  []any
	uDelta []bool
}

// rareParts returns the row's rare parts, made on first use.
func (r *Row) rareParts() *rareParts {
	if r.rare == nil {
		r.rare = &rareParts{}
	}
	return r.rare
}

// Fn (UPDATE only; nil while every column's is FnNone) is the function
// Cols[i] is written with: see dialect.ColFn.
func (r *Row) Fn() []dialect.ColFn {
	if r.rare == nil {
		return nil
	}
	return r.rare.fn
}

// UCols, UVals and UDelta are an UPSERT row's update part (nil for other
// rows): Cols and Vals are the row to insert when its key is absent, the
// update part what to apply when it is present (UCols[i] = UCols[i] +
// UVals[i] where UDelta[i]).
func (r *Row) UCols() []sqlparse.Ident {
	if r.rare == nil {
		return nil
	}
	return r.rare.uCols
}

// UVals: see UCols.
func (r *Row) UVals() []any {
	if r.rare == nil {
		return nil
	}
	return r.rare.uVals
}

// UDelta: see UCols.
func (r *Row) UDelta() []bool {
	if r.rare == nil {
		return nil
	}
	return r.rare.uDelta
}

// setUpdatePart stores an UPSERT row's update part.
func (r *Row) setUpdatePart(cols []sqlparse.Ident, vals []any, delta []bool) {
	if r.rare == nil && cols == nil && vals == nil && delta == nil {
		return
	}
	p := r.rareParts()
	p.uCols, p.uVals, p.uDelta = cols, vals, delta
}

// Since is when the oldest write coalesced into this row was acknowledged.
func (r *Row) Since() time.Time { return r.since.Time() }

// monoTime is an instant as nanoseconds since monoBase, a time taken with
// its monotonic clock reading: a row's age is then measured on the
// monotonic clock, as with the time.Time it replaces.
type monoTime int64

var monoBase = time.Now()

// monoOf is t as a monoTime (t read from time.Now: exact to the nanosecond).
func monoOf(t time.Time) monoTime { return monoTime(t.Sub(monoBase)) }

// Time is m as a time.Time with a monotonic clock reading.
func (m monoTime) Time() time.Time { return monoBase.Add(time.Duration(m)) }

// compositeKey is the key of a row keyed by several columns: its identity
// (MakeID) and its values.
type compositeKey struct {
	id   string
	vals []any
}

// rowKey is Row.key for a key of values vals (checked: KeysValid) whose
// identity is id. It keeps no reference to vals, which may be on the
// caller's stack: a composite key copies them; a single value is kept
// itself (int64 and string values are immutable).
func rowKey(id ID, vals []any) any {
	if len(vals) == 1 {
		return vals[0]
	}
	return ownedRowKey(id, slices.Clone(vals))
}

// ownedRowKey is rowKey for vals the caller hands over (an INSERT's keys):
// a composite key keeps them.
func ownedRowKey(id ID, vals []any) any {
	if len(vals) == 1 {
		return vals[0]
	}
	return &compositeKey{id: id.s, vals: vals}
}

// ID is the row's identity in its table.
func (r *Row) ID() ID {
	switch k := r.key.(type) {
	case int64:
		return ID{i: k}
	case string:
		return ID{s: k}
	case *compositeKey:
		return ID{s: k.id}
	}
	return ID{}
}

// Key is the row's key values in the rule's key order. For a single key
// column it makes a slice: the flush appends the key with AppendValues.
func (r *Row) Key() []any {
	switch k := r.key.(type) {
	case nil:
		return nil
	case *compositeKey:
		return k.vals
	}
	return []any{r.key}
}

// appendKey appends the row's key values to dst.
func (r *Row) appendKey(dst []any) []any {
	switch k := r.key.(type) {
	case nil:
		return dst
	case *compositeKey:
		return append(dst, k.vals...)
	}
	return append(dst, r.key)
}

// keyLen is len(r.Key()).
func (r *Row) keyLen() int {
	switch k := r.key.(type) {
	case nil:
		return 0
	case *compositeKey:
		return len(k.vals)
	}
	return 1
}

// KeyText is the row's key as the journal's checkpoints store it:
// KeyText(r.Key()).
func (r *Row) KeyText() string {
	if i, ok := r.key.(int64); ok {
		return strconv.FormatInt(i, 10)
	}
	return strconv.Quote(r.ID().s)
}

// Values is the row's statement arguments: for an UPDATE its values then its
// key, for an INSERT its values, for an UPSERT its inserted values, its
// update values, then its key.
func (r *Row) Values() []any {
	if r.Op == dialect.Insert {
		return r.Vals
	}
	return r.AppendValues(make([]any, 0, r.ValuesLen()))
}

// AppendValues appends Values to dst; it allocates only when dst has no
// room (a flush reuses one array for many rows).
func (r *Row) AppendValues(dst []any) []any {
	if r.Op == dialect.Insert {
		return append(dst, r.Vals...)
	}
	dst = append(dst, r.Vals...)
	if r.Op == dialect.Upsert {
		dst = append(dst, r.UVals()...)
	}
	return r.appendKey(dst)
}

// ValuesLen is len(r.Values()).
func (r *Row) ValuesLen() int {
	switch r.Op {
	case dialect.Insert:
		return len(r.Vals)
	case dialect.Upsert:
		return len(r.Vals) + len(r.UVals()) + r.keyLen()
	}
	return len(r.Vals) + r.keyLen()
}

// Compare orders rows by key, and rows of one key by age: flushes are
// deterministic and, with several processes flushing the same hot rows,
// take row locks in one order, so they do not deadlock.
func Compare(a, b *Row) int {
	if c := compareID(a.ID(), b.ID()); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

// SortRows sorts rows as Compare orders them. The keys are copied into one
// array first, so that the comparisons read it in order rather than each
// row through its pointer (rows lie scattered in memory): a flush of 100k
// rows sorts them several times faster. Integer keys are radix-sorted.
func SortRows(rows []*Row) {
	ints := true
	for _, r := range rows {
		if _, isInt := r.key.(int64); !isInt {
			ints = false
			break
		}
	}
	if ints {
		sortIntRows(rows, nil)
		return
	}
	sortRowsGeneric(rows)
}

// sortRowsGeneric is SortRows for keys of any kind.
func sortRowsGeneric(rows []*Row) {
	type keyed struct {
		i   int64
		s   string
		seq uint64
		r   *Row
	}
	ks := make([]keyed, len(rows))
	for j, r := range rows {
		id := r.ID()
		ks[j] = keyed{id.i, id.s, r.Seq, r}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.i, b.i); c != 0 {
			return c
		}
		if c := strings.Compare(a.s, b.s); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	for j := range ks {
		rows[j] = ks[j].r
	}
}

// intKeyed is a row of an integer key as sortIntRows sorts it: its key
// with the sign bit flipped (so that unsigned order is signed order) and
// its index in the input. It holds no pointer: moving it costs no write
// barrier, and the scratch arrays need no scanning by the GC.
type intKeyed struct {
	k uint64
	i uint32
}

// intSortScratch are sortIntRows' buffers, kept for the next flush.
type intSortScratch struct {
	a, b []intKeyed
	rows []*Row
}

var intSortPool = sync.Pool{New: func() any { return new(intSortScratch) }}

// sortIntRows sorts rows of integer keys by key, then Seq: a stable LSD
// radix sort on the key bytes that differ, then the rows of one key (at
// most a few: a retry row and a newer one) by Seq. keys, when not nil, are
// the rows' keys (rows[i].ID().i): then a row is read only when its key is
// another row's too.
func sortIntRows(rows []*Row, keys []int64) {
	n := len(rows)
	if n < 2 || uint64(n) > math.MaxUint32 {
		if n >= 2 {
			slices.SortFunc(rows, Compare)
		}
		return
	}
	sc := intSortPool.Get().(*intSortScratch)
	defer intSortPool.Put(sc)
	if cap(sc.a) < n {
		sc.a, sc.b = make([]intKeyed, n), make([]intKeyed, n)
	}
	a, b := sc.a[:n], sc.b[:n]
	var counts [8][256]int
	sorted := true
	for j := range rows {
		var k uint64
		if keys != nil {
			k = uint64(keys[j]) ^ 1<<63
		} else {
			k = uint64(rows[j].ID().i) ^ 1<<63
		}
		a[j] = intKeyed{k, uint32(j)}
		for d := 0; d < 8; d++ {
			counts[d][byte(k>>(8*d))]++
		}
		if j > 0 && (a[j-1].k > k || a[j-1].k == k && rows[j-1].Seq > rows[j].Seq) {
			sorted = false
		}
	}
	if sorted {
		return
	}
	for d := 0; d < 8; d++ {
		c := &counts[d]
		if c[byte(a[0].k>>(8*d))] == n {
			continue // every key has this byte: the pass would change nothing
		}
		off := 0
		for v := range c {
			off, c[v] = off+c[v], off
		}
		shift := 8 * d
		for _, x := range a {
			v := byte(x.k >> shift)
			b[c[v]] = x
			c[v]++
		}
		a, b = b, a
	}
	// Rows of one key by Seq (insertion sort: the runs are short).
	for j := 1; j < n; j++ {
		for m := j; m > 0 && a[m-1].k == a[m].k && rows[a[m-1].i].Seq > rows[a[m].i].Seq; m-- {
			a[m-1], a[m] = a[m], a[m-1]
		}
	}
	sc.rows = append(sc.rows[:0], rows...)
	for j, x := range a {
		rows[j] = sc.rows[x.i]
	}
	clear(sc.rows) // the pool must not keep rows alive
}

// SameShape reports whether two rows are written by the same statement form.
func SameShape(a, b *Row) bool {
	aCols, bCols := a.Cols(), b.Cols()
	if a.Op != b.Op || len(aCols) != len(bCols) {
		return false
	}
	aDelta, bDelta := a.Delta(), b.Delta()
	for i := range aCols {
		if aCols[i].Norm != bCols[i].Norm || a.Op == dialect.Update && (aDelta[i] != bDelta[i] || a.FnAt(i) != b.FnAt(i)) {
			return false
		}
	}
	aCols, bCols = a.UCols(), b.UCols()
	if len(aCols) != len(bCols) {
		return false
	}
	aDelta, bDelta = a.UDelta(), b.UDelta()
	for i := range aCols {
		if aCols[i].Norm != bCols[i].Norm || aDelta[i] != bDelta[i] {
			return false
		}
	}
	return true
}

// FnAt is the function column i is written with.
func (r *Row) FnAt(i int) dialect.ColFn {
	if fn := r.Fn(); i < len(fn) {
		return fn[i]
	}
	return dialect.FnNone
}

// noteLSN records that journal record lsn was coalesced into the row.
func (r *Row) noteLSN(lsn uint64) {
	if lsn == 0 {
		return
	}
	r.MaxLSN = max(r.MaxLSN, lsn)
	r.Recs++
}

// colIndex returns the position of the column named norm, or -1.
func (r *Row) colIndex(norm string) int {
	cols := r.Cols()
	for i := range cols {
		if cols[i].Norm == norm {
			return i
		}
	}
	return -1
}

// initCols sets a new row's columns: n of them, column i being col(i)
// (its name, its value and, for an UPDATE, whether it is a delta and its
// function), inserted one by one in sorted order (insertCol). The names
// and flags are collected in arrays on the stack (for up to 8 columns):
// the row keeps a shared copy of them (sharedCols).
func (t *Table) initCols(r *Row, n int, col func(i int) (sqlparse.Ident, any, bool, dialect.ColFn)) {
	var colBuf [8]sqlparse.Ident
	var deltaBuf [8]bool
	own := colSet{cols: colBuf[:0]}
	if r.Op == dialect.Update {
		own.delta = deltaBuf[:0]
	}
	r.Vals = make([]any, 0, n)
	for i := 0; i < n; i++ {
		c, v, delta, fn := col(i)
		own = r.insertCol(own, c, v, delta, fn)
	}
	r.cols = t.sharedCols(own.cols, own.delta)
}

// insertCol adds a column keeping the columns sorted: its value to
// r.Vals, its name and flag to own, a column set the caller owns (not
// shared), which it returns. (By value: stored through a pointer, the
// arrays initCols keeps on its stack would escape to the heap.)
func (r *Row) insertCol(own colSet, c sqlparse.Ident, v any, delta bool, fn dialect.ColFn) colSet {
	i := sort.Search(len(own.cols), func(i int) bool { return own.cols[i].Norm >= c.Norm })
	own.cols = slices.Insert(own.cols, i, c)
	r.Vals = slices.Insert(r.Vals, i, v)
	if r.Op == dialect.Update {
		own.delta = slices.Insert(own.delta, i, delta)
		if r.Fn() != nil || fn != dialect.FnNone {
			p := r.rareParts()
			if p.fn == nil {
				p.fn = make([]dialect.ColFn, len(own.cols)-1, len(own.cols))
			}
			p.fn = slices.Insert(p.fn, i, fn)
		}
	}
	return own
}

// ownCols returns the row's column set as its own, to change: a copy the
// first time (own nil), which the caller shares again (sharedCols) when done.
func (r *Row) ownCols(own *colSet) *colSet {
	if own == nil {
		own = &colSet{cols: slices.Clone(r.Cols()), delta: slices.Clone(r.Delta())}
		r.cols = own
	}
	return own
}

// Names is how the application writes a back table's names, so flush SQL
// reads like the application's own (quoting, schema, placeholders).
type Names struct {
	Schema  *sqlparse.Ident
	Table   sqlparse.Ident
	KeyCols []sqlparse.Ident // in the rule's key order
	Style   sqlparse.ParamStyle
}

// Change is one resolved SET clause of an UPDATE, its value already copied.
type Change struct {
	Col   sqlparse.Ident
	Delta bool // Col = Col + Val
	// Fn is the function of the column's current value: FnNullZero with
	// Delta, FnGreatest or FnLeast without.
	Fn  dialect.ColFn
	Val any
}

// planUpdate checks that an UPDATE's changes can be coalesced into the row
// and computes the columns' next values into next (len(changes) long). It
// does not touch the row: on false the caller flushes it and runs the
// statement through instead. Checking first lets the journal record be
// appended only for a write that will be coalesced.
//
// A column's pending write is an assignment (of an INSERT, too), a delta,
// a COALESCE delta or a GREATEST or LEAST; a change merges into it as
// follows, and any other pair is refused: an assignment replaces anything;
// a delta adds to an assignment (NULL stays NULL), a delta or a COALESCE
// delta; a COALESCE delta adds to an assignment (NULL counting as 0) or a
// COALESCE delta; GREATEST and LEAST pick from a non-NULL assignment or the
// same function's value, keeping the older on a tie as the databases do.
func (r *Row) planUpdate(changes []Change, next []any) bool {
	for i, ch := range changes {
		j := r.colIndex(ch.Col.Norm)
		switch {
		case !ch.Delta && ch.Fn == dialect.FnNone:
			next[i] = ch.Val
		case j < 0:
			if r.Op == dialect.Insert {
				return false // the inserted row's default for this column is unknown here
			}
			next[i] = ch.Val
		default:
			v, ok := r.merge(j, ch)
			if !ok {
				return false
			}
			next[i] = v
		}
	}
	return true
}

// merge is the value of column j after change ch (a delta or a function),
// or false when the two do not merge (see planUpdate).
func (r *Row) merge(j int, ch Change) (any, bool) {
	assigned := r.Op == dialect.Insert || !r.Delta()[j] && r.FnAt(j) == dialect.FnNone
	cur := r.Vals[j]
	switch {
	case ch.Fn == dialect.FnNone: // a delta
		if fn := r.FnAt(j); fn == dialect.FnGreatest || fn == dialect.FnLeast {
			return nil, false
		}
		return value.Add(cur, ch.Val)
	case ch.Fn == dialect.FnNullZero:
		switch {
		case assigned && cur == nil:
			return value.AddToZero(ch.Val)
		case assigned || r.FnAt(j) == dialect.FnNullZero:
			return value.Add(cur, ch.Val)
		}
		return nil, false // after a plain delta: NULL + d is not COALESCE(NULL, 0) + d
	}
	if !(assigned && cur != nil || r.FnAt(j) == ch.Fn) {
		return nil, false
	}
	c, ok := value.Compare(ch.Val, cur)
	if !ok {
		return nil, false
	}
	if ch.Fn == dialect.FnGreatest && c > 0 || ch.Fn == dialect.FnLeast && c < 0 {
		return ch.Val, true
	}
	return cur, true
}

// commitUpdate coalesces changes into the row r of t with the values
// planUpdate computed. It returns by how much the row's size grew.
func (t *Table) commitUpdate(r *Row, changes []Change, next []any) (grew int64) {
	var own *colSet // r.cols copied, once a change adds a column or clears a delta
	for i, ch := range changes {
		j := r.colIndex(ch.Col.Norm)
		if j < 0 {
			own = r.ownCols(own)
			*own = r.insertCol(*own, ch.Col, next[i], ch.Delta && r.Op == dialect.Update, ch.Fn)
			grew += colOverhead + value.Size(next[i])
			continue
		}
		grew += value.Size(next[i]) - value.Size(r.Vals[j])
		r.Vals[j] = next[i]
		if r.Op == dialect.Update && !ch.Delta && ch.Fn == dialect.FnNone {
			// An assignment after anything is an assignment; anything
			// else merged (planUpdate) leaves the column's kind as it was:
			// an assignment, a delta, a COALESCE delta, GREATEST or LEAST.
			if r.Delta()[j] {
				own = r.ownCols(own)
				own.delta[j] = false
			}
			if fn := r.Fn(); j < len(fn) {
				fn[j] = dialect.FnNone // the row's own (rareParts)
			}
		}
	}
	if own != nil {
		r.cols = t.sharedCols(own.cols, own.delta)
	}
	r.Writes++
	r.size += grew
	return grew
}

// Approximate sizes of a dirty row, fitted to the heap rows hold
// (BenchmarkRowMemory, TestRowSizeEstimate: within 25% for a counter row
// and a five-column row). rowOverhead is the Row (128 bytes, a size
// class) and its share of the shard's LRU map (a
// 16-byte slot, about 24 with the map's free slots), less the interface
// slot value.Size counts for the key, which a row does not have (it keeps
// the key's value itself). colOverhead is a column's share beyond
// value.Size: the box of its value (8 bytes for a number, 16 for a
// string's header); its name and delta flag are shared (colsets.go).
const (
	rowOverhead = 128 + 24 - 16
	colOverhead = 16
)

// rowSize estimates a new row's memory from its key, columns and values.
func rowSize(r *Row) int64 {
	n := int64(rowOverhead)
	switch k := r.key.(type) {
	case *compositeKey:
		n += int64(unsafe.Sizeof(*k)) + int64(len(k.id))
		for _, v := range k.vals {
			n += value.Size(v)
		}
	default:
		n += value.Size(k) // a string key's text is counted once: the row keeps it once
	}
	for _, v := range r.Vals {
		n += colOverhead + value.Size(v)
	}
	for _, v := range r.UVals() {
		n += colOverhead + value.Size(v)
	}
	if r.rare != nil {
		n += int64(unsafe.Sizeof(rareParts{}))
	}
	return n
}
