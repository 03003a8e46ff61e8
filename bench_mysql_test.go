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

// mysqlFlushBench is what BenchmarkMySQLFlush and BenchmarkMySQLFlushPaired
// share: a database with the tables fu (UPDATE rounds: 100k rows to update)
// and fi (INSERT and upsert rounds: empty at a round's start), and the
// hand-written statements they are measured against.
type mysqlFlushBench struct {
	ctx    context.Context
	dsn    string
	direct *sql.DB
}

// mysqlFlushBatch is the rows a statement, for the flush and the anchors.
const mysqlFlushBatch = 1000

func newMySQLFlushBench(b *testing.B) *mysqlFlushBench {
	m := &mysqlFlushBench{ctx: context.Background(), dsn: mysqlDSN(b, "bfl")}
	m.direct = benchOpen(b, "mysql", m.dsn)
	execAll(b, m.direct, "CREATE TABLE fu (id BIGINT PRIMARY KEY, views BIGINT NOT NULL); CREATE TABLE fi (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)")
	return m
}

// fill empties table and inserts rows 0..benchFlushRows-1 with views 0.
func (m *mysqlFlushBench) fill(b *testing.B, table string) {
	execAll(b, m.direct, "TRUNCATE "+table)
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
		execAll(b, m.direct, sb.String())
	}
}

func (m *mysqlFlushBench) resetUpdate(b *testing.B) { m.fill(b, "fu") }
func (m *mysqlFlushBench) resetInsert(b *testing.B) { execAll(b, m.direct, "TRUNCATE fi") }

// anchorRound resets the table untimed, then writes every row, batch a
// statement (stmt gives the statement and arguments of rows [off, end)),
// in one transaction, each statement text prepared once as the dialect
// does, and returns how long that took.
func (m *mysqlFlushBench) anchorRound(b *testing.B, reset func(*testing.B), stmt func(off, end int) (string, []any)) time.Duration {
	reset(b)
	return benchSQLTx(b, m.direct, func(tx *sql.Tx) {
		prepared := map[string]*sql.Stmt{}
		for off := 0; off < benchFlushRows; off += mysqlFlushBatch {
			q, args := stmt(off, min(off+mysqlFlushBatch, benchFlushRows))
			st := prepared[q]
			if st == nil {
				var err error
				if st, err = tx.PrepareContext(m.ctx, q); err != nil {
					b.Fatal(err)
				}
				prepared[q] = st
			}
			if _, err := st.ExecContext(m.ctx, args...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// mysqlRowsSQL is row repeated for rows [off, end), sep between them, and
// the arguments args gives for each.
func mysqlRowsSQL(off, end int, row string, sep string, args func(i int) []any) (string, []any) {
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

// mysqlJoinUnion is the hand-written UPDATE fu JOIN (SELECT ? AS id, ? AS d
// UNION ALL ...) adding 1 to views of rows [off, end).
func mysqlJoinUnion(off, end int) (string, []any) {
	rows, args := mysqlRowsSQL(off+1, end, "SELECT ?, ?", " UNION ALL ", func(i int) []any { return []any{int64(i), int64(1)} })
	q := "UPDATE fu AS t JOIN (SELECT ? AS id, ? AS d"
	if rows != "" {
		q += " UNION ALL " + rows
	}
	return q + ") AS v ON t.id = v.id SET t.views = t.views + v.d", append([]any{int64(off), int64(1)}, args...)
}

// mysqlJoinValues is mysqlJoinUnion with the rows after the first as a
// table value constructor, UNION ALL VALUES (?, ?), ... (MariaDB 10.3 and
// later; MySQL 8 writes VALUES ROW(?, ?)).
func mysqlJoinValues(off, end int) (string, []any) {
	rows, args := mysqlRowsSQL(off+1, end, "(?, ?)", ", ", func(i int) []any { return []any{int64(i), int64(1)} })
	q := "UPDATE fu AS t JOIN (SELECT ? AS id, ? AS d"
	if rows != "" {
		q += " UNION ALL VALUES " + rows
	}
	return q + ") AS v ON t.id = v.id SET t.views = t.views + v.d", append([]any{int64(off), int64(1)}, args...)
}

// mariaDB reports whether db's server is MariaDB.
func mariaDB(b *testing.B, db *sql.DB) bool {
	var v string
	if err := db.QueryRow("SELECT VERSION()").Scan(&v); err != nil {
		b.Fatal(err)
	}
	return strings.Contains(v, "MariaDB")
}

// mysqlODKU is the hand-written multi-row INSERT INTO table ... ON
// DUPLICATE KEY UPDATE views = views + VALUES(views) of rows [off, end),
// views 1 each.
func mysqlODKU(table string) func(off, end int) (string, []any) {
	return func(off, end int) (string, []any) {
		rows, args := mysqlRowsSQL(off, end, "(?, ?)", ", ", func(i int) []any { return []any{int64(i), int64(1)} })
		return "INSERT INTO " + table + " (id, views) VALUES " + rows + " ON DUPLICATE KEY UPDATE views = views + VALUES(views)", args
	}
}

// mysqlMultirow is the hand-written multi-row INSERT INTO fi of rows
// [off, end).
func mysqlMultirow(off, end int) (string, []any) {
	rows, args := mysqlRowsSQL(off, end, "(?, ?)", ", ", func(i int) []any { return []any{int64(i), int64(i % 1000)} })
	return "INSERT INTO fi (id, views) VALUES " + rows, args
}

// The writes the flush rounds buffer: row i of each kind.
func mysqlUpdateWrite(i int) (string, []any) {
	return "UPDATE fu SET views = views + ? WHERE id = ?", []any{int64(1), int64(i)}
}

func mysqlInsertWrite(i int) (string, []any) {
	return "INSERT INTO fi (id, views) VALUES (?, ?)", []any{int64(i), int64(i % 1000)}
}

func mysqlUpsertWrite(i int) (string, []any) {
	return "INSERT INTO fi (id, views) VALUES (?, ?) ON DUPLICATE KEY UPDATE views = views + VALUES(views)", []any{int64(i), int64(1)}
}

// mysqlFlushUpsertRules are the rules of the upsert rounds: rows_affected:
// exact, which ON DUPLICATE KEY UPDATE needs (each key probed once,
// untimed).
func mysqlFlushUpsertRules() string {
	return strings.Replace(benchFlushRules("fi", mysqlFlushBatch), "rows_affected: assume", "rows_affected: exact", 1)
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
	m := newMySQLFlushBench(b)
	ctx, direct := m.ctx, m.direct
	anchor := func(reset func(*testing.B), stmt func(off, end int) (string, []any)) func(b *testing.B) {
		return benchRounds(func(b *testing.B) time.Duration { return m.anchorRound(b, reset, stmt) })
	}
	b.Run("update/anchor-join-union", anchor(m.resetUpdate, mysqlJoinUnion))
	if mariaDB(b, direct) {
		b.Run("update/anchor-join-union-values", anchor(m.resetUpdate, mysqlJoinValues))
	}
	b.Run("update/anchor-select-then-join-union", anchor(m.resetUpdate, func(off, end int) (string, []any) {
		// Roughly what the dialect runs: the existing keys, then the UPDATE
		// (the SELECT here runs outside the transaction, unprepared and
		// without FOR UPDATE: an estimate of what the no-match check costs).
		in, inArgs := mysqlRowsSQL(off, end, "?", ", ", func(i int) []any { return []any{int64(i)} })
		rows, err := direct.QueryContext(ctx, "SELECT id FROM fu WHERE id IN ("+in+")", inArgs...)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
		return mysqlJoinUnion(off, end)
	}))
	b.Run("update/anchor-case", anchor(m.resetUpdate, func(off, end int) (string, []any) {
		whens, args := mysqlRowsSQL(off, end, "WHEN ? THEN ?", " ", func(i int) []any { return []any{int64(i), int64(1)} })
		in, inArgs := mysqlRowsSQL(off, end, "?", ", ", func(i int) []any { return []any{int64(i)} })
		return "UPDATE fu SET views = views + CASE id " + whens + " END WHERE id IN (" + in + ")", append(args, inArgs...)
	}))
	b.Run("update/anchor-odku", anchor(m.resetUpdate, mysqlODKU("fu")))
	b.Run("update/anchor-row-at-a-time", benchRounds(func(b *testing.B) time.Duration {
		m.resetUpdate(b)
		return benchSQLTx(b, direct, func(tx *sql.Tx) {
			st, err := tx.PrepareContext(ctx, "UPDATE fu SET views = views + ? WHERE id = ?")
			if err != nil {
				b.Fatal(err)
			}
			for id := 0; id < benchFlushRows; id++ {
				if _, err := st.ExecContext(ctx, int64(1), int64(id)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}))
	b.Run("update/writeback", func(b *testing.B) {
		wb := benchWriteback(b, "mysql", m.dsn, benchFlushRules("fu", mysqlFlushBatch))
		benchRounds(func(b *testing.B) time.Duration {
			m.resetUpdate(b)
			return benchFlushRound(b, wb, mysqlUpdateWrite)
		})(b)
	})
	// Upserts of 100k keys, flushed: all absent (the UPDATE matches none,
	// the rows are inserted), or all present (the UPDATE alone); against a
	// multi-row INSERT ... ON DUPLICATE KEY UPDATE.
	for _, present := range []bool{false, true} {
		reset, name := m.resetInsert, "upsert-absent"
		if present {
			reset, name = func(b *testing.B) { m.fill(b, "fi") }, "upsert-present"
		}
		b.Run(name+"/anchor-odku", anchor(reset, mysqlODKU("fi")))
		b.Run(name+"/writeback", func(b *testing.B) {
			wb := benchWriteback(b, "mysql", m.dsn, mysqlFlushUpsertRules())
			benchRounds(func(b *testing.B) time.Duration {
				reset(b)
				return benchFlushRound(b, wb, mysqlUpsertWrite)
			})(b)
		})
	}
	b.Run("insert/anchor-multirow", anchor(m.resetInsert, mysqlMultirow))
	b.Run("insert/writeback", func(b *testing.B) {
		wb := benchWriteback(b, "mysql", m.dsn, benchFlushRules("fi", mysqlFlushBatch))
		benchRounds(func(b *testing.B) time.Duration {
			m.resetInsert(b)
			return benchFlushRound(b, wb, mysqlInsertWrite)
		})(b)
	})
}

// BenchmarkMySQLFlushPaired is BenchmarkMySQLFlush's flush against its
// hand-written statements round by round: each of b.N rounds runs the
// writeback flush and every anchor of the case once, in an order that
// rotates from round to round, so that both meet the same load on a
// shared machine. It reports, for each anchor, the writeback flush's
// rows/s over the anchor's in the same round: the median ("x-<anchor>")
// and the lowest and highest; and the median rows/s of each.
//
//	go test -run '^$' -bench MySQLFlushPaired -benchtime 8x .
func BenchmarkMySQLFlushPaired(b *testing.B) {
	m := newMySQLFlushBench(b)
	type anchor struct {
		name string
		stmt func(off, end int) (string, []any)
	}
	updateAnchors := []anchor{{"join-union", mysqlJoinUnion}, {"odku", mysqlODKU("fu")}}
	if mariaDB(b, m.direct) {
		updateAnchors = append(updateAnchors, anchor{"join-union-values", mysqlJoinValues})
	}
	for _, c := range []struct {
		name    string
		reset   func(*testing.B)
		rules   string
		write   func(i int) (string, []any)
		anchors []anchor
	}{
		// ON DUPLICATE KEY UPDATE would insert a missing row: the dialect
		// cannot use it for UPDATEs, an upper bound.
		{"update", m.resetUpdate, benchFlushRules("fu", mysqlFlushBatch), mysqlUpdateWrite, updateAnchors},
		{"insert", m.resetInsert, benchFlushRules("fi", mysqlFlushBatch), mysqlInsertWrite,
			[]anchor{{"multirow", mysqlMultirow}}},
		{"upsert-absent", m.resetInsert, mysqlFlushUpsertRules(), mysqlUpsertWrite,
			[]anchor{{"odku", mysqlODKU("fi")}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			wb := benchWriteback(b, "mysql", m.dsn, c.rules)
			anchors := make([]benchAnchor, len(c.anchors))
			for j, a := range c.anchors {
				anchors[j] = benchAnchor{a.name, func(b *testing.B) time.Duration { return m.anchorRound(b, c.reset, a.stmt) }}
			}
			benchPaired(b, func(b *testing.B) time.Duration {
				c.reset(b)
				return benchFlushRound(b, wb, c.write)
			}, anchors)
		})
	}
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
