package writeback

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file buffers a lazy transaction of several writes (txlazy.go) at
// COMMIT, as one group: the dirty set admits every write or none
// (dirtyset.AdmitGroup), no flush takes part of it, and with a journal its
// records form one group that recovery replays whole or not at all
// (durable.Group). A group that cannot be admitted whole (a write that
// cannot be buffered now, a table over its bound with on_full: through) is
// run on the database as the transaction it is, after the barriers.

// maxHeldWrites bounds the writes a lazy transaction holds: a longer
// transaction is opened on the database. A group is admitted with every
// shard it touches locked, and over the tables' bounds by its own size.
const maxHeldWrites = 16

// groupWrite is one held write resolved for the dirty set.
type groupWrite struct {
	held *heldWrite
	w    *dirtyset.Write
}

// resolveHeld resolves a held write's arguments as bufferStmt would; ok is
// false when it cannot be buffered exactly.
func (cn *Connector) resolveHeld(h *heldWrite) (*groupWrite, bool) {
	info, t := h.info, h.info.target
	w := &dirtyset.Write{Table: t.set, Names: info.names}
	switch info.c.Kind {
	case sqlparse.Update:
		w.Op = dialect.Update
		w.Key = make([]any, len(info.keyPos))
		var ok bool
		if w.Changes, ok = cn.updateValues(info, h.args, w.Key, nil); !ok {
			return nil, false
		}
		if t.known != nil {
			// Held because its row exists (and its guards hold): answered
			// so, it is buffered so.
			w.Exists = func(dirtyset.ID) dirtyset.Existence { return dirtyset.ExistYes }
			w.Guards, w.Hold = info.guards, func(dirtyset.ID) dirtyset.Existence { return dirtyset.ExistYes }
		} else if info.guards != nil {
			return nil, false // guards are buffered only with exact results
		}
	case sqlparse.Insert:
		w.Op = dialect.Insert
		var ok bool
		if w.Keys, w.Rows, ok = cn.insertValues(info, h.args); !ok {
			return nil, false
		}
		w.Cols = info.c.Cols
		if t.known != nil {
			// Held because no row has its keys.
			w.Exists = func(dirtyset.ID) dirtyset.Existence { return dirtyset.ExistNo }
		}
	case sqlparse.Upsert:
		w.Op = dialect.Upsert
		var ok bool
		if w.Keys, w.Rows, w.Upd, ok = cn.upsertValues(info, h.args); !ok {
			return nil, false
		}
		w.Cols = info.c.Cols
	default:
		return nil, false
	}
	gw := &groupWrite{held: h, w: w}
	return gw, true
}

// encodeGroupRecord encodes a group write's journal record, record i of n
// of group id.
func encodeGroupRecord(g durable.Group, w *dirtyset.Write, table string) ([]byte, error) {
	dst := durable.AppendGroupHead(nil, g)
	switch w.Op {
	case dialect.Update:
		return durable.EncodeUpdate(dst, table, w.Names, w.Key, w.Changes)
	case dialect.Insert:
		return durable.EncodeInsert(dst, table, w.Names, w.Cols, w.Keys, w.Rows)
	}
	return durable.EncodeUpsert(dst, table, w.Names, w.Cols, w.Keys, w.Rows, w.Upd)
}

// bufferGroup buffers a committing lazy transaction's held writes together.
// ok is false when nothing was buffered and the transaction must run on the
// database; with ok, err is why the commit failed (nothing buffered: the
// journal refused it, or the buffer is full under on_full: error) or could
// not be confirmed on disk (everything buffered).
func (c *conn) bufferGroup(held []*heldWrite) (ok bool, err error) {
	cn := c.cn
	gws := make([]*groupWrite, len(held))
	ws := make([]*dirtyset.Write, len(held))
	level := AckMemory
	for i, h := range held {
		gw, ok := cn.resolveHeld(h)
		if !ok {
			return false, nil
		}
		gws[i], ws[i] = gw, gw.w
		level = max(level, cn.ackLevel(ContextWithAck(context.Background(), h.ack), h.info.target))
	}
	if level == AckThrough {
		return false, nil
	}
	if j := cn.buf.journal; j != nil {
		var idb [8]byte
		if _, err := rand.Read(idb[:]); err != nil {
			return false, nil
		}
		g := durable.Group{ID: binary.LittleEndian.Uint64(idb[:]), Count: len(ws)}
		recs := make([][]byte, len(gws))
		for i, gw := range gws {
			g.Index = i
			rec, err := encodeGroupRecord(g, gw.w, gw.held.info.target.rule.Name)
			if err != nil {
				return false, nil // a value the journal cannot hold: the database takes the transaction
			}
			recs[i] = rec
		}
		for i, jw := range j.NewGroupWrites(recs) {
			gws[i].w.Journal = jw
		}
	}
	if ok, err := c.roomForGroup(gws, ws); !ok || err != nil {
		return ok, err
	}
	epochs := make([]uint64, len(gws))
	for i, gw := range gws {
		if k := gw.held.info.target.known; k != nil {
			epochs[i] = k.epoch.Load()
		}
	}
	out, lsns, jerr := cn.buf.shared.AdmitGroup(ws)
	switch out {
	case dirtyset.Buffered:
	case dirtyset.JournalFailed:
		return true, fmt.Errorf("%w: %w", ErrJournal, jerr)
	default:
		return false, nil
	}
	var last uint64
	for i, gw := range gws {
		t, info := gw.held.info.target, gw.held.info
		last = max(last, lsns[i])
		if t.known == nil {
			continue
		}
		if info.c.Kind != sqlparse.Update {
			t.known.learn(epochs[i], gw.held.ids...) // known from now on, also once flushed
		}
		t.known.dropGuardsOf(gw.held.ids, setCols(info), info.c.Kind != sqlparse.Update)
	}
	if waitsForJournal(level) && last != 0 {
		if err := cn.buf.journal.Sync(context.Background(), last); err != nil { // Commit has no context: the journal bounds the wait
			return true, fmt.Errorf("writeback: transaction buffered but not acknowledged at ack: %s (it may still be applied): %w", level, err)
		}
	}
	return true, nil
}

// roomForGroup waits, with no lock held, until the group's tables have room
// for it, as a single write's on_full says: block waits, error fails the
// commit with ErrBufferFull, through sends the transaction to the database
// (ok false). The room is advisory: AdmitGroup admits the group whole.
func (c *conn) roomForGroup(gws []*groupWrite, ws []*dirtyset.Write) (ok bool, err error) {
	sh := c.cn.buf.shared
	counted := false
	for {
		room := sh.Room() // before the check: a commit in between is not missed
		fits, never := sh.GroupFits(ws)
		if fits {
			return true, nil
		}
		if never {
			return false, nil // more rows than a table may hold: the database takes the transaction
		}
		onFull := FullBlock
		for _, gw := range gws {
			t := gw.held.info.target
			if !counted {
				t.full.Add(1)
			}
			if r := t.rule.OnFull; r != FullBlock && onFull == FullBlock {
				onFull = r
			}
		}
		counted = true
		switch onFull {
		case FullError:
			return true, ErrBufferFull
		case FullThrough:
			return false, nil
		}
		<-room
	}
}

// commitThrough runs the held writes on the database as the transaction
// they are, after their barriers, when they cannot be buffered together.
func (c *conn) commitThrough(lz *lazyTx) error {
	ctx := context.Background()
	tx, err := c.beginReal(ctx, lz.opts)
	if err != nil {
		return err
	}
	for _, h := range lz.held {
		if _, err := c.execThrough(ContextWithAck(ctx, h.ack), h.query, h.info, h.args); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// heldKeysFree reports whether a write's rows are none of the rows the
// lazy transaction already holds writes of: each held write is answered
// against the database and the buffer as they are, which a second write of
// the same row would not be.
func (lz *lazyTx) heldKeysFree(t *tableState, ids []dirtyset.ID) bool {
	for _, h := range lz.held {
		if h.info.target != t {
			continue
		}
		for _, id := range h.ids {
			for _, o := range ids {
				if id == o {
					return false
				}
			}
		}
	}
	return true
}
