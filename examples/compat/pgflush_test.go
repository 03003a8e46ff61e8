package compat

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/XSAM/otelsql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/lib/pq"
	"github.com/writeback-go/writeback"
)

// These tests flush the same writes through writeback over native pgx,
// lib/pq, and otelsql wrapping each, and compare the tables with those of
// the same writes executed directly. They use the PostgreSQL named by
// WRITEBACK_TEST_POSTGRES (key=value form; default the local socket,
// database test) and skip when it cannot be reached, unless CI=true.

func pgDSN() string {
	if s := os.Getenv("WRITEBACK_TEST_POSTGRES"); s != "" {
		return s
	}
	return "host=/var/run/postgresql dbname=test"
}

// execCount counts the statements otelsql saw executed (see otelDrivers).
var execCount atomic.Int64

// otelDrivers registers otelsql over pgx and over lib/pq once; their
// SpanFilter counts executed statements and creates no span.
var otelDrivers = sync.OnceValues(func() ([2]string, error) {
	opt := otelsql.WithSpanOptions(otelsql.SpanOptions{SpanFilter: func(_ context.Context, m otelsql.Method, _ string, _ []driver.NamedValue) bool {
		if m == otelsql.MethodConnExec || m == otelsql.MethodStmtExec {
			execCount.Add(1)
		}
		return false
	}})
	pgx, err := otelsql.Register("pgx", opt)
	if err != nil {
		return [2]string{}, err
	}
	pq, err := otelsql.Register("postgres", opt)
	return [2]string{pgx, pq}, err
})

// pgSetup is one way of reaching the database: a base driver, and whether
// writeback wraps it.
type pgSetup struct {
	name      string
	driver    string
	dsn       string
	writeback bool
	dialect   string // dialect=, for drivers writeback does not recognize
}

func pgSetups(t testing.TB) []pgSetup {
	names, err := otelDrivers()
	if err != nil {
		t.Fatal(err)
	}
	pq := pgDSN() + " sslmode=disable"
	return []pgSetup{
		{name: "direct_pgx", driver: "pgx", dsn: pgDSN()},
		{name: "direct_pq", driver: "postgres", dsn: pq},
		{name: "wb_pgx", driver: "pgx", dsn: pgDSN(), writeback: true},
		{name: "wb_pq", driver: "postgres", dsn: pq, writeback: true},
		{name: "wb_otelpgx", driver: names[0], dsn: pgDSN(), writeback: true, dialect: "postgres"},
		{name: "wb_otelpq", driver: names[1], dsn: pq, writeback: true, dialect: "postgres"},
	}
}

// pgAdmin opens the test database directly, or skips the test.
func pgAdmin(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pgDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %q unreachable: %v", pgDSN(), err)
		}
		t.Skipf("PostgreSQL at %q unreachable (set WRITEBACK_TEST_POSTGRES): %v", pgDSN(), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// pgTables creates a setup's tables, named prefix_counters, prefix_pairs and
// prefix_events (dropped when the test ends), seeds them, and returns the
// rules that make all three write-back.
func pgTables(t testing.TB, admin *sql.DB, prefix string, seed int) string {
	t.Helper()
	stmts := []string{
		`CREATE TABLE %[1]s_counters (id bigint PRIMARY KEY, views bigint NOT NULL DEFAULT 0, hits integer NOT NULL DEFAULT 0,
			amount numeric(14,3) NOT NULL DEFAULT 0, ratio double precision, label text, flag boolean,
			at timestamptz, blob bytea, doc jsonb)`,
		`CREATE TABLE %[1]s_pairs (a integer NOT NULL, b text NOT NULL, n bigint NOT NULL DEFAULT 0, PRIMARY KEY (a, b))`,
		`CREATE TABLE %[1]s_events (id bigint PRIMARY KEY, kind text NOT NULL, amount numeric, at timestamptz, payload bytea, meta jsonb, ok boolean)`,
		`INSERT INTO %[1]s_counters (id) SELECT g FROM generate_series(0, ` + fmt.Sprint(seed-1) + `) g`,
		`INSERT INTO %[1]s_pairs (a, b) SELECT mod(g, 50), 'k' || (g / 50) FROM generate_series(0, ` + fmt.Sprint(seed-1) + `) g`,
		`INSERT INTO %[1]s_events (id, kind) SELECT g, 'seed' FROM generate_series(0, 9) g`,
	}
	for _, s := range stmts {
		if _, err := admin.Exec(fmt.Sprintf(s, prefix)); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(fmt.Sprintf("DROP TABLE IF EXISTS %[1]s_counters, %[1]s_pairs, %[1]s_events", prefix))
	})
	var sb strings.Builder
	sb.WriteString("tables:\n")
	for _, tbl := range []struct{ name, key string }{{"counters", "[id]"}, {"pairs", "[a, b]"}, {"events", "[id]"}} {
		fmt.Fprintf(&sb, "  %s_%s:\n    mode: back\n    key: %s\n    max_loss: 1h\n    max_dirty: 1000000\n", prefix, tbl.name, tbl.key)
	}
	return sb.String()
}

// pgOpen opens a setup on tables made with rules.
func pgOpen(t testing.TB, s pgSetup, rules string) *sql.DB {
	t.Helper()
	if !s.writeback {
		db, err := sql.Open(s.driver, s.dsn)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	dsn := "driver=" + s.driver + " rules=" + path
	if s.dialect != "" {
		dsn += " dialect=" + s.dialect
	}
	db, err := sql.Open("writeback", dsn+" dsn="+s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// quiet sends writeback's logs (one line per dead letter and per UPDATE that
// matched nothing, opened by DSN: slog's default) nowhere until the test ends.
func quiet(t testing.TB) {
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
}

// pgOp is one statement of the workload.
type pgOp struct {
	query string
	args  []any
}

// pgWorkload is n random writes on prefix's tables (seeded counters and
// pairs keys 0..seed-1; a few keys beyond match nothing): deltas of bigint,
// integer and numeric columns, assignments of every other type with NULLs,
// composite-key deltas, INSERTs, some of a key that exists (refused).
func pgWorkload(prefix string, seed, n int) []pgOp {
	r := rand.New(rand.NewPCG(7, uint64(seed)))
	zone := time.FixedZone("X", -(3*3600 + 30*60))
	// In the second half, some times have an offset in seconds (a local
	// mean time), which lib/pq spells its own way: the multi-row writer
	// then sends those groups as VALUES lists, not text arrays.
	lmt := time.FixedZone("LMT", 3600+17)
	var ops []pgOp
	nextEvent := int64(1000)
	maybe := func(v any) any {
		if r.IntN(6) == 0 {
			return nil
		}
		return v
	}
	for i := 0; i < n; i++ {
		id := int64(r.IntN(seed + seed/20))
		switch k := r.IntN(10); {
		case k < 3:
			ops = append(ops, pgOp{"UPDATE " + prefix + "_counters SET views = views + $1, hits = hits + $2 WHERE id = $3",
				[]any{int64(r.IntN(2000) - 500), int64(r.IntN(7) - 3), id}})
		case k < 4:
			amount := []any{fmt.Sprintf("%d.%03d", r.IntN(100)-50, r.IntN(1000)), int64(r.IntN(9) - 4), "0.5"}[r.IntN(3)]
			ops = append(ops, pgOp{"UPDATE " + prefix + "_counters SET amount = amount + $1 WHERE id = $2", []any{amount, id}})
		case k < 6:
			z := zone
			if i > n/2 && r.IntN(20) == 0 {
				z = lmt
			}
			at := time.Date(2020+r.IntN(5), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1e6)*1000, z)
			blob := make([]byte, r.IntN(6))
			for j := range blob {
				blob[j] = byte(r.IntN(256))
			}
			doc := fmt.Sprintf(`{"n": %d, "tags": ["a", %q], "ok": %v}`, r.IntN(100), fmt.Sprint("t", r.IntN(5)), r.IntN(2) == 0)
			ops = append(ops, pgOp{"UPDATE " + prefix + "_counters SET label = $1, flag = $2, at = $3, blob = $4, doc = $5, ratio = $6 WHERE id = $7",
				[]any{maybe(fmt.Sprintf("l%d 'q' \"d\" \\ %d", i, r.IntN(9))), maybe(r.IntN(2) == 0), maybe(at), maybe(blob), maybe(doc), maybe(float64(r.IntN(1000)) / 7), id}})
		case k < 8:
			ops = append(ops, pgOp{"UPDATE " + prefix + "_pairs SET n = n + $1 WHERE a = $2 AND b = $3",
				[]any{int64(r.IntN(100) - 30), int64(id % 50), fmt.Sprint("k", id/50)}})
		default:
			ev := nextEvent
			if r.IntN(50) == 0 {
				ev = int64(r.IntN(10)) // a seeded key: refused
			} else {
				nextEvent++
			}
			z := time.UTC
			if i > n/2 && r.IntN(20) == 0 {
				z = lmt
			}
			at := time.Date(2024, 5, 1+r.IntN(28), r.IntN(24), 0, 0, r.IntN(1e6)*1000, z)
			ops = append(ops, pgOp{"INSERT INTO " + prefix + "_events (id, kind, amount, at, payload, meta, ok) VALUES ($1, $2, $3, $4, $5, $6, $7)",
				[]any{ev, fmt.Sprint("kind", r.IntN(4)), maybe(fmt.Sprintf("%d.%02d", r.IntN(1000), r.IntN(100))), maybe(at),
					maybe([]byte{byte(r.IntN(256)), 0, 0xff}), maybe(`{"b": 2, "a": 1}`), maybe(r.IntN(2) == 0)}})
		}
	}
	return ops
}

// pgDump returns prefix's tables as text, in key order.
func pgDump(t testing.TB, admin *sql.DB, prefix string) [][]string {
	t.Helper()
	var out [][]string
	for _, q := range []string{
		"SELECT id::text, views::text, hits::text, amount::text, coalesce(ratio::text, 'N'), coalesce(label, 'N'), coalesce(flag::text, 'N'), coalesce(at::text, 'N'), coalesce(encode(blob, 'hex'), 'N'), coalesce(doc::text, 'N') FROM %s_counters ORDER BY id",
		"SELECT a::text, b, n::text FROM %s_pairs ORDER BY a, b",
		"SELECT id::text, kind, coalesce(amount::text, 'N'), coalesce(at::text, 'N'), coalesce(encode(payload, 'hex'), 'N'), coalesce(meta::text, 'N'), coalesce(ok::text, 'N') FROM %s_events ORDER BY id",
	} {
		rows, err := admin.Query(fmt.Sprintf(q, prefix))
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]string, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, vals)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestPgFlushThroughDrivers runs one workload through every setup and
// requires, after a flush, the same tables as the direct execution through
// pgx, and as many refused INSERTs (an error at Exec directly; a dead
// letter, or an error at Exec, through writeback), each refused alone.
func TestPgFlushThroughDrivers(t *testing.T) {
	admin := pgAdmin(t)
	quiet(t)
	ctx := context.Background()
	const seed, n = 400, 6000
	var want [][]string
	wantRefused := -1
	for i, s := range pgSetups(t) {
		t.Run(s.name, func(t *testing.T) {
			prefix := fmt.Sprintf("wb_cmp_%d_%d", os.Getpid(), i)
			rules := pgTables(t, admin, prefix, seed)
			db := pgOpen(t, s, rules)
			defer db.Close()
			refused := 0
			for k, op := range pgWorkload(prefix, seed, n) {
				if k == n/2 && s.writeback {
					// Flush the first half alone: its groups travel as
					// text arrays through lib/pq, the second half's as VALUES.
					if err := writeback.Flush(ctx, db); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := db.ExecContext(ctx, op.query, op.args...); err != nil {
					if !strings.Contains(err.Error(), "23505") && !strings.Contains(err.Error(), "duplicate key") {
						t.Fatalf("%s %v: %v", op.query, op.args, err)
					}
					refused++
				}
			}
			if s.writeback {
				execCount.Store(0)
				if err := writeback.Flush(ctx, db); err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(s.name, "wb_otel") {
					// Through otelsql the flush is a few statements, not one
					// a row (pgx's is reached through Raw and counts none).
					if got := execCount.Load(); got > 30 {
						t.Errorf("the flush ran %d statements through otelsql, want batches", got)
					}
				}
				st, err := writeback.StatsOf(db)
				if err != nil {
					t.Fatal(err)
				}
				if st.Dirty != 0 {
					t.Fatalf("%d rows still dirty after Flush", st.Dirty)
				}
				if st.NoMatch == 0 {
					t.Errorf("no UPDATE matched nothing: the workload should have some")
				}
				refused += int(st.DeadLetters)
				t.Logf("flushes %d, rows %d, no match %d, dead letters %d, flush errors %d",
					st.Flushes, st.FlushedRows, st.NoMatch, st.DeadLetters, st.FlushErrors)
			}
			got := pgDump(t, admin, prefix)
			if want == nil {
				want, wantRefused = got, refused
				if refused == 0 {
					t.Fatal("the workload refused no INSERT: it should have some")
				}
				return
			}
			if refused != wantRefused {
				t.Errorf("refused %d writes, direct pgx %d", refused, wantRefused)
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, direct pgx %d", len(got), len(want))
			}
			bad := 0
			for j := range got {
				if !reflect.DeepEqual(got[j], want[j]) && bad < 5 {
					bad++
					t.Errorf("row %d:\n got %q\nwant %q", j, got[j], want[j])
				}
			}
		})
	}
}
