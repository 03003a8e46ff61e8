package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL flush benchmarks run the dialect and a hand-written anchor
// statement in one benchmark function, so their rows/s are measured in the
// same run on the same server and can be compared as a ratio:
//
//	go test -run '^$' -bench 'BenchmarkPgFlush' -benchtime 5x

const pgdBenchRows = 100_000

// pgdBenchConn opens the test database and returns one connection's driver
// value (a pgx stdlib conn) with its native *pgx.Conn.
func pgdBenchConn(b *testing.B) (*sql.DB, driver.Conn, *pgx.Conn) {
	b.Helper()
	db := pgdOpen(b)
	c, err := db.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	var dc driver.Conn
	// The driver connection stays owned by c until c is closed; the benchmark
	// uses it only from this goroutine, as the flusher would.
	if err := c.Raw(func(x any) error { dc = x.(driver.Conn); return nil }); err != nil {
		b.Fatal(err)
	}
	return db, dc, dc.(pgxConner).Conn()
}

// pgdReport reports rows/s of b.N rounds of rows rows each.
func pgdReport(b *testing.B, rows int, elapsed time.Duration) {
	b.ReportMetric(float64(rows)*float64(b.N)/elapsed.Seconds(), "rows/s")
}

// BenchmarkPgFlushUpdate flushes 100k counter deltas into (id bigint primary
// key, views bigint) through the dialect, against the hand-written
// UPDATE ... FROM unnest($1::bigint[], $2::bigint[]) of the same rows and
// batch size, and the same with RETURNING of each row's ordinality (the
// other way to learn which keys matched nothing). Every round starts from a
// freshly filled and vacuumed table, untimed, so no variant pays for the
// dead rows of the one before.
func BenchmarkPgFlushUpdate(b *testing.B) {
	db, dc, pc := pgdBenchConn(b)
	ctx := context.Background()
	table := pgdCreate(b, db, "bench_upd", "id bigint PRIMARY KEY, views bigint NOT NULL")
	reset := func(b *testing.B) {
		b.StopTimer()
		defer b.StartTimer()
		for _, q := range []string{
			"TRUNCATE " + table,
			fmt.Sprintf("INSERT INTO %s SELECT g, 0 FROM generate_series(0, %d) g", table, pgdBenchRows-1),
			"VACUUM ANALYZE " + table,
		} {
			if _, err := pc.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	}
	g := &flushGroup{
		table:   pgdIdent(table),
		op:      flushUpdate,
		cols:    []ident{pgdIdent("views")},
		delta:   []bool{true},
		keyCols: []ident{pgdIdent("id")},
		rows:    make([][]any, pgdBenchRows),
	}
	for i := range g.rows {
		g.rows[i] = []any{int64(1), int64(i)}
	}
	for _, batch := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("flush/batch=%d", batch), func(b *testing.B) {
			d := newPgDialect()
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				reset(b)
				t0 := time.Now()
				nm, err := d.writeTx(ctx, dc, []*flushGroup{g}, batch)
				if err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(t0)
				if len(nm[0]) != 0 {
					b.Fatalf("no-match %d rows", len(nm[0]))
				}
			}
			pgdReport(b, pgdBenchRows, elapsed)
		})
		b.Run(fmt.Sprintf("anchor/batch=%d", batch), func(b *testing.B) {
			q := `UPDATE ` + table + ` SET views = ` + table + `.views + v.d FROM unnest($1::bigint[], $2::bigint[]) AS v(id, d) WHERE ` + table + `.id = v.id`
			pgdAnchor(b, pc, q, batch, false, reset)
		})
		b.Run(fmt.Sprintf("anchor_returning/batch=%d", batch), func(b *testing.B) {
			q := `UPDATE ` + table + ` SET views = ` + table + `.views + v.d FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS v(id, d, n) WHERE ` + table + `.id = v.id RETURNING v.n`
			pgdAnchor(b, pc, q, batch, true, reset)
		})
	}
}

// pgdAnchor runs q over pgdBenchRows rows, batch a statement, in one
// transaction per round, with []int64 ids and deltas of 1.
func pgdAnchor(b *testing.B, pc *pgx.Conn, q string, batch int, returning bool, reset func(*testing.B)) {
	ctx := context.Background()
	ids := make([]int64, batch)
	vals := make([]int64, batch)
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		reset(b)
		t0 := time.Now()
		tx, err := pc.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < pgdBenchRows; off += batch {
			n := min(batch, pgdBenchRows-off)
			for j := 0; j < n; j++ {
				ids[j] = int64(off + j)
				vals[j] = 1
			}
			if returning {
				rows, _ := tx.Query(ctx, q, ids[:n], vals[:n])
				var got int
				for rows.Next() {
					got++
				}
				if err := rows.Err(); err != nil || got != n {
					b.Fatal(err, got)
				}
			} else if _, err := tx.Exec(ctx, q, ids[:n], vals[:n]); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
	}
	pgdReport(b, pgdBenchRows, elapsed)
}

// BenchmarkPgFlushInsert flushes 100k new rows into (id bigint primary key,
// views bigint) through the dialect as it chooses (flush), and forced to
// COPY (flush_copy) and to INSERT ... SELECT FROM unnest (flush_unnest),
// against the hand-written
// INSERT ... SELECT * FROM unnest($1::bigint[], $2::bigint[]). Each round
// starts from an empty table; the TRUNCATE is not timed.
func BenchmarkPgFlushInsert(b *testing.B) {
	db, dc, pc := pgdBenchConn(b)
	ctx := context.Background()
	table := pgdCreate(b, db, "bench_ins", "id bigint PRIMARY KEY, views bigint NOT NULL")
	g := &flushGroup{
		table: pgdIdent(table),
		op:    flushInsert,
		cols:  []ident{pgdIdent("id"), pgdIdent("views")},
		rows:  make([][]any, pgdBenchRows),
	}
	for i := range g.rows {
		g.rows[i] = []any{int64(i), int64(i % 1000)}
	}
	truncate := func(b *testing.B) {
		b.StopTimer()
		if _, err := pc.Exec(ctx, "TRUNCATE "+table); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	// flush runs the dialect; force is "copy" or "unnest" to override its
	// choice of insert path.
	flush := func(force string, batch int) func(b *testing.B) {
		return func(b *testing.B) {
			if force != "" {
				defer pgdCopy(force == "copy")()
			}
			d := newPgDialect()
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				truncate(b)
				t0 := time.Now()
				if _, err := d.writeTx(ctx, dc, []*flushGroup{g}, batch); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(t0)
			}
			pgdReport(b, pgdBenchRows, elapsed)
		}
	}
	for _, batch := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("flush/batch=%d", batch), flush("", batch))
		b.Run(fmt.Sprintf("flush_copy/batch=%d", batch), flush("copy", batch))
		b.Run(fmt.Sprintf("flush_unnest/batch=%d", batch), flush("unnest", batch))
		b.Run(fmt.Sprintf("anchor/batch=%d", batch), func(b *testing.B) {
			q := `INSERT INTO ` + table + ` SELECT * FROM unnest($1::bigint[], $2::bigint[])`
			ids := make([]int64, batch)
			vals := make([]int64, batch)
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				truncate(b)
				t0 := time.Now()
				tx, err := pc.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < pgdBenchRows; off += batch {
					n := min(batch, pgdBenchRows-off)
					for j := 0; j < n; j++ {
						ids[j] = int64(off + j)
						vals[j] = int64((off + j) % 1000)
					}
					if _, err := tx.Exec(ctx, q, ids[:n], vals[:n]); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(t0)
			}
			pgdReport(b, pgdBenchRows, elapsed)
		})
	}
}
