package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The differential test runs one random workload twice, once on a database
// directly and once on an identical database through writeback, and requires
// every read, every error, and after Flush every table, to be identical.

const diffSchema = `
CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL DEFAULT 0, label TEXT);
CREATE TABLE pairs (a BIGINT NOT NULL, b TEXT NOT NULL, n BIGINT, PRIMARY KEY (a, b));
CREATE TABLE events (id BIGINT PRIMARY KEY, kind TEXT NOT NULL, amount BIGINT NOT NULL)`

// diffRules are upsertRules (counters and pairs written back) with events
// written through.
func diffRules(maxLoss string) string {
	return upsertRules(maxLoss) + "  events:\n    mode: through\n"
}

// diffSide is one of the two databases with its pinned connections.
type diffSide struct {
	db    *sql.DB
	conns []*sql.Conn
	stmts []*sql.Stmt // a prepared pairs UPDATE per connection
}

type diffOp struct {
	query string
	args  []any
	read  bool
	conn  int
	tx    []diffOp // a transaction: its statements, then commit or rollback
	abort bool
}

func newDiffSide(t *testing.T, db *sql.DB, nconn int, dollar bool) *diffSide {
	ctx := context.Background()
	s := &diffSide{db: db}
	for i := 0; i < nconn; i++ {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.PrepareContext(ctx, placeholders("UPDATE pairs SET n = n + ? WHERE a = ? AND b = ?", dollar))
		if err != nil {
			t.Fatal(err)
		}
		s.conns = append(s.conns, c)
		s.stmts = append(s.stmts, st)
	}
	return s
}

func (s *diffSide) close() {
	for i := range s.conns {
		s.stmts[i].Close()
		s.conns[i].Close()
	}
}

// placeholders turns ? into $1, $2 ... for PostgreSQL.
func placeholders(q string, dollar bool) string {
	if !dollar {
		return q
	}
	var sb strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			sb.WriteString("$" + strconv.Itoa(n))
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// genWorkload makes a deterministic random workload for a seed.
func genWorkload(seed uint64, n, nconn int) []diffOp {
	r := rand.New(rand.NewPCG(seed, seed*7919))
	nextID := int64(1000)
	nextPair := int64(100)
	labels := []string{"a", "b", "c", "d'quote", ""}
	var ops []diffOp
	counterID := func() int64 {
		if nextID > 1000 && r.IntN(4) == 0 {
			return 1000 + r.Int64N(nextID-1000)
		}
		return r.Int64N(250) // ids 200..249 do not exist at first
	}
	one := func() diffOp {
		c := r.IntN(nconn)
		switch p := r.IntN(100); {
		case p < 28:
			return diffOp{conn: c, query: "UPDATE counters SET views = views + ? WHERE id = ?", args: []any{r.Int64N(16) - 5, counterID()}}
		case p < 36:
			return diffOp{conn: c, query: "UPDATE counters SET label = ? WHERE id = ?", args: []any{labels[r.IntN(len(labels))], counterID()}}
		case p < 42:
			return diffOp{conn: c, query: "UPDATE counters SET views = views - ?, label = ? WHERE id = ?", args: []any{r.Int64N(4), labels[r.IntN(len(labels))], counterID()}}
		case p < 45:
			return diffOp{conn: c, query: "UPDATE counters SET label = NULL WHERE id = ?", args: []any{counterID()}}
		case p < 47:
			return diffOp{conn: c, query: "UPDATE counters SET views = 7, label = 'lit' WHERE id = 3"}
		case p < 52:
			nextID++
			return diffOp{conn: c, query: "INSERT INTO counters (id, views, label) VALUES (?, ?, ?)", args: []any{nextID - 1, r.Int64N(100), labels[r.IntN(len(labels))]}}
		case p < 54:
			nextID += 3
			return diffOp{conn: c, query: "INSERT INTO counters (label, id) VALUES (?, ?), (?, ?), (?, ?)", args: []any{"m1", nextID - 3, nil, nextID - 2, "m3", nextID - 1}}
		case p < 58:
			return diffOp{conn: c, query: "DELETE FROM counters WHERE id = ?", args: []any{counterID()}}
		case p < 67:
			return diffOp{conn: c, read: true, query: "SELECT views, label FROM counters WHERE id = ?", args: []any{counterID()}}
		case p < 70:
			return diffOp{conn: c, read: true, query: "SELECT count(*), coalesce(sum(views), 0), count(label) FROM counters"}
		case p < 79:
			// run through the connection's prepared statement (query "" marks it)
			return diffOp{conn: c, args: []any{r.Int64N(9) - 2, r.Int64N(12), []string{"x", "y", "z"}[r.IntN(3)]}}
		case p < 82:
			return diffOp{conn: c, read: true, query: "SELECT a, b, n FROM pairs WHERE a = ? ORDER BY b", args: []any{r.Int64N(12)}}
		case p < 84:
			// A fresh key: a buffered INSERT of a key the database already
			// has is refused at flush, not at Exec (README: what a buffered write means).
			nextPair++
			return diffOp{conn: c, query: "INSERT INTO pairs (a, b, n) VALUES (?, ?, ?)", args: []any{nextPair, "w", r.Int64N(5)}}
		case p < 90:
			nextID++
			return diffOp{conn: c, query: "INSERT INTO events (id, kind, amount) VALUES (?, ?, ?)", args: []any{nextID - 1, "e", r.Int64N(1000)}}
		case p < 92:
			return diffOp{conn: c, read: true, query: "SELECT count(*), coalesce(sum(amount), 0) FROM events"}
		default:
			id := counterID()
			return diffOp{conn: c, abort: r.IntN(2) == 0, tx: []diffOp{
				{query: "UPDATE counters SET views = views + ? WHERE id = ?", args: []any{int64(1), id}},
				{read: true, query: "SELECT views, label FROM counters WHERE id = ?", args: []any{id}},
				{query: "UPDATE pairs SET n = n + 1 WHERE a = ? AND b = 'x'", args: []any{r.Int64N(12)}},
				{read: true, query: "SELECT count(*), coalesce(sum(n), 0) FROM pairs"},
			}}
		}
	}
	for i := 0; i < n; i++ {
		ops = append(ops, one())
	}
	return ops
}

// run executes one operation and returns a text outcome to compare.
func (s *diffSide) run(t *testing.T, op diffOp, dollar bool) string {
	ctx := context.Background()
	c := s.conns[op.conn]
	if op.tx != nil {
		return runTx(t, c, op, dollar)
	}
	if op.query == "" {
		_, err := s.stmts[op.conn].ExecContext(ctx, op.args...)
		return errText(err)
	}
	return runOn(t, c, op, dollar)
}

// runTx runs op's statements in a transaction of b, rolled back if op
// aborts and committed otherwise, and returns their outcomes.
func runTx(t *testing.T, b interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}, op diffOp, dollar bool) string {
	tx, err := b.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, inner := range op.tx {
		out = append(out, runOn(t, tx, inner, dollar))
	}
	if op.abort {
		err = tx.Rollback()
	} else {
		err = tx.Commit()
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ; ")
}

type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func runOn(t *testing.T, q queryer, op diffOp, dollar bool) string {
	ctx := context.Background()
	query := placeholders(op.query, dollar)
	if op.read {
		rows, err := q.QueryContext(ctx, query, op.args...)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rows.Close()
		return strings.Join(scanAll(t, rows), "\n")
	}
	_, err := q.ExecContext(ctx, query, op.args...)
	return errText(err)
}

func errText(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func runDifferential(t *testing.T, direct, wb *sql.DB, dollar bool, seed uint64, n int) {
	runDifferentialSchema(t, direct, wb, dollar, seed, n, diffSchema)
}

// runDifferentialSchema is runDifferential on the tables of schema (the
// same tables in another database's types).
func runDifferentialSchema(t *testing.T, direct, wb *sql.DB, dollar bool, seed uint64, n int, schema string) {
	const nconn = 3
	execAll(t, direct, schema)
	execAll(t, wb, schema)
	for _, db := range []*sql.DB{direct, wb} {
		for id := 0; id < 200; id++ {
			mustExec(t, db, placeholders("INSERT INTO counters (id, views, label) VALUES (?, ?, ?)", dollar), id, id%7, "l"+strconv.Itoa(id%3))
		}
		for a := 0; a < 10; a++ {
			for _, b := range []string{"x", "y", "z"} {
				mustExec(t, db, placeholders("INSERT INTO pairs (a, b, n) VALUES (?, ?, 0)", dollar), a, b)
			}
		}
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	ds, ws := newDiffSide(t, direct, nconn, dollar), newDiffSide(t, wb, nconn, dollar)
	ops := genWorkload(seed, n, nconn)
	for i, op := range ops {
		want := ds.run(t, op, dollar)
		got := ws.run(t, op, dollar)
		if got != want {
			t.Fatalf("seed %d op %d %q %v: through writeback %q, direct %q", seed, i, op.query, op.args, got, want)
		}
	}
	ds.close()
	ws.close()
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range []struct{ name, order string }{{"counters", "id"}, {"pairs", "a, b"}, {"events", "id"}} {
		want, got := dumpTable(t, direct, tbl.name, tbl.order), dumpTable(t, wb, tbl.name, tbl.order)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: table %s differs after Flush:\nwriteback %d rows, direct %d rows\nfirst difference: %s", seed, tbl.name, len(got), len(want), firstDiff(got, want))
		}
	}
	st, err := StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buffered == 0 || st.Coalesced == 0 || st.Flushes == 0 {
		t.Fatalf("the workload buffered nothing: %+v", st)
	}
	if st.DeadLetters != 0 {
		t.Fatalf("dead letters in a valid workload: %+v", st)
	}
	t.Logf("seed %d: %d ops, buffered %d (coalesced %d), passed through %d, barriers %d, flushes %d, rows flushed %d, evictions %d, no-match %d",
		seed, n, st.Buffered, st.Coalesced, st.PassedThrough, st.Barriers, st.Flushes, st.FlushedRows, st.Evictions, st.NoMatch)
}

func firstDiff(a, b []string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return fmt.Sprintf("row %d: writeback %q, direct %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(a), len(b))
}

var diffSeeds = []struct {
	seed    uint64
	maxLoss string
}{{1, "1h"}, {2, "5ms"}, {3, "50ms"}, {4, "1h"}}

func diffOps() int {
	if testing.Short() {
		return 500
	}
	return 3000
}

func TestDifferentialSQLite(t *testing.T) {
	diffSubtests(t, "sqlite3", sqliteDSN, "direct", "wb", diffRules, func(t *testing.T, direct, wb *sql.DB, seed uint64) {
		runDifferential(t, direct, wb, false, seed, diffOps())
	})
}

// diffSubtests runs run as a subtest for each of diffSeeds, on a database of
// driver opened directly and one opened through writeback with rules at the
// seed's max_loss, their base DSNs made by dsn from directTag and wbTag.
func diffSubtests(t *testing.T, driver string, dsn func(t testing.TB, tag string) string, directTag, wbTag string,
	rules func(maxLoss string) string, run func(t *testing.T, direct, wb *sql.DB, seed uint64)) {
	for _, s := range diffSeeds {
		t.Run(fmt.Sprintf("seed%d_maxloss%s", s.seed, s.maxLoss), func(t *testing.T) {
			direct, err := sql.Open(driver, dsn(t, directTag))
			if err != nil {
				t.Fatal(err)
			}
			defer direct.Close()
			wb := openWritebackDeferred(t, driver, dsn(t, wbTag), rules(s.maxLoss))
			defer func() {
				if err := wb.Close(); err != nil {
					t.Error(err)
				}
			}()
			start := time.Now()
			run(t, direct, wb, s.seed)
			t.Logf("took %s", time.Since(start))
		})
	}
}

func TestDifferentialPostgres(t *testing.T) {
	requirePostgres(t)
	diffSubtests(t, "pgx", pgSchema, "diffd", "diffw", diffRules, func(t *testing.T, direct, wb *sql.DB, seed uint64) {
		runDifferential(t, direct, wb, true, seed, diffOps())
	})
}
