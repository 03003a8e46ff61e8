package writeback

import "testing"

const guardSchema = "CREATE TABLE pages (id BIGINT PRIMARY KEY, views BIGINT NOT NULL DEFAULT 0, title TEXT, deleted_at TEXT);" +
	"INSERT INTO pages (id, views, title) VALUES (1, 0, 'a'), (3, 0, 'c');" +
	"INSERT INTO pages (id, views, title, deleted_at) VALUES (2, 0, 'b', '2026-01-01')"

// guardOracle: UPDATEs guarded by IS [NOT] NULL (the soft-delete shape)
// give the results and tables direct execution gives, and are buffered.
func guardOracle(t *testing.T, driverName string) {
	p := newOraclePair(t, driverName, guardSchema, "tables:\n  pages:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	w := func(q string, args ...any) oracleStep { return oracleStep{query: q, args: args} }
	r := func(q string, args ...any) oracleStep { return oracleStep{query: q, args: args, read: true} }
	inc := func(id int) oracleStep {
		return w("UPDATE pages SET views = views + ? WHERE pages.deleted_at IS NULL AND id = ?", 1, id)
	}
	softDelete := func(id int) oracleStep {
		return w("UPDATE pages SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", "2026-11-30", id)
	}
	before := p.conn.Stats()
	p.run(t,
		inc(1), inc(1), inc(1),
		inc(2),  // soft-deleted in the database: 0
		inc(99), // no such row: 0
		w("UPDATE pages SET title = ? WHERE (id = ?) AND (deleted_at IS NULL)", "renamed", 1),
		softDelete(1),
		softDelete(1), // already deleted (buffered): 0
		inc(1),        // 0
		w("UPDATE pages SET views = views + ? WHERE id = ? AND deleted_at IS NOT NULL", 10, 1),
		w("UPDATE pages SET views = views + ? WHERE id = ?", 100, 1),
		r("SELECT id, views, title, deleted_at FROM pages ORDER BY id"),
		w("UPDATE pages SET deleted_at = NULL WHERE id = ?", 1), // restored
		inc(1),
		inc(3), softDelete(3), inc(3),
		w("UPDATE pages SET deleted_at = NULL WHERE id = ? AND deleted_at IS NOT NULL", 2),
		inc(2), // restored in the database by a buffered write: 1
		w("DELETE FROM pages WHERE id = ?", 3),
		inc(3), // gone: 0
		r("SELECT id, views, title, deleted_at FROM pages ORDER BY id"),
	)
	p.same(t, "pages")
	st := p.conn.Stats()
	if b := st.Buffered - before.Buffered; b < 10 {
		t.Fatalf("%d guarded writes buffered, want at least 10", b)
	}
}

func TestGuardSQLite(t *testing.T)   { guardOracle(t, "sqlite3") }
func TestGuardPostgres(t *testing.T) { guardOracle(t, "pgx") }

// ignoreOracle: "ensure the row exists, then increment" — an INSERT that
// skips an existing key (INSERT OR IGNORE, ON CONFLICT DO NOTHING) before
// each increment — gives the direct results, is buffered, and makes no
// flush happen per request.
func ignoreOracle(t *testing.T, driverName string) {
	p := newOraclePair(t, driverName, exactSchema, exactRules)
	ensures := []string{"INSERT INTO counters (id, n) VALUES (?, 0) ON CONFLICT (id) DO NOTHING",
		"INSERT INTO counters (id, n) VALUES (?, 0) ON CONFLICT DO NOTHING"}
	if driverName == "sqlite3" {
		ensures = append(ensures, "INSERT OR IGNORE INTO counters (id, n) VALUES (?, 0)")
	}
	before := p.conn.Stats()
	var steps []oracleStep
	for i := 0; i < 30; i++ {
		id := []int{1, 2, 10, 11, 1, 12}[i%6]
		steps = append(steps,
			oracleStep{query: ensures[i%len(ensures)], args: []any{id}},
			oracleStep{query: "UPDATE counters SET n = n + 1 WHERE id = ?", args: []any{id}})
	}
	steps = append(steps, oracleStep{query: "SELECT id, n FROM counters ORDER BY id", read: true})
	p.run(t, steps...)
	p.same(t, "counters")
	st := p.conn.Stats()
	if b := st.Buffered - before.Buffered; b < 30+3 {
		t.Fatalf("%d writes buffered, want every increment and the new rows' INSERTs", b)
	}
	if st.Barriers-before.Barriers > 1 {
		t.Fatalf("%d barriers: the skipped INSERTs must not flush", st.Barriers-before.Barriers)
	}
}

func TestIgnoreInsertSQLite(t *testing.T)   { ignoreOracle(t, "sqlite3") }
func TestIgnoreInsertPostgres(t *testing.T) { ignoreOracle(t, "pgx") }

// TestDDLInTransaction: a back table created inside a transaction (GORM
// migrates in one) is read from the catalog once the transaction commits,
// and its writes are buffered from then on.
func TestDDLInTransaction(t *testing.T) {
	for _, driverName := range []string{"sqlite3", "pgx"} {
		t.Run(driverName, func(t *testing.T) {
			var dsn string
			if driverName == "pgx" {
				dsn = pgSchema(t, "ddltx")
			} else {
				dsn = sqliteDSN(t, "ddltx")
			}
			wb := openWritebackDeferred(t, driverName, dsn, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
			defer wb.Close()
			tx, err := wb.Begin()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec("CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0)"); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec("INSERT INTO counters (id, n) VALUES (1, 0)"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			q := "UPDATE counters SET n = n + 1 WHERE id = ?"
			if driverName == "pgx" {
				q = "UPDATE counters SET n = n + 1 WHERE id = $1"
			}
			for i := 0; i < 3; i++ {
				if _, err := wb.Exec(q, 1); err != nil {
					t.Fatal(err)
				}
			}
			st, err := StatsOf(wb)
			if err != nil {
				t.Fatal(err)
			}
			if st.Buffered != 3 {
				t.Fatalf("buffered %d of 3 writes after the transaction that created the table", st.Buffered)
			}
		})
	}
}

// ignoreManyOracle: INSERTs of several rows that skip existing keys insert
// the others and count them, as directly; known keys cost no query, and
// rows of unknown keys are probed.
func ignoreManyOracle(t *testing.T, driverName string) {
	p := newOraclePair(t, driverName, exactSchema, exactRules)
	ins := "INSERT INTO counters (id, n) VALUES (?, 0), (?, 0), (?, 0) ON CONFLICT (id) DO NOTHING"
	if driverName == "sqlite3" {
		ins = "INSERT OR IGNORE INTO counters (id, n) VALUES (?, 0), (?, 0), (?, 0)"
	}
	before := p.conn.Stats()
	steps := []oracleStep{
		{query: ins, args: []any{20, 21, 22}},                                 // none exist: probed, all inserted
		{query: ins, args: []any{20, 21, 23}},                                 // two known (buffered): one inserted
		{query: "UPDATE counters SET n = n + 1 WHERE id = ?", args: []any{1}}, // key 1 known from here
		{query: ins, args: []any{1, 20, 24}},                                  // known and buffered, one new: probed
		{query: ins, args: []any{2, 3, 25}},                                   // existing rows, not known: the database decides
		{query: ins, args: []any{20, 21, 22}},                                 // all known: 0, nothing sent
		{query: "SELECT id, n FROM counters ORDER BY id", read: true},
	}
	p.run(t, steps...)
	p.same(t, "counters")
	st := p.conn.Stats()
	if b := st.Buffered - before.Buffered; b < 6 {
		t.Fatalf("%d writes buffered, want the inserts whose rows could be told apart", b)
	}
}

func TestIgnoreManySQLite(t *testing.T)   { ignoreManyOracle(t, "sqlite3") }
func TestIgnoreManyPostgres(t *testing.T) { ignoreManyOracle(t, "pgx") }
