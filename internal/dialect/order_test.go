package dialect

import (
	"context"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// orderGroup is an UPDATE group of table with set columns ("c+" a delta)
// under the order_by column updated_at.
func orderGroup(table string, set []string, rows ...[]any) *Group {
	g := pgdUpdate(table, set, []string{"id"}, rows...)
	g.OrderBy = "updated_at"
	return g
}

// TestOrderSQLText pins the guarded statements: each assignment, the
// order_by column's own included, under CASE WHEN; deltas as without the
// guard; placeholders of the one-row forms mapped to the row's values.
func TestOrderSQLText(t *testing.T) {
	g := orderGroup("carts", []string{"note", "n+", "updated_at"})
	if got, want := pgUpdateSQL(g, make([]pgColSQL, 3), make([]pgColSQL, 1)),
		"UPDATE carts AS t SET note = CASE WHEN t.updated_at IS NULL OR t.updated_at <= v.c2 THEN v.c0 ELSE t.note END, n = t.n + v.c1, "+
			"updated_at = CASE WHEN t.updated_at IS NULL OR t.updated_at <= v.c2 THEN v.c2 ELSE t.updated_at END FROM unnest($1::[], $2::[], $3::[], $4::[]) AS v(c0, c1, c2, k0) WHERE t.id = v.k0"; got != want {
		t.Errorf("pgx UPDATE:\n got %s\nwant %s", got, want)
	}
	if got, want := pgvUpdateSQL(g, []string{"text", "int8", "timestamptz", "int8"}, 1, false),
		"UPDATE carts AS t SET note = CASE WHEN t.updated_at IS NULL OR t.updated_at <= v.c2 THEN v.c0 ELSE t.note END, n = t.n + v.c1, "+
			"updated_at = CASE WHEN t.updated_at IS NULL OR t.updated_at <= v.c2 THEN v.c2 ELSE t.updated_at END FROM (VALUES ($1::text, $2::int8, $3::timestamptz, $4::int8)) AS v(c0, c1, c2, k0) WHERE t.id = v.k0"; got != want {
		t.Errorf("multi-row UPDATE:\n got %s\nwant %s", got, want)
	}
	q, idx := genericSQLArgs(g, sqlparse.ParamQuestion, true)
	if want := "UPDATE carts SET note = CASE WHEN updated_at IS NULL OR updated_at <= ? THEN ? ELSE note END, n = n + ?, " +
		"updated_at = CASE WHEN updated_at IS NULL OR updated_at <= ? THEN ? ELSE updated_at END WHERE id = ?"; q != want {
		t.Errorf("one-row UPDATE:\n got %s\nwant %s", q, want)
	}
	if want := []int{2, 0, 1, 2, 2, 3}; !reflect.DeepEqual(idx, want) {
		t.Errorf("one-row UPDATE arguments: got %v, want %v", idx, want)
	}
	rows := [][]any{{"a", int64(1), "T", int64(9)}}
	if got, want := bindRow(nil, rows[0], idx), []any{"T", "a", int64(1), "T", "T", int64(9)}; !reflect.DeepEqual(values(got), want) {
		t.Errorf("bound: got %v, want %v", values(got), want)
	}

	// Without the order column assigned (deltas alone), nothing is guarded.
	d := orderGroup("carts", []string{"n+"})
	if q, idx := genericSQLArgs(d, sqlparse.ParamQuestion, true); q != "UPDATE carts SET n = n + ? WHERE id = ?" || idx != nil {
		t.Errorf("deltas alone: got %s %v", q, idx)
	}

	u := &Group{Table: pgdIdent("carts"), Op: Upsert, KeyCols: []sqlparse.Ident{pgdIdent("id")}, OrderBy: "updated_at",
		Cols:    []sqlparse.Ident{pgdIdent("id"), pgdIdent("n"), pgdIdent("note"), pgdIdent("updated_at")},
		UpdCols: []sqlparse.Ident{pgdIdent("n"), pgdIdent("note"), pgdIdent("updated_at")}, UpdDelta: []bool{true, false, false}}
	q, idx = upsertSQL(u, sqlparse.ParamDollar, nil)
	if want := "INSERT INTO carts (id, n, note, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET n = carts.n + $5, " +
		"note = CASE WHEN carts.updated_at IS NULL OR carts.updated_at <= $6 THEN $7 ELSE carts.note END, " +
		"updated_at = CASE WHEN carts.updated_at IS NULL OR carts.updated_at <= $8 THEN $9 ELSE carts.updated_at END"; q != want {
		t.Errorf("upsert:\n got %s\nwant %s", q, want)
	}
	if want := []int{0, 1, 2, 3, 4, 6, 5, 6, 6}; !reflect.DeepEqual(idx, want) {
		t.Errorf("upsert arguments: got %v, want %v", idx, want)
	}
	if up := upsertUpdate(u); up.OrderBy != "updated_at" {
		t.Errorf("the upsert's UPDATE part lost its order_by: %q", up.OrderBy)
	}

	// MySQL: the order column assigned last, whatever its place.
	m := orderGroup("carts", []string{"a", "updated_at", "n+", "z"})
	mq, _ := mysqlUpdateSQL(m, "carts", [][]any{{"x", "T", int64(1), "y", int64(7)}}, []string{""}, false)
	set := mq[strings.Index(mq, " SET ")+5:]
	if want := "wb_t.a = CASE WHEN wb_t.updated_at IS NULL OR wb_t.updated_at <= wb_v.c1 THEN wb_v.c0 ELSE wb_t.a END, " +
		"wb_t.n = wb_t.n + wb_v.c2, " +
		"wb_t.z = CASE WHEN wb_t.updated_at IS NULL OR wb_t.updated_at <= wb_v.c1 THEN wb_v.c3 ELSE wb_t.z END, " +
		"wb_t.updated_at = CASE WHEN wb_t.updated_at IS NULL OR wb_t.updated_at <= wb_v.c1 THEN wb_v.c1 ELSE wb_t.updated_at END"; set != want {
		t.Errorf("MySQL SET:\n got %s\nwant %s", set, want)
	}
}

func values(nv []driver.NamedValue) []any {
	out := make([]any, len(nv))
	for i := range nv {
		out[i] = nv[i].Value
	}
	return out
}

// TestPgOrderGuard flushes guarded groups with each PostgreSQL writer: a
// row whose stored updated_at is newer keeps its assignments and takes its
// deltas; an older, equal or NULL one takes the row; a missing key is still
// reported as matching nothing; an upsert's update part and its one-row
// upsert are guarded alike.
func TestPgOrderGuard(t *testing.T) {
	db := pgdOpen(t)
	ts := func(s int) time.Time { return time.Date(2026, 1, 1, 0, 0, s, 0, time.UTC) }
	writers := []struct {
		name string
		w    func() Writer
	}{
		{"pgx", func() Writer { return pgdDialect(false) }},
		{"values", func() Writer { return pgvModes[0].w(pgMaxParams) }},
		{"arrays", func() Writer { return pgvModes[1].w(pgMaxParams) }},
	}
	for _, wr := range writers {
		t.Run(wr.name, func(t *testing.T) {
			table := pgdCreate(t, db, "order", "id bigint PRIMARY KEY, note text, n bigint NOT NULL DEFAULT 0, updated_at timestamptz")
			pgdExec(t, db, "INSERT INTO "+table+" VALUES (1, 'newer', 10, $1), (2, 'older', 10, $2), (3, 'null', 10, NULL), (4, 'equal', 10, $3), (5, 'kept', 10, $2), (6, 'null', 10, NULL)", ts(5), ts(1), ts(3))
			g := orderGroup(table, []string{"n+", "note", "updated_at"},
				[]any{int64(2), "w1", ts(3), int64(1)},
				[]any{int64(2), "w2", ts(3), int64(2)},
				[]any{int64(2), "w3", ts(3), int64(3)},
				[]any{int64(2), "w4", ts(3), int64(4)},
				[]any{int64(2), "w5", nil, int64(5)}, // a NULL order value: older than any stored one
				[]any{int64(2), "w6", nil, int64(6)}, // ... and applied over a NULL
				[]any{int64(2), "w9", ts(3), int64(9)},
			)
			noMatch, err := flushDB(t, db, wr.w(), 2, g)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(noMatch, [][]int{{6}}) {
				t.Errorf("no match: got %v, want [[6]]", noMatch)
			}
			up := &Group{Table: pgdIdent(table), Op: Upsert, KeyCols: []sqlparse.Ident{pgdIdent("id")}, OrderBy: "updated_at", Style: sqlparse.ParamDollar,
				Cols:    []sqlparse.Ident{pgdIdent("id"), pgdIdent("n"), pgdIdent("note"), pgdIdent("updated_at")},
				UpdCols: []sqlparse.Ident{pgdIdent("n"), pgdIdent("note"), pgdIdent("updated_at")}, UpdDelta: []bool{true, false, false},
				Rows: [][]any{
					{int64(1), int64(1), "u1", ts(4), int64(1), "u1", ts(4), int64(1)},     // stored ts(5): delta only
					{int64(2), int64(1), "u2", ts(4), int64(1), "u2", ts(4), int64(2)},     // stored ts(3) now: applied
					{int64(20), int64(7), "u20", ts(4), int64(7), "u20", ts(4), int64(20)}, // absent: inserted
				}}
			if _, err := flushDB(t, db, wr.w(), 2, up); err != nil {
				t.Fatal(err)
			}
			got := pgdRows(t, db, "SELECT id, note, n, to_char(updated_at AT TIME ZONE 'UTC', 'SS') FROM "+table+" ORDER BY id")
			want := [][]string{{"1", "newer", "13", "05"}, {"2", "u2", "13", "04"}, {"3", "w3", "12", "03"}, {"4", "w4", "12", "03"},
				{"5", "kept", "12", "01"}, {"6", "w6", "12", "<NULL>"}, {"20", "u20", "7", "04"}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("rows:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// BenchmarkPgFlushOrdered is the cost of the order_by guard: 100k rows of
// (note, views + 1, updated_at) flushed by the pgx writer with the guard
// and without it, rounds alternated, into a table whose stored updated_at
// is older (every row takes the write). It reports both and the guarded
// flush's rows/s as a percentage of the unguarded one's.
func BenchmarkPgFlushOrdered(b *testing.B) {
	db, dc, pc := pgdBenchConn(b)
	ctx := context.Background()
	table := pgdCreate(b, db, "bench_ord", "id bigint PRIMARY KEY, note text, views bigint NOT NULL, updated_at timestamptz")
	reset := func(b *testing.B) {
		for _, q := range []string{
			"TRUNCATE " + table,
			fmt.Sprintf("INSERT INTO %s SELECT g, 'x', 0, '2026-01-01' FROM generate_series(0, %d) g", table, pgdBenchRows-1),
			"VACUUM ANALYZE " + table,
		} {
			if _, err := pc.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	}
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	group := func(orderBy string) *Group {
		g := pgdUpdate(table, []string{"note", "updated_at", "views+"}, []string{"id"})
		g.OrderBy = orderBy
		g.Rows = make([][]any, pgdBenchRows)
		for i := range g.Rows {
			g.Rows[i] = []any{"n" + strconv.Itoa(i), at, int64(1), int64(i)}
		}
		return g
	}
	round := func(g *Group) pgdRound {
		d := newPgWriter()
		return func(b *testing.B, batch int) time.Duration {
			reset(b)
			t0 := time.Now()
			nm, err := d.WriteTx(ctx, dc, []*Group{g}, batch, nil)
			elapsed := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			if len(nm[0]) != 0 {
				b.Fatalf("no-match %d rows", len(nm[0]))
			}
			return elapsed
		}
	}
	b.Run("paired/batch=1000", func(b *testing.B) {
		var tg, tu time.Duration
		guarded, plain := round(group("updated_at")), round(group(""))
		for i := 0; i < b.N; i++ {
			tg += guarded(b, 1000)
			tu += plain(b, 1000)
		}
		rows := float64(pgdBenchRows) * float64(b.N)
		b.ReportMetric(rows/tg.Seconds(), "guarded_rows/s")
		b.ReportMetric(rows/tu.Seconds(), "plain_rows/s")
		b.ReportMetric(100*tu.Seconds()/tg.Seconds(), "guarded_vs_plain_%")
	})
}
