package journal

import (
	"os"
	"sync/atomic"
	"syscall"
)

// allocate makes f at least size bytes long with its blocks allocated, so
// that the mapped bytes up to size can be written without asking the file
// system for space: a full disk is met here, as an error, and never as a
// fault when a mapped page is first written.
func allocate(f *os.File, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EOPNOTSUPP, syscall.ENOSYS:
			// This file system cannot allocate ahead: the file is
			// extended sparse, and its blocks are found as pages are
			// written back.
			return extend(f, size)
		}
		return err
	}
}

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): fault pages in,
// writable, without writing to them.
const madvPopulateWrite = 23

// noPopulate is set once the kernel refuses madvPopulateWrite (older than
// 5.14): pages are then faulted in by the copies themselves.
var noPopulate atomic.Bool

// populate faults the pages of b in for writing, so that the appends that
// copy records there later do not take the page faults (each a trip into
// the file system) while they hold the journal's lock. It writes nothing.
func populate(b []byte) {
	if len(b) == 0 || noPopulate.Load() {
		return
	}
	if err := syscall.Madvise(b, madvPopulateWrite); err == syscall.EINVAL {
		noPopulate.Store(true)
	}
}

// dataSync makes f's written data durable with fdatasync: the segment's
// size and blocks were allocated ahead (allocate), so what fsync would add
// is its timestamps; fdatasync still writes what reading the data back
// needs (the allocation of the blocks written).
func dataSync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
