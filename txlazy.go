package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/sqlparse"
	"github.com/writeback-go/writeback/internal/value"
)

// This file buffers transactions made of bufferable writes. ORMs wrap every
// write in a transaction of their own (GORM's default: BEGIN, the UPDATE,
// COMMIT), and a transaction's statements go to the database, so without
// this nothing an ORM writes would ever be buffered.
//
// A transaction at the default isolation (or read committed on PostgreSQL)
// starts lazily: no transaction is opened on the database. Bufferable writes
// to back tables are held, each answered with the RowsAffected direct
// execution would give (exists.go), and buffered at COMMIT: one write like
// the same statement in autocommit, which is what a transaction of one
// statement is; several together, all or none (txgroup.go). ROLLBACK drops
// them. Anything else — a read, a write to a through table, a second write
// of a row already written, DDL, a savepoint — first opens the real
// transaction (after the barrier, as BeginTx does), replays the held writes
// into it in order, and from then on the transaction is exactly a direct
// one.

// lazyTx is a transaction not yet opened on the database: the driver.Tx
// database/sql holds for it.
type lazyTx struct {
	c    *conn
	opts driver.TxOptions
	held []*heldWrite // the transaction's writes, in order
	// real is the transaction once opened on the database; err is why
	// opening it failed (Commit reports it).
	real *wrappedTx
	err  error
}

// heldWrite is a write a lazy transaction holds until COMMIT.
type heldWrite struct {
	query string
	info  *stmtInfo
	args  []driver.NamedValue
	ack   AckLevel      // what the statement's context asked for (ContextWithAck)
	ids   []dirtyset.ID // the rows it writes
}

var _ driver.Tx = (*lazyTx)(nil)

// lazyTxOK reports whether a transaction with opts may start lazily.
func (c *conn) lazyTxOK(opts driver.TxOptions) bool {
	if len(c.cn.buf.ordered) == 0 || opts.ReadOnly || c.session || c.inTx || c.cn.buf.shared.Closed() {
		return false
	}
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
		return true
	case sql.LevelReadCommitted:
		return c.cn.dia.Kind() == dialect.Postgres
	}
	return false
}

// holdLazy holds a write of the lazy transaction when it can be buffered at
// COMMIT with the result it gets now. ok is false when the transaction must
// be opened on the database first.
func (c *conn) holdLazy(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (res driver.Result, ok bool) {
	lz := c.lazy
	t := info.target
	if len(lz.held) >= maxHeldWrites || t == nil || len(args) != info.c.NumParams || c.cn.ackLevel(ctx, t) == AckThrough {
		return nil, false
	}
	keys, ok := c.cn.stmtKeyVals(info, args)
	if !ok || !c.cn.valuesExact(info, args) {
		return nil, false
	}
	rowIDs := make([]dirtyset.ID, len(keys))
	for i := range keys {
		rowIDs[i] = dirtyset.MakeID(keys[i])
		for j := range i {
			if rowIDs[i] == rowIDs[j] {
				return nil, false // a key twice in one INSERT: the database refuses it
			}
		}
	}
	if !lz.heldKeysFree(t, rowIDs) {
		return nil, false
	}
	n := int64(1)
	if info.c.Kind != sqlparse.Update {
		n = int64(len(keys))
	}
	if info.c.OnDuplicateKey {
		// MySQL's count depends on whether each key exists.
		if n, ok = c.duplicateKeyCount(ctx, t, info, args, keys, rowIDs); !ok {
			return nil, false
		}
	} else if info.guards != nil {
		// One key, guarded (planGuards requires rows_affected: exact).
		matched, ok := c.guardedLazy(ctx, t, info, keys[0])
		if !ok {
			return nil, false
		}
		if !matched {
			return bufferedResult(0), true // matches nothing, as directly: nothing to hold
		}
	} else if t.known != nil && info.c.Kind != sqlparse.Upsert {
		// An upsert's result does not depend on whether its rows exist.
		ids := rowIDs
		known := 0
		for i, kv := range keys {
			// A row buffered for the key will be in the database.
			if t.set.Busy(kv) || t.known.has(ids[i]) {
				known++
			}
		}
		if info.ignore && known == len(ids) {
			return bufferedResult(0), true // skipped, as directly: nothing to hold
		}
		if known != len(ids) && known != 0 || info.c.Kind == sqlparse.Insert && known > 0 {
			return nil, false
		}
		if known == 0 {
			// Not known: ask, on this connection (no transaction is open on it).
			epoch := t.known.epoch.Load()
			t.probes.Add(1)
			found, err := c.cn.probeRows(ctx, c, info, keys)
			if err != nil {
				t.probeFailures.Add(1)
				return nil, false
			}
			if found && info.ignore {
				if len(ids) > 1 {
					return nil, false // which rows exist is not known: the database decides
				}
				t.known.learn(epoch, ids...)
				return bufferedResult(0), true
			}
			if !found && info.c.Kind == sqlparse.Update {
				return bufferedResult(0), true // matches nothing, as directly: nothing to hold
			}
			if found != (info.c.Kind == sqlparse.Update) {
				return nil, false // a duplicate key: the database answers
			}
			if found && len(ids) == 1 {
				t.known.learn(epoch, ids...)
			}
		}
	}
	held := &heldWrite{query: query, info: info, args: make([]driver.NamedValue, len(args)), ack: ackOf(ctx), ids: rowIDs}
	for i, a := range args {
		v, ok := value.Copy(a.Value)
		if !ok {
			return nil, false
		}
		held.args[i] = a
		held.args[i].Value = v
	}
	lz.held = append(lz.held, held)
	return bufferedResult(n), true
}

// valuesExact reports whether every value of a write resolves as buffering
// it would (the catalog's checks among them): a write whose values the
// database would refuse, NULL into a NOT NULL column say, is not held, but
// run in the opened transaction, where it fails at Exec as directly.
func (cn *Connector) valuesExact(info *stmtInfo, args []driver.NamedValue) bool {
	switch info.c.Kind {
	case sqlparse.Update:
		_, ok := cn.updateValues(info, args, make([]any, len(info.keyPos)), nil)
		return ok
	case sqlparse.Insert:
		_, _, ok := cn.insertValues(info, args)
		return ok
	case sqlparse.Upsert:
		_, _, _, ok := cn.upsertValues(info, args)
		return ok
	}
	return false
}

// duplicateKeyCount is what MySQL counts for a held INSERT ... ON
// DUPLICATE KEY UPDATE (see bufferDuplicateKey): each key's existence from
// the rows buffered, the keys known, or a probe on this connection (a
// statement of several rows whose probe finds some is not held). ok is false
// when the count cannot be told.
func (c *conn) duplicateKeyCount(ctx context.Context, t *tableState, info *stmtInfo, args []driver.NamedValue, keys [][]any, ids []dirtyset.ID) (int64, bool) {
	if t.known == nil {
		return 0, false
	}
	_, _, upd, ok := c.cn.upsertValues(info, args)
	if !ok {
		return 0, false
	}
	var n int64
	var unknown [][]any
	var unknownAt []int
	for i, kv := range keys {
		if t.set.Busy(kv) || t.known.has(ids[i]) {
			ie := upsertCount(info, upd[i], c.cn.foundRows)
			if ie < 0 {
				return 0, false
			}
			n += int64(ie)
			continue
		}
		unknown, unknownAt = append(unknown, kv), append(unknownAt, i)
	}
	if len(unknown) == 0 {
		return n, true
	}
	epoch := t.known.epoch.Load()
	t.probes.Add(1)
	found, err := c.cn.probeRows(ctx, c, info, unknown)
	if err != nil {
		t.probeFailures.Add(1)
		return 0, false
	}
	switch {
	case !found:
		return n + int64(len(unknown)), true
	case len(unknown) > 1:
		return 0, false // which of them exist is not known
	}
	t.known.learn(epoch, ids[unknownAt[0]])
	ie := upsertCount(info, upd[unknownAt[0]], c.cn.foundRows)
	return n + int64(ie), ie >= 0
}

// materialize opens the lazy transaction on the database and replays its
// held writes, before a statement that needs the real transaction.
func (c *conn) materialize(ctx context.Context) error {
	lz := c.lazy
	c.lazy = nil
	tx, err := c.beginReal(ctx, lz.opts)
	if err != nil {
		lz.err = err
		return err
	}
	lz.real = tx
	held := lz.held
	lz.held = nil
	for _, h := range held {
		if _, err := c.execThrough(ctx, h.query, h.info, h.args); err != nil {
			return err
		}
	}
	return nil
}

// Commit buffers the held writes: one as the same statement in autocommit
// would be, several together (bufferGroup). What cannot be buffered now
// goes to the database: one write alone, several as their transaction.
func (lz *lazyTx) Commit() error {
	c := lz.c
	if c.lazy == lz {
		c.lazy = nil
	}
	switch {
	case lz.real != nil:
		return lz.real.Commit()
	case lz.err != nil:
		return lz.err
	case len(lz.held) == 0:
		return nil
	case len(lz.held) > 1:
		if ok, err := c.bufferGroup(lz.held); ok {
			lz.held = nil
			return err
		}
		err := c.commitThrough(lz)
		lz.held = nil
		return err
	}
	held := lz.held[0]
	lz.held = nil
	ctx := ContextWithAck(context.Background(), held.ack) // the level the write asked for
	if _, ok, err := c.cn.tryBuffer(ctx, c, held.info, held.args); ok {
		return err
	}
	_, err := c.execThrough(ctx, held.query, held.info, held.args)
	return err
}

// Rollback drops the held write.
func (lz *lazyTx) Rollback() error {
	if lz.c.lazy == lz {
		lz.c.lazy = nil
	}
	lz.held = nil
	if lz.real != nil {
		return lz.real.Rollback()
	}
	return nil
}

// execThrough runs a statement on the database after its barrier, as
// ExecContext does for a statement it does not buffer.
func (c *conn) execThrough(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Result, error) {
	if err := c.before(ctx, info, args); err != nil {
		return nil, err
	}
	base, err := c.attach(ctx)
	if err != nil {
		return nil, err
	}
	var res driver.Result
	switch b := base.(type) {
	case driver.ExecerContext:
		res, err = b.ExecContext(ctx, query, args)
	//lint:ignore SA1019 the legacy interface is the fallback
	case driver.Execer:
		var vals []driver.Value
		if vals, err = drivercall.NamedToValues(args); err == nil {
			res, err = b.Exec(query, vals)
		}
	default:
		err = driver.ErrSkip
	}
	if errors.Is(err, driver.ErrSkip) {
		var st driver.Stmt
		if st, err = drivercall.Prepare(ctx, base, query); err == nil {
			res, err = drivercall.StmtExec(ctx, st, args)
			st.Close()
		}
	}
	c.after(info, err)
	c.cn.learnThrough(c, info, args, res, err)
	return res, err
}

// stmtKeyVals returns the canonical key values of the rows a by-key UPDATE
// or an INSERT writes (stmtKeys' values).
func (cn *Connector) stmtKeyVals(info *stmtInfo, args []driver.NamedValue) ([][]any, bool) {
	var out [][]any
	ok := cn.eachStmtKey(info, args, func(vals []any) { out = append(out, vals) })
	return out, ok && len(out) > 0
}

// guardedLazy answers a guarded UPDATE a lazy transaction holds: whether it
// matches the key's row now (dirtyset.GuardCheck, asking the database when
// that is not known). ok is false when the transaction must be opened on
// the database for it.
func (c *conn) guardedLazy(ctx context.Context, t *tableState, info *stmtInfo, key []any) (matched, ok bool) {
	a := &writeAttempt{c: c}
	for range 2 {
		switch t.set.GuardCheck(key, a.exists(t), info.guards, a.guardsHold(t, info.guards)) {
		case dirtyset.Buffered:
			return true, true
		case dirtyset.Unmatched:
			return false, true
		case dirtyset.Probe:
			a.probeKeys = [][]any{key}
			if !c.cn.probe(ctx, a, t, info) || a.assume {
				return false, false // missing, or not answered: the database decides
			}
		default:
			return false, false
		}
	}
	return false, false
}
