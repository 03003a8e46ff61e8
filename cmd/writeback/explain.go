package main

import (
	"fmt"
	"io"
)

// runExplain is "writeback explain". Not written yet.
func runExplain(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "writeback explain: not implemented yet")
	return exitUsage
}
