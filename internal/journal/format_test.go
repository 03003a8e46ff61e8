package journal

import (
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// lsnCRC must be the checksum crc32 gives for the LSN's bytes: every
// record on disk was written with that.
func TestLSNCRC(t *testing.T) {
	for _, lsn := range []uint64{0, 1, 255, 256, 1<<32 + 7, ^uint64(0), 0x0102030405060708} {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], lsn)
		if got, want := lsnCRC(lsn), crc32.Update(0, castagnoli, b[:]); got != want {
			t.Errorf("lsnCRC(%#x) = %#x, want %#x", lsn, got, want)
		}
	}
}
