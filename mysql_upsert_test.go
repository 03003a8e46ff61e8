package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/writeback-go/writeback/internal/inspect"
	"github.com/writeback-go/writeback/internal/testdb"
)

// mysqlUpsertSchema has a table keyed by id alone, a composite key, and a
// table with a second unique key (whose upserts and INSERT IGNOREs go to
// the database: the row could hit either key).
const mysqlUpsertSchema = "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, f BIGINT, note VARCHAR(6), amt DECIMAL(6,2) NOT NULL DEFAULT 0);" +
	"CREATE TABLE pairs (a BIGINT NOT NULL, b VARCHAR(8) COLLATE utf8mb4_nopad_bin NOT NULL, n BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (a, b));" +
	"CREATE TABLE uniq (id BIGINT PRIMARY KEY, code BIGINT UNIQUE, n BIGINT NOT NULL DEFAULT 0);" +
	"INSERT INTO counters (id, n) VALUES (1, 1), (2, 2), (3, 3);" +
	"INSERT INTO uniq (id, code, n) VALUES (1, 1, 1)"

const mysqlUpsertRules = "tables:\n" +
	"  counters:\n    mode: back\n    key: [id]\n    max_loss: 5ms\n" +
	"  pairs:\n    mode: back\n    key: [a, b]\n    max_loss: 5ms\n" +
	"  uniq:\n    mode: back\n    key: [id]\n    max_loss: 5ms\n    allow: [unique]\n"

// TestMySQLUpsertClassification: which upserts and INSERT IGNOREs are
// buffered on MySQL with rows_affected: exact.
func TestMySQLUpsertClassification(t *testing.T) {
	dsn := mysqlDSN(t, "upcls")
	direct, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, mysqlUpsertSchema+";CREATE TABLE child (id BIGINT PRIMARY KEY, p BIGINT NOT NULL, n BIGINT NOT NULL DEFAULT 0, FOREIGN KEY (p) REFERENCES counters (id))")
	rules := strings.Replace(mysqlUpsertRules, "key: [id]\n    max_loss: 5ms\n", "key: [id]\n    max_loss: 5ms\n    allow: [foreign_keys]\n", 1) + "  child:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    allow: [foreign_keys]\n"
	_, cn := openWritebackWith(t, "mysql", dsn, rules)
	for _, c := range []struct {
		q        string
		buffered bool
	}{
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", true},
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = VALUES(n) + n", true},
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = counters.n + ?", true},
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n - ?", true},
		{"INSERT INTO counters (id, n, note) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = VALUES(n), note = ?", true},
		{"INSERT INTO counters (id, n) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE n = n + 1", true},
		// MySQL 8's row alias (MariaDB refuses the syntax; the parse is shared)
		{"INSERT INTO counters (id, n) VALUES (?, ?) AS new ON DUPLICATE KEY UPDATE n = n + new.n", true},
		{"INSERT INTO counters (id, n) VALUES (?, ?) AS new ON DUPLICATE KEY UPDATE n = counters.n + new.n", true},
		{"INSERT INTO counters (id, n) VALUES (?, ?) AS new (i, m) ON DUPLICATE KEY UPDATE n = n + m", false},
		{"INSERT INTO counters (id, n) VALUES (?, ?) AS counters ON DUPLICATE KEY UPDATE n = n + counters.n", false},
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n * 2", false},
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n - VALUES(n)", false},
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(f)", false},         // another column's
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE f = f + VALUES(f)", false},         // f is not inserted: its default
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE id = VALUES(id) + 1", false},       // the key
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE note = 'x', NOTE = 'y'", false},    // one column twice
		{"INSERT INTO counters (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = counters.n + 1", false}, // not MySQL's
		{"INSERT INTO uniq (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + 1", false},                     // another unique key
		{"INSERT INTO pairs (a, b, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", true},
		{"INSERT IGNORE INTO counters (id, n) VALUES (?, ?)", true},
		{"INSERT IGNORE INTO counters (id, n) VALUES (?, ?), (?, ?)", true},
		{"INSERT IGNORE INTO uniq (id, n) VALUES (?, ?)", false},
		{"INSERT IGNORE INTO child (id, p) VALUES (?, ?)", false}, // a missing parent is skipped too
		{"INSERT INTO child (id, p, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + 1", true},
		{"INSERT IGNORE INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = 1", false},
		{"REPLACE INTO counters (id, n) VALUES (?, ?)", false},
	} {
		d := (&inspection{cn: cn}).Explain(c.q)
		if got := d.Verdict == inspect.Buffered; got != c.buffered {
			t.Errorf("%s: verdict %v (%s), want buffered %v", c.q, d.Verdict, d.Reason, c.buffered)
		}
	}
}

// TestMySQLUpsertExact: the forms one by one against rows that exist, do
// not, are buffered, or are being inserted by the same statement; every
// RowsAffected and error as MySQL gives them (clientFoundRows=true), and
// the final tables.
func TestMySQLUpsertExact(t *testing.T) {
	for _, params := range []string{"clientFoundRows=true", ""} {
		t.Run("params="+params, func(t *testing.T) { mysqlUpsertExact(t, params) })
	}
}

// mysqlUpsertExact is TestMySQLUpsertExact on connections opened with
// params: a row an upsert leaves as it was counts 1 with
// clientFoundRows=true, 0 without.
func mysqlUpsertExact(t *testing.T, params string) {
	rules := strings.ReplaceAll(mysqlUpsertRules, "5ms", "1h")
	var dbs [2]*sql.DB
	var dsns [2]string
	for i, prefix := range []string{"uxdirect", "uxwb"} {
		dsns[i] = testdb.MySQLDatabase(t, prefix, params)
		db, err := sql.Open("mysql", dsns[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		execAll(t, db, mysqlUpsertSchema)
		dbs[i] = db
	}
	wb, c := openWritebackWith(t, "mysql", dsns[1], rules)
	if want := map[string]int8{"clientFoundRows=true": 1, "": 0}[params]; c.foundRows != want {
		t.Fatalf("foundRows %d, want %d (read from the go-sql-driver/mysql connector)", c.foundRows, want)
	}
	p := &oraclePair{direct: dbs[0], wb: wb, conn: c, ph: func(int) string { return "?" }}
	ex := func(q string, args ...any) oracleStep { return oracleStep{query: q, args: args} }
	rd := func(q string) oracleStep { return oracleStep{query: q, read: true} }
	const addValues = "INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)"
	before := p.conn.Stats().Buffered
	p.run(t,
		ex(addValues, 1, 5),  // exists: 2
		ex(addValues, 1, 5),  // buffered: 2
		ex(addValues, 9, 5),  // absent: 1
		ex(addValues, 9, 5),  // buffered as an upsert: 2
		ex(addValues, 1, 0),  // + 0: matched, unchanged: 1
		ex(addValues, 10, 0), // absent: 1
		ex("INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + ?", 2, 7, 3),
		ex("INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n - ?", 2, 7, 1),
		ex("INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = VALUES(n)", 3, 30), // exists: depends on the value
		ex("INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = VALUES(n)", 11, 30),
		ex("INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = ?", 12, 1, 2),
		ex("INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = ?", 12, 1, 2),
		ex("INSERT INTO counters (id, n, note) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + 1, note = VALUES(note)", 1, 1, "abc"),
		ex("INSERT INTO counters (id, n, note) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + 1, note = VALUES(note)", 1, 1, "toolong"), // refused
		ex("INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", 13, nil),                               // NULL into NOT NULL
		ex("INSERT INTO counters (id, f) VALUES (?, ?) ON DUPLICATE KEY UPDATE f = f + VALUES(f)", 1, 4),                                  // NULL + 4: unchanged
		ex("INSERT INTO counters (id, amt) VALUES (?, ?) ON DUPLICATE KEY UPDATE amt = amt + VALUES(amt)", 1, 2),
		ex("INSERT INTO counters (id, amt) VALUES (?, ?) ON DUPLICATE KEY UPDATE amt = amt + VALUES(amt)", 14, 2),
		// several rows: 1 and 2 each, a key twice, a key known and one unknown
		ex("INSERT INTO counters (id, n) VALUES (?, ?), (?, ?), (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", 1, 1, 20, 1, 9, 1),
		ex("INSERT INTO counters (id, n) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", 21, 1, 21, 1),
		ex("INSERT INTO counters (id, n) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", 22, 1, 3, 1),
		// then UPDATE, INSERT of upserted keys
		ex("UPDATE counters SET n = n + 1 WHERE id = ?", 9),
		ex("INSERT INTO counters (id, n) VALUES (?, ?)", 10, 1), // a duplicate
		ex("INSERT INTO counters (id, n) VALUES (?, ?)", 30, 1),
		ex(addValues, 30, 4), // after a buffered INSERT: 2
		// composite keys
		ex("INSERT INTO pairs (a, b, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", 1, "x", 1),
		ex("INSERT INTO pairs (a, b, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", 1, "x", 1),
		ex("INSERT INTO pairs (a, b, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", 1, "x ", 1),
		// another unique key: to the database
		ex("INSERT INTO uniq (id, code, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + 1", 2, 1, 1),
		ex("INSERT IGNORE INTO uniq (id, code, n) VALUES (?, ?, ?)", 3, 1, 1),
		// INSERT IGNORE
		ex("INSERT IGNORE INTO counters (id, n) VALUES (?, ?)", 1, 1),                 // exists: 0
		ex("INSERT IGNORE INTO counters (id, n) VALUES (?, ?)", 40, 1),                // 1
		ex("INSERT IGNORE INTO counters (id, n) VALUES (?, ?)", 40, 1),                // buffered: 0
		ex("INSERT IGNORE INTO counters (id, n) VALUES (?, ?), (?, ?)", 40, 1, 41, 1), // 1
		ex("INSERT IGNORE INTO counters (id, n) VALUES (?, ?), (?, ?)", 42, 1, 43, 1), // 2
		ex("INSERT IGNORE INTO counters (id, n) VALUES (?, ?), (?, ?)", 44, 1, 44, 2), // a key twice: 1
		ex("INSERT IGNORE INTO counters (id, note) VALUES (?, ?)", 45, "toolong"),     // truncated with a warning
		ex("INSERT IGNORE INTO counters (id, n) VALUES (?, ?)", 46, nil),              // NULL into NOT NULL: 0 with a warning
		ex("INSERT IGNORE INTO counters (id, amt) VALUES (?, ?)", 47, "12345.5"),      // out of range: clipped
		ex("INSERT IGNORE INTO counters (id, amt) VALUES (?, ?)", 48, "1.5"),
		ex("UPDATE counters SET n = n + 1 WHERE id = ?", 48),
		rd("SELECT id, n, f, note, amt FROM counters ORDER BY id"),
		rd("SELECT a, b, n FROM pairs ORDER BY a, b"),
	)
	p.same(t, "counters", "pairs", "uniq")
	if got := p.conn.Stats().Buffered - before; got < 20 {
		t.Errorf("buffered %d statements, want most", got)
	}
}

// TestMySQLUpsertOracle runs random sequences of upserts (each form), INSERT
// IGNOREs, INSERTs, UPDATEs and DELETEs directly and through writeback
// (flushes every few milliseconds for odd seeds; for even ones an explicit
// flush every 50 statements, so that writes to a key coalesce) and compares
// every result and the final tables; it checks that upserts and INSERT
// IGNOREs were buffered.
func TestMySQLUpsertOracle(t *testing.T) {
	total := map[string]int{}
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			for k, n := range mysqlUpsertOracle(t, seed) {
				total[k] += n
			}
		})
	}
	// Whether a write is buffered depends on the flushes' timing: counted
	// over every seed.
	if !t.Failed() && (total["upsert"] < 100 || total["ignore"] == 0) {
		t.Errorf("buffered %v: want upserts and INSERT IGNOREs among them", total)
	}
}

// mysqlUpsertOracle runs one sequence and returns how many statements of
// each kind were buffered.
func mysqlUpsertOracle(t *testing.T, seed uint64) map[string]int {
	rules := mysqlUpsertRules
	if seed%2 == 0 {
		rules = strings.ReplaceAll(rules, "5ms", "1h")
	}
	p := newOraclePair(t, "mysql", mysqlUpsertSchema, rules)
	r := rand.New(rand.NewPCG(seed, 11))
	key := func() int64 { return 1 + r.Int64N(8) }
	forms := []string{
		"n = n + VALUES(n)", "n = VALUES(n) + n", "n = n + ?", "n = n - ?", "n = VALUES(n)", "n = ?",
		"n = n + VALUES(n), note = VALUES(note)", "n = n + 1, amt = amt + VALUES(amt)",
	}
	type stmt struct {
		q    string
		args []any
	}
	upsert := func() stmt {
		form := forms[r.IntN(len(forms))]
		rows := 1 + r.IntN(3)
		var args []any
		for range rows {
			args = append(args, key(), r.Int64N(4)-1, []string{"a", "bb", "", "toolong"}[r.IntN(4)], r.Int64N(3))
		}
		if strings.Contains(form, "?") {
			args = append(args, r.Int64N(3))
		}
		vals := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", rows), ", ")
		return stmt{q: "INSERT INTO counters (id, n, note, amt) VALUES " + vals + " ON DUPLICATE KEY UPDATE " + form, args: args}
	}
	pick := func() stmt {
		k, d := key(), r.Int64N(4)-1
		switch r.IntN(12) {
		case 0, 1, 2, 3:
			return upsert()
		case 4:
			return stmt{q: "INSERT IGNORE INTO counters (id, n) VALUES (?, ?)", args: []any{k, d}}
		case 5:
			return stmt{q: "INSERT IGNORE INTO counters (id, n, note) VALUES (?, ?, ?), (?, ?, ?)", args: []any{k, d, "x", key(), d, []string{"y", "toolong"}[r.IntN(2)]}}
		case 6:
			return stmt{q: "UPDATE counters SET n = n + ? WHERE id = ?", args: []any{d, k}}
		case 7:
			return stmt{q: "INSERT INTO counters (id, n) VALUES (?, ?)", args: []any{k, d}}
		case 8:
			if r.IntN(3) == 0 {
				return stmt{q: "DELETE FROM counters WHERE id = ?", args: []any{k}}
			}
			return stmt{q: "UPDATE counters SET note = ? WHERE id = ?", args: []any{fmt.Sprint("v", d), k}}
		case 9:
			return stmt{q: "INSERT INTO pairs (a, b, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", args: []any{k % 3, []string{"x", "y"}[r.IntN(2)], d}}
		case 10:
			return stmt{q: "INSERT INTO uniq (id, code, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", args: []any{k, key(), d}}
		default:
			return stmt{q: "SELECT id, n, note, amt FROM counters ORDER BY id"}
		}
	}
	run := func(db *sql.DB, s stmt) string {
		if strings.HasPrefix(s.q, "SELECT") {
			rows, err := db.Query(s.q)
			if err != nil {
				return "error"
			}
			defer rows.Close()
			return strings.Join(scanAll(t, rows), "|")
		}
		res, err := db.Exec(s.q, s.args...)
		if err != nil {
			return "error"
		}
		n, err := res.RowsAffected()
		if err != nil {
			return "rows: " + err.Error()
		}
		return fmt.Sprint(n)
	}
	buffered := map[string]int{}
	for i := 0; i < 400; i++ {
		if seed%2 == 0 && i%50 == 49 {
			if err := p.conn.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		s := pick()
		want := run(p.direct, s)
		before := p.conn.Stats().Buffered
		got := run(p.wb, s)
		if got != want {
			t.Fatalf("step %d %s %v:\nthrough writeback: %s\ndirectly:          %s", i, s.q, s.args, got, want)
		}
		if p.conn.Stats().Buffered > before {
			kind := strings.Fields(s.q)[0]
			switch {
			case strings.Contains(s.q, "DUPLICATE"):
				kind = "upsert"
			case strings.Contains(s.q, "IGNORE"):
				kind = "ignore"
			}
			buffered[kind]++
		}
	}
	p.same(t, "counters", "pairs", "uniq")
	st := p.conn.Stats()
	t.Logf("buffered by statement: %v; coalesced %d, probes %d, dead letters %d", buffered, st.Coalesced, st.Probes, st.DeadLetters)
	if st.DeadLetters != 0 {
		t.Errorf("%d dead letters", st.DeadLetters)
	}
	return buffered
}

// TestMySQLUpsertPoisonRow: an upsert whose row the database refuses at
// flush (a missing parent of a foreign key, which allow: [foreign_keys]
// leaves to the flush) is a dead letter alone, with its update part; the
// other rows of the flush, inserted and updated, are written.
func TestMySQLUpsertPoisonRow(t *testing.T) {
	dsn := mysqlDSN(t, "uppoison")
	direct, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE parent (id BIGINT PRIMARY KEY);"+
		"CREATE TABLE child (id BIGINT PRIMARY KEY, p BIGINT NOT NULL, n BIGINT NOT NULL DEFAULT 0, FOREIGN KEY (p) REFERENCES parent (id));"+
		"INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (10, 1, 5)")
	var letters []DeadLetter
	var mu sync.Mutex
	db, cn := openWritebackWith(t, "mysql", dsn, "tables:\n  child:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    allow: [foreign_keys]\n",
		WithOnDeadLetter(func(d DeadLetter) { mu.Lock(); letters = append(letters, d); mu.Unlock() }))
	const q = "INSERT INTO child (id, p, n) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)"
	for _, args := range [][]any{{10, 1, 2}, {11, 2, 3}, {12, 99, 4}, {13, 1, 1}, {12, 99, 1}} {
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	if st := cn.Stats(); st.Buffered != 5 {
		t.Fatalf("buffered %d of 5 upserts", st.Buffered)
	}
	_ = cn.Flush(context.Background())
	rows, err := direct.Query("SELECT id, p, n FROM child ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(scanAll(t, rows), "|")
	rows.Close()
	if want := "10|1|7|11|2|3|13|1|1"; got != want {
		t.Fatalf("child %s, want %s", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(letters) != 1 || letters[0].Op != "upsert" || fmt.Sprint(letters[0].Key) != "[12]" ||
		fmt.Sprint(letters[0].UpdateColumns, letters[0].UpdateValues, letters[0].UpdateDelta) != "[n] [5] [true]" {
		t.Fatalf("dead letters %+v, want the upsert of key 12 with n += 5", letters)
	}
}
