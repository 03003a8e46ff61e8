package writeback

import (
	"context"
	"encoding/binary"
	"errors"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// rowKey identifies a dirty row within its table. A single int64 key uses i;
// a single string key uses s; a composite key is encoded into s.
type rowKey struct {
	i int64
	s string
}

// dirtyRow is the coalesced, not yet flushed state of one row: either a
// pending INSERT or a pending UPDATE. cols are kept sorted by their normalized
// name so rows of the same shape group together whatever order the
// application wrote its columns in.
type dirtyRow struct {
	key   []any // key values in the rule's key order
	op    flushOp
	cols  []ident
	vals  []any
	delta []bool // UPDATE only: cols[i] = cols[i] + vals[i]
	// since is when the oldest write coalesced into this row was acknowledged.
	since  time.Time
	writes int
}

// colIndex returns the position of the column named norm, or -1.
func (r *dirtyRow) colIndex(norm string) int {
	for i := range r.cols {
		if r.cols[i].norm == norm {
			return i
		}
	}
	return -1
}

// insertCol adds a column keeping cols sorted; it returns its index.
func (r *dirtyRow) insertCol(c ident, v any, delta bool) {
	i := sort.Search(len(r.cols), func(i int) bool { return r.cols[i].norm >= c.norm })
	r.cols = append(r.cols, ident{})
	copy(r.cols[i+1:], r.cols[i:])
	r.cols[i] = c
	r.vals = append(r.vals, nil)
	copy(r.vals[i+1:], r.vals[i:])
	r.vals[i] = v
	if r.op == flushUpdate {
		r.delta = append(r.delta, false)
		copy(r.delta[i+1:], r.delta[i:])
		r.delta[i] = delta
	}
}

// tableNames is how the application writes a back table's names, so flush
// SQL reads like the application's own (quoting, schema, placeholders).
type tableNames struct {
	schema  *ident
	table   ident
	keyCols []ident // in the rule's key order
	style   paramStyle
}

// change is one resolved SET clause of an UPDATE: values already copied.
type change struct {
	col   ident
	delta bool // col = col + val
	val   any
}

// applyUpdate coalesces an UPDATE's changes into the row. It checks every
// change before it touches the row, so on false the row is unchanged and the
// caller flushes it and runs the statement through instead.
func (r *dirtyRow) applyUpdate(changes []change) bool {
	next := make([]any, len(changes))
	for i, ch := range changes {
		j := r.colIndex(ch.col.norm)
		switch {
		case !ch.delta:
			next[i] = ch.val
		case j < 0:
			if r.op == flushInsert {
				return false // the inserted row's default for this column is unknown here
			}
			next[i] = ch.val
		default:
			sum, ok := addValues(r.vals[j], ch.val)
			if !ok {
				return false
			}
			next[i] = sum
		}
	}
	for i, ch := range changes {
		j := r.colIndex(ch.col.norm)
		if j < 0 {
			r.insertCol(ch.col, next[i], ch.delta && r.op == flushUpdate)
			continue
		}
		r.vals[j] = next[i]
		if r.op == flushUpdate {
			// delta after delta stays a delta; anything after an assign, and
			// an assign after anything, is an assign.
			r.delta[j] = ch.delta && r.delta[j]
		}
	}
	r.writes++
	return true
}

// tableState is one back table's part of the buffer. mu guards everything
// below it; it is never held across a database call.
type tableState struct {
	rule *TableRule
	buf  *buffer

	// pending counts rows in lru, evicted, retry and inflight, so a barrier on a
	// clean table costs one atomic load.
	pending atomic.Int64

	mu       sync.Mutex
	lru      *simplelru.LRU[rowKey, *dirtyRow]
	evicted  map[rowKey]*dirtyRow // pushed out of the LRU, flushed early, never dropped
	retry    []*dirtyRow          // rows of a failed flush: written before any newer row
	inflight map[rowKey]int       // keys taken by the flusher, not yet committed (a count: retry and newer rows may share a key)
	draining bool                 // the flusher is emptying lru: eviction callbacks ignore it
	oldest   time.Time            // since of the oldest row in lru/evicted/retry; zero when none
	keyKinds []keyKind            // Go kinds of the key values, fixed by the first buffered write
	names    tableNames           // how the application writes the table's names

	// flusher-owned fields (only the flusher goroutine touches them)
	retryAt   time.Time
	failures  int
	flushCost time.Duration // duration of the last flush, to start the next one early enough

	stats tableCounters
}

// tableCounters are the per-table figures Stats reports.
type tableCounters struct {
	buffered    atomic.Int64 // writes acknowledged from memory
	coalesced   atomic.Int64 // of those, writes merged into an existing dirty row
	passed      atomic.Int64 // statements on this table that went to the database
	barriers    atomic.Int64 // statements that waited for this table's flush
	flushes     atomic.Int64 // flush transactions committed
	flushedRows atomic.Int64 // rows written by those transactions
	noMatch     atomic.Int64 // flushed UPDATEs that matched no row
	deadLetters atomic.Int64 // rows the database refused permanently
	flushErrors atomic.Int64 // failed flush attempts
	evictions   atomic.Int64 // rows flushed early because the LRU was full
}

func newTableState(b *buffer, rule *TableRule) *tableState {
	t := &tableState{rule: rule, buf: b, evicted: map[rowKey]*dirtyRow{}, inflight: map[rowKey]int{}}
	lru, err := simplelru.NewLRU[rowKey, *dirtyRow](rule.MaxDirty, t.onEvict)
	if err != nil { // MaxDirty is validated positive
		panic("writeback: " + err.Error())
	}
	t.lru = lru
	return t
}

// onEvict runs under t.mu inside lru.Add: the coldest row is set aside to be
// flushed early; it stays visible to coalescing and barriers until committed.
func (t *tableState) onEvict(k rowKey, r *dirtyRow) {
	if t.draining {
		return
	}
	t.evicted[k] = r
	t.stats.evictions.Add(1)
	t.buf.kickFlusher()
}

// lookupLocked finds the dirty row for k among the rows not yet taken.
func (t *tableState) lookupLocked(k rowKey) *dirtyRow {
	if r, ok := t.lru.Get(k); ok {
		return r
	}
	return t.evicted[k]
}

// keyBusyLocked reports whether k has a row in any state (for INSERT, which
// may only be buffered for a key with nothing pending).
func (t *tableState) keyBusyLocked(k rowKey) bool {
	if t.lru.Contains(k) {
		return true
	}
	if _, ok := t.evicted[k]; ok {
		return true
	}
	if _, ok := t.inflight[k]; ok {
		return true
	}
	for _, r := range t.retry {
		if t.makeKeyLocked(r.key) == k {
			return true
		}
	}
	return false
}

// makeKeyLocked builds the row identity from key values whose kinds were checked.
func (t *tableState) makeKeyLocked(vals []any) rowKey {
	if len(vals) == 1 {
		switch v := vals[0].(type) {
		case int64:
			return rowKey{i: v}
		case string:
			return rowKey{s: v}
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
	return rowKey{s: sb.String()}
}

// checkKeyLocked fixes the table's key kinds on first use and reports whether
// vals match them: 1 and "1" must never be two dirty rows of one table.
func (t *tableState) checkKeyLocked(vals []any) bool {
	if t.keyKinds == nil {
		kinds := make([]keyKind, len(vals))
		for i, v := range vals {
			if kinds[i] = kindOfKey(v); kinds[i] == keyNone {
				return false
			}
		}
		t.keyKinds = kinds
		return true
	}
	for i, v := range vals {
		if kindOfKey(v) != t.keyKinds[i] {
			return false
		}
	}
	return true
}

// markDirtyLocked records that a row became dirty now, and wakes the flusher
// when the table goes from clean to dirty so it can set its deadline.
func (t *tableState) markDirtyLocked(now time.Time) {
	if t.oldest.IsZero() {
		t.oldest = now
		t.buf.kickFlusher()
	}
}

// bufferOutcome says what the caller must do with a statement.
type bufferOutcome uint8

const (
	buffered    bufferOutcome = iota // acknowledged from memory
	passThrough                      // not bufferable: run it on the database
	flushFirst                       // flush this table, then run the statement on the database
)

// bufferUpdate coalesces one UPDATE of the row with key values keyVals.
func (t *tableState) bufferUpdate(keyVals []any, changes []change, names tableNames) bufferOutcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf.closed.Load() {
		return passThrough // checked under t.mu: Close's final flush takes t.mu after setting closed
	}
	if !t.checkKeyLocked(keyVals) {
		return flushFirst
	}
	k := t.makeKeyLocked(keyVals)
	if r := t.lookupLocked(k); r != nil {
		if !r.applyUpdate(changes) {
			return flushFirst
		}
		t.stats.buffered.Add(1)
		t.stats.coalesced.Add(1)
		return buffered
	}
	now := time.Now()
	r := &dirtyRow{key: keyVals, op: flushUpdate, since: now}
	for _, ch := range changes {
		if ch.delta && ch.val == nil {
			ch.delta = false // c = c + NULL is NULL
		}
		r.insertCol(ch.col, ch.val, ch.delta)
	}
	r.writes = 1
	t.addLocked(k, r, names, now)
	return buffered
}

// bufferInsert buffers the rows of one INSERT, all or none: each row's key must
// have nothing pending, and no key may repeat within the statement.
func (t *tableState) bufferInsert(keys [][]any, rows [][]any, cols []ident, names tableNames) bufferOutcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf.closed.Load() {
		return passThrough
	}
	rk := make([]rowKey, len(keys))
	for i, kv := range keys {
		if !t.checkKeyLocked(kv) {
			return flushFirst
		}
		rk[i] = t.makeKeyLocked(kv)
		if t.keyBusyLocked(rk[i]) {
			return flushFirst
		}
		for j := 0; j < i; j++ {
			if rk[j] == rk[i] {
				return passThrough // the database reports the duplicate itself
			}
		}
	}
	now := time.Now()
	for i := range rows {
		r := &dirtyRow{key: keys[i], op: flushInsert, since: now, writes: 1}
		for j, c := range cols {
			r.insertCol(c, rows[i][j], false)
		}
		t.addLocked(rk[i], r, names, now)
	}
	return buffered
}

func (t *tableState) addLocked(k rowKey, r *dirtyRow, names tableNames, now time.Time) {
	if t.names.keyCols == nil {
		t.names = names
	}
	if names.style != paramNone {
		t.names.style = names.style
	}
	t.lru.Add(k, r)
	t.pending.Add(1)
	t.stats.buffered.Add(1)
	t.markDirtyLocked(now)
}

// takeLocked moves the rows to flush into inflight and returns them: the
// retry rows first (they are older than anything in the set), then, when
// all is set, every dirty row, otherwise only the evicted ones.
func (t *tableState) takeLocked(all bool) (retry, rows []*dirtyRow) {
	retry = t.retry
	t.retry = nil
	for _, r := range retry {
		t.inflight[t.makeKeyLocked(r.key)]++
	}
	for k, r := range t.evicted {
		rows = append(rows, r)
		t.inflight[k]++
	}
	clear(t.evicted)
	if all {
		t.draining = true
		for _, k := range t.lru.Keys() {
			r, _ := t.lru.Peek(k)
			rows = append(rows, r)
			t.inflight[k]++
		}
		t.lru.Purge()
		t.draining = false
		t.oldest = time.Time{}
	}
	return retry, rows
}

// doneLocked removes committed (or dead-lettered) rows from inflight.
func (t *tableState) doneLocked(rows []*dirtyRow) {
	for _, r := range rows {
		t.releaseLocked(r)
	}
	t.pending.Add(-int64(len(rows)))
}

func (t *tableState) releaseLocked(r *dirtyRow) {
	k := t.makeKeyLocked(r.key)
	if t.inflight[k] <= 1 {
		delete(t.inflight, k)
	} else {
		t.inflight[k]--
	}
}

// failLocked puts rows that could not be written back, ahead of any newer
// write to the same keys: they are flushed first, in their own transaction.
func (t *tableState) failLocked(rows []*dirtyRow) {
	for _, r := range rows {
		t.releaseLocked(r)
		if t.oldest.IsZero() || r.since.Before(t.oldest) {
			t.oldest = r.since
		}
	}
	t.retry = append(t.retry, rows...)
}

// dirtyLocked reports the rows not yet taken and the oldest one's time.
func (t *tableState) dirtyLocked() (n int, oldest time.Time) {
	return t.lru.Len() + len(t.evicted) + len(t.retry), t.oldest
}

// ErrBuffered is returned by LastInsertId of a buffered write's result: the row
// has not reached the database yet, so no id exists.
var ErrBuffered = errors.New("writeback: write is buffered; LastInsertId is not known until it is flushed")

// ErrClosed is returned for writes after the connector was closed.
var ErrClosed = errors.New("writeback: connector is closed")

// bufferedResult is the driver.Result of a buffered write.
type bufferedResult int64

func (r bufferedResult) LastInsertId() (int64, error) { return 0, ErrBuffered }
func (r bufferedResult) RowsAffected() (int64, error) { return int64(r), nil }

// buffer is the dirty set of one connector: one tableState per back table and
// the flusher that empties them.
type buffer struct {
	tables  map[string]*tableState   // by normalized rule name; immutable after creation
	byBare  map[string][]*tableState // lower-cased bare table name → tables, for barriers
	ordered []*tableState            // all tables, for iteration
	flusher *flusher
	closed  atomic.Bool
}

func newBuffer(rules *Rules) *buffer {
	b := &buffer{tables: map[string]*tableState{}, byBare: map[string][]*tableState{}}
	for _, rule := range rules.backTables() {
		t := newTableState(b, rule)
		b.tables[rule.Name] = t
		bare := strings.ToLower(rule.Name)
		if i := strings.LastIndexByte(bare, '.'); i >= 0 {
			bare = bare[i+1:]
		}
		b.byBare[bare] = append(b.byBare[bare], t)
		b.ordered = append(b.ordered, t)
	}
	return b
}

func (b *buffer) kickFlusher() {
	if b.flusher != nil {
		b.flusher.kickNow()
	}
}

// tableFor finds the back table a statement's target names, following
// DESIGN section 3: schema.table matches a rule for that schema, or the bare
// rule when the schema is the default one (public, main).
func (b *buffer) tableFor(schema *ident, table ident) *tableState {
	if schema == nil {
		if t := b.tables[table.norm]; t != nil {
			return t
		}
		if t := b.tables["public."+table.norm]; t != nil {
			return t
		}
		return b.tables["main."+table.norm]
	}
	if t := b.tables[schema.norm+"."+table.norm]; t != nil {
		return t
	}
	if schema.norm == "public" || schema.norm == "main" {
		return b.tables[table.norm]
	}
	return nil
}

// tablesNamed returns the back tables a statement mentions (by its names).
func (b *buffer) tablesNamed(names []string) []*tableState {
	var out []*tableState
	for _, n := range names {
		for _, t := range b.byBare[n] {
			dup := false
			for _, o := range out {
				dup = dup || o == t
			}
			if !dup {
				out = append(out, t)
			}
		}
	}
	return out
}

// barrier returns once every row of tables that was buffered before the call
// is committed (or dead-lettered), so the statement that follows sees them.
func (b *buffer) barrier(ctx context.Context, tables []*tableState) error {
	var dirty []*tableState
	for _, t := range tables {
		if t.pending.Load() > 0 {
			dirty = append(dirty, t)
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	for _, t := range dirty {
		t.stats.barriers.Add(1)
	}
	return b.flusher.request(ctx, dirty)
}
