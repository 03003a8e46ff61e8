// Package journal is a crash-safe, append-only, segmented journal of opaque
// records, modelled on the Redis append-only file: every record carries a
// checksum, the fsync policy is always / everysec / no, a torn tail is cut
// on open, and damage anywhere else stops Open with a *CorruptError that
// names the file and offset and the command that repairs it.
//
// Records are numbered by LSN (log sequence number), starting at 1 and
// increasing by one per record, across restarts and compactions. A caller
// that applies records elsewhere (a database) remembers the last applied LSN
// there, replays the rest with Replay after a restart, and frees disk space
// with Compact.
//
// The core is deliberately simple: records are numbered in the order they
// are reserved, concurrent appends are written together by one leader in one
// write(2) on the active segment file (group write), and fsyncs run outside
// the write's mutex so that appends continue while the disk is busy. Disk
// space is allocated ahead of the writes (where the file system can), so a
// full disk refuses a record when it is reserved, before anyone uses its
// number, not when it is written. After any I/O
// failure (or injected fault) the Journal is unusable and must be closed and
// reopened: after a failed write or fsync the state of the file and the page
// cache is unknown, and reopening re-validates what is really on disk.
package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Policy says when appended records are fsynced, as Redis appendfsync.
type Policy uint8

const (
	// Always fsyncs after every append, as soon as the previous fsync is
	// done, and makes WaitDurable wait for an fsync covering the record.
	// Appends and waiters that arrive during an fsync share the next one
	// (group commit).
	Always Policy = iota
	// Everysec fsyncs in the background about once a second (every
	// MaxLag/2 if that is shorter). Writers are held back when the oldest
	// unsynced record is older than MaxLag, which bounds what a power loss
	// can take.
	Everysec
	// No never fsyncs on its own (except when a segment is rolled and on
	// Close); the operating system decides when data reaches the disk.
	No
)

func (p Policy) String() string {
	switch p {
	case Always:
		return "always"
	case Everysec:
		return "everysec"
	case No:
		return "no"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// ParsePolicy parses "always", "everysec" or "no" (the Redis spellings).
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "always":
		return Always, nil
	case "everysec":
		return Everysec, nil
	case "no":
		return No, nil
	}
	return 0, fmt.Errorf("journal: unknown fsync policy %q (want always, everysec or no)", s)
}

// Defaults for zero Options fields.
const (
	DefaultSegmentBytes = 64 << 20
	DefaultMaxLag       = time.Second
	// DefaultAllocChunk is how much disk space the journal allocates ahead
	// of its writes at a time (where the file system can): a full disk is
	// then met when records are reserved, never when they are written.
	DefaultAllocChunk = 4 << 20

	// everysecInterval is how often the Everysec background syncer runs.
	everysecInterval = time.Second
	// lagGranularity is how finely the age of unsynced records is tracked.
	lagGranularity = time.Millisecond
)

// Options configure a Journal. The zero value is valid: fsync always,
// 64 MiB segments.
type Options struct {
	Fsync        Policy
	SegmentBytes int64         // roll to a new segment file beyond this (default 64 MiB)
	MaxLag       time.Duration // Everysec: writers block while the oldest unsynced record is older than this (default 1s)
	Logger       *slog.Logger  // default slog.Default()

	// Fault, if set, is called at named points of the write path so that
	// tests can inject failures or stall the journal: "reserve" (before a
	// record is reserved: an error refuses it, as a full disk does),
	// "allocate" (before disk space is allocated ahead of the writes: an
	// error is a full disk), "write" (before the write(2) of a batch: an
	// error is a write that failed with nothing written, as with ENOSPC),
	// "after-write", "before-sync", "roll-after-create",
	// "compact-before-remove", "compact-after-remove".
	// An error returned at the other points is treated like an I/O error
	// there (the Journal becomes unusable: a simulated crash).
	// It may block (to stall the journal) but must not call the Journal:
	// some points run with its mutex held.
	Fault func(point string) error

	now       func() time.Time // tests replace the clock used for lag
	syncEvery time.Duration    // tests replace the Everysec interval
	// allocChunk is how much disk is allocated ahead of the writes at a
	// time (DefaultAllocChunk; tests make it small).
	allocChunk int64
}

// AppendError is an append that failed with nothing written (a full disk,
// an I/O error before any byte reached the file, or a partial write that
// was cut off again): the Journal stays usable, and a later append may
// succeed. (Of an AppendBatch that rolled to a new segment midway, the
// records written before the roll stay appended.)
type AppendError struct{ Err error }

func (e *AppendError) Error() string {
	return "journal: append failed, nothing written: " + e.Err.Error()
}
func (e *AppendError) Unwrap() error { return e.Err }

// ErrClosed is returned by operations on a closed Journal.
var ErrClosed = errors.New("journal: closed")

// Stats is a snapshot of a Journal's state and counters.
type Stats struct {
	Bytes           int64         // size of the segment files on disk
	Segments        int           // number of segment files
	Records         uint64        // records in the files
	FirstLSN        uint64        // first record in the files (0 if none)
	LastLSN         uint64        // last record appended (0 if none ever)
	DurableLSN      uint64        // every record up to this one is fsynced
	Syncs           uint64        // data fsyncs since Open
	SyncLatencyLast time.Duration // duration of the last data fsync
	SyncLatencyAvg  time.Duration // mean duration of data fsyncs since Open
	Lag             time.Duration // age of the oldest unsynced record (0 if none)
}

// Journal is an open journal directory. All methods are safe for concurrent
// use.
type Journal struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *dirLock

	// compactMu keeps Compact from deleting files under a running Replay
	// (Replay reads the files without holding mu, so appends go on).
	compactMu sync.RWMutex
	// syncMu serialises syncNow, so that at most one fsync snapshot is in
	// flight. Lock order: compactMu, syncMu, mu.
	syncMu sync.Mutex

	// queue numbers records and gathers them into one write(2) per batch.
	queue appendQueue
	// writtenLSN is lastLSN, readable without mu; broken is set once
	// appends are refused for good (failed or closed).
	writtenLSN atomic.Uint64
	broken     atomic.Bool
	// ahead is the disk space allocated beyond the active segment's end
	// (allocEnd - its size), readable without mu; MaxInt64 where the file
	// system cannot preallocate.
	ahead    atomic.Int64
	allocEnd int64 // under mu: the active segment's allocated bytes

	mu       sync.Mutex
	segs     []segment // in LSN order; the last one is active
	active   *os.File  // open for append on segs[len(segs)-1]
	lastLSN  uint64
	durable  uint64
	err      error // sticky: set by the first I/O failure or fault
	closed   bool
	syncing  bool       // syncNow is fsyncing outside mu
	retired  []*os.File // rolled-away files syncNow may still be using
	syncedCh chan struct{}
	lag      lagQueue
	syncs    uint64
	syncLast time.Duration
	syncSum  time.Duration

	kick chan struct{} // wakes the syncer (buffered: kicks coalesce)
	stop chan struct{}
	done chan struct{}
}

// Open opens (creating if needed) the journal in dir. It takes an exclusive
// lock on dir/LOCK, validates every record of every segment, cuts a torn
// tail (logging a warning) and returns a *CorruptError for any other damage.
func Open(dir string, opts Options) (*Journal, error) {
	if opts.Fsync > No {
		return nil, fmt.Errorf("journal: invalid fsync policy %d", opts.Fsync)
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.MaxLag <= 0 {
		opts.MaxLag = DefaultMaxLag
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.allocChunk <= 0 {
		opts.allocChunk = DefaultAllocChunk
	}
	if opts.syncEvery <= 0 {
		// Sync at least twice per MaxLag: in steady state the lag then
		// stays under MaxLag and writers are held back only when the
		// disk really falls behind, not on every tick.
		opts.syncEvery = max(min(everysecInterval, opts.MaxLag/2), time.Millisecond)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		// Make the new directory's own entry durable.
		if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
	}
	lk, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	j, err := open(dir, opts, lk)
	if err != nil {
		lk.unlock()
		return nil, err
	}
	return j, nil
}

func open(dir string, opts Options, lk *dirLock) (*Journal, error) {
	segs, err := listSegments(dir, true)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if len(segs) == 0 {
		f, path, err := createSegment(dir, 1)
		if err != nil {
			return nil, err
		}
		f.Close()
		segs = []segment{{first: 1, path: path}}
	}
	s, err := scanDir(dir, segs, nil)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if s.corrupt != nil {
		return nil, s.corrupt.corruptError(s)
	}
	if t := s.torn; t != nil {
		path := s.segs[t.seg].path
		if err := os.Truncate(path, t.offset); err != nil {
			return nil, fmt.Errorf("journal: cut torn tail: %w", err)
		}
		opts.Logger.Warn("journal: cut torn tail",
			"file", path, "offset", t.offset, "bytes", t.fileSize-t.offset, "reason", t.reason)
	}
	act := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(act.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// What a previous process wrote may still be only in the page cache
	// (it may have crashed before syncing): sync before calling it durable.
	// This also makes a torn-tail cut durable.
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{
		dir:      dir,
		opts:     opts,
		log:      opts.Logger,
		lock:     lk,
		segs:     s.segs,
		active:   f,
		lastLSN:  s.lastLSN,
		durable:  s.lastLSN,
		syncedCh: make(chan struct{}),
	}
	j.writtenLSN.Store(s.lastLSN)
	j.queue.reserved = s.lastLSN
	j.allocEnd = act.size // nothing is allocated ahead yet: the first Reserve does
	if opts.Fsync != No {
		j.kick = make(chan struct{}, 1)
		j.stop = make(chan struct{})
		j.done = make(chan struct{})
		go j.syncLoop()
	}
	return j, nil
}

// createSegment creates the segment file starting at first and returns it
// open for appending. The header goes to a temporary file that is fsynced
// and renamed into place, and the directory is fsynced, so a segment file
// either exists with a complete header or not at all.
func createSegment(dir string, first uint64) (*os.File, string, error) {
	path := filepath.Join(dir, segName(first))
	tmp := path + ".tmp"
	// Owner-only: segments hold the application's buffered writes.
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("journal: create segment: %w", err)
	}
	fail := func(err error) (*os.File, string, error) {
		f.Close()
		os.Remove(tmp)
		return nil, "", fmt.Errorf("journal: create segment %s: %w", path, err)
	}
	if _, err := f.Write(segHeader(first)); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("journal: create segment %s: %w", path, err)
	}
	return f, path, nil
}

// fault calls the test hook.
func (j *Journal) fault(point string) error {
	if j.opts.Fault == nil {
		return nil
	}
	if err := j.opts.Fault(point); err != nil {
		return fmt.Errorf("fault at %s: %w", point, err)
	}
	return nil
}

// usableLocked returns why the Journal cannot accept work, if it cannot.
func (j *Journal) usableLocked() error {
	if j.err != nil {
		return j.err
	}
	if j.closed {
		return ErrClosed
	}
	return nil
}

// failLocked makes the Journal unusable and wakes every waiter. Only the
// first failure is kept: later ones are usually consequences.
func (j *Journal) failLocked(err error) error {
	if j.err == nil {
		j.err = fmt.Errorf("journal: %w (the journal is unusable; close and reopen it)", err)
		j.broken.Store(true)
		j.log.Error("journal: failed", "dir", j.dir, "err", err)
		j.broadcastLocked()
	}
	return j.err
}

// broadcastLocked wakes everyone waiting for durability to change.
func (j *Journal) broadcastLocked() {
	close(j.syncedCh)
	j.syncedCh = make(chan struct{})
}

func (j *Journal) kickSyncer() {
	select {
	case j.kick <- struct{}{}:
	default: // a kick is already pending; it will cover us
	}
}

// Append writes one record and returns its LSN. It does not wait for an
// fsync: under Always it starts one (or queues for the next), and
// WaitDurable waits for it. Under Everysec, Append blocks while the oldest
// unsynced record is older than MaxLag (backpressure, without a context:
// it waits for the disk). rec is not retained. Concurrent appends share
// one write(2) (group write).
func (j *Journal) Append(rec []byte) (uint64, error) {
	return j.append([][]byte{rec})
}

// AppendBatch writes records with consecutive LSNs in one write(2) (per
// segment) and returns the LSN of the last one. A crash can keep any prefix
// of the batch. An empty batch returns LastLSN.
func (j *Journal) AppendBatch(recs [][]byte) (uint64, error) {
	return j.append(recs)
}

func (j *Journal) append(recs [][]byte) (uint64, error) {
	for _, r := range recs {
		if len(r) > MaxRecordBytes {
			return 0, fmt.Errorf("journal: record of %d bytes exceeds the maximum %d", len(r), MaxRecordBytes)
		}
	}
	if len(recs) == 0 {
		return j.LastLSN(), nil
	}
	q := &j.queue
	q.mu.Lock()
	if err := j.refusing(); err != nil {
		q.mu.Unlock()
		return 0, err
	}
	last, err := j.reserveLocked(recs...)
	if err != nil {
		q.mu.Unlock()
		return 0, err
	}
	b := q.forming
	// The caller waits before it uses the LSNs, so a batch of only such
	// appends can fail and leave the journal usable (appendFailedLocked).
	if err := j.waitWrittenLocked(context.Background(), b, last); err != nil {
		return 0, err
	}
	return last, nil
}

// Reserve numbers rec and queues it to be written, without writing it: the
// caller may use the LSN at once (buffer the write it journals, under its
// row's lock) and then wait, without that lock, with WaitWritten. Records
// reserved by concurrent writers are written together, in LSN order, by one
// write(2). rec is copied. A reserved record that cannot be written makes
// the Journal unusable (its LSN is in use elsewhere): the "reserve" fault
// point, before anything is reserved, is where a full disk refuses a record.
func (j *Journal) Reserve(rec []byte) (uint64, error) {
	if len(rec) > MaxRecordBytes {
		return 0, fmt.Errorf("journal: record of %d bytes exceeds the maximum %d", len(rec), MaxRecordBytes)
	}
	if err := j.fault("reserve"); err != nil {
		return 0, &AppendError{Err: err}
	}
	q := &j.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := j.refusing(); err != nil {
		return 0, err
	}
	lsn, err := j.reserveLocked(rec)
	if err != nil {
		return 0, err
	}
	q.forming.reserved = true
	return lsn, nil
}

// WaitWritten returns once record lsn (from Reserve) is written to the
// segment file (not necessarily fsynced), writing it and the records
// reserved with it when no other writer is. It returns the Journal's error
// if the record could not be written, or ctx's if ctx ends first (the
// record is then written or not, later, as if the wait had gone on).
func (j *Journal) WaitWritten(ctx context.Context, lsn uint64) error {
	if j.writtenLSN.Load() >= lsn {
		return nil
	}
	q := &j.queue
	q.mu.Lock()
	b := q.inflight
	if f := q.forming; f != nil && lsn >= f.first {
		b = f
	}
	if b == nil || lsn < b.first {
		// Written meanwhile, or never to be (the journal failed).
		q.mu.Unlock()
		if j.writtenLSN.Load() >= lsn {
			return nil
		}
		return j.usable()
	}
	return j.waitWrittenLocked(ctx, b, lsn)
}

// waitWrittenLocked waits for batch b, which holds record lsn, to be
// written, leading it when no one writes. The caller holds queue.mu, which
// is released.
func (j *Journal) waitWrittenLocked(ctx context.Context, b *appendBatch, lsn uint64) error {
	q := &j.queue
	if !q.writing {
		q.writing = true
		// Let writers that are about to reserve join this batch: one
		// yield gathers them, where writing at once would make each
		// record a write(2) of its own.
		q.mu.Unlock()
		runtime.Gosched()
		q.mu.Lock()
		j.leadLocked(b)
	} else {
		q.mu.Unlock()
		lead, err := waitBatch(ctx, b)
		if err != nil {
			return err
		}
		if lead {
			q.mu.Lock()
			j.leadLocked(b)
		}
	}
	if lsn < b.first+uint64(b.written) {
		return nil
	}
	return b.err
}

// waitBatch waits until batch b is written, or until its writers are handed
// the lead: then it reports true, and the caller leads. It yields a few
// times before it parks: a write takes a few microseconds, and a parked
// writer's wake-up may need an idle thread woken, which costs more.
func waitBatch(ctx context.Context, b *appendBatch) (lead bool, err error) {
	for range spinYields {
		select {
		case <-b.done:
			return false, nil
		case <-b.lead:
			return true, nil
		default:
			runtime.Gosched()
		}
	}
	select {
	case <-b.done:
		return false, nil
	case <-b.lead:
		return true, nil
	case <-ctx.Done():
		// A lead not received stays for the batch's next waiter.
		return false, ctx.Err()
	}
}

// spinYields is how many times a writer yields while its batch is being
// written before it parks.
const spinYields = 8

// appendQueue numbers records as they are reserved and gathers them into
// batches, each written by one leader in one write(2) (group write). Its
// mutex is held to reserve, join or hand on a batch, never across I/O.
// Lock order: queue.mu, then Journal.mu.
type appendQueue struct {
	mu        sync.Mutex
	reserved  uint64       // the last LSN handed out
	unwritten int64        // bytes of the records reserved and not written
	forming   *appendBatch // the batch new records join (nil: none yet)
	inflight  *appendBatch // the batch a leader is writing
	writing   bool         // a leader is writing; the forming batch waits for the lead
	spare     *appendBatch // a written batch whose buffers are reused
}

// appendBatch is records reserved together, encoded, in LSN order.
type appendBatch struct {
	first    uint64        // LSN of the first record
	buf      []byte        // the encoded records
	ends     []int         // the end of each record in buf
	reserved bool          // some record's writer used its LSN before the write (Reserve)
	written  int           // how many records were written (a prefix), once done
	err      error         // why the rest were not
	done     chan struct{} // closed once written (or failed)
	lead     chan struct{} // one receive: the writer that leads this batch
}

// formingLocked returns the batch new records join.
func (q *appendQueue) formingLocked() *appendBatch {
	if b := q.forming; b != nil {
		return b
	}
	b := &appendBatch{first: q.reserved + 1, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	if sp := q.spare; sp != nil {
		b.buf, b.ends, q.spare = sp.buf[:0], sp.ends[:0], nil
	}
	q.forming = b
	return b
}

// reserveLocked numbers recs and encodes them into the forming batch; it
// returns the last one's LSN. The disk space they need is allocated first:
// a full disk refuses them here, with an *AppendError, before any caller
// can use their LSNs. The caller holds queue.mu.
func (j *Journal) reserveLocked(recs ...[]byte) (uint64, error) {
	q := &j.queue
	need := q.unwritten
	for _, r := range recs {
		need += recHeaderSize + int64(len(r))
	}
	if need > j.ahead.Load() {
		if err := j.allocate(need); err != nil {
			return 0, &AppendError{Err: err}
		}
	}
	b := q.formingLocked()
	for _, r := range recs {
		q.reserved++
		b.buf = appendRecord(b.buf, q.reserved, r)
		b.ends = append(b.ends, len(b.buf))
	}
	q.unwritten = need
	return q.reserved, nil
}

// allocate makes the disk space allocated ahead of the active segment's end
// at least need bytes (and a chunk more), so that the records reserved are
// written without asking the file system for space. The caller holds
// queue.mu (lock order: queue.mu, then mu).
func (j *Journal) allocate(need int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usableLocked(); err != nil {
		return err
	}
	act := j.segs[len(j.segs)-1]
	if err := j.fault("allocate"); err != nil {
		return err
	}
	n := need - (j.allocEnd - act.size) + j.opts.allocChunk
	ok, err := preallocate(j.active, j.allocEnd, n)
	if err != nil {
		return fmt.Errorf("allocate %d bytes in %s: %w", n, act.path, err)
	}
	if !ok {
		// This file system cannot: writes ask for space as they go, and a
		// full disk fails a batch's write (the journal then fails).
		j.ahead.Store(math.MaxInt64)
		return nil
	}
	j.allocEnd += n
	j.ahead.Store(j.allocEnd - act.size)
	return nil
}

// refusing is why no record may be reserved: the Journal failed or is
// closed.
func (j *Journal) refusing() error {
	if !j.broken.Load() {
		return nil
	}
	if err := j.usable(); err != nil {
		return err
	}
	return ErrClosed // closing
}

// usable is usableLocked for a caller without j.mu.
func (j *Journal) usable() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.usableLocked()
}

// leadLocked writes batch b and hands the lead to the batch formed
// meanwhile, if any. The caller holds queue.mu, which is released.
func (j *Journal) leadLocked(b *appendBatch) {
	q := &j.queue
	if q.forming == b {
		q.forming = nil
	}
	q.inflight = b
	q.mu.Unlock()

	j.mu.Lock()
	written, err := j.writeBatchLocked(b)
	j.mu.Unlock()

	q.mu.Lock()
	if err != nil {
		if written < len(b.ends) {
			err = j.appendFailedLocked(b, written, err)
		}
		if j.broken.Load() {
			// The journal failed: no record of the batch is acknowledged,
			// even one in the file (a simulated crash after its write).
			written = 0
		}
	}
	b.written, b.err = written, err
	q.unwritten -= int64(len(b.buf))
	q.inflight = nil
	close(b.done)
	if sp := q.spare; sp == nil || cap(sp.buf) < cap(b.buf) {
		if cap(b.buf) <= 1<<20 { // don't pin one huge batch's buffer forever
			q.spare = &appendBatch{buf: b.buf, ends: b.ends}
		}
	}
	if next := q.forming; next != nil {
		// Its writers wait; the first to receive leads. A leader never
		// keeps the lead across batches: its own caller must return.
		next.lead <- struct{}{}
	} else {
		q.writing = false
	}
	q.mu.Unlock()
}

// appendFailedLocked settles a batch of which only written records were
// written. When no record's LSN is in use yet (every caller of the batch,
// and of the batch formed behind it, waits for the write), the rest are
// unreserved and fail alone: the Journal takes the next append. Otherwise
// the LSNs cannot be handed out again, and the Journal becomes unusable.
// The caller holds queue.mu.
func (j *Journal) appendFailedLocked(b *appendBatch, written int, err error) error {
	next := j.queue.forming
	if b.reserved || next != nil && next.reserved {
		j.broken.Store(true)
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.failLocked(err)
	}
	if next != nil {
		// Numbered after records that are not written: it fails with b.
		j.queue.forming = nil
		j.queue.unwritten -= int64(len(next.buf))
		next.err = err
		close(next.done)
	}
	j.queue.reserved = b.first + uint64(written) - 1
	return err
}

// writeBatchLocked writes batch b, rolling segments as needed, and returns
// how many of its records were written (a prefix) and why not all.
func (j *Journal) writeBatchLocked(b *appendBatch) (int, error) {
	if err := j.usableLocked(); err != nil {
		return 0, err
	}
	if err := j.backpressureLocked(); err != nil {
		return 0, err
	}
	if b.first != j.lastLSN+1 {
		return 0, j.failLocked(fmt.Errorf("batch numbered from %d, but the last record written is %d", b.first, j.lastLSN))
	}
	start, prev, n := 0, 0, 0 // buf[start:prev] holds n records not yet written
	for _, end := range b.ends {
		size := j.segs[len(j.segs)-1].size + int64(prev-start)
		// Never roll an empty segment: a record larger than SegmentBytes
		// gets a segment of its own.
		if size > segHeaderSize && size+int64(end-prev) > j.opts.SegmentBytes {
			if err := j.writeLocked(b.buf[start:prev], n); err != nil {
				return int(j.lastLSN + 1 - b.first), err
			}
			if err := j.rollLocked(); err != nil {
				return int(j.lastLSN + 1 - b.first), err
			}
			start, n = prev, 0
		}
		prev = end
		n++
	}
	if err := j.writeLocked(b.buf[start:prev], n); err != nil {
		return int(j.lastLSN + 1 - b.first), err
	}
	if j.opts.Fsync == Always {
		// Sync every record promptly even if nobody waits for it (the
		// caller may not need the acknowledgment, but chose Always).
		// While an fsync runs, kicks coalesce into the next one.
		j.kickSyncer()
	}
	return len(b.ends), nil
}

// writeLocked writes n encoded records, numbered from lastLSN+1, to the
// active segment in one write(2).
func (j *Journal) writeLocked(buf []byte, n int) error {
	if n == 0 {
		return nil
	}
	act := &j.segs[len(j.segs)-1]
	if err := j.fault("write"); err != nil {
		return &AppendError{Err: err}
	}
	w, err := j.active.Write(buf)
	if err != nil {
		// A partial record may be in the file now. Cut it: then nothing
		// was appended, and the journal can take the next append (a full
		// disk frees up). If it cannot be cut, nothing more may be appended
		// behind it, or it would become mid-file corruption; reopening
		// cuts it as a torn tail.
		werr := fmt.Errorf("write %s: %w (%d of %d bytes written)", act.path, err, w, len(buf))
		if w == 0 {
			return &AppendError{Err: werr}
		}
		if terr := j.active.Truncate(act.size); terr != nil {
			return j.failLocked(errors.Join(werr, terr))
		}
		return &AppendError{Err: werr}
	}
	act.size += int64(len(buf))
	j.noteWrittenLocked(act.size)
	j.lag.push(j.lastLSN+1, j.opts.now(), j.opts.Fsync == No)
	j.lastLSN += uint64(n)
	j.writtenLSN.Store(j.lastLSN)
	if err := j.fault("after-write"); err != nil {
		return j.failLocked(err)
	}
	return nil
}

// noteWrittenLocked updates what is allocated ahead after the active
// segment grew to size.
func (j *Journal) noteWrittenLocked(size int64) {
	if j.ahead.Load() == math.MaxInt64 {
		return // the file system cannot preallocate
	}
	j.allocEnd = max(j.allocEnd, size)
	j.ahead.Store(j.allocEnd - size)
}

// backpressureLocked holds an Everysec writer back while the oldest
// unsynced record is older than MaxLag, like Redis delaying writes when the
// background fsync is slow: the loss window stays bounded instead of
// growing with the disk's backlog.
func (j *Journal) backpressureLocked() error {
	for j.opts.Fsync == Everysec && j.lagLocked() > j.opts.MaxLag {
		ch := j.syncedCh
		j.kickSyncer()
		j.mu.Unlock()
		<-ch
		j.mu.Lock()
		if err := j.usableLocked(); err != nil {
			return err
		}
	}
	return nil
}

// lagLocked is the age of the oldest unsynced record.
func (j *Journal) lagLocked() time.Duration {
	at, ok := j.lag.oldest()
	if !ok {
		return 0
	}
	return j.opts.now().Sub(at)
}

// rollLocked closes the active segment and starts a new one at lastLSN+1.
func (j *Journal) rollLocked() error {
	// fsync the old segment before the new one exists: otherwise a power
	// loss could keep the new (empty, fsynced) file but lose the old one's
	// tail, leaving a gap that Open must treat as corruption.
	old := j.active
	start := time.Now()
	if err := old.Sync(); err != nil {
		return j.failLocked(fmt.Errorf("fsync: %w", err))
	}
	j.noteSyncLocked(j.lastLSN, time.Since(start))

	first := j.lastLSN + 1
	f, path, err := createSegment(j.dir, first)
	if err != nil {
		return j.failLocked(err)
	}
	if err := j.fault("roll-after-create"); err != nil {
		f.Close()
		return j.failLocked(err)
	}
	// The old segment's space allocated beyond its end is not needed.
	_ = old.Truncate(j.segs[len(j.segs)-1].size)
	if j.syncing {
		j.retired = append(j.retired, old) // syncNow closes it when done
	} else {
		old.Close()
	}
	j.active = f
	j.segs = append(j.segs, segment{first: first, path: path, size: segHeaderSize})
	j.allocEnd = segHeaderSize
	if j.ahead.Load() != math.MaxInt64 {
		// The records reserved beyond this segment's start were counted
		// against the old one's space: allocate for them here. If the
		// disk is full now, the writes that follow may fail (and fail the
		// journal); the next Reserve is refused first.
		j.ahead.Store(0)
		if ok, err := preallocate(f, j.allocEnd, j.opts.allocChunk); ok && err == nil {
			j.allocEnd += j.opts.allocChunk
			j.ahead.Store(j.opts.allocChunk)
		}
	}
	return nil
}

// LastLSN returns the LSN of the last record appended (0 if none ever).
func (j *Journal) LastLSN() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastLSN
}

// Dir returns the journal directory.
func (j *Journal) Dir() string { return j.dir }

// Stats returns a snapshot of the Journal's state and counters.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := Stats{
		Segments:        len(j.segs),
		LastLSN:         j.lastLSN,
		DurableLSN:      j.durable,
		Syncs:           j.syncs,
		SyncLatencyLast: j.syncLast,
		Lag:             j.lagLocked(),
	}
	for _, s := range j.segs {
		st.Bytes += s.size
	}
	if first := j.segs[0].first; j.lastLSN >= first {
		st.FirstLSN = first
		st.Records = j.lastLSN - first + 1
	}
	if j.syncs > 0 {
		st.SyncLatencyAvg = j.syncSum / time.Duration(j.syncs)
	}
	return st
}

// Close fsyncs everything appended (under every policy), closes the files
// and releases the directory lock. It returns the Journal's error if it had
// failed earlier (nothing more is written then). Closing twice is a no-op.
func (j *Journal) Close() error {
	j.compactMu.Lock() // let a running Compact finish its deletions
	defer j.compactMu.Unlock()
	// Refuse new records, then write those reserved: their writers may
	// have stopped waiting.
	j.broken.Store(true)
	j.queue.mu.Lock()
	last := j.queue.reserved
	j.queue.mu.Unlock()
	_ = j.WaitWritten(context.Background(), last)
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	if j.stop != nil {
		close(j.stop)
		<-j.done
	}
	err := j.syncNow()

	j.mu.Lock()
	if j.err == nil {
		_ = j.active.Truncate(j.segs[len(j.segs)-1].size) // free what was allocated ahead
	}
	if cerr := j.active.Close(); err == nil && j.err == nil {
		err = cerr
	}
	for _, r := range j.retired {
		r.Close()
	}
	j.retired = nil
	j.broadcastLocked() // wake waiters so they see ErrClosed
	j.mu.Unlock()
	if uerr := j.lock.unlock(); err == nil {
		err = uerr
	}
	return err
}
