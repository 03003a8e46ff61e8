package journal

import (
	"os"
	"syscall"
)

// fallocKeepSize is FALLOC_FL_KEEP_SIZE: the blocks are allocated beyond
// the end of the file, which keeps its size (appends still go to its end).
const fallocKeepSize = 1

// preallocate reserves n bytes of disk at offset off of f without changing
// its size, so that writes there cannot fail for lack of space. It reports
// false when the file system cannot preallocate.
func preallocate(f *os.File, off, n int64) (ok bool, err error) {
	for {
		err = syscall.Fallocate(int(f.Fd()), fallocKeepSize, off, n)
		if err != syscall.EINTR {
			break
		}
	}
	switch err {
	case nil:
		return true, nil
	case syscall.EOPNOTSUPP, syscall.ENOSYS:
		return false, nil
	}
	return true, err
}
