package writeback

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/flush"
	"github.com/writeback-go/writeback/internal/joinq"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file joins the statement path to the dirty set (internal/dirtyset):
// a bufferable write is resolved against its arguments, journaled when the
// rules ask for a journal, and coalesced into its row, within the buffer's
// bounds; statements that read or change a back table otherwise wait at its
// barrier for its flush worker (internal/flush).

// ErrBuffered is returned by LastInsertId of a buffered write's result: the row
// has not reached the database yet, so no id exists.
var ErrBuffered = errors.New("writeback: write is buffered; LastInsertId is not known until it is flushed")

// ErrClosed is returned for writes after the connector was closed.
var ErrClosed = flush.ErrClosed

// ErrBufferFull is returned by Exec for a write to a back table whose rule
// says on_full: error, when the write would make a new dirty row and the
// buffer is at its bound (the table's 2 × max_dirty rows not yet committed,
// or the connector's WithMaxBufferBytes). Nothing was written or buffered:
// the application may retry later, or write elsewhere.
var ErrBufferFull = errors.New("writeback: buffer is full")

// ErrJournal is returned by Exec for a write the journal could not take (a
// full disk, a failed fsync): nothing was buffered or written, as Redis
// refuses writes when its append-only file cannot be written. The error
// wraps the journal's. After a full disk, writes are taken again as soon as
// the journal can append (it tries with every write); after a failed fsync
// the journal is unusable until the connector is reopened.
var ErrJournal = errors.New("writeback: the journal cannot take the write")

// DefaultMaxBufferBytes is the default bound on the approximate memory held
// by the dirty rows of all a connector's back tables.
const DefaultMaxBufferBytes int64 = 256 << 20

// bufferedResult is the driver.Result of a buffered write.
type bufferedResult int64

func (r bufferedResult) LastInsertId() (int64, error) { return 0, ErrBuffered }
func (r bufferedResult) RowsAffected() (int64, error) { return int64(r), nil }

// tableState is one back table: its rule, its dirty set, its flush worker,
// and the figures of the statement path.
type tableState struct {
	rule  *TableRule
	set   *dirtyset.Table
	flush *flush.Table
	locks rowLocks   // rows open transactions hold locked (txlocks.go)
	known *knownRows // keys known to exist; nil with rows_affected: assume (exists.go)

	readsByKey    atomic.Int64           // reads by key answered without a barrier (readkey.go)
	prober        joinq.Queue[*probeReq] // probes of cold keys, joined (probebatch.go)
	probes        atomic.Int64           // point queries asking whether a key's row exists
	probeFailures atomic.Int64           // probes the database did not answer (the write was assumed)

	passed    atomic.Int64 // bufferable writes on this table that went to the database
	barriers  atomic.Int64 // statements that waited for this table's flush
	full      atomic.Int64 // writes that met a full buffer (on_full decided)
	throttled atomic.Int64 // writes that waited for a flush to keep max_loss
}

// buffer is the dirty set of one connector: one tableState per back table,
// their flush workers and the journal.
type buffer struct {
	tables  map[string]*tableState   // by normalized rule name; immutable after creation
	byBare  map[string][]*tableState // lower-cased bare table name → tables, for barriers
	ordered []*tableState            // all tables, for iteration
	shared  *dirtyset.Shared
	flusher *flush.Flusher
	journal *durable.Journal // nil without one
}

// newBuffer makes the tables of rules; their flush workers are added by the
// connector.
func newBuffer(rules *Rules, maxBytes int64, log *slog.Logger) *buffer {
	b := &buffer{tables: map[string]*tableState{}, byBare: map[string][]*tableState{}, shared: dirtyset.NewShared(maxBytes)}
	for _, rule := range rules.backTables() {
		t := &tableState{rule: rule}
		if rule.RowsAffected == RowsExact {
			t.known = newKnownRows(2 * rule.MaxDirty)
		}
		t.set = b.shared.NewTable(dirtyset.Config{
			Name: rule.Name, MaxDirty: rule.MaxDirty, MaxLoss: rule.MaxLoss, Log: log,
			Wake:         func() { t.flush.Kick() }, // t.flush is set before any row is buffered
			UpdatesExist: rule.RowsAffected == RowsExact,
		})
		b.tables[rule.Name] = t
		bare := strings.ToLower(rule.Name)
		if i := strings.LastIndexByte(bare, '.'); i >= 0 {
			bare = bare[i+1:]
		}
		b.byBare[bare] = append(b.byBare[bare], t)
		b.ordered = append(b.ordered, t)
	}
	return b
}

// sets returns every table's dirty set.
func (b *buffer) sets() []*dirtyset.Table {
	out := make([]*dirtyset.Table, len(b.ordered))
	for i, t := range b.ordered {
		out[i] = t.set
	}
	return out
}

// tableFor finds the back table a statement's target names: schema.table
// matches a rule for that schema, or the bare rule when the schema is the
// default one (public, main).
func (b *buffer) tableFor(schema *sqlparse.Ident, table sqlparse.Ident) *tableState {
	if schema == nil {
		if t := b.tables[table.Norm]; t != nil {
			return t
		}
		if t := b.tables["public."+table.Norm]; t != nil {
			return t
		}
		return b.tables["main."+table.Norm]
	}
	if t := b.tables[schema.Norm+"."+table.Norm]; t != nil {
		return t
	}
	if schema.Norm == "public" || schema.Norm == "main" {
		return b.tables[table.Norm]
	}
	return nil
}

// tablesNamed returns the back tables a statement mentions (by its names).
func (b *buffer) tablesNamed(names []string) []*tableState {
	var out []*tableState
	for _, n := range names {
		for _, t := range b.byBare[n] {
			dup := false
			for _, o := range out {
				dup = dup || o == t
			}
			if !dup {
				out = append(out, t)
			}
		}
	}
	return out
}

// barrier returns once every row of tables that was buffered before the call
// is committed (or dead-lettered), so the statement that follows sees them.
// Only the workers of those tables are asked: a slow table delays only the
// statements that name it.
func (b *buffer) barrier(ctx context.Context, tables []*tableState) error {
	return b.barrierFor(ctx, tables, nil)
}

// barrierFor is barrier for a statement of transaction tx (nil: none),
// which does not wait for the rows it holds locked itself (txlocks.go).
func (b *buffer) barrierFor(ctx context.Context, tables []*tableState, tx *txWrites) error {
	var dirty []*flush.Table
	var held []*tableState // the dirty ones: their flush may leave rows aside
	var epochs []uint64
	for _, t := range tables {
		if t.set.Pending() > 0 {
			t.barriers.Add(1)
			dirty = append(dirty, t.flush)
			held = append(held, t)
			epochs = append(epochs, t.set.Unholds())
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	if err := b.flusher.Request(ctx, dirty); err != nil {
		return err
	}
	for i, t := range held {
		if t.set.Kept() == 0 && t.set.Unholds() == epochs[i] {
			continue // the common case: two atomic loads
		}
		if err := b.awaitKept(ctx, t, tx, epochs[i]); err != nil {
			return err
		}
	}
	return nil
}

// pending is the number of rows not yet committed in every table.
func (b *buffer) pending() int64 {
	var n int64
	for _, t := range b.ordered {
		n += t.set.Pending()
	}
	return n
}

// tryBuffer acknowledges a write from memory when the statement is bufferable
// and the row can take it; ok is false when the statement must go to the
// database (after its barrier). With a journal the write is journaled first,
// and at AckDisk or AckReplicated tryBuffer returns once the record is durable; err is then
// the reason it could not wait (ok is true: the write is buffered).
func (cn *Connector) tryBuffer(ctx context.Context, c *conn, info *stmtInfo, args []driver.NamedValue) (res driver.Result, ok bool, err error) {
	t := info.target
	if t == nil || c.inTx || c.session || cn.buf.shared.Closed() || len(args) != info.c.NumParams {
		return nil, false, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, true, err // a context already done buffers nothing, as the database would run nothing
	}
	level := cn.ackLevel(ctx, t)
	if level == AckThrough {
		return nil, false, nil
	}
	if cn.dropWrite != 0 && cn.dropCount.Add(1) == cn.dropWrite {
		return bufferedResult(1), true, nil // withDroppedWrite: a promise broken on purpose
	}
	if j := cn.buf.journal; j != nil {
		// A journal whose fsync lags holds writers back here, within
		// their context, not under their row's lock.
		if err := j.WaitLag(ctx); err != nil {
			return nil, true, err
		}
	}
	res, lsn, err := cn.admitStmt(ctx, &writeAttempt{c: c}, t, info, args)
	if res == nil || err != nil {
		return nil, err != nil, err
	}
	if t.known != nil && t.known.hasGuards.Load() {
		// The write may set a guarded column of its rows.
		if ids, ok := cn.stmtKeys(info, args); ok {
			t.known.dropGuardsOf(ids, setCols(info), info.c.Kind != sqlparse.Update)
		} else {
			t.known.dropGuards()
		}
	}
	if waitsForJournal(level) && lsn != 0 {
		// Outside every shard lock: writers of other rows go on while this
		// one waits, and share its fsync or publish (group commit).
		if err := cn.buf.journal.Sync(ctx, lsn); err != nil {
			return nil, true, fmt.Errorf("writeback: write buffered but not acknowledged at ack: %s (it may still be applied): %w", level, err)
		}
	}
	return res, true, nil
}

// admitStmt buffers the statement within the buffer's bounds. A write that
// needs a new row while the healthy flush is behind max_loss first waits,
// once, for a flush of the table (backpressure). A write that meets a full
// buffer does what the table's on_full says: block waits for rows to be
// committed, or for ctx; through returns a nil result, so the statement goes
// to the database after the table's barrier like any other pass-through;
// error returns ErrBufferFull. No lock is held while waiting. It returns nil
// and no error when the statement must go to the database.
func (cn *Connector) admitStmt(ctx context.Context, a *writeAttempt, t *tableState, info *stmtInfo, args []driver.NamedValue) (driver.Result, uint64, error) {
	adm := dirtyset.AdmitThrottled
	counted := false
	// room is the signal's channel taken after a failed attempt: the
	// attempt is made once more before waiting on it, so a commit between
	// the first attempt and the wait is not missed.
	var room <-chan struct{}
	waitRoom := func() error {
		if room == nil {
			room = cn.buf.shared.Room()
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
		res, lsn, out, jerr := cn.bufferStmt(a, t, info, args, adm)
		switch out {
		case dirtyset.Buffered:
			return res, lsn, nil
		case dirtyset.Probe:
			// No lock is held: the probe is a query on the caller's connection.
			if !cn.probe(ctx, a, t, info) {
				return nil, 0, ctx.Err()
			}
		case dirtyset.Throttled:
			adm = dirtyset.AdmitNow // one flush per write: progress even if the estimate is off
			t.throttled.Add(1)
			// The wait is bounded by max_loss too: a flush that cannot
			// finish (a row locked by another session) delays the table's
			// writers by that much, then the buffer's bounds decide.
			wctx, cancel := context.WithTimeout(ctx, t.rule.MaxLoss)
			err := cn.buf.flusher.Request(wctx, []*flush.Table{t.flush})
			cancel()
			if err != nil && ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			// A failed flush means trouble in the database: go on, on_full bounds memory.
		case dirtyset.JournalFailed:
			return nil, 0, fmt.Errorf("%w: %w", ErrJournal, jerr)
		case dirtyset.FullInflight:
			// Whatever on_full says: the write is coalesced once the flush
			// that holds its row ends (room is broadcast then).
			if err := waitRoom(); err != nil {
				return nil, 0, err
			}
		case dirtyset.Full:
			if !counted {
				counted = true
				t.full.Add(1)
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
// the dirty set's outcome, and with JournalFailed the journal's error. With
// dirtyset.AdmitThrottled, a write that needs a new row may come back
// throttled.
func (cn *Connector) bufferStmt(a *writeAttempt, t *tableState, info *stmtInfo, args []driver.NamedValue, adm dirtyset.Admission) (driver.Result, uint64, dirtyset.Outcome, error) {
	switch info.c.Kind {
	case sqlparse.Update:
		return cn.bufferUpdate(a, t, info, args, adm)
	case sqlparse.Insert:
		return cn.bufferInsert(a, t, info, args, adm)
	case sqlparse.Upsert:
		return cn.bufferUpsert(a, t, info, args, adm)
	}
	return nil, 0, dirtyset.PassThrough, nil
}

// bufferAnswer turns the dirty set's answer for a write of n rows into
// bufferStmt's: a result when buffered, the journal's error when it failed.
func bufferAnswer(out dirtyset.Outcome, lsn uint64, n int, w *durable.Write) (driver.Result, uint64, dirtyset.Outcome, error) {
	switch {
	case out == dirtyset.Buffered:
		return bufferedResult(n), lsn, out, nil
	case out == dirtyset.JournalFailed && w != nil:
		return nil, 0, out, w.Err()
	}
	return nil, 0, out, nil
}

// bufferUpdate buffers a bufferable UPDATE.
func (cn *Connector) bufferUpdate(a *writeAttempt, t *tableState, info *stmtInfo, args []driver.NamedValue, adm dirtyset.Admission) (driver.Result, uint64, dirtyset.Outcome, error) {
	// Small fixed arrays keep the common statement off the heap: the
	// dirty set copies what it keeps.
	var keyBuf [4]any
	var changeBuf [8]dirtyset.Change
	keyVals := keyBuf[:0]
	if len(info.keyPos) > len(keyBuf) {
		keyVals = make([]any, 0, len(info.keyPos))
	}
	keyVals = keyVals[:len(info.keyPos)]
	changes := changeBuf[:0]
	if len(info.c.Sets) > len(changeBuf) {
		changes = make([]dirtyset.Change, 0, len(info.c.Sets))
	}
	changes, ok := cn.updateValues(info, args, keyVals, changes)
	if !ok {
		return nil, 0, dirtyset.PassThrough, nil
	}
	var jw dirtyset.Journal
	var w *durable.Write
	if j := cn.buf.journal; j != nil {
		bp := j.Buffer()
		defer j.PutBuffer(bp)
		rec, err := durable.EncodeUpdate((*bp)[:0], t.rule.Name, info.names, keyVals, changes)
		if err != nil {
			return nil, 0, dirtyset.PassThrough, nil // a value the journal cannot hold: write it through
		}
		*bp = rec
		w = j.NewWrite(rec)
		defer j.PutWrite(w)
		jw = w
	}
	var out dirtyset.Outcome
	var lsn uint64
	if info.guards != nil {
		out, lsn = t.set.UpdateGuarded(keyVals, changes, info.names, jw, adm, a.exists(t), info.guards, a.guardsHold(t, info.guards))
	} else {
		out, lsn = t.set.UpdateExisting(keyVals, changes, info.names, jw, adm, a.exists(t))
	}
	switch out {
	case dirtyset.Probe:
		a.probeKeys = [][]any{slices.Clone(keyVals)}
	case dirtyset.Unmatched:
		// A guard is false for the key's buffered row: the UPDATE matches
		// nothing, as it would directly, and nothing is buffered.
		return bufferedResult(0), 0, dirtyset.Buffered, nil
	}
	return bufferAnswer(out, lsn, 1, w)
}

// updateValues resolves a by-key UPDATE's key values (into keyVals, one per
// key column) and its changes (appended to changes) from the arguments, in
// canonical form; ok is false when the statement must go to the database.
func (cn *Connector) updateValues(info *stmtInfo, args []driver.NamedValue, keyVals []any, changes []dirtyset.Change) ([]dirtyset.Change, bool) {
	for i, p := range info.keyPos {
		v, ok := argValue(&info.c.Where[p].Val, args)
		if !ok || v == nil {
			return nil, false // WHERE k = NULL matches nothing: the database says so
		}
		keyVals[i] = v
	}
	changes, ok := resolveSets(changes, info.c.Sets, args)
	var clk clockReading
	if !ok || !cn.exactUpdate(info, keyVals, changes, &clk) {
		return nil, false
	}
	return changes, true
}

// insertValues resolves an INSERT's rows and their key values from the
// arguments, in canonical form; ok is false when the statement must go to
// the database.
func (cn *Connector) insertValues(info *stmtInfo, args []driver.NamedValue) (keys, rows [][]any, ok bool) {
	var clk clockReading // one instant for every row
	keys = make([][]any, len(info.c.Rows))
	rows = make([][]any, len(info.c.Rows))
	for i, src := range info.c.Rows {
		row := make([]any, len(src))
		for j := range src {
			v, ok := argValue(&src[j], args)
			if !ok {
				return nil, nil, false
			}
			row[j] = v
		}
		if !cn.exactInsertRow(info, row, &clk) {
			return nil, nil, false
		}
		kv := make([]any, len(info.keyPos))
		for j, p := range info.keyPos {
			if kv[j] = row[p]; kv[j] == nil {
				return nil, nil, false
			}
		}
		keys[i], rows[i] = kv, row
	}
	if info.ignore {
		// A NULL the database could refuse (OR IGNORE skips those too)
		// goes to the database; so does, on MySQL, a value the catalog
		// cannot prove fits its column (INSERT IGNORE stores an adjusted
		// value where INSERT fails).
		mysql := cn.dia.Kind() == dialect.MySQL
		for _, row := range rows {
			for j, v := range row {
				if v == nil && info.insCols != nil && info.insCols[j].NotNull {
					return nil, nil, false
				}
				if mysql && v != nil && (info.insCols == nil || !mysqlFits(info.insCols[j], v)) {
					return nil, nil, false
				}
			}
		}
	}
	return keys, rows, true
}

// bufferInsert buffers a bufferable INSERT, all its rows or none.
func (cn *Connector) bufferInsert(a *writeAttempt, t *tableState, info *stmtInfo, args []driver.NamedValue, adm dirtyset.Admission) (driver.Result, uint64, dirtyset.Outcome, error) {
	var epoch uint64
	if t.known != nil {
		epoch = t.known.epoch.Load()
	}
	keys, rows, ok := cn.insertValues(info, args)
	if !ok {
		return nil, 0, dirtyset.PassThrough, nil
	}
	allKeys := keys
	if info.ignore {
		// A row is skipped when its key exists (or will: a row buffered
		// for it); the others are inserted, and counted.
		if a.present && len(keys) > 1 {
			return nil, 0, dirtyset.PassThrough, nil // some exist, which is not known: the database decides
		}
		if keys, rows = skipExisting(t, keys, rows, a.present); len(keys) == 0 {
			return bufferedResult(0), 0, dirtyset.Buffered, nil
		}
	}
	var jw dirtyset.Journal
	var w *durable.Write
	if j := cn.buf.journal; j != nil {
		bp := j.Buffer()
		defer j.PutBuffer(bp)
		rec, err := durable.EncodeInsert((*bp)[:0], t.rule.Name, info.names, info.c.Cols, keys, rows)
		if err != nil {
			return nil, 0, dirtyset.PassThrough, nil
		}
		*bp = rec
		w = j.NewWrite(rec)
		defer j.PutWrite(w)
		jw = w
	}
	out, lsn := t.set.InsertNew(keys, rows, info.c.Cols, info.names, jw, adm, a.exists(t))
	switch {
	case out == dirtyset.Probe:
		a.probeKeys = keys
	case out == dirtyset.Buffered && t.known != nil:
		// Known from now on, also once flushed (a dead letter forgets).
		ids := make([]dirtyset.ID, len(allKeys))
		for i, kv := range allKeys {
			ids[i] = dirtyset.MakeID(kv)
		}
		t.known.learn(epoch, ids...)
	}
	return bufferAnswer(out, lsn, len(rows), w)
}

// mysqlFits reports whether MySQL stores v in col as it is, so that INSERT
// IGNORE, which turns the errors of a value that does not fit into warnings
// and stores an adjusted value, behaves as INSERT does: an integer in the
// type's range (checked by catalog.AssignOK before), a decimal within the
// column's digits, a finite number in a DOUBLE, ASCII text within a
// VARCHAR's length (checked before) or of at most 255 bytes in a TEXT. Any
// other value or column (times, bytes, enums, ...) goes to the database.
func mysqlFits(col *catalog.Column, v any) bool {
	switch col.Class {
	case catalog.Integer:
		_, ok := v.(int64)
		return ok
	case catalog.Numeric:
		var s string
		switch x := v.(type) {
		case int64:
			s = strconv.FormatInt(x, 10)
		case string:
			s = x
		default:
			return false
		}
		s = strings.TrimPrefix(s, "-")
		intPart, frac, _ := strings.Cut(s, ".")
		intPart = strings.TrimLeft(intPart, "0")
		return col.Precision > 0 && col.Scale >= 0 && len(frac) <= col.Scale && len(intPart) <= col.Precision-col.Scale
	case catalog.Float:
		switch x := v.(type) {
		case int64:
			return true
		case float64:
			return !math.IsNaN(x) && !math.IsInf(x, 0)
		}
		return false
	case catalog.Text:
		s, ok := v.(string)
		if !ok {
			return false
		}
		for i := 0; i < len(s); i++ {
			if s[i] >= utf8.RuneSelf || s[i] == 0 {
				return false
			}
		}
		return col.Length > 0 || len(s) <= 255
	}
	return false
}

// skipExisting drops the rows of an INSERT that skips existing keys whose
// key exists, or will (a row buffered for it); present says the database
// answered that the statement's one row exists.
func skipExisting(t *tableState, keys, rows [][]any, present bool) ([][]any, [][]any) {
	var k2, r2 [][]any
	for i, kv := range keys {
		if present || t.set.Busy(kv) || t.known.has(dirtyset.MakeID(kv)) {
			continue
		}
		k2, r2 = append(k2, kv), append(r2, rows[i])
	}
	return k2, r2
}

// exactUpdate brings an UPDATE's key values to their canonical form and
// checks that every change can be coalesced exactly, by the catalog's column
// types (see internal/catalog); false sends the statement to the database.
// Without a catalog it accepts everything.
func (cn *Connector) exactUpdate(info *stmtInfo, keyVals []any, changes []dirtyset.Change, clk *clockReading) bool {
	if info.keyCols == nil {
		return true
	}
	kind := cn.dia.Kind()
	for i, col := range info.keyCols {
		v, ok := catalog.KeyValue(kind, col, keyVals[i])
		if !ok {
			return false
		}
		keyVals[i] = v
	}
	for i := range changes {
		col := info.setCols[i]
		if changes[i].Delta {
			if !catalog.DeltaExact(kind, col, changes[i].Val) {
				return false
			}
			continue
		}
		v, ok := assignValue(kind, col, changes[i].Val, clk)
		if !ok || changes[i].Fn != dialect.FnNone && !extremeValueOK(kind, v) { // shapes.go
			return false
		}
		changes[i].Val = v
	}
	return true
}

// exactInsertRow brings one inserted row's values to their canonical form
// (key columns) or checks them (other columns), in place.
func (cn *Connector) exactInsertRow(info *stmtInfo, row []any, clk *clockReading) bool {
	if info.insCols == nil {
		return true
	}
	kind := cn.dia.Kind()
	for j, col := range info.insCols {
		var v any
		var ok bool
		if slices.Contains(info.keyPos, j) {
			v, ok = catalog.KeyValue(kind, col, row[j])
		} else {
			v, ok = assignValue(kind, col, row[j], clk)
		}
		if !ok {
			return false
		}
		row[j] = v
	}
	return true
}
