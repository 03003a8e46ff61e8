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
// The core is deliberately simple: one mutex serialises appends, and an
// append copies its records into the active segment file, which is mapped
// into memory (shared: the copy is in the page cache at once, so it survives
// a killed process as a write(2) would, for the cost of a memory copy).
// The active segment's disk blocks are allocated a megabyte ahead of its
// records, so a full disk refuses an append before anything is copied, and
// is never met when a page is written back. fsyncs run outside that mutex
// so that appends continue while the disk is busy. After any I/O
// failure (or injected fault) the Journal is unusable and must be closed and
// reopened: after a failed write or fsync the state of the file and the page
// cache is unknown, and reopening re-validates what is really on disk.
package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	// allocChunk is how much disk the active segment is given ahead of
	// its records at a time: a full disk is met when a chunk is needed,
	// before any record is copied. Small, so that what a crash leaves
	// after the last record (zeros) is quick to check on open.
	allocChunk = 1 << 20

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
	// tests can inject failures or stall the journal: "write" (before the
	// records of an append are copied into the segment: an error is a
	// write that failed with nothing written, as with ENOSPC), "allocate"
	// (before a segment's disk space is allocated: an error is a full
	// disk), "after-write", "before-sync", "roll-after-create",
	// "compact-before-remove", "compact-after-remove".
	// An error returned at the other points is treated like an I/O error
	// there (the Journal becomes unusable: a simulated crash).
	// It may block (to stall the journal) but must not call the Journal:
	// some points run with its mutex held.
	Fault func(point string) error

	now       func() time.Time // tests replace the clock used for lag
	syncEvery time.Duration    // tests replace the Everysec interval
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
	// mu and what an append reads and writes under it come first and
	// together, then opts: writers on different cores take turns here, and
	// every cache line this spans moves between the cores at each turn.
	mu        sync.Mutex
	err       error // sticky: set by the first I/O failure or fault
	closed    bool
	lastLSN   uint64
	mapped    []byte    // active mapped: records are copied in at segs[len(segs)-1].size
	segs      []segment // in LSN order; the last one is active
	fileEnd   int64     // the active segment file's size: disk allocated for the mapping up to here
	populated int64     // the active mapping is faulted in (or asked to be) up to here
	lag       lagQueue
	opts      Options

	durable  uint64
	syncing  bool       // syncNow is fsyncing outside mu
	active   *os.File   // open on segs[len(segs)-1]
	retired  []*os.File // rolled-away files syncNow may still be using
	syncedCh chan struct{}
	syncs    uint64
	syncLast time.Duration
	syncSum  time.Duration
	lagging  atomic.Bool // Everysec: the last append found the lag over MaxLag (WaitLag)

	dir  string
	log  *slog.Logger
	lock *dirLock

	// compactMu keeps Compact from deleting files under a running Replay
	// (Replay reads the files without holding mu, so appends go on).
	compactMu sync.RWMutex
	// syncMu serialises syncNow, so that at most one fsync snapshot is in
	// flight. Lock order: compactMu, syncMu, mu.
	syncMu sync.Mutex

	clock *coarseClock // Everysec: the lag's clock (opts.now), nil for others

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
	f, err := os.OpenFile(act.path, os.O_RDWR, 0)
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
	// Map the active segment (the mapping may reach beyond the file: the
	// file is given disk, a chunk at a time, before records go there).
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	j.fileEnd = fi.Size()
	if j.mapped, err = mapSegment(f, max(opts.SegmentBytes, act.size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: map %s: %w", act.path, err)
	}
	switch {
	case j.opts.now != nil: // a test's
	case opts.Fsync == Everysec:
		// Every append reads the clock: a coarse one (sync.go), started
		// here with the syncer, once nothing can fail.
		j.clock = startCoarseClock()
		j.opts.now = j.clock.now
	default:
		// The lag is a difference of monotonic readings: time.Since reads
		// only that clock, at about half the cost of time.Now (which also
		// reads the wall clock).
		epoch := time.Now()
		j.opts.now = func() time.Time { return epoch.Add(time.Since(epoch)) }
	}
	if opts.Fsync != No {
		j.kick = make(chan struct{}, 1)
		j.stop = make(chan struct{})
		j.done = make(chan struct{})
		go j.syncLoop()
	}
	return j, nil
}

// createSegment creates the segment file starting at first and returns it
// open. The header goes to a temporary file that is fsynced and renamed
// into place, and the directory is fsynced, so a segment file either exists
// with a complete header or not at all.
func createSegment(dir string, first uint64) (*os.File, string, error) {
	f, tmp, path, err := prepareSegment(dir, first, 0, nil)
	if err != nil {
		return nil, "", err
	}
	if err := publishSegment(dir, tmp, path); err != nil {
		f.Close()
		return nil, "", err
	}
	return f, path, nil
}

// prepareSegment writes the header of the segment starting at first to a
// temporary file, allocates size bytes of disk for it (none when 0) and
// fsyncs it. alloc, if set, is called before the allocation (a fault
// point). On an error nothing is left behind.
func prepareSegment(dir string, first uint64, size int64, alloc func() error) (f *os.File, tmp, path string, err error) {
	path = filepath.Join(dir, segName(first))
	tmp = path + ".tmp"
	// Owner-only: segments hold the application's buffered writes.
	f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, "", "", fmt.Errorf("journal: create segment: %w", err)
	}
	fail := func(err error) (*os.File, string, string, error) {
		f.Close()
		os.Remove(tmp)
		return nil, "", "", fmt.Errorf("journal: create segment %s: %w", path, err)
	}
	if _, err := f.Write(segHeader(first)); err != nil {
		return fail(err)
	}
	if size > 0 {
		if alloc != nil {
			if err := alloc(); err != nil {
				return fail(err)
			}
		}
		if err := allocate(f, size); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return f, tmp, path, nil
}

// publishSegment renames a prepared segment into place, durably.
func publishSegment(dir, tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("journal: create segment %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("journal: create segment %s: %w", path, err)
	}
	return nil
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
// it waits for the disk). rec is not retained.
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
	// The clock is read before the lock: the lag needs it (only when the
	// backlog is empty under No), and the lock is held for a memory copy.
	var now time.Time
	if j.opts.Fsync != No {
		now = j.opts.now()
	}
	j.mu.Lock()
	lsn, ahead, err := j.appendLocked(recs, now)
	j.mu.Unlock()
	// Outside the lock: the next appends find their pages faulted in.
	populate(ahead)
	return lsn, err
}

// appendLocked is append under j.mu; ahead is a part of the mapping for
// the caller to fault in once it has let go of the lock.
func (j *Journal) appendLocked(recs [][]byte, now time.Time) (lsn uint64, ahead []byte, err error) {
	if err := j.usableLocked(); err != nil {
		return 0, nil, err
	}
	if err := j.backpressureLocked(now); err != nil {
		return 0, nil, err
	}
	for len(recs) > 0 {
		// The records that fit in the active segment. Never roll an empty
		// segment: a record larger than SegmentBytes gets a segment of its
		// own.
		size := j.segs[len(j.segs)-1].size
		n, bytes := 0, int64(0)
		for _, r := range recs {
			rb := int64(recHeaderSize + len(r))
			if size+bytes > segHeaderSize && size+bytes+rb > j.opts.SegmentBytes {
				break
			}
			n, bytes = n+1, bytes+rb
		}
		if n == 0 {
			if err := j.rollLocked(); err != nil {
				return 0, nil, err
			}
			continue
		}
		if err := j.writeLocked(recs[:n], bytes, now); err != nil {
			return 0, nil, err
		}
		recs = recs[n:]
	}
	if j.opts.Fsync == Always {
		// Sync every record promptly even if nobody waits for it (the
		// caller may not need the acknowledgment, but chose Always).
		// While an fsync runs, kicks coalesce into the next one.
		j.kickSyncer()
	}
	return j.lastLSN, j.aheadLocked(), nil
}

// populateWindow is how far ahead of the appends the active segment's pages
// are faulted in (populate), a window at a time.
const populateWindow = 256 << 10

// aheadLocked returns the next window of the mapping to fault in, once the
// appends have come within half a window of the part already asked for;
// nil otherwise.
func (j *Journal) aheadLocked() []byte {
	if j.opts.Fsync == Always {
		// Every fsync cleans the pages and makes the next write fault
		// again: faulting ahead would only add zero pages to each fsync.
		return nil
	}
	size := j.segs[len(j.segs)-1].size
	limit := min(j.fileEnd, int64(len(j.mapped)))
	if j.populated > size+populateWindow/2 || j.populated >= limit {
		return nil
	}
	from := max(j.populated, size) &^ int64(os.Getpagesize()-1) // madvise takes whole pages
	to := min(from+populateWindow, limit)
	j.populated = to
	return j.mapped[from:to]
}

// writeLocked encodes recs, numbered from lastLSN+1 and bytes long with
// their headers, straight into the active segment's mapping (no buffer in
// between: the lock is held for one copy of each record); now is when
// their append began (zero under No).
func (j *Journal) writeLocked(recs [][]byte, bytes int64, now time.Time) error {
	n := len(recs)
	act := &j.segs[len(j.segs)-1]
	if err := j.fault("write"); err != nil {
		return &AppendError{Err: err}
	}
	end := act.size + bytes
	if end > j.fileEnd || end > int64(len(j.mapped)) {
		if err := j.growLocked(end); err != nil {
			return &AppendError{Err: err}
		}
	}
	dst := j.mapped[act.size:end]
	for i, r := range recs {
		dst = dst[putRecord(dst, j.lastLSN+uint64(i)+1, r):]
	}
	act.size = end
	if j.opts.Fsync == No {
		if j.lag.empty() {
			j.lag.push(j.lastLSN+1, j.opts.now())
		}
	} else {
		j.lag.push(j.lastLSN+1, now)
	}
	j.lastLSN += uint64(n)
	if err := j.fault("after-write"); err != nil {
		return j.failLocked(err)
	}
	return nil
}

// chunk is how much disk the active segment is given at a time.
func (j *Journal) chunk() int64 { return min(allocChunk, j.opts.SegmentBytes) }

// growLocked gives the active segment disk up to at least end (a chunk
// more), and maps that far if the mapping is shorter (a record larger than
// SegmentBytes). An error leaves everything as it was: nothing was
// written.
func (j *Journal) growLocked(end int64) error {
	act := j.segs[len(j.segs)-1]
	if end > j.fileEnd {
		size := max(end, j.fileEnd) + j.chunk()
		if err := j.fault("allocate"); err != nil {
			return err
		}
		if err := allocate(j.active, size); err != nil {
			return fmt.Errorf("allocate %d bytes for %s: %w", size-j.fileEnd, act.path, err)
		}
		j.fileEnd = size
	}
	if end > int64(len(j.mapped)) {
		m, err := mapSegment(j.active, max(end, j.opts.SegmentBytes))
		if err != nil {
			return fmt.Errorf("map %s: %w", act.path, err)
		}
		unmapSegment(j.mapped)
		j.mapped, j.populated = m, 0
	}
	return nil
}

// backpressureLocked holds an Everysec writer back while the oldest
// unsynced record is older than MaxLag, like Redis delaying writes when the
// background fsync is slow: the loss window stays bounded instead of
// growing with the disk's backlog.
func (j *Journal) backpressureLocked(now time.Time) error {
	if j.opts.Fsync != Everysec {
		return nil
	}
	over := j.lagAtLocked(now) > j.opts.MaxLag
	if over != j.lagging.Load() {
		// Stored only when it changes: every writer reads it (WaitLag)
		// before taking a lock.
		j.lagging.Store(over)
	}
	for over {
		if err := j.awaitSyncLocked(context.Background()); err != nil {
			return err
		}
		if err := j.usableLocked(); err != nil { // the fsync waited for failed
			return err
		}
		over = j.lagLocked() > j.opts.MaxLag
		j.lagging.Store(over)
	}
	return nil
}

// WaitLag returns at once unless the journal is Everysec and its last
// append found the oldest unsynced record older than MaxLag; then it waits,
// until that is no longer so or ctx ends. A writer calls it before it
// takes any lock, so that the wait an append would make under the lock of
// its row (backpressureLocked) is made here instead, within the writer's
// context.
func (j *Journal) WaitLag(ctx context.Context) error {
	if !j.lagging.Load() {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.lagLocked() > j.opts.MaxLag {
		if err := j.awaitSyncLocked(ctx); err != nil {
			return err
		}
	}
	j.lagging.Store(false)
	return nil
}

// lagAtLocked is the age at now of the oldest unsynced record.
func (j *Journal) lagAtLocked(now time.Time) time.Duration {
	at, ok := j.lag.oldest()
	if !ok {
		return 0
	}
	return now.Sub(at)
}

// lagLocked is the age of the oldest unsynced record.
func (j *Journal) lagLocked() time.Duration { return j.lagAtLocked(j.opts.now()) }

// rollLocked closes the active segment and starts a new one at lastLSN+1.
// A new segment that finds no room on the disk is an *AppendError: the
// active segment stays as it was, and a later append tries again.
func (j *Journal) rollLocked() error {
	first := j.lastLSN + 1
	f, tmp, path, err := prepareSegment(j.dir, first, segHeaderSize+j.chunk(), func() error { return j.fault("allocate") })
	if err != nil {
		return &AppendError{Err: err}
	}
	// fsync the old segment, and cut it to its records, before the new one
	// exists: otherwise a power loss could keep the new (empty, fsynced)
	// file but lose the old one's tail, leaving a gap that Open must treat
	// as corruption.
	old, oldSize := j.active, j.segs[len(j.segs)-1].size
	// fail is the cleanup of every failure below: it closes the new
	// segment and, while that is still the temporary file, removes it,
	// then fails the journal (so the file is gone when that is logged).
	removeTmp := true
	fail := func(err error) error {
		f.Close()
		if removeTmp {
			os.Remove(tmp)
		}
		return j.failLocked(err)
	}
	start := time.Now()
	if err := old.Sync(); err != nil {
		return fail(fmt.Errorf("fsync: %w", err))
	}
	j.noteSyncLocked(j.lastLSN, time.Since(start))
	unmapSegment(j.mapped)
	j.mapped = nil
	err = old.Truncate(oldSize)
	if err == nil {
		err = old.Sync() // the cut, before the next segment exists
	}
	if err != nil {
		return fail(fmt.Errorf("cut %s to its records: %w", j.segs[len(j.segs)-1].path, err))
	}
	// From here tmp is renamed, or publishSegment has removed it.
	removeTmp = false
	if err := publishSegment(j.dir, tmp, path); err != nil {
		return fail(err)
	}
	if err := j.fault("roll-after-create"); err != nil {
		return fail(err)
	}
	m, err := mapSegment(f, j.opts.SegmentBytes)
	if err != nil {
		return fail(fmt.Errorf("map %s: %w", path, err))
	}
	if j.syncing {
		j.retired = append(j.retired, old) // syncNow closes it when done
	} else {
		old.Close()
	}
	j.active, j.mapped, j.populated, j.fileEnd = f, m, 0, segHeaderSize+j.chunk()
	j.segs = append(j.segs, segment{first: first, path: path, size: segHeaderSize})
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
	if j.clock != nil {
		j.clock.close()
	}
	err := j.syncNow()

	j.mu.Lock()
	unmapSegment(j.mapped)
	j.mapped = nil
	if j.err == nil {
		// Cut the allocated end off: a closed journal's files hold their
		// records only.
		if terr := j.active.Truncate(j.segs[len(j.segs)-1].size); terr == nil {
			terr = j.active.Sync()
			if err == nil {
				err = terr
			}
		} else if err == nil {
			err = terr
		}
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
