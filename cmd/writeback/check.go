package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/inspect"
)

func checkUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: writeback check [-json] [-timeout D] DSN

Loads the rules and the database's catalog of every table they name, and
prints, per table, every finding of the checks the driver makes when it
opens (a missing table or key column, a key that is not unique, a
case-insensitive collation, triggers, foreign keys, other unique
constraints, CHECK constraints, sequence or volatile defaults, views that
read it), each with the rule's file:line and its level: error (the driver
refuses to open) or warning (it opens). For each back table whose rule
fits, it lists which kinds of statement would be buffered, and why not.

DSN is what sql.Open("writeback", DSN) takes, in one argument:
  "driver=sqlite3 rules=writeback.yaml dsn=file.db"
  "driver=pgx rules=writeback.yaml dsn=postgres://app@db/app"

Exit status: 0 no error found, 1 errors found, 2 usage or connection error.

`)
	printDefaults(w, fs)
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	asJSON := fs.Bool("json", false, "print the report as one JSON object (see the README)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the database")
	if code, ok := parseFlags(fs, args, stdout, stderr, checkUsage); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(stderr, fs, checkUsage, "want one DSN argument, got %d", fs.NArg())
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	sess, err := inspect.Open(ctx, fs.Arg(0), true)
	var rep inspect.Report
	switch {
	case isRulesError(err):
		// The rules file itself is wrong: that is the finding.
		var re *writeback.RulesError
		errors.As(err, &re)
		rep = inspect.Report{Rules: re.File, Tables: []inspect.Table{}, Findings: []inspect.Finding{{
			Level: inspect.Error, Check: "rules_file", File: re.File, Line: re.Line, Message: re.Msg,
		}}}
		rep.Count()
	case err != nil:
		return openError(stderr, "check", err)
	default:
		defer sess.Close()
		rep = sess.Check()
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "writeback check:", err)
			return exitUsage
		}
	} else {
		printReport(stdout, rep)
	}
	if rep.Errors > 0 {
		return exitProblems
	}
	return exitOK
}

// isRulesError reports whether err is an error in the rules file.
func isRulesError(err error) bool {
	var re *writeback.RulesError
	return errors.As(err, &re)
}

// where formats a finding's place as FILE:LINE.
func where(file string, line int) string {
	if file == "" {
		file = "rules"
	}
	if line > 0 {
		return file + ":" + strconv.Itoa(line)
	}
	return file
}

func printReport(w io.Writer, rep inspect.Report) {
	fmt.Fprintf(w, "rules %s, dialect %s\n", rep.Rules, orNone(rep.Dialect))
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "  %-7s  %s: %s\n", f.Level, where(f.File, f.Line), f.Message)
	}
	for _, t := range rep.Tables {
		fmt.Fprintf(w, "\n%s  %s  %s\n", t.Name, t.Mode, where(t.File, t.Line))
		errs := 0
		for _, f := range t.Findings {
			fmt.Fprintf(w, "  %-7s  %s: %s\n", f.Level, where(f.File, f.Line), f.Message)
			if f.Level == inspect.Error {
				errs++
			}
		}
		switch {
		case errs > 0 && t.Mode == "back":
			fmt.Fprintln(w, "  buffers  nothing: the driver refuses to open on this rule (with checks=deferred, the table's writes go to the database)")
		case t.Exists == nil:
			fmt.Fprintln(w, "  not checked: no catalog")
		case errs > 0:
		case t.Mode != "back":
			fmt.Fprintln(w, "  ok: the table exists; every statement on it goes to the database")
		default:
			if len(t.Findings) == 0 {
				fmt.Fprintln(w, "  ok")
			}
			fmt.Fprintln(w, "  buffers:")
			for _, s := range t.Buffers {
				if s.Buffered {
					fmt.Fprintf(w, "    yes  %s\n", s.Kind)
				} else {
					fmt.Fprintf(w, "    no   %s: %s\n", s.Kind, s.Reason)
				}
			}
		}
	}
	fmt.Fprintf(w, "\n%s, %s\n", plural(rep.Errors, "error"), plural(rep.Warnings, "warning"))
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
