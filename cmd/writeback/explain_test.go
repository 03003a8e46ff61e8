package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/writeback-go/writeback/internal/inspect"
)

// decision is what explain must say of one statement.
type decision struct {
	sql     string
	verdict string
	reason  string // part of the reason
	waits   string // the tables waited for, joined by ","
}

// explainAll runs explain on the cases in one call, in JSON and in text,
// and compares each decision.
func explainAll(t *testing.T, dsn string, cases []decision) {
	t.Helper()
	args := []string{"explain", "-json", dsn}
	for _, c := range cases {
		args = append(args, c.sql)
	}
	var ds []inspect.Decision
	if err := json.Unmarshal([]byte(mustRun(t, exitOK, args...)), &ds); err != nil {
		t.Fatalf("-json output does not parse: %v", err)
	}
	if len(ds) != len(cases) {
		t.Fatalf("%d decisions for %d statements", len(ds), len(cases))
	}
	for i, c := range cases {
		d := ds[i]
		if d.SQL != c.sql || d.Verdict != c.verdict || !strings.Contains(d.Reason, c.reason) || strings.Join(d.Waits, ",") != c.waits {
			t.Errorf("%s\n  got  %s: %s (waits for %q)\n  want %s: ...%s... (waits for %q)", c.sql, d.Verdict, d.Reason, d.Waits, c.verdict, c.reason, c.waits)
		}
	}
	text := mustRun(t, exitOK, append([]string{"explain"}, args[2:]...)...)
	for i, c := range cases {
		if want := c.sql + "\n  " + ds[i].Verdict + ": " + ds[i].Reason + "\n"; !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
}

func TestExplainSQLite(t *testing.T) {
	db := sqliteDB(t,
		"CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL DEFAULT 0, title TEXT, deleted_at TEXT)",
		"CREATE VIEW pv AS SELECT * FROM page_views",
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)",
		"CREATE TABLE feed (id INTEGER PRIMARY KEY, n INTEGER)",
		"CREATE TABLE logs (id INTEGER PRIMARY KEY, line TEXT)",
	)
	rules := writeFile(t, t.TempDir(), "writeback.yaml", `tables:
  page_views:
    mode: back
    key: page_id
  feed:
    mode: back
    key: id
    reads: stale
  orders:
    mode: through
`)
	dsn := "driver=sqlite3 rules=" + rules + " dsn=" + db
	explainAll(t, dsn, []decision{
		{"UPDATE page_views SET views = views + 1 WHERE page_id = ?", inspect.Buffered, "UPDATE by key (page_id) of page_views: a delta on views", ""},
		{"UPDATE page_views SET title = ?, views = views - 2 WHERE page_id = 7", inspect.Buffered, "an assignment of title, a delta on views", ""},
		{"INSERT INTO page_views (page_id, views) VALUES (?, ?), (?, ?)", inspect.Buffered, "INSERT of 2 rows with the key (page_id) into page_views", ""},
		{"INSERT INTO page_views (page_id, views) VALUES (?, 1) ON CONFLICT (page_id) DO UPDATE SET views = views + excluded.views", inspect.Buffered, "upsert of 1 row into page_views", ""},
		{"INSERT OR IGNORE INTO page_views (page_id) VALUES (?)", inspect.Buffered, "skips an existing key", ""},
		{"INSERT OR REPLACE INTO page_views (page_id, views, title, deleted_at) VALUES (?, ?, ?, ?)", inspect.Buffered, "REPLACE of 1 row into page_views", ""},
		{"REPLACE INTO page_views (page_id, views) VALUES (?, ?)", inspect.Barrier, "REPLACE does not list column title (REPLACE gives it its default", "page_views"},
		{"UPDATE page_views SET views = views + 1 WHERE page_id = ? AND deleted_at IS NULL", inspect.Buffered, "guarded by deleted_at IS NULL", ""},
		{"UPDATE page_views SET views = max(views, ?) WHERE page_id = ?", inspect.Buffered, "GREATEST on views", ""},
		{"UPDATE page_views SET views = 0 WHERE page_id = 1 OR page_id = 2", inspect.Barrier, "WHERE has OR", "page_views"},
		{"UPDATE page_views SET views = 0 WHERE views > 10", inspect.Barrier, "WHERE has a condition other than column = value", "page_views"},
		{"UPDATE page_views SET title = upper(title) WHERE page_id = ?", inspect.Barrier, "SET title = ...: a call of upper()", "page_views"},
		{"UPDATE page_views SET title = title + 1 WHERE page_id = ?", inspect.Barrier, "a delta on column title, of type TEXT, which is not numeric", "page_views"},
		{"UPDATE page_views SET views = views + 0.1 WHERE page_id = ?", inspect.Barrier, "the decimal 0.1 for column views", "page_views"},
		{"INSERT INTO page_views (views) VALUES (1)", inspect.Barrier, "the INSERT does not set key column page_id", "page_views"},
		{"INSERT INTO page_views (page_id) VALUES (?) RETURNING views", inspect.Barrier, "RETURNING asks for what only the database knows", "page_views"},
		{"INSERT INTO page_views (page_id) VALUES (?) RETURNING page_id", inspect.Buffered, "INSERT of 1 row with the key (page_id) into page_views", ""},
		{"UPDATE page_views SET title = CURRENT_TIMESTAMP WHERE page_id = ?", inspect.Buffered, "an assignment of title", ""},
		{"UPDATE page_views SET views = datetime('now') WHERE page_id = ?", inspect.Barrier, "the current time for column views", "page_views"},
		{"UPDATE page_views SET views = 1 WHERE page_id = ?; DELETE FROM orders", inspect.Barrier, "several statements in one text", "page_views"},
		{"DELETE FROM page_views WHERE page_id = 3", inspect.Barrier, "DELETE: only UPDATE and INSERT", "page_views"},
		{"SELECT count(*) FROM page_views", inspect.Barrier, "reads page_views", "page_views"},
		{"SELECT * FROM pv", inspect.Barrier, "reads page_views", "page_views"},
		{"SELECT views FROM page_views WHERE page_id = ?", inspect.ReadByKey, "without waiting for a flush", ""},
		{"SELECT n FROM feed", inspect.Through, "reads feed, which has reads: stale", ""},
		{"UPDATE orders SET total = 1 WHERE id = ?", inspect.Through, "table orders is mode: through", ""},
		{"UPDATE logs SET line = 'x' WHERE id = 1", inspect.Through, "table logs is not in the rules", ""},
		{"BEGIN", inspect.Barrier, "begins a transaction, which starts after every back table is flushed", "feed,page_views"},
		{"PRAGMA foreign_keys = ON", inspect.Through, "changes a session setting (foreign_keys)", ""},
		{"PRAGMA busy_timeout = 100", inspect.Through, "PRAGMA: only UPDATE and INSERT", ""},
		{"ALTER TABLE page_views ADD COLUMN x INTEGER", inspect.Barrier, "changes the schema", "page_views"},
		{"UPDATE page_views SET views = 1 WHERE page_id = $1", inspect.Buffered, "an assignment of views", ""},
	})
}

func TestExplainPostgres(t *testing.T) {
	base := pgSchema(t,
		"CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL DEFAULT 0, amount numeric(12,2), note varchar(10))",
		"CREATE TABLE payments (id bigint PRIMARY KEY, total numeric)",
	)
	rules := writeFile(t, t.TempDir(), "writeback.yaml", "tables:\n  counters:\n    mode: back\n    key: id\n    ack: disk\njournal:\n  path: j\n")
	dsn := "driver=pgx rules=" + rules + " dsn=" + base
	explainAll(t, dsn, []decision{
		{"UPDATE counters SET n = n + $1::bigint WHERE id = $2", inspect.Buffered, "a delta on n (ack: disk: Exec returns once its journal record is fsynced)", ""},
		{"UPDATE counters SET n = n + $1::int WHERE id = $2", inspect.Barrier, "a cast to int for column n of type bigint", "counters"},
		{"UPDATE counters SET n = n + ? WHERE id = ?", inspect.Barrier, "PostgreSQL has no ? or :name placeholders", "counters"},
		{"UPDATE counters SET n = GREATEST(n, $1) WHERE id = $2", inspect.Buffered, "GREATEST on n", ""},
		{"UPDATE counters SET amount = amount + 1.005 WHERE id = $1", inspect.Barrier, "the delta 1.005 for column amount of type numeric(12,2), which Exec sends to the database", "counters"},
		{"UPDATE counters SET note = 'far too long a note' WHERE id = 1", inspect.Barrier, "the value far too long a note for column note of type character varying(10)", "counters"},
		{"INSERT INTO counters (id, n) VALUES ('x', 1)", inspect.Barrier, "the key value x for column id of type bigint", "counters"},
		{"UPDATE counters SET n = $1, note = $1 WHERE id = $2", inspect.Barrier, "placeholder 1 is used for columns of two types", "counters"},
		{"INSERT INTO counters (id, n) VALUES ($1, 1) ON CONFLICT (id) DO NOTHING", inspect.Buffered, "skips an existing key (id)", ""},
		{"INSERT INTO counters (id, n) VALUES ($1, 1) ON CONFLICT ON CONSTRAINT counters_pkey DO NOTHING", inspect.Barrier, "ON CONFLICT ON CONSTRAINT", "counters"},
		{"UPDATE counters SET n = n + 1 FROM payments WHERE counters.id = payments.id", inspect.Barrier, "UPDATE ... FROM (a join)", "counters"},
		{"UPDATE payments SET total = total + 1 WHERE id = $1", inspect.Through, "table payments is not in the rules", ""},
		{"SET TIME ZONE 'UTC'", inspect.Through, "changes a session setting", ""},
		{"BEGIN", inspect.Through, "begins a transaction: nothing is buffered on the connection until it ends", ""},
	})
}

func TestExplainDurability(t *testing.T) {
	dir := t.TempDir()
	noJournal := writeFile(t, dir, "a.yaml", `tables:
  page_views:
    mode: back
    key: page_id
    max_loss: 2s
    max_dirty: 300
  orders:
    mode: through
`)
	// No database is needed without SQL: the base DSN is never opened.
	dsn := "driver=sqlite3 rules=" + noJournal + " dsn=" + dir + "/none.db"
	rate, keys := 5000.0, 200.0
	out := mustRun(t, exitOK, "explain", "-rate", "page_views=5000/s", "-keys", "page_views=12000/min", dsn)
	writes := int64(math.Ceil(rate * 2))
	rows := min(int64(math.Ceil(keys*2)), writes, 2*300)
	for _, want := range []string{
		"rules " + noJournal + ", no journal",
		fmt.Sprintf("page_views  5000/s    200/s   2s        memory  none     %d", writes),
		fmt.Sprintf("process crash:    up to %d writes (the last 2s of writes, in at most %d rows)", writes, rows),
		fmt.Sprintf("power loss:       up to %d writes", writes),
		"database outage:  a crash during one loses every write buffered since the outage began, up to 600 rows (2 × max_dirty)",
		"residual risk:    Any crash of the process or the machine",
		"coalescing:       25 writes per key written",
		"1. What does losing the writes at risk above cost?",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "orders (") {
		t.Errorf("a through table is in the figures:\n%s", out)
	}

	journaled := writeFile(t, dir, "b.yaml", `journal:
  path: j
  fsync: everysec
tables:
  views:
    mode: back
    key: id
    max_loss: 5s
  carts:
    mode: back
    key: id
    ack: disk
`)
	var risks []tableRisk
	if err := json.Unmarshal([]byte(mustRun(t, exitOK, "explain", "-json", "-rate", "views=100", "driver=sqlite3 rules="+journaled+" dsn=x")), &risks); err != nil {
		t.Fatal(err)
	}
	if len(risks) != 2 {
		t.Fatalf("risks: %+v", risks)
	}
	v, c := risks[0], risks[1]
	if v.Table != "views" || *v.Writes != 500 || *v.Rows != 500 || !strings.HasPrefix(v.Crash, "nothing") ||
		!strings.Contains(v.Power, "up to about 100 writes (about 1 s;") || !strings.Contains(v.Host, "up to 500 writes") || v.Journal != "fsync: everysec" {
		t.Errorf("views: %+v", v)
	}
	if c.Table != "carts" || c.Writes != nil || !strings.HasPrefix(c.Power, "nothing: Exec returns once the write's journal record is fsynced") ||
		!strings.Contains(c.Host, "up to the last 1s of writes") || c.Ack != "disk" {
		t.Errorf("carts: %+v", c)
	}

	for _, args := range [][]string{
		{"explain", "-rate", "orders=5", dsn},                              // not a back table
		{"explain", "-rate", "page_views=5", "-keys", "page_views=6", dsn}, // more keys than writes
		{"explain", "-rate", "page_views=fast", dsn},
		{"explain", "-rate", "page_views=5/day", dsn},
		{"explain", "-rate", "page_views=5", dsn, "SELECT 1"},
		{"explain"},
	} {
		code, out, errOut := runCmd(t, args...)
		if code != exitUsage || out != "" || errOut == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, nothing, a message", args, code, out, errOut)
		}
	}
}

func TestExplainUsage(t *testing.T) {
	out := mustRun(t, exitOK, "explain", "-h")
	if !strings.HasPrefix(out, "usage: writeback explain") || !strings.Contains(out, "-rate") {
		t.Errorf("-h:\n%s", out)
	}
	// A rules file with an error is a problem found.
	bad := writeFile(t, t.TempDir(), "bad.yaml", "tables:\n  t:\n    mode: sideways\n")
	code, _, errOut := runCmd(t, "explain", "driver=sqlite3 rules="+bad+" dsn=x")
	if code != exitProblems || !strings.Contains(errOut, bad+":3: tables.t.mode") {
		t.Errorf("bad rules: exit %d, stderr %q", code, errOut)
	}
}
