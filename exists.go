package writeback

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file makes a buffered write's RowsAffected and key errors exact
// (rows_affected: exact). Direct execution tells an application whether its
// UPDATE matched a row and whether its INSERT hit an existing key; ORMs act
// on it (GORM's Save inserts when the UPDATE matched nothing). A buffered
// write answers from what the connector knows: a key with a row pending in
// the dirty set, or in the table's set of keys known to exist, exists; any
// other key costs one point query (a probe) before the write is buffered or
// sent to the database, which then answers it as it would directly.

// probeTimeout bounds a probe: a database too slow to answer one is treated
// as one that cannot be reached (the write is acknowledged as with
// rows_affected: assume), so a stalled database does not stall writes of
// hot keys behind the cold ones.
const probeTimeout = time.Second

// minKnownRows is the least number of keys a table remembers as existing;
// a table remembers twice its max_dirty when that is more.
const minKnownRows = 1 << 16

// knownRows is a back table's bounded set of keys whose rows are known to
// exist in the database. It learns them from probes, from writes that went
// through and from flushed INSERTs, and forgets the whole set whenever a
// statement of this connector may have deleted rows (DELETE, TRUNCATE,
// DDL, any write it cannot read by key). Rows deleted by other processes
// are not seen: an UPDATE of such a key reports one row until the key
// leaves the set, and its flush then matches nothing (Stats.NoMatch).
//
// A thread-safe shell over golang-lru's simple LRU: hot keys stay, cold
// ones are forgotten and probed again.
type knownRows struct {
	mu   sync.Mutex // guards keys and guards, and orders learn against forget
	keys *simplelru.LRU[dirtyset.ID, struct{}]
	// guards holds the keys whose rows are known to satisfy a guard
	// (guard.go); hasGuards is set once one was learned.
	guards    *simplelru.LRU[guardKey, bool]
	specs     map[string][]string // every guards' spec learned, and its columns
	hasGuards atomic.Bool
	epoch     atomic.Uint64 // raised by every forget
}

func newKnownRows(size int) *knownRows {
	keys, err := simplelru.NewLRU[dirtyset.ID, struct{}](max(size, minKnownRows), nil)
	if err != nil { // the size is positive
		panic("writeback: " + err.Error())
	}
	guards, err := simplelru.NewLRU[guardKey, bool](max(size, minKnownRows), nil)
	if err != nil {
		panic("writeback: " + err.Error())
	}
	return &knownRows{keys: keys, guards: guards}
}

// has reports whether id's row is known to exist. It keeps id's place among
// the recently used.
func (k *knownRows) has(id dirtyset.ID) bool {
	k.mu.Lock()
	_, ok := k.keys.Get(id)
	k.mu.Unlock()
	return ok
}

// learn adds ids, unless the set was forgotten since epoch: what a probe
// found before a DELETE of this connector may be gone.
func (k *knownRows) learn(epoch uint64, ids ...dirtyset.ID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.epoch.Load() != epoch {
		return
	}
	for _, id := range ids {
		k.keys.Add(id, struct{}{})
	}
}

// forget drops every key.
func (k *knownRows) forget() {
	k.mu.Lock()
	k.epoch.Add(1)
	k.keys.Purge()
	k.guards.Purge()
	k.mu.Unlock()
}

// existence answers the dirty set for one buffering attempt: a key the
// set knows exists; any other is unknown until the attempt's probe has
// found the rows missing (absent).
func (k *knownRows) existence(absent bool) dirtyset.Exists {
	return func(id dirtyset.ID) dirtyset.Existence {
		switch {
		case k.has(id):
			return dirtyset.ExistYes
		case absent:
			return dirtyset.ExistNo
		}
		return dirtyset.ExistUnknown
	}
}

// writeAttempt is what one Exec's buffering attempts share: the probe's
// answer survives a retry.
type writeAttempt struct {
	c *conn
	// probeKeys are the canonical keys the dirty set asked about (the last
	// Probe outcome); present and absent are the probe's answer.
	probeKeys       [][]any
	present, absent bool
	// probed: the ids of the keys an upsert of MySQL probed (bufferDuplicateKey).
	probed []dirtyset.ID
	// assume: the probe could not be made (the database is unreachable or
	// failing): the write is acknowledged as with rows_affected: assume.
	assume bool
}

// guardsHold returns the callback that tells the dirty set whether a key's
// row satisfies the UPDATE's guards in the database.
func (a *writeAttempt) guardsHold(t *tableState, guards []dirtyset.Guard) dirtyset.GuardsHold {
	return func(id dirtyset.ID) dirtyset.Existence {
		switch {
		case a.present:
			return dirtyset.ExistYes
		case a.absent:
			return dirtyset.ExistNo
		}
		return t.known.guardsHold(id, guards)
	}
}

// exists returns the existence callback for table t in this attempt: nil
// when the table's results are assumed.
func (a *writeAttempt) exists(t *tableState) dirtyset.Exists {
	if t.known == nil || a == nil || a.assume {
		return nil
	}
	if a.present {
		return func(dirtyset.ID) dirtyset.Existence { return dirtyset.ExistYes }
	}
	return t.known.existence(a.absent)
}

// probe asks the database whether any row of the attempt's probeKeys
// exists, and learns them when they do. It returns false when the write
// must not be buffered (an UPDATE of a missing row: the database answers
// it). It never fails the write: a probe that cannot be made makes the
// attempt assume.
func (cn *Connector) probe(ctx context.Context, a *writeAttempt, t *tableState, info *stmtInfo) (buffer bool) {
	keys := a.probeKeys
	a.probeKeys = nil
	if t.set.Snapshot().Failing || cn.recovery.Load() != nil {
		a.assume = true // the database is away: a probe would only wait for it
		return true
	}
	epoch := t.known.epoch.Load()
	var found bool
	var err error
	if len(keys) == 1 && len(info.guards) == 0 {
		found, err = cn.probeKey(ctx, a.c, t, info, keys[0]) // joined with concurrent probes
	} else {
		t.probes.Add(1)
		found, err = cn.probeRows(ctx, a.c, info, keys)
	}
	if err != nil {
		if ctx.Err() != nil {
			return false // the caller gave up: the statement fails with its context at the database
		}
		t.probeFailures.Add(1)
		a.assume = true
		return true
	}
	if !found {
		// An INSERT is buffered; an UPDATE matches nothing, as it would
		// have when the database answered: it is answered with 0 rows.
		a.absent = true
		if len(info.guards) > 0 && len(keys) == 1 {
			t.known.learnGuards(epoch, dirtyset.MakeID(keys[0]), info.guards, false)
		}
		return true
	}
	ids := make([]dirtyset.ID, len(keys))
	for i, kv := range keys {
		ids[i] = dirtyset.MakeID(kv)
	}
	if len(ids) == 1 {
		t.known.learn(epoch, ids...)
		if len(info.guards) > 0 {
			t.known.learnGuards(epoch, ids[0], info.guards, true)
		}
	}
	a.present = true
	// An ignored row answers 0; a MySQL upsert of one row found is an update.
	return info.c.Kind == sqlparse.Update || info.ignore || info.c.OnDuplicateKey && len(keys) == 1
}

// probeRows runs SELECT 1 FROM t WHERE (k = ...) OR ... LIMIT 1 on the
// connection's base connection, outside any lock.
func (cn *Connector) probeRows(ctx context.Context, c *conn, info *stmtInfo, keys [][]any) (bool, error) {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	query, args := probeSQL(info.names, info.c.Style, keys, info.c.Guards)
	rows, err := c.queryBase(pctx, query, args)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	switch err := rows.Next(dest); {
	case err == nil:
		return true, nil
	case errors.Is(err, io.EOF):
		return false, nil
	default:
		return false, err
	}
}

// closeStmtRows closes the statement a probe prepared with its rows.
type closeStmtRows struct {
	driver.Rows
	st driver.Stmt
}

func (r closeStmtRows) Close() error {
	err := r.Rows.Close()
	if serr := r.st.Close(); err == nil {
		err = serr
	}
	return err
}

// probeSQL is the probe of keys, written with the names and placeholder
// style the application used for the table.
func probeSQL(names *dirtyset.Names, style sqlparse.ParamStyle, keys [][]any, guards []sqlparse.Guard) (string, []driver.NamedValue) {
	var sb strings.Builder
	sb.WriteString("SELECT 1 FROM ")
	writeProbeTable(&sb, names)
	sb.WriteString(" WHERE ")
	args := make([]driver.NamedValue, 0, len(keys)*len(names.KeyCols))
	for i, kv := range keys {
		if i > 0 {
			sb.WriteString(" OR ")
		}
		sb.WriteByte('(')
		args = writeProbeKey(&sb, names, style, kv, args)
		for _, g := range guards {
			sb.WriteString(" AND ")
			sb.WriteString(g.Col.Raw)
			if g.NotNull {
				sb.WriteString(" IS NOT NULL")
			} else {
				sb.WriteString(" IS NULL")
			}
		}
		sb.WriteByte(')')
	}
	sb.WriteString(" LIMIT 1")
	return sb.String(), args
}

// writeProbeTable writes the table as the application named it.
func writeProbeTable(sb *strings.Builder, names *dirtyset.Names) {
	if names.Schema != nil {
		sb.WriteString(names.Schema.Raw)
		sb.WriteByte('.')
	}
	sb.WriteString(names.Table.Raw)
}

// writeProbeKey writes k1 = <ph> AND k2 = <ph> for one key's values and
// returns args with them appended.
func writeProbeKey(sb *strings.Builder, names *dirtyset.Names, style sqlparse.ParamStyle, kv []any, args []driver.NamedValue) []driver.NamedValue {
	for j, v := range kv {
		if j > 0 {
			sb.WriteString(" AND ")
		}
		args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: v})
		sb.WriteString(names.KeyCols[j].Raw)
		sb.WriteString(" = ")
		if style == sqlparse.ParamDollar {
			sb.WriteString("$" + strconv.Itoa(len(args)))
		} else {
			sb.WriteByte('?')
		}
	}
	return args
}

// forgetAfter runs after every statement that went to the database: a
// write to back tables that is not an INSERT or an UPDATE by key may have
// deleted rows, so their sets are forgotten, and, inside a transaction,
// forgotten again when it ends (other connections may have learned the
// rows while it held the deletion uncommitted).
func (c *conn) forgetAfter(info *stmtInfo) {
	if !info.writes {
		return
	}
	byKey := info.target != nil && (info.c.Kind == sqlparse.Insert || info.c.Kind == sqlparse.Update || info.c.Kind == sqlparse.Upsert)
	for _, t := range info.barrier {
		if t.known == nil {
			continue
		}
		if t == info.target && byKey {
			// A write by key deletes no row, but may set a guarded column.
			t.known.dropGuards()
			if c.inTx && t.known.hasGuards.Load() {
				c.txState().forget[t] = true
			}
			continue
		}
		t.known.forget()
		if c.inTx {
			c.txState().forget[t] = true
		}
	}
}

// learnThrough learns from a write that went to the database outside a
// transaction: the keys of an INSERT that succeeded and of an UPDATE by key
// that matched its row exist.
func (cn *Connector) learnThrough(c *conn, info *stmtInfo, args []driver.NamedValue, res driver.Result, err error) {
	t := info.target
	if t == nil || t.known == nil || err != nil || c.inTx {
		return
	}
	epoch := t.known.epoch.Load()
	switch info.c.Kind {
	case sqlparse.Update:
		if n, rerr := res.RowsAffected(); rerr != nil || n == 0 {
			return
		}
	case sqlparse.Insert, sqlparse.Upsert:
		if info.ignore {
			// A row skipped for another reason than its key (MySQL's
			// INSERT IGNORE skips errors too) does not exist.
			if n, rerr := res.RowsAffected(); rerr != nil || n != int64(len(info.c.Rows)) {
				return
			}
		}
	default:
		return
	}
	if ids, ok := cn.stmtKeys(info, args); ok {
		t.known.learn(epoch, ids...)
	}
}
