package compat

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"log/slog"
	"math"
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
	"github.com/lib/pq"
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

// hiddenDriver wraps lib/pq's driver under a name writeback does not know,
// and hides its connections' type (no Raw), as some instrumentation does:
// writeback then flushes with placeholders only (dialect=postgres).
type hiddenDriver struct{ base driver.Driver }

func (d hiddenDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.base.Open(dsn)
	if err != nil {
		return nil, err
	}
	return hiddenConn{c}, nil
}

// hiddenConn forwards database/sql/driver's interfaces, and nothing else.
type hiddenConn struct{ c driver.Conn }

func (h hiddenConn) Prepare(q string) (driver.Stmt, error) { return h.c.Prepare(q) }
func (h hiddenConn) Close() error                          { return h.c.Close() }
func (h hiddenConn) Begin() (driver.Tx, error) {
	//lint:ignore SA1019 delegates the legacy method driver.Conn requires
	return h.c.Begin()
}
func (h hiddenConn) BeginTx(ctx context.Context, o driver.TxOptions) (driver.Tx, error) {
	return h.c.(driver.ConnBeginTx).BeginTx(ctx, o)
}
func (h hiddenConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return h.c.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}
func (h hiddenConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return h.c.(driver.ExecerContext).ExecContext(ctx, q, args)
}
func (h hiddenConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return h.c.(driver.QueryerContext).QueryContext(ctx, q, args)
}
func (h hiddenConn) CheckNamedValue(nv *driver.NamedValue) error {
	return h.c.(driver.NamedValueChecker).CheckNamedValue(nv)
}
func (h hiddenConn) IsValid() bool { return h.c.(driver.Validator).IsValid() }
func (h hiddenConn) ResetSession(ctx context.Context) error {
	return h.c.(driver.SessionResetter).ResetSession(ctx)
}

var registerHidden = sync.OnceFunc(func() { sql.Register("wb_hidden_pq", hiddenDriver{pq.Driver{}}) })

// pgSetup is one way of reaching the database: a base driver, and whether
// writeback wraps it.
type pgSetup struct {
	name      string
	driver    string
	dsn       string
	writeback bool
	dialect   string // dialect=, for drivers writeback does not recognize
	journal   bool   // with a journal, whose checkpoints commit with the rows
}

func pgSetups(t testing.TB) []pgSetup {
	names, err := otelDrivers()
	if err != nil {
		t.Fatal(err)
	}
	registerHidden()
	pq := pgDSN() + " sslmode=disable"
	return []pgSetup{
		{name: "direct_pgx", driver: "pgx", dsn: pgDSN()},
		{name: "direct_pq", driver: "postgres", dsn: pq},
		{name: "wb_pgx", driver: "pgx", dsn: pgDSN(), writeback: true},
		{name: "wb_pq", driver: "postgres", dsn: pq, writeback: true},
		{name: "wb_otelpgx", driver: names[0], dsn: pgDSN(), writeback: true},
		{name: "wb_otelpq", driver: names[1], dsn: pq, writeback: true},
		{name: "wb_pq_journal", driver: "postgres", dsn: pq, writeback: true, journal: true},
		{name: "wb_hiddenpq", driver: "wb_hidden_pq", dsn: pq, writeback: true, dialect: "postgres"},
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
	// rows_affected: assume, so UPDATEs of missing keys are buffered and the
	// writers' report of keys that matched nothing is exercised.
	var sb strings.Builder
	sb.WriteString("tables:\n")
	for _, tbl := range []struct{ name, key string }{{"counters", "[id]"}, {"pairs", "[a, b]"}, {"events", "[id]"}} {
		fmt.Fprintf(&sb, "  %s_%s:\n    mode: back\n    key: %s\n    max_loss: 1h\n    max_dirty: 1000000\n    rows_affected: assume\n", prefix, tbl.name, tbl.key)
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
	if s.journal {
		dsn += " journal=" + filepath.Join(filepath.Dir(path), "wb.journal")
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
	// mean time), which drivers spell each their own way.
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
					// Flush the first half alone: the second half's rows
					// then meet rows already flushed, and new ones.
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
				if st.Dirty != 0 || st.JournalUnapplied != 0 {
					t.Fatalf("%d rows still dirty, %d journaled writes unapplied after Flush", st.Dirty, st.JournalUnapplied)
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

// TestPgTypesThroughLibPQ writes values of many types once directly through
// lib/pq and once through writeback over lib/pq (buffered, then flushed),
// and requires the same stored values, and a refusal exactly where the
// direct statement was refused (at Exec or, once flushed, as a dead letter).
func TestPgTypesThroughLibPQ(t *testing.T) {
	admin := pgAdmin(t)
	quiet(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("wb_types_%d", os.Getpid())
	enum := prefix + "_mood"
	if _, err := admin.Exec("CREATE TYPE " + enum + " AS ENUM ('sad', 'ok', 'happy')"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec("DROP TYPE IF EXISTS " + enum + " CASCADE") })
	ist := time.FixedZone("IST", 5*3600+30*60)
	lmt := time.FixedZone("LMT", -(7*3600 + 52*60 + 58))
	ts := time.Date(2024, 3, 1, 23, 34, 56, 123456789, ist)
	cases := []struct {
		typ string
		val any
	}{
		{"bigint", int64(-1 << 63)}, {"bigint", int64(1<<63 - 1)}, {"integer", "17"}, {"integer", int64(1) << 40},
		{"smallint", int64(32767)}, {"numeric", "12.345"}, {"numeric", int64(7)}, {"numeric", "NaN"},
		{"numeric", float64(1.1)}, {"numeric(10,2)", "12.345"}, {"double precision", float64(0.1)},
		{"double precision", math.MaxFloat64}, {"double precision", math.SmallestNonzeroFloat64},
		{"double precision", math.Copysign(0, -1)}, {"double precision", math.Inf(1)}, {"double precision", math.NaN()},
		{"double precision", int64(3)}, {"real", float64(3.14159265358979)},
		{"text", "héllo \"q\" {a,b} NULL \\ ,"}, {"text", ""}, {"text", "NULL"}, {"varchar(5)", "abc"},
		{"varchar(5)", "abcdefg"}, {"char(5)", "ab"}, {"boolean", true}, {"boolean", false}, {"boolean", "yes"},
		{"bytea", []byte{0, 1, 2, 0xfe, 0xff}}, {"bytea", []byte{}}, {"bytea", `\x0102`},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, {"uuid", "{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}"},
		{"jsonb", `{"b": 1, "a": [1, 2.50, "x"]}`}, {"jsonb", []byte(`{"k": null}`)}, {"json", `{"b": 1,  "a": [1, 2.50]}`},
		{"timestamptz", ts}, {"timestamptz", ts.UTC()}, {"timestamptz", "2024-03-01 10:00:00"},
		{"timestamptz", time.Date(1890, 1, 1, 12, 0, 0, 0, lmt)}, {"timestamptz", time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"timestamp", ts}, {"timestamp(0)", ts}, {"date", time.Date(2024, 2, 29, 23, 0, 0, 0, ist)}, {"date", "2024-02-29"},
		{"time", ts}, {"int8[]", pq.Array([]int64{1, -2, 3})}, {"text[]", pq.Array([]string{"a", "b,c", "NULL", "", `q"uote`})},
		{enum, "happy"}, {"interval", "1 day 02:03:04"}, {"inet", "10.0.0.1/8"}, {"int4range", "[1,5)"},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if !seen[c.typ] {
			seen[c.typ] = true
			cases = append(cases, struct {
				typ string
				val any
			}{c.typ, nil})
		}
	}
	var rules strings.Builder
	rules.WriteString("tables:\n")
	table := func(i int) string { return fmt.Sprintf("%s_%d", prefix, i) }
	for i, c := range cases {
		if _, err := admin.Exec("CREATE TABLE " + table(i) + " (id bigint PRIMARY KEY, c " + c.typ + ")"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.Exec("DROP TABLE IF EXISTS " + table(i)) })
		if _, err := admin.Exec("INSERT INTO " + table(i) + " (id) VALUES (1), (2)"); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rules, "  %s:\n    mode: back\n    key: [id]\n    max_loss: 1h\n", table(i))
	}
	direct := pgOpen(t, pgSetup{driver: "postgres", dsn: pgDSN() + " sslmode=disable"}, "")
	defer direct.Close()
	// One flush connection per back table is the default: with this
	// test's ~90 tables, and other tests beside it, PostgreSQL's 100
	// connections would run out.
	base, err := pq.NewConnector(pgDSN() + " sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := writeback.ParseRules([]byte(rules.String()), "rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := writeback.NewConnector(base, parsed, writeback.WithFlushConnections(4))
	if err != nil {
		t.Fatal(err)
	}
	wb := sql.OpenDB(conn)
	defer wb.Close()

	directErr := make([]bool, len(cases))
	wbErr := make([]int, len(cases)) // refusals at Exec
	for i, c := range cases {
		_, err1 := direct.ExecContext(ctx, "UPDATE "+table(i)+" SET c = $1 WHERE id = 1", c.val)
		_, err2 := direct.ExecContext(ctx, "INSERT INTO "+table(i)+" (id, c) VALUES (3, $1)", c.val)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("%s %#v: direct UPDATE err %v, INSERT err %v", c.typ, c.val, err1, err2)
		}
		directErr[i] = err1 != nil
		if _, err := wb.ExecContext(ctx, "UPDATE "+table(i)+" SET c = $1 WHERE id = 2", c.val); err != nil {
			wbErr[i]++
		}
		if _, err := wb.ExecContext(ctx, "INSERT INTO "+table(i)+" (id, c) VALUES (4, $1)", c.val); err != nil {
			wbErr[i]++
		}
	}
	if err := writeback.Flush(ctx, wb); err != nil {
		t.Fatal(err)
	}
	st, err := writeback.StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buffered < int64(len(cases)) {
		t.Errorf("only %d of %d writes were buffered: the flush path is hardly tested", st.Buffered, 2*len(cases))
	}
	refusedWB := 0
	refusedDirect := 0
	for i, c := range cases {
		if directErr[i] {
			refusedDirect += 2
		}
		if directErr[i] != (wbErr[i] > 0) && directErr[i] != (st.Tables[table(i)].DeadLetters > 0) {
			t.Errorf("%s %#v: direct refused %v, writeback refused %d at Exec and %d at flush", c.typ, c.val, directErr[i], wbErr[i], st.Tables[table(i)].DeadLetters)
		}
		refusedWB += wbErr[i] + int(st.Tables[table(i)].DeadLetters)
		got := map[string][2]string{}
		rows, err := admin.Query("SELECT id::text, coalesce(c::text, ''), (c IS NULL)::text FROM " + table(i))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, v, null string
			if err := rows.Scan(&id, &v, &null); err != nil {
				t.Fatal(err)
			}
			got[id] = [2]string{v, null}
		}
		rows.Close()
		if got["1"] != got["2"] || got["3"] != got["4"] {
			t.Errorf("%s %#v: direct stored %q and %q, writeback %q and %q", c.typ, c.val, got["1"], got["3"], got["2"], got["4"])
		}
	}
	if refusedWB != refusedDirect {
		t.Errorf("writeback refused %d writes, lib/pq directly %d", refusedWB, refusedDirect)
	}
	t.Logf("%d cases, %d writes buffered, %d refused", len(cases), st.Buffered, refusedDirect)
}

// TestPgDialectDetected: lib/pq (driver=postgres) is read as PostgreSQL,
// whose catalog checks the rules at open (a rule naming a missing table
// refuses it), and so are otelsql's drivers wrapping lib/pq and pgx: the
// wrapped driver decides.
func TestPgDialectDetected(t *testing.T) {
	pgAdmin(t)
	quiet(t)
	names, err := otelDrivers()
	if err != nil {
		t.Fatal(err)
	}
	rules := "tables:\n  wb_no_such_table_h1:\n    mode: back\n    key: [id]\n"
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	pq := " dsn=" + pgDSN() + " sslmode=disable"
	for _, c := range []struct {
		dsn      string
		postgres bool
		whatIsIt string
	}{
		{"driver=postgres rules=" + path + pq, true, "lib/pq"},
		{"driver=" + names[1] + " rules=" + path + pq, true, "otelsql over lib/pq"},
		{"driver=" + names[0] + " rules=" + path + " dsn=" + pgDSN(), true, "otelsql over pgx"},
		{"driver=" + names[1] + " dialect=postgres rules=" + path + pq, true, "otelsql over lib/pq, dialect=postgres"},
	} {
		db, err := sql.Open("writeback", c.dsn)
		if err == nil {
			db.Close()
		}
		if refused := err != nil && strings.Contains(err.Error(), "wb_no_such_table_h1"); refused != c.postgres {
			t.Errorf("%s: open err = %v; want the missing table refused: %v", c.whatIsIt, err, c.postgres)
		}
	}
}
