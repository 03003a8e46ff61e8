package main

import (
	"fmt"
	"io"
)

// runJournal is "writeback journal". Not written yet.
func runJournal(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "writeback journal: not implemented yet")
	return exitUsage
}
