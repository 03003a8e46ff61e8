package writeback

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"
)

// clockCase runs UPDATEs and INSERTs that set a column to the current time
// through writeback and directly. Through writeback they are buffered and
// the value is the application's clock at Exec: it must lie within the
// Exec call (to the column's precision). Directly the database's clock
// gives it; the test reports how far into the call that fell, which is the
// difference the choice makes (evaluating at flush would move it by up to
// max_loss).
func clockCase(t *testing.T, driverName string) {
	var schema, clock string
	var prec time.Duration
	var q func(string) string
	switch driverName {
	case "sqlite3":
		schema = "CREATE TABLE visits (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, seen DATETIME, note TEXT)"
		clock, prec, q = "CURRENT_TIMESTAMP", time.Second, func(s string) string { return s }
	case "pgx":
		schema = "CREATE TABLE visits (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, seen TIMESTAMPTZ, note TEXT)"
		clock, prec = "now()", time.Microsecond
		q = func(s string) string { return strings.NewReplacer("?1", "$1", "?2", "$2").Replace(s) }
	}
	rules := "tables:\n  visits:\n    mode: back\n    key: [id]\n    max_loss: 1h\n"
	p := newOraclePair(t, driverName, schema+";INSERT INTO visits (id) VALUES (1), (2)", rules)
	stmts := []string{
		"UPDATE visits SET seen = " + clock + ", n = n + 1 WHERE id = ?1",
		"INSERT INTO visits (id, seen) VALUES (?1, " + clock + ")",
	}
	type window struct{ from, to time.Time }
	run := func(db *sql.DB, wb bool) (map[int64]window, []time.Duration) {
		w := map[int64]window{}
		var lags []time.Duration
		for i := range 20 {
			id := int64(1 + i%2)
			stmt := stmts[0]
			if i >= 10 {
				id, stmt = int64(100+i), stmts[1]
			}
			from := time.Now()
			if _, err := db.Exec(q(stmt), id); err != nil {
				t.Fatal(err)
			}
			to := time.Now()
			w[id] = window{from, to}
			if !wb {
				var seen time.Time
				if err := db.QueryRow(q("SELECT seen FROM visits WHERE id = ?1"), id).Scan(&seen); err != nil {
					t.Fatal(err)
				}
				lags = append(lags, seen.Sub(from.Truncate(prec)))
			}
		}
		return w, lags
	}
	before := p.conn.Stats().Buffered
	wbWindows, _ := run(p.wb, true)
	if b := p.conn.Stats().Buffered - before; b != 20 {
		t.Fatalf("buffered %d of 20 writes with %s", b, clock)
	}
	_, lags := run(p.direct, false)
	if err := p.conn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, w := range wbWindows {
		var seen time.Time
		if err := p.wb.QueryRow(q("SELECT seen FROM visits WHERE id = ?1"), id).Scan(&seen); err != nil {
			t.Fatal(err)
		}
		if seen.Before(w.from.Truncate(prec)) || seen.After(w.to) {
			t.Errorf("row %d: seen %v, not within its Exec (%v to %v)", id, seen, w.from, w.to)
		}
	}
	slices.Sort(lags)
	t.Logf("%s directly: the database's value fell %v to %v after Exec began, to its %v (median %v); through writeback it is the application's clock within Exec",
		clock, lags[0], lags[len(lags)-1], prec, lags[len(lags)/2])
	// The other columns are the same as directly.
	for _, db := range []*sql.DB{p.direct, p.wb} {
		if _, err := db.Exec("UPDATE visits SET seen = NULL"); err != nil {
			t.Fatal(err)
		}
	}
	p.same(t, "visits")
}

func TestClockSQLite(t *testing.T)   { clockCase(t, "sqlite3") }
func TestClockPostgres(t *testing.T) { clockCase(t, "pgx") }

// TestClockUpsert: an upsert counter that also stamps the time (ON
// CONFLICT ... DO UPDATE SET n = t.n + 1, seen = now()) is buffered, with
// the application's clock within the Exec call.
func TestClockUpsert(t *testing.T) {
	for _, driverName := range []string{"sqlite3", "pgx"} {
		t.Run(driverName, func(t *testing.T) {
			schema := "CREATE TABLE visits (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, seen TIMESTAMPTZ)"
			clock, prec := "now()", time.Microsecond
			q := "INSERT INTO visits (id, n, seen) VALUES ($1, 1, now()) ON CONFLICT (id) DO UPDATE SET n = visits.n + 1, seen = now()"
			if driverName == "sqlite3" {
				schema = "CREATE TABLE visits (id BIGINT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, seen DATETIME)"
				clock, prec = "CURRENT_TIMESTAMP", time.Second
				q = strings.ReplaceAll(strings.ReplaceAll(q, "$1", "?"), "now()", clock)
			}
			p := newOraclePair(t, driverName, schema, "tables:\n  visits:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
			before := p.conn.Stats().Buffered
			var from, to time.Time
			for i := range 6 {
				from = time.Now()
				if _, err := p.wb.Exec(q, int64(1+i%2)); err != nil {
					t.Fatal(err)
				}
				to = time.Now()
				if _, err := p.direct.Exec(q, int64(1+i%2)); err != nil {
					t.Fatal(err)
				}
			}
			if b := p.conn.Stats().Buffered - before; b != 6 {
				t.Fatalf("buffered %d of 6 upserts with %s", b, clock)
			}
			if err := p.conn.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var seen time.Time
			if err := p.wb.QueryRow(p.q("SELECT seen FROM visits WHERE id = ?"), 2).Scan(&seen); err != nil {
				t.Fatal(err)
			}
			if seen.Before(from.Truncate(prec)) || seen.After(to) {
				t.Errorf("seen %v, not within the last Exec (%v to %v)", seen, from, to)
			}
			for _, db := range []*sql.DB{p.direct, p.wb} {
				if _, err := db.Exec("UPDATE visits SET seen = NULL"); err != nil {
					t.Fatal(err)
				}
			}
			p.same(t, "visits")
		})
	}
}

// TestClockOneInstant: the clocks of one statement (two columns, several
// rows) are one reading, as the database gives one instant.
func TestClockOneInstant(t *testing.T) {
	p := newOraclePair(t, "pgx", "CREATE TABLE visits (id BIGINT PRIMARY KEY, a TIMESTAMPTZ, b TIMESTAMPTZ)", "tables:\n  visits:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	for i := 0; i < 200; i++ {
		if _, err := p.wb.Exec("INSERT INTO visits (id, a, b) VALUES ($1, now(), now()), ($2, now(), now())", 2*i, 2*i+1); err != nil {
			t.Fatal(err)
		}
		if _, err := p.wb.Exec("UPDATE visits SET a = now(), b = now() WHERE id = $1", 2*i); err != nil {
			t.Fatal(err)
		}
	}
	if b := p.conn.Stats().Buffered; b != 600 {
		t.Fatalf("buffered %d of 600 rows' writes", b)
	}
	if err := p.conn.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var differ int
	if err := p.wb.QueryRow("SELECT count(*) FROM visits WHERE a <> b").Scan(&differ); err != nil {
		t.Fatal(err)
	}
	if differ != 0 {
		t.Errorf("%d rows whose two clocks of one statement differ", differ)
	}
}
