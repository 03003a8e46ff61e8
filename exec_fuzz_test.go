package writeback

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// FuzzExecNoPanic sends arbitrary statement text with a few arguments
// through a writeback driver connection over SQLite, as Exec and as
// Query: whatever the text and arguments, the driver returns an error or a
// result, and never panics. (Statements that could write files outside the
// test's folder, ATTACH and VACUUM INTO, are skipped.)
//
//	go test -run '^$' -fuzz FuzzExecNoPanic -fuzztime 60s .
func FuzzExecNoPanic(f *testing.F) {
	for _, q := range []string{
		"UPDATE counters SET views = views + 1 WHERE id = ?",
		"UPDATE counters SET views = views + ?2 WHERE id = ?1",
		"UPDATE counters SET views = COALESCE(views, 0) + :n WHERE id = :id",
		"INSERT INTO counters (id, views) VALUES (?, ?)",
		"INSERT INTO counters (id, views) VALUES (?, ?), (?, ?)",
		"INSERT INTO counters (id, views) VALUES (?, 1) ON CONFLICT (id) DO UPDATE SET views = counters.views + excluded.views",
		"INSERT OR IGNORE INTO counters (id, views) VALUES (?, 0)",
		"UPDATE counters SET views = max(views, ?) WHERE id = ? AND note IS NULL",
		"UPDATE counters SET note = ?, views = views - 1 WHERE (id = ?)",
		"SELECT views FROM counters WHERE id = ?",
		"SELECT * FROM counters WHERE id = $1",
		"INSERT INTO counters (id, views) VALUES (?, ?) RETURNING id, views",
		"DELETE FROM counters WHERE id = ?",
		"UPDATE counters AS c SET views = c.views + 1 WHERE c.id = ?",
	} {
		f.Add(q, int64(1), "x", true)
	}
	// One connection for every input: a fresh database each time would
	// spend the fuzzing on opening it. An input that drops the table has it
	// made again afterwards.
	const table = "CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, views INTEGER, note TEXT)"
	_, c := sqliteDriverConn(f, "fuzz", "tables:\n  counters:\n    mode: back\n    key: [id]\n",
		table+"; INSERT INTO counters VALUES (1, 0, NULL), (2, 5, 'a')")
	f.Fuzz(func(t *testing.T, query string, n int64, s string, null bool) {
		upper := strings.ToUpper(query)
		if strings.Contains(upper, "ATTACH") || strings.Contains(upper, "VACUUM") {
			t.Skip("may write a file outside the test's folder")
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

// drainRows reads at most limit rows.
func drainRows(rows driver.Rows, limit int) {
	dest := make([]driver.Value, len(rows.Columns()))
	for i := 0; i < limit; i++ {
		if err := rows.Next(dest); errors.Is(err, io.EOF) || err != nil {
			return
		}
	}
}
