// Command writeback checks, explains, measures and drills a writeback
// setup, and inspects its journal. It takes the same DSN as sql.Open("writeback", …).
//
//	writeback check DSN             the rules against the live schema
//	writeback explain DSN [SQL …]   what the driver does with each statement
//	writeback journal check|fix|dump DIR
//	writeback bench [flags]         direct against writeback, side by side
//	writeback drill [flags] DSN     kill -9 on a scratch copy, recover, check the promises
//
// Exit status: 0 fine, 1 problems found, 2 usage or connection error.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit statuses shared by every subcommand.
const (
	exitOK       = 0
	exitProblems = 1
	exitUsage    = 2
)

// subcommand is one of the command's verbs.
type subcommand struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func subcommands() []subcommand {
	return []subcommand{
		{"check", "check the rules file against the live schema", runCheck},
		{"explain", "say what the driver does with SQL statements, and each table's loss figures", runExplain},
		{"journal", "check, repair or decode a journal directory", runJournal},
		{"bench", "run a counter workload directly and through writeback, side by side", runBench},
		{"drill", "kill a writer on a scratch copy at random moments and check each table's promise", runDrill},
	}
}

func main() {
	if code, ok := drillChildMain(); ok {
		os.Exit(code) // a drill's child process (drill_child.go)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, sc := range subcommands() {
		if sc.name == args[0] {
			return sc.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "writeback: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: writeback <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, sc := range subcommands() {
		fmt.Fprintf(w, "  %-8s %s\n", sc.name, sc.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\"writeback <command> -h\" prints the command's usage.")
	fmt.Fprintln(w, "Exit status: 0 fine, 1 problems found, 2 usage or connection error.")
}
