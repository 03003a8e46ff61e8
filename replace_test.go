package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/writeback-go/writeback/internal/dialect"
)

// replaceSchema has the two tables SQLite's REPLACE is buffered on: a
// rowid table keyed by its INTEGER PRIMARY KEY, and a WITHOUT ROWID table
// keyed by a text primary key.
const replaceSchema = "CREATE TABLE items (id INTEGER PRIMARY KEY, n BIGINT NOT NULL, note TEXT);" +
	"CREATE TABLE codes (code TEXT PRIMARY KEY, n BIGINT NOT NULL, note TEXT) WITHOUT ROWID;" +
	"INSERT INTO items (id, n, note) VALUES (1, 10, 'a'), (2, 20, NULL);" +
	"INSERT INTO codes (code, n, note) VALUES ('k1', 10, 'a'), ('k2', 20, NULL)"

const replaceRules = "tables:\n  items:\n    mode: back\n    key: [id]\n    max_loss: 3ms\n" +
	"  codes:\n    mode: back\n    key: [code]\n    max_loss: 3ms\n"

// TestReplaceBuffered checks that the REPLACE shapes on those tables are
// buffered, and the ones that are not exact are not.
func TestReplaceBuffered(t *testing.T) {
	p := newOraclePair(t, "sqlite3", replaceSchema, replaceRules)
	for _, c := range []struct {
		q    string
		want string // "" buffered, else a part of the reason
	}{
		{"INSERT OR REPLACE INTO items (id, n, note) VALUES (?, ?, ?)", ""},
		{"REPLACE INTO items (note, n, id) VALUES (?, ?, ?), (?, ?, ?)", ""},
		{"replace into codes (code, n, note) values (?, ?, ?)", ""},
		{"REPLACE INTO items (id, n) VALUES (?, ?)", "does not list column note"},
		{"REPLACE INTO items (id, n, note) VALUES (?, ?, ?) RETURNING id", "REPLACE with RETURNING"},
		{"REPLACE INTO items (id, n, note) SELECT 1, 2, 3", "INSERT ... SELECT"},
	} {
		w := &whyNot{}
		info := p.conn.planStatement(c.q, w)
		reason := w.reason
		if reason == "" && info.target == nil {
			reason = dialect.WhyNot(p.conn.dia, c.q)
		}
		if c.want == "" && info.target == nil || c.want != "" && !strings.Contains(reason, c.want) {
			t.Errorf("%s: buffered %v, reason %q; want %q", c.q, info.target != nil, reason, c.want)
		}
	}
}

// TestReplaceOracle runs random sequences of REPLACE and INSERT OR REPLACE
// (one row and several, a key twice in one statement, NULL into a NOT
// NULL column) mixed with UPDATEs (deltas, assignments), INSERTs, upserts
// and reads, directly and through writeback, comparing every result and
// then the tables, rowids included.
func TestReplaceOracle(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { replaceOracle(t, seed) })
	}
}

func replaceOracle(t *testing.T, seed uint64) {
	p := newOraclePair(t, "sqlite3", replaceSchema, replaceRules)
	r := rand.New(rand.NewPCG(seed, 11))
	type table struct{ name, key string }
	tables := []table{{"items", "id"}, {"codes", "code"}}
	keyOf := func(tb table) any {
		k := 1 + r.Int64N(6)
		if tb.key == "code" {
			return fmt.Sprint("k", k)
		}
		return k
	}
	val := func() any {
		if r.IntN(12) == 0 {
			return nil // NOT NULL on n: refused directly, and through writeback
		}
		return r.Int64N(50) - 10
	}
	note := func() any {
		if r.IntN(3) == 0 {
			return nil
		}
		return fmt.Sprint("v", r.IntN(9))
	}
	pick := func() oracleStep {
		tb := tables[r.IntN(len(tables))]
		k := keyOf(tb)
		cols := tb.key + ", n, note"
		switch r.IntN(13) {
		case 0, 1:
			return oracleStep{query: "INSERT OR REPLACE INTO " + tb.name + " (" + cols + ") VALUES (?, ?, ?)", args: []any{k, val(), note()}}
		case 2:
			return oracleStep{query: "REPLACE INTO " + tb.name + " (note, " + tb.key + ", n) VALUES (?, ?, ?)", args: []any{note(), k, val()}}
		case 3:
			// Two rows, sometimes of one key: SQLite counts both.
			k2 := k
			if r.IntN(2) == 0 {
				k2 = keyOf(tb)
			}
			return oracleStep{query: "REPLACE INTO " + tb.name + " (" + cols + ") VALUES (?, ?, ?), (?, ?, ?)", args: []any{k, val(), note(), k2, val(), note()}}
		case 4, 5:
			return oracleStep{query: "UPDATE " + tb.name + " SET n = n + ? WHERE " + tb.key + " = ?", args: []any{r.Int64N(5) - 2, k}}
		case 6:
			return oracleStep{query: "UPDATE " + tb.name + " SET note = ? WHERE " + tb.key + " = ?", args: []any{note(), k}}
		case 7:
			return oracleStep{query: "INSERT INTO " + tb.name + " (" + tb.key + ", n) VALUES (?, ?)", args: []any{k, val()}}
		case 8:
			return oracleStep{query: "INSERT INTO " + tb.name + " (" + tb.key + ", n) VALUES (?, ?) ON CONFLICT (" + tb.key + ") DO UPDATE SET n = " + tb.name + ".n + EXCLUDED.n", args: []any{k, r.Int64N(5)}}
		case 9:
			return oracleStep{query: "INSERT OR IGNORE INTO " + tb.name + " (" + cols + ") VALUES (?, ?, ?)", args: []any{k, val(), note()}}
		case 10, 11:
			return oracleStep{query: "SELECT n, note FROM " + tb.name + " WHERE " + tb.key + " = ?", args: []any{k}, read: true}
		default:
			return oracleStep{query: "SELECT * FROM " + tb.name + " ORDER BY " + tb.key, read: true}
		}
	}
	type execer interface {
		Exec(string, ...any) (sql.Result, error)
		Query(string, ...any) (*sql.Rows, error)
	}
	run := func(db execer, s oracleStep) string {
		if s.read {
			return returnRead(db, s.query, s.args...)
		}
		res, err := db.Exec(s.query, s.args...)
		if err != nil {
			return "error"
		}
		n, _ := res.RowsAffected()
		return fmt.Sprint(n)
	}
	for i := range 400 {
		if r.IntN(4) > 0 {
			p.run(t, pick())
			continue
		}
		// A transaction of one to three statements, committed or rolled back.
		script := []oracleStep{pick()}
		for range r.IntN(3) {
			script = append(script, pick())
		}
		commit := r.IntN(3) > 0
		var got [2]string
		for side, db := range []*sql.DB{p.direct, p.wb} {
			txn, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, s := range script {
				out = append(out, run(txn, s))
			}
			if commit {
				out = append(out, fmt.Sprint("commit ", txn.Commit() == nil))
			} else {
				out = append(out, fmt.Sprint("rollback ", txn.Rollback() == nil))
			}
			got[side] = strings.Join(out, "; ")
		}
		if got[0] != got[1] {
			t.Fatalf("step %d %+v (commit %v):\nthrough writeback: %s\ndirectly:          %s", i, script, commit, got[1], got[0])
		}
	}
	st := p.conn.Stats()
	if st.Buffered == 0 {
		t.Fatal("nothing was buffered")
	}
	p.same(t, "items", "codes")
	// The rowid table's rows kept the rowid REPLACE gives them (their key).
	p.run(t, oracleStep{query: "SELECT rowid, id, n, note FROM items", read: true})
	t.Logf("buffered %d, passed through %d, flushes %d", st.Buffered, st.PassedThrough, st.Flushes)
}

// TestReplaceRefused checks that each shape where REPLACE is not an upsert
// of every column goes to the database, with the direct result: another
// unique index (REPLACE deletes the row holding the value), a column left
// out (it gets its default), a trigger, a foreign key to the table (its ON
// DELETE action runs), a rowid table keyed by another column (the row gets
// a new rowid), a table of key columns only and one with a generated
// column.
func TestReplaceRefused(t *testing.T) {
	const schema = "CREATE TABLE uq (id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INT);" +
		"CREATE TABLE dflt (id INTEGER PRIMARY KEY, n INT, d INT DEFAULT 7);" +
		"CREATE TABLE trg (id INTEGER PRIMARY KEY, n INT);" +
		"CREATE TABLE trg_log (what TEXT);" +
		"CREATE TABLE parent (id INTEGER PRIMARY KEY, n INT);" +
		"CREATE TABLE child (cid INTEGER PRIMARY KEY, pid INT REFERENCES parent (id) ON DELETE CASCADE);" +
		"CREATE TABLE txt (code TEXT PRIMARY KEY, n INT);" +
		"CREATE TABLE keys (a INT NOT NULL, b INT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;" +
		"CREATE TABLE gen (id INTEGER PRIMARY KEY, n INT, d INT GENERATED ALWAYS AS (n * 2));" +
		"INSERT INTO gen (id, n) VALUES (1, 1);" +
		"INSERT INTO uq VALUES (1, 'a@x', 1), (2, 'b@x', 2);" +
		"INSERT INTO dflt VALUES (1, 1, 100);" +
		"INSERT INTO trg VALUES (1, 1);" +
		"INSERT INTO parent VALUES (1, 1), (2, 2); INSERT INTO child VALUES (10, 1), (20, 2);" +
		"INSERT INTO txt VALUES ('a', 1), ('b', 2);" +
		"INSERT INTO keys VALUES (1, 1)"
	rule := func(name, key, extra string) string {
		return "  " + name + ":\n    mode: back\n    key: [" + key + "]\n    max_loss: 1h\n" + extra
	}
	rules := "tables:\n" + rule("uq", "id", "    allow: [unique]\n") + rule("dflt", "id", "") +
		rule("trg", "id", "    allow: [triggers]\n") + rule("parent", "id", "    allow: [foreign_keys]\n") +
		rule("txt", "code", "") + rule("keys", "a, b", "") + rule("gen", "id", "    allow: [defaults]\n")
	p := sqliteForeignKeysPair(t, schema, rules)
	// Triggers hold semicolons, which execAll splits on: made here, the
	// catalog read again after them.
	for _, q := range []string{
		"CREATE TRIGGER trg_ins AFTER INSERT ON trg BEGIN INSERT INTO trg_log VALUES ('insert ' || NEW.id); END",
		"CREATE TRIGGER trg_upd AFTER UPDATE ON trg BEGIN INSERT INTO trg_log VALUES ('update ' || NEW.id); END",
	} {
		for _, db := range []*sql.DB{p.direct, p.wb} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.conn.ensureSchema(context.Background())
	for _, c := range []struct {
		step   oracleStep
		reason string
		reads  []string
	}{
		{oracleStep{query: "REPLACE INTO uq (id, email, n) VALUES (?, ?, ?)", args: []any{1, "b@x", 5}},
			"unique index other than the key", []string{"SELECT id, email, n FROM uq ORDER BY id"}},
		{oracleStep{query: "REPLACE INTO dflt (id, n) VALUES (?, ?)", args: []any{1, 5}},
			"does not list column d", []string{"SELECT id, n, d FROM dflt ORDER BY id"}},
		{oracleStep{query: "REPLACE INTO trg (id, n) VALUES (?, ?)", args: []any{1, 5}},
			"the table has triggers", []string{"SELECT * FROM trg_log ORDER BY rowid", "SELECT id, n FROM trg"}},
		{oracleStep{query: "REPLACE INTO parent (id, n) VALUES (?, ?)", args: []any{1, 5}},
			"foreign keys reference the table", []string{"SELECT id, n FROM parent ORDER BY id", "SELECT cid, pid FROM child ORDER BY cid"}},
		{oracleStep{query: "REPLACE INTO txt (code, n) VALUES (?, ?)", args: []any{"a", 5}},
			"new rowid", []string{"SELECT rowid, code, n FROM txt", "SELECT code, n FROM txt ORDER BY rowid"}},
		{oracleStep{query: "REPLACE INTO keys (a, b) VALUES (?, ?)", args: []any{1, 1}},
			"key columns only", []string{"SELECT a, b FROM keys"}},
		{oracleStep{query: "REPLACE INTO gen (id, n) VALUES (?, ?)", args: []any{1, 5}},
			"generated column", []string{"SELECT id, n, d FROM gen"}},
	} {
		w := &whyNot{}
		if info := p.conn.planStatement(c.step.query, w); info.target != nil || !strings.Contains(w.reason, c.reason) {
			t.Errorf("%s: buffered %v, reason %q; want %q", c.step.query, info.target != nil, w.reason, c.reason)
		}
		p.run(t, c.step)
		if err := p.conn.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, q := range c.reads {
			p.run(t, oracleStep{query: q, read: true})
		}
	}
	if st := p.conn.Stats(); st.Buffered != 0 {
		t.Errorf("%d writes buffered, want none", st.Buffered)
	}
}

// sqliteForeignKeysPair is newOraclePair on SQLite with foreign keys
// enforced on both sides (so that ON DELETE actions run).
func sqliteForeignKeysPair(t *testing.T, schema, rules string) *oraclePair {
	t.Helper()
	const fk = "&_foreign_keys=1"
	directDSN, wbDSN := sqliteDSN(t, "direct")+fk, sqliteDSN(t, "wb")+fk
	direct, err := sql.Open("sqlite3", directDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	setup, err := sql.Open("sqlite3", wbDSN)
	if err != nil {
		t.Fatal(err)
	}
	execAll(t, direct, schema)
	execAll(t, setup, schema)
	setup.Close()
	wb, c := openWritebackWith(t, "sqlite3", wbDSN, rules)
	return &oraclePair{direct: direct, wb: wb, conn: c, ph: func(int) string { return "?" }}
}
