package lossstate

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEstimate(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s := &State{At: at, Tables: map[string]Table{
		"busy":   {Rows: 10, Writes: 500, Oldest: at.Add(-3 * time.Second), Rate: 100, MaxRows: 40},
		"capped": {Rows: 38, Writes: 50, Rate: 1000, MaxRows: 40},
		"idle":   {},
	}}
	got := Estimate(s)
	if l := got["busy"]; l.Writes != 600 || l.Rows != 40 || !l.From.Equal(at.Add(-3*time.Second)) || !l.To.Equal(at.Add(Refresh)) {
		t.Errorf("busy: %+v", l)
	}
	if l := got["capped"]; l.Writes != 1050 || l.Rows != 40 || !l.From.Equal(at) {
		t.Errorf("capped: %+v", l)
	}
	if _, ok := got["idle"]; ok {
		t.Error("an idle table is reported")
	}
}

func TestFileRoundTripAndLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wb.state")
	f, prev, err := Open(path)
	if err != nil || prev != nil {
		t.Fatalf("fresh: %v, %+v", err, prev)
	}
	if _, _, err := Open(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second keeper: %v, want ErrInUse", err)
	}
	want := &State{PID: 7, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Tables: map[string]Table{"t": {Rows: 1, Writes: 2, Rate: 3.5}}}
	if err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f, got, err := Open(path)
	if err != nil || got == nil || got.PID != 7 || got.Clean || got.Tables["t"].Writes != 2 || !got.At.Equal(want.At) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	f.Close()
	if err := os.WriteFile(path, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, got, err = Open(path)
	if f == nil || got != nil || err == nil {
		t.Fatalf("damaged file: %v %+v %v; want the file kept, no state and an error", f, got, err)
	}
	f.Close()
}
