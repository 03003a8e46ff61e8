package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// BenchmarkMySQLCounterUpdate is BenchmarkCounterUpdate on MariaDB (MySQL):
// a counter UPDATE by key over 1000 keys, from 1 and 8 goroutines, directly
// in autocommit (innodb_flush_log_at_trx_commit=1, the durable default), with
// innodb_flush_log_at_trx_commit=2 (a global setting: set for the sub-benchmark
// and restored after it), and through writeback (max_loss 1s, the run ends
// with a Flush inside the timed span).
func BenchmarkMySQLCounterUpdate(b *testing.B) {
	const q = "UPDATE counters SET views = views + 1 WHERE id = ?"
	ctx := context.Background()
	dsn := mysqlDSN(b, "bcnt")
	direct := benchOpen(b, "mysql", dsn)
	benchFill(b, direct, false, "counters", benchCounterKeys)
	wb := benchWriteback(b, "mysql", dsn, benchCounterRules)
	direct1 := func(db *sql.DB) func(r *rand.Rand) error {
		return func(r *rand.Rand) error {
			_, err := db.ExecContext(ctx, q, int64(r.IntN(benchCounterKeys)))
			return err
		}
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("mysql-direct/g%d", g), func(b *testing.B) {
			el := benchWorkers(b, g, direct1(direct), nil)
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
		})
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("mysql-flush-log-2/g%d", g), func(b *testing.B) {
			var was int
			if err := direct.QueryRow("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit").Scan(&was); err != nil {
				b.Fatal(err)
			}
			if _, err := direct.Exec("SET GLOBAL innodb_flush_log_at_trx_commit = 2"); err != nil {
				b.Skipf("cannot set innodb_flush_log_at_trx_commit: %v", err)
			}
			defer func() {
				if _, err := direct.Exec(fmt.Sprintf("SET GLOBAL innodb_flush_log_at_trx_commit = %d", was)); err != nil {
					b.Errorf("restoring innodb_flush_log_at_trx_commit=%d: %v", was, err)
				}
			}()
			el := benchWorkers(b, g, direct1(direct), nil)
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
		})
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("writeback-mysql/g%d", g), func(b *testing.B) {
			before := benchStats(b, wb)
			el := benchWorkers(b, g, direct1(wb), func() error { return Flush(ctx, wb) })
			b.ReportMetric(float64(b.N)/el.Seconds(), "updates/s")
			benchRowWrites(b, before, benchStats(b, wb))
		})
	}
}

// BenchmarkMySQLFlush is the flush throughput into MariaDB (MySQL) through
// the whole driver, 100k distinct-key rows a round (buffered untimed, Flush
// timed), against hand-written statements writing the same rows in one
// transaction, 1000 rows a statement, each statement text prepared once: for UPDATEs (views = views + 1) the
// UPDATE ... JOIN (SELECT ? ... UNION ALL ...) the dialect writes, an
// UPDATE ... SET views = CASE id WHEN ... END WHERE id IN (...), one
// prepared UPDATE per row, and INSERT ... ON DUPLICATE KEY UPDATE (which
// would insert a missing row, so the dialect cannot use it for UPDATEs: an
// upper bound); for INSERTs a multi-row INSERT.
func BenchmarkMySQLFlush(b *testing.B) {
	ctx := context.Background()
	dsn := mysqlDSN(b, "bfl")
	direct := benchOpen(b, "mysql", dsn)
	execAll(b, direct, "CREATE TABLE fu (id BIGINT PRIMARY KEY, views BIGINT NOT NULL); CREATE TABLE fi (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
	fill := func(b *testing.B, table string) {
		execAll(b, direct, "TRUNCATE "+table)
		const chunk = 5000
		for off := 0; off < benchFlushRows; off += chunk {
			var sb strings.Builder
			sb.WriteString("INSERT INTO " + table + " (id, views) VALUES ")
			for i := off; i < off+chunk; i++ {
				if i > off {
					sb.WriteString(", ")
				}
				fmt.Fprintf(&sb, "(%d, 0)", i)
			}
			execAll(b, direct, sb.String())
		}
	}
	resetUpdate := func(b *testing.B) { fill(b, "fu") }
	resetInsert := func(b *testing.B) { execAll(b, direct, "TRUNCATE fi") }
	const batch = 1000
	// anchor writes every row, batch a statement (stmt gives the statement
	// and arguments of rows [off, end)), in one transaction.
	anchor := func(reset func(*testing.B), stmt func(off, end int) (string, []any)) func(b *testing.B) {
		return func(b *testing.B) {
			b.StopTimer()
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				reset(b)
				b.StartTimer()
				t0 := time.Now()
				tx, err := direct.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				prepared := map[string]*sql.Stmt{} // each statement text prepared once, as the dialect does
				for off := 0; off < benchFlushRows; off += batch {
					q, args := stmt(off, min(off+batch, benchFlushRows))
					st := prepared[q]
					if st == nil {
						if st, err = tx.PrepareContext(ctx, q); err != nil {
							b.Fatal(err)
						}
						prepared[q] = st
					}
					if _, err := st.ExecContext(ctx, args...); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				elapsed += time.Since(t0)
				b.StopTimer()
			}
			benchRowsPerSec(b, elapsed)
		}
	}
	rowsSQL := func(off, end int, row string, sep string, args func(i int) []any) (string, []any) {
		var sb strings.Builder
		var out []any
		for i := off; i < end; i++ {
			if i > off {
				sb.WriteString(sep)
			}
			sb.WriteString(row)
			out = append(out, args(i)...)
		}
		return sb.String(), out
	}
	b.Run("update/anchor-join-union", anchor(resetUpdate, func(off, end int) (string, []any) {
		rows, args := rowsSQL(off+1, end, "SELECT ?, ?", " UNION ALL ", func(i int) []any { return []any{int64(i), int64(1)} })
		q := "UPDATE fu AS t JOIN (SELECT ? AS id, ? AS d"
		if rows != "" {
			q += " UNION ALL " + rows
		}
		return q + ") AS v ON t.id = v.id SET t.views = t.views + v.d", append([]any{int64(off), int64(1)}, args...)
	}))
	b.Run("update/anchor-select-then-join-union", anchor(resetUpdate, func(off, end int) (string, []any) {
		// Roughly what the dialect runs: the existing keys, then the UPDATE
		// (the SELECT here runs outside the transaction, unprepared and
		// without FOR UPDATE: an estimate of what the no-match check costs).
		in, inArgs := rowsSQL(off, end, "?", ", ", func(i int) []any { return []any{int64(i)} })
		rows, err := direct.QueryContext(ctx, "SELECT id FROM fu WHERE id IN ("+in+")", inArgs...)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
		u, args := rowsSQL(off+1, end, "SELECT ?, ?", " UNION ALL ", func(i int) []any { return []any{int64(i), int64(1)} })
		q := "UPDATE fu AS t JOIN (SELECT ? AS id, ? AS d"
		if u != "" {
			q += " UNION ALL " + u
		}
		return q + ") AS v ON t.id = v.id SET t.views = t.views + v.d", append([]any{int64(off), int64(1)}, args...)
	}))
	b.Run("update/anchor-case", anchor(resetUpdate, func(off, end int) (string, []any) {
		whens, args := rowsSQL(off, end, "WHEN ? THEN ?", " ", func(i int) []any { return []any{int64(i), int64(1)} })
		in, inArgs := rowsSQL(off, end, "?", ", ", func(i int) []any { return []any{int64(i)} })
		return "UPDATE fu SET views = views + CASE id " + whens + " END WHERE id IN (" + in + ")", append(args, inArgs...)
	}))
	b.Run("update/anchor-odku", anchor(resetUpdate, func(off, end int) (string, []any) {
		rows, args := rowsSQL(off, end, "(?, ?)", ", ", func(i int) []any { return []any{int64(i), int64(1)} })
		return "INSERT INTO fu (id, views) VALUES " + rows + " ON DUPLICATE KEY UPDATE views = views + VALUES(views)", args
	}))
	b.Run("update/anchor-row-at-a-time", func(b *testing.B) {
		b.StopTimer()
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			resetUpdate(b)
			b.StartTimer()
			t0 := time.Now()
			tx, err := direct.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			st, err := tx.PrepareContext(ctx, "UPDATE fu SET views = views + ? WHERE id = ?")
			if err != nil {
				b.Fatal(err)
			}
			for id := 0; id < benchFlushRows; id++ {
				if _, err := st.ExecContext(ctx, int64(1), int64(id)); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			elapsed += time.Since(t0)
			b.StopTimer()
		}
		benchRowsPerSec(b, elapsed)
	})
	b.Run("update/writeback", func(b *testing.B) {
		wb := benchWriteback(b, "mysql", dsn, benchFlushRules("fu", batch))
		b.StopTimer()
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			resetUpdate(b)
			elapsed += benchFlushRound(b, wb, func(i int) (string, []any) {
				return "UPDATE fu SET views = views + ? WHERE id = ?", []any{int64(1), int64(i)}
			})
		}
		benchRowsPerSec(b, elapsed)
	})
	// Upserts of 100k keys (rows_affected: exact, which ON DUPLICATE KEY
	// UPDATE needs; each key probed once, untimed), flushed: all absent (the
	// UPDATE matches none, the rows are inserted), or all present (the
	// UPDATE alone); against a multi-row INSERT ... ON DUPLICATE KEY UPDATE.
	upsert := func(i int) (string, []any) {
		return "INSERT INTO fi (id, views) VALUES (?, ?) ON DUPLICATE KEY UPDATE views = views + VALUES(views)", []any{int64(i), int64(1)}
	}
	upsertRules := strings.Replace(benchFlushRules("fi", batch), "rows_affected: assume", "rows_affected: exact", 1)
	for _, present := range []bool{false, true} {
		reset, name := resetInsert, "upsert-absent"
		if present {
			reset, name = func(b *testing.B) { fill(b, "fi") }, "upsert-present"
		}
		b.Run(name+"/anchor-odku", anchor(reset, func(off, end int) (string, []any) {
			rows, args := rowsSQL(off, end, "(?, ?)", ", ", func(i int) []any { return []any{int64(i), int64(1)} })
			return "INSERT INTO fi (id, views) VALUES " + rows + " ON DUPLICATE KEY UPDATE views = views + VALUES(views)", args
		}))
		b.Run(name+"/writeback", func(b *testing.B) {
			wb := benchWriteback(b, "mysql", dsn, upsertRules)
			b.StopTimer()
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				reset(b)
				elapsed += benchFlushRound(b, wb, upsert)
			}
			benchRowsPerSec(b, elapsed)
		})
	}
	b.Run("insert/anchor-multirow", anchor(resetInsert, func(off, end int) (string, []any) {
		rows, args := rowsSQL(off, end, "(?, ?)", ", ", func(i int) []any { return []any{int64(i), int64(i % 1000)} })
		return "INSERT INTO fi (id, views) VALUES " + rows, args
	}))
	b.Run("insert/writeback", func(b *testing.B) {
		wb := benchWriteback(b, "mysql", dsn, benchFlushRules("fi", batch))
		b.StopTimer()
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			resetInsert(b)
			elapsed += benchFlushRound(b, wb, func(i int) (string, []any) {
				return "INSERT INTO fi (id, views) VALUES (?, ?)", []any{int64(i), int64(i % 1000)}
			})
		}
		benchRowsPerSec(b, elapsed)
	})
}

// BenchmarkMySQLUpsertCounter is the hot-row upsert on MariaDB (MySQL):
// INSERT ... ON DUPLICATE KEY UPDATE views = views + 1 over benchHotKeys
// keys (absent at first: the first upserts insert them), from 1 and 8
// goroutines, directly in autocommit and through writeback (max_loss 1s,
// rows_affected exact; the run ends with a Flush inside the timed span).
// rowwrites/write is the database rows written per application upsert.
func BenchmarkMySQLUpsertCounter(b *testing.B) {
	const q = "INSERT INTO counters (id, views) VALUES (?, 1) ON DUPLICATE KEY UPDATE views = views + 1"
	ctx := context.Background()
	dsn := mysqlDSN(b, "bups")
	direct := benchOpen(b, "mysql", dsn)
	execAll(b, direct, "CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
	wb := benchWriteback(b, "mysql", dsn, benchCounterRules)
	op := func(db *sql.DB) func(r *rand.Rand) error {
		return func(r *rand.Rand) error {
			_, err := db.ExecContext(ctx, q, int64(r.IntN(benchHotKeys)))
			return err
		}
	}
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("mysql-direct/g%d", g), func(b *testing.B) {
			el := benchWorkers(b, g, op(direct), nil)
			b.ReportMetric(float64(b.N)/el.Seconds(), "upserts/s")
		})
		b.Run(fmt.Sprintf("writeback-mysql/g%d", g), func(b *testing.B) {
			before := benchStats(b, wb)
			el := benchWorkers(b, g, op(wb), func() error { return Flush(ctx, wb) })
			b.ReportMetric(float64(b.N)/el.Seconds(), "upserts/s")
			after := benchStats(b, wb)
			benchRowWrites(b, before, after)
			if after.PassedThrough != before.PassedThrough {
				b.Fatalf("%d upserts went through", after.PassedThrough-before.PassedThrough)
			}
		})
	}
}
