package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The upsert oracle tests run the same statements on a database directly
// and on an identical one through writeback: every result and read must be
// the same, and after Flush every table.

const upsertSchema = `
CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL DEFAULT 0, label TEXT, score BIGINT);
CREATE TABLE pairs (a BIGINT NOT NULL, b TEXT NOT NULL, n BIGINT, PRIMARY KEY (a, b))`

func upsertRules(maxLoss string) string {
	return `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: ` + maxLoss + `
    max_dirty: 40
  pairs:
    mode: back
    key: [a, b]
    max_loss: ` + maxLoss + `
    batch: 7
`
}

// genUpsertWorkload makes a deterministic random mix of upserts of every
// form the driver buffers, upserts it must not buffer, and plain INSERT,
// UPDATE, DELETE and reads of the same keys.
func genUpsertWorkload(seed uint64, n int) []diffOp {
	r := rand.New(rand.NewPCG(seed, seed*31))
	labels := []any{"a", "b", "it's", "", nil}
	id := func() int64 { return r.Int64N(60) } // 0..39 exist at first
	var fresh []int64                          // keys INSERTs wrote
	var ops []diffOp
	one := func() diffOp {
		switch p := r.IntN(100); {
		case p < 18:
			return diffOp{query: "INSERT INTO counters (id, views) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET views = counters.views + EXCLUDED.views", args: []any{id(), r.Int64N(10) - 3}}
		case p < 24:
			return diffOp{query: `INSERT INTO "counters" ("id","views","label") VALUES (?,?,?) ON CONFLICT ("id") DO UPDATE SET "views"="counters"."views"+EXCLUDED."views"`, args: []any{id(), r.Int64N(5), labels[r.IntN(len(labels))]}}
		case p < 30:
			return diffOp{query: `INSERT INTO "counters" ("id","views","label") VALUES (?,?,?) ON CONFLICT ("id") DO UPDATE SET "views"="excluded"."views","label"="excluded"."label"`, args: []any{id(), r.Int64N(50), labels[r.IntN(len(labels))]}}
		case p < 35:
			return diffOp{query: "INSERT INTO counters (id, views, label) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET views = counters.views + 1, label = excluded.label", args: []any{id(), r.Int64N(5), labels[r.IntN(len(labels))]}}
		case p < 37:
			return diffOp{query: "INSERT INTO counters (id, views) VALUES (?, 0) ON CONFLICT (id) DO UPDATE SET views = counters.views - ?", args: []any{id(), r.Int64N(3)}}
		case p < 39:
			// The column unqualified, as GORM's gorm.Expr("views + ?") writes
			// it: SQLite's existing row; an ambiguity error in PostgreSQL.
			return diffOp{query: "INSERT INTO counters (id, views) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET views = views + ?", args: []any{id(), int64(1), int64(1)}}
		case p < 43:
			// A delta on a column the insert leaves to its default.
			return diffOp{query: "INSERT INTO counters (id) VALUES (?) ON CONFLICT (id) DO UPDATE SET score = counters.score + 1", args: []any{id()}}
		case p < 46:
			return diffOp{query: "INSERT INTO counters (id, score) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score + counters.score", args: []any{id(), []any{nil, int64(2), int64(5)}[r.IntN(3)]}}
		case p < 50:
			a, b := id(), id()
			if r.IntN(3) == 0 {
				b = a // the same key twice: an error in PostgreSQL, two updates in SQLite
			}
			return diffOp{query: "INSERT INTO counters (id, views) VALUES (?, ?), (?, ?) ON CONFLICT (id) DO UPDATE SET views = counters.views + EXCLUDED.views", args: []any{a, int64(1), b, int64(2)}}
		case p < 52:
			// NOT NULL on the proposed row: an error directly, never buffered.
			return diffOp{query: "INSERT INTO counters (id, views) VALUES (?, NULL) ON CONFLICT (id) DO UPDATE SET views = counters.views + 1", args: []any{id()}}
		case p < 54:
			// The conflict target is not the key: through.
			return diffOp{query: "INSERT INTO pairs (a, b, n) VALUES (?, ?, 1) ON CONFLICT (a) DO UPDATE SET n = pairs.n + 1", args: []any{r.Int64N(5), "x"}}
		case p < 62:
			return diffOp{query: "INSERT INTO pairs (a, b, n) VALUES (?, ?, ?) ON CONFLICT (b, a) DO UPDATE SET n = pairs.n + EXCLUDED.n", args: []any{r.Int64N(6), []string{"x", "y"}[r.IntN(2)], r.Int64N(4)}}
		case p < 72:
			return diffOp{query: "UPDATE counters SET views = views + ? WHERE id = ?", args: []any{r.Int64N(7), id()}}
		case p < 76:
			return diffOp{query: "UPDATE counters SET label = ?, score = ? WHERE id = ?", args: []any{labels[r.IntN(len(labels))], r.Int64N(9), id()}}
		case p < 78:
			// Fresh keys only: a buffered INSERT of an existing key is
			// refused at flush, not at Exec (as without upserts).
			fresh = append(fresh, 1000+r.Int64N(1<<40))
			return diffOp{query: "INSERT INTO counters (id, views, label) VALUES (?, ?, ?)", args: []any{fresh[len(fresh)-1], r.Int64N(9), "ins"}}
		case p < 80 && len(fresh) > 0:
			// An upsert of a key a recent INSERT wrote: it amends the INSERT.
			return diffOp{query: "INSERT INTO counters (id, views, label) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET views = counters.views + EXCLUDED.views, label = EXCLUDED.label", args: []any{fresh[len(fresh)-1-r.IntN(min(3, len(fresh)))], r.Int64N(9), "ups"}}
		case p < 83:
			return diffOp{query: "DELETE FROM counters WHERE id = ?", args: []any{id()}}
		case p < 93:
			return diffOp{read: true, query: "SELECT views, label, score FROM counters WHERE id = ?", args: []any{id()}}
		case p < 95:
			return diffOp{read: true, query: "SELECT count(*), coalesce(sum(views), 0), count(label), coalesce(sum(score), 0) FROM counters"}
		case p < 97:
			k := id()
			return diffOp{abort: r.IntN(2) == 0, tx: []diffOp{
				{query: "INSERT INTO counters (id, views) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET views = counters.views + EXCLUDED.views", args: []any{k, int64(5)}},
				{read: true, query: "SELECT views, label, score FROM counters WHERE id = ?", args: []any{k}},
				{query: "INSERT INTO pairs (a, b, n) VALUES (?, 'y', 1) ON CONFLICT (a, b) DO UPDATE SET n = pairs.n + 1", args: []any{r.Int64N(6)}},
			}}
		default:
			return diffOp{read: true, query: "SELECT a, b, n FROM pairs ORDER BY a, b"}
		}
	}
	for i := 0; i < n; i++ {
		ops = append(ops, one())
	}
	return ops
}

func seedUpsertTables(t *testing.T, db *sql.DB, dollar bool) {
	execAll(t, db, upsertSchema)
	for id := 0; id < 40; id++ {
		mustExec(t, db, placeholders("INSERT INTO counters (id, views, label, score) VALUES (?, ?, ?, ?)", dollar), id, id%5, "l"+strconv.Itoa(id%3), []any{nil, int64(id)}[id%2])
	}
	for a := 0; a < 4; a++ {
		mustExec(t, db, placeholders("INSERT INTO pairs (a, b, n) VALUES (?, 'x', 0)", dollar), a)
	}
}

func runUpsertDifferential(t *testing.T, direct, wb *sql.DB, dollar bool, seed uint64, n int) {
	ctx := context.Background()
	seedUpsertTables(t, direct, dollar)
	seedUpsertTables(t, wb, dollar)
	if err := Flush(ctx, wb); err != nil {
		t.Fatal(err)
	}
	before, err := StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	for i, op := range genUpsertWorkload(seed, n) {
		want := runOnCount(t, direct, op, dollar)
		got := runOnCount(t, wb, op, dollar)
		if got != want {
			t.Fatalf("seed %d op %d %q %v: through writeback %q, direct %q", seed, i, op.query, op.args, got, want)
		}
	}
	if err := Flush(ctx, wb); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range []struct{ name, order string }{{"counters", "id"}, {"pairs", "a, b"}} {
		want, got := dumpTable(t, direct, tbl.name, tbl.order), dumpTable(t, wb, tbl.name, tbl.order)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: table %s differs after Flush: %s", seed, tbl.name, firstDiff(got, want))
		}
	}
	st, err := StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buffered-before.Buffered < int64(n)/4 || st.Coalesced == 0 {
		t.Fatalf("the workload buffered too little: %+v", st)
	}
	if st.DeadLetters != 0 {
		t.Fatalf("dead letters in a valid workload: %+v", st)
	}
	t.Logf("seed %d: %d ops, buffered %d (coalesced %d), passed through %d, flushes %d, rows flushed %d",
		seed, n, st.Buffered-before.Buffered, st.Coalesced, st.PassedThrough, st.Flushes, st.FlushedRows)
}

// runOnCount is runOn with the RowsAffected of an INSERT or upsert in the
// outcome (a buffered UPDATE's count is another matter).
func runOnCount(t *testing.T, db *sql.DB, op diffOp, dollar bool) string {
	if op.tx != nil {
		return runTx(t, db, op, dollar)
	}
	if op.read || strings.HasPrefix(op.query, "UPDATE") {
		return runOn(t, db, op, dollar)
	}
	res, err := db.Exec(placeholders(op.query, dollar), op.args...)
	if err != nil {
		return "error"
	}
	n, err := res.RowsAffected()
	if err != nil {
		t.Fatal(err)
	}
	return "ok " + strconv.FormatInt(n, 10)
}

func TestUpsertDifferentialSQLite(t *testing.T) {
	diffSubtests(t, "sqlite3", sqliteDSN, "direct", "wb", upsertRules, func(t *testing.T, direct, wb *sql.DB, seed uint64) {
		runUpsertDifferential(t, direct, wb, false, seed, diffOps())
	})
}

func TestUpsertDifferentialPostgres(t *testing.T) {
	requirePostgres(t)
	diffSubtests(t, "pgx", pgSchema, "upd", "upw", upsertRules, func(t *testing.T, direct, wb *sql.DB, seed uint64) {
		runUpsertDifferential(t, direct, wb, true, seed, diffOps())
	})
}

// upsertCounters runs, from goroutines goroutines, perG counter writes each
// to a few hot keys: upserts of both delta forms and plain UPDATEs.
func upsertCounters(t *testing.T, db *sql.DB, dollar bool, goroutines, perG int) {
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for i := 0; i < perG; i++ {
				// Every form commutes (an upsert inserts what it would add),
				// so the final table does not depend on the interleaving.
				id := r.Int64N(8)
				var err error
				switch i % 3 {
				case 0:
					_, err = db.Exec(placeholders("INSERT INTO counters (id, views, score) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET views = counters.views + EXCLUDED.views, score = counters.score + excluded.score", dollar), id, int64(g+1), int64(i))
				case 1:
					_, err = db.Exec(placeholders("INSERT INTO counters (id, views, score) VALUES (?, 1, ?) ON CONFLICT (id) DO UPDATE SET views = counters.views + 1, score = counters.score + ?", dollar), id, int64(i), int64(i))
				default:
					// Keys 0..3 exist from the start: the UPDATE always matches.
					_, err = db.Exec(placeholders("UPDATE counters SET views = views + 2 WHERE id = ?", dollar), id%4)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func runUpsertConcurrent(t *testing.T, direct, wb *sql.DB, dollar bool) {
	for _, db := range []*sql.DB{direct, wb} {
		execAll(t, db, upsertSchema)
		execAll(t, db, "INSERT INTO counters (id, views, score) VALUES (0, 0, 0), (1, 0, 0), (2, 0, 0), (3, 0, 0)")
		upsertCounters(t, db, dollar, 8, 300)
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	want, got := dumpTable(t, direct, "counters", "id"), dumpTable(t, wb, "counters", "id")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("counters differ:\nwriteback %s\ndirect    %s", strings.Join(got, "; "), strings.Join(want, "; "))
	}
	st, err := StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	if st.Coalesced < 1000 || st.DeadLetters != 0 {
		t.Fatalf("expected most writes coalesced and none dead: %+v", st)
	}
	t.Logf("buffered %d (coalesced %d), passed through %d, flushes %d, rows flushed %d", st.Buffered, st.Coalesced, st.PassedThrough, st.Flushes, st.FlushedRows)
}

func TestUpsertConcurrentSQLite(t *testing.T) {
	direct, err := sql.Open("sqlite3", sqliteDSN(t, "direct"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	wb := openWritebackDeferred(t, "sqlite3", sqliteDSN(t, "wb"), upsertRules("20ms"))
	defer wb.Close()
	runUpsertConcurrent(t, direct, wb, false)
}

func TestUpsertConcurrentPostgres(t *testing.T) {
	direct, err := sql.Open("pgx", pgSchema(t, "upcd"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	wb := openWritebackDeferred(t, "pgx", pgSchema(t, "upcw"), upsertRules("20ms"))
	defer wb.Close()
	runUpsertConcurrent(t, direct, wb, true)
}

// poisonUpsert buffers upserts of which one proposes, for an absent key,
// a row that violates a unique constraint other than the key, flushes, and
// checks that every other key holds its expected value and the one row is
// dead-lettered alone, as an upsert.
func poisonUpsert(t *testing.T, driverName, baseDSN string, dollar bool) {
	ddb, err := sql.Open(driverName, baseDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	execAll(t, ddb, "CREATE TABLE items (id bigint PRIMARY KEY, qty bigint NOT NULL, label text UNIQUE)")
	for id := 0; id < 50; id++ {
		mustExec(t, ddb, placeholders("INSERT INTO items (id, qty, label) VALUES (?, 100, ?)", dollar), id, fmt.Sprintf("item%d", id))
	}
	var dead []DeadLetter
	var mu sync.Mutex
	dlPath := filepath.Join(t.TempDir(), "dead.jsonl")
	wb, _ := openWritebackWith(t, driverName, baseDSN, `
tables:
  items:
    mode: back
    key: [id]
    max_loss: 1h
    allow: [unique]
`, WithOnDeadLetter(func(d DeadLetter) { mu.Lock(); dead = append(dead, d); mu.Unlock() }), WithDeadLetterFile(dlPath))
	const keys, bad = 100, 77 // keys 50..99 start absent; bad is one of them
	upsert := placeholders("INSERT INTO items (id, qty, label) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET qty = items.qty + EXCLUDED.qty", dollar)
	want := map[int64]int64{}
	for id := int64(0); id < 50; id++ {
		want[id] = 100
	}
	for round := int64(1); round <= 3; round++ {
		for id := int64(0); id < keys; id++ {
			label := fmt.Sprintf("item%d", id)
			if id == bad {
				label = "item3" // key 3's: refused when key 77 is inserted
			}
			res, err := wb.Exec(upsert, id, round, label)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				t.Fatalf("RowsAffected %d, want 1", n)
			}
			want[id] += round
		}
	}
	delete(want, bad)
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatalf("flush: %v (a permanent error is dead-lettered, not returned)", err)
	}
	rows, err := ddb.Query("SELECT id, qty, label FROM items ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]int64{}
	for rows.Next() {
		var id, qty int64
		var label string
		if err := rows.Scan(&id, &qty, &label); err != nil {
			t.Fatal(err)
		}
		if label != fmt.Sprintf("item%d", id) {
			t.Errorf("key %d: label %q", id, label)
		}
		got[id] = qty
	}
	rows.Close()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("items after flush:\n got %v\nwant %v", got, want)
	}
	st, _ := StatsOf(wb)
	if st.DeadLetters != 1 || len(dead) != 1 {
		t.Fatalf("DeadLetters %d (%d reported), want 1", st.DeadLetters, len(dead))
	}
	d := dead[0]
	if d.Op != "upsert" || d.Key[0] != int64(bad) || d.Writes != 3 || !reflect.DeepEqual(d.UpdateColumns, []string{"qty"}) ||
		!reflect.DeepEqual(d.UpdateValues, []any{int64(6)}) || !reflect.DeepEqual(d.UpdateDelta, []bool{true}) || d.Err == nil {
		t.Fatalf("dead letter %+v", d)
	}
	line, err := os.ReadFile(dlPath)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := ParseDeadLetter(line[:len(line)-1])
	if err != nil {
		t.Fatal(err)
	}
	if fd.Op != "upsert" || !reflect.DeepEqual(fd.UpdateColumns, d.UpdateColumns) || !reflect.DeepEqual(fd.UpdateValues, d.UpdateValues) ||
		!reflect.DeepEqual(fd.UpdateDelta, d.UpdateDelta) || !reflect.DeepEqual(fd.Columns, d.Columns) {
		t.Fatalf("dead-letter file %s, hook %+v", line, d)
	}
	if st.Coalesced < 2*keys-1 {
		t.Fatalf("Coalesced %d: the rounds were not coalesced", st.Coalesced)
	}
}

func TestUpsertPoisonRowSQLite(t *testing.T) {
	poisonUpsert(t, "sqlite3", sqliteDSN(t, "poison"), false)
}

func TestUpsertPoisonRowPostgres(t *testing.T) {
	poisonUpsert(t, "pgx", pgSchema(t, "uppoison"), true)
}

// TestUpsertPostgresIntDeltaRange coalesces upsert deltas on an integer
// column whose sum exceeds the column's range while the final value fits:
// the flush adds in bigint, as the single statements did one by one.
func TestUpsertPostgresIntDeltaRange(t *testing.T) {
	dsn := pgSchema(t, "upint")
	direct, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE c (id int PRIMARY KEY, n int NOT NULL)")
	mustExec(t, direct, "INSERT INTO c VALUES (1, -2000000000)")
	wb := openWriteback(t, "pgx", dsn, "tables:\n  c:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	defer wb.Close()
	for i := 0; i < 2; i++ {
		if _, err := wb.Exec("INSERT INTO c (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = c.n + EXCLUDED.n", 1, 1500000000); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := StatsOf(wb)
	if st.Buffered != 2 {
		t.Fatalf("Buffered %d, want 2", st.Buffered)
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := direct.QueryRow("SELECT n FROM c WHERE id = 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1000000000 {
		t.Fatalf("n = %d, want 1000000000", n)
	}
}

// upsertCheckedTable runs upserts on a table with a CHECK constraint: both
// databases check each upsert's proposed row even when its key exists, and
// refuse the statement then, which a buffered upsert cannot do at Exec: they
// go to the database.
func upsertCheckedTable(t *testing.T, driverName, dsn string, dollar bool) {
	direct, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE c (id bigint PRIMARY KEY, n bigint NOT NULL CHECK (n < 100))")
	mustExec(t, direct, "INSERT INTO c VALUES (1, 0)")
	wb := openWriteback(t, driverName, dsn, "tables:\n  c:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    allow: [check]\n")
	defer wb.Close()
	q := placeholders("INSERT INTO c (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = c.n + 20", dollar)
	for _, w := range []struct {
		id, n int64
		fails bool
	}{{1, 90, false}, {1, 200, true}, {1, 90, false}, {2, 90, false}} {
		if _, err := wb.Exec(q, w.id, w.n); (err != nil) != w.fails {
			t.Fatalf("upsert %v: error %v", w, err)
		}
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpTable(t, direct, "c", "id"), []string{"1|40", "2|90"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("table c = %v, want %v", got, want)
	}
	if st, _ := StatsOf(wb); st.Buffered != 0 {
		t.Fatalf("Buffered %d, want 0", st.Buffered)
	}
}

func TestUpsertCheckedTableSQLite(t *testing.T) {
	upsertCheckedTable(t, "sqlite3", sqliteDSN(t, "checked"), false)
}

func TestUpsertCheckedTablePostgres(t *testing.T) {
	upsertCheckedTable(t, "pgx", pgSchema(t, "upcheck"), true)
}
