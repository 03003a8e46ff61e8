// Package joinq joins concurrent requests into batches, the way concurrent
// fsyncs share one in a group commit: a request that finds a free slot
// leads at once, alone; the others queue, and when a batch in flight ends
// its leader hands the lead to the first queued request, which takes the
// queue as its batch.
//
// The driver uses it to ask the database one query for many writers' cold
// keys. The queue holds no lock while a batch runs; what a batch does, and
// with which connection, is the leader's business.
package joinq

import (
	"context"
	"slices"
	"sync"
)

// Queue is one kind of request's queue. The zero Queue is ready to use.
type Queue[T any] struct {
	mu      sync.Mutex
	running int          // batches in flight
	waiting []*Waiter[T] // requests not yet taken into a batch, in arrival order
}

// Waiter is one request in a queue.
type Waiter[T any] struct {
	Req  T
	done chan struct{} // closed by Finish
	lead chan struct{} // closed when this request is to lead the next batch
}

// NewWaiter returns a request ready to join a queue.
func NewWaiter[T any](req T) *Waiter[T] {
	return &Waiter[T]{Req: req, done: make(chan struct{}), lead: make(chan struct{})}
}

// Join queues w and waits until it is answered (lead false: a batch led by
// another request took it, and Finish was called) or is to lead a batch
// (lead true: call Take, run the batch, and Finish it). At most maxRunning
// batches are in flight at once.
//
// If ctx ends while w is queued and neither taken nor handed the lead, w
// leaves the queue and Join returns ctx's error. Once taken, or once handed
// the lead, it is seen through: the requests behind it depend on it.
func (q *Queue[T]) Join(ctx context.Context, w *Waiter[T], maxRunning int) (lead bool, err error) {
	q.mu.Lock()
	q.waiting = append(q.waiting, w)
	if q.running < maxRunning {
		q.running++
		close(w.lead)
	}
	q.mu.Unlock()
	select {
	case <-w.done:
		return false, nil
	case <-w.lead:
		return true, nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if i := slices.Index(q.waiting, w); i >= 0 && !isClosed(w.lead) {
		q.waiting = slices.Delete(q.waiting, i, i+1)
		q.mu.Unlock()
		return false, ctx.Err()
	}
	q.mu.Unlock()
	select {
	case <-w.done:
		return false, nil
	case <-w.lead:
		return true, nil
	}
}

// Take removes from the queue and returns the batch w leads: w first, then
// up to max-1 queued requests in arrival order (those handed a lead of
// their own find themselves taken, and pass it on). It returns nil when
// another leader's batch took w already: Take then passes the lead on, and
// w is answered when that batch finishes (Wait).
func (q *Queue[T]) Take(w *Waiter[T], max int) []*Waiter[T] {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.waiting, w)
	if i < 0 {
		q.passLeadLocked()
		return nil
	}
	q.waiting = slices.Delete(q.waiting, i, i+1)
	n := min(len(q.waiting), max-1)
	batch := append([]*Waiter[T]{w}, q.waiting[:n]...)
	q.waiting = slices.Delete(q.waiting, 0, n)
	return batch
}

// Finish marks every request of a batch answered (the leader set their
// results first) and hands the lead to the first queued request that has
// none, or frees the batch's slot.
func (q *Queue[T]) Finish(batch []*Waiter[T]) {
	for _, w := range batch {
		close(w.done)
	}
	q.mu.Lock()
	q.passLeadLocked()
	q.mu.Unlock()
}

// Wait waits until w is answered.
func (w *Waiter[T]) Wait() { <-w.done }

// passLeadLocked hands the lead a batch held to the first queued request
// without one, or frees the slot.
func (q *Queue[T]) passLeadLocked() {
	for _, w := range q.waiting {
		if !isClosed(w.lead) {
			close(w.lead)
			return
		}
	}
	q.running--
}

// Len returns how many requests are queued, not yet taken into a batch.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting)
}

// Occupy marks n more batches in flight, as if other requests led them, and
// Release ends n of them: tests use it to make requests queue.
func (q *Queue[T]) Occupy(n int) {
	q.mu.Lock()
	q.running += n
	q.mu.Unlock()
}

// Release ends n batches in flight: each hands the lead to a queued request
// or frees its slot.
func (q *Queue[T]) Release(n int) {
	q.mu.Lock()
	for range n {
		q.passLeadLocked()
	}
	q.mu.Unlock()
}

// isClosed reports whether ch is closed.
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
