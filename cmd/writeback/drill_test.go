package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/writeback-go/writeback/internal/testdb"
)

// The drill's child is this test binary, run again with drillChildEnv set.
func TestMain(m *testing.M) {
	if code, ok := drillChildMain(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// The rules the drill tests run: one without a journal (the page-view
// example's), one with (testdata/rules/drill.yaml).
var (
	drillNoJournalRules = "../../examples/pageviews/writeback.yaml"
	drillJournalRules   = "../../testdata/rules/drill.yaml"
)

// drillSchema are the tables both rules files name.
var drillSchema = []string{
	"CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL DEFAULT 0, title TEXT)",
	"CREATE TABLE carts (cart_id TEXT PRIMARY KEY, items INTEGER NOT NULL DEFAULT 0)",
	"CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)",
	// A row of the user's, which the drill must leave alone.
	"INSERT INTO page_views (page_id, views, title) VALUES (1, 42, 'home')",
}

// drillFlags keep each drill test to a few seconds: two rounds, killed
// early (a journal's promise does not depend on when).
var drillFlags = []string{"-rounds", "2", "-duration", "400ms", "-seed", "7"}

// drillNoJournalFlags run one round killed 1.99 s into the load (seed 2
// draws that moment), so that the writes acknowledged more than max_loss
// (1 s) + grace before the kill are outside the bound and must all be in
// the database.
var drillNoJournalFlags = []string{"-rounds", "1", "-duration", "2s", "-seed", "2"}

// drillRow is one line of the drill's table.
type drillRow struct {
	table, ack         string
	acked, lost, twice int64
	bound              int64
	reported, result   string
}

// drillRows parses the drill's table from its output.
func drillRows(t *testing.T, out string) []drillRow {
	t.Helper()
	var rows []drillRow
	in := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "table ") {
			in = true
			continue
		}
		if !in {
			continue
		}
		if line == "" {
			break
		}
		// table, ack (words up to the round), round, killed at, acked,
		// writes/s, lost, twice, bound, reported (one or two words), result.
		f := strings.Fields(line)
		num := func(s string) int64 {
			n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
			if err != nil {
				t.Fatalf("%q in line %q: %v", s, line, err)
			}
			return n
		}
		i := 1 // the ack's words end before the round, the first number
		for ; i < len(f); i++ {
			if _, err := strconv.Atoi(f[i]); err == nil {
				break
			}
		}
		r := drillRow{table: f[0], ack: strings.Join(f[1:i], " ")}
		rest := f[i:]
		if len(rest) < 9 {
			t.Fatalf("line %q: too few fields", line)
		}
		r.acked, r.lost, r.twice, r.bound = num(rest[2]), num(rest[4]), num(rest[5]), num(rest[6])
		r.reported, r.result = strings.Join(rest[7:len(rest)-1], " "), rest[len(rest)-1]
		rows = append(rows, r)
	}
	return rows
}

// checkDrillKept checks a run whose promises were all kept: every table
// in every round, writes acknowledged, nothing lost beyond the bound,
// nothing applied twice.
func checkDrillKept(t *testing.T, out string, tables []string, journal bool) {
	t.Helper()
	rows := drillRows(t, out)
	rounds := 1
	if journal {
		rounds = 2
	}
	if len(rows) != rounds*len(tables) {
		t.Fatalf("%d rows, want %d (%d rounds × %v):\n%s", len(rows), rounds*len(tables), rounds, tables, out)
	}
	for i, r := range rows {
		if r.table != tables[i%len(tables)] {
			t.Errorf("row %d is table %s, want %s", i, r.table, tables[i%len(tables)])
		}
		if r.acked == 0 || r.twice != 0 || r.lost > r.bound || r.result != "ok" {
			t.Errorf("row %+v: want writes acknowledged, none applied twice, lost within the bound, ok", r)
		}
		if journal && (r.bound != 0 || r.lost != 0 || r.reported != "none") {
			t.Errorf("row %+v: with a journal the promise is 0 lost, and the crash report says none", r)
		}
		if !journal && (r.bound == 0 || r.bound >= r.acked || !strings.HasPrefix(r.reported, "≤ ")) {
			t.Errorf("row %+v: without a journal the bound is the writes of the last max_loss (killed later than that: fewer than acknowledged), and the crash report bounds the loss", r)
		}
	}
	if !strings.HasSuffix(out, "every promise kept\n") {
		t.Errorf("output does not end with every promise kept:\n%s", out)
	}
}

// sqliteDrillDB makes the user's SQLite database in a folder of its own.
func sqliteDrillDB(t *testing.T) (dir, path string) {
	t.Helper()
	path = sqliteDB(t, drillSchema...)
	return filepath.Dir(path), path
}

// checkUntouched checks that the user's tables hold what they held.
func checkUntouched(t *testing.T, db *sql.DB) {
	t.Helper()
	for table, want := range map[string]int{"page_views": 1, "carts": 0, "orders": 0} {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("the user's %s has %d rows after the drill, want %d", table, n, want)
		}
	}
	var views int
	if err := db.QueryRow("SELECT views FROM page_views WHERE page_id = 1").Scan(&views); err != nil || views != 42 {
		t.Errorf("the user's row: views %d (%v), want 42", views, err)
	}
}

func rulesPath(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDrillSQLite(t *testing.T) {
	dir, path := sqliteDrillDB(t)
	dsn := "driver=sqlite3 rules=" + rulesPath(t, drillNoJournalRules) + " dsn=" + path
	out := mustRun(t, exitOK, append(append([]string{"drill"}, drillNoJournalFlags...), dsn)...)
	checkDrillKept(t, out, []string{"page_views"}, false)

	dsn = "driver=sqlite3 rules=" + rulesPath(t, drillJournalRules) + " dsn=" + path
	out = mustRun(t, exitOK, append(append([]string{"drill"}, drillFlags...), dsn)...)
	checkDrillKept(t, out, []string{"page_views", "carts"}, true)

	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkUntouched(t, db)
	// Nothing beside the user's database: no journal, no state file.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "app.db" {
			t.Errorf("the drill left %s beside the user's database", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(rulesPath(t, drillJournalRules)), "writeback.journal")); !os.IsNotExist(err) {
		t.Errorf("the drill made the rules' own journal directory (%v)", err)
	}
}

// A write acknowledged and discarded (the test-only seam) is a broken
// promise with a journal: the drill exits 1 and names the table.
func TestDrillBrokenPromiseSQLite(t *testing.T) {
	t.Setenv(drillDropEnv, "20")
	_, path := sqliteDrillDB(t)
	dsn := "driver=sqlite3 rules=" + rulesPath(t, drillJournalRules) + " dsn=" + path
	out := mustRun(t, exitProblems, "drill", "-rounds", "1", "-duration", "400ms", dsn)
	checkDrillBroken(t, out)
}

func checkDrillBroken(t *testing.T, out string) {
	t.Helper()
	rows := drillRows(t, out)
	broken := 0
	for _, r := range rows {
		if r.result == "BROKEN" {
			broken++
			if r.lost != 1 || r.bound != 0 {
				t.Errorf("broken row %+v: want 1 lost against a promise of 0", r)
			}
		}
	}
	if broken != 1 || !strings.HasSuffix(out, "1 promise broken\n") {
		t.Errorf("want one broken promise:\n%s", out)
	}
}

func TestDrillPostgres(t *testing.T) {
	base := pgSchema(t, drillSchema...)
	admin := testdb.OpenPostgres(t)
	scratchSchemas := func() int {
		var n int
		if err := admin.QueryRow("SELECT COUNT(*) FROM pg_namespace WHERE nspname LIKE 'writeback_drill_%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := scratchSchemas()
	dsn := "driver=pgx rules=" + rulesPath(t, drillNoJournalRules) + " dsn=" + base
	out := mustRun(t, exitOK, append(append([]string{"drill"}, drillNoJournalFlags...), dsn)...)
	checkDrillKept(t, out, []string{"page_views"}, false)

	dsn = "driver=pgx rules=" + rulesPath(t, drillJournalRules) + " dsn=" + base
	out = mustRun(t, exitOK, append(append([]string{"drill"}, drillFlags...), dsn)...)
	checkDrillKept(t, out, []string{"page_views", "carts"}, true)

	t.Setenv(drillDropEnv, "20")
	out = mustRun(t, exitProblems, "drill", "-rounds", "1", "-duration", "400ms", dsn)
	checkDrillBroken(t, out)

	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkUntouched(t, db)
	var own int // writeback's checkpoint tables stay in the scratch schema
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'writeback_%'").Scan(&own); err != nil || own != 0 {
		t.Errorf("writeback's tables in the user's schema: %d (%v)", own, err)
	}
	if n := scratchSchemas(); n != before {
		t.Errorf("%d scratch schemas left behind", n-before)
	}
}

func TestDrillMySQL(t *testing.T) {
	base := testdb.MySQLDatabase(t, "wb_drill", "")
	db, err := sql.Open("mysql", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	execAll(t, db,
		"CREATE TABLE page_views (page_id BIGINT PRIMARY KEY, views BIGINT NOT NULL DEFAULT 0, title TEXT)",
		"CREATE TABLE carts (cart_id BIGINT PRIMARY KEY, items INT NOT NULL DEFAULT 0)", // MySQL's string keys ignore trailing spaces
		"CREATE TABLE orders (id INT PRIMARY KEY, total INT)",
		"INSERT INTO page_views (page_id, views, title) VALUES (1, 42, 'home')")
	dsn := "driver=mysql rules=" + rulesPath(t, drillJournalRules) + " dsn=" + base
	out := mustRun(t, exitOK, append(append([]string{"drill"}, drillFlags...), dsn)...)
	checkDrillKept(t, out, []string{"page_views", "carts"}, true)
	checkUntouched(t, db)
	var left int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE 'writeback\\_drill\\_%'").Scan(&left); err != nil || left != 0 {
		t.Errorf("scratch databases left behind: %d (%v)", left, err)
	}
}

func TestDrillUsage(t *testing.T) {
	_, path := sqliteDrillDB(t)
	dsn := "driver=sqlite3 rules=" + rulesPath(t, drillNoJournalRules) + " dsn=" + path
	for _, args := range [][]string{
		{"drill"},
		{"drill", dsn, dsn},
		{"drill", "-rounds", "0", dsn},
		{"drill", "-duration", "0s", dsn},
		{"drill", "-writers", "0", dsn},
		{"drill", "-nope", dsn},
		{"drill", "driver=sqlite3"},
	} {
		if code, _, errOut := runCmd(t, args...); code != exitUsage || errOut == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
	if out := mustRun(t, exitOK, "drill", "-h"); !strings.Contains(out, "usage: writeback drill") {
		t.Errorf("-h: %s", out)
	}

	// A child that cannot start its load stops the drill: exit 1, with
	// the child's own message.
	t.Setenv(drillDropEnv, "abc")
	code, _, errOut := runCmd(t, "drill", "-rounds", "1", dsn)
	if code != exitProblems || !strings.Contains(errOut, "before it was ready") || !strings.Contains(errOut, drillDropEnv+`="abc"`) {
		t.Errorf("a child that fails: exit %d, stderr %q; want 1 and its message", code, errOut)
	}
	t.Setenv(drillDropEnv, "")

	// A replicated journal lives on NATS servers the drill must not write to.
	rules := writeFile(t, t.TempDir(), "nats.yaml", "journal:\n  nats: nats://127.0.0.1:1\ntables:\n  page_views:\n    mode: back\n    key: page_id\n")
	code, _, errOut = runCmd(t, "drill", "driver=sqlite3 rules="+rules+" dsn="+path)
	if code != exitUsage || !strings.Contains(errOut, "replicated journal") {
		t.Errorf("rules with journal.nats: exit %d, stderr %q; want 2, saying the drill does not run them", code, errOut)
	}

	// Rules the driver would refuse are not drilled: exit 1, naming the error.
	rules = writeFile(t, t.TempDir(), "bad.yaml", "tables:\n  missing:\n    mode: back\n    key: id\n")
	code, _, errOut = runCmd(t, "drill", "driver=sqlite3 rules="+rules+" dsn="+path)
	if code != exitProblems || !strings.Contains(errOut, "bad.yaml:2") {
		t.Errorf("rules the driver refuses: exit %d, stderr %q; want 1 naming bad.yaml:2", code, errOut)
	}
}
