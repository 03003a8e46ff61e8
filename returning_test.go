package writeback

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// returnRead runs a query and describes its result: the columns, each
// row's values with their Go types, or "error" wherever it failed.
func returnRead(db interface {
	Query(string, ...any) (*sql.Rows, error)
}, q string, args ...any) string {
	rows, err := db.Query(q, args...)
	if err != nil {
		return "error"
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	out := []string{strings.ToLower(strings.Join(cols, ","))}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "scan error"
		}
		var row []string
		for _, v := range vals {
			row = append(row, fmt.Sprintf("%T:%v", v, v)) // []byte and string are told apart
		}
		out = append(out, strings.Join(row, ","))
	}
	if rows.Err() != nil {
		return "error"
	}
	return strings.Join(out, ";")
}

// returningOracle runs writes with RETURNING lists directly and through
// writeback, in autocommit and in transactions: the same rows (values and
// Go types), errors and final tables; the ones answerable from the
// statement's own values are buffered.
func returningOracle(t *testing.T, driverName string) {
	p := newOraclePair(t, driverName, exactSchema, exactRules)
	type step struct {
		q        string
		args     []any
		tx       bool // in a transaction of its own
		buffered bool
	}
	steps := []step{
		{q: `INSERT INTO counters (n, id) VALUES (?, ?) RETURNING "id"`, args: []any{1, 50}, buffered: true},
		{q: `INSERT INTO counters (n, id) VALUES (?, ?) RETURNING id`, args: []any{1, 1}},                            // duplicate key
		{q: `INSERT INTO counters (n, id) VALUES (?, ?) RETURNING id`, args: []any{1, 51}, tx: true, buffered: true}, // GORM's Create
		{q: `INSERT INTO counters (id) VALUES (?) RETURNING id, n`, args: []any{52}},                                 // a default: the database's
		{q: `UPDATE counters SET note = ? WHERE id = ? RETURNING id, note`, args: []any{"x", 2}, buffered: true},
		{q: `UPDATE counters SET note = ? WHERE id = ? RETURNING id, note`, args: []any{nil, 2}, buffered: true},
		{q: `UPDATE counters SET n = n + 1 WHERE id = ? RETURNING id`, args: []any{3}, buffered: true},
		{q: `UPDATE counters SET n = n + 1 WHERE id = ? RETURNING id`, args: []any{97}}, // no row: no rows
		{q: `UPDATE counters SET n = n + 1 WHERE id = ? RETURNING n`, args: []any{3}},   // the database's value
		{q: `UPDATE counters SET n = n + 1 WHERE id = ? RETURNING *`, args: []any{3}},
		{q: `INSERT INTO counters (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = counters.n + EXCLUDED.n RETURNING id`, args: []any{1, 5}, buffered: true},
		{q: `INSERT INTO counters (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = counters.n + EXCLUDED.n RETURNING n`, args: []any{1, 5}},
	}
	for _, s := range steps {
		q := p.q(s.q)
		run := func(db *sql.DB) string {
			if !s.tx {
				return returnRead(db, q, s.args...)
			}
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			got := returnRead(tx, q, s.args...)
			if err := tx.Commit(); err != nil {
				return got + " commit error"
			}
			return got
		}
		want := run(p.direct)
		before := p.conn.Stats().Buffered
		got := run(p.wb)
		if got != want {
			t.Fatalf("%s %v:\nthrough writeback %s\ndirectly         %s", q, s.args, got, want)
		}
		if b := p.conn.Stats().Buffered - before; (b > 0) != s.buffered {
			t.Errorf("%s %v: buffered %d, want buffered=%v", q, s.args, b, s.buffered)
		}
	}
	p.same(t, "counters")
}

func TestReturningSQLite(t *testing.T)   { returningOracle(t, "sqlite3") }
func TestReturningPostgres(t *testing.T) { returningOracle(t, "pgx") }
