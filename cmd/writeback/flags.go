package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/writeback-go/writeback/internal/inspect"
)

// newFlags returns a flag set for one subcommand whose parse errors go to
// stderr; usage is printed by parseFlags.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("writeback "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args. -h prints usage to stdout (exit 0); a bad flag
// prints the error and usage to stderr (exit 2). ok is false when the
// caller must return code.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, usage func(io.Writer, *flag.FlagSet)) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout, fs)
		return exitOK, false
	case err != nil:
		usage(stderr, fs)
		return exitUsage, false
	}
	return 0, true
}

// usageError prints msg and the usage to stderr and returns exitUsage.
func usageError(stderr io.Writer, fs *flag.FlagSet, usage func(io.Writer, *flag.FlagSet), format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	usage(stderr, fs)
	return exitUsage
}

// printDefaults writes the flag set's flags to w.
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// openError reports why a DSN could not be opened and returns the exit
// status: 2 for a bad DSN or an unreachable database, 1 for a rules file
// with errors (a problem found).
func openError(stderr io.Writer, name string, err error) int {
	fmt.Fprintf(stderr, "writeback %s: %s\n", name, strings.TrimPrefix(err.Error(), inspect.ErrUsage.Error()+": "))
	if isRulesError(err) {
		return exitProblems
	}
	return exitUsage
}
