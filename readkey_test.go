package writeback

import (
	"context"
	"sync"
	"testing"
)

const readSchema = "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, note TEXT, \"Mixed\" BIGINT DEFAULT 0);" +
	"CREATE TABLE pairs (a BIGINT NOT NULL, b TEXT NOT NULL, n BIGINT, PRIMARY KEY (a, b));" +
	"INSERT INTO counters (id, n) VALUES (1, 10), (2, 20), (3, 30);" +
	"INSERT INTO pairs (a, b, n) VALUES (1, 'x', 1)"

// readByKeyOracle: reads by key see every acknowledged write, as directly,
// whether answered from the database plus the buffer or at the barrier.
func readByKeyOracle(t *testing.T, driverName string) {
	p := newOraclePair(t, driverName, readSchema, exactRules)
	w := func(q string, args ...any) oracleStep { return oracleStep{query: q, args: args} }
	r := func(q string, args ...any) oracleStep { return oracleStep{query: q, args: args, read: true} }
	before := p.conn.Stats()
	p.run(t,
		w("UPDATE counters SET n = n + ? WHERE id = ?", 5, 1),
		r("SELECT n FROM counters WHERE id = ?", 1),
		w("UPDATE counters SET n = n - ? WHERE id = ?", 2, 1),
		r("SELECT id, n, note FROM counters WHERE id = ?", 1),
		r("SELECT * FROM counters WHERE id = ?", 1),
		r("SELECT counters.n FROM counters WHERE counters.id = ? ORDER BY counters.id LIMIT 1", 1),
		r("SELECT n FROM counters WHERE id = ?", 2), // nothing buffered for this key
		w(`UPDATE counters SET "Mixed" = "Mixed" + ? WHERE id = ?`, 7, 2),
		r(`SELECT "Mixed", n FROM counters WHERE id = ?`, 2),
		r("SELECT * FROM counters WHERE id = ?", 2),
		// An assignment: the read waits for the flush.
		w("UPDATE counters SET note = ?, n = n + 1 WHERE id = ?", "hi", 3),
		r("SELECT n, note FROM counters WHERE id = ?", 3),
		w("UPDATE counters SET note = ?, n = n + 1 WHERE id = ?", "again", 3),
		r("SELECT n FROM counters WHERE id = ?", 3), // the assigned column is not read
		// A pending INSERT: at the barrier.
		w("INSERT INTO counters (id, n) VALUES (?, ?)", 4, 1),
		w("UPDATE counters SET n = n + ? WHERE id = ?", 1, 4),
		r("SELECT n FROM counters WHERE id = ?", 4),
		r("SELECT n FROM counters WHERE id = ?", 99),
		w("UPDATE pairs SET n = n + ? WHERE a = ? AND b = ?", 3, 1, "x"),
		r("SELECT n FROM pairs WHERE b = ? AND a = ?", "x", 1),
		r("SELECT n FROM counters WHERE id = 1"),
		// A delta that counts NULL as 0, on a NULL: not a plain sum.
		w(`UPDATE counters SET "Mixed" = NULL WHERE id > ?`, 0),
		w(`UPDATE counters SET "Mixed" = COALESCE("Mixed", 0) + ? WHERE id = ?`, 7, 1),
		r(`SELECT "Mixed" FROM counters WHERE id = ?`, 1),
	)
	p.same(t, "counters", "pairs")
	st := p.conn.Stats()
	if st.ReadsByKey-before.ReadsByKey < 8 {
		t.Fatalf("%d reads answered without a barrier, want at least 8", st.ReadsByKey-before.ReadsByKey)
	}
}

func TestReadByKeySQLite(t *testing.T)   { readByKeyOracle(t, "sqlite3") }
func TestReadByKeyPostgres(t *testing.T) { readByKeyOracle(t, "pgx") }

// TestReadByKeyRacesFlushes: each goroutine increments its own counters and
// reads each back at once, while flushes run every few milliseconds: every
// read must return exactly the goroutine's increments, never one counted
// twice (a flush committing between the buffer's delta and the database's
// value) or missed.
func TestReadByKeyRacesFlushes(t *testing.T) {
	for _, driverName := range []string{"sqlite3", "pgx"} {
		t.Run(driverName, func(t *testing.T) {
			p := newOraclePair(t, driverName, readSchema, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 2ms\n")
			const goroutines, keysEach, rounds = 8, 4, 150
			var wg sync.WaitGroup
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					ctx := context.Background()
					counts := make([]int64, keysEach)
					for i := 0; i < rounds; i++ {
						k := i % keysEach
						id := int64(100 + g*keysEach + k)
						if i < keysEach {
							if _, err := p.wb.ExecContext(ctx, p.q("INSERT INTO counters (id, n) VALUES (?, 0)"), id); err != nil {
								t.Error(err)
								return
							}
						}
						if _, err := p.wb.ExecContext(ctx, p.q("UPDATE counters SET n = n + ? WHERE id = ?"), 1, id); err != nil {
							t.Error(err)
							return
						}
						counts[k]++
						var n int64
						if err := p.wb.QueryRowContext(ctx, p.q("SELECT n FROM counters WHERE id = ?"), id).Scan(&n); err != nil {
							t.Error(err)
							return
						}
						if n != counts[k] {
							t.Errorf("goroutine %d key %d: read %d after %d increments", g, id, n, counts[k])
							return
						}
					}
				}(g)
			}
			wg.Wait()
			if err := p.conn.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var total int64
			if err := p.direct.QueryRow("SELECT 1").Scan(&total); err != nil {
				t.Fatal(err)
			}
			wantTotal := int64(goroutines * rounds)
			var got int64
			if err := p.wb.QueryRow("SELECT SUM(n) FROM counters WHERE id >= 100").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != wantTotal {
				t.Errorf("the table holds %d increments, want %d", got, wantTotal)
			}
			st := p.conn.Stats()
			t.Logf("%d reads by key without a barrier, %d barriers, %d flushes", st.ReadsByKey, st.Barriers, st.Flushes)
			if st.ReadsByKey == 0 || st.Flushes < 10 {
				t.Fatalf("reads by key %d, flushes %d: the test did not race them", st.ReadsByKey, st.Flushes)
			}
		})
	}
}
