package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Child-process modes. The test binary re-runs itself with -test.run
// selecting TestChildProcess and JOURNAL_CHILD saying what to do.
const (
	childEnv    = "JOURNAL_CHILD"
	childDirEnv = "JOURNAL_CHILD_DIR"
)

// TestChildProcess is not a test: it is the body of the child processes
// started by TestLockOtherProcess and TestCrashDurability.
func TestChildProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("only runs as a child process")
	}
	dir := os.Getenv(childDirEnv)
	// Exit if the parent goes away (stdin closes), so that a failed
	// parent never leaves children behind.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	switch mode {
	case "lock":
		j, err := Open(dir, quietOpts(Options{}))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		_ = j
		fmt.Println("ready")
		select {} // hold the lock until killed
	case "crash", "crash-nosync":
		// crash: each line is printed once its record is fsynced;
		// crash-nosync: once it is appended (in the page cache), which is
		// what a killed process must not lose either.
		fsync := Always
		if mode == "crash-nosync" {
			fsync = No
		}
		j, err := Open(dir, quietOpts(Options{Fsync: fsync, SegmentBytes: 4096}))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		var out sync.Mutex
		for g := range 4 {
			go func() {
				for i := 0; ; i++ {
					p := fmt.Sprintf("g%d-%d", g, i)
					lsn, err := j.Append([]byte(p))
					if err == nil && fsync == Always {
						err = j.WaitDurable(context.Background(), lsn)
					}
					if err != nil {
						fmt.Println("error:", err)
						os.Exit(1)
					}
					// One write(2) per line: the parent sees only
					// whole lines, each printed after durability.
					out.Lock()
					os.Stdout.WriteString(fmt.Sprintf("%d %s\n", lsn, p))
					out.Unlock()
				}
			}()
		}
		select {}
	default:
		t.Fatalf("unknown child mode %q", mode)
	}
}

// startChild starts the test binary as a child in mode on dir and returns
// it with a reader on its stdout.
func startChild(t *testing.T, mode, dir string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.StdinPipe(); err != nil { // kept open until the child dies
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewScanner(stdout)
}

func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// TestLockOtherProcess: while another process has the journal open, Open
// fails with the in-use error; once that process is SIGKILLed (no chance to
// clean up) the kernel drops its flock and Open succeeds.
func TestLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, out := startChild(t, "lock", dir)
	if !out.Scan() || out.Text() != "ready" {
		t.Fatalf("child did not start: %q %v", out.Text(), out.Err())
	}
	_, err := Open(dir, quietOpts(Options{}))
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open while another process holds it: %v", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Errorf("error does not name the holder's pid %d: %v", cmd.Process.Pid, err)
	}
	kill(t, cmd)
	cmd.Wait()
	j := mustOpen(t, dir, Options{})
	j.Close()
}

// TestCrashDurability SIGKILLs a child that appends with Always and prints
// every LSN once WaitDurable has returned. Every printed LSN must survive
// (records after the last printed one may survive too), across several
// crashes of the same journal.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, mode := range []string{"crash", "crash-nosync"} {
		t.Run(mode, func(t *testing.T) { testCrashDurability(t, mode) })
	}
}

func testCrashDurability(t *testing.T, mode string) {
	dir := t.TempDir()
	printed := map[uint64]string{}
	var maxPrinted uint64
	for trial := range 5 {
		cmd, out := startChild(t, mode, dir)
		killAfter := 1 + rand.IntN(400)
		lines, killed := 0, false
		for out.Scan() {
			line := out.Text()
			lsnStr, p, ok := strings.Cut(line, " ")
			lsn, err := strconv.ParseUint(lsnStr, 10, 64)
			if !ok || err != nil {
				t.Fatalf("trial %d: child said %q", trial, line)
			}
			printed[lsn] = p
			maxPrinted = max(maxPrinted, lsn)
			if lines++; lines == killAfter && !killed {
				kill(t, cmd)
				killed = true
			}
			// Keep reading: lines already in the pipe were printed
			// (so made durable) before the kill.
		}
		cmd.Wait()
		if !killed {
			t.Fatalf("trial %d: child exited after %d lines", trial, lines)
		}

		j := mustOpen(t, dir, Options{})
		got := map[uint64]string{}
		var prev uint64
		if err := j.Replay(0, func(lsn uint64, b []byte) error {
			if lsn != prev+1 {
				return fmt.Errorf("LSN %d after %d", lsn, prev)
			}
			prev = lsn
			got[lsn] = string(b)
			return nil
		}); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		for lsn, p := range printed {
			if got[lsn] != p {
				t.Fatalf("trial %d: LSN %d was acknowledged as %q but replay has %q", trial, lsn, p, got[lsn])
			}
		}
		if last := j.LastLSN(); last < maxPrinted {
			t.Fatalf("trial %d: LastLSN %d < last acknowledged %d", trial, last, maxPrinted)
		}
		t.Logf("trial %d: killed after %d lines; %d acknowledged in all, journal has %d (%d unacknowledged at the tail)",
			trial, lines, len(printed), j.LastLSN(), j.LastLSN()-maxPrinted)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
