package journal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// On-disk format. All integers are little-endian.
//
// A segment file is named by the LSN of its first record, zero-padded to 20
// digits so that lexical and numeric order agree: 00000000000000000001.seg.
// It starts with a segment header:
//
//	offset size field
//	0      6    magic "WBJRNL"
//	6      2    format version (1)
//	8      8    first LSN (must equal the file name)
//	16     4    CRC-32C (Castagnoli) of bytes 0..15
//
// followed by zero or more records, each a record header and a payload:
//
//	offset size field
//	0      4    payload length n
//	4      4    CRC-32C over the 8 LSN bytes followed by the n payload bytes
//	8      8    LSN
//	16     n    payload
//
// The LSN is inside the checksum so that a record copied or left over at the
// wrong position (stale data after a truncation, a misdirected write) is not
// mistaken for a valid one. LSNs within a segment are consecutive, and each
// segment starts where the previous one ended.
const (
	segMagic      = "WBJRNL"
	segVersion    = 1
	segHeaderSize = 20
	recHeaderSize = 16
	segSuffix     = ".seg"
	tmpSuffix     = ".seg.tmp"
	lockName      = "LOCK"

	// MaxRecordBytes bounds a single payload. It keeps a corrupted length
	// field from making recovery allocate gigabytes, and is far beyond any
	// sensible buffered write.
	MaxRecordBytes = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordCRC is the checksum stored in a record header.
func recordCRC(lsn uint64, payload []byte) uint32 {
	return crc32.Update(lsnCRC(lsn), castagnoli, payload)
}

// lsnCRC is crc32.Update(0, castagnoli, lsn in little-endian), a byte at a
// time from the table: handing crc32 an 8-byte array would move the array
// to the heap, one allocation per record under the journal's lock.
func lsnCRC(lsn uint64) uint32 {
	crc := ^uint32(0)
	for range 8 {
		crc = castagnoli[byte(crc)^byte(lsn)] ^ crc>>8
		lsn >>= 8
	}
	return ^crc
}

// putRecord encodes one record at the start of dst, which has room for it,
// and returns its size.
func putRecord(dst []byte, lsn uint64, payload []byte) int {
	binary.LittleEndian.PutUint32(dst[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[4:], recordCRC(lsn, payload))
	binary.LittleEndian.PutUint64(dst[8:], lsn)
	return recHeaderSize + copy(dst[recHeaderSize:], payload)
}

// segHeader encodes a segment header.
func segHeader(first uint64) []byte {
	h := make([]byte, segHeaderSize)
	copy(h, segMagic)
	binary.LittleEndian.PutUint16(h[6:], segVersion)
	binary.LittleEndian.PutUint64(h[8:], first)
	binary.LittleEndian.PutUint32(h[16:], crc32.Checksum(h[:16], castagnoli))
	return h
}

// checkSegHeader returns why h is not a valid header for a segment whose
// file name says first, or "" if it is.
func checkSegHeader(h []byte, first uint64) string {
	switch {
	case len(h) < segHeaderSize:
		return fmt.Sprintf("segment header cut short (%d of %d bytes)", len(h), segHeaderSize)
	case string(h[:6]) != segMagic:
		return fmt.Sprintf("bad segment magic %q", h[:6])
	case crc32.Checksum(h[:16], castagnoli) != binary.LittleEndian.Uint32(h[16:]):
		return "segment header checksum mismatch"
	case binary.LittleEndian.Uint16(h[6:]) != segVersion:
		return fmt.Sprintf("unsupported segment format version %d (want %d)", binary.LittleEndian.Uint16(h[6:]), segVersion)
	case binary.LittleEndian.Uint64(h[8:]) != first:
		return fmt.Sprintf("segment header says first LSN %d but the file name says %d", binary.LittleEndian.Uint64(h[8:]), first)
	}
	return ""
}

func segName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// parseSegName returns the first LSN encoded in a segment file name.
func parseSegName(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(base) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 64)
	return n, err == nil && n > 0
}

// segment is one segment file as known to a Journal or a scan.
type segment struct {
	first uint64 // LSN of the first record (from the name)
	path  string
	size  int64 // bytes of valid data (header + whole records)
}

// listSegments returns the segment files in dir in LSN order. Leftover
// temporary files from a crash during segment creation are removed when
// removeTmp is set: they were never renamed into place, so no record in them
// was ever acknowledged.
func listSegments(dir string, removeTmp bool) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			if removeTmp {
				if err := os.Remove(filepath.Join(dir, name)); err != nil {
					return nil, err
				}
			}
			continue
		}
		if first, ok := parseSegName(name); ok && e.Type().IsRegular() {
			segs = append(segs, segment{first: first, path: filepath.Join(dir, name)})
		}
	}
	sort.Slice(segs, func(i, k int) bool { return segs[i].first < segs[k].first })
	return segs, nil
}

// CorruptError reports a damaged journal that Open refuses to repair on its
// own, because records that were valid (and may have been acknowledged)
// follow the damage. A torn tail (an incomplete or garbled last record with
// nothing valid after it) is not reported this way: Open cuts it and logs a
// warning.
type CorruptError struct {
	File   string // segment file path
	Offset int64  // byte offset of the first bad record (or header) in File
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("journal: corrupt segment %s at offset %d: %s; "+
		"to truncate the journal at this point, losing every record from here on, "+
		"stop all users of the journal and run: go run github.com/writeback-go/writeback/cmd/writeback journal fix %s",
		e.File, e.Offset, e.Reason, filepath.Dir(e.File))
}

// segReader reads and validates the records of one segment file in order.
type segReader struct {
	f    *os.File
	br   *bufio.Reader
	path string
	size int64  // file size when opened
	off  int64  // offset of the next record
	next uint64 // LSN the next record must carry
	hdr  [recHeaderSize]byte
}

// openSegReader opens path and validates its header. A bad header is
// returned as a *CorruptError at offset 0.
func openSegReader(path string, first uint64) (*segReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r := &segReader{f: f, br: bufio.NewReaderSize(f, 1<<20), path: path, size: fi.Size(), next: first}
	h := make([]byte, segHeaderSize)
	n, err := io.ReadFull(r.br, h)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, err
	}
	if reason := checkSegHeader(h[:n], first); reason != "" {
		f.Close()
		return nil, &CorruptError{File: path, Offset: 0, Reason: reason}
	}
	r.off = segHeaderSize
	return r, nil
}

func (r *segReader) Close() error { return r.f.Close() }

// nextRecord returns the next record. The payload is freshly allocated.
// It returns io.EOF at a clean end of file and a *CorruptError (at the
// offset of the bad record) otherwise; the reader must not be used after
// an error.
func (r *segReader) nextRecord() (lsn uint64, payload []byte, err error) {
	remain := r.size - r.off
	if remain == 0 {
		return 0, nil, io.EOF
	}
	bad := func(format string, args ...any) error {
		return &CorruptError{File: r.path, Offset: r.off, Reason: fmt.Sprintf(format, args...)}
	}
	if remain < recHeaderSize {
		return 0, nil, bad("record header cut short (%d of %d bytes)", remain, recHeaderSize)
	}
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("journal: read %s at %d: %w", r.path, r.off, err)
	}
	n := int64(binary.LittleEndian.Uint32(r.hdr[0:]))
	sum := binary.LittleEndian.Uint32(r.hdr[4:])
	lsn = binary.LittleEndian.Uint64(r.hdr[8:])
	if n > MaxRecordBytes {
		return 0, nil, bad("record length %d exceeds the maximum %d", n, MaxRecordBytes)
	}
	if n > remain-recHeaderSize {
		return 0, nil, bad("record of %d bytes cut short (%d bytes left in file)", n, remain-recHeaderSize)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		return 0, nil, fmt.Errorf("journal: read %s at %d: %w", r.path, r.off, err)
	}
	if recordCRC(lsn, payload) != sum {
		return 0, nil, bad("record checksum mismatch (header says LSN %d, length %d)", lsn, n)
	}
	if lsn != r.next {
		return 0, nil, bad("record has LSN %d, want %d", lsn, r.next)
	}
	r.off += recHeaderSize + n
	r.next++
	return lsn, payload, nil
}

// validRecordAfter reports whether any byte offset in (from, size) of f holds
// a record that checks out with an LSN at or after minLSN. Open uses it to
// tell a torn tail (garbage, zeros or a partial record with nothing behind
// it: cut it) from damage in the middle of the last segment (valid,
// possibly acknowledged records follow: refuse). The LSN range filter keeps
// the byte-by-byte search cheap; the checksum makes a false positive
// practically impossible.
func validRecordAfter(f *os.File, from, size int64, minLSN uint64) (bool, error) {
	if size-from <= recHeaderSize {
		return false, nil
	}
	b := make([]byte, size-from)
	if _, err := f.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	maxLSN := minLSN + uint64(len(b))/recHeaderSize
	for p := 1; p+recHeaderSize <= len(b); p++ {
		lsn := binary.LittleEndian.Uint64(b[p+8:])
		if lsn < minLSN || lsn > maxLSN {
			continue
		}
		n := int(binary.LittleEndian.Uint32(b[p:]))
		if n > len(b)-p-recHeaderSize {
			continue
		}
		if recordCRC(lsn, b[p+recHeaderSize:p+recHeaderSize+n]) == binary.LittleEndian.Uint32(b[p+4:]) {
			return true, nil
		}
	}
	return false, nil
}

// zeroFrom reports whether bytes [from, size) of f are all zero.
func zeroFrom(f *os.File, from, size int64) (bool, error) {
	buf := make([]byte, 1<<20)
	zeros := make([]byte, len(buf))
	for off := from; off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if !bytes.Equal(buf[:n], zeros[:n]) {
			return false, nil
		}
		off += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			return false, err
		}
	}
	return true, nil
}

// problem is the first defect found by scanDir.
type problem struct {
	seg      int   // index into scan.segs
	offset   int64 // where valid data ends in that segment
	reason   string
	gap      bool  // the segment does not continue its predecessor: all of it is suspect
	fileSize int64 // size of that segment file
}

func (p *problem) corruptError(s *scan) *CorruptError {
	return &CorruptError{File: s.segs[p.seg].path, Offset: p.offset, Reason: p.reason}
}

// scan is the result of validating every segment in a directory.
type scan struct {
	segs    []segment // in LSN order; size = valid bytes
	lastLSN uint64    // last valid LSN before any problem (first-1 if none)
	torn    *problem  // a torn tail of the last segment: safe to cut
	corrupt *problem  // damage with valid data behind it: needs -fix
	records int64
}

// RecordVisitor is called by Check for each valid record.
type RecordVisitor func(file string, offset int64, lsn uint64, rec []byte) error

// scanDir validates all segments of dir. It stops at the first defect,
// classifying it as torn (last record of the last segment, nothing valid
// behind it) or corrupt. visit, if set, sees every valid record before the
// defect.
func scanDir(dir string, segs []segment, visit RecordVisitor) (*scan, error) {
	s := &scan{segs: segs}
	if len(segs) == 0 {
		return s, nil
	}
	s.lastLSN = segs[0].first - 1
	for i := range segs {
		seg := &segs[i]
		last := i == len(segs)-1
		if i > 0 && seg.first != s.lastLSN+1 {
			// Compaction deletes the oldest segments first and a roll
			// fsyncs the old segment before creating the new one, so
			// neither a crash nor a power loss can leave a hole.
			fi, err := os.Stat(seg.path)
			if err != nil {
				return nil, err
			}
			s.corrupt = &problem{seg: i, offset: 0, gap: true, fileSize: fi.Size(),
				reason: fmt.Sprintf("gap in the journal: previous segment ends at LSN %d but this one starts at %d", s.lastLSN, seg.first)}
			return s, nil
		}
		r, err := openSegReader(seg.path, seg.first)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				return nil, err
			}
			fi, serr := os.Stat(seg.path)
			if serr != nil {
				return nil, serr
			}
			// Headers are written to a temporary file, fsynced and
			// renamed into place, so a bad one is never a torn write.
			s.corrupt = &problem{seg: i, offset: 0, reason: ce.Reason, fileSize: fi.Size()}
			return s, nil
		}
		for {
			lsn, rec, err := r.nextRecord()
			if err == io.EOF {
				break
			}
			if err != nil {
				var ce *CorruptError
				if !errors.As(err, &ce) {
					r.Close()
					return nil, err
				}
				p := &problem{seg: i, offset: ce.Offset, reason: ce.Reason, fileSize: r.size}
				if last {
					// The active segment is allocated ahead of its
					// records: nothing but zeros after the last one is
					// its unused end (a process stopped without Close),
					// not damage.
					zero, zerr := zeroFrom(r.f, ce.Offset, r.size)
					if zerr != nil {
						r.Close()
						return nil, zerr
					}
					if zero {
						r.Close()
						seg.size = ce.Offset
						return s, nil
					}
				}
				torn := false
				if last {
					follows, ferr := validRecordAfter(r.f, ce.Offset, r.size, r.next)
					if ferr != nil {
						r.Close()
						return nil, ferr
					}
					torn = !follows
				}
				r.Close()
				seg.size = ce.Offset
				if torn {
					s.torn = p
				} else {
					s.corrupt = p
				}
				return s, nil
			}
			if visit != nil {
				if err := visit(seg.path, r.off-recHeaderSize-int64(len(rec)), lsn, rec); err != nil {
					r.Close()
					return nil, err
				}
			}
			s.lastLSN = lsn
			s.records++
		}
		seg.size = r.size
		r.Close()
	}
	return s, nil
}
