package dialect

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// The PostgreSQL flush benchmarks run the dialect and a hand-written anchor
// statement in one benchmark function, so their rows/s are measured in the
// same run on the same server and can be compared as a ratio:
//
//	go test -run '^$' -bench 'BenchmarkPgFlush' -benchtime 5x -count 3
//
// Each variant is a round of pgdBenchRows rows in one transaction, with the
// table reset (untimed) before it. On a shared, noisy machine the separate
// sub-benchmarks drift with the load; the paired sub-benchmarks alternate a
// flush round and an anchor round and report both and their ratio
// (flush_vs_anchor_%), the figure to read.

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

// pgdRound is one timed round of a variant: it resets the table (untimed)
// and returns how long writing pgdBenchRows rows took.
type pgdRound func(b *testing.B, batch int) time.Duration

// pgdRun runs b.N rounds of one variant and reports rows/s.
func pgdRun(round pgdRound, batch int) func(b *testing.B) {
	return func(b *testing.B) {
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			elapsed += round(b, batch)
		}
		b.ReportMetric(float64(pgdBenchRows)*float64(b.N)/elapsed.Seconds(), "rows/s")
	}
}

// pgdPaired alternates rounds of flush and anchor and reports the rows/s of
// each and the flush's as a percentage of the anchor's.
func pgdPaired(flush, anchor pgdRound, batch int) func(b *testing.B) {
	return func(b *testing.B) {
		var tf, ta time.Duration
		for i := 0; i < b.N; i++ {
			tf += flush(b, batch)
			ta += anchor(b, batch)
		}
		rows := float64(pgdBenchRows) * float64(b.N)
		b.ReportMetric(rows/tf.Seconds(), "flush_rows/s")
		b.ReportMetric(rows/ta.Seconds(), "anchor_rows/s")
		b.ReportMetric(100*ta.Seconds()/tf.Seconds(), "flush_vs_anchor_%")
	}
}

// pgdTx times fn in one transaction on pc.
func pgdTx(b *testing.B, pc *pgx.Conn, fn func(tx pgx.Tx)) time.Duration {
	ctx := context.Background()
	t0 := time.Now()
	tx, err := pc.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fn(tx)
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

// BenchmarkPgFlushUpdate flushes 100k counter deltas into (id bigint primary
// key, views bigint) through the dialect, against the hand-written
// UPDATE ... FROM unnest($1::bigint[], $2::bigint[]) of the same rows and
// batch size with []int64 arguments, and the same with RETURNING of each
// row's ordinality (the other way to learn which keys matched nothing).
// Every round starts from a freshly filled and vacuumed table, so no round
// pays for the dead rows of the one before.
func BenchmarkPgFlushUpdate(b *testing.B) {
	db, dc, pc := pgdBenchConn(b)
	ctx := context.Background()
	table := pgdCreate(b, db, "bench_upd", "id bigint PRIMARY KEY, views bigint NOT NULL")
	reset := func(b *testing.B) {
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
	g := &Group{
		Table:   pgdIdent(table),
		Op:      Update,
		Cols:    []sqlparse.Ident{pgdIdent("views")},
		Delta:   []bool{true},
		KeyCols: []sqlparse.Ident{pgdIdent("id")},
		Rows:    make([][]any, pgdBenchRows),
	}
	for i := range g.Rows {
		g.Rows[i] = []any{int64(1), int64(i)}
	}
	d := newPgWriter()
	flush := func(b *testing.B, batch int) time.Duration {
		reset(b)
		t0 := time.Now()
		nm, err := d.WriteTx(ctx, dc, []*Group{g}, batch, nil)
		elapsed := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(nm[0]) != 0 {
			b.Fatalf("no-match %d rows", len(nm[0]))
		}
		return elapsed
	}
	anchor := func(returning bool) pgdRound {
		q := `UPDATE ` + table + ` SET views = ` + table + `.views + v.d FROM unnest($1::bigint[], $2::bigint[]) AS v(id, d) WHERE ` + table + `.id = v.id`
		if returning {
			q = `UPDATE ` + table + ` SET views = ` + table + `.views + v.d FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS v(id, d, n) WHERE ` + table + `.id = v.id RETURNING v.n`
		}
		return func(b *testing.B, batch int) time.Duration {
			reset(b)
			ids := make([]int64, batch)
			vals := make([]int64, batch)
			return pgdTx(b, pc, func(tx pgx.Tx) {
				for off := 0; off < pgdBenchRows; off += batch {
					n := min(batch, pgdBenchRows-off)
					for j := 0; j < n; j++ {
						ids[j] = int64(off + j)
						vals[j] = 1
					}
					if !returning {
						if _, err := tx.Exec(ctx, q, ids[:n], vals[:n]); err != nil {
							b.Fatal(err)
						}
						continue
					}
					rows, _ := tx.Query(ctx, q, ids[:n], vals[:n])
					got := 0
					for rows.Next() {
						got++
					}
					if err := rows.Err(); err != nil || got != n {
						b.Fatal(err, got)
					}
				}
			})
		}
	}
	for _, batch := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("flush/batch=%d", batch), pgdRun(flush, batch))
		b.Run(fmt.Sprintf("anchor/batch=%d", batch), pgdRun(anchor(false), batch))
		b.Run(fmt.Sprintf("anchor_returning/batch=%d", batch), pgdRun(anchor(true), batch))
		b.Run(fmt.Sprintf("paired/batch=%d", batch), pgdPaired(flush, anchor(false), batch))
	}
}

// BenchmarkPgFlushInsert flushes 100k new rows into (id bigint primary key,
// views bigint) through the dialect as it chooses (flush), and forced to
// COPY (flush_copy) and to INSERT ... SELECT FROM unnest (flush_unnest),
// against the hand-written INSERT ... SELECT * FROM unnest($1::bigint[],
// $2::bigint[]) with []int64 arguments. Each round starts from an empty
// table.
func BenchmarkPgFlushInsert(b *testing.B) {
	db, dc, pc := pgdBenchConn(b)
	ctx := context.Background()
	table := pgdCreate(b, db, "bench_ins", "id bigint PRIMARY KEY, views bigint NOT NULL")
	reset := func(b *testing.B) {
		if _, err := pc.Exec(ctx, "TRUNCATE "+table); err != nil {
			b.Fatal(err)
		}
	}
	g := &Group{
		Table: pgdIdent(table),
		Op:    Insert,
		Cols:  []sqlparse.Ident{pgdIdent("id"), pgdIdent("views")},
		Rows:  make([][]any, pgdBenchRows),
	}
	for i := range g.Rows {
		g.Rows[i] = []any{int64(i), int64(i % 1000)}
	}
	// flush is a round of the dialect; force is "copy" or "unnest" to
	// override its choice of insert path.
	flush := func(force string) pgdRound {
		d := newPgWriter()
		if force != "" {
			d = pgdDialect(force == "copy")
		}
		return func(b *testing.B, batch int) time.Duration {
			reset(b)
			t0 := time.Now()
			_, err := d.WriteTx(ctx, dc, []*Group{g}, batch, nil)
			elapsed := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			return elapsed
		}
	}
	q := `INSERT INTO ` + table + ` SELECT * FROM unnest($1::bigint[], $2::bigint[])`
	anchor := func(b *testing.B, batch int) time.Duration {
		reset(b)
		ids := make([]int64, batch)
		vals := make([]int64, batch)
		return pgdTx(b, pc, func(tx pgx.Tx) {
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
		})
	}
	for _, batch := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("flush/batch=%d", batch), pgdRun(flush(""), batch))
		b.Run(fmt.Sprintf("flush_copy/batch=%d", batch), pgdRun(flush("copy"), batch))
		b.Run(fmt.Sprintf("flush_unnest/batch=%d", batch), pgdRun(flush("unnest"), batch))
		b.Run(fmt.Sprintf("anchor/batch=%d", batch), pgdRun(anchor, batch))
		b.Run(fmt.Sprintf("paired/batch=%d", batch), pgdPaired(flush(""), anchor, batch))
	}
}
