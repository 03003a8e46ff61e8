package writeback

import (
	"context"
	"database/sql/driver"
	"regexp"
	"strings"
	"testing"
	"time"
)

// FuzzExecNoPanic sends arbitrary statement text with a few arguments
// through a writeback driver connection over SQLite, as Exec and as
// Query: whatever the text and arguments, the driver returns an error or a
// result, and never panics.
//
//	go test -run '^$' -fuzz 'FuzzExecNoPanic$' -fuzztime 60s .
func FuzzExecNoPanic(f *testing.F) {
	// One connection for every input: a fresh database each time would
	// spend the fuzzing on opening it. An input that drops the table has it
	// made again afterwards.
	const table = "CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, views INTEGER, note TEXT)"
	_, c := sqliteDriverConn(f, "fuzz", fuzzRules, table+"; INSERT INTO counters VALUES (1, 0, NULL), (2, 5, 'a')")
	fuzzExec(f, c, table, []string{
		"UPDATE counters SET views = views + 1 WHERE id = ?",
		"UPDATE counters SET views = views + ?2 WHERE id = ?1",
		"UPDATE counters SET views = COALESCE(views, 0) + :n WHERE id = :id",
		"INSERT INTO counters (id, views) VALUES (?, ?)",
		"INSERT INTO counters (id, views) VALUES (?, ?), (?, ?)",
		"INSERT INTO counters (id, views) VALUES (?, 1) ON CONFLICT (id) DO UPDATE SET views = counters.views + excluded.views",
		"INSERT OR IGNORE INTO counters (id, views) VALUES (?, 0)",
		"INSERT OR REPLACE INTO counters (id, views, note) VALUES (?, ?, ?)",
		"UPDATE counters SET views = max(views, ?) WHERE id = ? AND note IS NULL",
		"UPDATE counters SET note = ?, views = views - 1 WHERE (id = ?)",
		"SELECT views FROM counters WHERE id = ?",
		"SELECT * FROM counters WHERE id = $1",
		"INSERT INTO counters (id, views) VALUES (?, ?) RETURNING id, views",
		"DELETE FROM counters WHERE id = ?",
		"UPDATE counters AS c SET views = c.views + 1 WHERE c.id = ?",
	})
}

// FuzzExecNoPanicPostgres is FuzzExecNoPanic over PostgreSQL (pgx), whose
// dialect rewrites more: casts, $N parameters, reads by key answered with
// the buffer's deltas, RETURNING.
//
//	go test -run '^$' -fuzz FuzzExecNoPanicPostgres -fuzztime 60s .
func FuzzExecNoPanicPostgres(f *testing.F) {
	const table = "CREATE TABLE IF NOT EXISTS counters (id bigint PRIMARY KEY, views bigint, note text)"
	_, c := driverConn(f, "pgx", pgSchema(f, "fuzz"), fuzzRules, table+"; INSERT INTO counters VALUES (1, 0, NULL), (2, 5, 'a')")
	fuzzExec(f, c, table, []string{
		"UPDATE counters SET views = views + 1 WHERE id = $1",
		"UPDATE counters SET views = views + $2::bigint WHERE id = $1::bigint",
		"UPDATE counters SET views = COALESCE(views, 0) + $2, note = now()::text WHERE id = $1",
		"INSERT INTO counters (id, views) VALUES ($1, $2)",
		"INSERT INTO counters (id, views) VALUES ($1, $2), ($2, $1)",
		"INSERT INTO counters AS c (id, views) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET views = c.views + EXCLUDED.views",
		"INSERT INTO counters (id, views) VALUES ($1, 0) ON CONFLICT DO NOTHING",
		"UPDATE counters SET views = GREATEST(views, $1) WHERE id = $2 AND note IS NULL",
		"UPDATE counters SET note = $2, views = views - 1 WHERE (id = $1)",
		"SELECT views FROM counters WHERE id = $1",
		"SELECT *, views + 1 AS next FROM counters WHERE id = $1",
		"INSERT INTO counters (id, views, note) VALUES ($1, $2, $3) RETURNING id, views, note",
		"DELETE FROM counters WHERE id = $1",
		"UPDATE counters c SET views = c.views + 1 WHERE c.id = $1 RETURNING views",
	})
}

const fuzzRules = "tables:\n  counters:\n    mode: back\n    key: [id]\n"

// fuzzExec runs the fuzz target of FuzzExecNoPanic on c, restoring the
// table with table after each input.
func fuzzExec(f *testing.F, c *conn, table string, seeds []string) {
	for _, q := range seeds {
		f.Add(q, int64(1), "x", true)
	}
	f.Fuzz(func(t *testing.T, query string, n int64, s string, null bool) {
		if fuzzUnsafe(query) {
			t.Skip("may write outside the test's database or folder")
		}
		defer func() { _, _ = c.ExecContext(context.Background(), table, nil) }()
		var third any = s
		if null {
			third = nil
		}
		for _, args := range [][]driver.NamedValue{
			nil,
			{{Ordinal: 1, Value: n}},
			{{Ordinal: 1, Value: n}, {Ordinal: 2, Value: s}, {Ordinal: 3, Value: third}},
			{{Name: "id", Ordinal: 1, Value: n}, {Name: "n", Ordinal: 2, Value: n}},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			_, _ = c.ExecContext(ctx, query, args)
			rows, err := c.QueryContext(ctx, query, args)
			if err == nil {
				drainRows(rows, 100)
				rows.Close()
			}
			cancel()
		}
	})
}

// fuzzUnsafe reports statements a fuzzed input must not run: those that
// can write files or reach beyond the test's own tables (the test role
// may be a superuser).
func fuzzUnsafe(query string) bool {
	upper := strings.ToUpper(query)
	for _, w := range []string{"ATTACH", "VACUUM", "COPY", "PROGRAM", "SYSTEM", "DATABASE", "SCHEMA", "ROLE", "USER",
		"EXTENSION", "TABLESPACE", "PG_", "LO_", "FILE", "FUNCTION", "PROCEDURE", "CALL", "LISTEN", "NOTIFY", "GRANT", "REVOKE"} {
		if strings.Contains(upper, w) {
			return true
		}
	}
	return fuzzDoBlock.MatchString(upper) // DO $$ ... $$: code, not ON CONFLICT ... DO UPDATE
}

var fuzzDoBlock = regexp.MustCompile(`(^|[;\s(])DO\s*(\$|'|E'|LANGUAGE)`)

// drainRows reads at most limit rows.
func drainRows(rows driver.Rows, limit int) {
	dest := make([]driver.Value, len(rows.Columns()))
	for i := 0; i < limit; i++ {
		if rows.Next(dest) != nil { // io.EOF or an error
			return
		}
	}
}
