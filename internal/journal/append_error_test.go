package journal

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestAppendErrorLeavesJournalUsable: a write that fails with nothing
// written (a full disk) is an *AppendError; the journal takes the next
// append, and replay sees exactly the records that were appended.
func TestAppendErrorLeavesJournalUsable(t *testing.T) {
	var full atomic.Bool
	dir := t.TempDir()
	j, err := Open(dir, Options{Fault: func(point string) error {
		if point == "write" && full.Load() {
			return syscall.ENOSPC
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append([]byte("one")); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	_, err = j.Append([]byte("lost"))
	var ae *AppendError
	if !errors.As(err, &ae) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want an *AppendError wrapping ENOSPC", err)
	}
	full.Store(false)
	lsn, err := j.Append([]byte("two"))
	if err != nil || lsn != 2 {
		t.Fatalf("append after space came back: lsn %d, %v; want 2, nil", lsn, err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var got []string
	if err := j.Replay(0, func(lsn uint64, b []byte) error { got = append(got, string(b)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("replayed %q, want [one two]", got)
	}
}
