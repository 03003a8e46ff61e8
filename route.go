package writeback

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"unicode"

	"github.com/writeback-go/writeback/internal/sqlparse"
	"github.com/writeback-go/writeback/internal/value"
)

// stmtInfo is what the connector knows about one SQL text: its
// classification and what it means under this connector's rules. It is built
// once per distinct text and shared, read-only.
type stmtInfo struct {
	c *sqlparse.Statement
	// target is the back table a bufferable UPDATE or INSERT writes; nil when
	// the statement can never be buffered.
	target *tableState
	// keyPos: for an UPDATE, the index in c.where of each key column in the
	// rule's order; for an INSERT, the index in c.cols.
	keyPos []int
	names  *tableNames
	// barrier lists the back tables to commit before the statement runs.
	barrier []*tableState
}

// maxCachedStatements bounds the classification cache: an application that
// inlines literals into its SQL would otherwise grow it without end. Beyond
// it, statements are classified each time.
const maxCachedStatements = 10000

// info returns the cached classification of query, building it on first use.
func (cn *Connector) info(query string) *stmtInfo {
	if v, ok := cn.cache.Load(query); ok {
		return v.(*stmtInfo)
	}
	info := cn.buildInfo(query)
	if cn.cacheLen.Load() < maxCachedStatements {
		if _, loaded := cn.cache.LoadOrStore(query, info); !loaded {
			cn.cacheLen.Add(1)
		}
	}
	return info
}

func (cn *Connector) buildInfo(query string) *stmtInfo {
	c := cn.dia.Classify(query)
	info := &stmtInfo{c: c}
	named := cn.buf.tablesNamed(c.Names)
	reads := isPlainSelect(query)
	for _, t := range named {
		if reads && t.rule.Reads == ReadsStale {
			continue
		}
		info.barrier = append(info.barrier, t)
	}
	if c.Kind == sqlparse.Other || !cn.dia.Accepts(c) {
		return info
	}
	t := cn.buf.tableFor(c.Schema, c.Table)
	if t == nil {
		return info
	}
	keys := t.rule.Key
	pos := make([]int, len(keys))
	keyCols := make([]sqlparse.Ident, len(keys))
	switch c.Kind {
	case sqlparse.Update:
		if len(c.Where) != len(keys) {
			return info
		}
		for i, k := range keys {
			pos[i] = -1
			for j, w := range c.Where {
				if w.Col.Norm == k {
					pos[i], keyCols[i] = j, w.Col
				}
			}
			if pos[i] < 0 {
				return info
			}
		}
	case sqlparse.Insert:
		for i, k := range keys {
			pos[i] = -1
			for j, col := range c.Cols {
				if col.Norm == k {
					pos[i], keyCols[i] = j, col
				}
			}
			if pos[i] < 0 {
				return info
			}
		}
	}
	info.target, info.keyPos = t, pos
	info.names = &tableNames{schema: c.Schema, table: c.Table, keyCols: keyCols, style: c.Style}
	return info
}

// isPlainSelect reports whether the statement starts with SELECT (after
// spaces, comments and parentheses): a read, which a reads: stale table lets
// through without a barrier.
func isPlainSelect(q string) bool {
	for i := 0; i < len(q); {
		switch {
		case q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r' || q[i] == '(':
			i++
		case strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return false
			}
			i += j + 1
		case strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return false
			}
			i += j + 4
		default:
			w := q[i:]
			if len(w) < 6 || !strings.EqualFold(w[:6], "select") {
				return false
			}
			return len(w) == 6 || !(unicode.IsLetter(rune(w[6])) || unicode.IsDigit(rune(w[6])) || w[6] == '_')
		}
	}
	return false
}

// tryBuffer acknowledges a write from memory when the statement is bufferable
// and the row can take it; ok is false when the statement must go to the
// database (after its barrier). With a journal the write is journaled first,
// and at AckDisk tryBuffer returns once the record is durable; err is then
// the reason it could not wait (ok is true: the write is buffered).
func (cn *Connector) tryBuffer(ctx context.Context, c *conn, info *stmtInfo, args []driver.NamedValue) (res driver.Result, ok bool, err error) {
	t := info.target
	if t == nil || c.inTx || cn.buf.closed.Load() || len(args) != info.c.NumParams {
		return nil, false, nil
	}
	level := cn.ackLevel(ctx, t)
	if level == AckThrough {
		return nil, false, nil
	}
	res, lsn, err := cn.admitStmt(ctx, t, info, args)
	if res == nil || err != nil {
		return nil, err != nil, err
	}
	if level == AckDisk && lsn != 0 {
		// Outside every shard lock: writers of other rows go on while this
		// one waits, and share its fsync (group commit).
		if err := cn.buf.dur.j.Sync(ctx, lsn); err != nil {
			return nil, true, fmt.Errorf("writeback: write buffered but not acknowledged on disk (it may still be applied): %w", err)
		}
	}
	return res, true, nil
}

// admitStmt buffers the statement within the buffer's bounds (bound.go). A
// write that needs a new row while the healthy flusher is behind max_loss
// first waits, once, for a flush of the table (backpressure). A write that
// meets a full buffer does what the table's on_full says: block waits for
// rows to be committed, or for ctx; through returns a nil result, so the
// statement goes to the database after the table's barrier like any other
// pass-through; error returns ErrBufferFull. No lock is held while waiting.
// It returns nil and no error when the statement must go to the database.
func (cn *Connector) admitStmt(ctx context.Context, t *tableState, info *stmtInfo, args []driver.NamedValue) (driver.Result, uint64, error) {
	throttle := true
	counted := false
	// room is the signal's channel taken after a failed attempt: the
	// attempt is made once more before waiting on it, so a commit between
	// the first attempt and the wait is not missed.
	var room <-chan struct{}
	waitRoom := func() error {
		if room == nil {
			room = cn.buf.room.wait()
			return nil
		}
		select {
		case <-room:
			room = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		res, lsn, out := cn.bufferStmt(t, info, args, throttle)
		switch out {
		case buffered:
			return res, lsn, nil
		case throttled:
			throttle = false // one flush per write: progress even if the estimate is off
			t.stats.throttled.Add(1)
			if err := cn.buf.flusher.request(ctx, []*tableState{t}); err != nil && ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			// A failed flush means trouble in the database: go on, on_full bounds memory.
		case fullInflight:
			// Whatever on_full says: the write is coalesced once the flush
			// that holds its row ends (room is broadcast then).
			if err := waitRoom(); err != nil {
				return nil, 0, err
			}
		case full:
			if !counted {
				counted = true
				t.stats.full.Add(1)
			}
			switch t.rule.OnFull {
			case FullError:
				return nil, 0, ErrBufferFull
			case FullThrough:
				return nil, 0, nil
			}
			if err := waitRoom(); err != nil {
				return nil, 0, err
			}
		default:
			return nil, 0, nil
		}
	}
}

// bufferStmt buffers the statement, journaling it when there is a journal; it
// returns nil when the statement must go to the database, the record's LSN,
// and the buffer's outcome. With throttle, a write that needs a new row may
// come back throttled (bound.go).
func (cn *Connector) bufferStmt(t *tableState, info *stmtInfo, args []driver.NamedValue, throttle bool) (driver.Result, uint64, bufferOutcome) {
	d := cn.buf.dur
	switch info.c.Kind {
	case sqlparse.Update:
		// Small fixed arrays keep the common statement off the heap: the
		// buffer copies what it keeps.
		var keyBuf [4]any
		var changeBuf [8]change
		keyVals := keyBuf[:0]
		if len(info.keyPos) > len(keyBuf) {
			keyVals = make([]any, 0, len(info.keyPos))
		}
		keyVals = keyVals[:len(info.keyPos)]
		for i, p := range info.keyPos {
			v, ok := argValue(info.c.Where[p].Val, args)
			if !ok || v == nil {
				return nil, 0, passThrough // WHERE k = NULL matches nothing: the database says so
			}
			keyVals[i] = v
		}
		changes := changeBuf[:0]
		if len(info.c.Sets) > len(changeBuf) {
			changes = make([]change, 0, len(info.c.Sets))
		}
		changes = changes[:len(info.c.Sets)]
		for i, s := range info.c.Sets {
			v, ok := argValue(s.Val, args)
			if !ok {
				return nil, 0, passThrough
			}
			if s.Delta != 0 && v == nil {
				changes[i] = change{col: s.Col, val: nil} // c = c + NULL is NULL: an assignment
				continue
			}
			if s.Delta != 0 {
				if !value.IsDelta(v) {
					return nil, 0, passThrough
				}
				if s.Delta < 0 {
					if v, ok = value.Negate(v); !ok {
						return nil, 0, passThrough
					}
				}
			}
			changes[i] = change{col: s.Col, delta: s.Delta != 0, val: v}
		}
		var jw *journalWrite
		if d != nil {
			bp := d.getBuf()
			defer d.putBuf(bp)
			rec, err := encodeUpdate((*bp)[:0], t.rule.Name, info.names, keyVals, changes)
			if err != nil {
				return nil, 0, passThrough // a value the journal cannot hold: write it through
			}
			*bp = rec
			jw = &journalWrite{d: d, rec: rec}
		}
		out, lsn := t.bufferUpdateAdmit(keyVals, changes, info.names, jw, throttle)
		if out != buffered {
			return nil, 0, out
		}
		return bufferedResult(1), lsn, buffered
	case sqlparse.Insert:
		keys := make([][]any, len(info.c.Rows))
		rows := make([][]any, len(info.c.Rows))
		for i, src := range info.c.Rows {
			row := make([]any, len(src))
			for j, s := range src {
				v, ok := argValue(s, args)
				if !ok {
					return nil, 0, passThrough
				}
				row[j] = v
			}
			kv := make([]any, len(info.keyPos))
			for j, p := range info.keyPos {
				if kv[j] = row[p]; kv[j] == nil {
					return nil, 0, passThrough
				}
			}
			keys[i], rows[i] = kv, row
		}
		var jw *journalWrite
		if d != nil {
			bp := d.getBuf()
			defer d.putBuf(bp)
			rec, err := encodeInsert((*bp)[:0], t.rule.Name, info.names, info.c.Cols, keys, rows)
			if err != nil {
				return nil, 0, passThrough
			}
			*bp = rec
			jw = &journalWrite{d: d, rec: rec}
		}
		out, lsn := t.bufferInsertAdmit(keys, rows, info.c.Cols, info.names, jw, throttle)
		if out != buffered {
			return nil, 0, out
		}
		return bufferedResult(len(rows)), lsn, buffered
	}
	return nil, 0, passThrough
}

// argValue resolves an operand against the bound arguments and returns a
// private, normalized copy of its value.
func argValue(src sqlparse.Operand, args []driver.NamedValue) (any, bool) {
	if src.IsLit {
		return src.Lit, true
	}
	if src.Name != "" {
		for i := range args {
			if args[i].Name == src.Name {
				return value.Copy(args[i].Value)
			}
		}
	}
	// Positional arguments bind by position, named placeholders included (SQLite's rule);
	// a named argument never binds to a positional placeholder here: the driver decides.
	if i := src.Ordinal - 1; i >= 0 && i < len(args) && args[i].Name == "" {
		return value.Copy(args[i].Value)
	}
	return nil, false
}
