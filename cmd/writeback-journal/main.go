// Command writeback-journal inspects and repairs a writeback journal
// directory (see internal/journal), in the spirit of redis-check-aof.
//
//	writeback-journal -check DIR   validate; print segments, records and LSN range
//	writeback-journal -dump DIR    print LSN, length, file and offset of every record
//	writeback-journal -fix DIR     truncate at the first damage, losing what follows
//
// All three take the journal's directory lock, so they refuse to run while
// the application has the journal open. Exit status: 0 ok, 1 damage found
// (-check, -dump) or failure, 2 usage.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/writeback-go/writeback/internal/journal"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("writeback-journal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fix := fs.String("fix", "", "truncate the journal in `DIR` at its first damaged record, deleting what follows")
	check := fs.String("check", "", "validate the journal in `DIR` and print a summary")
	dump := fs.String("dump", "", "print every record of the journal in `DIR`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: writeback-journal -check DIR | -dump DIR | -fix DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	set := 0
	for _, v := range []string{*fix, *check, *dump} {
		if v != "" {
			set++
		}
	}
	if set != 1 || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	switch {
	case *fix != "":
		return doFix(*fix, stdout, stderr)
	case *check != "":
		return doCheck(*check, nil, stdout, stderr)
	default:
		w := bufio.NewWriter(stdout)
		defer w.Flush()
		fmt.Fprintln(w, "lsn\tbytes\tfile\toffset")
		return doCheck(*dump, func(file string, off int64, lsn uint64, rec []byte) error {
			_, err := fmt.Fprintf(w, "%d\t%d\t%s\t%d\n", lsn, len(rec), filepath.Base(file), off)
			return err
		}, w, stderr)
	}
}

func doFix(dir string, stdout, stderr io.Writer) int {
	file, off, lost, err := journal.Repair(dir)
	if err != nil {
		fmt.Fprintln(stderr, "writeback-journal:", err)
		return 1
	}
	if file == "" {
		fmt.Fprintf(stdout, "%s: no damage found, nothing cut\n", dir)
		return 0
	}
	fmt.Fprintf(stdout, "%s: cut at %s offset %d; discarded %d bytes (that record and everything after it)\n",
		dir, file, off, lost)
	return 0
}

func doCheck(dir string, visit journal.RecordVisitor, stdout, stderr io.Writer) int {
	rep, err := journal.Check(dir, visit)
	if err != nil {
		if errors.Is(err, journal.ErrInUse) {
			fmt.Fprintln(stderr, "writeback-journal: stop the application first:", err)
		} else {
			fmt.Fprintln(stderr, "writeback-journal:", err)
		}
		return 1
	}
	if visit != nil {
		// -dump: the per-record lines are the output; add only problems.
		return report(rep, stdout, false)
	}
	return report(rep, stdout, true)
}

func report(rep journal.Report, w io.Writer, summary bool) int {
	if summary {
		for _, s := range rep.Segments {
			switch {
			case !s.Checked:
				fmt.Fprintf(w, "%s  lsn %d..?  bytes %d  (not checked: after the damage)\n",
					filepath.Base(s.File), s.FirstLSN, s.Bytes)
			case s.Records == 0:
				fmt.Fprintf(w, "%s  empty (next lsn %d)  bytes %d\n", filepath.Base(s.File), s.FirstLSN, s.Bytes)
			default:
				fmt.Fprintf(w, "%s  lsn %d..%d  records %d  bytes %d\n",
					filepath.Base(s.File), s.FirstLSN, s.LastLSN, s.Records, s.Bytes)
			}
		}
		if rep.Records > 0 {
			fmt.Fprintf(w, "segments %d  records %d  lsn %d..%d  bytes %d\n",
				len(rep.Segments), rep.Records, rep.FirstLSN, rep.LastLSN, rep.Bytes)
		} else {
			fmt.Fprintf(w, "segments %d  records 0  bytes %d\n", len(rep.Segments), rep.Bytes)
		}
	}
	if t := rep.TornTail; t != nil {
		fmt.Fprintf(w, "torn tail: %s offset %d: %s (the next open cuts it)\n", t.File, t.Offset, t.Reason)
	}
	if c := rep.Corrupt; c != nil {
		fmt.Fprintf(w, "CORRUPT: %v\n", c)
		return 1
	}
	if summary {
		fmt.Fprintln(w, "ok")
	}
	return 0
}
