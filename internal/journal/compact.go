package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Replay calls fn for every record with LSN > after, in LSN order, up to the
// last record appended when Replay started. rec is freshly allocated and may
// be kept. An error from fn stops Replay and is returned as is; damage found
// on disk is returned as a *CorruptError. Appends may run concurrently; fn
// must not call Compact or Close (they wait for Replay to finish).
func (j *Journal) Replay(after uint64, fn func(lsn uint64, rec []byte) error) error {
	j.compactMu.RLock()
	defer j.compactMu.RUnlock()
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	segs := slices.Clone(j.segs)
	last := j.lastLSN
	j.mu.Unlock()
	if after >= last {
		return nil
	}
	for i, s := range segs {
		// Skip segments entirely at or before after, and empty ones.
		if i+1 < len(segs) && segs[i+1].first-1 <= after || s.first > last {
			continue
		}
		done, err := replaySegment(s, after, last, fn)
		if err != nil || done {
			return err
		}
	}
	return nil
}

// replaySegment replays the records of one segment in (after, last]. It
// reports done once it has delivered last.
func replaySegment(s segment, after, last uint64, fn func(uint64, []byte) error) (done bool, err error) {
	r, err := openSegReader(s.path, s.first)
	if err != nil {
		return false, err
	}
	defer r.Close()
	for {
		lsn, rec, err := r.nextRecord()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if lsn > after {
			if err := fn(lsn, rec); err != nil {
				return false, err
			}
		}
		// Stop exactly at last: a concurrent Append may be writing the
		// next record right now, and it must not look like damage.
		if lsn >= last {
			return true, nil
		}
	}
}

// Compact removes whole segments whose records all have LSN <= upTo (an
// upTo beyond LastLSN means all of them). The active segment is never
// removed; if all of it is covered, it is rolled first so that it can be.
//
// Segments are deleted oldest first, with a directory fsync after each, so
// a crash at any point leaves the remaining segments contiguous: Open then
// continues from the oldest file present.
func (j *Journal) Compact(upTo uint64) error {
	j.compactMu.Lock()
	defer j.compactMu.Unlock()
	j.mu.Lock()
	if err := j.usableLocked(); err != nil {
		j.mu.Unlock()
		return err
	}
	if act := j.segs[len(j.segs)-1]; upTo >= j.lastLSN && j.lastLSN >= act.first {
		if err := j.rollLocked(); err != nil {
			j.mu.Unlock()
			return err
		}
	}
	n := 0
	for n+1 < len(j.segs) && j.segs[n+1].first-1 <= upTo {
		n++
	}
	victims := slices.Clone(j.segs[:n])
	j.mu.Unlock()

	// Files are removed without holding mu so that appends go on;
	// compactMu keeps Replay (and other Compacts) away from them.
	fail := func(err error) error {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.failLocked(err)
	}
	for _, v := range victims {
		if err := j.fault("compact-before-remove"); err != nil {
			return fail(err)
		}
		if err := os.Remove(v.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(fmt.Errorf("compact: %w", err))
		}
		// One directory fsync per file: without it the removals could
		// reach the disk out of order, and a power loss could leave a
		// newer segment deleted but an older one present (a gap).
		if err := syncDir(j.dir); err != nil {
			return fail(fmt.Errorf("compact: %w", err))
		}
		j.mu.Lock()
		j.segs = j.segs[1:] // v is always the oldest: only Compact removes
		j.mu.Unlock()
		if err := j.fault("compact-after-remove"); err != nil {
			return fail(err)
		}
	}
	return nil
}
