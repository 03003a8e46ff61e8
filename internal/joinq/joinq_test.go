package joinq

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// join runs one request as a driver would: join, and when handed the lead,
// answer the batch with each request's value doubled, recording the batch.
func join(ctx context.Context, q *Queue[*int], w *Waiter[*int], batches chan<- []int) error {
	lead, err := q.Join(ctx, w, 1)
	if err != nil || !lead {
		return err
	}
	batch := q.Take(w, 3)
	if batch == nil {
		w.Wait()
		return nil
	}
	var vals []int
	for _, o := range batch {
		vals = append(vals, *o.Req)
		*o.Req *= 2
	}
	batches <- vals
	q.Finish(batch)
	return nil
}

// waitQueued waits until n requests are queued.
func waitQueued[T any](q *Queue[T], n int) {
	for q.Len() < n {
		runtime.Gosched()
	}
}

// TestBatches: with the one slot taken, requests queue; when it frees, the
// first queued leads a batch of up to max in arrival order, and the rest
// follow in the next batch.
func TestBatches(t *testing.T) {
	var q Queue[*int]
	q.Occupy(1)
	batches := make(chan []int, 10)
	var wg sync.WaitGroup
	reqs := make([]*int, 5)
	for i := range reqs {
		v := i + 1
		reqs[i] = &v
		w := NewWaiter(reqs[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := join(context.Background(), &q, w, batches); err != nil {
				t.Error(err)
			}
		}()
		waitQueued(&q, i+1) // arrival order is the loop's
	}
	q.Release(1)
	wg.Wait()
	close(batches)
	var got [][]int
	for b := range batches {
		got = append(got, b)
	}
	if len(got) != 2 || len(got[0]) != 3 || len(got[1]) != 2 || got[0][0] != 1 || got[1][0] != 4 {
		t.Fatalf("batches %v, want [[1 2 3] [4 5]]", got)
	}
	for i, r := range reqs {
		if *r != 2*(i+1) {
			t.Errorf("request %d answered %d, want %d", i+1, *r, 2*(i+1))
		}
	}
	if q.Len() != 0 {
		t.Fatalf("%d requests left queued", q.Len())
	}
	// The slot is free again: a request leads at once, alone.
	v := 7
	if lead, err := q.Join(context.Background(), NewWaiter(&v), 1); !lead || err != nil {
		t.Fatalf("Join on a free queue: lead %v, %v", lead, err)
	}
}

// TestCancelWhileQueued: a request whose context ends while it waits leaves
// the queue with the context's error and is never answered.
func TestCancelWhileQueued(t *testing.T) {
	var q Queue[*int]
	q.Occupy(1)
	ctx, cancel := context.WithCancel(context.Background())
	v := 1
	w := NewWaiter(&v)
	errc := make(chan error, 1)
	go func() {
		_, err := q.Join(ctx, w, 1)
		errc <- err
	}()
	waitQueued(&q, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Join: %v, want context.Canceled", err)
	}
	if q.Len() != 0 {
		t.Fatal("a canceled request stayed queued")
	}
	q.Release(1) // nobody queued: the slot is freed
	if lead, _ := q.Join(context.Background(), NewWaiter(&v), 1); !lead {
		t.Fatal("the slot was not freed")
	}
}

// TestLeadTakenByAnother: a request handed the lead after another leader's
// batch took it passes the lead on and waits for its answer.
func TestLeadTakenByAnother(t *testing.T) {
	var q Queue[*int]
	a, b := 1, 2
	wa, wb := NewWaiter(&a), NewWaiter(&b)
	if lead, _ := q.Join(context.Background(), wa, 2); !lead {
		t.Fatal("first request did not lead")
	}
	if lead, _ := q.Join(context.Background(), wb, 2); !lead {
		t.Fatal("second request did not lead (two slots)")
	}
	batch := q.Take(wa, 10) // a's batch takes b too
	if len(batch) != 2 {
		t.Fatalf("batch of %d, want 2", len(batch))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if q.Take(wb, 10) != nil { // b finds itself taken: passes the lead, waits
			t.Error("b took a batch it was already in")
		}
		wb.Wait()
	}()
	q.Finish(batch)
	<-done
	// Both slots are free again.
	for range 2 {
		if lead, _ := q.Join(context.Background(), NewWaiter(&a), 2); !lead {
			t.Fatal("slots not freed")
		}
	}
}
