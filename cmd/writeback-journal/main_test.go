package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/writeback-go/writeback/internal/journal"
)

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	j, err := journal.Open(dir, journal.Options{SegmentBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := j.Append([]byte(strings.Repeat("r", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	runOK := func(want int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != want {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, want, &out, &errOut)
		}
		return out.String()
	}
	if out := runOK(0, "-check", dir); !strings.Contains(out, "records 10  lsn 1..10") || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("-check output:\n%s", out)
	}
	if out := runOK(0, "-dump", dir); strings.Count(out, "\n") != 11 || !strings.Contains(out, "\n10\t9\t") {
		t.Fatalf("-dump output:\n%s", out)
	}
	if out := runOK(0, "-fix", dir); !strings.Contains(out, "nothing cut") {
		t.Fatalf("-fix on a clean journal:\n%s", out)
	}
	runOK(2)
	runOK(2, "-check", dir, "-fix", dir)

	// Damage the first segment's first record: -check fails, -fix cuts
	// everything, and the journal opens again.
	ents, _ := os.ReadDir(dir)
	first := dir + "/" + ents[0].Name()
	b, _ := os.ReadFile(first)
	b[30] ^= 0xff
	os.WriteFile(first, b, 0o644)
	if out := runOK(1, "-check", dir); !strings.Contains(out, "CORRUPT") || !strings.Contains(out, "-fix "+dir) {
		t.Fatalf("-check on a damaged journal:\n%s", out)
	}
	if out := runOK(0, "-fix", dir); !strings.Contains(out, "cut at "+first+" offset 20") {
		t.Fatalf("-fix output:\n%s", out)
	}
	j, err = journal.Open(dir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.LastLSN() != 0 {
		t.Fatalf("LastLSN after fix = %d", j.LastLSN())
	}
	// While open, the tool refuses to touch it.
	if out := runOK(1, "-check", dir); out != "" {
		t.Fatalf("-check printed %q while locked", out)
	}
}
