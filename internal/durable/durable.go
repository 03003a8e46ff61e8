// Package durable joins the journal (internal/journal, the file layer) to the
// dirty set: every buffered statement is encoded (codec.go) and appended as
// one record while its row's shard is locked; ack: disk waits for the
// record's fsync; each flush transaction records in the target database
// which records it applied (checkpoint.go); recovery replays the rest when a
// connector opens (recover.go); compaction drops what is applied.
//
// Lock order: the dirty set's shard locks, then the journal's own. compactMu
// is taken with no shard lock held; compaction takes each table's shard
// locks briefly through dirtyset.Table.PendingSynced.
package durable

import (
	"context"
	"crypto/rand"
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
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/journal"
)

// idFile holds the journal directory's random id, which names it in the
// checkpoint tables.
const idFile = "WRITEBACK_ID"

// DefaultCompactEvery is the least time between two compactions: a
// compaction may roll a segment (a few fsyncs), which steady load must not
// pay per flush.
const DefaultCompactEvery = 2 * time.Second

// Options configure a Journal. The zero value is valid.
type Options struct {
	// Fsync is the journal's fsync policy (journal.Everysec when zero).
	Fsync journal.Policy
	// Where names the journal in errors (the rules file and line); the
	// path when empty.
	Where string
	// Log receives the journal's errors; slog.Default() when nil.
	Log *slog.Logger
	// SegmentBytes overrides the journal's segment size (tests: small
	// segments are compacted away).
	SegmentBytes int64
	// CompactEvery overrides DefaultCompactEvery.
	CompactEvery time.Duration
	// Hook, when not nil, is called at the journal's fault points as
	// "journal:<point>" (crash tests).
	Hook func(point string)
	// Fault, when not nil, is the journal's own fault injection
	// (journal.Options.Fault): tests make appends fail as on a full disk.
	Fault func(point string) error
	// CheckSchema makes the journal check that its checkpoint tables exist
	// (CheckSchema) instead of creating them: migrations made them, and
	// the connection's role may not create tables.
	CheckSchema bool
}

// Journal is a connector's journal and what goes with it.
type Journal struct {
	j           Log          // where the records are kept
	dir         string       // the file journal's directory ("" for a backend's)
	name        string       // names the journal in messages: its directory, or the backend's name
	fileJournal bool         // j is the local file journal (ack: disk); otherwise a backend's (ack: replicated)
	fixedID     bool         // the id is the backend's, never renewed
	kind        dialect.Kind // how checkpoint SQL is written
	checkSchema bool         // the checkpoint tables are checked, not created
	log         *slog.Logger
	every       time.Duration
	tables      []*dirtyset.Table

	idp atomic.Pointer[string] // the journal id (replaced if the journal's LSNs went back)

	// ready is set once recovery is done: before, the tables' rows are not
	// all replayed yet, so nothing may be compacted.
	ready atomic.Bool

	compactMu   sync.Mutex // serialises compactions
	compacted   uint64     // highest upTo compacted
	lastCompact time.Time

	appendFailed  atomic.Bool // the first journal append failure was logged
	compactFailed atomic.Bool // the first compaction failure was logged

	recBuf sync.Pool // *[]byte, to encode records in
	writes sync.Pool // *Write, for NewWrite
}

// Open opens the journal directory at path and reads (or makes) its id.
// kind decides how checkpoints are written in the target database; tables
// are the back tables whose rows hold the journal's records.
func Open(path string, kind dialect.Kind, tables []*dirtyset.Table, opts Options) (*Journal, error) {
	where := opts.Where
	if where == "" {
		where = "journal " + path
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	jopts := journal.Options{Fsync: opts.Fsync, Logger: opts.Log, SegmentBytes: opts.SegmentBytes}
	if h, fault := opts.Hook, opts.Fault; h != nil || fault != nil {
		jopts.Fault = func(point string) error {
			if h != nil {
				h("journal:" + point)
			}
			if fault != nil {
				return fault(point)
			}
			return nil
		}
	}
	jr, err := journal.Open(path, jopts)
	if err != nil {
		if errors.Is(err, journal.ErrInUse) {
			return nil, fmt.Errorf("writeback: %s: another connector (in this or another process) has this journal open; a journal serves one connector at a time: %w", where, err)
		}
		return nil, fmt.Errorf("writeback: %s: %w", where, err)
	}
	id, err := journalID(path, false)
	if err != nil {
		_ = jr.Close()
		return nil, fmt.Errorf("writeback: %s: %w", where, err)
	}
	d := &Journal{j: jr, dir: path, name: path, fileJournal: true, kind: kind, checkSchema: opts.CheckSchema, log: opts.Log, every: opts.CompactEvery, tables: tables}
	if d.every <= 0 {
		d.every = DefaultCompactEvery
	}
	d.idp.Store(&id)
	return d, nil
}

// ID is the journal's id, which names it in the checkpoint tables.
func (d *Journal) ID() string { return *d.idp.Load() }

// Dir is the file journal's directory; "" for a backend's journal.
func (d *Journal) Dir() string { return d.dir }

// Name names the journal in messages: its directory, or the backend's
// name for it (such as nats://host/stream/instance).
func (d *Journal) Name() string { return d.name }

// Local reports whether the journal is the local file journal (ack: disk),
// not a backend's (ack: replicated).
func (d *Journal) Local() bool { return d.fileJournal }

// Stats are the journal file layer's figures.
func (d *Journal) Stats() journal.Stats { return d.j.Stats() }

// WaitLag holds a writer back, before it takes any lock, while the
// journal's fsync lags more than it may (journal.Journal.WaitLag); ctx
// bounds the wait.
func (d *Journal) WaitLag(ctx context.Context) error {
	if w, ok := d.j.(interface{ WaitLag(context.Context) error }); ok {
		return w.WaitLag(ctx)
	}
	return nil
}

// Sync returns once record lsn is on disk, or ctx ends (ack: disk).
func (d *Journal) Sync(ctx context.Context, lsn uint64) error { return d.j.Sync(ctx, lsn) }

// journalID reads the directory's id, creating it the first time (or anew
// when fresh is set): written to a temporary file, synced, renamed into
// place and the directory synced, so the id is whole or absent after a crash.
func journalID(dir string, fresh bool) (string, error) {
	path := filepath.Join(dir, idFile)
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
	if err := writeSynced(dir, path, id+"\n"); err != nil {
		return "", fmt.Errorf("journal id: %w", err)
	}
	return id, nil
}

// ReadID returns the id of the journal in dir, which names its records in
// the checkpoint tables, without creating one: "" when it has none yet.
func ReadID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, idFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// writeSynced replaces path with text durably: temporary file, fsync,
// rename, fsync of the directory.
func writeSynced(dir, path, text string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
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
	return err
}

// Write is how one buffered statement reaches the journal: a live write
// carries its encoded record; a replayed one carries the LSN it already has
// (it is not appended again). It is the dirtyset.Journal of one write.
type Write struct {
	d     *Journal
	rec   []byte
	lsn   uint64
	err   error        // why Log failed
	group *groupAppend // the group's records, for a group's write
	index int          // the record's place in group
}

// Err is why Log failed (nil when it did not).
func (w *Write) Err() error { return w.err }

// NewWrite returns the Write of an encoded record; give it back with
// PutWrite once its outcome is read (it is on every buffered write's path:
// a pool keeps it off the heap).
func (d *Journal) NewWrite(rec []byte) *Write {
	w, ok := d.writes.Get().(*Write)
	if !ok {
		w = new(Write)
	}
	*w = Write{d: d, rec: rec}
	return w
}

// PutWrite recycles a Write from NewWrite.
func (d *Journal) PutWrite(w *Write) {
	*w = Write{}
	d.writes.Put(w)
}

// NewGroupWrites returns the Writes of a transaction group's records, in
// order. The first Log appends them all at once (AppendBatch), with
// consecutive LSNs; each Log then answers its record's. A backend that can
// keep a batch whole (one message) so keeps the group whole.
func (d *Journal) NewGroupWrites(recs [][]byte) []*Write {
	g := &groupAppend{recs: recs}
	ws := make([]*Write, len(recs))
	for i, rec := range recs {
		ws[i] = &Write{d: d, rec: rec, group: g, index: i}
	}
	return ws
}

// groupAppend is a group's records, appended by the first of its Writes to
// Log.
type groupAppend struct {
	recs [][]byte
	last uint64 // the last record's LSN, once appended
	err  error
	done bool
}

// Replayed returns the Write of a record replayed from the journal.
func (d *Journal) Replayed(lsn uint64) *Write { return &Write{d: d, lsn: lsn} }

// Log appends the record, or takes the replayed record's LSN. An error
// means the write must not be buffered, and its Exec fails: the journal
// cannot take it (a full disk: a later append may succeed; a failed fsync:
// the journal is unusable until the connector is reopened). The first
// failure of a run is logged, and so is the first success after it.
func (w *Write) Log(int) (uint64, error) {
	if w.lsn != 0 {
		return w.lsn, nil
	}
	var lsn uint64
	var err error
	switch g := w.group; {
	case g == nil:
		lsn, err = w.d.j.Append(w.rec)
	case !g.done:
		// The writes of a group are logged in order under their shards'
		// locks (dirtyset.AdmitGroup): the first appends the group.
		g.done = true
		g.last, g.err = w.d.j.AppendBatch(g.recs)
		fallthrough
	default:
		lsn, err = g.last-uint64(len(g.recs)-1-w.index), g.err
	}
	if err != nil {
		w.err = err
		if w.d.appendFailed.CompareAndSwap(false, true) {
			w.d.log.Error("writeback: journal append failed; writes that need the journal fail until it takes appends again", "journal", w.d.name, "err", err)
		}
		return 0, err
	}
	if w.d.appendFailed.Load() && w.d.appendFailed.CompareAndSwap(true, false) {
		w.d.log.Info("writeback: journal appends work again", "journal", w.d.name)
	}
	return lsn, nil
}

// Buffer returns a buffer to encode a record in; give it back with PutBuffer.
func (d *Journal) Buffer() *[]byte {
	if b, ok := d.recBuf.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 256)
	return &b
}

// PutBuffer recycles a buffer from Buffer.
func (d *Journal) PutBuffer(b *[]byte) {
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		d.recBuf.Put(b)
	}
}

// compactPoint is the highest LSN every record up to which is applied (or
// consumed): LastLSN when no table has rows pending, otherwise the lowest
// checkpoint watermark of a table that has. A table's watermark only rises
// after the rows it covers are committed, so a flush in progress on any
// table holds the point back, never forward.
//
// LastLSN is read first: a record up to it was appended while its writer held
// the shard lock, so once a table's shard locks are taken its row is counted
// in pending.
func (d *Journal) compactPoint() uint64 {
	upTo := d.j.LastLSN()
	for _, t := range d.tables {
		if t.PendingSynced() > 0 {
			upTo = min(upTo, t.Applied())
		}
	}
	return upTo
}

// Compact drops the journal's applied segments, at most every CompactEvery
// unless forced. It returns the journal's error, which makes it unusable.
func (d *Journal) Compact(force bool) error {
	if !d.ready.Load() && !force {
		return nil
	}
	d.compactMu.Lock()
	defer d.compactMu.Unlock()
	now := time.Now()
	if !force && now.Sub(d.lastCompact) < d.every {
		return nil
	}
	d.lastCompact = now
	upTo := d.compactPoint()
	if upTo <= d.compacted {
		return nil
	}
	if err := d.j.Compact(upTo); err != nil {
		return err
	}
	d.compacted = upTo
	return nil
}

// CompactLoop compacts every CompactEvery until stop is closed; it logs the
// first failure (the journal then grows until the connector is reopened).
func (d *Journal) CompactLoop(stop <-chan struct{}) {
	tick := time.NewTicker(d.every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if err := d.Compact(false); err != nil && d.compactFailed.CompareAndSwap(false, true) {
			d.log.Error("writeback: journal compaction failed; the journal grows until the connector is reopened", "journal", d.name, "err", err)
		}
	}
}

// Close ends the journal after the final flush: when nothing is left the
// journal is compacted to nothing (a clean close leaves nothing to replay);
// otherwise what is left stays in it for the next open.
func (d *Journal) Close(left int64) error {
	var err error
	switch {
	case left > 0:
		err = fmt.Errorf("writeback: close: %d buffered rows are kept in the journal %s and are replayed when it is next opened", left, d.name)
	case !d.ready.Load():
		// Opened while the database was down, which never answered since.
		err = fmt.Errorf("writeback: close: the database did not answer since the open, so the journal %s could not be reconciled with it; its records are kept and replayed when it is next opened", d.name)
	default:
		err = d.Compact(true)
	}
	return errors.Join(err, d.j.Close())
}

// Abandon closes the journal file without compacting: recovery failed and
// everything stays for the next open.
func (d *Journal) Abandon() error { return d.j.Close() }
