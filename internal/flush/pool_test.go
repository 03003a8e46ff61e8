package flush

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

func newPool(t *testing.T, db *fakeDB, max int) *pool {
	return &pool{connector: db.connector(), dia: genericDialect(t), max: max}
}

// waitQueued waits until n goroutines wait in p for a connection. The pool
// has no hook to signal it; this looks at its queue under its lock.
func waitQueued(t *testing.T, p *pool, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		got := len(p.waiters)
		p.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters queued, want %d", got, n)
		}
		runtime.Gosched()
	}
}

func TestPoolServesByPriorityThenArrival(t *testing.T) {
	cases := []struct {
		name  string
		prios []int // in arrival order
		want  []int // indices in the order served
	}{
		{"priorities", []int{0, 10, 5}, []int{1, 2, 0}},
		{"ties in arrival order", []int{0, 0, 0}, []int{0, 1, 2}},
		{"mixed", []int{1, 3, 1, 3}, []int{1, 3, 0, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := &fakeDB{}
			p := newPool(t, db, 1)
			ctx := context.Background()
			held, err := p.get(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan int)
			var wg sync.WaitGroup
			for i, prio := range c.prios {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pc, err := p.get(ctx, prio)
					if err != nil {
						t.Errorf("waiter %d: %v", i, err)
						got <- -1
						return
					}
					got <- i // unbuffered: the order received is the order served
					p.put(pc)
				}()
				waitQueued(t, p, i+1) // one at a time: arrival order is known
			}
			p.put(held)
			var order []int
			for range c.prios {
				order = append(order, <-got)
			}
			if !slices.Equal(order, c.want) {
				t.Errorf("served %v, want %v (priorities %v)", order, c.want, c.prios)
			}
			if n := db.connects(); n != 1 {
				t.Errorf("%d connections opened with max 1", n)
			}
			wg.Wait() // the last one has put the connection back
			p.close()
			if !db.conn(0).closed.Load() {
				t.Error("close left the idle connection open")
			}
		})
	}
}

func TestPoolGetRespectsCancellation(t *testing.T) {
	db := &fakeDB{}
	p := newPool(t, db, 1)
	held, err := p.get(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := p.get(ctx, 100)
		errc <- err
	}()
	waitQueued(t, p, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("get returned %v after its context was cancelled, want context.Canceled", err)
	}
	waitQueued(t, p, 0) // it left the queue
	// Already cancelled: no wait at all.
	if _, err := p.get(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("get with a cancelled context: %v", err)
	}
	waitQueued(t, p, 0)
	// The connection goes back and is reused, not reopened.
	p.put(held)
	pc, err := p.get(context.Background(), 0)
	if err != nil || pc != held {
		t.Fatalf("get after put: %v (same connection %v)", err, pc == held)
	}
	if n := db.connects(); n != 1 {
		t.Errorf("%d connections opened, want 1", n)
	}
	p.put(pc)
	p.close()
}

func TestPoolDiscardFreesASlot(t *testing.T) {
	db := &fakeDB{}
	p := newPool(t, db, 1)
	held, err := p.get(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		pc  *pconn
		err error
	}
	res := make(chan result)
	go func() {
		pc, err := p.get(context.Background(), 0)
		res <- result{pc, err}
	}()
	waitQueued(t, p, 1)
	p.discard(held)
	if !db.conn(0).closed.Load() {
		t.Error("discard did not close the connection")
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("waiter after discard: %v", r.err)
	}
	if r.pc == held || r.pc.conn != db.conn(1) {
		t.Error("the waiter did not get a new connection")
	}
	p.mu.Lock()
	open := p.open
	p.mu.Unlock()
	if open != 1 {
		t.Errorf("open = %d, want 1", open)
	}
	p.discard(r.pc)
	// Both slots are free again: a fresh get connects.
	pc, err := p.get(context.Background(), 0)
	if err != nil || db.connects() != 3 {
		t.Fatalf("get after discarding everything: %v, %d connects", err, db.connects())
	}
	p.put(pc)
	p.close()
}

func TestPoolConnectFailure(t *testing.T) {
	refused := errors.New("connection refused")
	db := &fakeDB{connectErr: refused}
	p := newPool(t, db, 1)
	_, err := p.get(context.Background(), 0)
	var cf *connectFailure
	if !errors.As(err, &cf) || !errors.Is(err, refused) {
		t.Fatalf("get: %v, want a connectFailure wrapping the connector's error", err)
	}
	if !isTransient(err) {
		t.Error("a connect failure is not transient")
	}
	// The failed attempt gave its slot back.
	db.mu.Lock()
	db.connectErr = nil
	db.mu.Unlock()
	pc, err := p.get(context.Background(), 0)
	if err != nil {
		t.Fatalf("get after the database came back: %v", err)
	}
	p.put(pc)
	p.close()
}

func TestPoolPutAfterCloseClosesTheConnection(t *testing.T) {
	db := &fakeDB{}
	p := newPool(t, db, 2)
	a, _ := p.get(context.Background(), 0)
	b, _ := p.get(context.Background(), 0)
	p.put(a)
	p.close()
	if !db.conn(0).closed.Load() {
		t.Error("close left an idle connection open")
	}
	if db.conn(1).closed.Load() {
		t.Error("close closed a connection in use")
	}
	p.put(b)
	if !db.conn(1).closed.Load() {
		t.Error("a connection put back after close stayed open")
	}
	p.mu.Lock()
	open, idle := p.open, len(p.idle)
	p.mu.Unlock()
	if open != 0 || idle != 0 {
		t.Errorf("after close: open %d idle %d, want 0 0", open, idle)
	}
}

// TestPoolWakeupNotLostOnCancel: a waiter woken while its context ends
// passes its turn on; the next waiter does not sleep beside a free
// connection.
func TestPoolWakeupNotLostOnCancel(t *testing.T) {
	bg := context.Background()
	lost := 0
	for i := 0; i < 300; i++ {
		p := newPool(t, &fakeDB{}, 1)
		held, err := p.get(bg, 0)
		if err != nil {
			t.Fatal(err)
		}
		ctxA, cancelA := context.WithCancel(bg)
		aDone := make(chan error)
		go func() {
			pc, err := p.get(ctxA, 10)
			if err == nil {
				p.put(pc)
			}
			aDone <- err
		}()
		waitQueued(t, p, 1)
		bDone := make(chan *pconn)
		go func() { pc, _ := p.get(bg, 0); bDone <- pc }()
		waitQueued(t, p, 2)
		cancelA()
		p.put(held) // wakes A, the higher priority
		<-aDone
		p.mu.Lock()
		if len(p.idle) == 1 && len(p.waiters) == 1 { // B asleep beside an idle connection
			lost++
			p.wakeLocked()
		}
		p.mu.Unlock()
		p.put(<-bDone)
		p.close()
	}
	if lost > 0 {
		t.Errorf("%d of 300 runs: a waiter left queued beside an idle connection", lost)
	}
}
