package writeback

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pgCluster is a PostgreSQL cluster of the test's own, on a port of its
// own, so that the test can crash it.
type pgCluster struct {
	t       *testing.T
	bin     string // the folder of initdb, pg_ctl, postgres
	dir     string // the data folder
	port    int
	asUser  []string // runuser prefix when the test runs as root
	logFile string
}

// startPgCluster makes and starts a cluster; it skips the test when the
// PostgreSQL server programs are not installed.
func startPgCluster(t *testing.T, settings ...string) *pgCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Skip("initdb not found: this test needs the PostgreSQL server programs")
	}
	c := &pgCluster{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	base, err := os.MkdirTemp("", "wb-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	c.dir = filepath.Join(base, "data")
	c.logFile = filepath.Join(base, "log")
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as postgres.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root without a postgres user: cannot start a cluster")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c.run("initdb", "-D", c.dir, "--auth=trust", "-U", "postgres", "--no-sync")
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n", c.port, base)
	for _, s := range settings {
		conf += s + "\n"
	}
	if err := os.WriteFile(filepath.Join(c.dir, "postgresql.auto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.start()
	t.Cleanup(func() { _ = c.cmd("pg_ctl", "-D", c.dir, "-m", "immediate", "stop").Run() })
	return c
}

func (c *pgCluster) cmd(prog string, args ...string) *exec.Cmd {
	full := append(append([]string{}, c.asUser...), filepath.Join(c.bin, prog))
	full = append(full, args...)
	return exec.Command(full[0], full[1:]...)
}

func (c *pgCluster) run(prog string, args ...string) {
	c.t.Helper()
	if out, err := c.cmd(prog, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
}

func (c *pgCluster) start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dir, "-l", c.logFile, "-w", "-t", "60", "start")
}

// crash kills the postmaster and every backend with SIGKILL at once, as a
// host crash would: no shutdown, no checkpoint, no COMMIT record that was
// not yet durable.
func (c *pgCluster) crash() {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "postmaster.pid"))
	if err != nil {
		c.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		c.t.Fatal(err)
	}
	pids := []int{pid}
	if out, err := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if child, err := strconv.Atoi(f); err == nil {
				pids = append(pids, child)
			}
		}
	}
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for _, p := range pids {
		for i := 0; i < 200 && syscall.Kill(p, 0) == nil; i++ {
			time.Sleep(10 * time.Millisecond) // until the kernel has reaped it
		}
	}
}

func (c *pgCluster) dsn() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", c.port)
}

// TestCrashPostgresClusterExactlyOnce crashes a PostgreSQL cluster of the
// test's own with SIGKILL, five times, under a load of ack: disk writes with
// fsync: always, with the commit window widened (commit_delay), then burns
// xids so that ids lost in the crashes are handed out again. Every
// acknowledged write must be in the database exactly once.
func TestCrashPostgresClusterExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crashes a PostgreSQL cluster: not in -short")
	}
	c := startPgCluster(t, "commit_delay = 100000", "commit_siblings = 0", "fsync = on", "synchronous_commit = on")
	direct, err := sql.Open("pgx", c.dsn())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	const keys = 20
	execAll(t, direct, fmt.Sprintf("CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL); INSERT INTO counters SELECT g, 0 FROM generate_series(0, %d) g", keys-1))
	jdir := filepath.Join(t.TempDir(), "journal")
	var logBuf syncBuffer
	logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	wb, _ := openWritebackWith(t, "pgx", c.dsn(), fmt.Sprintf(`
journal:
  path: %s
  fsync: always
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 20ms
    ack: disk
`, jdir), WithLogger(logger))
	var acked [keys]atomic.Int64
	var failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := r.IntN(keys)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := wb.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = $1", k)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				acked[k].Add(1)
			}
		}(w)
	}
	for cycle := 0; cycle < 5; cycle++ {
		time.Sleep(400 * time.Millisecond) // load against a live server: flushes commit, or are cut
		c.crash()
		time.Sleep(100 * time.Millisecond) // writes acknowledged while the server is down
		c.start()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	// Burn xids: an id lost in a crash is handed out again.
	for i := 0; i < 2000; i++ {
		if _, err := direct.Exec("SELECT txid_current()"); err != nil {
			// The pool's connections died with the server: try again.
			continue
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		err := Flush(ctx, wb)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("flush after the crashes: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, _ := StatsOf(wb)
	if err := wb.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	var total, want int64
	for k := 0; k < keys; k++ {
		var n int64
		if err := direct.QueryRow("SELECT n FROM counters WHERE id = $1", k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != acked[k].Load() {
			t.Errorf("key %d: %d in the database, %d acknowledged", k, n, acked[k].Load())
		}
		total += n
		want += acked[k].Load()
	}
	logs := logBuf.String()
	t.Logf("5 crashes: %d writes acknowledged, %d in the database, %d failed (context ended while the server was down), %d flushes, %d retries, %d dead letters; COMMIT answers lost and resolved by txid_status as committed: %d, outcomes decided by the journal's checkpoints: %d",
		want, total, failed.Load(), st.Flushes, st.Retries, st.DeadLetters,
		strings.Count(logs, "got no answer but committed"), strings.Count(logs, "decided by the journal's checkpoints"))
	if os.Getenv("WB_CRASH_LOG") != "" {
		t.Log(logs)
	}
	if st.DeadLetters != 0 || t.Failed() {
		t.Errorf("%d dead letters; the driver's log:\n%s", st.DeadLetters, logs)
	}
}
