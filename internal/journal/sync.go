package journal

// This file is the durability half of the journal: waiting for records to
// be fsynced, the syncer goroutine, and the lag it measures.

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// WaitDurable returns once record lsn is durable according to the policy:
//   - Always: when an fsync covering lsn has completed. Concurrent waiters
//     share fsyncs: while one fsync runs, later waiters queue for the next,
//     which covers all of them.
//   - Everysec: at once, unless the oldest unsynced record is older than
//     MaxLag; then it waits for an fsync covering lsn. A nil return thus
//     means "within the loss window", not "on disk".
//   - No: at once.
//
// It returns early with ctx's error, or with the Journal's error if an fsync
// fails.
func (j *Journal) WaitDurable(ctx context.Context, lsn uint64) error {
	return j.waitDurable(ctx, lsn, false)
}

// Sync returns once lsn is fsynced, whatever the policy: it is what an
// acknowledgment "on disk" needs. Under Always and Everysec it shares the
// background syncer's fsyncs (group commit); under No it fsyncs itself.
func (j *Journal) Sync(ctx context.Context, lsn uint64) error {
	if j.opts.Fsync == No {
		if err := ctx.Err(); err != nil {
			return err
		}
		j.mu.Lock()
		done := j.durable >= lsn
		j.mu.Unlock()
		if done {
			return nil
		}
		return j.syncNow()
	}
	return j.waitDurable(ctx, lsn, true)
}

func (j *Journal) waitDurable(ctx context.Context, lsn uint64, force bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if lsn > j.lastLSN {
		return fmt.Errorf("journal: WaitDurable(%d): beyond the last LSN %d", lsn, j.lastLSN)
	}
	if j.durable >= lsn {
		return nil
	}
	if j.err != nil {
		return j.err
	}
	switch {
	case force:
	case j.opts.Fsync == No:
		return nil
	case j.opts.Fsync == Everysec:
		if j.lagLocked() <= j.opts.MaxLag {
			return nil
		}
	}
	for j.durable < lsn {
		if err := j.awaitSyncLocked(ctx); err != nil {
			return err
		}
	}
	return nil
}

// awaitSyncLocked kicks the syncer and waits, without mu, for the next
// fsync to end (or fail), or for ctx to end. mu is held on entry and on
// return.
func (j *Journal) awaitSyncLocked(ctx context.Context) error {
	if err := j.usableLocked(); err != nil {
		return err
	}
	ch := j.syncedCh
	j.kickSyncer()
	j.mu.Unlock()
	defer j.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncLoop is the background syncer: on a kick (Always, or a lagging
// Everysec writer) or a tick (Everysec) it fsyncs everything written so
// far. Being the only place that fsyncs the active file outside a roll is
// what makes group commit work: waiters arriving during an fsync are all
// covered by the next one.
func (j *Journal) syncLoop() {
	defer close(j.done)
	var tick <-chan time.Time
	if j.opts.Fsync == Everysec {
		t := time.NewTicker(j.opts.syncEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-j.stop:
			return
		case <-j.kick:
			j.gather()
		case <-tick:
		}
		_ = j.syncNow() // a failure is recorded in j.err and wakes waiters
	}
}

// gather lets writers that are about to append do so before an Always fsync
// starts, so that it covers them too. Writers woken by the previous fsync
// append again within microseconds; without this pause the next fsync would
// start at once with only the first of them, and the others would wait for
// a second fsync (measured on 2 CPUs, 8 writers: about 1.7x more
// acknowledged writes per second). It yields the processor while appends
// keep arriving, a few dozen times at most: no timer, no fixed delay.
func (j *Journal) gather() {
	if j.opts.Fsync != Always {
		return
	}
	prev := j.LastLSN()
	for i := 0; i < 64; i++ {
		runtime.Gosched()
		cur := j.LastLSN()
		if cur == prev && i >= 8 {
			return
		}
		prev = cur
	}
}

// syncNow fsyncs the active segment, covering every record appended before
// it started, and advances the durable LSN.
func (j *Journal) syncNow() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	if j.err != nil {
		defer j.mu.Unlock()
		return j.err
	}
	target, f := j.lastLSN, j.active
	if target <= j.durable {
		j.mu.Unlock()
		return nil
	}
	j.syncing = true
	j.mu.Unlock()

	err := j.fault("before-sync")
	start := time.Now()
	if err == nil {
		err = dataSync(f)
	}
	took := time.Since(start)

	j.mu.Lock()
	defer j.mu.Unlock()
	j.syncing = false
	for _, r := range j.retired {
		r.Close()
	}
	j.retired = nil
	if err != nil {
		return j.failLocked(fmt.Errorf("fsync: %w", err))
	}
	j.noteSyncLocked(target, took)
	return nil
}

// noteSyncLocked records a completed data fsync covering up to lsn.
func (j *Journal) noteSyncLocked(lsn uint64, took time.Duration) {
	j.syncs++
	j.syncLast = took
	j.syncSum += took
	if lsn > j.durable {
		j.durable = lsn
	}
	j.lag.trim(j.durable, j.lastLSN)
	j.broadcastLocked()
}

// lagQueue remembers when unsynced records were appended, at millisecond
// granularity, so that the age of the oldest unsynced record is known even
// when an fsync covers only part of what is unsynced (appends continue
// during an fsync).
type lagQueue struct {
	marks []lagMark
	head  int
}

// lagMark says records from lsn on were appended at or after at.
type lagMark struct {
	lsn uint64
	at  time.Time
}

// push notes that record lsn was appended at at. (Under policy No only the
// oldest mark is kept, as nothing syncs part of the backlog: the append
// pushes only into an empty queue.)
func (q *lagQueue) push(lsn uint64, at time.Time) {
	if q.head < len(q.marks) && at.Sub(q.marks[len(q.marks)-1].at) < lagGranularity {
		return
	}
	q.marks = append(q.marks, lagMark{lsn: lsn, at: at})
}

// empty reports whether no record is waiting for an fsync.
func (q *lagQueue) empty() bool { return q.head >= len(q.marks) }

// trim forgets marks of records that are durable now.
func (q *lagQueue) trim(durable, last uint64) {
	if durable >= last {
		q.marks, q.head = q.marks[:0], 0
		return
	}
	// Keep the newest mark at or before the oldest unsynced record.
	for q.head+1 < len(q.marks) && q.marks[q.head+1].lsn <= durable+1 {
		q.head++
	}
	if q.head >= 1024 && q.head*2 >= len(q.marks) {
		q.marks = append(q.marks[:0], q.marks[q.head:]...)
		q.head = 0
	}
}

func (q *lagQueue) oldest() (time.Time, bool) {
	if q.head >= len(q.marks) {
		return time.Time{}, false
	}
	return q.marks[q.head].at, true
}

// coarseClock is the lag's clock under Everysec, where every append reads
// it: a goroutine stores the monotonic time every coarseTick, and a reading
// is an atomic load instead of a clock read (about 46 ns on a machine where
// an append takes about 500). A reading is late by at most the tick plus
// the goroutine's scheduling delay, and the marks and the lag are read from
// the same clock, so a lag is off by at most that much either way: a few
// milliseconds, against a MaxLag of a second.
type coarseClock struct {
	epoch time.Time
	since atomic.Int64 // nanoseconds from epoch at the last tick
	stop  chan struct{}
	done  chan struct{}
}

// coarseTick is how often a coarseClock moves.
const coarseTick = 5 * time.Millisecond

func startCoarseClock() *coarseClock {
	c := &coarseClock{epoch: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *coarseClock) run() {
	defer close(c.done)
	t := time.NewTicker(coarseTick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.since.Store(int64(time.Since(c.epoch)))
		}
	}
}

// now is the time of the last tick.
func (c *coarseClock) now() time.Time { return c.epoch.Add(time.Duration(c.since.Load())) }

// close stops the goroutine.
func (c *coarseClock) close() {
	close(c.stop)
	<-c.done
}
