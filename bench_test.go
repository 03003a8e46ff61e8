package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The benchmarks in this file produce the README's Performance figures, each
// next to the target the README states for it. Each comparison is one
// benchmark function whose sub-benchmarks run in the same process, against
// the same server and files, one after the other, so their ratio is taken
// from one run:
//
//	go test -run '^$' -bench 'CounterUpdate|WriteThrough|Flush$|HotKey' -benchtime 2s -count 1 .
//
// Everything goes through database/sql and the registered "writeback" driver,
// as an application would use it; the anchors are the raw base drivers and,
// for flushes, the best hand-written batch statements (pgx native, one
// transaction). PostgreSQL benchmarks skip when the server is unreachable
// (WRITEBACK_TEST_POSTGRES selects it); each uses a schema of its own.
//
// Throughput metrics (updates/s, rows/s) are computed from the time the
// benchmark measures itself around the work, which for writeback includes
// the final Flush: the work is really done when the clock stops.

const (
	benchCounterKeys = 1000    // keys of the counter workload
	benchFlushRows   = 100_000 // distinct rows a flush round writes
	benchHotKeys     = 10      // keys of the hot-key workload
)

// benchPool sizes a *sql.DB's pool for up to 8 concurrent goroutines. Idle
// connections are kept too: with database/sql's default of 2 idle
// connections, 8 goroutines would close and reopen connections all the time.
func benchPool(db *sql.DB) {
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
}

// benchPGReachable reports whether the test server answers, so a benchmark
// can run its SQLite parts and skip only its PostgreSQL ones (each calls
// requirePostgres, which skips with the reason, or fails under CI=true).
func benchPGReachable() bool {
	db, err := sql.Open("pgx", postgresDSN())
	if err != nil {
		return false
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx) == nil
}

// benchOpen opens a base driver's *sql.DB and pings it.
func benchOpen(b *testing.B, driverName, dsn string) *sql.DB {
	b.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		b.Fatal(err)
	}
	benchPool(db)
	b.Cleanup(func() { db.Close() })
	return db
}

// benchWriteback opens a writeback *sql.DB over driverName/dsn with rules and
// closes it (which flushes) when the benchmark ends.
func benchWriteback(b *testing.B, driverName, dsn, rules string) *sql.DB {
	b.Helper()
	db := openWriteback(b, driverName, dsn, rules)
	benchPool(db)
	b.Cleanup(func() {
		if err := db.Close(); err != nil {
			b.Error(err)
		}
	})
	return db
}

// benchFill creates table (id, views) with rows 0..n-1 and views 0 through db.
func benchFill(b *testing.B, db *sql.DB, dollar bool, table string, n int) {
	b.Helper()
	execAll(b, db, "CREATE TABLE "+table+" (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
	benchRefill(b, db, dollar, table, n)
}

// benchRefill inserts rows 0..n-1 with views 0 in one transaction.
func benchRefill(b *testing.B, db *sql.DB, dollar bool, table string, n int) {
	b.Helper()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	st, err := tx.Prepare(placeholders("INSERT INTO "+table+" (id, views) VALUES (?, 0)", dollar))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := st.Exec(int64(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// benchStats returns writeback's figures for db.
func benchStats(b *testing.B, db *sql.DB) Stats {
	b.Helper()
	st, err := StatsOf(db)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// benchWorkers runs b.N calls of op split among g goroutines (each with its
// own fixed-seed generator), then finish (nil for none), and returns the time
// from the start of the first call to the end of finish. Only that span is
// timed.
func benchWorkers(b *testing.B, g int, op func(r *rand.Rand) error, finish func() error) time.Duration {
	b.Helper()
	b.StopTimer()
	elapsed, err := runWorkers(g, b.N, op, func() { b.ResetTimer(); b.StartTimer() }, finish)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	return elapsed
}

// runWorkers runs n calls of op split among g goroutines (each with its own
// fixed-seed generator), then finish (nil for none), and returns the time
// from the start of the first call to the end of finish and the first
// error. start is called once every goroutine is ready, just before that
// span begins.
func runWorkers(g, n int, op func(r *rand.Rand) error, start func(), finish func() error) (time.Duration, error) {
	var wg sync.WaitGroup
	ready := make(chan struct{})
	errs := make(chan error, g)
	for w := 0; w < g; w++ {
		k := n / g
		if w < n%g {
			k++
		}
		wg.Add(1)
		go func(w, k int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(20240601, uint64(w)))
			<-ready
			for i := 0; i < k; i++ {
				if err := op(r); err != nil {
					errs <- err
					return
				}
			}
		}(w, k)
	}
	if start != nil {
		start()
	}
	t0 := time.Now()
	close(ready)
	wg.Wait()
	var err error
	select {
	case err = <-errs:
	default:
		if finish != nil {
			err = finish()
		}
	}
	return time.Since(t0), err
}

// benchRowWrites reports writeback's row writes per application write and
// flushes over the span between two Stats; the span must end after a Flush.
func benchRowWrites(b *testing.B, before, after Stats) {
	b.Helper()
	buffered := after.Buffered - before.Buffered
	if buffered > 0 {
		b.ReportMetric(float64(after.FlushedRows-before.FlushedRows)/float64(buffered), "rowwrites/write")
	}
	b.ReportMetric(float64(after.Flushes-before.Flushes), "flushes")
	if after.Dirty != 0 {
		b.Fatalf("%d rows still dirty after Flush", after.Dirty)
	}
	if d := after.NoMatch - before.NoMatch; d != 0 {
		b.Fatalf("%d flushed UPDATEs matched no row", d)
	}
}

// benchCounterRules is the counter table as a back table.
const benchCounterRules = `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 1s
`

// BenchmarkCounterUpdate measures the first two performance targets
// (buffered updates at least 100x direct autocommit PostgreSQL, and at least
// 30x PostgreSQL with synchronous_commit=off): a counter UPDATE by key over
// 1000 pre-filled keys, from 1 and 8 goroutines, on PostgreSQL directly
// (synchronous_commit on and off) and through writeback (max_loss 1s) on
// PostgreSQL and SQLite. The writeback runs end with a Flush inside the
// timed span, so updates/s counts committed work.
// rowwrites/write is the database rows written per application write.
func BenchmarkCounterUpdate(b *testing.B) {
	const q = "UPDATE counters SET views = views + 1 WHERE id = ?"
	ctx := context.Background()
	var direct, async, wbPG *sql.DB
	pgOK := benchPGReachable()
	if pgOK {
		pgDSN := pgSchema(b, "bcnt")
		direct = benchOpen(b, "pgx", pgDSN)
		benchFill(b, direct, true, "counters", benchCounterKeys)
		async = benchOpen(b, "pgx", pgDSN+" synchronous_commit=off")
		var sc string
		if err := async.QueryRow("SHOW synchronous_commit").Scan(&sc); err != nil || sc != "off" {
			b.Fatalf("synchronous_commit=off in the DSN did not take: %q, %v", sc, err)
		}
		wbPG = benchWriteback(b, "pgx", pgDSN, benchCounterRules)
	}
	needPG := func(b *testing.B) {
		if !pgOK {
			requirePostgres(b)
		}
	}

	liteDSN := sqliteDSN(b, "bcnt")
	lite := benchOpen(b, "sqlite3", liteDSN)
	benchFill(b, lite, false, "counters", benchCounterKeys)
	wbLite := benchWriteback(b, "sqlite3", liteDSN, benchCounterRules)

	direct1 := func(db *sql.DB, q string) func(r *rand.Rand) error {
		return func(r *rand.Rand) error {
			_, err := db.ExecContext(ctx, q, int64(r.IntN(benchCounterKeys)))
			return err
		}
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("pg-direct/g%d", g), func(b *testing.B) {
			needPG(b)
			el := benchWorkers(b, g, direct1(direct, placeholders(q, true)), nil)
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
		})
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("pg-synccommit-off/g%d", g), func(b *testing.B) {
			needPG(b)
			el := benchWorkers(b, g, direct1(async, placeholders(q, true)), nil)
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
		})
	}
	viaWriteback := func(db *sql.DB, q string, g int) func(b *testing.B) {
		return func(b *testing.B) {
			if db == nil {
				needPG(b)
			}
			before := benchStats(b, db)
			el := benchWorkers(b, g, direct1(db, q), func() error { return Flush(ctx, db) })
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
			benchRowWrites(b, before, benchStats(b, db))
		}
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("writeback-pg/g%d", g), viaWriteback(wbPG, placeholders(q, true), g))
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("writeback-sqlite/g%d", g), viaWriteback(wbLite, q, g))
	}
}

// BenchmarkWriteThrough is the cost of a statement the wrapper passes to the
// base driver (the target: at most 1.05x the raw driver's time): an
// UPDATE of a write-through table (orders is mode: through, next to a back
// table), one goroutine, raw driver vs writeback on the same database.
// PostgreSQL runs with synchronous_commit=off for both sides, so the
// statement is cheaper and the fsync noise smaller than the wrapper's cost
// would otherwise hide in. The sqlite-select pair is a cheap read against a
// fast base, where the wrapper's overhead shows most.
func BenchmarkWriteThrough(b *testing.B) {
	const rules = `
tables:
  counters:
    mode: back
    key: [id]
  orders:
    mode: through
`
	const q = "UPDATE orders SET n = n + 1 WHERE id = ?"
	ctx := context.Background()
	update := func(q string) func(db *sql.DB, i int) error {
		return func(db *sql.DB, i int) error {
			_, err := db.ExecContext(ctx, q, int64(i%benchCounterKeys))
			return err
		}
	}
	selectOne := func(db *sql.DB, _ int) error {
		var v int64
		return db.QueryRowContext(ctx, "SELECT 1").Scan(&v)
	}
	run := func(db *sql.DB, op func(db *sql.DB, i int) error) func(b *testing.B) {
		return func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := op(db, i); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	// interleaved runs b.N statements on each side in alternating blocks
	// (who goes first alternates too), so both sides see the same machine
	// and the same state of the database. Its wrapped/raw is the median of
	// the blocks' ratios: on a shared, noisy machine a pause that hits one
	// block moves the total by more than the wrapper costs, and the median
	// by nothing. wrapped/raw-total is the ratio of the totals.
	interleaved := func(raw, wrapped *sql.DB, op func(db *sql.DB, i int) error) func(b *testing.B) {
		return func(b *testing.B) {
			const block = 64
			dbs := [2]*sql.DB{raw, wrapped}
			var spent [2]time.Duration
			var ratios []float64
			for done, blk := 0, 0; done < b.N; blk++ {
				n := min(block, b.N-done)
				var took [2]time.Duration
				for k := 0; k < 2; k++ {
					side := (k + blk) % 2
					t0 := time.Now()
					for i := done; i < done+n; i++ {
						if err := op(dbs[side], i); err != nil {
							b.Fatal(err)
						}
					}
					took[side] = time.Since(t0)
					spent[side] += took[side]
				}
				ratios = append(ratios, float64(took[1])/float64(took[0]))
				done += n
			}
			slices.Sort(ratios)
			b.ReportMetric(float64(spent[0].Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(spent[1].Nanoseconds())/float64(b.N), "wrapped-ns/op")
			b.ReportMetric(ratios[len(ratios)/2], "wrapped/raw")
			b.ReportMetric(float64(spent[1])/float64(spent[0]), "wrapped/raw-total")
		}
	}
	// counters is the back table next to orders in the rules: it must exist.
	ordersDDL := "CREATE TABLE orders (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)"
	fillOrders := func(b *testing.B, db *sql.DB, dollar bool) {
		execAll(b, db, ordersDDL)
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < benchCounterKeys; i++ {
			if _, err := tx.Exec(placeholders("INSERT INTO orders (id, n) VALUES (?, 0)", dollar), int64(i)); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}

	if benchPGReachable() {
		dsn := pgSchema(b, "bwt") + " synchronous_commit=off"
		raw := benchOpen(b, "pgx", dsn)
		fillOrders(b, raw, true)
		wrapped := benchWriteback(b, "pgx", dsn, rules)
		upd := update(placeholders(q, true))
		b.Run("raw", run(raw, upd))
		b.Run("wrapped", run(wrapped, upd))
		b.Run("interleaved", interleaved(raw, wrapped, upd))
		if st := benchStats(b, wrapped); st.Buffered != 0 {
			b.Fatalf("a write-through statement was buffered: %+v", st)
		}
	} else {
		for _, name := range []string{"raw", "wrapped", "interleaved"} {
			b.Run(name, func(b *testing.B) { requirePostgres(b) })
		}
	}

	dsn := sqliteDSN(b, "bwt")
	raw := benchOpen(b, "sqlite3", dsn)
	fillOrders(b, raw, false)
	wrapped := benchWriteback(b, "sqlite3", dsn, rules)
	b.Run("sqlite-raw", run(raw, update(q)))
	b.Run("sqlite-wrapped", run(wrapped, update(q)))
	b.Run("sqlite-interleaved", interleaved(raw, wrapped, update(q)))
	b.Run("sqlite-select-raw", run(raw, selectOne))
	b.Run("sqlite-select-wrapped", run(wrapped, selectOne))
	b.Run("sqlite-select-interleaved", interleaved(raw, wrapped, selectOne))
}

// benchFlushRules is a back table that only Flush empties: a long max_loss
// and room for every row of a round.
// rows_affected: assume keeps the untimed buffering of 100k new keys from
// costing a probe each: only the flush is measured.
func benchFlushRules(table string, batch int) string {
	return fmt.Sprintf(`
tables:
  %s:
    mode: back
    key: [id]
    max_loss: 1h
    batch: %d
    max_dirty: %d
    rows_affected: assume
`, table, batch, 2*benchFlushRows)
}

// benchFlushRound buffers benchFlushRows writes through db untimed (write
// gives the statement and arguments of row i), then times Flush alone and
// returns its duration, after checking that every row was buffered first and
// written by the flush.
func benchFlushRound(b *testing.B, db *sql.DB, write func(i int) (string, []any)) time.Duration {
	b.Helper()
	ctx := context.Background()
	before := benchStats(b, db)
	for i := 0; i < benchFlushRows; i++ {
		q, args := write(i)
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
	if st := benchStats(b, db); st.Dirty != benchFlushRows || st.Buffered-before.Buffered != benchFlushRows {
		b.Fatalf("want %d rows dirty before the flush, have %d dirty and %d buffered", benchFlushRows, st.Dirty, st.Buffered-before.Buffered)
	}
	var err error
	elapsed := benchTimed(b, func() { err = Flush(ctx, db) })
	if err != nil {
		b.Fatal(err)
	}
	after := benchStats(b, db)
	if got := after.FlushedRows - before.FlushedRows; got != benchFlushRows || after.NoMatch != before.NoMatch {
		b.Fatalf("flush wrote %d rows (want %d), %d matched nothing", got, benchFlushRows, after.NoMatch-before.NoMatch)
	}
	return elapsed
}

// benchRowsPerSec reports rows/s of b.N rounds of benchFlushRows rows.
func benchRowsPerSec(b *testing.B, elapsed time.Duration) {
	b.ReportMetric(float64(benchFlushRows)*float64(b.N)/elapsed.Seconds(), "rows/s")
}

// BenchmarkFlush is the flush throughput through the whole driver (targets:
// UPDATEs into PostgreSQL at >= 90% of the best hand-written
// UPDATE ... FROM unnest, INSERTs at >= 70% of INSERT ... SELECT FROM unnest,
// SQLite >= 1M rows/s). Each round buffers 100k distinct-key writes untimed
// (max_loss 1h, so nothing leaves early) and times writeback.Flush alone. The
// anchors write the same rows in one transaction: PostgreSQL through pgx's
// native connection, SQLite with one prepared statement. PostgreSQL UPDATE
// rounds start from a freshly filled and vacuumed table, INSERT rounds from
// an empty one, untimed, so no variant pays for another's dead rows.
func BenchmarkFlush(b *testing.B) {
	for _, c := range flushBenchCases(b) {
		b.Run(c.name, benchRounds(func(b *testing.B) time.Duration {
			c.reset(b)
			return benchFlushRound(b, c.wb, c.write)
		}))
		for _, a := range c.anchors {
			b.Run(c.name+"/anchor-"+a.name, benchRounds(a.round))
		}
	}
}

// BenchmarkFlushPaired is BenchmarkFlush with the flush and its anchor timed
// in the same round, one after the other, the order alternating from round
// to round so that both meet the same load on a shared machine. It reports
// the median of the per-round ratios (the flush's rows/s over the anchor's,
// "x-anchor"), their lowest and highest, and the median rows/s of each:
//
//	go test -run '^$' -bench FlushPaired -benchtime 12x .
func BenchmarkFlushPaired(b *testing.B) {
	for _, c := range flushBenchCases(b) {
		b.Run(c.name, func(b *testing.B) {
			benchPaired(b, func(b *testing.B) time.Duration {
				c.reset(b)
				return benchFlushRound(b, c.wb, c.write)
			}, c.anchors)
		})
	}
}

// flushBenchCase is one flush measured against hand-written ways to write
// the same rows: reset prepares the table for a flush round, write gives
// the statement buffered for row i, and each anchor resets the table and
// times one round of its hand-written statements.
type flushBenchCase struct {
	name    string
	wb      *sql.DB
	reset   func(*testing.B)
	write   func(i int) (string, []any)
	anchors []benchAnchor
}

// flushBenchCases are the flushes BenchmarkFlush and BenchmarkFlushPaired
// measure: PostgreSQL UPDATE and INSERT at batch 1000 and 10000, when the
// server answers, and SQLite UPDATE and INSERT. Names are "pg/..." and
// "sqlite/...", so -bench can pick either.
func flushBenchCases(b *testing.B) []flushBenchCase {
	cases := flushBenchSQLite(b)
	if benchPGReachable() {
		cases = append(flushBenchPostgres(b), cases...)
	} else {
		b.Run("pg", func(b *testing.B) { requirePostgres(b) }) // skipped with the reason, or failed under CI=true
	}
	return cases
}

func flushBenchPostgres(b *testing.B) []flushBenchCase {
	ctx := context.Background()
	dsn := pgSchema(b, "bfl")
	pc, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close(context.Background()) })
	pgExec := func(b *testing.B, q string) {
		if _, err := pc.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	pgExec(b, "CREATE TABLE fu (id bigint PRIMARY KEY, views bigint NOT NULL)")
	pgExec(b, "CREATE TABLE fi (id bigint PRIMARY KEY, views bigint NOT NULL)")
	resetUpdate := func(b *testing.B) {
		pgExec(b, "TRUNCATE fu")
		pgExec(b, fmt.Sprintf("INSERT INTO fu SELECT g, 0 FROM generate_series(0, %d) g", benchFlushRows-1))
		pgExec(b, "VACUUM ANALYZE fu")
	}
	resetInsert := func(b *testing.B) { pgExec(b, "TRUNCATE fi") }

	ids := make([]int64, benchFlushRows)
	for i := range ids {
		ids[i] = int64(i)
	}
	ones := make([]int64, benchFlushRows)
	mods := make([]int64, benchFlushRows)
	for i := range ones {
		ones[i] = 1
		mods[i] = int64(i % 1000)
	}
	// anchor runs q over every row, batch rows a statement, in one
	// transaction, after reset.
	anchor := func(q string, batch int, vals []int64, reset func(*testing.B)) func(b *testing.B) time.Duration {
		return func(b *testing.B) time.Duration {
			reset(b)
			return benchPgxTx(b, pc, func(tx pgx.Tx) {
				for off := 0; off < benchFlushRows; off += batch {
					end := min(off+batch, benchFlushRows)
					if _, err := tx.Exec(ctx, q, ids[off:end], vals[off:end]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	// warm opens the flusher's connection and lets the dialect learn the
	// table, as in a running application, before anything is timed.
	warm := func(b *testing.B, db *sql.DB, q string, args ...any) {
		if _, err := db.Exec(q, args...); err != nil {
			b.Fatal(err)
		}
		if err := Flush(ctx, db); err != nil {
			b.Fatal(err)
		}
	}

	var cases []flushBenchCase
	const upd = "UPDATE fu SET views = views + $1 WHERE id = $2"
	const anchorUpd = "UPDATE fu SET views = fu.views + v.d FROM unnest($1::bigint[], $2::bigint[]) AS v(id, d) WHERE fu.id = v.id"
	resetUpdate(b)
	for _, batch := range []int{1000, 10000} {
		db := benchWriteback(b, "pgx", dsn, benchFlushRules("fu", batch))
		warm(b, db, upd, int64(1), int64(0))
		cases = append(cases, flushBenchCase{
			name:    fmt.Sprintf("pg/update/batch=%d", batch),
			wb:      db,
			reset:   resetUpdate,
			write:   func(i int) (string, []any) { return upd, []any{int64(1), int64(i)} },
			anchors: []benchAnchor{{"unnest", anchor(anchorUpd, batch, ones, resetUpdate)}},
		})
	}

	// copyAnchor inserts every row with one COPY, the fastest way to insert
	// many rows into PostgreSQL by hand.
	copyAnchor := func(b *testing.B) time.Duration {
		resetInsert(b)
		return benchPgxTx(b, pc, func(tx pgx.Tx) {
			n, err := tx.CopyFrom(ctx, pgx.Identifier{"fi"}, []string{"id", "views"}, pgx.CopyFromSlice(benchFlushRows, func(i int) ([]any, error) {
				return []any{ids[i], mods[i]}, nil
			}))
			if err != nil || n != benchFlushRows {
				b.Fatal(n, err)
			}
		})
	}
	const ins = "INSERT INTO fi (id, views) VALUES ($1, $2)"
	const anchorIns = "INSERT INTO fi SELECT * FROM unnest($1::bigint[], $2::bigint[])"
	for _, batch := range []int{1000, 10000} {
		db := benchWriteback(b, "pgx", dsn, benchFlushRules("fi", batch))
		warm(b, db, ins, int64(-1), int64(0))
		resetInsert(b)
		cases = append(cases, flushBenchCase{
			name:    fmt.Sprintf("pg/insert/batch=%d", batch),
			wb:      db,
			reset:   resetInsert,
			write:   func(i int) (string, []any) { return ins, []any{int64(i), int64(i % 1000)} },
			anchors: []benchAnchor{{"unnest", anchor(anchorIns, batch, mods, resetInsert)}, {"copy", copyAnchor}},
		})
	}
	return cases
}

func flushBenchSQLite(b *testing.B) []flushBenchCase {
	dsn := sqliteDSN(b, "bfl")
	raw := benchOpen(b, "sqlite3", dsn)
	benchFill(b, raw, false, "fu", benchFlushRows)
	execAll(b, raw, "CREATE TABLE fi (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
	resetInsert := func(b *testing.B) { execAll(b, raw, "DELETE FROM fi") }
	noReset := func(*testing.B) {}

	// anchor runs the prepared q for every row in one transaction, after
	// reset.
	anchor := func(q string, reset func(*testing.B), args func(i int) []any) func(b *testing.B) time.Duration {
		return func(b *testing.B) time.Duration {
			reset(b)
			return benchSQLTx(b, raw, func(tx *sql.Tx) {
				st, err := tx.Prepare(q)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < benchFlushRows; i++ {
					if _, err := st.Exec(args(i)...); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}

	const upd = "UPDATE fu SET views = views + ? WHERE id = ?"
	updArgs := func(i int) []any { return []any{int64(1), int64(i)} }
	const ins = "INSERT INTO fi (id, views) VALUES (?, ?)"
	insArgs := func(i int) []any { return []any{int64(i), int64(i % 1000)} }
	return []flushBenchCase{{
		name:    "sqlite/update",
		wb:      benchWriteback(b, "sqlite3", dsn, benchFlushRules("fu", 1000)),
		reset:   noReset,
		write:   func(i int) (string, []any) { return upd, updArgs(i) },
		anchors: []benchAnchor{{"prepared", anchor(upd, noReset, updArgs)}},
	}, {
		name:    "sqlite/insert",
		wb:      benchWriteback(b, "sqlite3", dsn, benchFlushRules("fi", 1000)),
		reset:   resetInsert,
		write:   func(i int) (string, []any) { return ins, insArgs(i) },
		anchors: []benchAnchor{{"prepared", anchor(ins, resetInsert, insArgs)}},
	}}
}

// benchRounds runs b.N rounds of round, each returning the time it took
// (its set-up untimed), and reports rows/s of benchFlushRows rows a round.
func benchRounds(round func(*testing.B) time.Duration) func(b *testing.B) {
	return func(b *testing.B) {
		b.StopTimer()
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			elapsed += round(b)
		}
		benchRowsPerSec(b, elapsed)
	}
}

// benchTimed runs f with the benchmark's timer running (its set-up stays
// untimed around it) and returns how long f took.
func benchTimed(b *testing.B, f func()) time.Duration {
	b.StartTimer()
	t0 := time.Now()
	f()
	el := time.Since(t0)
	b.StopTimer()
	return el
}

// benchSQLTx times f in one transaction of db, its begin and commit
// included.
func benchSQLTx(b *testing.B, db *sql.DB, f func(tx *sql.Tx)) time.Duration {
	return benchTimed(b, func() {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		f(tx)
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	})
}

// benchPgxTx is benchSQLTx on a native pgx connection.
func benchPgxTx(b *testing.B, pc *pgx.Conn, f func(tx pgx.Tx)) time.Duration {
	ctx := context.Background()
	return benchTimed(b, func() {
		tx, err := pc.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		f(tx)
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	})
}

// benchAnchor is a hand-written way to write a flush's rows: round resets
// the table and returns how long one round of it took.
type benchAnchor struct {
	name  string
	round func(*testing.B) time.Duration
}

// benchPaired runs b.N rounds, each timing the writeback round wb and every
// anchor, in an order rotating from round to round so that each meets the
// same load. It reports the median of the per-round ratios of the flush's
// rows/s to each anchor's ("x-<name>"), their lowest and highest, and the
// median rows/s of each.
func benchPaired(b *testing.B, wb func(*testing.B) time.Duration, anchors []benchAnchor) {
	benchPairedOf(b, benchFlushRows, "rows/s", wb, anchors)
}

// benchPairedOf is benchPaired for rounds of n items each, whose rate it
// reports in unit.
func benchPairedOf(b *testing.B, n int, unit string, wb func(*testing.B) time.Duration, anchors []benchAnchor) {
	b.StopTimer()
	var wbTimes []time.Duration
	ratios := make([][]float64, len(anchors))
	anchorTimes := make([][]time.Duration, len(anchors))
	for i := 0; i < b.N; i++ {
		var wbTime time.Duration
		times := make([]time.Duration, len(anchors))
		for k := range len(anchors) + 1 {
			j := (i + k) % (len(anchors) + 1)
			if j == len(anchors) {
				wbTime = wb(b)
				continue
			}
			times[j] = anchors[j].round(b)
		}
		wbTimes = append(wbTimes, wbTime)
		for j, t := range times {
			ratios[j] = append(ratios[j], t.Seconds()/wbTime.Seconds())
			anchorTimes[j] = append(anchorTimes[j], t)
		}
	}
	perSec := func(ts []time.Duration) float64 {
		ts = slices.Clone(ts)
		slices.Sort(ts)
		return float64(n) / ts[len(ts)/2].Seconds()
	}
	b.ReportMetric(perSec(wbTimes), unit)
	for j, a := range anchors {
		r := slices.Clone(ratios[j])
		slices.Sort(r)
		b.ReportMetric(r[len(r)/2], "x-"+a.name)
		b.ReportMetric(r[0], "x-"+a.name+"-min")
		b.ReportMetric(r[len(r)-1], "x-"+a.name+"-max")
		b.ReportMetric(perSec(anchorTimes[j]), a.name+"-"+unit)
	}
}

// BenchmarkHotKeyRowWrites measures the row-write target (at most 0.01
// database row writes per application write): 8 goroutines increment 10
// hot keys through writeback (max_loss 100ms) for b.N writes in all, then
// Flush. rowwrites/write approaches (keys x flushes) / writes, so it is
// meaningful once b.N is large: -benchtime 100000x gives the 100k-update
// workload exactly; a -benchtime of seconds gives more.
func BenchmarkHotKeyRowWrites(b *testing.B) {
	const rules = `
tables:
  hot:
    mode: back
    key: [id]
    max_loss: 100ms
`
	ctx := context.Background()
	run := func(db *sql.DB, q string) func(b *testing.B) {
		return func(b *testing.B) {
			before := benchStats(b, db)
			el := benchWorkers(b, 8, func(r *rand.Rand) error {
				_, err := db.ExecContext(ctx, q, int64(r.IntN(benchHotKeys)))
				return err
			}, func() error { return Flush(ctx, db) })
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
			benchRowWrites(b, before, benchStats(b, db))
		}
	}
	const q = "UPDATE hot SET views = views + 1 WHERE id = ?"

	liteDSN := sqliteDSN(b, "bhot")
	benchFill(b, benchOpen(b, "sqlite3", liteDSN), false, "hot", benchHotKeys)
	b.Run("sqlite", run(benchWriteback(b, "sqlite3", liteDSN, rules), q))

	if !benchPGReachable() {
		b.Run("pg", func(b *testing.B) { requirePostgres(b) })
		return
	}
	dsn := pgSchema(b, "bhot")
	benchFill(b, benchOpen(b, "pgx", dsn), true, "hot", benchHotKeys)
	b.Run("pg", run(benchWriteback(b, "pgx", dsn, rules), placeholders(q, true)))
}
