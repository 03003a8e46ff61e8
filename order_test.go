package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/testdb"
)

// These tests are the multi-instance ordering guard (order_by): two
// connectors, each its own *sql.DB over the same database as two instances
// of an application behind a load balancer would be, write the same rows
// with interleaved timestamps and flush in turn, so that in every round the
// instance holding the older writes of half the rows flushes last. The
// final table must equal a direct-execution oracle that applies every write
// in timestamp order; every delta must be counted.

// orderBackend is one database the ordering tests run on.
type orderBackend struct {
	driver  string
	dsn     func(t *testing.T, prefix string) string
	schema  string
	dollar  bool            // $1 placeholders (PostgreSQL), else ?
	upserts bool            // ON CONFLICT upserts are buffered
	stamp   func(i int) any // the order_by value of timestamp i
	// api opens instance 1 with writeback.OpenDB and rules built in code,
	// instance 0 by DSN and rules file.
	api bool
}

var orderBase = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// timeStamp is timestamp i as a time: i milliseconds after orderBase.
func timeStamp(i int) any { return orderBase.Add(time.Duration(i) * time.Millisecond) }

var orderPostgres = orderBackend{
	driver: "pgx",
	dsn:    func(t *testing.T, prefix string) string { return pgSchema(t, prefix) },
	schema: `CREATE TABLE carts (id BIGINT PRIMARY KEY, note TEXT, qty BIGINT, n BIGINT NOT NULL DEFAULT 0, updated_at TIMESTAMPTZ)`,
	dollar: true, upserts: true, stamp: timeStamp,
}

var orderSQLite = orderBackend{
	driver:  "sqlite3",
	dsn:     func(t *testing.T, prefix string) string { return sqliteDSN(t, prefix) },
	schema:  `CREATE TABLE carts (id INTEGER PRIMARY KEY, note TEXT, qty INTEGER, n INTEGER NOT NULL DEFAULT 0, updated_at INTEGER)`,
	upserts: true,
	stamp:   func(i int) any { return int64(1_700_000_000_000 + i) }, // epoch milliseconds
}

var orderMariaDB = orderBackend{
	driver: "mysql",
	dsn:    func(t *testing.T, prefix string) string { return mysqlDSN(t, prefix) },
	schema: `CREATE TABLE carts (id BIGINT PRIMARY KEY, note VARCHAR(100), qty BIGINT, n BIGINT NOT NULL DEFAULT 0, updated_at DATETIME(6))`,
	stamp:  timeStamp,
}

func orderRules(orderBy bool) string {
	r := `
tables:
  carts:
    mode: back
    key: [id]
    max_loss: 1h
`
	if orderBy {
		r += "    order_by: updated_at\n"
	}
	return r
}

// orderWrite is one application write of the scenario.
type orderWrite struct {
	inst int // 0 or 1: which instance makes it
	ts   int // its timestamp: the order of the oracle
	kind int // see orderSQL
	id   int64
	note string
	qty  int64
	d    int64 // a delta on n
}

// Kinds of write: an assignment of note, qty and updated_at; the same with a
// delta on n; a delta alone (no updated_at: it commutes); an upsert of all
// four (PostgreSQL and SQLite).
const (
	orderAssign = iota
	orderAssignDelta
	orderDelta
	orderUpsert
)

func (b orderBackend) sql(q string) string {
	if !b.dollar {
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

// exec runs w on db.
func (b orderBackend) exec(ctx context.Context, db *sql.DB, w orderWrite) error {
	var err error
	switch w.kind {
	case orderAssign:
		_, err = db.ExecContext(ctx, b.sql("UPDATE carts SET note = ?, qty = ?, updated_at = ? WHERE id = ?"), w.note, w.qty, b.stamp(w.ts), w.id)
	case orderAssignDelta:
		_, err = db.ExecContext(ctx, b.sql("UPDATE carts SET note = ?, n = n + ?, qty = ?, updated_at = ? WHERE id = ?"), w.note, w.d, w.qty, b.stamp(w.ts), w.id)
	case orderDelta:
		_, err = db.ExecContext(ctx, b.sql("UPDATE carts SET n = n + ? WHERE id = ?"), w.d, w.id)
	case orderUpsert:
		_, err = db.ExecContext(ctx, b.sql("INSERT INTO carts (id, note, qty, n, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note, qty = EXCLUDED.qty, n = carts.n + EXCLUDED.n, updated_at = EXCLUDED.updated_at"),
			w.id, w.note, w.qty, w.d, b.stamp(w.ts))
	}
	if err != nil {
		return fmt.Errorf("instance %d, write at %d (kind %d, id %d): %w", w.inst, w.ts, w.kind, w.id, err)
	}
	return nil
}

// orderScenario is rounds of writes by two instances to seeded rows (ids
// 1..seeded, half with updated_at NULL) and, with upserts, to new ids.
// Each round's timestamps are a random permutation of the round's range,
// so the instances' writes interleave.
func orderScenario(seed int64, rounds, perRound int, upserts bool) [][]orderWrite {
	rng := rand.New(rand.NewSource(seed))
	var out [][]orderWrite
	for r := 0; r < rounds; r++ {
		perm := rng.Perm(perRound)
		round := make([]orderWrite, perRound)
		for i := range round {
			w := orderWrite{inst: rng.Intn(2), ts: 1 + r*perRound + perm[i], id: int64(1 + rng.Intn(orderSeeded)),
				note: fmt.Sprintf("n%d", rng.Intn(1000)), qty: int64(rng.Intn(100)), d: int64(1 + rng.Intn(9))}
			switch k := rng.Intn(10); {
			case k < 4:
				w.kind = orderAssign
			case k < 6:
				w.kind = orderAssignDelta
			case k < 8:
				w.kind = orderDelta
			case upserts:
				w.kind = orderUpsert
				w.id = int64(1001 + rng.Intn(8))
			default:
				w.kind = orderAssignDelta
			}
			round[i] = w
		}
		out = append(out, round)
	}
	return out
}

const orderSeeded = 12

// seedOrder creates the table and its seeded rows: even ids with
// updated_at NULL (older than any write), odd ids with timestamp 0.
func (b orderBackend) seedOrder(t *testing.T, db *sql.DB) {
	t.Helper()
	execAll(t, db, b.schema)
	for id := 1; id <= orderSeeded; id++ {
		var stamp any
		if id%2 == 1 {
			stamp = b.stamp(0)
		}
		if _, err := db.Exec(b.sql("INSERT INTO carts (id, note, qty, n, updated_at) VALUES (?, ?, ?, ?, ?)"), id, "seed", 0, 100, stamp); err != nil {
			t.Fatal(err)
		}
	}
}

// runOrder plays the scenario through two writeback instances over one
// database (rules orderBy or not) and returns its final table, and the
// oracle's: the same writes applied directly, in timestamp order.
func runOrder(t *testing.T, b orderBackend, orderBy bool, rounds [][]orderWrite) (got, want []string) {
	ctx := context.Background()
	dsn := b.dsn(t, "ordwb")
	base, err := sql.Open(b.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	b.seedOrder(t, base)
	var inst [2]*sql.DB
	for i := range inst {
		inst[i] = openWriteback(t, b.driver, dsn, orderRules(orderBy))
		if b.api && i == 1 {
			inst[i].Close()
			bc, err := baseConnector(b.driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			rule := &TableRule{Mode: ModeBack, Key: []string{"id"}, MaxLoss: time.Hour}
			if orderBy {
				rule.OrderBy = "updated_at"
			}
			if inst[i], err = OpenDB(bc, &Rules{Tables: map[string]*TableRule{"carts": rule}}); err != nil {
				t.Fatal(err)
			}
		}
		defer inst[i].Close()
	}
	var made [2]int64
	for r, round := range rounds {
		// Each instance makes its writes in its own timestamp order (its
		// clock does not go back), the two interleaved.
		sorted := slices.Clone(round)
		slices.SortFunc(sorted, func(a, b orderWrite) int { return a.ts - b.ts })
		for _, w := range sorted {
			if err := b.exec(ctx, inst[w.inst], w); err != nil {
				t.Fatal(err)
			}
			made[w.inst]++
		}
		// Flush one instance, then the other: the later flush carries the
		// older write of every row whose newer write was the first's.
		first := r % 2
		for _, i := range []int{first, 1 - first} {
			if err := Flush(ctx, inst[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range inst {
		st, err := StatsOf(inst[i])
		if err != nil {
			t.Fatal(err)
		}
		if st.NoMatch != 0 || st.DeadLetters != 0 {
			t.Fatalf("instance %d: %d flushed UPDATEs matched no row, %d dead letters", i, st.NoMatch, st.DeadLetters)
		}
		if st.Buffered != made[i] || st.PassedThrough != 0 {
			t.Fatalf("instance %d: %d of its %d writes buffered, %d passed through: every write of the scenario is bufferable", i, st.Buffered, made[i], st.PassedThrough)
		}
	}
	got = dumpTable(t, base, "carts", "id")

	odsn := b.dsn(t, "ordor")
	oracle, err := sql.Open(b.driver, odsn)
	if err != nil {
		t.Fatal(err)
	}
	defer oracle.Close()
	b.seedOrder(t, oracle)
	var all []orderWrite
	for _, round := range rounds {
		all = append(all, round...)
	}
	slices.SortFunc(all, func(a, b orderWrite) int { return a.ts - b.ts })
	for _, w := range all {
		if err := b.exec(ctx, oracle, w); err != nil {
			t.Fatal(err)
		}
	}
	want = dumpTable(t, oracle, "carts", "id")
	return got, want
}

func testOrderOracle(t *testing.T, b orderBackend) {
	rounds := orderScenario(7, 6, 60, b.upserts)
	got, want := runOrder(t, b, true, rounds)
	if !slices.Equal(got, want) {
		t.Fatalf("with order_by, the final table differs from the oracle (writes in timestamp order):\n got %q\nwant %q", got, want)
	}
	// The scenario must be one the guard decides: without it, the later
	// flushes' older writes win somewhere.
	got, want = runOrder(t, b, false, rounds)
	if slices.Equal(got, want) {
		t.Fatal("without order_by the final table equals the oracle too: the scenario does not test the guard")
	}
}

func TestOrderByPostgres(t *testing.T) { testOrderOracle(t, orderPostgres) }
func TestOrderBySQLite(t *testing.T)   { testOrderOracle(t, orderSQLite) }

// TestOrderByAPI: order_by set through the Go rules API (TableRule.OrderBy)
// guards as the rules file's does.
func TestOrderByAPI(t *testing.T) {
	b := orderSQLite
	b.api = true
	testOrderOracle(t, b)
}
func TestOrderByMariaDB(t *testing.T) { testOrderOracle(t, orderMariaDB) }

// TestOrderByJournalReplay: the guard is a property of the flush, so a
// journal replayed after a crash is ordered too. Instance A journals an
// older write and crashes before its flush (a copy of its journal is what
// the crash leaves); instance B writes the row newer and flushes; A
// reopens on its journal and replays the older write: B's assignment
// stays, A's delta is counted. Without order_by the replay overwrites it.
func TestOrderByJournalReplay(t *testing.T) {
	for _, orderBy := range []bool{true, false} {
		t.Run(fmt.Sprintf("order_by=%v", orderBy), func(t *testing.T) {
			b := orderSQLite
			jdir := filepath.Join(t.TempDir(), "journal")
			rules := func(journal bool) string {
				r := orderRules(orderBy)
				if journal {
					r = "journal:\n  path: " + jdir + "\n  fsync: always\n" + r
				}
				return r
			}
			// A's run before the crash, on a scratch database of the same
			// rows: what it flushes at Close does not matter.
			scratchDSN := b.dsn(t, "ordscratch")
			scratch, err := sql.Open(b.driver, scratchDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer scratch.Close()
			b.seedOrder(t, scratch)
			a := openWriteback(t, b.driver, scratchDSN, rules(true))
			if err := b.exec(context.Background(), a, orderWrite{ts: 10, kind: orderAssignDelta, id: 1, note: "older", qty: 1, d: 3}); err != nil {
				t.Fatal(err)
			}
			crashed := copyDir(t, jdir)
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}

			dsn := b.dsn(t, "ordreplay")
			base, err := sql.Open(b.driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer base.Close()
			b.seedOrder(t, base)
			inst := openWriteback(t, b.driver, dsn, rules(false))
			if err := b.exec(context.Background(), inst, orderWrite{ts: 20, kind: orderAssignDelta, id: 1, note: "newer", qty: 2, d: 4}); err != nil {
				t.Fatal(err)
			}
			if err := inst.Close(); err != nil {
				t.Fatal(err)
			}
			jdir = crashed
			a = openWriteback(t, b.driver, dsn, rules(true))
			if err := a.Ping(); err != nil {
				t.Fatal(err)
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			got := dumpTable(t, base, "carts", "id")[0]
			want := fmt.Sprintf("1|newer|2|107|%v", b.stamp(20))
			if !orderBy {
				want = fmt.Sprintf("1|older|1|107|%v", b.stamp(10))
			}
			if got != want {
				t.Errorf("row 1 after the replay: got %q, want %q", got, want)
			}
		})
	}
}

// TestOrderByMariaDBChangedRows is TestOrderByMariaDB on connections that
// count the rows an UPDATE changed (MySQL's default), not those it
// matched: a guarded row left as it was is not counted, and the flush
// takes its slower path (which keys exist, then the UPDATE again).
func TestOrderByMariaDBChangedRows(t *testing.T) {
	b := orderMariaDB
	b.dsn = func(t *testing.T, prefix string) string { return testdb.MySQLDatabase(t, prefix, "") }
	testOrderOracle(t, b)
}
