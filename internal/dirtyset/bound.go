package dirtyset

import (
	"sync/atomic"
	"time"
)

// pendingFactor sets a table's hard bound on rows not yet committed: max_dirty
// rows in the LRU plus as many again set aside (evicted, or put back after a
// failed flush) waiting for the database. Beyond max_dirty the LRU only
// hastens flushes; beyond this, writes that need a new row meet on_full.
const pendingFactor = 2

// maxPending is the table's bound on rows not yet committed.
func (t *Table) maxPending() int64 { return pendingFactor * int64(t.cfg.MaxDirty) }

// Admission says which bounds a write is subject to.
type Admission uint8

const (
	// AdmitThrottled: a write that needs a new row while the flush is
	// behind max_loss comes back Throttled, and the bounds apply.
	AdmitThrottled Admission = iota
	// AdmitNow: the bounds apply, without throttling.
	AdmitNow
	// admitForce: neither; for the members of a group admitted whole
	// (group.go), which must not wait with shard locks held.
	admitForce
)

// admissionOf is the Admission of the throttle flag of Update and Insert.
func admissionOf(throttle bool) Admission {
	if throttle {
		return AdmitThrottled
	}
	return AdmitNow
}

// admit decides whether n new rows of size bytes in all may be made. It
// runs under the rows' shard locks but never waits: the caller waits for
// what the outcome says, with no lock held. On Buffered the rows are
// counted in pending and bytes; unadmit takes them back if the rows are
// not made after all.
//
// The row bound is exact (a reservation on pending); the byte bound is
// checked then added, so concurrent writers of different shards may pass it
// together by their rows' size: approximate, as documented.
func (t *Table) admit(n int, size int64, now time.Time, adm Admission) Outcome {
	if adm == admitForce {
		// A group's member (group.go): its group was let in as a whole.
		t.pending.Add(int64(n))
		t.bytes.Add(size)
		if t.oldest.Load() == 0 {
			t.oldest.CompareAndSwap(0, now.UnixNano())
		}
		return Buffered
	}
	if int64(n) > t.maxPending() || size > t.shared.maxBytes {
		return FlushFirst // could never fit: write it through rather than wait forever
	}
	if adm == AdmitThrottled && t.behind(now, n) {
		return Throttled
	}
	if t.pending.Add(int64(n)) > t.maxPending() {
		t.pending.Add(-int64(n))
		return Full
	}
	if t.shared.Bytes()+size > t.shared.maxBytes {
		t.pending.Add(-int64(n))
		return Full
	}
	t.bytes.Add(size)
	if t.oldest.Load() == 0 { // load first: a CAS would take the cache line on every new row
		t.oldest.CompareAndSwap(0, now.UnixNano())
	}
	return Buffered
}

func (t *Table) unadmit(n int, size int64) {
	t.pending.Add(-int64(n))
	t.bytes.Add(-size)
	t.shared.room.broadcast()
}

// behind reports whether the flush, healthy, is falling behind the table's
// max_loss, so a writer about to make n new rows should wait for a flush
// first: the oldest row not yet committed is past max_loss, or will be by
// the time a flush of everything pending (at the last flush's cost per row)
// would commit it. While flushes fail it is false: the database is down,
// waiting would not help, and on_full bounds memory instead.
func (t *Table) behind(now time.Time, n int) bool {
	if t.failing.Load() {
		return false
	}
	o := t.oldest.Load()
	if o == 0 {
		return false
	}
	age := time.Duration(now.UnixNano() - o)
	cost := time.Duration(t.pending.Load()+int64(n)) * time.Duration(t.rowCost.Load())
	return age+cost > t.cfg.MaxLoss
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
