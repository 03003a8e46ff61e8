package flush

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/writeback-go/writeback/internal/dirtyset"
)

// Table is one back table's flush worker.
type Table struct {
	f    *Flusher
	cfg  TableConfig
	set  *dirtyset.Table
	reqs chan *request
	kick chan struct{}
	done chan struct{} // closed when the worker has stopped

	// Only the worker's goroutine touches these.
	retryAt     time.Time
	failures    int
	flushCost   time.Duration // duration of the last flush, to start the next one early enough
	finalErr    error         // the final flush's last error (read after the worker stopped)
	lastAttempt time.Time     // when the last failed attempt ended
	keptAt      time.Time     // when a flush last set rows aside for a transaction's lock; zero when none are

	released atomic.Bool // LocksReleased was called: retry the kept rows now

	stats counters
}

// minRequestGap is the least time between two flush attempts that barriers
// or Flush ask of a failing table: at most two a second.
const minRequestGap = 500 * time.Millisecond

// UnavailableError is a barrier's or Flush's answer while the table's
// flushes fail and the last attempt was moments ago: the database is
// unavailable, and Err is why.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "writeback: database unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// request asks a worker to commit every row of its table that is dirty now.
type request struct{ done chan error }

// Kick wakes the table's worker without blocking; one pending kick is enough.
func (t *Table) Kick() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// LocksReleased tells the worker that a transaction holding rows of its
// table ended: the rows it kept are written at once.
func (t *Table) LocksReleased() {
	t.released.Store(true)
	t.Kick()
}

// errLockedByTx is why the final flush could not write rows it kept.
var errLockedByTx = errors.New("writeback: rows are locked by a transaction that is still open")

// keptRetry is how often rows kept for an open transaction are looked at
// again when no LocksReleased comes (the transaction's connection died).
const keptRetry = time.Second

// Name is the table's rule name.
func (t *Table) Name() string { return t.cfg.Name }

func (t *Table) run() {
	defer t.f.wg.Done()
	defer close(t.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var reqs []*request // requests waiting for the table's next attempt
	for {
		wake := t.nextWake(time.Now())
		if len(reqs) > 0 {
			wake = min(wake, time.Until(t.nextRequestAttempt()))
		}
		timer.Reset(max(wake, 0))
		select {
		case r := <-t.reqs:
			reqs = append(reqs, r)
		case <-t.kick:
		case <-timer.C:
		case <-t.f.stop:
			for _, r := range reqs {
				r.done <- ErrClosed
			}
			t.final()
			return
		}
		if released := t.released.Swap(false); !t.keptAt.IsZero() && (released || time.Since(t.keptAt) >= keptRetry) {
			t.keptAt = time.Time{}
			t.set.Unhold()
		}
		// Serve every request that is already waiting in the same round.
	drain:
		for {
			select {
			case r := <-t.reqs:
				reqs = append(reqs, r)
			default:
				break drain
			}
		}
		now := time.Now()
		if len(reqs) > 0 && now.Before(t.nextRequestAttempt()) {
			// The table's circuit: while its flushes fail, the requests of
			// barriers and Flush calls share the next attempt, at most two
			// a second, rather than each opening a connection (an outage
			// under on_full: through would otherwise try hundreds a second).
			_ = t.round(now, false)
			continue
		}
		err := t.round(now, len(reqs) > 0)
		for _, r := range reqs {
			r.done <- err
		}
		reqs = nil
	}
}

// nextRequestAttempt is when a requested flush may next be tried: at once
// while the table's flushes succeed, minRequestGap after the last failed
// attempt while they fail.
func (t *Table) nextRequestAttempt() time.Time {
	if t.failures == 0 {
		return time.Time{}
	}
	return t.lastAttempt.Add(minRequestGap)
}

// deadline is when the table's flush must start for its oldest row to be
// committed within max_loss: early by the last flush's cost (twice, for
// safety) and at least a tenth of max_loss.
func (t *Table) deadline(oldest time.Time) time.Time {
	ml := t.cfg.MaxLoss
	lead := max(ml/10, 2*t.flushCost)
	lead = min(lead, ml/2)
	return oldest.Add(ml - lead)
}

// nextWake is how long the worker may sleep before its table is due.
func (t *Table) nextWake(now time.Time) time.Duration {
	d := t.set.Dirty()
	var wake time.Time
	switch {
	case d.N == 0 && !t.keptAt.IsZero():
		wake = t.keptAt.Add(keptRetry) // look at the kept rows again
	case d.N == 0:
		return time.Hour
	case d.Retry > 0 && t.retryAt.After(now):
		wake = t.retryAt
	case d.Evicted > 0 || d.Retry > 0:
		return 0
	default:
		wake = t.deadline(d.Oldest)
	}
	if !t.keptAt.IsZero() && t.keptAt.Add(keptRetry).Before(wake) {
		wake = t.keptAt.Add(keptRetry)
	}
	return max(wake.Sub(now), 0)
}

// round flushes the table when it is requested, due, or has evicted rows.
func (t *Table) round(now time.Time, requested bool) error {
	d := t.set.Dirty()
	if d.N == 0 {
		return nil
	}
	backingOff := d.Retry > 0 && t.retryAt.After(now)
	due := !d.Oldest.IsZero() && !now.Before(t.deadline(d.Oldest))
	switch {
	case requested && t.failures > 0:
		if err := t.flush(true); err != nil {
			return &UnavailableError{Err: err}
		}
		return nil
	case requested:
		return t.flush(true)
	case backingOff:
	case due:
		return t.flush(true)
	case d.Evicted > 0 || d.Retry > 0:
		return t.flush(false)
	}
	return nil
}

// final flushes everything at Close, retrying transient failures until the
// close timeout.
func (t *Table) final() {
	if t.f.abandoned() {
		return
	}
	ctx := t.f.ctx
	for {
		if !t.keptAt.IsZero() {
			t.keptAt = time.Time{}
			t.set.Unhold()
		}
		err := t.flush(true)
		if t.set.Pending() == 0 {
			return
		}
		if err == nil && t.keptAt.IsZero() {
			continue
		}
		if err == nil {
			err = errLockedByTx
		}
		t.finalErr = err
		if ctx.Err() != nil {
			return
		}
		pause := time.NewTimer(250 * time.Millisecond)
		select {
		case <-pause.C:
		case <-ctx.Done():
			pause.Stop()
			return
		}
	}
}

// flush writes the table's rows that are due. A full flush (all) writes
// everything the table has, its earlier failures first, in one transaction
// that also advances the journal checkpoint; otherwise only the retry and
// evicted rows are written.
func (t *Table) flush(all bool) error {
	if gate := t.f.cfg.Gate; gate != nil {
		ctx, cancel := context.WithTimeout(t.f.ctx, AttemptTimeout)
		err := gate(ctx)
		cancel()
		if err != nil {
			t.noteFailure(err)
			return err
		}
	}
	b := t.set.Take(all)
	if len(b.Rows) == 0 {
		if t.failures > 0 && t.set.Pending() == 0 {
			t.noteSuccess() // nothing left to retry: the table is no longer failing
		}
		return nil // nothing was taken: nothing to release
	}
	defer b.Release()
	// Key order makes flushes deterministic and takes row locks in one order.
	// Rows of one key (an earlier failure and a newer row) stay in the
	// order they were made. leaveLocked keeps the order.
	b.Sort()
	rows := t.leaveLocked(b)
	if len(rows) == 0 {
		return nil
	}
	if j := t.f.cfg.Journal; j != nil && b.SyncTo > 0 {
		// Rows of a committed transaction's group: the database must not
		// hold part of a group whose records a power loss could take.
		ctx, cancel := context.WithTimeout(t.f.ctx, AttemptTimeout)
		err := j.Sync(ctx, b.SyncTo)
		cancel()
		if err != nil {
			b.Fail(rows)
			t.noteFailure(err)
			return err
		}
	}
	start := time.Now()
	// Rows left behind are not committed: the checkpoint cannot say that
	// everything up to the take is applied, only these rows.
	full := all && len(rows) == len(b.Rows)
	mark := markOf(t.cfg.Name, full, b.UpTo)
	if err := t.writeRows(b, rows, mark); err != nil {
		t.noteFailure(err)
		return err
	}
	if full && b.UpTo > 0 {
		t.set.RaiseApplied(b.UpTo)
	}
	t.flushCost = time.Since(start)
	t.noteSuccess()
	return nil
}

// leaveLocked puts back the batch's rows that an open transaction holds
// locked (Locks) and returns the others. A flush never waits for such a
// row: the transaction may be waiting for the flush (a barrier), and
// directly the write it carries would still be waiting for the lock.
func (t *Table) leaveLocked(b *dirtyset.Batch) []*dirtyset.Row {
	locks := t.cfg.Locks
	if locks == nil || !locks.Any() {
		return b.Rows
	}
	var write, keep []*dirtyset.Row
	for _, r := range b.Rows {
		if locks.Held(r.ID()) {
			keep = append(keep, r)
		} else {
			write = append(write, r)
		}
	}
	if len(keep) > 0 {
		if t.keptAt.IsZero() {
			t.keptAt = time.Now()
		}
		b.Keep(keep)
	}
	return write
}

// noteFailure schedules the table's retry with capped exponential backoff and
// jitter. Every error that reaches it is transient (writeRows dead-letters
// permanent ones), so each call is one more retry.
func (t *Table) noteFailure(err error) {
	t.failures++
	t.lastAttempt = time.Now()
	back := min(5*time.Second, 20*time.Millisecond<<min(t.failures, 10))
	back = back/2 + rand.N(back/2+1)
	t.retryAt = time.Now().Add(back)
	t.f.noteFailure(t, err, t.failures == 1)
}

// noteSuccess clears the table's failure.
func (t *Table) noteSuccess() {
	if t.failures == 0 {
		return
	}
	t.failures = 0
	t.retryAt = time.Time{}
	t.f.noteRecovered(t)
}
