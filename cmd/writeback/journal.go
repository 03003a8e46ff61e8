package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/inspect"
	"github.com/writeback-go/writeback/internal/journal"
)

func journalUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: writeback journal check DIR
       writeback journal fix DIR
       writeback journal dump [-dsn DSN] DIR

Inspects and repairs a journal directory (the rules' journal.path), in the
spirit of redis-check-aof:

  check  validate it; print its segments, records and LSN range
  fix    cut it at its first damaged record, deleting what follows, and
         say what was lost; the application replays what is left when it
         opens
  dump   decode every record: LSN, table, operation, key and values; with
         -dsn (the application's writeback DSN), also whether the database
         says each one is applied (the checkpoints recovery goes by)

Each takes the journal's directory lock, so it refuses to run while the
application has the journal open: stop the application first.

Exit status: 0 fine, 1 damage found or the journal cannot be read, 2 usage
or connection error.
`)
	if fs != nil {
		fmt.Fprintln(w)
		printDefaults(w, fs)
	}
}

func runJournal(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "writeback journal: want check, fix or dump")
		journalUsage(stderr, nil)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		journalUsage(stdout, nil)
		return exitOK
	case "check", "fix", "dump":
	default:
		fmt.Fprintf(stderr, "writeback journal: unknown command %q (want check, fix or dump)\n", args[0])
		journalUsage(stderr, nil)
		return exitUsage
	}
	verb := args[0]
	fs := newFlags("journal "+verb, stderr)
	var dsn *string
	var timeout *time.Duration
	if verb == "dump" {
		dsn = fs.String("dsn", "", "the application's writeback `DSN`: say whether each record is applied in its database")
		timeout = fs.Duration("timeout", 10*time.Second, "how long to wait for the database")
	}
	if code, ok := parseFlags(fs, args[1:], stdout, stderr, journalUsage); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(stderr, fs, journalUsage, "want one journal directory, got %d arguments", fs.NArg())
	}
	dir := fs.Arg(0)
	switch verb {
	case "check":
		return journalCheck(dir, stdout, stderr)
	case "fix":
		return journalFix(dir, stdout, stderr)
	}
	var cp *durable.Checkpoints
	if *dsn != "" {
		var code int
		if cp, code = loadCheckpoints(dir, *dsn, *timeout, stderr); cp == nil {
			return code
		}
	}
	return journalDump(dir, cp, stdout, stderr)
}

func journalFix(dir string, stdout, stderr io.Writer) int {
	file, off, lost, err := journal.Repair(dir)
	if err != nil {
		return journalError(stderr, err)
	}
	if file == "" {
		fmt.Fprintf(stdout, "%s: no damage found, nothing cut\n", dir)
		return exitOK
	}
	fmt.Fprintf(stdout, "%s: cut at %s offset %d; discarded %d bytes (that record and everything after it)\n",
		dir, file, off, lost)
	return exitOK
}

// journalError reports a journal that could not be read.
func journalError(stderr io.Writer, err error) int {
	if errors.Is(err, journal.ErrInUse) {
		fmt.Fprintln(stderr, "writeback journal: stop the application first:", err)
	} else {
		fmt.Fprintln(stderr, "writeback journal:", err)
	}
	return exitProblems
}

func journalCheck(dir string, stdout, stderr io.Writer) int {
	rep, err := journal.Check(dir, nil)
	if err != nil {
		return journalError(stderr, err)
	}
	for _, s := range rep.Segments {
		switch {
		case !s.Checked:
			fmt.Fprintf(stdout, "%s  lsn %d..?  bytes %d  (not checked: after the damage)\n",
				filepath.Base(s.File), s.FirstLSN, s.Bytes)
		case s.Records == 0:
			fmt.Fprintf(stdout, "%s  empty (next lsn %d)  bytes %d\n", filepath.Base(s.File), s.FirstLSN, s.Bytes)
		default:
			fmt.Fprintf(stdout, "%s  lsn %d..%d  records %d  bytes %d\n",
				filepath.Base(s.File), s.FirstLSN, s.LastLSN, s.Records, s.Bytes)
		}
	}
	if rep.Records > 0 {
		fmt.Fprintf(stdout, "segments %d  records %d  lsn %d..%d  bytes %d\n",
			len(rep.Segments), rep.Records, rep.FirstLSN, rep.LastLSN, rep.Bytes)
	} else {
		fmt.Fprintf(stdout, "segments %d  records 0  bytes %d\n", len(rep.Segments), rep.Bytes)
	}
	if !damage(rep, stdout) {
		return exitProblems
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}

// damage prints the journal's torn tail and damage, and reports whether
// it can be opened as it is.
func damage(rep journal.Report, w io.Writer) bool {
	if t := rep.TornTail; t != nil {
		fmt.Fprintf(w, "torn tail: %s offset %d: %s (the next open cuts it)\n", t.File, t.Offset, t.Reason)
	}
	if c := rep.Corrupt; c != nil {
		fmt.Fprintf(w, "CORRUPT: %v\n", c)
		return false
	}
	return true
}

// loadCheckpoints reads, from the database of dsn, what it says of the
// journal in dir. It returns nil and the exit status when it cannot.
func loadCheckpoints(dir, dsn string, timeout time.Duration, stderr io.Writer) (*durable.Checkpoints, int) {
	id, err := durable.ReadID(dir)
	if err != nil {
		return nil, journalError(stderr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sess, err := inspect.Open(ctx, dsn, false)
	if err != nil {
		return nil, openError(stderr, "journal dump", err)
	}
	defer sess.Close()
	d, err := dialect.ByName(sess.Setup().Dialect)
	if err != nil {
		fmt.Fprintln(stderr, "writeback journal dump:", err)
		return nil, exitUsage
	}
	db := sess.DB()
	defer db.Close()
	cp, err := durable.ReadCheckpoints(ctx, db, d.Kind(), id)
	if err != nil {
		fmt.Fprintln(stderr, "writeback journal dump: reading the checkpoints:", err)
		return nil, exitUsage
	}
	return cp, exitOK
}

// journalDump prints every record of the journal in dir, decoded; with cp,
// whether each row is applied.
func journalDump(dir string, cp *durable.Checkpoints, stdout, stderr io.Writer) int {
	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	head := "lsn\ttable\top\tkey\tvalues"
	if cp != nil {
		head += "\tapplied"
	}
	fmt.Fprintln(tw, head)
	var records, rowsApplied, rowsPending, bad int
	rep, err := journal.Check(dir, func(_ string, _ int64, lsn uint64, b []byte) error {
		records++
		rec, err := durable.DecodeRecord(b)
		if err != nil {
			bad++
			fmt.Fprintf(tw, "%d\t?\t?\t?\tcannot decode: %v\n", lsn, err)
			return nil
		}
		for _, line := range recordLines(rec) {
			fields := []string{strconv.FormatUint(lsn, 10), rec.Table, line.op, line.key, line.values}
			if cp != nil {
				applied := "no"
				if dirtyset.KeysValid(line.keyVals) && cp.Covers(rec.Table, dirtyset.KeyText(line.keyVals), lsn) {
					applied = "yes"
					rowsApplied++
				} else {
					rowsPending++
				}
				fields = append(fields, applied)
			}
			fmt.Fprintln(tw, strings.Join(fields, "\t"))
		}
		return nil
	})
	if err != nil {
		tw.Flush()
		bw.Flush()
		return journalError(stderr, err)
	}
	tw.Flush()
	summary := fmt.Sprintf("%d records", records)
	if cp != nil {
		summary += fmt.Sprintf("; rows applied in the database %d, not applied %d (replayed at the next open)", rowsApplied, rowsPending)
	}
	fmt.Fprintln(bw, summary)
	ok := damage(rep, bw)
	if bad > 0 {
		fmt.Fprintf(bw, "%d records this version cannot decode\n", bad)
	}
	if !ok || bad > 0 {
		return exitProblems
	}
	return exitOK
}

// recordLine is one row of a record, as dump prints it.
type recordLine struct {
	op, key, values string
	keyVals         []any
}

// recordLines describes a record: one line for an UPDATE, one per row for
// an INSERT or upsert.
func recordLines(rec *durable.Record) []recordLine {
	switch rec.Op {
	case dialect.Update:
		return []recordLine{{op: "update", key: values(rec.Key), values: changes(rec.Changes), keyVals: rec.Key}}
	case dialect.Insert, dialect.Upsert:
		var cols []string
		for _, c := range rec.Cols {
			cols = append(cols, c.Norm)
		}
		var out []recordLine
		for i, row := range rec.Rows {
			l := recordLine{op: "insert", key: values(rec.Keys[i]), keyVals: rec.Keys[i],
				values: "(" + strings.Join(cols, ", ") + ") = " + values(row)}
			if rec.Op == dialect.Upsert {
				l.op = "upsert"
				l.values += "; if the key exists: " + changes(rec.Upd[i])
			}
			out = append(out, l)
		}
		return out
	}
	return []recordLine{{op: "?"}}
}

// changes formats an UPDATE's changes: c = v, c += v, c = COALESCE(c, 0) + v,
// c = GREATEST(c, v), c = LEAST(c, v).
func changes(chs []dirtyset.Change) string {
	var parts []string
	for _, ch := range chs {
		c, v := ch.Col.Norm, value(ch.Val)
		switch {
		case ch.Fn == dialect.FnNullZero:
			parts = append(parts, c+" = COALESCE("+c+", 0) + "+v)
		case ch.Fn == dialect.FnGreatest:
			parts = append(parts, c+" = GREATEST("+c+", "+v+")")
		case ch.Fn == dialect.FnLeast:
			parts = append(parts, c+" = LEAST("+c+", "+v+")")
		case ch.Delta:
			parts = append(parts, c+" += "+v)
		default:
			parts = append(parts, c+" = "+v)
		}
	}
	return strings.Join(parts, ", ")
}

// values formats a list of values as (v, v ...).
func values(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = value(v)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// value formats one journaled value: NULL, a number, a quoted string,
// x'hex' bytes, a time in RFC 3339.
func value(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return strconv.Quote(v)
	case []byte:
		return "x'" + hex.EncodeToString(v) + "'"
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}
