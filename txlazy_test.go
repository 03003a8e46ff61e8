package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// txObservations runs the same transactions on db and returns what the
// application saw: RowsAffected, errors and reads, as text.
func txObservations(t *testing.T, db *sql.DB, q func(string) string) string {
	t.Helper()
	var out []string
	note := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	exec := func(tx *sql.Tx, query string, args ...any) {
		res, err := tx.Exec(q(query), args...)
		if err != nil {
			note("error")
			return
		}
		n, _ := res.RowsAffected()
		note("%d", n)
	}
	begin := func() *sql.Tx {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	end := func(tx *sql.Tx, commit bool) {
		var err error
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		note("end %v", err == nil)
	}
	// One write, committed: buffered at COMMIT.
	tx := begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 5, 1)
	end(tx, true)
	// A missing row: 0, as directly.
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 5, 99)
	end(tx, true)
	// Rolled back: nothing.
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 100, 2)
	end(tx, false)
	// Read your own write inside the transaction.
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 7, 2)
	var n int64
	if err := tx.QueryRow(q("SELECT n FROM counters WHERE id = ?"), 2).Scan(&n); err != nil {
		t.Fatal(err)
	}
	note("read %d", n)
	end(tx, true)
	// Two writes of different rows: buffered together at COMMIT.
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 1, 1)
	exec(tx, "INSERT INTO counters (id, n) VALUES (?, ?)", 10, 1)
	end(tx, true)
	// Two writes of one row: the transaction runs on the database.
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 1, 1)
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 2, 1)
	end(tx, true)
	// A missing row among them: 0 for it, the others buffered.
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 1, 3)
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 1, 98)
	exec(tx, "INSERT INTO counters (id, n) VALUES (?, ?)", 12, 1)
	end(tx, true)
	// Two writes, rolled back.
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 1, 1)
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 1, 3)
	end(tx, false)
	// A duplicate key: the error at Exec, then a rollback.
	tx = begin()
	exec(tx, "INSERT INTO counters (id, n) VALUES (?, ?)", 3, 0)
	end(tx, false)
	// A new row, buffered at COMMIT; then an update of it in another transaction.
	tx = begin()
	exec(tx, "INSERT INTO counters (id, n) VALUES (?, ?)", 11, 4)
	end(tx, true)
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ?", 1, 11)
	end(tx, true)
	// A prepared statement inside the transaction.
	tx = begin()
	st, err := tx.Prepare(q("UPDATE counters SET n = n + ? WHERE id = ?"))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := st.Exec(2, 3); err != nil {
		note("error")
	} else {
		k, _ := res.RowsAffected()
		note("%d", k)
	}
	st.Close()
	end(tx, true)
	// Guarded UPDATEs (GORM's soft-delete shape): held when they match.
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ? AND note IS NULL", 3, 2)
	end(tx, true)
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE note IS NULL AND id = ?", 3, 99)
	end(tx, true)
	tx = begin()
	exec(tx, "UPDATE counters SET note = ? WHERE id = ? AND note IS NULL", "gone", 2)
	end(tx, true)
	tx = begin()
	exec(tx, "UPDATE counters SET n = n + ? WHERE id = ? AND note IS NULL", 3, 2)
	end(tx, true)
	// A write to a through table: the transaction runs on the database.
	tx = begin()
	exec(tx, "INSERT INTO orders (id, total) VALUES (?, ?)", 1, 10)
	end(tx, true)
	return strings.Join(out, ",")
}

func lazyTxOracle(t *testing.T, driverName string) {
	schema := exactSchema + ";CREATE TABLE orders (id BIGINT PRIMARY KEY, total BIGINT)"
	p := newOraclePair(t, driverName, schema, exactRules)
	want := txObservations(t, p.direct, p.q)
	before := p.conn.Stats()
	got := txObservations(t, p.wb, p.q)
	if got != want {
		t.Fatalf("through writeback:\n%s\ndirectly:\n%s", got, want)
	}
	st := p.conn.Stats()
	// The one-write transactions committed without a read, on existing or
	// new rows, and the two guarded ones that matched: 6 of them; and the
	// writes of the two transactions of several rows that match: 4.
	if b := st.Buffered - before.Buffered; b != 10 {
		t.Errorf("buffered %d writes of transactions, want 10", b)
	}
	p.same(t, "counters", "orders")
}

func TestLazyTxSQLite(t *testing.T)   { lazyTxOracle(t, "sqlite3") }
func TestLazyTxPostgres(t *testing.T) { lazyTxOracle(t, "pgx") }

// TestLazyTxConcurrent: ORM-style transactions of one increment from 8
// goroutines are buffered, and every increment arrives.
func TestLazyTxConcurrent(t *testing.T) {
	for _, driverName := range []string{"sqlite3", "pgx"} {
		t.Run(driverName, func(t *testing.T) {
			p := newOraclePair(t, driverName, exactSchema, exactRules)
			const per = 200
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; i < per; i++ {
						tx, err := p.wb.BeginTx(context.Background(), nil)
						if err != nil {
							t.Error(err)
							return
						}
						if _, err := tx.Exec(p.q("UPDATE counters SET n = n + 1 WHERE id = ?"), 1+(g+i)%3); err != nil {
							t.Error(err)
							tx.Rollback()
							return
						}
						if err := tx.Commit(); err != nil {
							t.Error(err)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			if err := p.conn.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var sum int64
			if err := p.wb.QueryRow("SELECT SUM(n) FROM counters").Scan(&sum); err != nil {
				t.Fatal(err)
			}
			if sum != 60+8*per {
				t.Fatalf("sum %d, want %d", sum, 60+8*per)
			}
			if st := p.conn.Stats(); st.Buffered != 8*per || st.FlushedRows > 3*st.Flushes {
				t.Fatalf("buffered %d of %d, %d row writes in %d flushes", st.Buffered, 8*per, st.FlushedRows, st.Flushes)
			}
		})
	}
}

// TestLazyTxOrder: a transaction whose only statement is a held write takes
// effect when it is opened on the database (its first read) or commits:
// another connection's write of the same row acknowledged in between is
// ordered before it, the order in which the two became visible. (Directly,
// the other write would have waited for the transaction's lock, and
// returned only after its COMMIT.)
func TestLazyTxOrder(t *testing.T) {
	p := newOraclePair(t, "sqlite3", exactSchema, exactRules)
	ctx := context.Background()
	tx, err := p.wb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("UPDATE counters SET n = ? WHERE id = 1", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := p.wb.Exec("UPDATE counters SET n = ? WHERE id = 1", 7); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := p.wb.QueryRow("SELECT n FROM counters WHERE id = 1").Scan(&n); err != nil || n != 5 {
		t.Fatalf("n = %d, %v; want the committed transaction's 5", n, err)
	}
}

// TestLazyTxAckDisk: a held write committed is acknowledged at the level
// its statement's context asked for: COMMIT returns once its journal record
// is fsynced, although the table acknowledges from memory and the journal
// never fsyncs on its own.
func TestLazyTxAckDisk(t *testing.T) {
	p := newOraclePair(t, "sqlite3", exactSchema, journalRules(t.TempDir(), "no", "memory", "1h"))
	ctx := ContextWithAck(context.Background(), AckDisk)
	syncs := func() uint64 { return p.conn.buf.journal.Stats().Syncs }
	// Key 1 known first, so the transaction's write needs no probe.
	if _, err := p.wb.Exec("UPDATE counters SET n = n + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	before := syncs()
	tx, err := p.wb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if syncs() == before {
		t.Fatal("COMMIT returned before the held write's journal record was fsynced")
	}
	if st := p.conn.Stats(); st.Buffered != 2 {
		t.Fatalf("buffered %d, want 2", st.Buffered)
	}
}

// TestLazyTxGroupOverBound: a transaction writing more rows than its table
// may hold goes to the database at COMMIT, whole, instead of waiting for
// room that could never come.
func TestLazyTxGroupOverBound(t *testing.T) {
	rules := "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    max_dirty: 1\n"
	p := newOraclePair(t, "sqlite3", exactSchema, rules)
	for _, db := range []*sql.DB{p.direct, p.wb} {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for id := 1; id <= 3; id++ {
			if _, err := tx.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", id); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.conn.Stats(); st.Buffered != 0 {
		t.Errorf("buffered %d writes of a transaction over its table's bound", st.Buffered)
	}
	p.same(t, "counters")
}

// TestLazyTxRefusedValue: a write in a lazy transaction whose value the
// database refuses (NULL into a NOT NULL column) fails at Exec, as
// directly, rather than being held and answered.
func TestLazyTxRefusedValue(t *testing.T) {
	p := newOraclePair(t, "sqlite3", replaceSchema, replaceRules)
	for _, q := range []string{
		"INSERT INTO items (id, n, note) VALUES (?, ?, ?)",
		"INSERT INTO items (id, n, note) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n",
		"REPLACE INTO items (id, n, note) VALUES (?, ?, ?)",
		"UPDATE items SET n = ?, note = ? WHERE id = ?",
	} {
		args := []any{7, nil, "x"}
		if strings.HasPrefix(q, "UPDATE") {
			args = []any{nil, "x", 1}
		}
		var errs [2]error
		for side, db := range []*sql.DB{p.direct, p.wb} {
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			_, errs[side] = tx.Exec(q, args...)
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
		}
		if errs[0] == nil || errs[1] == nil {
			t.Errorf("%s: error %v through writeback, %v directly", q, errs[1], errs[0])
		}
	}
	p.same(t, "items")
}
