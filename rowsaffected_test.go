package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// oracleStep is one statement an oracle test runs on both databases.
type oracleStep struct {
	query string
	args  []any
	// query: compare the rows read; otherwise compare RowsAffected and
	// whether the statement failed.
	read bool
}

// oraclePair is the same database twice: direct, and through writeback.
type oraclePair struct {
	direct, wb *sql.DB
	conn       *Connector
	ph         func(i int) string
}

// newOraclePair makes two fresh databases of driverName with the schema
// applied to both, one opened through writeback with rules.
func newOraclePair(t *testing.T, driverName, schema, rules string) *oraclePair {
	t.Helper()
	var directDSN, wbDSN string
	ph := func(int) string { return "?" }
	switch driverName {
	case "sqlite3":
		directDSN, wbDSN = sqliteDSN(t, "direct"), sqliteDSN(t, "wb")
	case "pgx":
		directDSN, wbDSN = pgSchema(t, "odirect"), pgSchema(t, "owb")
		ph = func(i int) string { return fmt.Sprintf("$%d", i) }
	case "mysql":
		directDSN, wbDSN = mysqlDSN(t, "odirect"), mysqlDSN(t, "owb")
		schema = mysqlTypes(schema)
	}
	direct, err := sql.Open(driverName, directDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	setup, err := sql.Open(driverName, wbDSN)
	if err != nil {
		t.Fatal(err)
	}
	execAll(t, direct, schema)
	execAll(t, setup, schema)
	setup.Close()
	wb, c := openWritebackWith(t, driverName, wbDSN, rules)
	return &oraclePair{direct: direct, wb: wb, conn: c, ph: ph}
}

// q rewrites ? placeholders to the pair's style.
func (p *oraclePair) q(query string) string {
	var sb strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			sb.WriteString(p.ph(n))
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// run runs each step on both databases and fails the test where they
// differ: rows read, RowsAffected, or an error on one side only.
func (p *oraclePair) run(t *testing.T, steps ...oracleStep) {
	t.Helper()
	for _, s := range steps {
		q := p.q(s.query)
		if s.read {
			want := p.read(t, p.direct, q, s.args)
			if got := p.read(t, p.wb, q, s.args); got != want {
				t.Fatalf("%s %v: read %q through writeback, %q directly", q, s.args, got, want)
			}
			continue
		}
		dres, derr := p.direct.Exec(q, s.args...)
		wres, werr := p.wb.Exec(q, s.args...)
		if (derr == nil) != (werr == nil) {
			t.Fatalf("%s %v: error %v through writeback, %v directly", q, s.args, werr, derr)
		}
		if derr != nil {
			continue
		}
		dn, _ := dres.RowsAffected()
		wn, err := wres.RowsAffected()
		if err != nil || wn != dn {
			t.Fatalf("%s %v: RowsAffected %d (%v) through writeback, %d directly", q, s.args, wn, err, dn)
		}
	}
}

func (p *oraclePair) read(t *testing.T, db *sql.DB, q string, args []any) string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		return "error"
	}
	defer rows.Close()
	return strings.Join(scanAll(t, rows), "|")
}

// same flushes and compares the final tables.
func (p *oraclePair) same(t *testing.T, tables ...string) {
	t.Helper()
	if err := p.conn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tab := range tables {
		want := strings.Join(dumpTable(t, p.direct, tab, "1"), "|")
		if got := strings.Join(dumpTable(t, p.wb, tab, "1"), "|"); got != want {
			t.Fatalf("table %s through writeback:\n%s\ndirectly:\n%s", tab, got, want)
		}
	}
}

const exactSchema = "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, note TEXT);" +
	"CREATE TABLE pairs (a BIGINT NOT NULL, b TEXT NOT NULL, n BIGINT, PRIMARY KEY (a, b));" +
	"INSERT INTO counters (id, n) VALUES (1, 10), (2, 20), (3, 30);" +
	"INSERT INTO pairs (a, b, n) VALUES (1, 'x', 1)"

const exactRules = "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n" +
	"  pairs:\n    mode: back\n    key: [a, b]\n    max_loss: 1h\n"

func exactRowsAffected(t *testing.T, driverName string) {
	p := newOraclePair(t, driverName, exactSchema, exactRules)
	up := func(id, d int) oracleStep {
		return oracleStep{query: "UPDATE counters SET n = n + ? WHERE id = ?", args: []any{d, id}}
	}
	ins := func(id, n int) oracleStep {
		return oracleStep{query: "INSERT INTO counters (id, n) VALUES (?, ?)", args: []any{id, n}}
	}
	read := oracleStep{query: "SELECT id, n, note FROM counters ORDER BY id", read: true}
	p.run(t,
		up(1, 1), up(1, 1), // an existing row: 1, and buffered
		up(99, 1), // a missing row: 0
		ins(2, 0), // an existing key: a duplicate-key error at Exec
		// "ensure the row exists, then increment": the INSERT fails, the increments count
		ins(3, 0), up(3, 5), up(3, 5),
		ins(4, 0), up(4, 2), up(4, 2), // a new row, then increments coalesced into it
		ins(4, 7), // now known: the error again
		// a multi-row INSERT with one existing key inserts nothing
		oracleStep{query: "INSERT INTO counters (id, n) VALUES (?, ?), (?, ?)", args: []any{5, 1, 1, 1}},
		oracleStep{query: "INSERT INTO counters (id, n) VALUES (?, ?), (?, ?)", args: []any{5, 1, 6, 1}},
		up(5, 1), up(6, 1),
		// composite keys
		oracleStep{query: "UPDATE pairs SET n = n + ? WHERE a = ? AND b = ?", args: []any{1, 1, "x"}},
		oracleStep{query: "UPDATE pairs SET n = n + ? WHERE a = ? AND b = ?", args: []any{1, 1, "y"}},
		oracleStep{query: "INSERT INTO pairs (a, b, n) VALUES (?, ?, ?)", args: []any{1, "x", 0}},
		oracleStep{query: "INSERT INTO pairs (a, b, n) VALUES (?, ?, ?)", args: []any{1, "y", 0}},
		read,
	)
	// GORM's Save and hand-written code: UPDATE, and INSERT when it matched nothing.
	save := func(id, n int) {
		t.Helper()
		for _, db := range []*sql.DB{p.direct, p.wb} {
			res, err := db.Exec(p.q("UPDATE counters SET n = ?, note = ? WHERE id = ?"), n, "saved", id)
			if err != nil {
				t.Fatal(err)
			}
			if k, _ := res.RowsAffected(); k == 0 {
				if _, err := db.Exec(p.q("INSERT INTO counters (id, n, note) VALUES (?, ?, ?)"), id, n, "saved"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	save(1, 100)
	save(50, 500)
	save(50, 501)
	p.run(t, read)
	// Rows deleted by this connector are forgotten: the UPDATE matches nothing again.
	p.run(t,
		up(50, 1),
		oracleStep{query: "DELETE FROM counters WHERE id = ?", args: []any{50}},
		up(50, 1), up(1, 1),
		oracleStep{query: "DELETE FROM counters WHERE n > ?", args: []any{200}},
		up(4, 1), up(3, 1),
		read,
	)
	p.same(t, "counters", "pairs")
	st := p.conn.Stats()
	if st.Probes == 0 || st.ProbeFailures != 0 {
		t.Fatalf("probes %d, failed %d: want some, none failed", st.Probes, st.ProbeFailures)
	}
}

func TestExactRowsAffectedSQLite(t *testing.T)   { exactRowsAffected(t, "sqlite3") }
func TestExactRowsAffectedPostgres(t *testing.T) { exactRowsAffected(t, "pgx") }
func TestExactRowsAffectedMySQL(t *testing.T)    { exactRowsAffected(t, "mysql") }

// TestExactRowsAffectedTxDelete: a DELETE committed by a transaction makes
// the connector forget the rows it knew, also those learned while the
// transaction was open.
func TestExactRowsAffectedTxDelete(t *testing.T) {
	p := newOraclePair(t, "sqlite3", exactSchema, exactRules)
	for _, db := range []*sql.DB{p.direct, p.wb} {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("DELETE FROM counters WHERE id = 2"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	p.run(t, oracleStep{query: "UPDATE counters SET n = n + 1 WHERE id = 2"})
	p.same(t, "counters")
}

// TestExactRowsAffectedHotKeysProbeOnce: a key is probed once, then known.
func TestExactRowsAffectedHotKeysProbeOnce(t *testing.T) {
	p := newOraclePair(t, "sqlite3", exactSchema, exactRules)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := 1 + i%3
				res, err := p.wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", id)
				if err != nil {
					t.Error(err)
					return
				}
				if n, _ := res.RowsAffected(); n != 1 {
					t.Errorf("RowsAffected %d, want 1", n)
					return
				}
				if i%50 == 0 {
					if err := p.conn.Flush(context.Background()); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := p.conn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.conn.Stats()
	// Concurrent first writes may each probe the key once.
	if st.Probes > 3*8 || st.Buffered != 1600 {
		t.Fatalf("probes %d (want at most %d), buffered %d (want 1600)", st.Probes, 3*8, st.Buffered)
	}
	var sum int64
	if err := p.wb.QueryRow("SELECT SUM(n) FROM counters").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != 60+1600 {
		t.Fatalf("sum %d, want %d", sum, 60+1600)
	}
}

// TestRowsAffectedAssume keeps the older behaviour for tables that ask for it.
func TestRowsAffectedAssume(t *testing.T) {
	p := newOraclePair(t, "sqlite3", exactSchema, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    rows_affected: assume\n")
	res, err := p.wb.Exec("UPDATE counters SET n = n + 1 WHERE id = 99")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("RowsAffected %d, want 1 (assumed)", n)
	}
	if err := p.conn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := p.conn.Stats(); st.Probes != 0 || st.NoMatch != 1 {
		t.Fatalf("probes %d, no-match %d: want 0, 1", st.Probes, st.NoMatch)
	}
}
