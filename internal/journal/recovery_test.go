package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// buildJournal writes n records with small segments and returns the
// closed journal's directory.
func buildJournal(t *testing.T, n int, segBytes int64) string {
	t.Helper()
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{SegmentBytes: segBytes})
	appendN(t, j, n)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestTornTailEveryOffset cuts the last segment at every byte offset inside
// its last record: Open must cut back to the previous record (logging it),
// Replay must return exactly the earlier records, and appending must go on
// from there.
func TestTornTailEveryOffset(t *testing.T) {
	const n = 12
	tmpl := buildJournal(t, n, 120) // several segments, several records in the last
	segs := segFiles(t, tmpl)
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	last := segs[len(segs)-1]
	offs := recordOffsets(t, last.path, last.first)
	if len(offs) < 2 {
		t.Fatalf("want several records in the last segment, got %d", len(offs))
	}
	start, end := offs[len(offs)-1], last.size
	for cut := start; cut < end; cut++ {
		dir := copyDir(t, tmpl)
		path := filepath.Join(dir, filepath.Base(last.path))
		if err := os.Truncate(path, cut); err != nil {
			t.Fatal(err)
		}
		logger, logs := newLogger()
		j, err := Open(dir, Options{Logger: logger})
		if err != nil {
			t.Fatalf("cut at %d: Open: %v", cut, err)
		}
		if got := j.LastLSN(); got != n-1 {
			t.Fatalf("cut at %d: LastLSN = %d, want %d", cut, got, n-1)
		}
		checkRecords(t, replayAll(t, j, 0), 1, n-1)
		if got := activeSize(j); got != start {
			t.Fatalf("cut at %d: segment holds %d bytes, want %d", cut, got, start)
		}
		if cut > start {
			want := fmt.Sprintf("offset=%d bytes=%d", start, cut-start)
			if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "torn tail") || !strings.Contains(l, want) || !strings.Contains(l, path) {
				t.Fatalf("cut at %d: no proper warning (want %q): %s", cut, want, l)
			}
		}
		appendN(t, j, 2)
		j.Close()
		logger, logs = newLogger()
		j, err = Open(dir, Options{Logger: logger})
		if err != nil {
			t.Fatalf("cut at %d: reopen: %v", cut, err)
		}
		checkRecords(t, replayAll(t, j, 0), 1, n+1)
		if strings.Contains(logs.String(), "torn") {
			t.Fatalf("cut at %d: second open found a torn tail again", cut)
		}
		j.Close()
	}
}

// TestTornTailGarbage covers what a crash leaves besides a short record:
// zeros (a file extended but not written, as after a power loss on ext4)
// and random bytes, both with nothing valid behind them.
func TestTornTailGarbage(t *testing.T) {
	tmpl := buildJournal(t, 5, 0)
	segs := segFiles(t, tmpl)
	tails := map[string][]byte{
		"1 zero":      make([]byte, 1),
		"16 zeros":    make([]byte, 16),
		"4096 zeros":  make([]byte, 4096),
		"garbage":     []byte("\xde\xad\xbe\xef this is not a record at all, just bytes"),
		"huge length": append([]byte{0xff, 0xff, 0xff, 0x7f}, make([]byte, 40)...),
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t, tmpl)
			path := filepath.Join(dir, filepath.Base(segs[0].path))
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(tail)
			f.Close()
			j := mustOpen(t, dir, Options{})
			defer j.Close()
			checkRecords(t, replayAll(t, j, 0), 1, 5)
			if got := activeSize(j); got != segs[0].size {
				t.Fatalf("segment holds %d bytes, want %d", got, segs[0].size)
			}
			j.Close()
			if fi, _ := os.Stat(path); fi.Size() != segs[0].size {
				t.Fatalf("file is %d bytes after Close, want %d", fi.Size(), segs[0].size)
			}
		})
	}
}

// TestFlippedByte flips every byte of every record in turn. Damage with
// valid records behind it must stop Open with a *CorruptError naming the
// file and the record's offset; damage to the very last record is a torn
// tail and is cut.
func TestFlippedByte(t *testing.T) {
	const n = 9
	tmpl := buildJournal(t, n, 120)
	segs := segFiles(t, tmpl)
	dir := copyDir(t, tmpl)
	lsn := uint64(0)
	for si, s := range segs {
		path := filepath.Join(dir, filepath.Base(s.path))
		offs := recordOffsets(t, path, s.first)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for ri, off := range offs {
			lsn++
			end := s.size
			if ri+1 < len(offs) {
				end = offs[ri+1]
			}
			lastRecord := si == len(segs)-1 && ri == len(offs)-1
			for b := off; b < end; b++ {
				bad := append([]byte(nil), orig...)
				bad[b] ^= 0xff
				os.WriteFile(path, bad, 0o644)
				j, err := Open(dir, quietOpts(Options{}))
				if lastRecord {
					if err != nil {
						t.Fatalf("LSN %d byte %d: damage to the last record should be cut: %v", lsn, b, err)
					}
					if got := j.LastLSN(); got != n-1 {
						t.Fatalf("LSN %d byte %d: LastLSN = %d", lsn, b, got)
					}
					j.Close()
					continue
				}
				var ce *CorruptError
				if !errors.As(err, &ce) {
					if err == nil {
						j.Close()
					}
					t.Fatalf("LSN %d byte %d: Open = %v, want *CorruptError", lsn, b, err)
				}
				if ce.File != path || ce.Offset != off {
					t.Fatalf("LSN %d byte %d: CorruptError at %s:%d, want %s:%d", lsn, b, ce.File, ce.Offset, path, off)
				}
				if msg := err.Error(); !strings.Contains(msg, "cmd/writeback journal fix "+dir) || !strings.Contains(msg, fmt.Sprint(off)) {
					t.Fatalf("error does not say how to proceed: %s", msg)
				}
			}
			os.WriteFile(path, orig, 0o644)
		}
	}
}

// TestRepairMiddle damages a record in a middle segment, repairs, and
// checks what is left and that the journal carries on.
func TestRepairMiddle(t *testing.T) {
	const n = 12
	dir := buildJournal(t, n, 120)
	segs := segFiles(t, dir)
	victim := segs[1]
	offs := recordOffsets(t, victim.path, victim.first)
	off := offs[1] // the second record of the second segment
	badLSN := victim.first + 1
	b, _ := os.ReadFile(victim.path)
	b[off+recHeaderSize] ^= 0x01 // a payload bit
	os.WriteFile(victim.path, b, 0o644)

	rep, err := Check(dir, nil)
	if err != nil || rep.Corrupt == nil || rep.Corrupt.Offset != off || rep.LastLSN != badLSN-1 {
		t.Fatalf("Check: %+v, %v", rep, err)
	}
	var later int64
	for _, s := range segs[2:] {
		later += s.size
	}
	file, cutOff, lost, err := Repair(dir)
	if err != nil {
		t.Fatal(err)
	}
	if file != victim.path || cutOff != off || lost != victim.size-off+later {
		t.Fatalf("Repair = %s:%d lost %d, want %s:%d lost %d", file, cutOff, lost, victim.path, off, victim.size-off+later)
	}
	if file, _, _, err := Repair(dir); file != "" || err != nil {
		t.Fatalf("second Repair cut again: %q, %v", file, err)
	}
	j := mustOpen(t, dir, Options{SegmentBytes: 120})
	if got := j.LastLSN(); got != badLSN-1 {
		t.Fatalf("LastLSN after repair = %d, want %d", got, badLSN-1)
	}
	checkRecords(t, replayAll(t, j, 0), 1, badLSN-1)
	appendN(t, j, 10) // numbering resumes at the cut
	j.Close()
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	checkRecords(t, replayAll(t, j, 0), 1, badLSN+9)
}

func TestRepairTornTail(t *testing.T) {
	dir := buildJournal(t, 3, 0)
	s := segFiles(t, dir)[0]
	offs := recordOffsets(t, s.path, s.first)
	os.Truncate(s.path, s.size-2)
	rep, err := Check(dir, nil)
	if err != nil || rep.TornTail == nil || rep.Corrupt != nil || rep.Records != 2 {
		t.Fatalf("Check: torn=%v corrupt=%v records=%d, %v", rep.TornTail, rep.Corrupt, rep.Records, err)
	}
	file, off, lost, err := Repair(dir)
	if err != nil || file != s.path || off != offs[2] || lost != s.size-2-offs[2] {
		t.Fatalf("Repair = %s:%d lost %d, %v", file, off, lost, err)
	}
}

// TestGap: a missing middle segment is corruption; a missing first one
// (a compaction cut short) is not.
func TestGap(t *testing.T) {
	tmpl := buildJournal(t, 12, 120)
	segs := segFiles(t, tmpl)
	if len(segs) < 4 {
		t.Fatalf("want at least 4 segments, got %d", len(segs))
	}
	t.Run("middle", func(t *testing.T) {
		dir := copyDir(t, tmpl)
		os.Remove(filepath.Join(dir, filepath.Base(segs[1].path)))
		_, err := Open(dir, quietOpts(Options{}))
		var ce *CorruptError
		next := filepath.Join(dir, filepath.Base(segs[2].path))
		if !errors.As(err, &ce) || ce.File != next || ce.Offset != 0 || !strings.Contains(ce.Reason, "gap") {
			t.Fatalf("Open = %v", err)
		}
		file, _, _, err := Repair(dir)
		if err != nil || file != next {
			t.Fatalf("Repair = %s, %v", file, err)
		}
		j := mustOpen(t, dir, Options{})
		defer j.Close()
		checkRecords(t, replayAll(t, j, 0), 1, segs[1].first-1)
	})
	t.Run("first", func(t *testing.T) {
		dir := copyDir(t, tmpl)
		os.Remove(filepath.Join(dir, filepath.Base(segs[0].path)))
		j := mustOpen(t, dir, Options{})
		defer j.Close()
		checkRecords(t, replayAll(t, j, 0), segs[1].first, 12)
		if st := j.Stats(); st.FirstLSN != segs[1].first || st.LastLSN != 12 {
			t.Fatalf("stats: %+v", st)
		}
	})
}

// TestBadSegmentHeader: a damaged header is corruption at offset 0; Repair
// resets the segment so numbering continues where it started.
func TestBadSegmentHeader(t *testing.T) {
	dir := buildJournal(t, 12, 120)
	segs := segFiles(t, dir)
	b, _ := os.ReadFile(segs[2].path)
	b[3] ^= 0xff
	os.WriteFile(segs[2].path, b, 0o644)
	_, err := Open(dir, quietOpts(Options{}))
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != segs[2].path || ce.Offset != 0 {
		t.Fatalf("Open = %v", err)
	}
	if _, _, _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	j := mustOpen(t, dir, Options{})
	defer j.Close()
	if got := j.LastLSN(); got != segs[2].first-1 {
		t.Fatalf("LastLSN = %d, want %d", got, segs[2].first-1)
	}
	appendN(t, j, 1)
	checkRecords(t, replayAll(t, j, 0), 1, segs[2].first)
}

func TestCheckReport(t *testing.T) {
	dir := buildJournal(t, 12, 120)
	var lsns []uint64
	rep, err := Check(dir, func(file string, off int64, lsn uint64, rec []byte) error {
		lsns = append(lsns, lsn)
		return nil
	})
	if err != nil || rep.Corrupt != nil || rep.TornTail != nil {
		t.Fatalf("Check: %+v, %v", rep, err)
	}
	if rep.Records != 12 || rep.FirstLSN != 1 || rep.LastLSN != 12 || len(lsns) != 12 || len(rep.Segments) != len(segFiles(t, dir)) {
		t.Fatalf("Check report: %+v", rep)
	}
	var sum int64
	for _, s := range rep.Segments {
		sum += s.Records
	}
	if sum != 12 || rep.Bytes != dirBytes(t, dir) {
		t.Fatalf("Check per-segment totals: %+v", rep)
	}
}
