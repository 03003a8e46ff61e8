package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/writeback-go/writeback/internal/inspect"
	"github.com/writeback-go/writeback/internal/testdb"
)

// mysqlDSN creates a fresh database on the MySQL (MariaDB) test server and
// returns its DSN. clientFoundRows=true makes an UPDATE's RowsAffected the
// rows it matched, as writeback reports for a buffered UPDATE (MySQL's
// default counts only the rows it changed).
func mysqlDSN(t testing.TB, prefix string) string {
	t.Helper()
	return testdb.MySQLDatabase(t, prefix, "clientFoundRows=true")
}

// mysqlTypes rewrites a test schema written for PostgreSQL and SQLite into
// MySQL's types: TEXT, which MySQL cannot index whole, becomes a VARCHAR
// with an exact collation (binary, NO PAD), as a text key must have.
func mysqlTypes(schema string) string {
	return strings.ReplaceAll(schema, " TEXT", " VARCHAR(255) COLLATE utf8mb4_nopad_bin")
}

// diffSchemaMySQL is diffSchema in MySQL's types: a text key must be a
// VARCHAR with an exact (binary, NO PAD) collation.
const diffSchemaMySQL = `
CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL DEFAULT 0, label TEXT);
CREATE TABLE pairs (a BIGINT NOT NULL, b VARCHAR(20) COLLATE utf8mb4_nopad_bin NOT NULL, n BIGINT, PRIMARY KEY (a, b));
CREATE TABLE events (id BIGINT PRIMARY KEY, kind TEXT NOT NULL, amount BIGINT NOT NULL)`

func TestDifferentialMySQL(t *testing.T) {
	diffSubtests(t, "mysql", mysqlDSN, "diffd", "diffw", diffRules, func(t *testing.T, direct, wb *sql.DB, seed uint64) {
		runDifferentialSchema(t, direct, wb, false, seed, diffOps(), diffSchemaMySQL)
	})
}

func TestPoisonRowMySQL(t *testing.T) {
	poisonRow(t, "mysql", mysqlDSN(t, "poison"), func(int) string { return "?" })
}

// TestMySQLOpenRefusesInexactKeys: a text key under a collation that takes
// two spellings as one key (MySQL's defaults ignore case, accents and
// trailing spaces) is refused at open, with the column and collation named;
// the exact collations, VARBINARY and integers are taken.
func TestMySQLOpenRefusesInexactKeys(t *testing.T) {
	dsn := mysqlDSN(t, "collation")
	direct, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE ci (k VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, n BIGINT NOT NULL);"+
		"CREATE TABLE padded (k VARCHAR(20) COLLATE utf8mb4_bin PRIMARY KEY, n BIGINT NOT NULL);"+
		"CREATE TABLE exact (k VARCHAR(20) COLLATE utf8mb4_nopad_bin PRIMARY KEY, n BIGINT NOT NULL);"+
		"CREATE TABLE bytes (k VARBINARY(20) PRIMARY KEY, n BIGINT NOT NULL);"+
		"CREATE TABLE stamped (id BIGINT PRIMARY KEY, n BIGINT NOT NULL, at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)")
	open := func(table, key string) error {
		path := filepath.Join(t.TempDir(), table+".yaml")
		if err := os.WriteFile(path, []byte("tables:\n  "+table+":\n    mode: back\n    key: ["+key+"]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("writeback", "driver=mysql rules="+path+" dsn="+dsn)
		if err != nil {
			return err // the rules are checked against the catalog at open
		}
		defer db.Close()
		return db.Ping()
	}
	for _, c := range []struct{ table, want string }{
		{"ci", "key column k has a case-insensitive collation (varchar utf8mb4_general_ci)"},
		{"padded", "utf8mb4_bin, which ignores trailing spaces (PAD SPACE)"},
	} {
		err := open(c.table, "k")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: open error %v; want one containing %q", c.table, err, c.want)
		}
	}
	for _, table := range []string{"exact", "bytes"} {
		if err := open(table, "k"); err != nil {
			t.Errorf("%s: %v", table, err)
		}
	}
	if err := open("stamped", "id"); err == nil || !strings.Contains(err.Error(), "on update current_timestamp") {
		t.Errorf("stamped: open error %v; want the ON UPDATE column refused like a trigger", err)
	}
}

// TestMySQLClassification: what the mysql dialect buffers, end to end.
func TestMySQLClassification(t *testing.T) {
	dsn := mysqlDSN(t, "classify")
	direct, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE c (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, Note VARCHAR(20))")
	_, cn := openWritebackWith(t, "mysql", dsn, "tables:\n  c:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    rows_affected: assume\n")
	if got := cn.dia.Kind().String(); got != "mysql" {
		t.Fatalf("dialect %s, want mysql (detected from go-sql-driver/mysql)", got)
	}
	for _, c := range []struct {
		q        string
		buffered bool
	}{
		{"UPDATE c SET n = n + ? WHERE id = ?", true},
		{"UPDATE `c` SET `NOTE` = ?, `n` = `n` + 1 WHERE `ID` = ?", true}, // column names ignore case
		// conservative: the classifier reads N = n + 1 as another column's value
		{"UPDATE `c` SET `N` = `n` + 1 WHERE `ID` = ?", false},
		{"UPDATE c SET note = ?, NOTE = ? WHERE id = ?", false}, // one column twice
		{`UPDATE "c" SET n = ? WHERE id = ?`, false},            // "c" is a string
		{"UPDATE C SET n = ? WHERE id = ?", false},              // C may be another table
		{"UPDATE c SET n = $1 WHERE id = $2", false},
		{"UPDATE c SET note = 'a\\'b' WHERE id = ?", false}, // a backslash escape
		{"INSERT INTO c (id, n) VALUES (?, ?)", true},
		{"INSERT IGNORE INTO c (id, n) VALUES (?, ?)", false},
		{"INSERT INTO c (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", false},
		{"REPLACE INTO c (id, n) VALUES (?, ?)", false},
	} {
		d := (&inspection{cn: cn}).Explain(c.q)
		if got := d.Verdict == inspect.Buffered; got != c.buffered {
			t.Errorf("%s: verdict %v (%s), want buffered %v", c.q, d.Verdict, d.Reason, c.buffered)
		}
	}
}

// TestMySQLExact is the exact oracle on MySQL's own types and statements:
// the same statements directly and through writeback give the same errors,
// RowsAffected, reads and final tables — unsigned and small integers at
// their limits, DECIMAL, a NO PAD text key with trailing spaces, integer keys
// spelled as text, too-long text and NULL into NOT NULL refused at Exec, and
// INSERT IGNORE, REPLACE and ON DUPLICATE KEY UPDATE (which go to the
// database) between buffered writes of the same rows.
func TestMySQLExact(t *testing.T) {
	const schema = "CREATE TABLE u (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, n INT UNSIGNED NOT NULL DEFAULT 0, s TINYINT NOT NULL DEFAULT 0, " +
		"price DECIMAL(8,2), label VARCHAR(5), at DATETIME(6));" +
		"CREATE TABLE k (code VARCHAR(10) COLLATE utf8mb4_nopad_bin NOT NULL PRIMARY KEY, hits BIGINT NOT NULL DEFAULT 0);" +
		"INSERT INTO u (id, n) VALUES (1, 0), (2, 5);" +
		"INSERT INTO k (code) VALUES ('a'), ('a ')"
	rules := "tables:\n  u:\n    mode: back\n    key: [id]\n    max_loss: 1h\n  k:\n    mode: back\n    key: [code]\n    max_loss: 1h\n"
	p := newOraclePair(t, "mysql", schema, rules)
	ex := func(q string, args ...any) oracleStep { return oracleStep{query: q, args: args} }
	rd := func(q string) oracleStep { return oracleStep{query: q, read: true} }
	at := time.Date(2026, 11, 30, 12, 0, 0, 123456000, time.UTC)
	p.run(t,
		ex("UPDATE u SET n = n + ? WHERE id = ?", 3, 1),
		ex("UPDATE u SET n = n - ? WHERE id = ?", 1, 1),   // a negative delta on an unsigned column: to the database
		ex("UPDATE u SET n = n - ? WHERE id = ?", 9, 2),   // below 0: refused
		ex("UPDATE u SET s = s + ? WHERE id = ?", 100, 1), // tinyint
		ex("UPDATE u SET s = s + ? WHERE id = ?", 300, 1), // a delta past tinyint's range: to the database
		ex("UPDATE u SET s = ? WHERE id = ?", 300, 2),     // out of range
		ex("UPDATE u SET price = ? WHERE id = ?", "12.50", 1),
		ex("UPDATE u SET price = price + ? WHERE id = ?", 2, 1),
		ex("UPDATE u SET price = ? WHERE id = ?", "1.005", 2), // a scale the column would round: to the database
		ex("UPDATE u SET label = ? WHERE id = ?", "toolong", 1),
		ex("UPDATE u SET label = ? WHERE id = ?", "ok", 1),
		ex("UPDATE u SET label = NULL, n = ? WHERE id = ?", nil, 2),
		ex("UPDATE u SET at = ? WHERE id = ?", at, 1),
		ex("UPDATE `u` SET `N` = ? WHERE `ID` = ?", 7, "02"), // an integer key spelled as text
		ex("UPDATE u SET n = n + 1 WHERE id = ?", 3),         // no such row
		ex("INSERT INTO u (id, n) VALUES (?, ?)", 3, 1),
		ex("INSERT INTO u (id, n) VALUES (?, ?)", 3, 1), // a duplicate
		ex("UPDATE u SET n = n + 1 WHERE id = ?", 3),
		ex("INSERT IGNORE INTO u (id, n) VALUES (?, ?), (?, ?)", 3, 9, 4, 9),
		ex("INSERT INTO u (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", 1, 10),
		ex("UPDATE u SET n = n + 1 WHERE id = ?", 1),
		ex("REPLACE INTO u (id, n) VALUES (?, ?)", 4, 40),
		ex("UPDATE u SET n = n + 1 WHERE id = ?", 4),
		rd("SELECT id, n, s, price, label, at FROM u ORDER BY id"),
		ex("UPDATE k SET hits = hits + 1 WHERE code = ?", "a"),
		ex("UPDATE k SET hits = hits + 10 WHERE code = ?", "a "), // another key under NO PAD
		ex("UPDATE k SET hits = hits + 1 WHERE code = ?", "A"),   // no such row
		ex("INSERT INTO k (code, hits) VALUES (?, ?)", "b", 1),
		ex("INSERT INTO k (code, hits) VALUES (?, ?)", "b  ", 2),
		rd("SELECT code, hits, length(code) FROM k ORDER BY code, length(code)"),
	)
	p.same(t, "u", "k")
	if st := p.conn.Stats(); st.Buffered < 10 {
		t.Errorf("buffered %d statements, want most of them: %+v", st.Buffered, st)
	}
}

// TestSchemaSQLThenCheckOnlyMySQL: SchemaSQL("mysql") creates checkpoint
// tables MariaDB accepts (VARBINARY keys within InnoDB's index limit); a
// connector with manage_schema=false opens on them, its flushes write their
// checkpoints, and it reopens.
func TestSchemaSQLThenCheckOnlyMySQL(t *testing.T) {
	m := migrationDB{driver: "mysql", dialect: "mysql", base: mysqlDSN(t, "mig")}
	db, err := sql.Open(m.driver, m.base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m.direct = db
	createCounters(t, db, 3, false)
	m.runSchemaSQL(t)
	var rowKeyType string
	if err := db.QueryRow("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'writeback_applied' AND COLUMN_NAME = 'row_key'").Scan(&rowKeyType); err != nil || rowKeyType != "varbinary(2496)" {
		t.Fatalf("row_key is %q (%v), want varbinary(2496)", rowKeyType, err)
	}
	rules := writeRulesFile(t, journalRules(filepath.Join(t.TempDir(), "journal"), "always", "memory", "1h"))
	for round := 0; round < 2; round++ {
		wb, err := m.open(rules, "manage_schema=false")
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		m.writeAndCheck(t, wb)
		if err := wb.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := counterValues(t, m.direct)[1]; got != 10 {
		t.Fatalf("counter 1 = %d, want 10", got)
	}
}

// TestMySQLLockTables: after LOCK TABLES a connection buffers nothing more
// (a flush could not write the table until it unlocks), so its reads do not
// wait for a flush its own lock blocks.
func TestMySQLLockTables(t *testing.T) {
	dsn := mysqlDSN(t, "lock")
	direct, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE c (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO c VALUES (1, 0)")
	wb, _ := openWritebackWith(t, "mysql", dsn, "tables:\n  c:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := wb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{"UPDATE c SET n = n + 1 WHERE id = 1", "LOCK TABLES c WRITE", "UPDATE c SET n = n + 10 WHERE id = 1"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var n int64
	if err := c.QueryRowContext(ctx, "SELECT n FROM c WHERE id = 1").Scan(&n); err != nil || n != 11 {
		t.Fatalf("read under LOCK TABLES: %d, %v; want 11", n, err)
	}
	if _, err := c.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	if err := direct.QueryRowContext(ctx, "SELECT n FROM c WHERE id = 1").Scan(&n); err != nil || n != 11 {
		t.Fatalf("after UNLOCK, without a flush: %d, %v; want 11 (written directly)", n, err)
	}
}

// TestMySQLUse: after USE a connection buffers nothing more: its bare
// table names now resolve in another database, where a flush (on its own
// connections) would not write.
func TestMySQLUse(t *testing.T) {
	dsn, otherDSN := mysqlDSN(t, "use"), mysqlDSN(t, "use2")
	other := otherDSN[strings.LastIndexByte(otherDSN, '/')+1:]
	other, _, _ = strings.Cut(other, "?")
	for _, d := range []string{dsn, otherDSN} {
		db, err := sql.Open("mysql", d)
		if err != nil {
			t.Fatal(err)
		}
		execAll(t, db, "CREATE TABLE c (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO c VALUES (1, 0)")
		db.Close()
	}
	wb, _ := openWritebackWith(t, "mysql", dsn, "tables:\n  c:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	ctx := context.Background()
	c, err := wb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{"USE " + other, "UPDATE c SET n = n + 5 WHERE id = 1"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := Flush(ctx, wb); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]int64{dsn: 0, otherDSN: 5} {
		db, err := sql.Open("mysql", d)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := db.QueryRow("SELECT n FROM c WHERE id = 1").Scan(&n); err != nil || n != want {
			t.Errorf("%s: n = %d (%v), want %d", d, n, err, want)
		}
		db.Close()
	}
}

// TestCommitAnswerLostMySQL cuts the flusher's connection right after its
// COMMIT reaches MariaDB, before the answer comes back. MySQL keeps no
// status of a finished transaction: once the connection that sent the
// COMMIT is gone, the journal's checkpoint, written in the same transaction,
// says whether it committed. Every delta is applied exactly once, and no row
// becomes a dead letter. Without a journal, the rows become dead letters
// whose outcome is unknown, never applied twice.
func TestCommitAnswerLostMySQL(t *testing.T) {
	for _, journal := range []bool{true, false} {
		t.Run(fmt.Sprintf("journal=%v", journal), func(t *testing.T) {
			dsn := mysqlDSN(t, "commitlost")
			start, end := strings.Index(dsn, "tcp("), strings.Index(dsn, ")/")
			if start < 0 || end < start {
				t.Skipf("the test needs a TCP DSN, not %q", dsn)
			}
			p := startFaultProxy(t, dsn[start+4:end])
			viaProxy := dsn[:start+4] + fmt.Sprintf("127.0.0.1:%d", p.port()) + dsn[end:]
			ddb, err := sql.Open("mysql", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer ddb.Close()
			createCounters(t, ddb, 10, false)
			rules := "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n"
			if journal {
				rules = journalRules(filepath.Join(t.TempDir(), "journal"), "always", "memory", "1h")
			}
			wb, _ := openWritebackWith(t, "mysql", viaProxy, rules, WithDeadLetterFile(filepath.Join(t.TempDir(), "dead.jsonl")))
			sum := flushCommitCut(t, p, wb, ddb, "UPDATE counters SET n = n + ? WHERE id = ?", 20*time.Second, func(b []byte) bool {
				// go-sql-driver/mysql commits with COM_QUERY (0x03) "COMMIT".
				return strings.Contains(string(b), "\x03COMMIT")
			})
			st, _ := StatsOf(wb)
			switch {
			case journal && (sum != 100 || st.Dirty != 0 || st.DeadLetters != 0):
				t.Fatalf("sum %d, Dirty %d, DeadLetters %d; want 100, 0, 0 (each delta once, decided by the checkpoint)", sum, st.Dirty, st.DeadLetters)
			case !journal && (sum != 100 && sum != 0 || st.Dirty != 0 || st.DeadLetters != 10):
				t.Fatalf("sum %d, Dirty %d, DeadLetters %d; want 100 or 0 (never twice), 0, 10 (the outcome unknown)", sum, st.Dirty, st.DeadLetters)
			}
			t.Logf("sum %d, dead letters %d", sum, st.DeadLetters)
		})
	}
}
