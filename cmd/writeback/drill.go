package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/benchchart"
	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dsn"
	"github.com/writeback-go/writeback/internal/inspect"
)

func drillUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: writeback drill [flags] DSN

Practises a crash on a scratch copy of the rules' tables, and checks each
back table against what its rules promise:

  1. copies the structure (not the rows) of every table the rules name to a
     scratch target: PostgreSQL, a new schema in the given database; SQLite,
     a new file in a temporary directory; MySQL, a new database on the
     server. The given tables are only read; nothing is written to them.
  2. in a child process, opens the rules on the copy and writes to each
     back table: INSERTs of new keys and counter UPDATEs (c = c + 1) of
     them, reporting every acknowledged write to this process;
  3. kills the child with SIGKILL at a random moment of the load (from
     a quarter of -duration to all of it, counted from the moment every
     back table has a write acknowledged);
  4. opens the same rules and journal again (recovery), flushes, and
     compares each table with the writes acknowledged: lost, applied twice,
     against the promise: without a journal, at most the writes
     acknowledged in the table's last max_loss before the kill (max_loss x
     the write rate); with a journal (any fsync policy, any ack level),
     none, since a killed process leaves its journal's records to the
     operating system;
  5. drops the scratch target.

It prints one line per table and round. Back tables named with a schema
(PostgreSQL, MySQL) and rules with a replicated journal (journal.nats) are
not drilled.

DSN is what sql.Open("writeback", DSN) takes, in one argument:
  "driver=sqlite3 rules=writeback.yaml dsn=app.db"
  "driver=pgx rules=writeback.yaml dsn=postgres://app@db/app"

Exit status: 0 every promise kept, 1 a promise broken (or the drill could
not run on these rules), 2 usage or connection error.

flags:
`)
	printDefaults(w, fs)
}

// drillOptions are the drill's flags.
type drillOptions struct {
	rounds   int
	duration time.Duration // the child is killed at a random moment in [duration/4, duration] of its load
	writers  int           // per back table
	grace    time.Duration // added to max_loss for scheduling
	seed     uint64
	timeout  time.Duration
}

func runDrill(args []string, stdout, stderr io.Writer) int {
	var o drillOptions
	fs := newFlags("drill", stderr)
	fs.IntVar(&o.rounds, "rounds", 3, "how many times to load, kill and recover")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "the longest load before the kill; the kill comes at a random moment between a quarter of it and all of it, counted from every table's first acknowledged write")
	fs.IntVar(&o.writers, "writers", 2, "goroutines writing to each back table")
	fs.DurationVar(&o.grace, "grace", 250*time.Millisecond, "added to max_loss for scheduling delays when bounding a loss")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the kill moments and the load (0: random)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for the database, the child's open and each recovery")
	if code, ok := parseFlags(fs, args, stdout, stderr, drillUsage); !ok {
		return code
	}
	switch {
	case fs.NArg() != 1:
		return usageError(stderr, fs, drillUsage, "want one DSN argument, got %d", fs.NArg())
	case o.rounds < 1 || o.rounds > 1000:
		return usageError(stderr, fs, drillUsage, "-rounds %d: want 1 to 1000", o.rounds)
	case o.duration <= 0:
		return usageError(stderr, fs, drillUsage, "-duration %s: want a positive duration", o.duration)
	case o.writers < 1 || o.writers > 100:
		return usageError(stderr, fs, drillUsage, "-writers %d: want 1 to 100", o.writers)
	case o.grace < 0:
		return usageError(stderr, fs, drillUsage, "-grace %s: want a duration of 0 or more", o.grace)
	case o.timeout <= 0:
		return usageError(stderr, fs, drillUsage, "-timeout %s: want a positive duration", o.timeout)
	}
	if o.seed == 0 {
		o.seed = mrand.Uint64()
	}
	d := &drill{o: o, stdout: stdout, stderr: stderr}
	return d.run(fs.Arg(0))
}

// drill is one run of the command.
type drill struct {
	o              drillOptions
	stdout, stderr io.Writer
	dsn            dsnFields
	setup          inspect.Setup
	kind           dialect.Kind
	scratch        *scratch
	plans          []*loadPlan
	rules          map[string]inspect.Rule // back rules by name
	dir            string
	exe            string
	rng            *mrand.Rand
	killWall       time.Duration // the last kill, since its child started
}

// fail prints a problem that stops the drill and returns code.
func (d *drill) fail(code int, format string, args ...any) int {
	fmt.Fprintf(d.stderr, "writeback drill: "+format+"\n", args...)
	return code
}

func (d *drill) run(dsn string) int {
	var err error
	if d.dsn, err = parseDSNFields(dsn); err != nil {
		return d.fail(exitUsage, "%v", err)
	}
	if d.exe, err = os.Executable(); err != nil {
		return d.fail(exitUsage, "cannot find this program to run its child: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.o.timeout)
	sess, err := inspect.Open(ctx, dsn, true)
	cancel()
	if err != nil {
		return openError(d.stderr, "drill", err)
	}
	defer sess.Close()
	d.setup = sess.Setup()
	dia, err := dialect.ByName(d.setup.Dialect)
	if err != nil {
		return d.fail(exitUsage, "%v", err)
	}
	d.kind = dia.Kind()
	if d.kind != dialect.Postgres && d.kind != dialect.SQLite && d.kind != dialect.MySQL {
		return d.fail(exitUsage, "the drill needs PostgreSQL, SQLite or MySQL (dialect %s)", d.setup.Dialect)
	}
	if d.setup.NATS != "" {
		// Its records live on the NATS servers, under the rules' instance:
		// a drill would write to the application's own stream.
		return d.fail(exitUsage, "rules %s: the drill does not run rules with a replicated journal (journal.nats)", d.setup.Rules)
	}
	d.rules = map[string]inspect.Rule{}
	var names, back []string
	for _, r := range d.setup.Tables {
		if qualifiedRule(r.Name, d.kind) {
			if r.Back {
				return d.fail(exitUsage, "%s:%d: table %s is named with its schema: the drill copies tables to a scratch schema and drills bare names only", r.File, r.Line, r.Name)
			}
			continue // a through table elsewhere: the drill writes nothing to it
		}
		names = append(names, r.Name)
		if r.Back {
			back = append(back, r.Name)
			d.rules[r.Name] = r
		}
	}
	if rep := sess.Check(); rep.Errors > 0 {
		for _, f := range rep.Findings {
			if f.Level == inspect.Error {
				fmt.Fprintf(d.stderr, "  %s: %s\n", where(f.File, f.Line), f.Message)
			}
		}
		for _, t := range rep.Tables {
			for _, f := range t.Findings {
				if f.Level == inspect.Error {
					fmt.Fprintf(d.stderr, "  %s: %s\n", where(f.File, f.Line), f.Message)
				}
			}
		}
		return d.fail(exitProblems, "the rules do not pass writeback check (%d errors): run it, and drill rules the driver opens", rep.Errors)
	}
	if len(back) == 0 {
		fmt.Fprintf(d.stdout, "rules %s: no back table, nothing to drill\n", d.setup.Rules)
		return exitOK
	}
	if d.dir, err = os.MkdirTemp("", "writeback-drill-"); err != nil {
		return d.fail(exitUsage, "%v", err)
	}
	defer os.RemoveAll(d.dir)
	if strings.ContainsAny(d.dir, " \t") {
		return d.fail(exitUsage, "temporary directory %q contains a space, which a journal= path cannot; set TMPDIR", d.dir)
	}
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	real := sess.DB()
	defer real.Close()
	ctx, cancel = context.WithTimeout(context.Background(), d.o.timeout)
	d.scratch, err = makeScratch(ctx, d.kind, real, d.dsn.base, names, d.dir, hex.EncodeToString(tag[:]))
	cancel()
	if err != nil {
		return d.fail(exitUsage, "making the scratch target: %v", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), d.o.timeout)
		defer cancel()
		if err := d.scratch.close(ctx); err != nil {
			fmt.Fprintf(d.stderr, "writeback drill: dropping the scratch target (%s): %v\n", d.scratch.where, err)
		}
	}()
	ctx, cancel = context.WithTimeout(context.Background(), d.o.timeout)
	copies, err := catalog.Read(ctx, d.scratch.db, d.kind, back)
	cancel()
	if err != nil {
		return d.fail(exitUsage, "reading the scratch copy's catalog: %v", err)
	}
	for name, t := range copies {
		// A name that resolves to a table outside the scratch target
		// (a base DSN that sets its own search path) would write to it.
		if t != nil && t.Schema != d.scratch.schema {
			return d.fail(exitUsage, "table %s resolves to %s.%s from the scratch target, not to its copy in %s: the drill stops rather than write to it", name, t.Schema, t.Name, d.scratch.schema)
		}
	}
	var skipped []string
	for _, name := range back {
		p, err := planLoad(name, d.rules[name].Key, copies[name], d.kind)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: not drilled: %v", name, err))
			continue
		}
		d.plans = append(d.plans, p)
	}
	if len(d.plans) == 0 {
		for _, s := range skipped {
			fmt.Fprintln(d.stderr, "writeback drill: "+s)
		}
		return d.fail(exitProblems, "no back table the drill can write to")
	}
	d.rng = mrand.New(mrand.NewPCG(d.o.seed, 2))
	return d.rounds(skipped)
}

// tableRound is one table's figures in one round.
type tableRound struct {
	table    string
	round    int
	killedAt time.Duration // since the child was ready
	acked    int64
	failed   int64 // writes whose Exec failed (they may or may not be applied)
	lost     int64
	twice    int64
	bound    int64 // the most the promise lets be lost
	reported string
	// reportedMax is the crash report's bound on the loss (no journal),
	// -1 when there is none to compare.
	reportedMax int64
	recoverErr  error
}

func (r *tableRound) broken() bool {
	return r.recoverErr != nil || r.lost > r.bound || r.twice > 0
}

func (d *drill) rounds(skipped []string) int {
	fmt.Fprintf(d.stdout, "rules %s, dialect %s; scratch: %s\n", d.setup.Rules, d.setup.Dialect, d.scratch.where)
	rounds := "rounds"
	if d.o.rounds == 1 {
		rounds = "round"
	}
	fmt.Fprintf(d.stdout, "%d %s: %d writers per table, kill -9 at a random moment %s to %s after every table's first acknowledged write (seed %d)\n",
		d.o.rounds, rounds, d.o.writers, d.o.duration/4, d.o.duration, d.o.seed)
	for _, s := range skipped {
		fmt.Fprintln(d.stdout, s)
	}
	fmt.Fprintln(d.stdout)
	rows := [][]string{{"table", "ack", "round", "killed at", "acked", "writes/s", "lost", "applied twice", "promise: lost ≤", "reported lost", "result"}}
	broken := 0
	var remarks []string
	for round := 1; round <= d.o.rounds; round++ {
		results, err := d.round(round)
		if err != nil {
			if len(rows) > 1 {
				printTable(d.stdout, rows)
			}
			return d.fail(exitProblems, "round %d: %v", round, err)
		}
		for _, r := range results {
			verdict := "ok"
			if r.broken() {
				verdict = "BROKEN"
				broken++
			}
			rate := 0.0
			if r.killedAt > 0 {
				rate = float64(r.acked) / r.killedAt.Seconds()
			}
			rows = append(rows, []string{r.table, d.ackLabel(r.table), strconv.Itoa(r.round),
				r.killedAt.Round(time.Millisecond).String(), thousands(r.acked), thousands(int64(rate)), thousands(r.lost), thousands(r.twice),
				thousands(r.bound), r.reported, verdict})
			if r.reportedMax >= 0 && r.lost > r.reportedMax {
				// Loss detection is not the table's promise: it is told, not failed.
				remarks = append(remarks, fmt.Sprintf("%s, round %d: the crash report said at most %s writes were lost, and %s were: its bound is the state last saved (once a second) plus the rate it saw then",
					r.table, r.round, thousands(r.reportedMax), thousands(r.lost)))
			}
			if r.failed > 0 {
				remarks = append(remarks, fmt.Sprintf("%s, round %d: %s writes failed (Exec returned an error); each may or may not be applied", r.table, r.round, thousands(r.failed)))
			}
		}
	}
	printTable(d.stdout, rows)
	for _, f := range remarks {
		fmt.Fprintln(d.stdout, f)
	}
	fmt.Fprintln(d.stdout)
	d.notes()
	if broken > 0 {
		if broken == 1 {
			fmt.Fprintln(d.stdout, "1 promise broken")
		} else {
			fmt.Fprintf(d.stdout, "%d promises broken\n", broken)
		}
		return exitProblems
	}
	fmt.Fprintln(d.stdout, "every promise kept")
	return exitOK
}

// ackLabel says a table's ack level and journal.
func (d *drill) ackLabel(table string) string {
	r := d.rules[table]
	if d.setup.Journal == "" {
		return r.Ack + ", no journal"
	}
	return r.Ack + ", journal " + d.setup.Fsync
}

// notes explains the columns.
func (d *drill) notes() {
	fmt.Fprintln(d.stdout, "acked: writes acknowledged to the child before the kill; lost: acknowledged and not in the database after")
	fmt.Fprintln(d.stdout, "recovery and a flush; applied twice: more in the database than was written.")
	if d.setup.Journal == "" {
		fmt.Fprintf(d.stdout, "promise without a journal: at most the writes acknowledged in the last max_loss + %s before the kill.\n", d.o.grace)
	} else {
		fmt.Fprintln(d.stdout, "promise with a journal: nothing acknowledged is lost to a killed process (a power loss, which a drill")
		fmt.Fprintln(d.stdout, "cannot cause, may also take the records not yet fsynced: see the README's Durability).")
	}
	fmt.Fprintln(d.stdout, "reported lost: what the next open said the crash took (Stats.LastCrash).")
}

// printTable prints rows in columns: the first two and the last left-aligned
// (names and words), the others right-aligned (figures).
func printTable(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < 2 || i == len(r)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// keyTally is what one key was sent: writes acknowledged, and writes that
// may or may not have been applied (in flight at the kill, or failed).
type keyTally struct {
	acked, maybe int64
}

// writerIntent is a writer's write in flight.
type writerIntent struct {
	key    int64
	active bool
}

// tableTally is what the child reported for one table.
type tableTally struct {
	keys     map[int64]*keyTally
	inflight []writerIntent      // by writer
	ackTimes []time.Duration     // when each acknowledgment arrived, since the child started
	acked    int64               //
	failed   int64               //
	unknown  map[string]struct{} // report lines that made no sense
}

func (t *tableTally) key(id int64) *keyTally {
	k := t.keys[id]
	if k == nil {
		k = &keyTally{}
		t.keys[id] = k
	}
	return k
}

// roundDirs are a round's journal directory and state file.
func (d *drill) roundDirs(round int) (journal, state string, err error) {
	dir := filepath.Join(d.dir, "round-"+strconv.Itoa(round))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	if d.setup.Journal != "" {
		journal = filepath.Join(dir, "journal")
	}
	return journal, filepath.Join(dir, "writeback.state"), nil
}

// round runs one load, kill and recovery, and verifies every table.
func (d *drill) round(round int) ([]*tableRound, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.o.timeout)
	err := d.scratch.reset(ctx)
	cancel()
	if err != nil {
		return nil, err
	}
	journalDir, stateFile, err := d.roundDirs(round)
	if err != nil {
		return nil, err
	}
	wbDSN := d.dsn.scratch(d.scratch.baseDSN, journalDir)
	tallies, killedAt, err := d.load(wbDSN, stateFile)
	if err != nil {
		return nil, err
	}
	// Recovery: the same rules, journal and state file.
	report, recErr := d.recover(wbDSN, stateFile)
	var out []*tableRound
	for i, p := range d.plans {
		t := tallies[i]
		r := &tableRound{table: p.Table, round: round, killedAt: killedAt, acked: t.acked, failed: t.failed, recoverErr: recErr, reported: "-", reportedMax: -1}
		if d.setup.Journal == "" {
			window := d.rules[p.Table].MaxLoss + d.o.grace
			for _, at := range t.ackTimes {
				if at >= d.killWall-window {
					r.bound++
				}
			}
		}
		if report != nil {
			if report.Journal {
				r.reported = "none"
			} else {
				r.reportedMax = report.Tables[p.Table].Writes
				r.reported = "≤ " + thousands(r.reportedMax)
			}
		}
		if recErr == nil {
			if err := d.verify(p, t, r); err != nil {
				return nil, err
			}
		} else {
			r.reported = "recovery failed: " + recErr.Error()
		}
		out = append(out, r)
	}
	return out, nil
}

// load runs the child until the kill and returns what it reported per
// plan, and how long it ran from ready to the kill.
func (d *drill) load(wbDSN, stateFile string) ([]*tableTally, time.Duration, error) {
	job := childJob{DSN: wbDSN, StateFile: stateFile, Plans: d.plans, Writers: d.o.writers, Seed: d.rng.Uint64(),
		MaxRun: d.o.duration + 2*d.o.timeout}
	spec, err := json.Marshal(job)
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(d.exe)
	cmd.Env = append(os.Environ(), drillChildEnv+"=1")
	cmd.Stdin = bytes.NewReader(spec)
	var childErr limitedBuffer
	cmd.Stderr = &childErr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	tallies := make([]*tableTally, len(d.plans))
	for i := range tallies {
		tallies[i] = &tableTally{keys: map[int64]*keyTally{}, inflight: make([]writerIntent, d.o.writers), unknown: map[string]struct{}{}}
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("starting the child: %w", err)
	}
	ready := make(chan time.Duration, 1)
	loaded := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- readReports(pipe, start, tallies, ready, loaded) }()
	var readyAt time.Duration
	timeout := time.NewTimer(d.o.timeout)
	defer timeout.Stop()
	select {
	case readyAt = <-ready:
	case err := <-done:
		return nil, 0, stopChild(cmd, "the child stopped before it was ready", err, &childErr)
	case <-timeout.C:
		_ = cmd.Process.Kill()
		return nil, 0, stopChild(cmd, fmt.Sprintf("the child was not ready within %s", d.o.timeout), <-done, &childErr)
	}
	// The load has begun once every table has a write acknowledged (a
	// child slow to start must not be killed before it wrote).
	select {
	case <-loaded:
	case err := <-done:
		return nil, 0, stopChild(cmd, "the child stopped before every table had a write acknowledged", err, &childErr)
	case <-timeout.C:
		// Some table takes no write (they fail): kill it anyway; the
		// report counts the failures.
	}
	// The kill: a random moment in [duration/4, duration] into the load.
	lo := d.o.duration / 4
	delay := lo + time.Duration(d.rng.Int64N(int64(d.o.duration-lo)+1))
	select {
	case <-time.After(delay):
	case err := <-done:
		return nil, 0, stopChild(cmd, "the child stopped before the kill", err, &childErr)
	}
	d.killWall = time.Since(start)
	if err := cmd.Process.Kill(); err != nil {
		return nil, 0, fmt.Errorf("killing the child: %w", err)
	}
	rerr := <-done // everything the child wrote before it died
	_ = cmd.Wait()
	if rerr != nil {
		return nil, 0, fmt.Errorf("reading the child's reports: %w", rerr)
	}
	for _, t := range tallies {
		for _, in := range t.inflight {
			if in.active {
				t.key(in.key).maybe++
			}
		}
		if len(t.unknown) > 0 {
			return nil, 0, fmt.Errorf("the child's reports made no sense: %q", keysOf(t.unknown))
		}
	}
	return tallies, d.killWall - readyAt, nil
}

// stopChild kills a child whose reports ended early (it may be alive,
// blocked on a pipe no one reads), waits for it, and says why it stopped.
func stopChild(cmd *exec.Cmd, what string, readErr error, childErr *limitedBuffer) error {
	_ = cmd.Process.Kill()
	msg := what
	if werr := cmd.Wait(); werr != nil {
		msg += " (" + werr.Error() + ")"
	}
	if readErr != nil {
		msg += " (reading its reports: " + readErr.Error() + ")"
	}
	if s := strings.TrimSpace(childErr.String()); s != "" {
		msg += ": " + s
	}
	return errors.New(msg)
}

func keysOf(m map[string]struct{}) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// readReports reads the child's report lines into tallies until EOF; it
// sends the time of "ready" on ready, and closes loaded once every table
// has a write acknowledged.
func readReports(r io.Reader, start time.Time, tallies []*tableTally, ready chan<- time.Duration, loaded chan<- struct{}) error {
	sc := drillLines(r)
	waiting := len(tallies) // tables without an acknowledged write
	countAck := func(t *tableTally) {
		if t.acked++; t.acked == 1 {
			if waiting--; waiting == 0 {
				close(loaded)
			}
		}
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			select {
			case ready <- time.Since(start):
			default:
				return fmt.Errorf("report %q twice", line)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return fmt.Errorf("report %q", line)
		}
		ti, err1 := strconv.Atoi(f[1])
		w, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || ti < 0 || ti >= len(tallies) || w < 0 || w >= len(tallies[ti].inflight) {
			return fmt.Errorf("report %q", line)
		}
		t := tallies[ti]
		in := &t.inflight[w]
		switch {
		case f[0] == "i" && len(f) == 5:
			id, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil || in.active {
				t.unknown[line] = struct{}{}
				continue
			}
			*in = writerIntent{key: id, active: true}
		case (f[0] == "a" || f[0] == "n" || f[0] == "f") && len(f) == 3 && in.active:
			k := t.key(in.key)
			switch f[0] {
			case "a":
				k.acked++
				countAck(t)
				t.ackTimes = append(t.ackTimes, time.Since(start))
			case "n": // acknowledged, and said to change nothing
				countAck(t)
			default:
				k.maybe++
				t.failed++
			}
			in.active = false
		default:
			t.unknown[line] = struct{}{}
		}
	}
	return sc.Err()
}

// recover opens the scratch DSN again, as the application would after the
// crash (replaying the journal), flushes and closes; it returns the crash
// report of that open.
func (d *drill) recover(wbDSN, stateFile string) (*writeback.CrashReport, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := writeback.OpenDSN(wbDSN, writeback.WithStateFile(stateFile), writeback.WithLogger(log))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.o.timeout)
	defer cancel()
	err = db.PingContext(ctx)
	if err == nil {
		err = writeback.Flush(ctx, db)
	}
	var report *writeback.CrashReport
	if err == nil {
		var st writeback.Stats
		st, err = writeback.StatsOf(db)
		report = st.LastCrash
	}
	return report, errors.Join(err, db.Close())
}

// verify compares the table's copy with what was acknowledged.
func (d *drill) verify(p *loadPlan, t *tableTally, r *tableRound) error {
	ctx, cancel := context.WithTimeout(context.Background(), d.o.timeout)
	defer cancel()
	rows, err := d.scratch.db.QueryContext(ctx, p.Select)
	if err != nil {
		return fmt.Errorf("reading %s back: %w", p.Table, err)
	}
	defer rows.Close()
	have := map[string]int64{}
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	for rows.Next() {
		keys := make([]string, len(cols)-1)
		dest := make([]any, len(cols))
		for i := range keys {
			dest[i] = &keys[i]
		}
		var n int64
		dest[len(cols)-1] = &n
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("reading %s back: %w", p.Table, err)
		}
		have[strings.Join(keys, "\x00")] += n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading %s back: %w", p.Table, err)
	}
	for id, k := range t.keys {
		key := p.keyText(id)
		v := have[key]
		delete(have, key)
		if v < k.acked {
			r.lost += k.acked - v
		}
		if v > k.acked+k.maybe {
			r.twice += v - k.acked - k.maybe
		}
	}
	for _, v := range have { // rows no one wrote
		r.twice += v
	}
	return nil
}

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// dsnFields is a writeback DSN taken apart: its key=value fields before
// dsn=, and the base DSN.
type dsnFields struct {
	keys []string
	vals map[string]string
	base string
}

// parseDSNFields splits a writeback DSN as the driver does (its values are
// checked when the driver parses it).
func parseDSNFields(s string) (dsnFields, error) {
	f := dsnFields{vals: map[string]string{}}
	fields, base, _, err := dsn.Split(s)
	if err != nil {
		return f, fmt.Errorf("DSN: %v", err)
	}
	for _, fl := range fields {
		f.keys = append(f.keys, fl.Key)
		f.vals[fl.Key] = fl.Val
	}
	f.base = base
	return f, nil
}

// scratch returns the DSN of the drill's connector: the user's, with the
// scratch target's base DSN, the drill's journal directory (when the
// rules have a journal), the driver managing its own tables in the
// scratch target, and no dead-letter file (it would be the user's).
func (f dsnFields) scratch(base, journal string) string {
	var parts []string
	for _, k := range f.keys {
		switch k {
		case "journal", "dead_letter_file", "manage_schema":
			continue
		}
		parts = append(parts, k+"="+f.vals[k])
	}
	if journal != "" {
		parts = append(parts, "journal="+journal)
	}
	parts = append(parts, "manage_schema=true", "dsn="+base)
	return strings.Join(parts, " ")
}

// drillLines reads a child's report lines.
func drillLines(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	return sc
}

// thousands formats n with commas.
var thousands = benchchart.Thousands
