//go:build !linux

package journal

import "os"

// allocate makes f at least size bytes long. This system has no portable
// way to allocate the blocks ahead: the file is extended sparse.
func allocate(f *os.File, size int64) error { return extend(f, size) }

// populate would fault the pages of b in ahead of the appends; this system
// leaves it to the appends themselves.
func populate([]byte) {}

// dataSync makes f's written data durable: fsync where fdatasync is not
// known to be there.
func dataSync(f *os.File) error { return f.Sync() }
