package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/journal"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// journalRules is a rules file with a journal in dir and a counters table.
func journalRules(dir, fsync, ack, maxLoss string) string {
	return fmt.Sprintf(`
journal:
  path: %s
  fsync: %s
tables:
  counters:
    mode: back
    key: [id]
    max_loss: %s
    ack: %s
`, dir, fsync, maxLoss, ack)
}

// counterValues reads every counter through a direct connection.
func counterValues(t testing.TB, db *sql.DB) map[int64]int64 {
	t.Helper()
	rows, err := db.Query("SELECT id, n FROM counters")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// createCounters creates the counters table with keys rows at 0.
// sqliteCounters makes a fresh SQLite database with a counters table of keys
// rows, and returns its DSN and a direct connection (closed with the test).
func sqliteCounters(t testing.TB, name string, keys int) (string, *sql.DB) {
	t.Helper()
	dsn := sqliteDSN(t, name)
	direct, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	createCounters(t, direct, keys, false)
	return dsn, direct
}

func createCounters(t testing.TB, db *sql.DB, keys int, dollar bool) {
	t.Helper()
	execAll(t, db, "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < keys; i++ {
		if _, err := tx.Exec(placeholders("INSERT INTO counters VALUES (?, 0)", dollar), i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// journalRecords counts the records a closed journal still holds.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJournalCleanClose writes through a journal, closes, and checks the
// database has everything, the journal holds nothing to replay, and a
// reopen applies nothing twice.
func TestJournalCleanClose(t *testing.T) {
	base, direct := sqliteCounters(t, "clean", 10)
	jdir := filepath.Join(t.TempDir(), "journal")
	rules := journalRules(jdir, "always", "disk", "1h")
	for round := 0; round < 2; round++ {
		wb := openWriteback(t, "sqlite3", base, rules)
		for i := 0; i < 100; i++ {
			if _, err := wb.Exec("UPDATE counters SET n = n + ? WHERE id = ?", 1, i%10); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := wb.ExecContext(ContextWithAck(context.Background(), AckMemory), "INSERT INTO counters (id, n) VALUES (?, ?), (?, ?)", 100+round*2, 5, 101+round*2, 6); err != nil {
			t.Fatal(err)
		}
		st, err := StatsOf(wb)
		if err != nil {
			t.Fatal(err)
		}
		if st.JournalUnapplied != 102 || st.JournalBytes == 0 || st.FsyncLatencyLast == 0 {
			t.Errorf("stats before flush: unapplied %d bytes %d fsync %s", st.JournalUnapplied, st.JournalBytes, st.FsyncLatencyLast)
		}
		if err := wb.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got := counterValues(t, direct)
	for i := int64(0); i < 10; i++ {
		if got[i] != 20 {
			t.Errorf("counter %d = %d, want 20", i, got[i])
		}
	}
	if got[100] != 5 || got[103] != 6 {
		t.Errorf("inserted rows: %v", got)
	}
	// Everything is applied: the segments left hold no record.
	for _, f := range segmentFiles(t, jdir) {
		if fi, err := os.Stat(f); err != nil || fi.Size() > 64 {
			t.Errorf("segment %s left after a clean close (%v)", f, fi.Size())
		}
	}
}

// TestJournalInUse opens the same journal twice: the second open fails and
// says why.
func TestJournalInUse(t *testing.T) {
	base, _ := sqliteCounters(t, "inuse", 1)
	rules := writeRulesFile(t, journalRules(filepath.Join(t.TempDir(), "j"), "always", "memory", "1s"))
	first, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+base)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+base)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), "another connector") {
		t.Fatalf("second open of a journal: %v", err)
	}
	t.Log(err)
}

// copyDir copies the regular files of src into a new folder.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "journal-copy")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestJournalTornTailAndCorruption takes a copy of a journal holding
// unapplied writes (what a crash before any flush leaves), then opens the
// driver on it against a fresh database: with the last record cut at every
// byte offset the open works and replays every earlier write; with a byte
// flipped mid-file the open fails naming the file, the offset and the repair.
func TestJournalTornTailAndCorruption(t *testing.T) {
	const writes = 20
	base, _ := sqliteCounters(t, "src", 5)
	jdir := filepath.Join(t.TempDir(), "journal")
	wb := openWriteback(t, "sqlite3", base, journalRules(jdir, "always", "disk", "1h"))
	// The journal's one segment is allocated ahead of its records while it
	// is open: its records' bytes are what Stats reports, not its size.
	journalBytes := func() int64 {
		st, err := StatsOf(wb)
		if err != nil {
			t.Fatal(err)
		}
		return st.JournalBytes
	}
	var before int64
	var snap string
	for i := 0; i < writes; i++ {
		if i == writes-1 {
			before = journalBytes()
		}
		if _, err := wb.Exec("UPDATE counters SET n = n + ? WHERE id = ?", i+1, i%5); err != nil {
			t.Fatal(err)
		}
	}
	end := journalBytes()
	snap = copyDir(t, jdir)
	// What follows the records is the segment's allocated, unused end.
	if err := os.Truncate(segmentFiles(t, snap)[0], end); err != nil {
		t.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	want := func(n int) map[int64]int64 {
		m := map[int64]int64{}
		for i := 0; i < n; i++ {
			m[int64(i%5)] += int64(i + 1)
		}
		for k := int64(0); k < 5; k++ {
			m[k] += 0
		}
		return m
	}
	segName := filepath.Base(segmentFiles(t, snap)[0])
	full, err := os.ReadFile(filepath.Join(snap, segName))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(full)) < end {
		t.Fatalf("segment of %d bytes, the journal says %d", len(full), end)
	}
	full = full[:end]
	// recoverFrom opens writeback on a copy of the journal cut to size
	// bytes (or with byte flip inverted) against a fresh database.
	recoverFrom := func(size int, flip int) (map[int64]int64, error) {
		dir := copyDir(t, snap)
		b := append([]byte{}, full[:size]...)
		if flip >= 0 {
			b[flip] ^= 0x5a
		}
		if err := os.WriteFile(filepath.Join(dir, segName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		fresh := sqliteDSN(t, "dst")
		fdb, err := sql.Open("sqlite3", fresh)
		if err != nil {
			t.Fatal(err)
		}
		defer fdb.Close()
		createCounters(t, fdb, 5, false)
		rules := writeRulesFile(t, journalRules(dir, "always", "disk", "1h"))
		wdb, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+fresh)
		if err != nil {
			return nil, err
		}
		if err := wdb.Close(); err != nil {
			t.Fatal(err)
		}
		return counterValues(t, fdb), nil
	}
	got, err := recoverFrom(len(full), -1)
	if err != nil || !reflect.DeepEqual(got, want(writes)) {
		t.Fatalf("intact journal: %v, %v; want %v", got, err, want(writes))
	}
	for size := int(before); size < len(full); size++ {
		got, err := recoverFrom(size, -1)
		if err != nil {
			t.Fatalf("last record cut to %d of %d bytes: %v", size-int(before), len(full)-int(before), err)
		}
		if !reflect.DeepEqual(got, want(writes-1)) {
			t.Fatalf("last record cut to %d bytes: %v, want %v", size-int(before), got, want(writes-1))
		}
	}
	_, err = recoverFrom(len(full), int(before)/2)
	if err == nil {
		t.Fatal("a journal with a flipped byte mid-file opened")
	}
	for _, part := range []string{segName, "offset", "writeback journal fix"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("corruption error does not say %q: %v", part, err)
		}
	}
	t.Log(err)
}

// TestJournalAckDisk checks that ContextWithAck(ctx, AckDisk) on a memory
// table returns only once the write's record is fsynced, and that a table
// without a journal serves AckDisk as AckThrough.
func TestJournalAckDisk(t *testing.T) {
	base, direct := sqliteCounters(t, "ackdisk", 3)
	wb := openWriteback(t, "sqlite3", base, journalRules(filepath.Join(t.TempDir(), "j"), "always", "memory", "1h"))
	defer wb.Close()
	c, err := connectorOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := wb.ExecContext(ContextWithAck(context.Background(), AckDisk), "UPDATE counters SET n = n + 1 WHERE id = ?", i%3); err != nil {
			t.Fatal(err)
		}
		if st := c.buf.journal.Stats(); st.DurableLSN < st.LastLSN {
			t.Fatalf("AckDisk returned with record %d appended and only %d durable", st.LastLSN, st.DurableLSN)
		}
	}
	if got := counterValues(t, direct); got[0] != 0 {
		t.Fatalf("AckDisk wrote through: %v", got)
	}

	noJournal := openWriteback(t, "sqlite3", base, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	defer noJournal.Close()
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	if _, err := noJournal.ExecContext(ContextWithAck(context.Background(), AckDisk), "UPDATE counters SET n = n + 100 WHERE id = 0"); err != nil {
		t.Fatal(err)
	}
	if got := counterValues(t, direct); got[0] != 117 {
		t.Fatalf("AckDisk without a journal did not write through: %v", got)
	}
}

// TestJournalOpenWhileDatabaseDown opens copies of a journal holding
// unapplied writes while the SQLite database cannot be opened (its
// directory does not exist yet):
//   - with the catalog kept beside the journal, the open succeeds and a
//     write is acknowledged; Close, the database still down, says the
//     records are kept; once the database exists, the held records and the
//     new write are applied, the held ones first;
//   - without it, the open refuses, saying recovery needs the database.
func TestJournalOpenWhileDatabaseDown(t *testing.T) {
	base, _ := sqliteCounters(t, "src", 2)
	jdir := filepath.Join(t.TempDir(), "journal")
	wb := openWriteback(t, "sqlite3", base, journalRules(jdir, "always", "disk", "1h"))
	for i := 0; i < 10; i++ {
		if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", i%2); err != nil {
			t.Fatal(err)
		}
	}
	snap := copyDir(t, jdir)
	stillDown := copyDir(t, jdir)
	noCatalog := copyDir(t, jdir)
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "later", "x.db")
	missing := "file:" + dbPath + "?mode=rwc"

	// The database never comes back before Close.
	downDB := openWriteback(t, "sqlite3", missing, journalRules(stillDown, "always", "disk", "1h"))
	if err := downDB.Close(); err == nil || !strings.Contains(err.Error(), "could not be reconciled") || !strings.Contains(err.Error(), "records are kept") {
		t.Fatalf("Close with the database still down: %v", err)
	}

	// Without the kept catalog nothing could be buffered: the open refuses.
	if err := os.Remove(filepath.Join(noCatalog, schemaSnapshot)); err != nil {
		t.Fatal(err)
	}
	rules := writeRulesFile(t, journalRules(noCatalog, "always", "disk", "1h"))
	_, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+missing)
	if err == nil || !strings.Contains(err.Error(), "recovery needs the database") || !strings.Contains(err.Error(), "journal is kept") {
		t.Fatalf("open with the database unreachable and no kept catalog: %v", err)
	}

	logs := newStateLog()
	wdb, c := openWritebackWith(t, "sqlite3", missing, journalRules(snap, "always", "disk", "1h"), WithLogger(slog.New(logs)))
	if c.recovery.Load() == nil {
		t.Fatal("the open did not hold the journal for later")
	}
	if _, err := wdb.Exec("UPDATE counters SET n = n * 10 WHERE id = 0"); err == nil {
		t.Fatal("a write that is not buffered reached a database that does not exist")
	}
	if _, err := wdb.Exec("UPDATE counters SET n = 100 WHERE id = 0"); err != nil {
		t.Fatal(err)
	}
	if st, _ := StatsOf(wdb); st.Buffered != 1 {
		t.Fatalf("Buffered = %d, want 1", st.Buffered)
	}
	// The database appears.
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		t.Fatal(err)
	}
	fdb, err := sql.Open("sqlite3", missing)
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	createCounters(t, fdb, 2, false)
	logs.await(t, "reconciled", 30*time.Second)
	if err := wdb.Close(); err != nil {
		t.Fatal(err)
	}
	// Row 0: five held deltas, then the assignment made during the outage.
	if got := counterValues(t, fdb); got[0] != 100 || got[1] != 5 {
		t.Fatalf("after the database appeared: %v, want 100 and 5", got)
	}
}

// TestJournalBehindCheckpoints opens an older copy of a journal (what the
// repair (writeback journal fix) leaves: its last records gone, their LSNs to be handed out
// again) against the database that applied the newer records: nothing is
// applied twice, and the journal gets a new id so that the database's marks
// of the lost records cannot hide the new ones.
func TestJournalBehindCheckpoints(t *testing.T) {
	base, direct := sqliteCounters(t, "behind", 2)
	jdir := filepath.Join(t.TempDir(), "journal")
	wb := openWriteback(t, "sqlite3", base, journalRules(jdir, "always", "disk", "1h"))
	var snap string
	for i := 0; i < 20; i++ {
		if i == 10 {
			snap = copyDir(t, jdir)
		}
		if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", i%2); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	oldID, _ := os.ReadFile(filepath.Join(snap, "WRITEBACK_ID"))
	rules := writeRulesFile(t, journalRules(snap, "always", "disk", "1h"))
	wdb, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wdb.Exec("UPDATE counters SET n = n + 100 WHERE id = 0"); err != nil {
		t.Fatal(err)
	}
	if err := wdb.Close(); err != nil {
		t.Fatal(err)
	}
	if got := counterValues(t, direct); got[0] != 110 || got[1] != 10 {
		t.Fatalf("after reopening an older journal: %v, want 110 and 10", got)
	}
	if newID, _ := os.ReadFile(filepath.Join(snap, "WRITEBACK_ID")); string(newID) == string(oldID) {
		t.Fatal("the journal kept its id although the database had marks beyond its last record")
	}
}

// TestJournalTableNoLongerBack reopens a journal holding unapplied writes
// with rules that no longer buffer their table: the open refuses, naming the
// table, rather than dropping the writes.
func TestJournalTableNoLongerBack(t *testing.T) {
	base, _ := sqliteCounters(t, "gone", 2)
	jdir := filepath.Join(t.TempDir(), "journal")
	wb := openWriteback(t, "sqlite3", base, journalRules(jdir, "always", "disk", "1h"))
	if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	snap := copyDir(t, jdir)
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	fresh := sqliteDSN(t, "fresh")
	fdb, err := sql.Open("sqlite3", fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer fdb.Close()
	createCounters(t, fdb, 2, false)
	rules := writeRulesFile(t, fmt.Sprintf("journal:\n  path: %s\ntables:\n  counters:\n    mode: through\n", snap))
	_, err = sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+fresh)
	if err == nil || !strings.Contains(err.Error(), "table counters, which the rules no longer buffer") {
		t.Fatalf("open with the table's rule gone: %v", err)
	}
}

// TestJournalReplayFlushesWhenRecordsDoNotCoalesce replays records that
// were buffered as two rows of one key (an INSERT flushed, then a delta on a
// column the INSERT did not set): replay cannot merge them, so it flushes
// the first before buffering the second, and both take effect once.
func TestJournalReplayFlushesWhenRecordsDoNotCoalesce(t *testing.T) {
	base := sqliteDSN(t, "nocoalesce")
	direct, err := sql.Open("sqlite3", base)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL, m BIGINT NOT NULL DEFAULT 7)")
	jdir := filepath.Join(t.TempDir(), "journal")
	appendUncoalescable(t, jdir)
	wb := openWriteback(t, "sqlite3", base, journalRules(jdir, "always", "disk", "1h"))
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	if got := dumpTable(t, direct, "counters", "id"); !reflect.DeepEqual(got, []string{"1|10|17", "2|20|7"}) {
		t.Fatalf("after replay: %v", got)
	}
}

// appendUncoalescable appends to the journal in jdir records buffered as
// two rows of one key: an INSERT of rows 1 and 2 (columns id and n), then
// twice a delta of 5 on row 1's column m, which the INSERT did not set.
func appendUncoalescable(t *testing.T, jdir string) {
	t.Helper()
	j, err := journal.Open(jdir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	names := &dirtyset.Names{Table: sqlparse.Ident{Norm: "counters", Raw: "counters"}, KeyCols: []sqlparse.Ident{{Norm: "id", Raw: "id"}}, Style: sqlparse.ParamQuestion}
	cols := []sqlparse.Ident{{Norm: "id", Raw: "id"}, {Norm: "n", Raw: "n"}}
	ins, err := durable.EncodeInsert(nil, "counters", names, cols, [][]any{{int64(1)}, {int64(2)}}, [][]any{{int64(1), int64(10)}, {int64(2), int64(20)}})
	if err != nil {
		t.Fatal(err)
	}
	upd, err := durable.EncodeUpdate(nil, "counters", names, []any{int64(1)}, []dirtyset.Change{{Col: sqlparse.Ident{Norm: "m", Raw: "m"}, Delta: true, Val: int64(5)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range [][]byte{ins, upd, upd} {
		if _, err := j.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHeldReplayKeepsRecordOrder is TestJournalReplayFlushesWhenRecordsDoNotCoalesce
// for a connector that opened while the database was down: the records
// that cannot be merged are held in two generations, flushed in order once
// the database appears, and a write made during the outage lands after them.
func TestHeldReplayKeepsRecordOrder(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "later", "x.db")
	dsn := "file:" + dbPath + "?mode=rwc"
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		t.Fatal(err)
	}
	direct, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL, m BIGINT NOT NULL DEFAULT 7)")
	jdir := filepath.Join(t.TempDir(), "journal")
	rules := journalRules(jdir, "always", "disk", "1h")
	// An open with the database up keeps its catalog beside the journal.
	if err := openWriteback(t, "sqlite3", dsn, rules).Close(); err != nil {
		t.Fatal(err)
	}
	appendUncoalescable(t, jdir)
	// The database goes away, and the connector opens without it.
	direct.Close()
	if err := os.Rename(filepath.Dir(dbPath), filepath.Dir(dbPath)+".away"); err != nil {
		t.Fatal(err)
	}
	logs := newStateLog()
	wb, c := openWritebackWith(t, "sqlite3", dsn, rules, WithLogger(slog.New(logs)))
	if c.recovery.Load() == nil {
		t.Fatal("the open did not hold the journal for later")
	}
	if _, err := wb.Exec("UPDATE counters SET m = m * 1, n = 99 WHERE id = 1"); err == nil {
		t.Fatal("a write that cannot be buffered reached a database that is away")
	}
	if _, err := wb.Exec("UPDATE counters SET m = 0 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Dir(dbPath)+".away", filepath.Dir(dbPath)); err != nil {
		t.Fatal(err)
	}
	logs.await(t, "reconciled", 30*time.Second)
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	direct, err = sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if got := dumpTable(t, direct, "counters", "id"); !reflect.DeepEqual(got, []string{"1|10|0", "2|20|7"}) {
		t.Fatalf("after the held replay: %v", got)
	}
}
