package writeback

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// mixedOracle runs the same random sequence of the statements existing
// applications send — UPDATEs by key, guarded (soft-delete) UPDATEs,
// INSERTs and their DO NOTHING / OR IGNORE forms, upserts, DELETEs, reads
// by key and whole reads, transactions of one or several statements,
// committed or rolled back — directly and through writeback, with flushes
// running every few milliseconds, and compares every result: error or not,
// RowsAffected, rows read; then the final tables.
func mixedOracle(t *testing.T, driverName string, seed uint64) {
	const schema = "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, note TEXT, deleted TEXT);" +
		"INSERT INTO counters (id, n) VALUES (1, 1), (2, 2), (3, 3)"
	p := newOraclePair(t, driverName, schema, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 3ms\n")
	r := rand.New(rand.NewPCG(seed, 7))
	key := func() int64 { return 1 + r.Int64N(6) }
	ignore := "INSERT INTO counters (id, n) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
	upsert := "INSERT INTO counters (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = counters.n + EXCLUDED.n"
	if driverName == "sqlite3" && r.IntN(2) == 0 {
		ignore = "INSERT OR IGNORE INTO counters (id, n) VALUES (?, ?)"
	}
	if driverName == "mysql" {
		ignore = "INSERT IGNORE INTO counters (id, n) VALUES (?, ?)"
		upsert = "INSERT INTO counters (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)"
	}
	type stmt struct {
		q    string
		args []any
		read bool
	}
	pick := func() stmt {
		k, d := key(), r.Int64N(5)-1
		switch r.IntN(16) {
		case 0, 1:
			return stmt{q: "UPDATE counters SET n = n + ? WHERE id = ?", args: []any{d, k}}
		case 2:
			return stmt{q: "UPDATE counters SET n = n + ? WHERE id = ? AND deleted IS NULL", args: []any{d, k}}
		case 3:
			return stmt{q: "UPDATE counters SET deleted = ? WHERE id = ? AND deleted IS NULL", args: []any{"x", k}}
		case 4:
			return stmt{q: "UPDATE counters SET deleted = NULL WHERE id = ?", args: []any{k}}
		case 5:
			return stmt{q: "INSERT INTO counters (id, n) VALUES (?, ?)", args: []any{k, d}}
		case 6:
			return stmt{q: ignore, args: []any{k, d}}
		case 7:
			return stmt{q: upsert, args: []any{k, d}}
		case 8:
			if r.IntN(3) == 0 {
				return stmt{q: "DELETE FROM counters WHERE id = ?", args: []any{k}}
			}
			return stmt{q: "UPDATE counters SET note = ? WHERE id = ?", args: []any{fmt.Sprint("v", d), k}}
		case 9:
			return stmt{q: "SELECT n, deleted FROM counters WHERE id = ?", args: []any{k}, read: true}
		case 10:
			return stmt{q: "SELECT * FROM counters WHERE id = ?", args: []any{k}, read: true}
		case 11:
			return stmt{q: "INSERT INTO counters (id, n) VALUES (?, ?), (?, ?)", args: []any{k, d, key(), d}}
		case 12:
			return stmt{q: "INSERT INTO counters (id, n) VALUES (?, ?) RETURNING id", args: []any{k, d}, read: true}
		case 13:
			return stmt{q: "UPDATE counters SET note = ? WHERE id = ? RETURNING id, note", args: []any{fmt.Sprint("r", d), k}, read: true}
		case 14:
			return stmt{q: strings.Replace(ignore, "(?, ?)", "(?, ?), (?, ?)", 1), args: []any{k, d, key(), d}}
		default:
			return stmt{q: "SELECT id, n, note, deleted FROM counters ORDER BY id", read: true}
		}
	}
	type execer interface {
		Exec(string, ...any) (sql.Result, error)
		Query(string, ...any) (*sql.Rows, error)
	}
	run := func(db execer, s stmt) string {
		q := p.q(s.q)
		if s.read {
			out := returnRead(db, q, s.args...)
			if strings.HasSuffix(out, "error") {
				return "error" // Query's, or the rows' (an INSERT ... RETURNING refused)
			}
			return out
		}
		res, err := db.Exec(q, s.args...)
		if err != nil {
			return "error"
		}
		n, _ := res.RowsAffected()
		return fmt.Sprint(n)
	}
	for i := 0; i < 300; i++ {
		var script []stmt
		tx, commit := r.IntN(4) == 0, r.IntN(3) != 0
		if tx {
			for range 1 + r.IntN(3) {
				script = append(script, pick())
			}
		} else {
			script = []stmt{pick()}
		}
		var got [2]string
		for side, db := range []*sql.DB{p.direct, p.wb} {
			var out []string
			if !tx {
				out = append(out, run(db, script[0]))
			} else {
				txn, err := db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range script {
					o := run(txn, s)
					out = append(out, o)
					if o == "error" {
						break // PostgreSQL aborts the transaction
					}
				}
				if commit && out[len(out)-1] != "error" {
					out = append(out, fmt.Sprint("commit ", txn.Commit() == nil))
				} else {
					out = append(out, fmt.Sprint("rollback ", txn.Rollback() == nil))
				}
			}
			got[side] = strings.Join(out, "; ")
		}
		if got[0] != got[1] {
			t.Fatalf("step %d %+v (tx %v):\nthrough writeback: %s\ndirectly:          %s", i, script, tx, got[1], got[0])
		}
	}
	p.same(t, "counters")
	st := p.conn.Stats()
	t.Logf("buffered %d, passed through %d, probes %d, reads by key %d, flushes %d", st.Buffered, st.PassedThrough, st.Probes, st.ReadsByKey, st.Flushes)
}

func TestMixedOracle(t *testing.T) {
	for _, driverName := range []string{"sqlite3", "pgx", "mysql"} {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", driverName, seed), func(t *testing.T) { mixedOracle(t, driverName, seed) })
		}
	}
}
