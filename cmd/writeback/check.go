package main

import (
	"fmt"
	"io"
)

// runCheck is "writeback check". Not written yet.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "writeback check: not implemented yet")
	return exitUsage
}
