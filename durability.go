package writeback

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/journal"
)

// This file joins the journal (internal/journal) to the buffer: every
// buffered statement is appended as one record while its row's shard is
// locked; ack: disk waits for the record's fsync; flushes record in the
// database what they applied (checkpoint.go); recovery replays the rest when
// a connector opens; compaction drops what is applied.

// journalIDFile holds the journal directory's random id, which names it in
// the checkpoint tables.
const journalIDFile = "WRITEBACK_ID"

// compactEvery is the least time between two compactions: a compaction may
// roll a segment (a few fsyncs), which steady load must not pay per flush.
// A variable so crash tests can compact often.
var compactEvery = 2 * time.Second

// journalSegmentBytes, when not 0, overrides the journal's segment size, so
// crash tests see segments compacted away. Tests only.
var journalSegmentBytes int64

// durability is a connector's journal and what goes with it.
type durability struct {
	j      *journal.Journal
	dir    string
	flavor cpFlavor
	log    *slog.Logger

	idp atomic.Pointer[string] // the journal id (replaced if the journal's LSNs went back)

	// ready is set once recovery is done: before, the tables' rows are not
	// all replayed yet, so nothing may be compacted.
	ready atomic.Bool

	compactMu   sync.Mutex // serialises compactions (flusher, recovery, Close)
	compacted   uint64     // highest upTo compacted
	lastCompact time.Time

	appendFailed  atomic.Bool // the first journal append failure was logged
	compactFailed atomic.Bool // the first compaction failure was logged

	recBuf sync.Pool // *[]byte, to encode records in
}

func (d *durability) id() string { return *d.idp.Load() }

// openDurability opens the journal the rules name and reads (or makes) its id.
func openDurability(j *JournalRule, rulesFile string, log *slog.Logger, kind dialect.Kind) (*durability, error) {
	where := "journal " + j.Path
	if rulesFile != "" && j.Line > 0 {
		where = fmt.Sprintf("%s:%d: journal %s", rulesFile, j.Line, j.Path)
	}
	policy := [...]journal.Policy{FsyncEverysec: journal.Everysec, FsyncAlways: journal.Always, FsyncNo: journal.No}[j.Fsync]
	opts := journal.Options{Fsync: policy, Logger: log, SegmentBytes: journalSegmentBytes}
	if flushHook != nil {
		opts.Fault = func(point string) error {
			hook("journal:" + point)
			return nil
		}
	}
	jr, err := journal.Open(j.Path, opts)
	if err != nil {
		if errors.Is(err, journal.ErrInUse) {
			return nil, fmt.Errorf("writeback: %s: another connector (in this or another process) has this journal open; a journal serves one connector at a time: %w", where, err)
		}
		return nil, fmt.Errorf("writeback: %s: %w", where, err)
	}
	id, err := journalID(j.Path, false)
	if err != nil {
		_ = jr.Close()
		return nil, fmt.Errorf("writeback: %s: %w", where, err)
	}
	d := &durability{j: jr, dir: j.Path, log: log}
	d.idp.Store(&id)
	if kind == dialect.Postgres {
		d.flavor = cpPostgres
	}
	return d, nil
}

// journalID reads the directory's id, creating it the first time (or anew
// when fresh is set): written to a temporary file, synced, renamed into
// place and the directory synced, so the id is whole or absent after a crash.
func journalID(dir string, fresh bool) (string, error) {
	path := filepath.Join(dir, journalIDFile)
	if !fresh {
		b, err := os.ReadFile(path)
		if err == nil {
			if id := strings.TrimSpace(string(b)); id != "" {
				return id, nil
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var df *os.File
		if df, err = os.Open(dir); err == nil {
			err = df.Sync()
			df.Close()
		}
	}
	if err != nil {
		return "", fmt.Errorf("journal id: %w", err)
	}
	return id, nil
}

// journalWrite is how one buffered statement reaches the journal. A live
// write carries its encoded record; a replayed one carries the LSN it already
// has (it is not appended again). A nil *journalWrite means no journal.
type journalWrite struct {
	d   *durability
	rec []byte
	lsn uint64
}

// logLocked appends the record, or takes the replayed record's LSN, and
// notes it in the table. The caller holds the shard lock of every row the
// record touches (rows of them), so per row, journal order is coalescing
// order. An error means the write must not be buffered: the journal failed,
// and the statement goes to the database instead.
func (w *journalWrite) logLocked(t *tableState, rows int) (uint64, error) {
	if w == nil {
		return 0, nil
	}
	lsn := w.lsn
	if lsn == 0 {
		var err error
		if lsn, err = w.d.j.Append(w.rec); err != nil {
			if w.d.appendFailed.CompareAndSwap(false, true) {
				w.d.log.Error("writeback: journal append failed; buffered writes go to the database until the connector is reopened", "journal", w.d.dir, "err", err)
			}
			return 0, err
		}
	}
	t.noteLSN(lsn)
	t.unapplied.Add(int64(rows))
	return lsn, nil
}

// getBuf and putBuf recycle record encoding buffers.
func (d *durability) getBuf() *[]byte {
	if b, ok := d.recBuf.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 256)
	return &b
}

func (d *durability) putBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		d.recBuf.Put(b)
	}
}

// compactPoint is the highest LSN every record up to which is applied (or
// consumed): LastLSN when no table has rows pending, otherwise the lowest
// checkpoint watermark of a table that has. It is read on the flusher's
// goroutine (or with the flusher stopped), so no flush is half done.
//
// LastLSN is read first: a record up to it was appended while its writer held
// the shard lock, so once a table's shard locks are taken its row is counted
// in pending.
func (d *durability) compactPoint(b *buffer) uint64 {
	upTo := d.j.LastLSN()
	for _, t := range b.ordered {
		for _, s := range t.shards {
			s.mu.Lock()
		}
		busy := t.pending.Load() > 0
		for _, s := range t.shards {
			s.mu.Unlock()
		}
		if busy {
			upTo = min(upTo, t.applied.Load())
		}
	}
	return upTo
}

// compact drops the journal's applied segments, at most every compactEvery
// unless forced. It returns the journal's error, which makes it unusable.
func (d *durability) compact(b *buffer, force bool) error {
	if !d.ready.Load() && !force {
		return nil
	}
	d.compactMu.Lock()
	defer d.compactMu.Unlock()
	now := time.Now()
	if !force && now.Sub(d.lastCompact) < compactEvery {
		return nil
	}
	// Noted even when there is nothing to drop, or the flusher, woken for
	// the compaction (compactWait), would spin until a flush advances it.
	d.lastCompact = now
	upTo := d.compactPoint(b)
	if upTo <= d.compacted {
		return nil
	}
	if err := d.j.Compact(upTo); err != nil {
		return err
	}
	d.compacted = upTo
	return nil
}

// compactWait is how long the flusher may sleep before a compaction is due
// (an hour when none is).
func (d *durability) compactWait(now time.Time) time.Duration {
	if !d.ready.Load() {
		return time.Hour
	}
	d.compactMu.Lock()
	defer d.compactMu.Unlock()
	if d.j.LastLSN() <= d.compacted {
		return time.Hour
	}
	return max(d.lastCompact.Add(compactEvery).Sub(now), 0)
}

// noCloseConnector hides a connector's Close from sql.OpenDB, whose Close
// would close it: recovery borrows the base connector for a moment.
type noCloseConnector struct{ driver.Connector }

// recoverJournal replays the journal's unapplied records into the buffer
// and flushes them, before the connector serves anything. The database says
// which records are applied (checkpoint.go): those are skipped, so replay is
// exactly-once. On an error the journal is left as it is.
func (c *Connector) recoverJournal(ctx context.Context) error {
	d := c.buf.dur
	unreachable := func(err error) error {
		return fmt.Errorf("writeback: journal %s: recovery needs the database, which failed (the journal is kept and replayed on the next open): %w", d.dir, err)
	}
	db := sql.OpenDB(noCloseConnector{c.base})
	db.SetMaxOpenConns(1)
	cp, err := loadCheckpoints(ctx, db, d.flavor, d.id())
	db.Close()
	if err != nil {
		return unreachable(err)
	}
	for _, t := range c.buf.ordered {
		t.applied.Store(cp.watermark[t.rule.Name])
	}
	replayed := 0
	// Every record the journal still holds is read, not only those above
	// the lowest watermark of the rules' tables: a table the rules no longer
	// buffer may have records below it that are not applied. Compaction
	// keeps what is held close to what is unapplied.
	err = d.j.Replay(0, func(lsn uint64, b []byte) error {
		rec, err := decodeRecord(b)
		if err != nil {
			return fmt.Errorf("writeback: journal %s: record %d: %w", d.dir, lsn, err)
		}
		if lsn <= cp.watermark[rec.table] {
			return nil
		}
		t := c.buf.tables[rec.table]
		if t == nil && !recordCovered(cp, rec, lsn) {
			return fmt.Errorf("writeback: journal %s: record %d is an unapplied write to table %s, which the rules no longer buffer; restore its rule (mode: back) so that recovery can apply it", d.dir, lsn, rec.table)
		}
		if t == nil {
			return nil
		}
		n, err := c.replayRecord(ctx, t, rec, lsn, cp)
		replayed += n
		return err
	})
	if err != nil {
		var ce *journal.CorruptError
		if errors.As(err, &ce) {
			return fmt.Errorf("writeback: %w", err)
		}
		return err
	}
	if err := c.Flush(ctx); err != nil {
		return unreachable(err)
	}
	if replayed > 0 {
		c.log.Info("writeback: journal replayed", "journal", d.dir, "rows", replayed)
	}
	// LSNs are only handed out again after the journal lost its tail (the
	// -fix repair); the database's marks of the lost records would hide the
	// new ones. Everything is applied now: a new id starts the marks afresh.
	maxMarked := uint64(0)
	for _, wm := range cp.watermark {
		maxMarked = max(maxMarked, wm)
	}
	for _, keys := range cp.applied {
		for _, lsn := range keys {
			maxMarked = max(maxMarked, lsn)
		}
	}
	if maxMarked > d.j.LastLSN() {
		id, err := journalID(d.dir, true)
		if err != nil {
			return fmt.Errorf("writeback: journal %s: %w", d.dir, err)
		}
		c.log.Warn("writeback: the journal is behind the database's checkpoints (repaired or replaced); it gets a new id", "journal", d.dir, "id", id)
		d.idp.Store(&id)
		for _, t := range c.buf.ordered {
			t.applied.Store(0)
		}
	}
	if err := d.compact(c.buf, true); err != nil {
		return fmt.Errorf("writeback: journal %s: compact: %w", d.dir, err)
	}
	d.ready.Store(true)
	return nil
}

// recordCovered reports whether the database says every row of rec is applied.
func recordCovered(cp *checkpoints, rec *journalRecord, lsn uint64) bool {
	keys := rec.keys
	if rec.op == dialect.Update {
		keys = [][]any{rec.key}
	}
	for _, k := range keys {
		if !kindOfKeys(k) || !cp.covers(rec.table, keyText(makeKey(k), k), lsn) {
			return false
		}
	}
	return true
}

// kindOfKeys reports whether every key value is of a kind rows are keyed by.
func kindOfKeys(k []any) bool {
	for _, v := range k {
		if kindOfKey(v) == keyNone {
			return false
		}
	}
	return len(k) > 0
}

// replayRecord buffers one journal record again, with its own LSN, skipping
// the rows the database says are applied. A record that cannot be coalesced
// with what is already replayed (when it was written the earlier rows had been
// flushed) flushes the table first. It returns the rows re-buffered.
func (c *Connector) replayRecord(ctx context.Context, t *tableState, rec *journalRecord, lsn uint64, cp *checkpoints) (int, error) {
	jw := &journalWrite{d: c.buf.dur, lsn: lsn}
	var try func() bufferOutcome
	n := 0
	switch rec.op {
	case dialect.Update:
		if !t.checkKey(rec.key) {
			return 0, fmt.Errorf("writeback: journal record %d: key of %s does not match the table's key kinds", lsn, t.rule.Name)
		}
		if cp.covers(t.rule.Name, keyText(makeKey(rec.key), rec.key), lsn) {
			return 0, nil
		}
		n = 1
		try = func() bufferOutcome {
			out, _ := t.bufferUpdate(rec.key, rec.changes, &rec.names, jw)
			return out
		}
	case dialect.Insert:
		var keys, rows [][]any
		for i, k := range rec.keys {
			if !t.checkKey(k) {
				return 0, fmt.Errorf("writeback: journal record %d: key of %s does not match the table's key kinds", lsn, t.rule.Name)
			}
			if !cp.covers(t.rule.Name, keyText(makeKey(k), k), lsn) {
				keys = append(keys, k)
				rows = append(rows, rec.rows[i])
			}
		}
		if len(rows) == 0 {
			return 0, nil
		}
		n = len(rows)
		try = func() bufferOutcome {
			out, _ := t.bufferInsert(keys, rows, rec.cols, &rec.names, jw)
			return out
		}
	}
	if try() == buffered {
		return n, nil
	}
	if err := c.buf.barrier(ctx, []*tableState{t}); err != nil {
		return 0, fmt.Errorf("writeback: journal %s: recovery needs the database, which failed (the journal is kept and replayed on the next open): %w", c.buf.dur.dir, err)
	}
	if try() != buffered {
		return 0, fmt.Errorf("writeback: journal %s: record %d of %s cannot be buffered again", c.buf.dur.dir, lsn, t.rule.Name)
	}
	return n, nil
}

// close ends the journal after the flusher's final flush: when everything is
// applied the journal is compacted to nothing (a clean close leaves nothing
// to replay); otherwise what is left stays in it for the next open.
func (d *durability) close(b *buffer) error {
	left := int64(0)
	for _, t := range b.ordered {
		left += t.pending.Load()
	}
	var err error
	if left == 0 && d.ready.Load() {
		err = d.compact(b, true)
	} else if left > 0 {
		err = fmt.Errorf("writeback: close: %d buffered rows are kept in the journal %s and are replayed when it is next opened", left, d.dir)
	}
	return errors.Join(err, d.j.Close())
}
