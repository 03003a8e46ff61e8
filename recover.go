package writeback

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/flush"
	"github.com/writeback-go/writeback/internal/journal"
)

// This file joins the connector to its journal (internal/durable): opening
// it with the rules' settings, and recovery, which replays the records the
// database lacks into the dirty set before the connector serves anything.
// When the database is down at open, recovery waits for it (recoverLater):
// the connector serves at once, and the held records are placed before
// everything written since, the first time a flush reaches the database.

// openJournal opens the journal the rules name.
func (c *Connector) openJournal(rules *Rules, cfg *config) (*durable.Journal, error) {
	jr := rules.Journal
	if jr.NATS != "" {
		return c.openReplicatedJournal(rules, cfg)
	}
	where := "journal " + jr.Path
	if rules.File != "" && jr.Line > 0 {
		where = fmt.Sprintf("%s:%d: journal %s", rules.File, jr.Line, jr.Path)
	}
	policy := [...]journal.Policy{FsyncEverysec: journal.Everysec, FsyncAlways: journal.Always, FsyncNo: journal.No}[jr.Fsync]
	return durable.Open(jr.Path, c.dia.Kind(), c.buf.sets(), durable.Options{
		Fsync: policy, Where: where, Log: cfg.log,
		SegmentBytes: cfg.segmentBytes, CompactEvery: cfg.compactEvery, Hook: cfg.hook, Fault: cfg.journalFault,
		CheckSchema: rules.SchemaCheckOnly,
	})
}

// natsJournalImport is what a program imports to link the NATS journal.
const natsJournalImport = `import _ "github.com/writeback-go/writeback/natsjournal"`

// openReplicatedJournal opens the replicated journal (journal.nats) through
// the registered NATS backend.
func (c *Connector) openReplicatedJournal(rules *Rules, cfg *config) (*durable.Journal, error) {
	jr := rules.Journal
	where := "journal nats " + jr.NATS
	if rules.File != "" && jr.Line > 0 {
		where = fmt.Sprintf("%s:%d: journal.nats", rules.File, jr.Line)
	}
	if !durable.HasBackend("nats") {
		return nil, fmt.Errorf("writeback: %s: the NATS journal is not linked into this program: add %s", where, natsJournalImport)
	}
	instance := cmp.Or(cfg.instance, rules.Instance)
	if instance == "" {
		return nil, fmt.Errorf("writeback: %s: a replicated journal needs this process's name: instance: in the rules, instance= in the DSN, or WithInstance", where)
	}
	bc := durable.BackendConfig{
		URL:         jr.NATS,
		Stream:      cmp.Or(jr.Stream, DefaultStream),
		Instance:    instance,
		Replicas:    cmp.Or(jr.Replicas, DefaultReplicas),
		Lease:       cmp.Or(jr.Lease, DefaultLease),
		Takeover:    jr.Takeover && !cfg.takeover,
		NoLeaseWait: cfg.takeover,
		Where:       where,
		Log:         cfg.log,
		Hook:        cfg.hook,
	}
	if bc.Takeover {
		bc.TakeOver = c.takeOver
	}
	return durable.OpenBackend("nats", bc, c.dia.Kind(), c.buf.sets(), durable.Options{
		Log: cfg.log, CompactEvery: cfg.compactEvery, CheckSchema: rules.SchemaCheckOnly,
	})
}

// takeOver applies the unapplied records of a dead instance exactly once: a
// connector of that instance, on the same database and rules, opens (taking
// the instance's lease, or failing when another process took it first),
// recovers its records, and closes (which releases the lease).
func (c *Connector) takeOver(ctx context.Context, instance string) error {
	inherit := func(t *config) error {
		*t = c.cfg // this connector's settings and dialect
		t.deadFile, t.onCrash = "", nil
		return nil
	}
	tc, err := NewConnector(drivercall.NoClose(c.base), c.rules, inherit, withTakeoverOf(instance))
	if err != nil {
		return err
	}
	return tc.Shutdown(ctx)
}

// recoverJournal replays the journal's unapplied records and flushes them.
func (c *Connector) recoverJournal(ctx context.Context) error {
	db := sql.OpenDB(drivercall.NoClose(c.base))
	db.SetMaxOpenConns(1)
	defer db.Close()
	replayed, err := c.buf.journal.Recover(ctx, db, replayer{c})
	if err != nil {
		return err
	}
	if replayed > 0 {
		c.log.Info("writeback: journal replayed", "journal", c.buf.journal.Dir(), "rows", replayed)
	}
	return nil
}

// heldRecovery is a recovery waiting for the database: the connector
// opened while it was down, with the journal's records held in memory.
type heldRecovery struct {
	held   *durable.Held
	done   atomic.Bool     // the held records are reconciled
	mu     sync.Mutex      // one attempt at a time
	failed error           // under mu: a failure retrying cannot mend
	ctx    context.Context // the retry loop's; cancelled at Close
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

// deferRecovery reports whether err, met by recovery at open, lets the
// connector open without the database (with a local journal only): the checkpoints could not be read
// (nothing was replayed yet) for want of a connection, and there is a
// catalog to buffer by.
func (c *Connector) deferRecovery(err error) bool {
	if !c.buf.journal.Local() {
		// A replicated journal numbers its records above the database's
		// checkpoints once it read them (another host's clock may be
		// behind): it takes no record before.
		return false
	}
	var ce *durable.CheckpointsError
	if !errors.As(err, &ce) || dialect.ClassOf(err) == dialect.Permanent {
		return false
	}
	return !hasCatalog(c.dia) || c.schema.state.Load() != nil
}

// recoverLater holds the journal's records in memory and starts the loop
// that reconciles them once the database answers.
func (c *Connector) recoverLater(cause error) error {
	held, err := c.buf.journal.Hold()
	if err != nil {
		return err
	}
	rc := &heldRecovery{held: held}
	rc.ctx, rc.stop = context.WithCancel(context.Background())
	c.recovery.Store(rc)
	c.log.Warn("writeback: the database is down at open; the journal's records are held and reconciled when it answers, and writes are buffered meanwhile", "journal", c.buf.journal.Dir(), "records", held.Records(), "err", cause)
	rc.wg.Add(1)
	go c.retryRecovery(rc)
	return nil
}

// retryRecovery tries to finish the held recovery with a growing pause
// (250 ms to 5 s) until it is done, fails for good, or Close stops it.
// Flushes try too (finishRecovery is their gate), so a barrier does not
// wait for this loop.
func (c *Connector) retryRecovery(rc *heldRecovery) {
	defer rc.wg.Done()
	pause := 250 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-rc.ctx.Done():
			return
		case <-timer.C:
		}
		actx, acancel := context.WithTimeout(rc.ctx, flush.AttemptTimeout)
		err := c.finishRecovery(actx)
		acancel()
		if err == nil {
			for _, t := range c.buf.ordered {
				t.flush.Kick()
			}
			return
		}
		if rc.permanent() {
			return
		}
		timer.Reset(pause)
		pause = min(2*pause, 5*time.Second)
	}
}

func (rc *heldRecovery) permanent() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.failed != nil
}

// stopRetry ends the retry loop (at Close, before the final flush).
func (rc *heldRecovery) stopRetry() {
	if rc != nil {
		rc.stop()
		rc.wg.Wait()
	}
}

// finishRecovery is every flush's gate while a recovery is held: it reads
// the live catalog and the checkpoints, and adopts the held records the
// database lacks into the dirty set ahead of the rows written since the
// open. Until it succeeds no flush writes anything, so nothing newer can
// overtake a held record. A replay error (the journal does not fit the
// rules) stops it for good: the records stay in the journal and Close
// reports them.
func (c *Connector) finishRecovery(ctx context.Context) error {
	rc := c.recovery.Load()
	if rc == nil || rc.done.Load() {
		return nil
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.done.Load() {
		return nil
	}
	if rc.failed != nil {
		return rc.failed
	}
	if c.schema.pending.Load() {
		c.schema.mu.Lock()
		err := c.loadSchema(ctx, false)
		c.schema.mu.Unlock()
		if err != nil {
			return err
		}
	}
	db := sql.OpenDB(drivercall.NoClose(c.base))
	db.SetMaxOpenConns(1)
	defer db.Close()
	rp := &olderReplayer{c: c, older: map[*tableState]*dirtyset.Table{}}
	n, err := c.buf.journal.RecoverHeld(ctx, db, rc.held, rp)
	rp.adoptAll()
	if err != nil {
		if rp.touched {
			rc.failed = err
			c.log.Error("writeback: the journal's held records cannot be replayed; nothing is flushed until the connector is reopened with rules that fit them", "journal", c.buf.journal.Dir(), "err", err)
		}
		return err
	}
	rc.done.Store(true)
	c.log.Info("writeback: journal reconciled with the database", "journal", c.buf.journal.Dir(), "rows", n)
	return nil
}

// olderReplayer replays held records into older tables (dirtyset.NewOlder)
// and adopts them into the live ones, so they are flushed before the rows
// the connector took while the database was down.
type olderReplayer struct {
	c       *Connector
	older   map[*tableState]*dirtyset.Table
	touched bool // a record reached Replay: a failure can no longer be retried
}

func (r *olderReplayer) Buffers(table string) bool   { return r.c.buf.tables[table] != nil }
func (r *olderReplayer) Flush(context.Context) error { return nil }

// Replay buffers one held record in its table's older table. A record that
// cannot be coalesced with the older rows already there (written after
// they were flushed) starts a new older table, once the current one is
// adopted: adopted rows keep their order.
func (r *olderReplayer) Replay(_ context.Context, rec *durable.Record, lsn uint64, cp *durable.Checkpoints) (int, error) {
	r.touched = true
	t := r.c.buf.tables[rec.Table]
	try := func() (dirtyset.Outcome, int, error) {
		o := r.older[t]
		if o == nil {
			o = t.set.NewOlder()
			r.older[t] = o
		}
		return replayInto(t, o, rec, lsn, cp, r.c.buf.journal.Replayed(lsn))
	}
	out, n, err := try()
	if err != nil || n == 0 || out == dirtyset.Buffered {
		return n, err
	}
	t.set.Adopt(r.older[t])
	delete(r.older, t)
	if out, n, err = try(); err == nil && out != dirtyset.Buffered {
		err = fmt.Errorf("writeback: journal %s: record %d of %s cannot be buffered again", r.c.buf.journal.Dir(), lsn, t.rule.Name)
	}
	return n, err
}

// adoptAll hands every older table still open to its live table.
func (r *olderReplayer) adoptAll() {
	for t, o := range r.older {
		t.set.Adopt(o)
	}
	r.older = nil
}

// replayer is the connector as durable.Journal.Recover sees it.
type replayer struct{ c *Connector }

func (r replayer) Buffers(table string) bool       { return r.c.buf.tables[table] != nil }
func (r replayer) Flush(ctx context.Context) error { return r.c.Flush(ctx) }

// Replay buffers one journal record again, with its own LSN, skipping the
// rows the database says are applied. A record that cannot be coalesced with
// what is already replayed (when it was written the earlier rows had been
// flushed) flushes the table first.
func (r replayer) Replay(ctx context.Context, rec *durable.Record, lsn uint64, cp *durable.Checkpoints) (int, error) {
	c := r.c
	t := c.buf.tables[rec.Table]
	jw := c.buf.journal.Replayed(lsn)
	out, n, err := replayInto(t, t.set, rec, lsn, cp, jw)
	if err != nil || n == 0 || out == dirtyset.Buffered {
		return n, err
	}
	if err := c.buf.barrier(ctx, []*tableState{t}); err != nil {
		return 0, c.buf.journal.Unreachable(err)
	}
	if out, _, _ := replayInto(t, t.set, rec, lsn, cp, jw); out != dirtyset.Buffered {
		return 0, fmt.Errorf("writeback: journal %s: record %d of %s cannot be buffered again", c.buf.journal.Dir(), lsn, t.rule.Name)
	}
	return n, nil
}

// replayInto buffers the rows of journal record lsn that cp does not cover
// in set (t's own, or an older one), and returns the outcome and how many
// rows that was (0: nothing to replay).
func replayInto(t *tableState, set *dirtyset.Table, rec *durable.Record, lsn uint64, cp *durable.Checkpoints, jw *durable.Write) (dirtyset.Outcome, int, error) {
	keys := rec.Keys
	if rec.Op == dialect.Update {
		keys = [][]any{rec.Key}
	}
	// The rows the database lacks, by index in the record.
	var todo []int
	for i, k := range keys {
		if !t.set.CheckKey(k) || !set.CheckKey(k) {
			return 0, 0, fmt.Errorf("writeback: journal record %d: key of %s does not match the table's key kinds", lsn, t.rule.Name)
		}
		if !cp.Covers(t.rule.Name, dirtyset.KeyText(k), lsn) {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return dirtyset.Buffered, 0, nil
	}
	pick := func(all [][]any) [][]any {
		out := make([][]any, len(todo))
		for j, i := range todo {
			out[j] = all[i]
		}
		return out
	}
	var out dirtyset.Outcome
	switch rec.Op {
	case dialect.Update:
		out, _ = set.Update(rec.Key, rec.Changes, &rec.Names, jw, false)
	case dialect.Insert:
		out, _ = set.Insert(pick(rec.Keys), pick(rec.Rows), rec.Cols, &rec.Names, jw, false)
	case dialect.Upsert:
		upd := make([][]dirtyset.Change, len(todo))
		for j, i := range todo {
			upd[j] = rec.Upd[i]
		}
		out, _ = set.Upsert(pick(rec.Keys), pick(rec.Rows), rec.Cols, upd, &rec.Names, jw, dirtyset.AdmitNow)
	default:
		return dirtyset.Buffered, 0, nil
	}
	return out, len(todo), nil
}
