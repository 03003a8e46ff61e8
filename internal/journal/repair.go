package journal

import (
	"fmt"
	"os"
)

// Repair truncates the journal in dir at its first defect, like
// redis-check-aof --fix: the damaged segment is cut at the offset of the
// first bad record and every later segment is deleted. A segment with a
// damaged header is reset to an empty segment (keeping its LSN position, so
// that numbering continues); a segment that does not continue its
// predecessor (a gap) is deleted with everything after it.
//
// It returns the file and offset where it cut (cutFile is "" if the journal
// was intact) and the number of bytes discarded in total. Records after the
// cut are lost, and their LSNs will be handed out again by Append. Repair
// takes the directory lock, so it fails if the journal is open.
func Repair(dir string) (cutFile string, cutOffset int64, lost int64, err error) {
	if _, err := os.Stat(dir); err != nil {
		return "", 0, 0, fmt.Errorf("journal: %w", err)
	}
	lk, err := lockDir(dir)
	if err != nil {
		return "", 0, 0, err
	}
	defer lk.unlock()
	segs, err := listSegments(dir, true)
	if err != nil {
		return "", 0, 0, fmt.Errorf("journal: %w", err)
	}
	s, err := scanDir(dir, segs, nil)
	if err != nil {
		return "", 0, 0, fmt.Errorf("journal: %w", err)
	}
	p := s.corrupt
	if p == nil {
		p = s.torn
	}
	if p == nil {
		return "", 0, 0, nil
	}
	cut := s.segs[p.seg]
	// Newest first: a crash part-way leaves a contiguous prefix, and
	// running Repair again finishes the job.
	for i := len(s.segs) - 1; i > p.seg; i-- {
		fi, err := os.Stat(s.segs[i].path)
		if err != nil {
			return "", 0, lost, fmt.Errorf("journal: %w", err)
		}
		if err := os.Remove(s.segs[i].path); err != nil {
			return "", 0, lost, fmt.Errorf("journal: %w", err)
		}
		if err := syncDir(dir); err != nil {
			return "", 0, lost, fmt.Errorf("journal: %w", err)
		}
		lost += fi.Size()
	}
	switch {
	case p.gap:
		if err := os.Remove(cut.path); err != nil {
			return "", 0, lost, fmt.Errorf("journal: %w", err)
		}
		if err := syncDir(dir); err != nil {
			return "", 0, lost, fmt.Errorf("journal: %w", err)
		}
	case p.offset < segHeaderSize:
		// createSegment renames a fresh header over the damaged file.
		f, _, err := createSegment(dir, cut.first)
		if err != nil {
			return "", 0, lost, err
		}
		f.Close()
	default:
		f, err := os.OpenFile(cut.path, os.O_WRONLY, 0)
		if err != nil {
			return "", 0, lost, fmt.Errorf("journal: %w", err)
		}
		err = f.Truncate(p.offset)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", 0, lost, fmt.Errorf("journal: %w", err)
		}
	}
	lost += p.fileSize - p.offset
	return cut.path, p.offset, lost, nil
}

// SegmentInfo describes one segment file, as reported by Check.
type SegmentInfo struct {
	File     string
	FirstLSN uint64 // from the file name
	LastLSN  uint64 // last valid record (FirstLSN-1 if none)
	Records  int64  // valid records
	Bytes    int64  // file size
	Checked  bool   // false for segments after a defect (not read)
}

// Report is the result of Check.
type Report struct {
	Segments []SegmentInfo
	Records  int64  // valid records before any defect
	FirstLSN uint64 // 0 if no records
	LastLSN  uint64 // last valid record before any defect (0 if none)
	Bytes    int64  // total size of the segment files
	// TornTail is an incomplete or garbled last record with nothing
	// valid after it; Open cuts it (and logs it). Not an error.
	TornTail *CorruptError
	// Corrupt is damage with valid data after it: Open refuses to start
	// and Repair (writeback journal fix) cuts there.
	Corrupt *CorruptError
}

// Check validates the journal in dir without changing it, calling visit (if
// not nil) for each valid record in order. It takes the directory lock, so
// it fails with ErrInUse while the journal is open elsewhere (reading a
// journal that is being appended to would report in-flight writes as torn).
func Check(dir string, visit RecordVisitor) (Report, error) {
	var rep Report
	if _, err := os.Stat(dir); err != nil {
		return rep, fmt.Errorf("journal: %w", err)
	}
	lk, err := lockDir(dir)
	if err != nil {
		return rep, err
	}
	defer lk.unlock()
	segs, err := listSegments(dir, false)
	if err != nil {
		return rep, fmt.Errorf("journal: %w", err)
	}
	counts := make(map[string]int64)
	lasts := make(map[string]uint64)
	s, err := scanDir(dir, segs, func(file string, off int64, lsn uint64, rec []byte) error {
		counts[file]++
		lasts[file] = lsn
		if visit != nil {
			return visit(file, off, lsn, rec)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("journal: %w", err)
	}
	stop := len(s.segs)
	if p := s.corrupt; p != nil {
		rep.Corrupt = p.corruptError(s)
		stop = p.seg
		if !p.gap {
			stop++ // the damaged segment was read up to the damage
		}
	}
	if p := s.torn; p != nil {
		rep.TornTail = p.corruptError(s)
	}
	for i, seg := range s.segs {
		info := SegmentInfo{File: seg.path, FirstLSN: seg.first, LastLSN: seg.first - 1, Checked: i < stop}
		if fi, err := os.Stat(seg.path); err == nil {
			info.Bytes = fi.Size()
		}
		if n := counts[seg.path]; n > 0 {
			info.Records, info.LastLSN = n, lasts[seg.path]
		}
		rep.Segments = append(rep.Segments, info)
		rep.Bytes += info.Bytes
	}
	rep.Records = s.records
	if s.records > 0 {
		rep.FirstLSN = s.segs[0].first
		rep.LastLSN = s.lastLSN
	}
	return rep, nil
}
