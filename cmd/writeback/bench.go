package main

import (
	"fmt"
	"io"
)

// runBench is "writeback bench". Not written yet.
func runBench(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "writeback bench: not implemented yet")
	return exitUsage
}
