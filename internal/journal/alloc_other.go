//go:build !linux

package journal

import "os"

// preallocate reports that this system cannot reserve disk space ahead of
// writes: a full disk then fails the write of a batch (see Reserve).
func preallocate(*os.File, int64, int64) (bool, error) { return false, nil }
