package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/writeback-go/writeback/internal/inspect"
)

// want is one finding a check must report for a table.
type want struct {
	level inspect.Level
	check string
	text  string // part of the message
}

// checkFixture runs check on rules (written to a file) against a base DSN
// and compares every table's findings with wants, in text and JSON; when
// the rules have errors it also opens the driver on them and requires the
// open's error to be the report's first error. It returns the report.
func checkFixture(t *testing.T, driverName, baseDSN, rules string, wants map[string][]want) inspect.Report {
	t.Helper()
	path := writeFile(t, t.TempDir(), "writeback.yaml", rules)
	dsn := "driver=" + driverName + " rules=" + path + " dsn=" + baseDSN
	errs := 0
	for _, ws := range wants {
		for _, w := range ws {
			if w.level == inspect.Error {
				errs++
			}
		}
	}
	exit := exitOK
	if errs > 0 {
		exit = exitProblems
	}

	// Text: every finding with its rule's file:line, level and message.
	out := mustRun(t, exit, "check", dsn)
	for table, ws := range wants {
		line := lineOf(t, rules, "  "+table+":")
		for _, w := range ws {
			prefix := fmt.Sprintf("%-7s  %s:%d: tables.%s: ", w.level, path, line, table)
			found := false
			for _, l := range strings.Split(out, "\n") {
				found = found || strings.HasPrefix(strings.TrimSpace(l), prefix) && strings.Contains(l, w.text)
			}
			if !found {
				t.Errorf("text output lacks %q ... %q:\n%s", prefix, w.text, out)
			}
		}
	}

	// JSON: the same findings, no others.
	var rep inspect.Report
	if err := json.Unmarshal([]byte(mustRun(t, exit, "check", "-json", dsn)), &rep); err != nil {
		t.Fatalf("-json output does not parse: %v", err)
	}
	if rep.Rules != path || rep.Dialect == "" || rep.Errors != errs {
		t.Errorf("report: rules %q dialect %q errors %d, want %q, a dialect, %d", rep.Rules, rep.Dialect, rep.Errors, path, errs)
	}
	seen := map[string]bool{}
	for _, tab := range rep.Tables {
		seen[tab.Name] = true
		ws := wants[tab.Name]
		// The decision-record warnings are TestCheckDecision's.
		tab.Findings = slices.DeleteFunc(tab.Findings, func(f inspect.Finding) bool { return f.Check == "decision" })
		if len(tab.Findings) != len(ws) {
			t.Errorf("%s: %d findings, want %d: %+v", tab.Name, len(tab.Findings), len(ws), tab.Findings)
			continue
		}
		for i, f := range tab.Findings {
			w := ws[i]
			if f.Level != w.level || f.Check != w.check || !strings.Contains(f.Message, w.text) ||
				f.File != path || f.Line != lineOf(t, rules, "  "+tab.Name+":") || tab.Line != f.Line {
				t.Errorf("%s finding %d: %+v, want %+v at line %d", tab.Name, i, f, w, lineOf(t, rules, "  "+tab.Name+":"))
			}
		}
	}
	for table := range wants {
		if !seen[table] {
			t.Errorf("no table %s in the JSON report", table)
		}
	}

	// The same checks as the open: it refuses with the first error.
	db, err := sql.Open("writeback", dsn)
	if err == nil {
		db.Close()
	}
	var first string
	for _, tab := range rep.Tables {
		for _, f := range tab.Findings {
			if f.Level == inspect.Error && first == "" {
				first = fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Message)
			}
		}
	}
	switch {
	case first == "" && err != nil:
		t.Errorf("check found no error, but the open failed: %v", err)
	case first != "" && (err == nil || err.Error() != first):
		t.Errorf("open error = %v\nwant check's first error %s", err, first)
	}
	return rep
}

// buffered returns the kinds of statement the report says table buffers,
// and the reasons of those it does not.
func buffered(rep inspect.Report, table string) (yes []string, no map[string]string) {
	no = map[string]string{}
	for _, tab := range rep.Tables {
		if tab.Name != table {
			continue
		}
		for _, s := range tab.Buffers {
			if s.Buffered {
				yes = append(yes, s.Kind)
			} else {
				no[s.Kind] = s.Reason
			}
		}
	}
	return yes, no
}

// buffersAll requires the report to say table buffers the kinds of
// statement wantYes, in that order, and no others.
func buffersAll(t *testing.T, rep inspect.Report, table string, wantYes ...string) {
	t.Helper()
	yes, no := buffered(rep, table)
	if strings.Join(yes, "|") != strings.Join(wantYes, "|") || len(no) != 0 {
		t.Errorf("%s buffers %q, not %v; want %q", table, yes, no, wantYes)
	}
}

const sqliteSchema = `CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL DEFAULT 0, title TEXT);
CREATE VIEW pv AS SELECT * FROM page_views;
CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER);
CREATE TABLE audited (id INTEGER PRIMARY KEY, n INTEGER);
CREATE TRIGGER audited_t AFTER UPDATE ON audited BEGIN SELECT 1; END;
CREATE TABLE allowed (id INTEGER PRIMARY KEY, n INTEGER);
CREATE TRIGGER allowed_t AFTER UPDATE ON allowed BEGIN SELECT 1; END;
CREATE TABLE parents (id INTEGER PRIMARY KEY);
CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parents(id));
CREATE TABLE emails (id INTEGER PRIMARY KEY, email TEXT UNIQUE);
CREATE TABLE checked (id INTEGER PRIMARY KEY, n INTEGER CHECK (n >= 0));
CREATE TABLE stamped (id INTEGER PRIMARY KEY, at TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE names (name TEXT COLLATE NOCASE PRIMARY KEY, n INTEGER);
CREATE TABLE loose (id INTEGER PRIMARY KEY, code TEXT NOT NULL);
CREATE TABLE floaty (x REAL PRIMARY KEY, n INTEGER)`

func TestCheckSQLite(t *testing.T) {
	db := sqliteDB(t, strings.Split(sqliteSchema, ";\n")...)
	rules := `tables:
  page_views:
    mode: back
    key: page_id
  orders:
    mode: through
  audited:
    mode: back
    key: id
  allowed:
    mode: back
    key: id
    allow: [triggers]
  children:
    mode: back
    key: id
  emails:
    mode: back
    key: id
  checked:
    mode: back
    key: id
  stamped:
    mode: back
    key: id
  names:
    mode: back
    key: name
  loose:
    mode: back
    key: code
  nokeycol:
    mode: back
    key: id
  orders2:
    mode: through
  floaty:
    mode: back
    key: x
`
	rules = strings.Replace(rules, "  nokeycol:\n    mode: back\n    key: id", "  orders_copy:\n    mode: back\n    key: nope", 1)
	execAll(t, openSQLite(t, db), "CREATE TABLE orders_copy (id INTEGER PRIMARY KEY)")
	rep := checkFixture(t, "sqlite3", db, rules, map[string][]want{
		"page_views":  {{inspect.Warning, "views", "views read the table (main.pv)"}},
		"orders":      nil,
		"audited":     {{inspect.Error, "triggers", "table has triggers (audited_t)"}},
		"allowed":     {{inspect.Warning, "triggers", "accepted by allow: [triggers]"}},
		"children":    {{inspect.Error, "foreign_keys", "table has foreign keys"}},
		"emails":      {{inspect.Error, "unique", "unique constraint other than the key"}},
		"checked":     {{inspect.Error, "check", "check constraints (CHECK (n >= 0))"}},
		"stamped":     {{inspect.Error, "defaults", "column at has a default"}},
		"names":       {{inspect.Error, "collation", "case-insensitive collation"}},
		"loose":       {{inspect.Error, "key", "key (code) is not the primary key"}},
		"orders_copy": {{inspect.Error, "key_column", "key column nope does not exist"}},
		"orders2":     {{inspect.Error, "table", "table orders2 does not exist in the database"}},
		"floaty":      {{inspect.Warning, "key_type", "key column x is of type REAL"}},
	})
	buffersAll(t, rep, "page_views", "UPDATE by key", "UPDATE by key, deltas on views", "UPDATE by key guarded by title IS NULL (soft delete)",
		"INSERT", "upsert (ON CONFLICT key DO UPDATE)", "INSERT OR IGNORE", "INSERT OR REPLACE, every column (REPLACE INTO too)", "SELECT by key, without waiting for a flush")
	if yes, no := buffered(rep, "audited"); len(yes)+len(no) != 0 {
		t.Errorf("a table the driver refuses lists buffered statements: %q %v", yes, no)
	}

	// A rules file that fits: exit 0.
	good := writeFile(t, t.TempDir(), "good.yaml", "tables:\n  page_views:\n    mode: back\n    key: page_id\n  orders:\n    mode: through\n")
	out := mustRun(t, exitOK, "check", "driver=sqlite3 rules="+good+" dsn="+db)
	if !strings.Contains(out, "\n0 errors, 2 warnings\n") || !strings.Contains(out, "    yes  INSERT\n") {
		t.Errorf("good rules:\n%s", out)
	}
}

// TestCheckSQLiteBuffersLess: a back table that fits but where some
// statement kinds are not buffered says which and why.
func TestCheckSQLiteBuffersLess(t *testing.T) {
	db := sqliteDB(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, note TEXT, CHECK (n < 100))")
	rules := "tables:\n  t:\n    mode: back\n    key: id\n    allow: [check]\n    rows_affected: assume\n"
	rep := checkFixture(t, "sqlite3", db, rules, map[string][]want{
		"t": {{inspect.Warning, "check", "accepted by allow: [check]"}},
	})
	yes, no := buffered(rep, "t")
	if strings.Join(yes, "|") != "UPDATE by key|UPDATE by key, deltas on n|INSERT|SELECT by key, without waiting for a flush" {
		t.Errorf("buffered: %q", yes)
	}
	for kind, reason := range map[string]string{
		"upsert (ON CONFLICT key DO UPDATE)":                 "CHECK constraints",
		"INSERT OR IGNORE":                                   "rows_affected: exact",
		"UPDATE by key guarded by n IS NULL (soft delete)":   "rows_affected: exact",
		"INSERT OR REPLACE, every column (REPLACE INTO too)": "CHECK constraints",
	} {
		if !strings.Contains(no[kind], reason) {
			t.Errorf("%s: reason %q, want one saying %q (all: %v)", kind, no[kind], reason, no)
		}
	}
}

func openSQLite(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestCheckPostgres(t *testing.T) {
	base := pgSchema(t,
		"CREATE TABLE page_views (page_id bigint PRIMARY KEY, views bigint NOT NULL DEFAULT 0, title text)",
		"CREATE VIEW pv AS SELECT * FROM page_views",
		"CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(12,2))",
		"CREATE TABLE audited (id bigint PRIMARY KEY, n int)",
		"CREATE FUNCTION audited_f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
		"CREATE TRIGGER audited_t BEFORE UPDATE ON audited FOR EACH ROW EXECUTE FUNCTION audited_f()",
		"CREATE TABLE parents (id bigint PRIMARY KEY)",
		"CREATE TABLE children (id bigint PRIMARY KEY, parent bigint REFERENCES parents(id))",
		"CREATE TABLE emails (id bigint PRIMARY KEY, email text UNIQUE)",
		"CREATE TABLE checked (id bigint PRIMARY KEY, n int CHECK (n >= 0))",
		"CREATE TABLE serials (id bigint PRIMARY KEY, seq bigserial)",
		"CREATE TABLE loose (id bigint PRIMARY KEY, code text)",
		"CREATE UNIQUE INDEX loose_code ON loose (code)",
	)
	rules := `tables:
  page_views:
    mode: back
    key: page_id
  orders:
    mode: through
  audited:
    mode: back
    key: id
  children:
    mode: back
    key: id
  emails:
    mode: back
    key: id
  checked:
    mode: back
    key: id
  serials:
    mode: back
    key: id
  loose:
    mode: back
    key: code
  nothere:
    mode: back
    key: id
  parents:
    mode: back
    key: [id, nope]
`
	rep := checkFixture(t, "pgx", base, rules, map[string][]want{
		"page_views": {{inspect.Warning, "views", ".pv)"}},
		"orders":     nil,
		"audited":    {{inspect.Error, "triggers", "table has triggers (audited_t)"}},
		"children":   {{inspect.Error, "foreign_keys", "children_parent_fkey"}},
		"emails":     {{inspect.Error, "unique", "emails_email_key"}},
		"checked":    {{inspect.Error, "check", "CHECK ((n >= 0))"}},
		"serials":    {{inspect.Error, "defaults", "column seq has a default drawn from a sequence"}},
		"loose":      {{inspect.Error, "key", "unique index on (code) but code is nullable"}},
		"nothere":    {{inspect.Error, "table", "table nothere does not exist"}},
		"parents": {
			{inspect.Error, "key_column", "key column nope does not exist"},
			{inspect.Error, "foreign_keys", "children: children_parent_fkey"},
		},
	})
	buffersAll(t, rep, "page_views", "UPDATE by key", "UPDATE by key, deltas on views", "UPDATE by key guarded by title IS NULL (soft delete)",
		"INSERT", "upsert (ON CONFLICT key DO UPDATE)", "INSERT ... ON CONFLICT DO NOTHING", "SELECT by key, without waiting for a flush")
}

func TestCheckRulesFileError(t *testing.T) {
	db := sqliteDB(t, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	rules := "tables:\n  t:\n    mode: back\n    key: id\n    max_loss: often\n"
	path := writeFile(t, t.TempDir(), "bad.yaml", rules)
	dsn := "driver=sqlite3 rules=" + path + " dsn=" + db
	code, out, errOut := runCmd(t, "check", dsn)
	if code != exitProblems || !strings.Contains(out, path+":5: tables.t.max_loss:") || errOut != "" {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep inspect.Report
	if err := json.Unmarshal([]byte(mustRun(t, exitProblems, "check", "-json", dsn)), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Check != "rules_file" || rep.Findings[0].Line != 5 || rep.Errors != 1 {
		t.Errorf("report: %+v", rep)
	}
}

func TestCheckUsage(t *testing.T) {
	out := mustRun(t, exitOK, "check", "-h")
	if !strings.HasPrefix(out, "usage: writeback check") || !strings.Contains(out, "-json") {
		t.Errorf("-h:\n%s", out)
	}
	rules := writeFile(t, t.TempDir(), "r.yaml", "tables: {}\n")
	for _, args := range [][]string{
		{"check"},
		{"check", "a", "b"},
		{"check", "-bogus", "x"},
		{"check", "driver=nope rules=" + rules + " dsn=x"},    // driver not registered
		{"check", "rules=" + rules + " dsn=x"},                // no driver
		{"check", "driver=sqlite3 rules=" + rules + " bad=1"}, // unknown key
	} {
		code, out, errOut := runCmd(t, args...)
		if code != exitUsage || out != "" || errOut == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, a message", args, code, out, errOut)
		}
	}
	// A database that cannot be reached is a connection error.
	rules = writeFile(t, t.TempDir(), "r.yaml", "tables:\n  t:\n    mode: through\n")
	code, _, errOut := runCmd(t, "check", "-timeout", "5s", "driver=pgx rules="+rules+" dsn=host=127.0.0.1 port=1 user=x dbname=x connect_timeout=2")
	if code != exitUsage || !strings.Contains(errOut, "catalog") {
		t.Errorf("unreachable database: exit %d, stderr %q", code, errOut)
	}
}

// TestCheckDecision: a back table without a decision record, or past its
// review date, gets a warning (exit 0); one with a current record none.
func TestCheckDecision(t *testing.T) {
	db := sqliteDB(t, "CREATE TABLE a (id INTEGER PRIMARY KEY, n INTEGER)", "CREATE TABLE b (id INTEGER PRIMARY KEY, n INTEGER)",
		"CREATE TABLE c (id INTEGER PRIMARY KEY, n INTEGER)")
	rules := `tables:
  a:
    mode: back
    key: id
  b:
    mode: back
    key: id
    decision:
      data: counters
      loss_cost: minor
      review: 2020-01-01
  c:
    mode: back
    key: id
    decision: {data: counters, loss_cost: minor, approved_by: me, review: 2999-01-01}
`
	path := writeFile(t, t.TempDir(), "writeback.yaml", rules)
	var rep inspect.Report
	if err := json.Unmarshal([]byte(mustRun(t, exitOK, "check", "-json", "driver=sqlite3 rules="+path+" dsn="+db)), &rep); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "no decision record", "b": "was due for review on 2020-01-01", "c": ""}
	for _, tab := range rep.Tables {
		var got []inspect.Finding
		for _, f := range tab.Findings {
			if f.Check == "decision" {
				got = append(got, f)
			}
		}
		switch w := want[tab.Name]; {
		case w == "" && len(got) != 0:
			t.Errorf("%s: %+v, want no decision finding", tab.Name, got)
		case w != "" && (len(got) != 1 || got[0].Level != inspect.Warning || !strings.Contains(got[0].Message, w)):
			t.Errorf("%s: %+v, want a warning %q", tab.Name, got, w)
		}
	}
	// explain prints the record beside the figures.
	out := mustRun(t, exitOK, "explain", "driver=sqlite3 rules="+path+" dsn="+db)
	for _, w := range []string{"decision record:  none", "    loss cost:      minor", "    note:           the decision record was due for review on 2020-01-01", "    approved by:    me"} {
		if !strings.Contains(out, w) {
			t.Errorf("explain lacks %q:\n%s", w, out)
		}
	}
}
