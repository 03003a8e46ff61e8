package flush

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/logagg"
)

// counters are a table's flush figures.
type counters struct {
	flushes     atomic.Int64 // flush transactions committed
	flushedRows atomic.Int64 // rows written by those transactions
	noMatch     atomic.Int64 // flushed UPDATEs that matched no row
	deadLetters atomic.Int64 // rows the database refused permanently
	flushErrors atomic.Int64 // failed flush attempts
}

// Stats are a table's flush figures.
type Stats struct {
	Flushes, FlushedRows, NoMatch, DeadLetters, FlushErrors int64
}

// Stats returns the table's flush figures now.
func (t *Table) Stats() Stats {
	return Stats{
		Flushes: t.stats.flushes.Load(), FlushedRows: t.stats.flushedRows.Load(),
		NoMatch: t.stats.noMatch.Load(), DeadLetters: t.stats.deadLetters.Load(),
		FlushErrors: t.stats.flushErrors.Load(),
	}
}

func markOf(table string, full bool, upTo uint64) durable.Mark {
	return durable.Mark{Table: table, Full: full, UpTo: upTo}
}

// writeRows writes rows in one transaction. When the database refuses the
// batch permanently it is split in halves until the refused rows are alone;
// those become dead letters and every other row is written. When the failure
// is transient the rows not written go back to the table, ahead of newer ones.
// mark says what the transaction records in the journal checkpoint; halves
// are partial flushes whatever the whole was.
func (t *Table) writeRows(b *dirtyset.Batch, rows []*dirtyset.Row, mark durable.Mark) error {
	if len(rows) == 0 {
		return nil
	}
	err := t.writeOnce(b, rows, mark)
	if err == nil {
		return nil
	}
	t.stats.flushErrors.Add(1)
	var cu *dialect.CommitUnknownError
	if errors.As(err, &cu) {
		committed, rerr := t.resolveCommit(cu)
		if errors.Is(rerr, dialect.ErrCommitAmbiguous) && t.f.cfg.Journal != nil {
			// The database cannot tell; the journal's checkpoints, written
			// by the transaction itself, can.
			committed, rerr = t.committedByCheckpoint(rows, rerr)
		}
		switch {
		case rerr != nil:
			// Neither retried (it may have committed) nor dropped: each row
			// goes to the dead letters with the reason, to be checked.
			b.Done(rows)
			for _, r := range rows {
				t.deadLetter(r, rerr, false)
			}
			return nil
		case committed:
			t.f.log.Warn("writeback: a flush's COMMIT got no answer but committed; its UPDATEs that matched no row are not reported", "table", t.cfg.Name, "rows", len(rows))
			b.Done(rows)
			t.stats.flushes.Add(1)
			t.stats.flushedRows.Add(int64(len(rows)))
			return nil
		}
		// Not committed: the rows are retried, whatever the class of the
		// error that broke the connection (an EOF says nothing of them).
		b.Fail(rows)
		return err
	}
	if isTransient(err) {
		b.Fail(rows)
		return err
	}
	mark.Full = false
	if len(rows) == 1 {
		b.Done(rows)
		t.consumed(rows[0], mark)
		t.deadLetter(rows[0], err, false)
		return nil
	}
	mid := len(rows) / 2
	if err := t.writeRows(b, rows[:mid], mark); err != nil {
		b.Fail(rows[mid:])
		return err
	}
	return t.writeRows(b, rows[mid:], mark)
}

// withConn runs fn on a flush connection within one attempt's timeout,
// replacing the connection when fn fails with a connection error.
func (t *Table) withConn(fn func(ctx context.Context, pc *pconn) error) error {
	ctx, cancel := context.WithTimeout(t.f.ctx, AttemptTimeout)
	defer cancel()
	pc, err := t.f.pool.get(ctx, t.cfg.Priority)
	if err != nil {
		return err
	}
	err = fn(ctx, pc)
	if err != nil && (isConnError(err) || !connValid(pc.conn)) {
		t.f.pool.discard(pc)
	} else {
		t.f.pool.put(pc)
	}
	return err
}

// connValid asks a driver connection that can tell whether it is still
// usable (pgx's does): a server killed mid-transaction leaves errors
// ("unexpected EOF", "conn closed") that say nothing of the class of the
// failure, on a connection that must not be used again.
func connValid(c driver.Conn) bool {
	v, ok := c.(driver.Validator)
	return !ok || v.IsValid()
}

// consumed records that a dead-lettered row's journal records are used up,
// in a transaction of its own, so recovery does not replay the row again.
// Should that fail, replay would meet the refused row again: it is logged.
func (t *Table) consumed(r *dirtyset.Row, mark durable.Mark) {
	j := t.f.cfg.Journal
	if j == nil || r.MaxLSN == 0 {
		return
	}
	err := t.withConn(func(ctx context.Context, pc *pconn) error {
		_, err := pc.writer.WriteTx(ctx, pc.conn, nil, 1, j.CheckpointTx(mark, []*dirtyset.Row{r}))
		return err
	})
	if err == nil {
		return
	}
	if l := t.f.cfg.RowLogs; l != nil {
		l.Add(unconsumedLog, t.cfg.Name, r.Key(), err)
		return
	}
	t.f.log.Error(unconsumedLog.Msg, "table", t.cfg.Name, "key", r.Key(), "err", err)
}

// unconsumedLog is the log line of rows whose consumption consumed could
// not record.
var unconsumedLog = logagg.Kind{Level: slog.LevelError, Msg: "writeback: could not record dead-lettered rows as consumed; a recovery would replay them"}

// writeOnce is one transaction: rows grouped by shape, handed to the
// dialect's writer, with the journal checkpoint of mark when there is a
// journal.
func (t *Table) writeOnce(b *dirtyset.Batch, rows []*dirtyset.Row, mark durable.Mark) error {
	groups, members := groupRows(rows, t.set.Names(), t.cfg.OrderBy)
	var inTx func(dialect.Exec) error
	if j := t.f.cfg.Journal; j != nil {
		if cp := j.CheckpointTx(mark, rows); cp != nil || t.f.cfg.Hook != nil {
			inTx = func(exec dialect.Exec) error {
				t.f.hook("after-rows")
				if cp != nil {
					if err := cp(exec); err != nil {
						return err
					}
				}
				t.f.hook("before-commit")
				return nil
			}
		}
		t.f.hook("before-tx")
	}
	var noMatch [][]int
	err := t.withConn(func(ctx context.Context, pc *pconn) error {
		var err error
		noMatch, err = pc.writer.WriteTx(ctx, pc.conn, groups, t.cfg.Batch, inTx)
		return err
	})
	if err != nil {
		return fmt.Errorf("writeback: flush %s: %w", t.cfg.Name, err)
	}
	if t.f.cfg.Journal != nil {
		t.f.hook("after-commit")
	}
	b.Done(rows)
	t.stats.flushes.Add(1)
	t.stats.flushedRows.Add(int64(len(rows)))
	for gi, idx := range noMatch {
		for _, i := range idx {
			t.stats.noMatch.Add(1)
			t.deadLetter(members[gi][i], nil, true)
		}
	}
	return nil
}

// deadLetter counts a row that did not take effect and hands it to OnDead.
func (t *Table) deadLetter(r *dirtyset.Row, err error, noMatch bool) {
	if !noMatch {
		t.stats.deadLetters.Add(1)
	}
	if t.f.cfg.OnDead != nil {
		t.f.cfg.OnDead(t, r, err, noMatch)
	}
}

// committedByCheckpoint asks the checkpoints whether the flush of rows
// committed. On an error it returns ambiguous joined with that error.
func (t *Table) committedByCheckpoint(rows []*dirtyset.Row, ambiguous error) (bool, error) {
	db := sql.OpenDB(drivercall.NoClose(t.f.cfg.Connector))
	db.SetMaxOpenConns(1)
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.f.ctx, AttemptTimeout)
	defer cancel()
	committed, err := t.f.cfg.Journal.Committed(ctx, db, t.cfg.Name, rows)
	if err != nil {
		return false, errors.Join(ambiguous, err)
	}
	t.f.log.Warn("writeback: a flush's outcome was decided by the journal's checkpoints", "table", t.cfg.Name, "rows", len(rows), "committed", committed)
	return committed, nil
}

// resolveCommit asks the database, until it answers, whether the
// transaction of cu committed. While the database is down it keeps asking,
// with the table's backoff, and counts each failed attempt as a failure
// (Status, log). Once Close has been asked for it gives up after the close
// timeout and returns an error.
func (t *Table) resolveCommit(cu *dialect.CommitUnknownError) (committed bool, err error) {
	stop := t.f.stop
	var giveUp <-chan time.Time
	for {
		var known bool
		err = t.withConn(func(ctx context.Context, pc *pconn) error {
			var err error
			committed, known, err = cu.Resolve(ctx, pc.conn)
			return err
		})
		if err == nil && known {
			return committed, nil
		}
		if errors.Is(err, dialect.ErrCommitAmbiguous) {
			return false, err // asking again cannot help
		}
		if err == nil {
			err = fmt.Errorf("%w: the transaction is still in progress", cu)
		}
		t.noteFailure(err)
		wait := time.NewTimer(max(0, time.Until(t.retryAt)))
		select {
		case <-wait.C:
		case <-stop:
			wait.Stop()
			stop = nil // closing: keep asking until the close timeout
			giveUp = time.After(t.f.cfg.CloseTimeout)
		case <-giveUp:
			wait.Stop()
			return false, fmt.Errorf("%w: not resolved before the close timeout: %v", cu, err)
		case <-t.f.ctx.Done():
			wait.Stop()
			return false, fmt.Errorf("%w: not resolved: %v", cu, err)
		}
	}
}

// groupRows groups rows by statement shape (operation, columns, deltas), in
// order of first appearance, and returns for each group the rows it holds.
//
// rows are sorted by dirtyset.Compare. A key may have several rows (an
// earlier failure, put back, and a newer row): the n-th row of a key goes
// into a group of generation n, and generations are written in order, so the
// older row's statements run first. One statement never carries a key twice
// (a PostgreSQL UPDATE ... FROM unnest would apply only one of them).
//
// orderBy is the table's order_by column, "" for none (dialect.Group.OrderBy).
func groupRows(rows []*dirtyset.Row, names *dirtyset.Names, orderBy string) ([]*dialect.Group, [][]*dirtyset.Row) {
	var g grouper
	gen, lastGen := 0, 0
	for i, r := range rows {
		gen = 0
		if i > 0 && rows[i-1].ID() == r.ID() {
			gen = lastGen + 1
		}
		lastGen = gen
		g.add(r, gen, names, len(rows))
	}
	for _, grp := range g.groups {
		grp.OrderBy = orderBy
	}
	return g.sorted()
}

// grouper collects rows into groups by generation and shape.
type grouper struct {
	groups  []*dialect.Group
	members [][]*dirtyset.Row
	shapes  []string
	gens    []int // each group's generation
	index   map[string]int
	last    int
	sb      strings.Builder
	// slab holds the statement arguments of UPDATE and UPSERT rows, many
	// rows to an allocation (an INSERT row's are its Vals, not copied).
	slab []any
	left int // rows not yet added, to size the next slab
}

// values returns r's statement arguments, from the slab.
func (g *grouper) values(r *dirtyset.Row) []any {
	g.left--
	if r.Op == dialect.Insert {
		return r.Vals
	}
	n := r.ValuesLen()
	if cap(g.slab)-len(g.slab) < n {
		// Room for the rows left if they are like this one, in slabs of
		// at most 64k values.
		g.slab = make([]any, 0, max(n, min(n*(g.left+1), 1<<16)))
	}
	start := len(g.slab)
	g.slab = r.AppendValues(g.slab)
	return g.slab[start:len(g.slab):len(g.slab)] // a dialect appending to a row must not write into the next
}

func (g *grouper) add(r *dirtyset.Row, gen int, names *dirtyset.Names, total int) {
	if g.index == nil {
		g.index, g.last, g.left = map[string]int{}, -1, total
	}
	// Rows mostly share one shape: compare with the last row's group
	// before building the shape's key.
	if g.last >= 0 && g.gens[g.last] == gen && dirtyset.SameShape(r, g.members[g.last][0]) {
		g.groups[g.last].Rows = append(g.groups[g.last].Rows, g.values(r))
		g.members[g.last] = append(g.members[g.last], r)
		return
	}
	key := g.shapeKey(r, gen)
	gi, ok := g.index[key]
	if !ok {
		gi = len(g.groups)
		g.index[key] = gi
		g.shapes = append(g.shapes, key)
		g.gens = append(g.gens, gen)
		grp := &dialect.Group{Schema: names.Schema, Table: names.Table, Op: r.Op, Cols: r.Cols(), KeyCols: names.KeyCols, Style: names.Style}
		var members []*dirtyset.Row
		if len(g.groups) == 0 {
			// Rows mostly share one shape.
			grp.Rows, members = make([][]any, 0, total), make([]*dirtyset.Row, 0, total)
		}
		if r.Op == dialect.Update {
			grp.Delta, grp.Fn = r.Delta(), r.Fn()
		}
		if r.Op == dialect.Upsert {
			grp.UpdCols, grp.UpdDelta = r.UCols(), r.UDelta()
		}
		g.groups = append(g.groups, grp)
		g.members = append(g.members, members)
	}
	g.groups[gi].Rows = append(g.groups[gi].Rows, g.values(r))
	g.members[gi] = append(g.members[gi], r)
	g.last = gi
}

// shapeKey is a row's group key; the generation leads it, so groups sort
// by generation first.
func (g *grouper) shapeKey(r *dirtyset.Row, gen int) string {
	sb := &g.sb
	sb.Reset()
	sb.WriteByte(byte(gen >> 24))
	sb.WriteByte(byte(gen >> 16))
	sb.WriteByte(byte(gen >> 8))
	sb.WriteByte(byte(gen))
	sb.WriteByte(byte('0' + r.Op))
	delta := r.Delta()
	for i, c := range r.Cols() {
		sb.WriteByte(0)
		sb.WriteString(c.Norm)
		if r.Op == dialect.Update && delta[i] {
			sb.WriteByte('+')
		}
		if fn := r.FnAt(i); fn != dialect.FnNone {
			sb.WriteByte('0' + byte(fn))
		}
	}
	if r.Op == dialect.Upsert {
		sb.WriteByte(1) // the update part
		uDelta := r.UDelta()
		for i, c := range r.UCols() {
			sb.WriteByte(0)
			sb.WriteString(c.Norm)
			if uDelta[i] {
				sb.WriteByte('+')
			}
		}
	}
	return sb.String()
}

// sorted returns the groups in shape order (updates first), whatever order
// rows came in, with their members.
func (g *grouper) sorted() ([]*dialect.Group, [][]*dirtyset.Row) {
	order := make([]int, len(g.groups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(g.shapes[a], g.shapes[b]) })
	groups := make([]*dialect.Group, len(g.groups))
	members := make([][]*dirtyset.Row, len(g.groups))
	for i, gi := range order {
		groups[i], members[i] = g.groups[gi], g.members[gi]
	}
	return groups, members
}

// connectFailure is a failure to connect. It is always retried: whatever its
// SQLSTATE (an authentication error while the server restarts, a database
// not yet created), it says nothing about the rows, which must not be
// dead-lettered for it.
type connectFailure struct{ err error }

func (e *connectFailure) Error() string { return "writeback: flusher connect: " + e.err.Error() }
func (e *connectFailure) Unwrap() error { return e.err }

// isTransient reports whether retrying the same rows may succeed.
func isTransient(err error) bool {
	var cp *durable.CheckpointError
	var cf *connectFailure
	if errors.As(err, &cp) || errors.As(err, &cf) {
		return true
	}
	return dialect.ClassOf(err) != dialect.Permanent
}

// isConnError reports whether a flush connection should be replaced.
func isConnError(err error) bool {
	return errors.Is(err, driver.ErrBadConn) || dialect.ClassOf(err) == dialect.Connection
}
