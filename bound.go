package writeback

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/writeback-go/writeback/internal/value"
)

// ErrBufferFull is returned by Exec for a write to a back table whose rule
// says on_full: error, when the write would make a new dirty row and the
// buffer is at its bound (the table's 2 × max_dirty rows not yet committed,
// or the connector's WithMaxBufferBytes). Nothing was written or buffered:
// the application may retry later, or write elsewhere.
var ErrBufferFull = errors.New("writeback: buffer is full")

// DefaultMaxBufferBytes is the default bound on the approximate memory held
// by the dirty rows of all a connector's back tables.
const DefaultMaxBufferBytes int64 = 256 << 20

// WithMaxBufferBytes bounds the approximate memory held by dirty rows not yet
// committed, across all back tables (default DefaultMaxBufferBytes). A write
// that would make a new row beyond it meets a full buffer and its table's
// on_full decides; a write coalesced into an existing row is always taken.
func WithMaxBufferBytes(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("writeback: WithMaxBufferBytes: %d is not positive", n)
		}
		c.maxBufferBytes = n
		return nil
	}
}

// pendingFactor sets a table's hard bound on rows not yet committed: max_dirty
// rows in the LRU plus as many again set aside (evicted, or put back after a
// failed flush) waiting for the database. Beyond max_dirty the LRU only
// hastens flushes; beyond this, writes that need a new row meet on_full.
const pendingFactor = 2

// maxPending is the table's bound on rows not yet committed.
func (t *tableState) maxPending() int64 { return pendingFactor * int64(t.rule.MaxDirty) }

// Approximate sizes of a dirty row, erring high: the row, its LRU entry and
// map slot, then per column its name, value slot and delta flag, then each
// value's payload.
const (
	rowOverhead = 256
	colOverhead = 48
)

// rowSize estimates a new row's memory from its key, columns and values.
func rowSize(r *dirtyRow) int64 {
	n := int64(rowOverhead) + int64(len(r.k.s))
	for _, v := range r.key {
		n += value.Size(v)
	}
	for i := range r.cols {
		n += colOverhead + value.Size(r.vals[i])
	}
	return n
}

// bufferBytes is the approximate memory of every table's rows not yet
// committed. A sum of per-table atomics: new rows only, never per write.
func (b *buffer) bufferBytes() int64 {
	var n int64
	for _, t := range b.ordered {
		n += t.bytes.Load()
	}
	return n
}

// admit decides whether n new rows of size bytes in all may be made. It
// runs under the rows' shard locks but never waits: the caller waits for
// what the outcome says, with no lock held. On buffered the rows are
// counted in pending and bytes; unadmit takes them back if the rows are
// not made after all.
//
// The row bound is exact (a reservation on pending); the byte bound is
// checked then added, so concurrent writers of different shards may pass it
// together by their rows' size: approximate, as documented.
func (t *tableState) admit(n int, size int64, now time.Time, throttle bool) bufferOutcome {
	if int64(n) > t.maxPending() || size > t.buf.maxBytes {
		return flushFirst // could never fit: write it through rather than wait forever
	}
	if throttle && t.behind(now, n) {
		return throttled
	}
	if t.pending.Add(int64(n)) > t.maxPending() {
		t.pending.Add(-int64(n))
		return full
	}
	if t.buf.bufferBytes()+size > t.buf.maxBytes {
		t.pending.Add(-int64(n))
		return full
	}
	t.bytes.Add(size)
	if t.oldest.Load() == 0 { // load first: a CAS would take the cache line on every new row
		t.oldest.CompareAndSwap(0, now.UnixNano())
	}
	return buffered
}

func (t *tableState) unadmit(n int, size int64) {
	t.pending.Add(-int64(n))
	t.bytes.Add(-size)
	t.buf.room.broadcast()
}

// behind reports whether the flusher, healthy, is falling behind the table's
// max_loss, so a writer about to make n new rows should wait for a flush
// first: the oldest row not yet committed is past max_loss, or will be by
// the time a flush of everything pending (at the last flush's cost per row)
// would commit it. While flushes fail it is false: the database is down,
// waiting would not help, and on_full bounds memory instead.
func (t *tableState) behind(now time.Time, n int) bool {
	if t.failing.Load() {
		return false
	}
	o := t.oldest.Load()
	if o == 0 {
		return false
	}
	age := time.Duration(now.UnixNano() - o)
	cost := time.Duration(t.pending.Load()+int64(n)) * time.Duration(t.rowCost.Load())
	return age+cost > t.rule.MaxLoss
}

// signal wakes every goroutine waiting for something to change: each wait
// gets the current channel, each broadcast closes it and the next wait makes
// a fresh one. A waiter takes the channel before it checks its condition, so
// a change between the check and the wait is never missed.
type signal struct {
	ch atomic.Pointer[chan struct{}]
}

func (s *signal) wait() <-chan struct{} {
	for {
		if p := s.ch.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if s.ch.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

func (s *signal) broadcast() {
	if p := s.ch.Swap(nil); p != nil {
		close(*p)
	}
}

// afterFlush runs on the flusher's goroutine when a flush of the table ends,
// committed or not. It learns the cost per row of this flush (for behind),
// recomputes the table's oldest row not yet committed under every shard
// lock, and records, logging once each way, when the table goes past its
// max_loss and when it is back within it.
func (t *tableState) afterFlush(tk taken, now time.Time) {
	if tk.rows > 0 && !t.failing.Load() {
		t.rowCost.Store(int64(now.Sub(tk.start)) / int64(tk.rows))
	}
	var oldest time.Time
	for _, s := range t.shards {
		s.mu.Lock()
	}
	for _, s := range t.shards {
		oldest = minNonZero(oldest, s.oldest)
		for _, ts := range s.inflight {
			oldest = minNonZero(oldest, ts.since)
		}
		for _, r := range s.retry {
			oldest = minNonZero(oldest, r.since)
		}
	}
	// Under every shard lock: a row made after this sees 0 and sets itself.
	if oldest.IsZero() {
		t.oldest.Store(0)
	} else {
		t.oldest.Store(oldest.UnixNano())
	}
	for _, s := range t.shards {
		s.mu.Unlock()
	}
	// Rows put back by a failed flush can take writes again: writers
	// waiting on a full buffer look again (once per flush, not a busy loop).
	t.buf.room.broadcast()
	over := !oldest.IsZero() && now.Sub(oldest) > t.rule.MaxLoss
	was := t.overdueSince.Load()
	log := t.buf.flusher.log
	switch {
	case over && was == 0:
		since := oldest.Add(t.rule.MaxLoss)
		t.overdueSince.Store(since.UnixNano())
		t.stats.violations.Add(1)
		if log != nil {
			log.Warn("writeback: max_loss exceeded: the oldest buffered row is older than the table's max_loss", "table", t.rule.Name, "max_loss", t.rule.MaxLoss, "age", now.Sub(oldest), "failing", t.failing.Load())
		}
	case !over && was != 0:
		t.overdueSince.Store(0)
		if log != nil {
			log.Info("writeback: back within max_loss", "table", t.rule.Name, "overdue_for", now.Sub(time.Unix(0, was)))
		}
	}
}
