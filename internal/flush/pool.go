package flush

import (
	"context"
	"database/sql/driver"
	"io"
	"sync"

	"github.com/writeback-go/writeback/internal/dialect"
)

// pconn is one flush connection and the dialect's writer for it (which may
// cache what it learned of the tables, per connection).
type pconn struct {
	conn   driver.Conn
	writer dialect.Writer
	epoch  uint64 // the pool's schema epoch the writer was made in
}

// pool holds the flush workers' connections to the base database: at most
// max open at once. When none is free, waiters are served by priority, then
// in arrival order, so a high-priority table gets the next connection.
type pool struct {
	connector driver.Connector
	dia       dialect.Dialect
	max       int

	mu      sync.Mutex
	open    int
	idle    []*pconn
	waiters []*waiter
	seq     uint64
	closed  bool
	epoch   uint64 // raised when the schema changed: writers' caches are stale
}

type waiter struct {
	prio int
	seq  uint64
	ch   chan struct{} // closed when a connection may be had: try again
}

// get returns an idle connection, or opens one while fewer than max are
// open, or waits its turn. Connecting is done without the lock.
func (p *pool) get(ctx context.Context, prio int) (*pconn, error) {
	for {
		p.mu.Lock()
		if n := len(p.idle); n > 0 {
			pc := p.idle[n-1]
			p.idle = p.idle[:n-1]
			if !connValid(pc.conn) { // the server went away while it was idle
				p.open--
				p.mu.Unlock()
				_ = pc.conn.Close()
				continue
			}
			var old dialect.Writer
			if pc.epoch != p.epoch {
				old = pc.writer
				pc.writer, pc.epoch = p.dia.NewWriter(pc.conn), p.epoch
			}
			p.mu.Unlock()
			closeWriter(old) // outside the lock: it may talk to the database
			return pc, nil
		}
		if p.open < p.max {
			p.open++
			epoch := p.epoch
			p.mu.Unlock()
			conn, err := p.connector.Connect(ctx)
			if err != nil {
				p.release()
				return nil, &connectFailure{err}
			}
			return &pconn{conn: conn, writer: p.dia.NewWriter(conn), epoch: epoch}, nil
		}
		p.seq++
		w := &waiter{prio: prio, seq: p.seq, ch: make(chan struct{})}
		p.waiters = append(p.waiters, w)
		p.mu.Unlock()
		select {
		case <-w.ch:
		case <-ctx.Done():
			p.mu.Lock()
			if !p.removeWaiter(w) {
				// Woken as the context ended: pass the turn on, or the
				// next waiter sleeps beside a free connection.
				p.wakeLocked()
			}
			p.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

// schemaChanged makes every connection's writer start afresh: what a
// writer cached of the tables (PostgreSQL's column types) may be stale.
func (p *pool) schemaChanged() {
	p.mu.Lock()
	p.epoch++
	p.mu.Unlock()
}

// put gives a connection back for the next flush.
func (p *pool) put(pc *pconn) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = pc.conn.Close()
		p.release()
		return
	}
	p.idle = append(p.idle, pc)
	p.wakeLocked()
	p.mu.Unlock()
}

// discard closes a broken connection; its place goes to the next waiter.
func (p *pool) discard(pc *pconn) {
	_ = pc.conn.Close()
	p.release()
}

func (p *pool) release() {
	p.mu.Lock()
	p.open--
	p.wakeLocked()
	p.mu.Unlock()
}

// wakeLocked wakes the waiter that goes first: highest priority, then oldest.
func (p *pool) wakeLocked() {
	if len(p.waiters) == 0 {
		return
	}
	best := 0
	for i, w := range p.waiters {
		b := p.waiters[best]
		if w.prio > b.prio || w.prio == b.prio && w.seq < b.seq {
			best = i
		}
	}
	w := p.waiters[best]
	p.removeWaiter(w)
	close(w.ch)
}

// removeWaiter takes w off the queue; false when it was no longer queued
// (already woken).
func (p *pool) removeWaiter(w *waiter) bool {
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// close closes the idle connections; those in use are closed when put back.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	p.mu.Unlock()
	for _, pc := range idle {
		_ = pc.conn.Close()
	}
}

// closeWriter releases what a replaced writer holds on its connection (the
// mysql writer's prepared statements), if it holds anything.
func closeWriter(w dialect.Writer) {
	if c, ok := w.(io.Closer); ok {
		_ = c.Close()
	}
}
