package journal

import (
	"os"
	"syscall"
)

// mapSegment maps the first size bytes of f, shared: bytes copied into the
// mapping are in the page cache at once, so they survive the process being
// killed, exactly as bytes given to write(2) do, without a system call.
func mapSegment(f *os.File, size int64) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}

// unmapSegment ends a mapping from mapSegment.
func unmapSegment(b []byte) {
	if b != nil {
		_ = syscall.Munmap(b)
	}
}

// extend makes f at least size bytes long (sparse).
func extend(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() >= size {
		return nil
	}
	return f.Truncate(size)
}
