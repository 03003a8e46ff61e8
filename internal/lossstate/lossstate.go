// Package lossstate keeps, in a small file, what a crash of the process
// could take from each back table — the buffered writes not yet committed,
// their rows, the oldest one's age and the recent write rate — so that the
// next open after an unclean stop can say what was lost at most. The
// connector refreshes the file at most once per Refresh; a clean shutdown
// marks it clean.
//
// The file is written whole to a temporary file, fsynced and renamed, so a
// reader sees one state or the one before, never a mix. It is locked with
// flock(2) by the process that writes it: a second process on the same
// file gets ErrInUse and keeps no state.
package lossstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Refresh is the least time between two writes of the file, once the run
// has started; during its first StartWindow the file is refreshed every
// StartRefresh, so that a crash soon after an open (a crash loop) is
// bounded by a measured rate, not by the empty state written at open.
const (
	Refresh      = time.Second
	StartRefresh = 100 * time.Millisecond
	StartWindow  = 2 * time.Second
)

// ErrInUse is returned by Open when another process keeps the same file.
var ErrInUse = errors.New("lossstate: the state file is kept by another process")

// Table is one back table's figures at a refresh.
type Table struct {
	// Rows and Writes are the rows and writes buffered and not yet
	// committed.
	Rows   int64 `json:"rows"`
	Writes int64 `json:"writes"`
	// Oldest is when the oldest of them was buffered (zero when none).
	Oldest time.Time `json:"oldest"`
	// Rate is the writes buffered per second since the refresh before.
	Rate float64 `json:"rate"`
	// MaxRows is the most rows the table may hold buffered (its bound).
	MaxRows int64 `json:"max_rows"`
}

// State is the file's content.
type State struct {
	PID int `json:"pid"`
	// Clean is set by a shutdown that flushed everything it could.
	Clean bool      `json:"clean"`
	At    time.Time `json:"at"`
	// Journal: the writes were journaled too (a crash loses none).
	Journal bool             `json:"journal"`
	Tables  map[string]Table `json:"tables"`
	// Next is when the next refresh was due (zero: At + Refresh).
	Next time.Time `json:"next,omitempty"`
}

// Loss is what an unclean stop could have taken from one table.
type Loss struct {
	// Writes and Rows bound the writes lost and the rows they went to:
	// those pending at the last refresh, plus what the recent rate could
	// have added before the next refresh was due.
	Writes, Rows int64
	// From and To bound when the lost writes were acknowledged.
	From, To time.Time
}

// Estimate is what the stop that left s (not clean) could have taken,
// per table with anything pending or being written.
func Estimate(s *State) map[string]Loss {
	out := map[string]Loss{}
	next := s.Next
	if next.IsZero() {
		next = s.At.Add(Refresh)
	}
	for name, t := range s.Tables {
		extra := int64(math.Ceil(t.Rate * next.Sub(s.At).Seconds()))
		if t.Writes == 0 && extra == 0 {
			continue
		}
		from := t.Oldest
		if from.IsZero() {
			from = s.At
		}
		rows := t.Rows + extra
		if t.MaxRows > 0 {
			rows = min(rows, t.MaxRows)
		}
		out[name] = Loss{Writes: t.Writes + extra, Rows: min(rows, t.Writes+extra), From: from, To: next}
	}
	return out
}

// File is a state file kept by this process.
type File struct {
	path string
	lock *os.File
}

// Open locks the state file at path for this process and returns what it
// held from the run before (nil when there was none).
func Open(path string) (*File, *State, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("lossstate: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("%w: %s", ErrInUse, path)
		}
		return nil, nil, fmt.Errorf("lossstate: lock %s: %w", path, err)
	}
	f := &File{path: path, lock: lock}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return f, nil, nil
	case err != nil:
		f.Close()
		return nil, nil, fmt.Errorf("lossstate: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return f, nil, fmt.Errorf("lossstate: %s holds no state (%w); it is written anew", path, err)
	}
	return f, &s, nil
}

// Write replaces the file's state.
func (f *File) Write(s *State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), filepath.Base(f.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("lossstate: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("lossstate: write %s: %w", f.path, err)
	}
	return nil
}

// Close unlocks the file.
func (f *File) Close() error {
	if f == nil || f.lock == nil {
		return nil
	}
	err := f.lock.Close()
	f.lock = nil
	return err
}
