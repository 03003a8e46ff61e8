package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// Drivers that wrap pgx under names writeback does not know, as otelsql and
// other instrumentation do: one offers the connection it wraps through Raw
// (otelsql's way), the other hides it. With dialect=postgres both flush in
// batches: natively through Raw, with multi-row statements otherwise.

var registerWrapped = sync.OnceFunc(func() {
	sql.Register("wb_test_pgx_raw", wrapDriver{raw: true})
	sql.Register("wb_test_pgx_hidden", wrapDriver{})
})

// wrapDriver opens pgx connections and wraps them.
type wrapDriver struct{ raw bool }

func (d wrapDriver) Open(dsn string) (driver.Conn, error) {
	c, err := stdlib.GetDefaultDriver().Open(dsn)
	if err != nil {
		return nil, err
	}
	w := &wrapConn{c: c}
	if d.raw {
		return &rawWrapConn{w}, nil
	}
	return w, nil
}

// wrapConn forwards database/sql/driver's interfaces, and nothing else.
type wrapConn struct{ c driver.Conn }

func (w *wrapConn) Prepare(q string) (driver.Stmt, error) { return w.c.Prepare(q) }
func (w *wrapConn) Close() error                          { return w.c.Close() }
func (w *wrapConn) Begin() (driver.Tx, error) {
	//lint:ignore SA1019 delegates the legacy method driver.Conn requires
	return w.c.Begin()
}
func (w *wrapConn) BeginTx(ctx context.Context, o driver.TxOptions) (driver.Tx, error) {
	return w.c.(driver.ConnBeginTx).BeginTx(ctx, o)
}
func (w *wrapConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return w.c.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}
func (w *wrapConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return w.c.(driver.ExecerContext).ExecContext(ctx, q, args)
}
func (w *wrapConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return w.c.(driver.QueryerContext).QueryContext(ctx, q, args)
}
func (w *wrapConn) CheckNamedValue(nv *driver.NamedValue) error {
	return w.c.(driver.NamedValueChecker).CheckNamedValue(nv)
}
func (w *wrapConn) ResetSession(ctx context.Context) error {
	if r, ok := w.c.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// rawWrapConn also offers the wrapped connection, as otelsql's does.
type rawWrapConn struct{ *wrapConn }

func (r *rawWrapConn) Raw() driver.Conn { return r.c }

// TestPgWrappedDrivers runs one workload directly and through writeback over
// both wrapping drivers (dialect=postgres), and requires the same tables and
// the same refusals (the duplicate INSERTs: errors directly, dead letters
// through writeback, each refused alone).
func TestPgWrappedDrivers(t *testing.T) {
	requirePostgres(t)
	registerWrapped()
	const schema = `
CREATE TABLE counters (id bigint PRIMARY KEY, views bigint NOT NULL DEFAULT 0, small integer NOT NULL DEFAULT 0,
	amount numeric(12,2) NOT NULL DEFAULT 0, label text, at timestamptz, blob bytea);
CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL, at timestamptz);
INSERT INTO counters (id) SELECT g FROM generate_series(1, 300) g;
INSERT INTO events (id, kind) SELECT g, 'seed' FROM generate_series(1, 5) g`
	// rows_affected: assume, so UPDATEs of missing keys are buffered and the
	// writer's report of keys that matched nothing is exercised.
	const rules = `
tables:
  counters: {mode: back, key: [id], max_loss: 1h, batch: 64, rows_affected: assume}
  events: {mode: back, key: [id], max_loss: 1h, batch: 64, rows_affected: assume}
`
	zone := time.FixedZone("Z", 5*3600+45*60)
	var ops []struct {
		q    string
		args []any
	}
	add := func(q string, args ...any) {
		ops = append(ops, struct {
			q    string
			args []any
		}{q, args})
	}
	for i := 0; i < 1500; i++ {
		id := int64(i*7%320 + 1) // ids above 300 match nothing
		switch i % 5 {
		case 0, 1:
			add("UPDATE counters SET views = views + $1, small = small + $2 WHERE id = $3", int64(i%13-4), int64(-(i % 3)), id)
		case 2:
			add("UPDATE counters SET amount = amount + $1 WHERE id = $2", fmt.Sprintf("%d.%02d", i%9-3, i%100), id)
		case 3:
			var label, at, blob any = fmt.Sprintf("l%d '\"\\", i), time.Date(2024, 1, 1+i%28, i%24, i%60, 0, (i%1000)*1000, zone), []byte{byte(i), 0, 0xff}
			if i%4 == 0 {
				label, at, blob = nil, nil, nil
			}
			add("UPDATE counters SET label = $1, at = $2, blob = $3 WHERE id = $4", label, at, blob, id)
		case 4:
			ev := int64(1000 + i)
			if i%97 == 4 {
				ev = int64(i%5 + 1) // a seeded key: refused
			}
			add("INSERT INTO events (id, kind, at) VALUES ($1, $2, $3)", ev, fmt.Sprint("k", i%3), time.Date(2024, 2, 1, 0, 0, i%60, 0, time.UTC))
		}
	}

	type result struct {
		tables  []string
		refused int64
	}
	run := func(name, driverName, dia string) result {
		dsn := pgSchema(t, "wrap")
		admin, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		execAll(t, admin, schema)
		var db *sql.DB
		if driverName == "" {
			db = admin
		} else {
			path := writeRulesFile(t, rules)
			if db, err = sql.Open("writeback", "driver="+driverName+" rules="+path+" dialect="+dia+" dsn="+dsn); err != nil {
				t.Fatal(err)
			}
			defer db.Close()
		}
		var r result
		for _, op := range ops {
			if _, err := db.Exec(op.q, op.args...); err != nil {
				if !strings.Contains(err.Error(), "23505") {
					t.Fatalf("%s: %s: %v", name, op.q, err)
				}
				r.refused++
			}
		}
		if driverName != "" {
			if err := Flush(context.Background(), db); err != nil {
				t.Fatal(err)
			}
			st, err := StatsOf(db)
			if err != nil {
				t.Fatal(err)
			}
			if st.NoMatch == 0 || st.Dirty != 0 {
				t.Fatalf("%s: no match %d, dirty %d: want UPDATEs that matched nothing, nothing left", name, st.NoMatch, st.Dirty)
			}
			r.refused += st.DeadLetters
		}
		r.tables = append(dumpTable(t, admin, "counters", "id"), dumpTable(t, admin, "events", "id")...)
		return r
	}
	want := run("direct", "", "")
	if want.refused == 0 {
		t.Fatal("the workload refused nothing")
	}
	for _, c := range []struct{ name, driver, dialect string }{
		{"raw", "wb_test_pgx_raw", "postgres"},
		{"hidden", "wb_test_pgx_hidden", "postgres"},
		{"hidden, generic", "wb_test_pgx_hidden", "generic"},
	} {
		got := run(c.name, c.driver, c.dialect)
		if got.refused != want.refused {
			t.Errorf("%s: %d writes refused, directly %d", c.name, got.refused, want.refused)
		}
		if !reflect.DeepEqual(got.tables, want.tables) {
			for i := range got.tables {
				if i < len(want.tables) && got.tables[i] != want.tables[i] {
					t.Errorf("%s: row %d = %s, want %s", c.name, i, got.tables[i], want.tables[i])
					break
				}
			}
			t.Fatalf("%s: tables differ (%d rows, want %d)", c.name, len(got.tables), len(want.tables))
		}
	}
}

// TestCommitAnswerLostWrapped: through a driver that hides pgx, the flush's
// COMMIT whose answer is lost is resolved by the transaction's id too, and
// no delta is applied twice.
func TestCommitAnswerLostWrapped(t *testing.T) {
	registerWrapped()
	commitAnswerLost(t, "wb_test_pgx_hidden", WithDialect("postgres"))
}
