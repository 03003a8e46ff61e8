// Package dirtyset is writeback's dirty set: per back table, the rows written
// from memory and not yet committed, coalesced per key, in up to 16 shards
// each guarded by its own mutex over an LRU of its rows (lru.go). The mutexes
// never leave this package: callers coalesce (Update, Insert), take rows to
// flush (Take, then Batch.Done, Batch.Fail, Batch.Release) and read figures
// (Dirty, Snapshot) through methods that lock what they need and never call
// the database.
//
// Lock order: a Table's shard locks are taken in index order (Insert of
// several rows, a full Take); nothing else is locked while they are held
// except the journal's append (the Journal the caller passes), so per row,
// journal order is coalescing order.
package dirtyset

import (
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// maxShards bounds how many independently locked parts a table's dirty set
// is split into, so writers of different rows rarely wait for each other.
const maxShards = 16

// Outcome says what the caller must do with a write.
type Outcome uint8

const (
	Buffered      Outcome = iota // acknowledged from memory
	PassThrough                  // not bufferable: run it on the database
	FlushFirst                   // flush this table, then run the statement on the database
	Full                         // a new row is needed and the buffer is at its bound: on_full decides
	Throttled                    // a new row is needed and the flusher is behind max_loss: wait for a flush, then retry
	FullInflight                 // full, but the key's row is in a flush: wait for it to end, then coalesce
	JournalFailed                // the journal could not take the write's record: nothing buffered
	Probe                        // whether the key's row exists is not known: ask the database, then retry
	Unmatched                    // a guard of the UPDATE is false for the key's buffered row: it matches no row, nothing is buffered
)

// Existence is what the caller knows of whether a key's row exists in the
// database, for a write whose key has no row pending here.
type Existence uint8

const (
	ExistUnknown Existence = iota // not known: the write comes back as Probe
	ExistYes                      // the row exists
	ExistNo                       // the row does not exist (the database said so just now)
)

// Exists tells the dirty set what is known of a key's row in the database.
// It is called with the shard lock of the key held, so it must not block.
type Exists func(ID) Existence

// Journal appends one buffered write's record. Log is called with the shard
// lock of every row the record touches (rows of them) held; it returns the
// record's LSN, or an error, after which the write is not buffered.
type Journal interface {
	Log(rows int) (lsn uint64, err error)
}

// Shared is what the tables of one connector share: the byte bound on all
// their rows, the signal that room was made, and whether the connector is
// closed.
type Shared struct {
	maxBytes int64
	tables   []*Table
	closed   atomic.Bool
	room     signal
}

// NewShared returns the shared state for tables whose rows together may
// hold about maxBytes of memory.
func NewShared(maxBytes int64) *Shared { return &Shared{maxBytes: maxBytes} }

// Close makes every later write pass through; it is checked under the row's
// shard lock, so a Take of everything after Close sees every buffered row.
func (sh *Shared) Close() { sh.closed.Store(true) }

// Closed reports whether Close was called.
func (sh *Shared) Closed() bool { return sh.closed.Load() }

// Room returns a channel closed the next time rows are committed, put back
// or dead-lettered: writers waiting for a full buffer look again then. Take
// it before checking the condition, so no change is missed in between.
func (sh *Shared) Room() <-chan struct{} { return sh.room.wait() }

// Bytes is the approximate memory of every table's rows not yet committed:
// a sum of per-table atomics, computed for new rows only, never per write.
func (sh *Shared) Bytes() int64 {
	var n int64
	for _, t := range sh.tables {
		n += t.bytes.Load()
	}
	return n
}

// Config describes one table's dirty set.
type Config struct {
	Name     string        // the rule's table name, for logs
	MaxDirty int           // LRU capacity; beyond it the coldest row is set aside to be flushed early
	MaxLoss  time.Duration // the table's loss bound, for backpressure and its violations
	// Wake is called, without blocking and possibly under a shard lock,
	// when the table's flush worker should look at it again: a shard went
	// from clean to dirty, or a row was evicted.
	Wake func()
	Log  *slog.Logger // max_loss violations; nil: slog.Default()
	// UpdatesExist says the key of every UPDATE row exists in the
	// database: the caller buffers an UPDATE only for a key it knows
	// exists. An upsert of such a key is then its update part, coalesced
	// into the row; otherwise the row is flushed first.
	UpdatesExist bool
}

// Table is one back table's dirty set.
type Table struct {
	cfg    Config
	shared *Shared
	index  int // in shared.tables: the order a group locks tables' shards in (group.go)

	// pending counts rows in every shard's lru, evicted, retry, held and inflight,
	// so a barrier on a clean table costs one atomic load.
	pending atomic.Int64

	shards    []*shard // a power of two of them
	shardBits uint
	seed      maphash.Seed

	keyKinds atomic.Pointer[[]KeyKind] // Go kinds of the key values, fixed by the first buffered write
	names    atomic.Pointer[Names]     // how the application writes the table's names
	colSets  atomic.Pointer[[]*colSet] // column sets rows share (colsets.go)

	rowSeq   atomic.Uint64 // numbers rows as they are made (Row.Seq), from olderSeqs
	olderSeq atomic.Uint64 // the next number for a row of an older table (older.go)

	// Journal bookkeeping (zero without a journal). applied is the
	// checkpoint watermark the flush last committed: every record of the
	// table up to it is applied. appliedRecs counts the journaled writes
	// (rows) of committed rows; the shards count the journaled writes
	// (shard.journaled), so the writes not yet applied are their sum less
	// appliedRecs, and a write touches no table-wide counter.
	applied     atomic.Uint64
	appliedRecs atomic.Int64
	groupLSN    atomic.Uint64 // the last record of the last group with rows here (group.go)

	// doneWrites counts the writes of rows committed or dead-lettered
	// (Batch.Done): the writes buffered and not done are at risk.
	doneWrites atomic.Int64

	// Bounds and backpressure (bound.go). bytes is the approximate memory
	// of the rows counted in pending; oldest is the Since (UnixNano) of the
	// oldest of them, 0 when none: set by the first new row, recomputed
	// after each flush. failing is set when a flush fails transiently and
	// cleared when rows are committed. rowCost is the duration per row (ns)
	// of the last flush of at least costMinRows rows. overdueSince is when
	// the table went past its max_loss (UnixNano), 0 while within it.
	bytes        atomic.Int64
	oldest       atomic.Int64
	failing      atomic.Bool
	rowCost      atomic.Int64
	overdueSince atomic.Int64

	// takes and releases count flushes begun (Take) and ended (Release):
	// equal while no flush is under way (overlay.go).
	takes, releases atomic.Uint64

	kept       atomic.Int64  // rows set aside by Keep (held lists)
	unholds    atomic.Uint64 // times Unhold moved rows
	evictions  atomic.Int64  // rows set aside early because the LRU was full
	violations atomic.Int64  // times the table went past its max_loss
}

// shard is one independently locked part of a table's dirty set: the rows
// whose keys hash to it. Its mutex is never held across a database call.
type shard struct {
	t *Table

	mu        sync.Mutex
	lru       *rowLRU
	evicted   map[ID]*Row // pushed out of the LRU, flushed early, never dropped
	retry     []*Row      // rows of a failed flush: written before any newer row
	held      []*Row      // rows a flush left for a transaction's lock (Keep)
	inflight  []*takenSet // what a flush took and has not finished with
	capacity  int         // this shard's part of max_dirty
	oldest    time.Time   // Since of the oldest row in lru/evicted/retry; zero when none
	buffered  int64       // writes acknowledged from memory (under mu: no shared atomic on the hot path)
	coalesced int64       // of those, writes merged into an existing dirty row
	// lastLSN is the highest journal record coalesced into a row of this
	// shard, raised under mu as the record is appended: whoever holds every
	// shard lock sees every record up to the highest of them in the shards.
	// journaled counts the writes (rows) journaled here (Table.appliedRecs).
	lastLSN   uint64
	journaled int64

	_ [64]byte // keep neighbouring shards' locks off this cache line
}

// NewTable adds a table to the shared state. cfg.MaxDirty must be positive.
func (sh *Shared) NewTable(cfg Config) *Table {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.MaxDirty = max(cfg.MaxDirty, 1)
	if cfg.Wake == nil {
		cfg.Wake = func() {}
	}
	t := &Table{cfg: cfg, shared: sh, seed: maphash.MakeSeed(), index: len(sh.tables)}
	t.rowSeq.Store(olderSeqs)
	n := 1
	for n*2 <= maxShards && n*2 <= cfg.MaxDirty {
		n *= 2
		t.shardBits++
	}
	for i := 0; i < n; i++ {
		s := &shard{t: t, evicted: map[ID]*Row{}}
		// The shards share max_dirty between them, to the row.
		s.capacity = cfg.MaxDirty / n
		if i < cfg.MaxDirty%n {
			s.capacity++
		}
		s.lru = s.newLRU()
		t.shards = append(t.shards, s)
	}
	sh.tables = append(sh.tables, t)
	return t
}

// newLRU returns an empty LRU of the shard's capacity, at least 1: MaxDirty
// is at least 1 and there are no more shards than MaxDirty.
func (s *shard) newLRU() *rowLRU { return newRowLRU(s.capacity, s.onEvict) }

// shardFor picks the shard of a row by a hash of its key.
func (t *Table) shardFor(k ID) *shard { return t.shards[t.shardIndex(k)] }

// shardIndex is the index of k's shard in t.shards.
func (t *Table) shardIndex(k ID) int {
	if t.shardBits == 0 {
		return 0
	}
	h := uint64(k.i) * 0x9E3779B97F4A7C15
	if k.s != "" {
		h ^= maphash.String(t.seed, k.s)
	}
	return int(h >> (64 - t.shardBits))
}

// onEvict runs under s.mu inside lru.Add: the coldest row is set aside to be
// flushed early; it stays visible to coalescing and barriers until committed.
func (s *shard) onEvict(k ID, r *Row) {
	s.evicted[k] = r
	s.t.evictions.Add(1)
	s.t.cfg.Wake()
}

// lookupLocked finds the dirty row for k among the rows not yet taken.
func (s *shard) lookupLocked(k ID) *Row {
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
func (s *shard) retryRowLocked(k ID) *Row {
	var found *Row
	for _, r := range s.retry {
		if r.ID() == k && (found == nil || r.Seq > found.Seq) {
			found = r
		}
	}
	if found == nil || s.inflightHasLocked(k) {
		return nil
	}
	return found
}

// inflightHasLocked reports whether a flush holds a row of k.
func (s *shard) inflightHasLocked(k ID) bool {
	for _, ts := range s.inflight {
		if ts.contains(k) {
			return true
		}
	}
	return false
}

// keyBusyLocked reports whether k has a row in any state (for INSERT, which
// may only be buffered for a key with nothing pending).
func (s *shard) keyBusyLocked(k ID) bool {
	if s.lru.Contains(k) {
		return true
	}
	if _, ok := s.evicted[k]; ok {
		return true
	}
	if s.inflightHasLocked(k) {
		return true
	}
	for _, r := range s.retry {
		if r.ID() == k {
			return true
		}
	}
	for _, r := range s.held {
		if r.ID() == k {
			return true
		}
	}
	return false
}

// CheckKey fixes the table's key kinds on first use and reports whether vals
// match them: 1 and "1" must never be two dirty rows of one table.
func (t *Table) CheckKey(vals []any) bool {
	kp := t.keyKinds.Load()
	if kp == nil {
		kinds := make([]KeyKind, len(vals))
		for i, v := range vals {
			if kinds[i] = KindOfKey(v); kinds[i] == KeyNone {
				return false
			}
		}
		t.keyKinds.CompareAndSwap(nil, &kinds)
		kp = t.keyKinds.Load()
	}
	return kindsMatch(*kp, vals)
}

// keyKindsMatch is CheckKey without fixing the kinds: set is false while
// none are fixed (nothing was buffered yet).
func (t *Table) keyKindsMatch(vals []any) (match, set bool) {
	kp := t.keyKinds.Load()
	if kp == nil {
		return false, false
	}
	return kindsMatch(*kp, vals), true
}

// kindsMatch reports whether vals are of kinds, one by one.
func kindsMatch(kinds []KeyKind, vals []any) bool {
	if len(kinds) != len(vals) {
		return false
	}
	for i, v := range vals {
		if KindOfKey(v) != kinds[i] {
			return false
		}
	}
	return true
}

// Names returns how the application writes the table's names (nil before
// the first buffered write).
func (t *Table) Names() *Names { return t.names.Load() }

// noteNames remembers how the application writes the table's names, the first
// time, or when the first statement had no placeholders to show their style.
func (t *Table) noteNames(n *Names) {
	for {
		cur := t.names.Load()
		if cur != nil && (cur.Style != sqlparse.ParamNone || n.Style == sqlparse.ParamNone) {
			return
		}
		if t.names.CompareAndSwap(cur, n) {
			return
		}
	}
}

// markDirtyLocked records that a row became dirty now, and wakes the flush
// worker when the shard goes from clean to dirty so it can set its deadline.
func (s *shard) markDirtyLocked(now time.Time) {
	if s.oldest.IsZero() {
		s.oldest = now
		s.t.cfg.Wake()
	}
}

// logLocked appends a write's journal record (j nil: no journal: LSN 0).
// The caller holds the shard lock of every row the record touches, and
// notes the LSN in each of them (noteLSNLocked) before it lets go.
func (t *Table) logLocked(j Journal, rows int) (uint64, error) {
	if j == nil {
		return 0, nil
	}
	return j.Log(rows)
}

// noteLSNLocked notes that journal record lsn (0: none) was coalesced into
// r, a row of s.
func (s *shard) noteLSNLocked(r *Row, lsn uint64) {
	if lsn == 0 {
		return
	}
	r.noteLSN(lsn)
	s.lastLSN = max(s.lastLSN, lsn)
	s.journaled++
}

// Update coalesces one UPDATE of the row with key values keyVals. With a
// journal, j's record is appended while the row's shard is locked, so the
// records of one row are in the journal in the order they were coalesced; the
// record's LSN is returned. With throttle, a write that needs a new row
// while the flush is behind max_loss returns Throttled.
func (t *Table) Update(keyVals []any, changes []Change, names *Names, j Journal, throttle bool) (Outcome, uint64) {
	return t.UpdateExisting(keyVals, changes, names, j, admissionOf(throttle), nil)
}

// UpdateExisting is Update for a statement whose RowsAffected must be exact:
// an UPDATE of a key with no row pending is buffered only when exists says
// its row is in the database (it reports one row); when exists says it is
// not (the database said so just now), the write is Unmatched (it matches
// no row, as it would have then), and when exists does not know, Probe. A
// nil exists is Update.
func (t *Table) UpdateExisting(keyVals []any, changes []Change, names *Names, j Journal, adm Admission, exists Exists) (Outcome, uint64) {
	return t.UpdateGuarded(keyVals, changes, names, j, adm, exists, nil, nil)
}

// UpdateGuarded is UpdateExisting for an UPDATE whose WHERE also puts
// guards on columns of the row (guard.go). Where the key's buffered row
// sets a guarded column, its value decides the guard, and a false guard
// makes the write Unmatched; where it does not, hold tells whether the
// database's row satisfies the guards, and when hold says no (not known),
// the write comes back as Probe. A delta on a guarded column, a guarded
// column an INSERT leaves to its default, an upsert row, or a row in a
// flush make it FlushFirst. Without guards it is UpdateExisting.
func (t *Table) UpdateGuarded(keyVals []any, changes []Change, names *Names, j Journal, adm Admission, exists Exists, guards []Guard, hold GuardsHold) (Outcome, uint64) {
	if !t.CheckKey(keyVals) {
		return FlushFirst, 0
	}
	k := MakeID(keyVals)
	s := t.shardFor(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.shared.closed.Load() {
		return PassThrough, 0 // checked under s.mu: Close's final Take locks s.mu after closing
	}
	return t.updateLocked(s, k, keyVals, changes, names, j, adm, exists, guards, hold)
}

// updateLocked is UpdateGuarded with the key's shard s locked.
func (t *Table) updateLocked(s *shard, k ID, keyVals []any, changes []Change, names *Names, j Journal, adm Admission, exists Exists, guards []Guard, hold GuardsHold) (Outcome, uint64) {
	r := s.lookupLocked(k)
	if r == nil && len(s.retry) > 0 {
		r = s.retryRowLocked(k)
	}
	if len(guards) > 0 {
		if out := s.guardsLocked(k, r, exists, guards, hold); out != Buffered {
			return out, 0
		}
	}
	if r != nil {
		return t.coalesceLocked(s, r, changes, j)
	}
	if len(guards) == 0 && exists != nil && !s.keyBusyLocked(k) {
		// A key with a row in a flush, held or put back was admitted
		// before: the row exists as far as this write can tell.
		switch exists(k) {
		case ExistUnknown:
			return Probe, 0
		case ExistNo:
			// The database said just now that no row has the key: the
			// UPDATE matches nothing, as it would have then.
			return Unmatched, 0
		}
	}
	now := time.Now()
	r = &Row{key: rowKey(k, keyVals), Op: dialect.Update, since: monoOf(now), Writes: 1}
	t.initCols(r, len(changes), func(i int) (sqlparse.Ident, any, bool, dialect.ColFn) {
		ch := &changes[i]
		return ch.Col, ch.Val, ch.Delta, ch.Fn
	})
	r.size = rowSize(r)
	// Admitted before the journal record: a record is appended only for a
	// write that is buffered.
	if out := t.admit(1, r.size, now, adm); out != Buffered {
		if out == Full && s.inflightHasLocked(k) {
			// The key's row is being flushed: when that ends it is back (or
			// committed), and this write is coalesced, not a new row.
			return FullInflight, 0
		}
		return out, 0
	}
	lsn, err := t.logLocked(j, 1)
	if err != nil {
		t.unadmit(1, r.size)
		return JournalFailed, 0
	}
	t.addNewLocked(r, lsn, now)
	t.noteNames(names)
	return Buffered, lsn
}

// coalesceLocked merges an UPDATE into the key's dirty row r.
func (t *Table) coalesceLocked(s *shard, r *Row, changes []Change, j Journal) (Outcome, uint64) {
	if r.Op == dialect.Upsert {
		return t.coalesceUpsertLocked(r, changes, j)
	}
	var stack [8]any // no allocation for the common few columns
	next := stack[:0]
	if len(changes) > len(stack) {
		next = make([]any, 0, len(changes))
	}
	next = next[:len(changes)]
	if !r.planUpdate(changes, next) {
		return FlushFirst, 0
	}
	lsn, err := t.logLocked(j, 1)
	if err != nil {
		return JournalFailed, 0
	}
	s.noteCoalescedLocked(r, t.commitUpdate(r, changes, next), lsn)
	return Buffered, lsn
}

// Insert buffers the rows of one INSERT, all or none: each row's key must
// have nothing pending, and no key may repeat within the statement. The
// shards involved are locked together, in index order. Every row of an
// INSERT is new, so each is subject to the bounds.
func (t *Table) Insert(keys [][]any, rows [][]any, cols []sqlparse.Ident, names *Names, j Journal, throttle bool) (Outcome, uint64) {
	return t.InsertNew(keys, rows, cols, names, j, admissionOf(throttle), nil)
}

// InsertNew is Insert for a statement whose errors must be exact: it is
// buffered only when exists says no row of its keys is in the database. A
// key whose row exists makes it PassThrough (the database reports the
// duplicate key at Exec), one that exists does not know makes it Probe. A
// nil exists is Insert.
func (t *Table) InsertNew(keys [][]any, rows [][]any, cols []sqlparse.Ident, names *Names, j Journal, adm Admission, exists Exists) (Outcome, uint64) {
	rk, out := t.insertIDs(keys)
	if out != Buffered {
		return out, 0
	}
	unlock := t.lockShardsOf(rk)
	defer unlock()
	if t.shared.closed.Load() {
		return PassThrough, 0
	}
	return t.insertLocked(rk, keys, rows, cols, names, j, adm, exists)
}

// insertIDs returns the row ids of an INSERT's keys; an outcome other than
// Buffered when the statement cannot be buffered whatever the rows hold.
func (t *Table) insertIDs(keys [][]any) ([]ID, Outcome) {
	rk := make([]ID, len(keys))
	for i, kv := range keys {
		if !t.CheckKey(kv) {
			return nil, FlushFirst
		}
		rk[i] = MakeID(kv)
		if slices.Contains(rk[:i], rk[i]) {
			return nil, PassThrough // the database reports the duplicate itself
		}
	}
	return rk, Buffered
}

// insertLocked is InsertNew with the shards of every key (rk) locked.
func (t *Table) insertLocked(rk []ID, keys [][]any, rows [][]any, cols []sqlparse.Ident, names *Names, j Journal, adm Admission, exists Exists) (Outcome, uint64) {
	for _, k := range rk {
		if t.shardFor(k).keyBusyLocked(k) {
			return FlushFirst, 0
		}
	}
	if exists != nil {
		probe := false
		for _, k := range rk {
			switch exists(k) {
			case ExistYes:
				return PassThrough, 0
			case ExistUnknown:
				probe = true
			}
		}
		if probe {
			return Probe, 0
		}
	}
	now := time.Now()
	made := make([]*Row, len(rows))
	var size int64
	for i := range rows {
		r := &Row{key: ownedRowKey(rk[i], keys[i]), Op: dialect.Insert, since: monoOf(now), Writes: 1}
		t.initCols(r, len(cols), func(j int) (sqlparse.Ident, any, bool, dialect.ColFn) {
			return cols[j], rows[i][j], false, dialect.FnNone
		})
		r.size = rowSize(r)
		size += r.size
		made[i] = r
	}
	if out := t.admit(len(rows), size, now, adm); out != Buffered {
		return out, 0
	}
	lsn, err := t.logLocked(j, len(rows))
	if err != nil {
		t.unadmit(len(rows), size)
		return JournalFailed, 0
	}
	for _, r := range made {
		t.addNewLocked(r, lsn, now)
	}
	t.noteNames(names)
	return Buffered, lsn
}

// lockShardsOf locks the shards of keys in index order and returns the unlock.
func (t *Table) lockShardsOf(keys []ID) (unlock func()) {
	var locked []*shard
	for _, k := range keys {
		if s := t.shardFor(k); !slices.Contains(locked, s) {
			locked = append(locked, s)
		}
	}
	slices.SortFunc(locked, func(a, b *shard) int { return slices.Index(t.shards, a) - slices.Index(t.shards, b) })
	for _, s := range locked {
		s.mu.Lock()
	}
	return func() {
		for _, s := range locked {
			s.mu.Unlock()
		}
	}
}

// addNewLocked numbers a new admitted row, notes its record's LSN and puts
// it in its shard (whose lock the caller holds).
func (t *Table) addNewLocked(r *Row, lsn uint64, now time.Time) {
	r.Seq = t.rowSeq.Add(1)
	s := t.shardFor(r.ID())
	s.noteLSNLocked(r, lsn)
	s.addLocked(r, now)
}

// addLocked puts an admitted row (counted in pending and bytes) in the LRU.
func (s *shard) addLocked(r *Row, now time.Time) {
	s.lru.Add(r.ID(), r)
	s.buffered++
	s.markDirtyLocked(now)
}
