package writeback

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/journal"
)

// The crash tests run the test binary again as a child (TestCrashChild) that
// writes counter deltas through writeback with a journal and prints every
// write before it starts ("B g key delta") and after Exec acknowledged it
// ("A g key delta"). The parent kills it with SIGKILL at a random instant, or
// the child stops itself at a chosen step of the flush protocol (the withTestHooks option);
// the parent then reopens writeback on the same journal (recovery) and checks
// each counter: it must hold exactly its acknowledged deltas plus some subset
// of the writes that were in flight (begun, not acknowledged).

// Environment of the child.
const (
	envCrash    = "WB_CRASH"    // "1" in the child
	envDriver   = "WB_DRIVER"   // base driver name
	envDSN      = "WB_DSN"      // base DSN
	envRules    = "WB_RULES"    // rules file path
	envWorkers  = "WB_WORKERS"  // writer goroutines
	envKeys     = "WB_KEYS"     // counter keys
	envHook     = "WB_HOOK"     // hook point to exit at
	envHookN    = "WB_HOOK_N"   // ... on its n-th call
	envSegBytes = "WB_SEGBYTES" // journal segment size (small: compaction removes files)
	envMode     = "WB_MODE"     // "counter" (default), "seq", "upsert", "replace", "transfer" or "ones"
)

// crashExitCode is how the child ends at a hook point.
const crashExitCode = 3

// TestCrashChild is the crash tests' child process; it is skipped unless
// the parent started it.
func TestCrashChild(t *testing.T) {
	if os.Getenv(envCrash) != "1" {
		t.Skip("the child of the crash tests")
	}
	workers, _ := strconv.Atoi(os.Getenv(envWorkers))
	keys, _ := strconv.Atoi(os.Getenv(envKeys))
	var hook func(string)
	if p := os.Getenv(envHook); p != "" {
		n, _ := strconv.ParseInt(os.Getenv(envHookN), 10, 64)
		var calls atomic.Int64
		hook = func(point string) {
			if point == p && calls.Add(1) == n {
				os.Exit(crashExitCode)
			}
		}
	}
	var segBytes int64
	var compactEvery time.Duration
	if s := os.Getenv(envSegBytes); s != "" {
		segBytes, _ = strconv.ParseInt(s, 10, 64)
		compactEvery = 10 * time.Millisecond
	}
	dollar := os.Getenv(envDriver) == "pgx"
	db, err := openWithHooks(os.Getenv(envDriver), os.Getenv(envRules), os.Getenv(envDSN), withTestHooks(hook, segBytes, compactEvery))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	db.SetMaxOpenConns(workers + 2)
	db.SetMaxIdleConns(workers + 2)
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		outMu.Unlock()
	}
	seqMode := os.Getenv(envMode) == "seq"
	upsertMode := os.Getenv(envMode) == "upsert"
	transferMode := os.Getenv(envMode) == "transfer"
	onesMode := os.Getenv(envMode) == "ones"
	replaceMode := os.Getenv(envMode) == "replace"
	for g := 0; g < workers; g++ {
		go func() {
			for i := int64(1); ; i++ {
				var err error
				if transferMode {
					// A transaction moves delta from one key to another:
					// the counters' total stays 0 unless a transaction is
					// applied in part.
					from, to := rand.IntN(keys), rand.IntN(keys-1)
					if to >= from {
						to++
					}
					delta := 1 + rand.IntN(9)
					say("B %d %d %d %d", g, from, -delta, to)
					if err = transfer(db, dollar, from, to, delta); err == nil {
						say("A %d %d %d %d", g, from, -delta, to)
					}
				} else if replaceMode {
					// SQLite's REPLACE (upsert_crash_test.go): goroutine g
					// owns key g and replaces its row with n = i, every
					// third write an UPDATE assigning it; the last
					// acknowledged i, or the one in flight, must survive.
					query, args := "REPLACE INTO counters (id, n) VALUES (?, ?)", []any{g, i}
					if i%3 == 0 {
						query, args = "UPDATE counters SET n = ? WHERE id = ?", []any{i, g}
					}
					say("B %d %d %d", g, g, i)
					if _, err = db.Exec(query, args...); err == nil {
						say("A %d %d %d", g, g, i)
					}
				} else if seqMode {
					// Goroutine g owns key g and sets it to i: what survives
					// says which acknowledged writes were lost.
					_, err = db.Exec(placeholders("UPDATE counters SET n = ? WHERE id = ?", dollar), i, g)
					if err == nil {
						say("A %d %d %d %d", g, g, i, time.Now().UnixNano())
					}
				} else {
					key, delta := rand.IntN(keys), 1+rand.IntN(9)
					if onesMode {
						delta = 1 // every write adds 1: the database's sum counts the writes it got
					}
					say("B %d %d %d", g, key, delta)
					query := "UPDATE counters SET n = n + ? WHERE id = ?"
					if upsertMode && (key >= keys/2 || rand.IntN(3) > 0) {
						// Keys from keys/2 up start absent: upserts insert them.
						query = "INSERT INTO counters (n, id) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = counters.n + EXCLUDED.n"
						if os.Getenv(envDriver) == "mysql" {
							query = "INSERT INTO counters (n, id) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)"
						}
					}
					_, err = db.Exec(placeholders(query, dollar), delta, key)
					if err == nil {
						say("A %d %d %d", g, key, delta)
					}
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "child write:", err)
					return
				}
			}
		}()
	}
	if seqMode {
		// Report the journal's fsync lag now and then: what a power loss
		// (not a kill, which leaves the page cache) could take.
		go func() {
			for {
				time.Sleep(20 * time.Millisecond)
				if st, err := StatsOf(db); err == nil {
					say("L %d", st.JournalLag)
				}
				if c, err := connectorOf(db); err == nil {
					say("D %d", c.buf.journal.Stats().DurableLSN)
				}
			}
		}()
	}
	time.Sleep(60 * time.Second) // the parent kills the child long before
	os.Exit(4)
}

// crashConfig is one kind of crash trial.
type crashConfig struct {
	driver   string // sqlite3, pgx or mysql
	maxLoss  string
	fsync    string
	ack      string
	hook     string // "" for a kill at a random instant
	hookN    int
	segs     int64 // journal segment bytes, 0 for the default
	keys     int
	workers  int
	killAt   time.Duration // > 0: kill this long after the child's first acknowledged write
	mode     string        // child mode ("" or "seq")
	maxDirty int           // > 0: the table's max_dirty (small: evictions, partial flushes)
}

// crashBase returns a fresh base DSN with the counters table, and a direct
// connection to it.
func crashBase(t *testing.T, driver string, keys int) (string, *sql.DB) {
	t.Helper()
	var dsn string
	switch driver {
	case "pgx":
		dsn = pgSchema(t, "crash")
	case "mysql":
		dsn = mysqlDSN(t, "crash")
	default:
		dsn = sqliteDSN(t, "crash")
	}
	direct, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	createCounters(t, direct, keys, driver == "pgx")
	return dsn, direct
}

// childWrite is one write the child reported.
type childWrite struct {
	g, key, delta int64
	to            int64 // transfer mode: the key that gains -delta
}

// runChild starts the child and returns its report once it has ended: the
// acknowledged writes, the writes begun and not acknowledged, and the
// process's end. With kill set, it is killed with SIGKILL after killAfter
// acknowledged writes (and a random pause of up to 3ms).
func runChild(t *testing.T, c crashConfig, dsn, rules string, killAfter int, extra ...string) (acked []childWrite, inflight []childWrite, lines []string, killed time.Time, exit error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrash+"=1", envDriver+"="+c.driver, envDSN+"="+dsn, envRules+"="+rules,
		envWorkers+"="+strconv.Itoa(c.workers), envKeys+"="+strconv.Itoa(c.keys))
	if c.hook != "" {
		cmd.Env = append(cmd.Env, envHook+"="+c.hook, envHookN+"="+strconv.Itoa(c.hookN))
	}
	if c.segs > 0 {
		cmd.Env = append(cmd.Env, envSegBytes+"="+strconv.FormatInt(c.segs, 10))
	}
	if c.mode != "" {
		cmd.Env = append(cmd.Env, envMode+"="+c.mode)
	}
	cmd.Env = append(cmd.Env, extra...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reached := make(chan struct{})
	first := make(chan struct{})
	done := make(chan struct{})
	begun := map[int64]childWrite{} // goroutine → its last write begun, not yet acknowledged
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			f := strings.Fields(line)
			if len(f) < 4 {
				lines = append(lines, line)
				continue
			}
			var w childWrite
			w.g, _ = strconv.ParseInt(f[1], 10, 64)
			w.key, _ = strconv.ParseInt(f[2], 10, 64)
			w.delta, _ = strconv.ParseInt(f[3], 10, 64)
			if len(f) > 4 {
				w.to, _ = strconv.ParseInt(f[4], 10, 64)
			}
			switch f[0] {
			case "B":
				begun[w.g] = w
			case "A":
				delete(begun, w.g)
				acked = append(acked, w)
				lines = append(lines, line)
				if n++; n == killAfter {
					close(reached)
				}
				if n == 1 {
					close(first)
				}
			}
		}
	}()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	if c.killAt > 0 {
		select {
		case <-first:
			time.Sleep(c.killAt)
			killed = time.Now()
			_ = cmd.Process.Signal(syscall.SIGKILL)
		case <-done:
		case <-timeout.C:
		}
	}
	select {
	case <-reached:
		if c.hook == "" {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		} else {
			<-done // the hook ends it
		}
	case <-done:
	case <-timeout.C:
		t.Logf("child did not reach %d acknowledged writes (or its hook) in time", killAfter)
	}
	if killed.IsZero() {
		killed = time.Now()
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	exit = cmd.Wait()
	if s := stderr.String(); strings.Contains(s, "child open") || strings.Contains(s, "panic") || strings.Contains(s, "DATA RACE") {
		t.Fatalf("child failed:\n%s", s)
	}
	for _, w := range begun {
		inflight = append(inflight, w)
	}
	return acked, inflight, lines, killed, exit
}

// recoverAndCheck reopens writeback on the journal (which replays it),
// flushes, and checks every counter against the child's report.
func recoverAndCheck(t *testing.T, c crashConfig, dsn, rulesPath string, direct *sql.DB, acked, inflight []childWrite) {
	t.Helper()
	recoverJournal(t, c, dsn, rulesPath)
	want := map[int64]int64{}
	for _, w := range acked {
		want[w.key] += w.delta
	}
	maybe := map[int64][]int64{}
	for _, w := range inflight {
		maybe[w.key] = append(maybe[w.key], w.delta)
	}
	got := counterValues(t, direct)
	for key := int64(0); key < int64(c.keys); key++ {
		extra := got[key] - want[key]
		if !subsetSum(maybe[key], extra) {
			t.Errorf("counter %d = %d: acknowledged deltas sum to %d, in flight %v: %d is no subset of them (a write lost or applied twice)",
				key, got[key], want[key], maybe[key], extra)
		}
	}
}

// recoverJournal opens writeback on the crashed child's journal, which
// replays it, flushes and closes.
func recoverJournal(t *testing.T, c crashConfig, dsn, rulesPath string) {
	t.Helper()
	wb, err := sql.Open("writeback", "driver="+c.driver+" rules="+rulesPath+" dsn="+dsn)
	if err != nil {
		t.Fatalf("recovery: %v", err)
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
}

// subsetSum reports whether some subset of vals sums to target.
func subsetSum(vals []int64, target int64) bool {
	for mask := 0; mask < 1<<len(vals); mask++ {
		var s int64
		for i, v := range vals {
			if mask&(1<<i) != 0 {
				s += v
			}
		}
		if s == target {
			return true
		}
	}
	return false
}

// crashTrial runs one child to its end and checks recovery.
func crashTrial(t *testing.T, c crashConfig) {
	t.Helper()
	dsn, direct := crashBase(t, c.driver, c.keys)
	yaml := journalRules(filepath.Join(t.TempDir(), "journal"), c.fsync, c.ack, c.maxLoss)
	if c.maxDirty > 0 {
		yaml += fmt.Sprintf("    max_dirty: %d\n", c.maxDirty)
	}
	rules := writeRulesFile(t, yaml)
	killAfter := 20 + rand.IntN(300)
	if c.hook != "" {
		killAfter = 1 << 30 // the hook ends the child
	}
	acked, inflight, _, _, exit := runChild(t, c, dsn, rules, killAfter)
	var ee *exec.ExitError
	if c.hook != "" && !(errors.As(exit, &ee) && ee.ExitCode() == crashExitCode) {
		t.Errorf("child did not stop at %s (call %d): %v", c.hook, c.hookN, exit)
	}
	if len(acked) == 0 && c.hook == "" {
		t.Fatalf("child acknowledged nothing (%v)", exit)
	}
	recoverAndCheck(t, c, dsn, rules, direct, acked, inflight)
}

// TestCrashRecovery kills writers at random instants, with long and very
// short max_loss (kills then land mid-flush), on SQLite and PostgreSQL.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run child processes")
	}
	trials := 10
	for _, driver := range []string{"sqlite3", "pgx", "mysql"} {
		// max_dirty 4 of 20 keys: rows are evicted all the time, so most
		// flushes are partial (per-row exceptions, not the watermark).
		for _, v := range []struct {
			maxLoss  string
			maxDirty int
		}{{"5s", 0}, {"5ms", 0}, {"5s", 4}} {
			name := driver + "/max_loss=" + v.maxLoss
			if v.maxDirty > 0 {
				name += fmt.Sprintf("/max_dirty=%d", v.maxDirty)
			}
			t.Run(name, func(t *testing.T) {
				if driver == "pgx" {
					requirePostgres(t)
				}
				for i := 0; i < trials; i++ {
					crashTrial(t, crashConfig{driver: driver, maxLoss: v.maxLoss, maxDirty: v.maxDirty, fsync: "always", ack: "disk", keys: 20, workers: 8})
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}

// TestCrashAtFlushSteps stops the child at each step of the
// flush-and-checkpoint protocol and of compaction, then recovers.
func TestCrashAtFlushSteps(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run child processes")
	}
	points := []string{"before-tx", "after-rows", "before-commit", "after-commit",
		"journal:compact-before-remove", "journal:compact-after-remove", "journal:before-sync", "journal:write", "journal:after-write"}
	for _, driver := range []string{"sqlite3", "pgx", "mysql"} {
		for _, p := range points {
			t.Run(driver+"/"+p, func(t *testing.T) {
				if driver == "pgx" {
					requirePostgres(t)
				}
				for i := 0; i < 2; i++ {
					crashTrial(t, crashConfig{driver: driver, maxLoss: "5ms", fsync: "always", ack: "disk", keys: 20, workers: 4,
						hook: p, hookN: 1 + rand.IntN(10), segs: 512})
				}
			})
		}
	}
}

// TestCrashEverysecLoss kills a child writing under fsync: everysec (writes
// acknowledged from memory) and measures what was lost: for each writer, the
// time between the acknowledgment of its last write that survived and the
// kill, when later acknowledged writes are missing. A SIGKILL leaves the page
// cache, so a kill loses at most what was not yet written to the file; what a
// power loss could take is the journal's fsync lag, which the child reports
// (Stats.JournalLag) and which must stay within about a second too.
func TestCrashEverysecLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run child processes")
	}
	const workers = 4
	c := crashConfig{driver: "sqlite3", maxLoss: "1h", fsync: "everysec", ack: "memory", keys: workers, workers: workers, mode: "seq", killAt: 1500 * time.Millisecond}
	dsn, direct := crashBase(t, c.driver, c.keys)
	jdir := filepath.Join(t.TempDir(), "journal")
	rules := writeRulesFile(t, journalRules(jdir, c.fsync, c.ack, c.maxLoss))
	_, _, lines, killed, _ := runChild(t, c, dsn, rules, 1<<30)
	ackAt := map[[2]int64]time.Time{} // (goroutine, seq) → acknowledged at
	last := map[int64]int64{}
	var maxLag time.Duration
	for _, line := range lines {
		f := strings.Fields(line)
		switch {
		case len(f) == 5 && f[0] == "A":
			g, _ := strconv.ParseInt(f[1], 10, 64)
			seq, _ := strconv.ParseInt(f[3], 10, 64)
			ns, _ := strconv.ParseInt(f[4], 10, 64)
			ackAt[[2]int64{g, seq}] = time.Unix(0, ns)
			last[g] = max(last[g], seq)
		case len(f) == 2 && f[0] == "L":
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			maxLag = max(maxLag, time.Duration(ns))
		}
	}
	if len(ackAt) == 0 {
		t.Fatal("child acknowledged nothing")
	}
	powerLoss := powerLossCopy(t, jdir, lines)
	wb, err := sql.Open("writeback", "driver="+c.driver+" rules="+rules+" dsn="+dsn)
	if err != nil {
		t.Fatalf("recovery: %v", err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	// lost measures what recovery into db lacks: acknowledged writes missing,
	// and the time from the last surviving acknowledgment to the kill.
	lost := func(db *sql.DB) (n int64, window time.Duration) {
		got := counterValues(t, db)
		for g := int64(0); g < workers; g++ {
			if got[g] > last[g]+1 {
				t.Errorf("writer %d: recovered %d, beyond its last write begun (%d acknowledged)", g, got[g], last[g])
			}
			if got[g] >= last[g] {
				continue
			}
			n += last[g] - got[g]
			from := ackAt[[2]int64{g, got[g]}]
			if got[g] == 0 {
				from = ackAt[[2]int64{g, 1}]
			}
			window = max(window, killed.Sub(from))
		}
		return n, window
	}
	lostWrites, window := lost(direct)
	t.Logf("everysec, kill -9 after %s of load: %d acknowledged writes, %d lost, loss window %s; max journal fsync lag seen %s",
		c.killAt, len(ackAt), lostWrites, window, maxLag)
	if window > 1500*time.Millisecond {
		t.Errorf("lost %s of acknowledged writes; everysec promises about a second", window)
	}

	// A power loss also takes what was written but not fsynced: recover a
	// copy of the journal cut after the last record the child saw durable
	// (a little before the kill, so the figure errs on the large side) into
	// a fresh database.
	fresh, fdb := crashBase(t, c.driver, c.keys)
	prules := writeRulesFile(t, journalRules(powerLoss, c.fsync, c.ack, c.maxLoss))
	pdb, err := sql.Open("writeback", "driver="+c.driver+" rules="+prules+" dsn="+fresh)
	if err != nil {
		t.Fatalf("recovery after a simulated power loss: %v", err)
	}
	if err := pdb.Close(); err != nil {
		t.Fatal(err)
	}
	lostWrites, window = lost(fdb)
	t.Logf("everysec, simulated power loss at the kill: %d acknowledged writes lost, loss window %s", lostWrites, window)
	if window > 1500*time.Millisecond {
		t.Errorf("a power loss would take %s of acknowledged writes; everysec promises about a second", window)
	}
	if maxLag > 1500*time.Millisecond {
		t.Errorf("journal fsync lag reached %s; everysec promises about a second", maxLag)
	}
}

// powerLossCopy copies the journal in dir and cuts the copy after the last
// record the child reported durable ("D lsn" lines): what a power loss at
// that instant would leave of it.
func powerLossCopy(t *testing.T, dir string, lines []string) string {
	t.Helper()
	durable := uint64(0)
	for _, line := range lines {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "D" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			durable = max(durable, n)
		}
	}
	cp := copyDir(t, dir)
	cutFile, cutAt := "", int64(-1)
	_, err := journal.Check(cp, func(file string, offset int64, lsn uint64, _ []byte) error {
		if lsn == durable+1 {
			cutFile, cutAt = file, offset
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cutAt < 0 {
		return cp // everything appended was durable
	}
	if err := os.Truncate(cutFile, cutAt); err != nil {
		t.Fatal(err)
	}
	for _, f := range segmentFiles(t, cp) {
		if f > cutFile {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	return cp
}

// openWithHooks opens a writeback *sql.DB as sql.Open("writeback", ...)
// would, with the test seams of opt.
func openWithHooks(driverName, rulesPath, dsn string, opt Option) (*sql.DB, error) {
	base, err := baseConnector(driverName, dsn)
	if err != nil {
		return nil, err
	}
	rules, err := LoadRules(rulesPath)
	if err != nil {
		return nil, err
	}
	c, err := NewConnector(base, rules, opt)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}
