package writeback

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
	"github.com/writeback-go/writeback/internal/value"
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
	k     rowKey
	sh    *shard // the shard that holds the row
	key   []any  // key values in the rule's key order
	op    dialect.Op
	cols  []sqlparse.Ident
	vals  []any
	delta []bool // UPDATE only: cols[i] = cols[i] + vals[i]
	// since is when the oldest write coalesced into this row was acknowledged.
	since  time.Time
	writes int
	// seq orders the rows of one key (a retry row and a newer one) so a
	// flush writes them in the order they were made.
	seq uint64
	// minLSN and maxLSN are the journal records coalesced into the row
	// (0 without a journal); recs counts them.
	minLSN, maxLSN uint64
	recs           int64
	// size is the row's approximate memory (bound.go), counted in its
	// table's bytes while the row is not committed.
	size int64
}

// noteLSN records that journal record lsn was coalesced into the row.
func (r *dirtyRow) noteLSN(lsn uint64) {
	if lsn == 0 {
		return
	}
	if r.minLSN == 0 {
		r.minLSN = lsn
	}
	r.maxLSN = max(r.maxLSN, lsn)
	r.recs++
}

// colIndex returns the position of the column named norm, or -1.
func (r *dirtyRow) colIndex(norm string) int {
	for i := range r.cols {
		if r.cols[i].Norm == norm {
			return i
		}
	}
	return -1
}

// insertCol adds a column keeping cols sorted; it returns its index.
func (r *dirtyRow) insertCol(c sqlparse.Ident, v any, delta bool) {
	i := sort.Search(len(r.cols), func(i int) bool { return r.cols[i].Norm >= c.Norm })
	r.cols = append(r.cols, sqlparse.Ident{})
	copy(r.cols[i+1:], r.cols[i:])
	r.cols[i] = c
	r.vals = append(r.vals, nil)
	copy(r.vals[i+1:], r.vals[i:])
	r.vals[i] = v
	if r.op == dialect.Update {
		r.delta = append(r.delta, false)
		copy(r.delta[i+1:], r.delta[i:])
		r.delta[i] = delta
	}
}

// tableNames is how the application writes a back table's names, so flush
// SQL reads like the application's own (quoting, schema, placeholders).
type tableNames struct {
	schema  *sqlparse.Ident
	table   sqlparse.Ident
	keyCols []sqlparse.Ident // in the rule's key order
	style   sqlparse.ParamStyle
}

// change is one resolved SET clause of an UPDATE: values already copied.
type change struct {
	col   sqlparse.Ident
	delta bool // col = col + val
	val   any
}

// planUpdate checks that an UPDATE's changes can be coalesced into the row
// and computes the columns' next values into next (len(changes) long). It
// does not touch the row: on false the caller flushes it and runs the
// statement through instead. Checking first lets the journal record be
// appended only for a write that will be coalesced.
func (r *dirtyRow) planUpdate(changes []change, next []any) bool {
	for i, ch := range changes {
		j := r.colIndex(ch.col.Norm)
		switch {
		case !ch.delta:
			next[i] = ch.val
		case j < 0:
			if r.op == dialect.Insert {
				return false // the inserted row's default for this column is unknown here
			}
			next[i] = ch.val
		default:
			sum, ok := value.Add(r.vals[j], ch.val)
			if !ok {
				return false
			}
			next[i] = sum
		}
	}
	return true
}

// commitUpdate coalesces changes into the row with the values planUpdate
// computed. It returns by how much the row's size grew (bound.go).
func (r *dirtyRow) commitUpdate(changes []change, next []any) (grew int64) {
	for i, ch := range changes {
		j := r.colIndex(ch.col.Norm)
		if j < 0 {
			r.insertCol(ch.col, next[i], ch.delta && r.op == dialect.Update)
			grew += colOverhead + value.Size(next[i])
			continue
		}
		grew += value.Size(next[i]) - value.Size(r.vals[j])
		r.vals[j] = next[i]
		if r.op == dialect.Update {
			// delta after delta stays a delta; anything after an assign, and
			// an assign after anything, is an assign.
			r.delta[j] = ch.delta && r.delta[j]
		}
	}
	r.writes++
	r.size += grew
	return grew
}

// maxShards bounds how many independently locked parts a table's dirty set
// is split into, so writers of different rows rarely wait for each other.
const maxShards = 16

// shard is one independently locked part of a table's dirty set: the rows
// whose keys hash to it. Its mutex is never held across a database call.
type shard struct {
	t *tableState

	mu        sync.Mutex
	lru       *simplelru.LRU[rowKey, *dirtyRow]
	evicted   map[rowKey]*dirtyRow // pushed out of the LRU, flushed early, never dropped
	retry     []*dirtyRow          // rows of a failed flush: written before any newer row
	inflight  []*takenSet          // what the flusher took and has not finished with
	capacity  int                  // this shard's part of max_dirty
	oldest    time.Time            // since of the oldest row in lru/evicted/retry; zero when none
	buffered  int64                // writes acknowledged from memory (under mu: no shared atomic on the hot path)
	coalesced int64                // of those, writes merged into an existing dirty row

	_ [64]byte // keep neighbouring shards' locks off this cache line
}

// tableState is one back table's part of the buffer: its rule, its shards
// and the figures the flusher keeps for it.
type tableState struct {
	rule *TableRule
	buf  *buffer

	// pending counts rows in every shard's lru, evicted, retry and inflight,
	// so a barrier on a clean table costs one atomic load.
	pending atomic.Int64

	shards    []*shard // a power of two of them
	shardBits uint
	seed      maphash.Seed

	keyKinds atomic.Pointer[[]keyKind]  // Go kinds of the key values, fixed by the first buffered write
	names    atomic.Pointer[tableNames] // how the application writes the table's names

	rowSeq atomic.Uint64 // numbers rows as they are made (dirtyRow.seq)

	// Journal bookkeeping (zero without a journal). lastLSN is the highest
	// record appended for the table; it is raised under the shard lock of the
	// row the record went to, so whoever holds every shard lock sees every
	// record up to it in the shards. applied is the checkpoint watermark the
	// flusher last committed: every record of the table up to it is applied.
	lastLSN   atomic.Uint64
	applied   atomic.Uint64
	unapplied atomic.Int64 // journaled writes (rows) not yet applied

	// Bounds and backpressure (bound.go). bytes is the approximate memory
	// of the rows counted in pending; oldest is the since (UnixNano) of the
	// oldest of them, 0 when none: set by the first new row, recomputed
	// after each flush. failing is set when a flush fails transiently and
	// cleared when rows are committed. rowCost is the last flush's duration
	// per row (ns). overdueSince is when the table went past its max_loss
	// (UnixNano), 0 while within it.
	bytes        atomic.Int64
	oldest       atomic.Int64
	failing      atomic.Bool
	rowCost      atomic.Int64
	overdueSince atomic.Int64

	// flusher-owned fields (only the flusher goroutine touches them)
	retryAt   time.Time
	failures  int
	flushCost time.Duration // duration of the last flush, to start the next one early enough

	stats tableCounters
}

// tableCounters are the per-table figures Stats reports that are not kept per shard.
type tableCounters struct {
	passed      atomic.Int64 // bufferable writes on this table that went to the database
	barriers    atomic.Int64 // statements that waited for this table's flush
	flushes     atomic.Int64 // flush transactions committed
	flushedRows atomic.Int64 // rows written by those transactions
	noMatch     atomic.Int64 // flushed UPDATEs that matched no row
	deadLetters atomic.Int64 // rows the database refused permanently
	flushErrors atomic.Int64 // failed flush attempts
	evictions   atomic.Int64 // rows flushed early because the LRU was full
	full        atomic.Int64 // writes that met a full buffer (bound.go)
	throttled   atomic.Int64 // writes that waited for a flush to keep max_loss
	violations  atomic.Int64 // times the table went past its max_loss
}

func newTableState(b *buffer, rule *TableRule) *tableState {
	t := &tableState{rule: rule, buf: b, seed: maphash.MakeSeed()}
	n := 1
	for n*2 <= maxShards && n*2 <= rule.MaxDirty {
		n *= 2
		t.shardBits++
	}
	for i := 0; i < n; i++ {
		s := &shard{t: t, evicted: map[rowKey]*dirtyRow{}}
		// The shards share max_dirty between them, to the row.
		s.capacity = rule.MaxDirty / n
		if i < rule.MaxDirty%n {
			s.capacity++
		}
		s.lru = s.newLRU()
		t.shards = append(t.shards, s)
	}
	return t
}

func (s *shard) newLRU() *simplelru.LRU[rowKey, *dirtyRow] {
	lru, err := simplelru.NewLRU[rowKey, *dirtyRow](s.capacity, s.onEvict)
	if err != nil { // capacity >= 1: MaxDirty is validated positive and shards <= MaxDirty
		panic("writeback: " + err.Error())
	}
	return lru
}

// takenSet is what the flusher took from a shard in one go: the whole LRU
// (swapped for a fresh one, not walked and purged), the evicted rows and the
// retry rows. Until the flusher releases it, its keys count as busy.
type takenSet struct {
	lru     *simplelru.LRU[rowKey, *dirtyRow] // nil when the LRU was not taken
	evicted map[rowKey]*dirtyRow
	retry   []*dirtyRow
	since   time.Time // the oldest row's since
}

func (ts *takenSet) contains(k rowKey) bool {
	if ts.lru != nil && ts.lru.Contains(k) {
		return true
	}
	if _, ok := ts.evicted[k]; ok {
		return true
	}
	for _, r := range ts.retry {
		if r.k == k {
			return true
		}
	}
	return false
}

// shardFor picks the shard of a row by a hash of its key.
func (t *tableState) shardFor(k rowKey) *shard {
	if t.shardBits == 0 {
		return t.shards[0]
	}
	h := uint64(k.i) * 0x9E3779B97F4A7C15
	if k.s != "" {
		h ^= maphash.String(t.seed, k.s)
	}
	return t.shards[h>>(64-t.shardBits)]
}

// onEvict runs under s.mu inside lru.Add: the coldest row is set aside to be
// flushed early; it stays visible to coalescing and barriers until committed.
func (s *shard) onEvict(k rowKey, r *dirtyRow) {
	s.evicted[k] = r
	s.t.stats.evictions.Add(1)
	s.t.buf.kickFlusher()
}

// lookupLocked finds the dirty row for k among the rows not yet taken.
func (s *shard) lookupLocked(k rowKey) *dirtyRow {
	if r, ok := s.lru.Get(k); ok {
		return r
	}
	return s.evicted[k]
}

// retryRowLocked finds the row for k put back by a failed flush, when it is
// the newest row of k: no flush holds a row of k (lookupLocked found none
// among the others). Its flush rolled back, so a newer write may be
// coalesced into it as into any dirty row; during an outage that keeps a
// table's rows at one per key rather than one per key per failed flush.
func (s *shard) retryRowLocked(k rowKey) *dirtyRow {
	var found *dirtyRow
	for _, r := range s.retry {
		if r.k == k && (found == nil || r.seq > found.seq) {
			found = r
		}
	}
	if found == nil {
		return nil
	}
	if s.inflightHasLocked(k) {
		return nil
	}
	return found
}

// inflightHasLocked reports whether a flush holds a row of k.
func (s *shard) inflightHasLocked(k rowKey) bool {
	for _, ts := range s.inflight {
		if ts.contains(k) {
			return true
		}
	}
	return false
}

// keyBusyLocked reports whether k has a row in any state (for INSERT, which
// may only be buffered for a key with nothing pending).
func (s *shard) keyBusyLocked(k rowKey) bool {
	if s.lru.Contains(k) {
		return true
	}
	if _, ok := s.evicted[k]; ok {
		return true
	}
	for _, ts := range s.inflight {
		if ts.contains(k) {
			return true
		}
	}
	for _, r := range s.retry {
		if r.k == k {
			return true
		}
	}
	return false
}

// makeKey builds the row identity from key values whose kinds were checked.
func makeKey(vals []any) rowKey {
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

// checkKey fixes the table's key kinds on first use and reports whether vals
// match them: 1 and "1" must never be two dirty rows of one table.
func (t *tableState) checkKey(vals []any) bool {
	kp := t.keyKinds.Load()
	if kp == nil {
		kinds := make([]keyKind, len(vals))
		for i, v := range vals {
			if kinds[i] = kindOfKey(v); kinds[i] == keyNone {
				return false
			}
		}
		t.keyKinds.CompareAndSwap(nil, &kinds)
		kp = t.keyKinds.Load()
	}
	if len(*kp) != len(vals) {
		return false
	}
	for i, v := range vals {
		if kindOfKey(v) != (*kp)[i] {
			return false
		}
	}
	return true
}

// noteNames remembers how the application writes the table's names, the first
// time, or when the first statement had no placeholders to show their style.
func (t *tableState) noteNames(n *tableNames) {
	for {
		cur := t.names.Load()
		if cur != nil && (cur.style != sqlparse.ParamNone || n.style == sqlparse.ParamNone) {
			return
		}
		if t.names.CompareAndSwap(cur, n) {
			return
		}
	}
}

// markDirtyLocked records that a row became dirty now, and wakes the flusher
// when the shard goes from clean to dirty so it can set its deadline.
func (s *shard) markDirtyLocked(now time.Time) {
	if s.oldest.IsZero() {
		s.oldest = now
		s.t.buf.kickFlusher()
	}
}

// bufferOutcome says what the caller must do with a statement.
type bufferOutcome uint8

const (
	buffered     bufferOutcome = iota // acknowledged from memory
	passThrough                       // not bufferable: run it on the database
	flushFirst                        // flush this table, then run the statement on the database
	full                              // a new row is needed and the buffer is at its bound: on_full decides
	throttled                         // a new row is needed and the flusher is behind max_loss: wait for a flush, then retry
	fullInflight                      // full, but the key's row is in a flush: wait for it to end, then coalesce
)

// bufferUpdate coalesces one UPDATE of the row with key values keyVals. With
// a journal, jw's record is appended while the row's shard is locked, so the
// records of one row are in the journal in the order they were coalesced; the
// record's LSN is returned.
func (t *tableState) bufferUpdate(keyVals []any, changes []change, names *tableNames, jw *journalWrite) (bufferOutcome, uint64) {
	return t.bufferUpdateAdmit(keyVals, changes, names, jw, false)
}

// bufferUpdateAdmit is bufferUpdate; with throttle, a write that needs a new
// row while the flusher is behind max_loss returns throttled (bound.go).
func (t *tableState) bufferUpdateAdmit(keyVals []any, changes []change, names *tableNames, jw *journalWrite, throttle bool) (bufferOutcome, uint64) {
	if !t.checkKey(keyVals) {
		return flushFirst, 0
	}
	k := makeKey(keyVals)
	s := t.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.buf.closed.Load() {
		return passThrough, 0 // checked under s.mu: Close's final flush takes s.mu after setting closed
	}
	r := s.lookupLocked(k)
	if r == nil && len(s.retry) > 0 {
		r = s.retryRowLocked(k)
	}
	if r != nil {
		var stack [8]any // no allocation for the common few columns
		next := stack[:0]
		if len(changes) > len(stack) {
			next = make([]any, 0, len(changes))
		}
		next = next[:len(changes)]
		if !r.planUpdate(changes, next) {
			return flushFirst, 0
		}
		lsn, err := jw.logLocked(t, 1)
		if err != nil {
			return flushFirst, 0
		}
		if grew := r.commitUpdate(changes, next); grew != 0 {
			t.bytes.Add(grew) // coalescing is always admitted: it makes no new row
		}
		r.noteLSN(lsn)
		s.buffered++
		s.coalesced++
		return buffered, lsn
	}
	now := time.Now()
	r = &dirtyRow{k: k, sh: s, key: slices.Clone(keyVals), op: dialect.Update, since: now, writes: 1}
	for _, ch := range changes {
		r.insertCol(ch.col, ch.val, ch.delta)
	}
	r.size = rowSize(r)
	// Admitted before the journal record: a record is appended only for a
	// write that is buffered.
	if out := t.admit(1, r.size, now, throttle); out != buffered {
		if out == full && s.inflightHasLocked(k) {
			// The key's row is being flushed: when that ends it is back (or
			// committed), and this write is coalesced, not a new row.
			return fullInflight, 0
		}
		return out, 0
	}
	lsn, err := jw.logLocked(t, 1)
	if err != nil {
		t.unadmit(1, r.size)
		return flushFirst, 0
	}
	r.seq = t.rowSeq.Add(1)
	r.noteLSN(lsn)
	s.addLocked(r, now)
	t.noteNames(names)
	return buffered, lsn
}

// bufferInsert buffers the rows of one INSERT, all or none: each row's key must
// have nothing pending, and no key may repeat within the statement. The
// shards involved are locked together, in index order.
func (t *tableState) bufferInsert(keys [][]any, rows [][]any, cols []sqlparse.Ident, names *tableNames, jw *journalWrite) (bufferOutcome, uint64) {
	return t.bufferInsertAdmit(keys, rows, cols, names, jw, false)
}

// bufferInsertAdmit is bufferInsert; with throttle, it returns throttled
// while the flusher is behind max_loss (bound.go). Every row of an INSERT
// is new, so each is subject to the bound.
func (t *tableState) bufferInsertAdmit(keys [][]any, rows [][]any, cols []sqlparse.Ident, names *tableNames, jw *journalWrite, throttle bool) (bufferOutcome, uint64) {
	rk := make([]rowKey, len(keys))
	for i, kv := range keys {
		if !t.checkKey(kv) {
			return flushFirst, 0
		}
		rk[i] = makeKey(kv)
		for j := 0; j < i; j++ {
			if rk[j] == rk[i] {
				return passThrough, 0 // the database reports the duplicate itself
			}
		}
	}
	var locked []*shard
	for _, k := range rk {
		s := t.shardFor(k)
		if !slices.Contains(locked, s) {
			locked = append(locked, s)
		}
	}
	slices.SortFunc(locked, func(a, b *shard) int { return slices.Index(t.shards, a) - slices.Index(t.shards, b) })
	for _, s := range locked {
		s.mu.Lock()
	}
	defer func() {
		for _, s := range locked {
			s.mu.Unlock()
		}
	}()
	if t.buf.closed.Load() {
		return passThrough, 0
	}
	for _, k := range rk {
		if t.shardFor(k).keyBusyLocked(k) {
			return flushFirst, 0
		}
	}
	now := time.Now()
	made := make([]*dirtyRow, len(rows))
	var size int64
	for i := range rows {
		r := &dirtyRow{k: rk[i], sh: t.shardFor(rk[i]), key: keys[i], op: dialect.Insert, since: now, writes: 1}
		for j, c := range cols {
			r.insertCol(c, rows[i][j], false)
		}
		r.size = rowSize(r)
		size += r.size
		made[i] = r
	}
	if out := t.admit(len(rows), size, now, throttle); out != buffered {
		return out, 0
	}
	lsn, err := jw.logLocked(t, len(rows))
	if err != nil {
		t.unadmit(len(rows), size)
		return flushFirst, 0
	}
	for _, r := range made {
		r.seq = t.rowSeq.Add(1)
		r.noteLSN(lsn)
		r.sh.addLocked(r, now)
	}
	t.noteNames(names)
	return buffered, lsn
}

// addLocked puts an admitted row (counted in pending and bytes) in the LRU.
func (s *shard) addLocked(r *dirtyRow, now time.Time) {
	s.lru.Add(r.k, r)
	s.buffered++
	s.markDirtyLocked(now)
}

// takeLocked hands the shard's rows to the flusher: the retry rows (older
// than anything in the set) and, when all is set, every dirty row, otherwise
// only the evicted ones. The taken set stays listed as inflight until released.
func (s *shard) takeLocked(all bool) (*takenSet, []*dirtyRow) {
	ts := &takenSet{retry: s.retry}
	s.retry = nil
	for _, r := range ts.retry {
		ts.since = minNonZero(ts.since, r.since)
	}
	var rows []*dirtyRow
	if len(s.evicted) > 0 {
		ts.evicted = s.evicted
		s.evicted = map[rowKey]*dirtyRow{}
		for _, r := range ts.evicted {
			rows = append(rows, r)
			ts.since = minNonZero(ts.since, r.since)
		}
	}
	if all && s.lru.Len() > 0 {
		ts.lru = s.lru
		s.lru = s.newLRU()
		rows = append(rows, ts.lru.Values()...)
		ts.since = minNonZero(ts.since, s.oldest)
		s.oldest = time.Time{}
	}
	if len(ts.retry) == 0 && len(rows) == 0 {
		return nil, nil
	}
	if s.lru.Len() == 0 {
		// Nothing left untaken: oldest must not keep the age of retry or
		// evicted rows taken here (fail sets it again for rows put back).
		s.oldest = time.Time{}
	}
	s.inflight = append(s.inflight, ts)
	return ts, rows
}

// taken is what one flush took from a table: per shard, the set to release.
type taken struct {
	shards []*shard
	sets   []*takenSet
	start  time.Time // when the flush took its rows
	rows   int
}

// take collects the table's rows to flush from every shard: the retry rows
// first, then the others. A full take (all) holds every shard's lock at once,
// in index order, and returns upTo, the table's highest journal LSN at that
// instant: no record can be appended between two shards' takes, so every
// record of the table up to upTo is in this take or was flushed before, and a
// commit of the whole take may advance the table's checkpoint to upTo.
func (t *tableState) take(all bool) (tk taken, rows []*dirtyRow, upTo uint64) {
	var retry []*dirtyRow
	add := func(s *shard) {
		ts, r := s.takeLocked(all)
		if ts != nil {
			tk.shards = append(tk.shards, s)
			tk.sets = append(tk.sets, ts)
			retry = append(retry, ts.retry...)
			rows = append(rows, r...)
		}
	}
	tk.start = time.Now()
	if all {
		for _, s := range t.shards {
			s.mu.Lock()
		}
		for _, s := range t.shards {
			add(s)
		}
		upTo = t.lastLSN.Load()
		for _, s := range t.shards {
			s.mu.Unlock()
		}
	} else {
		for _, s := range t.shards {
			s.mu.Lock()
			add(s)
			s.mu.Unlock()
		}
	}
	rows = append(retry, rows...)
	tk.rows = len(rows)
	return tk, rows, upTo
}

// release ends a flush: its keys are no longer busy. Rows that failed were
// put back (fail) before this.
func (t *tableState) release(tk taken) {
	for i, s := range tk.shards {
		s.mu.Lock()
		s.inflight = slices.DeleteFunc(s.inflight, func(ts *takenSet) bool { return ts == tk.sets[i] })
		s.mu.Unlock()
	}
	t.afterFlush(tk, time.Now())
}

// done accounts for committed (or dead-lettered) rows.
// The database answered, so the table is not failing; the room the rows
// held wakes writers blocked on a full buffer (bound.go).
func (t *tableState) done(rows []*dirtyRow) {
	var recs, size int64
	for _, r := range rows {
		recs += r.recs
		size += r.size
	}
	t.bytes.Add(-size)
	t.pending.Add(-int64(len(rows)))
	if recs != 0 {
		t.unapplied.Add(-recs)
	}
	t.failing.Store(false)
	t.buf.room.broadcast()
}

// noteLSN raises the table's highest appended LSN to lsn. Appends to
// different shards may finish out of order, hence the maximum.
func (t *tableState) noteLSN(lsn uint64) {
	for {
		cur := t.lastLSN.Load()
		if lsn <= cur || t.lastLSN.CompareAndSwap(cur, lsn) {
			return
		}
	}
}

// fail puts rows that could not be written back, ahead of any newer write
// to the same keys: they are flushed first, in their own transaction.
func (t *tableState) fail(rows []*dirtyRow) {
	t.failing.Store(true)
	var byShard [maxShards][]*dirtyRow
	for _, r := range rows {
		i := slices.Index(t.shards, r.sh)
		byShard[i] = append(byShard[i], r)
	}
	for i, mine := range byShard {
		if len(mine) == 0 {
			continue
		}
		s := t.shards[i]
		s.mu.Lock()
		for _, r := range mine {
			s.oldest = minNonZero(s.oldest, r.since)
		}
		s.retry = append(s.retry, mine...)
		s.mu.Unlock()
	}
}

// dirtyInfo is what the flusher needs to know of a table to schedule it.
type dirtyInfo struct {
	n       int       // rows not yet taken
	oldest  time.Time // since of the oldest of them
	evicted int
	retry   int
}

func (t *tableState) dirty() dirtyInfo {
	var d dirtyInfo
	for _, s := range t.shards {
		s.mu.Lock()
		d.n += s.lru.Len() + len(s.evicted) + len(s.retry)
		d.evicted += len(s.evicted)
		d.retry += len(s.retry)
		d.oldest = minNonZero(d.oldest, s.oldest)
		s.mu.Unlock()
	}
	return d
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
	dur     *durability // the journal; nil without one

	// maxBytes bounds the approximate memory of all tables' rows not yet
	// committed (WithMaxBufferBytes); room is broadcast whenever rows are
	// committed or dead-lettered, for writers waiting under on_full: block.
	maxBytes int64
	room     signal
}

func newBuffer(rules *Rules) *buffer {
	b := &buffer{tables: map[string]*tableState{}, byBare: map[string][]*tableState{}, maxBytes: DefaultMaxBufferBytes}
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

// tableFor finds the back table a statement's target names: schema.table
// matches a rule for that schema, or the bare rule when the schema is the
// default one (public, main).
func (b *buffer) tableFor(schema *sqlparse.Ident, table sqlparse.Ident) *tableState {
	if schema == nil {
		if t := b.tables[table.Norm]; t != nil {
			return t
		}
		if t := b.tables["public."+table.Norm]; t != nil {
			return t
		}
		return b.tables["main."+table.Norm]
	}
	if t := b.tables[schema.Norm+"."+table.Norm]; t != nil {
		return t
	}
	if schema.Norm == "public" || schema.Norm == "main" {
		return b.tables[table.Norm]
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

// keyPart is one key column's value in a row identity. Only int64 and string
// keys are buffered: the Go type is fixed per table, so 1 and "1" never name
// two dirty rows that the database would see as one.
type keyKind uint8

const (
	keyNone keyKind = iota
	keyInt
	keyString
)

func kindOfKey(v any) keyKind {
	switch v.(type) {
	case int64:
		return keyInt
	case string:
		return keyString
	}
	return keyNone
}
