package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/journal"
)

// TestJournalCommands: check, dump and fix on a journal of raw records
// (not records the driver wrote), and on one with a damaged record.
func TestJournalCommands(t *testing.T) {
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
	if out := mustRun(t, exitOK, "journal", "check", dir); !strings.Contains(out, "records 10  lsn 1..10") || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("check output:\n%s", out)
	}
	// Raw records are no driver records: dump says so for each, and fails.
	if out := mustRun(t, exitProblems, "journal", "dump", dir); strings.Count(out, "cannot decode: ") != 10 || !strings.Contains(out, "10 records this version cannot decode") {
		t.Fatalf("dump output:\n%s", out)
	}
	if out := mustRun(t, exitOK, "journal", "fix", dir); !strings.Contains(out, "nothing cut") {
		t.Fatalf("fix on a clean journal:\n%s", out)
	}

	// Damage the first segment's first record: check fails, fix cuts
	// everything, and the journal opens again.
	ents, _ := os.ReadDir(dir)
	first := filepath.Join(dir, ents[0].Name())
	b, _ := os.ReadFile(first)
	b[30] ^= 0xff
	if err := os.WriteFile(first, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, exitProblems, "journal", "check", dir); !strings.Contains(out, "CORRUPT") || !strings.Contains(out, "cmd/writeback journal fix "+dir) {
		t.Fatalf("check on a damaged journal:\n%s", out)
	}
	if out := mustRun(t, exitOK, "journal", "fix", dir); !strings.Contains(out, "cut at "+first+" offset 20") {
		t.Fatalf("fix output:\n%s", out)
	}
	j, err = journal.Open(dir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.LastLSN() != 0 {
		t.Fatalf("LastLSN after fix = %d", j.LastLSN())
	}
	// While open, the commands refuse to touch it.
	for _, verb := range []string{"check", "fix", "dump"} {
		code, out, errOut := runCmd(t, "journal", verb, dir)
		if code != exitProblems || out != "lsn  table  op  key  values\n" && out != "" || !strings.Contains(errOut, "stop the application first") {
			t.Errorf("%s while locked: exit %d, stdout %q, stderr %q", verb, code, out, errOut)
		}
	}
}

func TestJournalUsage(t *testing.T) {
	for _, args := range [][]string{{"journal", "-h"}, {"journal", "check", "-h"}, {"journal", "fix", "-h"}, {"journal", "dump", "-h"}} {
		if out := mustRun(t, exitOK, args...); !strings.HasPrefix(out, "usage: writeback journal check DIR") {
			t.Errorf("%q:\n%s", args, out)
		}
	}
	if out := mustRun(t, exitOK, "journal", "dump", "-h"); !strings.Contains(out, "-dsn DSN") {
		t.Errorf("dump -h does not show -dsn:\n%s", out)
	}
	for _, args := range [][]string{
		{"journal"},
		{"journal", "repair", "x"},
		{"journal", "check"},
		{"journal", "check", "a", "b"},
		{"journal", "fix", "-dsn", "x", "dir"}, // -dsn is dump's
		{"journal", "dump", "-bogus", "dir"},
	} {
		code, out, errOut := runCmd(t, args...)
		if code != exitUsage || out != "" || errOut == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, a message", args, code, out, errOut)
		}
	}
	// A missing directory is a journal that cannot be read.
	if code, _, errOut := runCmd(t, "journal", "check", filepath.Join(t.TempDir(), "none")); code != exitProblems || errOut == "" {
		t.Errorf("missing directory: exit %d, stderr %q", code, errOut)
	}
}

// journalWriterEnv names the DSN the child process writes through.
const journalWriterEnv = "WRITEBACK_CMD_JOURNAL_CHILD"

// TestJournalWriterChild is the process testJournalDump runs: it writes
// through a connector with a journal, flushes the first writes, writes
// more, and exits without closing, as a crash would: the later writes are
// only in the journal.
func TestJournalWriterChild(t *testing.T) {
	dsn := os.Getenv(journalWriterEnv)
	if dsn == "" {
		t.Skip("run by TestJournalDump")
	}
	db, err := sql.Open("writeback", dsn)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(q string) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("INSERT INTO counters (id, n, label) VALUES (1, 10, 'a')")
	exec("UPDATE counters SET n = n + 5 WHERE id = 1")
	if err := writeback.Flush(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	exec("UPDATE counters SET n = n + 7, label = 'b' WHERE id = 1")
	exec("INSERT INTO counters (id, n, label) VALUES (2, 20, 'two'), (3, 30, NULL)")
	exec("INSERT INTO counters (id, n) VALUES (4, 1) ON CONFLICT (id) DO UPDATE SET n = counters.n + excluded.n")
	os.Exit(0) // no Close: what is not flushed is only in the journal
}

func TestJournalDumpSQLite(t *testing.T) {
	testJournalDump(t, "sqlite3", sqliteDB(t, "CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0, label TEXT)"))
}

func TestJournalDumpPostgres(t *testing.T) {
	testJournalDump(t, "pgx", pgSchema(t, "CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL DEFAULT 0, label text)"))
}

// testJournalDump has a child process write and crash, then dumps its
// journal: every record's table, operation, key and values, and with -dsn
// which ones the database has applied; reopening the driver then applies
// exactly the ones dump said were not.
func testJournalDump(t *testing.T, driverName, base string) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "journal")
	rules := writeFile(t, dir, "writeback.yaml", "journal:\n  path: journal\n  fsync: always\ntables:\n  counters:\n    mode: back\n    key: id\n    max_loss: 1h\n")
	dsn := "driver=" + driverName + " rules=" + rules + " dsn=" + base
	child := exec.Command(os.Args[0], "-test.run=^TestJournalWriterChild$", "-test.count=1", "-test.v")
	child.Env = append(os.Environ(), journalWriterEnv+"="+dsn)
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}

	type row struct{ op, key, values, applied string }
	want := []row{
		{"insert", "(1)", `(id, n, label) = (1, 10, "a")`, "yes"},
		{"update", "(1)", "n += 5", "yes"},
		{"update", "(1)", `n += 7, label = "b"`, "no"},
		{"insert", "(2)", `(id, n, label) = (2, 20, "two")`, "no"},
		{"insert", "(3)", "(id, n, label) = (3, 30, NULL)", "no"},
		{"upsert", "(4)", "(id, n) = (4, 1); if the key exists: n += 1", "no"},
	}
	cols := regexp.MustCompile(`\s{2,}`)
	parse := func(out string, withApplied bool) (lsns []string) {
		t.Helper()
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != len(want)+2 || !strings.HasPrefix(lines[0], "lsn  table") || strings.HasSuffix(lines[0], "applied") != withApplied {
			t.Fatalf("dump output:\n%s", out)
		}
		for i, w := range want {
			f := cols.Split(strings.TrimSpace(lines[i+1]), -1)
			got := row{op: f[2], key: f[3], values: f[4]}
			if withApplied {
				got.applied = f[5]
			} else {
				w.applied = ""
			}
			if f[1] != "counters" || got != w {
				t.Errorf("record %d: %q, want %+v", i, f, w)
			}
			lsns = append(lsns, f[0])
		}
		return lsns
	}
	out := mustRun(t, exitOK, "journal", "dump", jdir)
	lsns := parse(out, false)
	// One record a statement, in order; a multi-row INSERT is one record.
	for i, l := range []string{"1", "2", "3", "4", "4", "5"} {
		if lsns[i] != l {
			t.Errorf("LSNs %q, want 1 2 3 4 4 5", lsns)
			break
		}
	}
	if !strings.HasSuffix(out, "5 records\n") {
		t.Errorf("dump summary:\n%s", out)
	}
	out = mustRun(t, exitOK, "journal", "dump", "-dsn", dsn, jdir)
	parse(out, true)
	if !strings.Contains(out, "rows applied in the database 2, not applied 4") {
		t.Errorf("dump -dsn summary:\n%s", out)
	}

	// Recovery applies what dump said was not applied, once.
	db, err := sql.Open("writeback", dsn)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	rows, err := db.Query("SELECT id, n, COALESCE(label, 'null') FROM counters ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, n int64
		var label string
		if err := rows.Scan(&id, &n, &label); err != nil {
			t.Fatal(err)
		}
		got[id] = fmt.Sprintf("%s:%d", label, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wantDB := map[int64]string{1: "b:22", 2: "two:20", 3: "null:30", 4: "null:1"}
	if len(got) != len(wantDB) {
		t.Errorf("after recovery: %v, want %v", got, wantDB)
	}
	for id, v := range wantDB {
		if got[id] != v {
			t.Errorf("after recovery: %v, want %v", got, wantDB)
			break
		}
	}
}
