package writeback

import (
	"context"
	"database/sql/driver"
	"sync"
	"sync/atomic"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dirtyset"
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
	held map[dirtyset.ID]int // key → open transactions holding it
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

func (l *rowLocks) remove(ids []dirtyset.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if l.held[id]--; l.held[id] <= 0 {
			delete(l.held, id)
		}
	}
	l.n.Add(-int64(len(ids)))
}

// txWrites is what one open transaction holds: the keys it registered, by
// table, and the tables it wrote by other than their key.
type txWrites struct {
	keys    map[*tableState][]dirtyset.ID
	unkeyed map[*tableState]bool
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
		if !ok {
			unkeyed = append(unkeyed, t)
			continue
		}
		t.locks.add(ids)
		w := c.txState()
		w.keys[t] = append(w.keys[t], ids...)
		if err := t.set.AwaitIdle(ctx, ids); err != nil {
			return nil, err
		}
	}
	return unkeyed, nil
}

// txState returns the open transaction's holdings, made on first use.
func (c *conn) txState() *txWrites {
	if c.tx == nil {
		c.tx = &txWrites{keys: map[*tableState][]dirtyset.ID{}, unkeyed: map[*tableState]bool{}}
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
	c.tx = nil
}

// stmtKeys returns the keys, in canonical form, of the rows a by-key UPDATE
// or an INSERT writes; ok is false when they cannot be known.
func (cn *Connector) stmtKeys(info *stmtInfo, args []driver.NamedValue) (ids []dirtyset.ID, ok bool) {
	if len(args) != info.c.NumParams {
		return nil, false
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
		ids = append(ids, dirtyset.MakeID(vals))
		return true
	}
	switch info.c.Kind {
	case sqlparse.Update:
		vals := make([]any, len(info.keyPos))
		for i, p := range info.keyPos {
			v, ok := argValue(info.c.Where[p].Val, args)
			if !ok {
				return nil, false
			}
			vals[i] = v
		}
		return ids, key(vals, info.keyCols)
	case sqlparse.Insert:
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
				v, ok := argValue(src[p], args)
				if !ok {
					return nil, false
				}
				vals[i] = v
			}
			if !key(vals, cols) {
				return nil, false
			}
		}
		return ids, true
	}
	return nil, false
}
