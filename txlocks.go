package writeback

import (
	"context"
	"database/sql/driver"
	"sync"
	"sync/atomic"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/flush"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file keeps a transaction from deadlocking with the driver's own
// flush. In a read-committed transaction (PostgreSQL's default) every
// statement waits for the back tables it names to be flushed; once the
// transaction has written a row, it holds that row's lock until it ends,
// and a flush of a buffered write to the same row would wait for it, while
// the transaction's next statement waits for the flush.
//
// Directly, the other connection's write of that row would be the one
// waiting, for the transaction to end, and would not be visible yet. So the
// rows a transaction writes by key are registered here (rowLocks) before it
// locks them, and flushes leave their buffered rows aside until it ends:
// every other row is still flushed and visible, as directly. A write whose
// rows cannot be known by key (WHERE n > 5, DELETE) makes the transaction's
// later statements skip that table's barrier instead: they may miss writes
// acknowledged after it, rather than wait for a flush it may block.

// rowLocks are the keys of one back table that open transactions hold
// locked. Any is one atomic load, so a flush of a table no transaction
// writes pays nothing.
type rowLocks struct {
	n    atomic.Int64 // registrations held
	mu   sync.Mutex
	held map[dirtyset.ID]int // key → registrations of open transactions
	gone chan struct{}       // closed, and replaced, when registrations end
}

// Any reports whether any row is held.
func (l *rowLocks) Any() bool { return l.n.Load() > 0 }

// Held reports whether an open transaction holds the row keyed id.
func (l *rowLocks) Held(id dirtyset.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[id] > 0
}

func (l *rowLocks) add(ids []dirtyset.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[dirtyset.ID]int{}
	}
	for _, id := range ids {
		l.held[id]++
	}
	l.n.Add(int64(len(ids)))
}

func (l *rowLocks) remove(ids map[dirtyset.ID]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, n := range ids {
		if l.held[id] -= n; l.held[id] <= 0 {
			delete(l.held, id)
		}
		l.n.Add(-int64(n))
	}
	if l.gone != nil {
		close(l.gone)
		l.gone = nil
	}
}

// changed returns a channel closed the next time registrations end.
func (l *rowLocks) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone == nil {
		l.gone = make(chan struct{})
	}
	return l.gone
}

// heldBeyond reports how many registrations of id are not among mine.
func (l *rowLocks) heldBeyond(id dirtyset.ID, mine int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[id] - mine
}

// awaitKept waits, after a flush of t, for the rows that flush left aside
// because an open transaction other than tx (nil: any) holds them: they
// were acknowledged before the statement the barrier serves, so it must
// see them, as directly it would have waited for their writers, who would
// have waited for the lock. Rows tx itself holds are not waited for. epoch
// is t's Unholds before the flush: rows made flushable again since may not
// have been written by it, so they are asked for again.
func (b *buffer) awaitKept(ctx context.Context, t *tableState, tx *txWrites, epoch uint64) error {
	var mine map[dirtyset.ID]int
	if tx != nil {
		mine = tx.keys[t]
	}
	request := func() error { return b.flusher.Request(ctx, []*flush.Table{t.flush}) }
	for {
		gone := t.locks.changed() // before the look: a release after it closes gone
		if e := t.set.Unholds(); e != epoch {
			epoch = e
			if err := request(); err != nil {
				return err
			}
			continue
		}
		wait, released := false, false
		for _, id := range t.set.KeptKeys() {
			switch n := t.locks.heldBeyond(id, mine[id]); {
			case n > 0:
				wait = true
			case n == 0 && mine[id] == 0:
				released = true // its transaction ended; the worker has not written it yet
			}
		}
		switch {
		case released:
			// Written by the next flush, or kept again if another holder
			// remains: nothing waits for a lock it cannot get. Unhold
			// changes the epoch: the next turn asks for that flush.
			t.set.Unhold()
		case !wait:
			return nil
		default:
			select {
			case <-gone:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// maxTxKeys bounds the keys of one table a transaction registers (a bulk
// load in one transaction would otherwise keep them all); beyond it the
// table counts as written by other than its key.
const maxTxKeys = 10000

// txWrites is what one open transaction holds: the keys it registered, by
// table, and the tables it wrote by other than their key.
type txWrites struct {
	keys    map[*tableState]map[dirtyset.ID]int // registrations by key
	unkeyed map[*tableState]bool
	forget  map[*tableState]bool // tables whose known rows it may have deleted (exists.go)
	ddl     bool                 // it changed a back table's schema: read the catalog when it ends
}

// skipsBarrier reports whether the transaction must not wait for t.
func (w *txWrites) skipsBarrier(t *tableState) bool { return w != nil && w.unkeyed[t] }

// lockRows runs, in a read-committed transaction, before a statement that
// writes back tables: it registers the rows the statement will lock, then
// waits for any flush that took one of them before (it does not wait for
// this transaction: the statement has not run yet). It reports the tables
// the statement writes by other than their key, for after the statement.
func (c *conn) lockRows(ctx context.Context, info *stmtInfo, args []driver.NamedValue) (unkeyed []*tableState, err error) {
	for _, t := range info.barrier {
		if t != info.target {
			unkeyed = append(unkeyed, t)
			continue
		}
		ids, ok := c.cn.stmtKeys(info, args)
		if !ok || c.tx != nil && len(c.tx.keys[t])+len(ids) > maxTxKeys {
			unkeyed = append(unkeyed, t)
			continue
		}
		t.locks.add(ids)
		w := c.txState()
		if w.keys[t] == nil {
			w.keys[t] = map[dirtyset.ID]int{}
		}
		for _, id := range ids {
			w.keys[t][id]++
		}
		if err := t.set.AwaitIdle(ctx, ids); err != nil {
			return nil, err
		}
	}
	return unkeyed, nil
}

// txState returns the open transaction's holdings, made on first use.
func (c *conn) txState() *txWrites {
	if c.tx == nil {
		c.tx = &txWrites{keys: map[*tableState]map[dirtyset.ID]int{}, unkeyed: map[*tableState]bool{}, forget: map[*tableState]bool{}}
	}
	return c.tx
}

// endTx releases what the transaction held and lets the flush write the
// rows it left aside.
func (c *conn) endTx() {
	c.inTx = false
	if c.tx == nil {
		return
	}
	for t, ids := range c.tx.keys {
		t.locks.remove(ids)
		t.flush.LocksReleased()
	}
	for t := range c.tx.forget {
		t.known.forget()
	}
	ddl := c.tx.ddl
	c.tx = nil
	if ddl {
		c.cn.readCatalogAfterDDL()
	}
}

// stmtKeys returns the keys, in canonical form, of the rows a by-key UPDATE,
// an INSERT or an upsert writes; ok is false when they cannot be known.
func (cn *Connector) stmtKeys(info *stmtInfo, args []driver.NamedValue) (ids []dirtyset.ID, ok bool) {
	ok = cn.eachStmtKey(info, args, func(vals []any) { ids = append(ids, dirtyset.MakeID(vals)) })
	return ids, ok
}

// eachStmtKey calls fn with the canonical key values of each row a by-key
// UPDATE, an INSERT or an upsert writes; it returns false when they cannot
// be known.
func (cn *Connector) eachStmtKey(info *stmtInfo, args []driver.NamedValue, fn func(vals []any)) bool {
	if len(args) != info.c.NumParams {
		return false
	}
	key := func(vals []any, cols []*catalog.Column) bool {
		for i := range vals {
			if vals[i] == nil {
				return false
			}
			if cols != nil {
				v, ok := catalog.KeyValue(cn.dia.Kind(), cols[i], vals[i])
				if !ok {
					return false
				}
				vals[i] = v
			}
		}
		// Not t.set.CheckKey: that would fix the table's key kinds.
		if !dirtyset.KeysValid(vals) {
			return false
		}
		fn(vals)
		return true
	}
	switch info.c.Kind {
	case sqlparse.Update:
		vals := make([]any, len(info.keyPos))
		for i, p := range info.keyPos {
			v, ok := argValue(&info.c.Where[p].Val, args)
			if !ok {
				return false
			}
			vals[i] = v
		}
		return key(vals, info.keyCols)
	case sqlparse.Insert, sqlparse.Upsert: // an upsert locks the row of its key, inserted or updated
		var cols []*catalog.Column
		if info.insCols != nil {
			cols = make([]*catalog.Column, len(info.keyPos))
			for i, p := range info.keyPos {
				cols[i] = info.insCols[p]
			}
		}
		for _, src := range info.c.Rows {
			vals := make([]any, len(info.keyPos))
			for i, p := range info.keyPos {
				v, ok := argValue(&src[p], args)
				if !ok {
					return false
				}
				vals[i] = v
			}
			if !key(vals, cols) {
				return false
			}
		}
		return true
	}
	return false
}
