package dialect

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The multi-row writer is tested here on pgx connections, driven through
// database/sql/driver calls only (it never looks for pgx); the tests with
// lib/pq and otelsql are in the examples/compat module.

// pgvWriter returns a multi-row writer whose statements carry at most
// maxParams parameters.
func pgvWriter(maxParams int) *pgValuesWriter {
	w := newPgValuesWriter()
	w.maxParams = maxParams
	return w
}

// pgvModes are the writer's two ways of carrying an UPDATE's rows.
var pgvModes = []struct {
	name string
	w    func(maxParams int) *pgValuesWriter
}{
	{"values", func(mp int) *pgValuesWriter { w := pgvWriter(mp); w.valuesOnly = true; return w }},
	{"arrays", pgvWriter},
}

// TestPgvTypesRoundTrip: a value stored by the multi-row writer is stored
// as a direct single-row statement stores it, and refused when that is.
func TestPgvTypesRoundTrip(t *testing.T) {
	db := pgdOpen(t)
	for i, c := range pgdTypeCases(t, db) {
		t.Run(fmt.Sprintf("%02d_%s_%T", i, c.typ, c.val), func(t *testing.T) {
			table := pgdCaseTable(t, db, "vrt", c, "(1), (2), (5)")
			_, directErr := db.Exec("UPDATE "+table+" SET c = $1 WHERE id = 1", c.val)
			_, flushErr := flushDB(t, db, newPgValuesWriter(), 10, pgdUpdate(table, []string{"c"}, []string{"id"}, []any{c.val, int64(2)}))
			pgdSameOutcome(t, "update", directErr, flushErr)
			_, flushErr = flushDB(t, db, pgvModes[0].w(pgMaxParams), 10, pgdUpdate(table, []string{"c"}, []string{"id"}, []any{c.val, int64(5)}))
			pgdSameOutcome(t, "update (values)", directErr, flushErr)
			_, directErr = db.Exec("INSERT INTO "+table+" (id, c) VALUES (3, $1)", c.val)
			_, flushErr = flushDB(t, db, newPgValuesWriter(), 10, pgdInsert(table, []string{"id", "c"}, []any{int64(4), c.val}))
			pgdSameOutcome(t, "insert", directErr, flushErr)
			pgdSameStored(t, db, table, c, [2]string{"1", "2"}, [2]string{"1", "5"}, [2]string{"3", "4"})
		})
	}
}

// TestPgvDeltasAndAssigns: assigns, NULLs, negative deltas of several
// numeric types, and an integer delta beyond the column's range whose sum
// is in range, across statements split by the parameter limit.
func TestPgvDeltasAndAssigns(t *testing.T) {
	db := pgdOpen(t)
	for _, mp := range []struct {
		maxParams int
		mode      int
	}{{7, 0}, {14, 0}, {pgMaxParams, 0}, {7, 1}, {14, 1}, {pgMaxParams, 1}} { // 1, 2, 3 rows a statement
		mode := pgvModes[mp.mode]
		pgdCheckDeltas(t, db, "vdelta", mode.w(mp.maxParams), 1000, fmt.Sprintf("%s, maxParams %d", mode.name, mp.maxParams))
	}
}

// TestPgvNoMatch: the indices of keys that match no row, across statement
// boundaries set by batch and by the parameter limit, with a NULL key and a
// two-column key; every existing row gets its delta exactly once.
func TestPgvNoMatch(t *testing.T) {
	db := pgdOpen(t)
	table := pgdCreate(t, db, "vnomatch", "id bigint PRIMARY KEY, views bigint NOT NULL")
	pgdExec(t, db, "INSERT INTO "+table+" SELECT g, 0 FROM generate_series(0, 19) g")
	rounds := 0
	for _, batch := range []int{1, 3, 1000} {
		for _, mode := range pgvModes {
			for _, maxParams := range []int{2, 8, pgMaxParams} {
				var rows [][]any
				var want []int
				for i := 0; i < 10; i++ {
					id := int64(i * 3) // ids above 19 are missing
					if id > 19 {
						want = append(want, i)
					}
					rows = append(rows, []any{int64(1), id})
				}
				rows = append(rows, []any{int64(1), nil})
				want = append(want, 10)
				nm, err := flushDB(t, db, mode.w(maxParams), batch, pgdUpdate(table, []string{"views+"}, []string{"id"}, rows...))
				if err != nil {
					t.Fatalf("%s batch %d maxParams %d: %v", mode.name, batch, maxParams, err)
				}
				if !reflect.DeepEqual(nm, [][]int{want}) {
					t.Fatalf("%s batch %d maxParams %d: noMatch = %v, want [%v]", mode.name, batch, maxParams, nm, want)
				}
				rounds++
			}
		}
	}
	got := pgdRows(t, db, "SELECT string_agg(views::text, ',' ORDER BY id) FROM "+table)
	r := fmt.Sprint(rounds)
	want := strings.Repeat(r+",0,0,", 6) + r + ",0"
	if got[0][0] != want {
		t.Fatalf("views = %s, want %s", got[0][0], want)
	}

	comp := pgdCreate(t, db, "vcomp", pgdCompositeCols)
	pgdExec(t, db, "INSERT INTO "+comp+" (tenant, page) VALUES (1, 'a'), (1, 'b'), (2, 'a')")
	for _, mode := range pgvModes {
		pgdFlushComposite(t, db, comp, mode.w(6), 1000, mode.name)
	}
	if got, want := pgdRows(t, db, "SELECT tenant, page, views FROM "+comp+" ORDER BY 1, 2"), [][]string{{"1", "a", "2"}, {"1", "b", "10"}, {"2", "a", "6"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("rows = %q, want %q", got, want)
	}
}

// TestPgvUpdateMovesKey: an UPDATE that sets its key is checked for missing
// keys before it runs.
func TestPgvUpdateMovesKey(t *testing.T) {
	db := pgdOpen(t)
	for _, mode := range pgvModes {
		pgdCheckMovesKey(t, db, "vmovekey", mode.w(4), mode.name)
	}
}

// TestPgvInsert inserts across statement boundaries, and a duplicate key
// fails the whole transaction with the server's SQLSTATE (the flusher then
// isolates the row), leaving nothing of it committed.
func TestPgvInsert(t *testing.T) {
	db := pgdOpen(t)
	for _, maxParams := range []int{3, 7, pgMaxParams} {
		for _, batch := range []int{1, 4, 100} {
			table := pgdCheckInsert(t, db, "vins", pgvWriter(maxParams), batch, fmt.Sprintf("maxParams %d batch %d", maxParams, batch))
			_, err := flushDB(t, db, pgvWriter(maxParams), batch,
				pgdUpdate(table, []string{"name"}, []string{"id"}, []any{"changed", int64(0)}),
				pgdInsert(table, []string{"id", "name"}, []any{int64(10), "new"}, []any{int64(3), "dup"}, []any{int64(11), "new"}))
			if code, _ := SQLState(err); code != "23505" {
				t.Fatalf("duplicate key: err = %v, want SQLSTATE 23505", err)
			}
			if ClassOf(err) != Permanent {
				t.Fatalf("duplicate key: class %v, want permanent", ClassOf(err))
			}
			got := pgdRows(t, db, "SELECT count(*), (SELECT name FROM "+table+" WHERE id = 0) FROM "+table)
			if !reflect.DeepEqual(got[0], []string{"10", "n0"}) {
				t.Fatalf("after the failed flush: %q, want nothing of it committed", got[0])
			}
		}
	}
}

// TestPgvInTx: the checkpoint's statement, with array arguments, commits
// with the rows; its failure rolls them back.
func TestPgvInTx(t *testing.T) {
	db := pgdOpen(t)
	table := pgdCreate(t, db, "vintx", "id bigint PRIMARY KEY, views bigint")
	mark := pgdCreate(t, db, "vintx_mark", "k text, n bigint")
	pgdExec(t, db, "INSERT INTO "+table+" VALUES (1, 0)")
	flush := func(inTx func(exec Exec) error) error {
		_, err := flushDBTx(context.Background(), t, db, hidingWriter{newPgValuesWriter()}, 10, inTx, pgdUpdate(table, []string{"views+"}, []string{"id"}, []any{int64(1), int64(1)}))
		return err
	}
	keys := []string{`a"b`, `c\d`, "NULL", "", "e,f{}"}
	if err := flush(func(exec Exec) error {
		return exec("INSERT INTO "+mark+" SELECT * FROM unnest($1::text[], $2::int8[])", keys, []int64{7, 8, -9, 10, 11})
	}); err != nil {
		t.Fatal(err)
	}
	err := flush(func(exec Exec) error { return exec("INSERT INTO " + mark + " VALUES ('x', 1 / 0)") })
	if code, _ := SQLState(err); code != "22012" {
		t.Fatalf("err = %v, want SQLSTATE 22012", err)
	}
	got := pgdRows(t, db, "SELECT (SELECT views FROM "+table+"), (SELECT string_agg(k || '=' || n, '|' ORDER BY n) FROM "+mark+")")
	if want := [][]string{{"1", `NULL=-9|a"b=7|c\d=8|=10|e,f{}=11`}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("views, marks = %q, want %q", got, want)
	}
}

// TestPgvTxidStatus: the resolver of a lost COMMIT answer, through plain
// driver calls, answers as pgTxidStatus does.
func TestPgvTxidStatus(t *testing.T) {
	db := pgdOpen(t)
	ctx := context.Background()
	var xid int64
	var started string
	if err := db.QueryRowContext(ctx, "SELECT txid_current(), extract(epoch FROM pg_postmaster_start_time())::text").Scan(&xid, &started); err != nil {
		t.Fatal(err)
	}
	c := testConn(t, db)
	resolve := func(xid int64, started string) (committed, known bool, err error) {
		t.Helper()
		return resolveConn(t, c, func(ctx context.Context, dc driver.Conn) (bool, bool, error) {
			return pgTxidStatusSQL(fmt.Sprint(xid), started)(ctx, hidePgx(dc))
		})
	}
	if committed, known, err := resolve(xid, started); !committed || !known || err != nil {
		t.Errorf("a committed transaction on the same server: %v %v %v", committed, known, err)
	}
	if committed, known, err := resolve(xid+1_000_000, started); committed || !known || err != nil {
		t.Errorf("an id in the future: %v %v %v, want not committed, known", committed, known, err)
	}
	if _, known, err := resolve(xid, "1"); known || !errors.Is(err, ErrCommitAmbiguous) {
		t.Errorf("committed, but on a restarted server: known %v err %v, want ErrCommitAmbiguous", known, err)
	}
	// An aborted transaction.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var aborted int64
	if err := tx.QueryRow("SELECT txid_current()").Scan(&aborted); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	if committed, known, err := resolve(aborted, started); committed || !known || err != nil {
		t.Errorf("an aborted transaction: %v %v %v, want not committed, known", committed, known, err)
	}
}

// TestPgvSQL pins the statements' text.
func TestPgvSQL(t *testing.T) {
	g := pgdUpdate("pages", []string{"title", "views+"}, []string{"id"})
	types := []string{"pg_catalog.text", "pg_catalog.int8", "pg_catalog.int4"}
	for _, c := range []struct {
		got, want string
	}{
		{pgvUpdateSQL(g, types, 2, false), "UPDATE pages AS t SET title = v.c0, views = t.views + v.c1 FROM (VALUES " +
			"($1::pg_catalog.text, $2::pg_catalog.int8, $3::pg_catalog.int4), ($4::pg_catalog.text, $5::pg_catalog.int8, $6::pg_catalog.int4)) " +
			"AS v(c0, c1, k0) WHERE t.id = v.k0"},
		{pgvUpdateSQL(g, types, 2, true), "UPDATE pages AS t SET title = v.c0, views = t.views + v.c1 FROM unnest(" +
			"(SELECT ARRAY[$1::pg_catalog.text, $4::pg_catalog.text]), (SELECT ARRAY[$2::pg_catalog.int8, $5::pg_catalog.int8]), " +
			"(SELECT ARRAY[$3::pg_catalog.int4, $6::pg_catalog.int4])) AS v(c0, c1, k0) WHERE t.id = v.k0"},
		{pgvMissingSQL(g, []string{"pg_catalog.int4"}, 2, false), "SELECT v.n FROM (VALUES ($1::pg_catalog.int4, 1), ($2::pg_catalog.int4, 2)) AS v(k0, n) " +
			"WHERE NOT EXISTS (SELECT 1 FROM pages AS t WHERE t.id = v.k0) ORDER BY v.n"},
		{pgvMissingSQL(g, []string{"pg_catalog.int4"}, 2, true), "SELECT v.n FROM unnest((SELECT ARRAY[$1::pg_catalog.int4, $2::pg_catalog.int4])) WITH ORDINALITY AS v(k0, n) " +
			"WHERE NOT EXISTS (SELECT 1 FROM pages AS t WHERE t.id = v.k0) ORDER BY v.n"},
		{pgvInsertSQL(pgdInsert("pages", []string{"id", "title"}), []string{"pg_catalog.int4", "pg_catalog.text"}, 2),
			"INSERT INTO pages (id, title) VALUES ($1::pg_catalog.int4, $2::pg_catalog.text), ($3::pg_catalog.int4, $4::pg_catalog.text)"},
	} {
		if c.got != c.want {
			t.Errorf("\n got %s\nwant %s", c.got, c.want)
		}
	}
}

// TestPgWrappedConn: a connection that wraps pgx's and offers it through
// Raw (as otelsql's does) gets the native writer, which writes through it;
// one that hides it gets the multi-row writer; a Raw that loops ends.
func TestPgWrappedConn(t *testing.T) {
	db := pgdOpen(t)
	table := pgdCreate(t, db, "wrapped", "id bigint PRIMARY KEY, views bigint")
	pgdExec(t, db, "INSERT INTO "+table+" VALUES (1, 0)")
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.Raw(func(dc any) error {
		for _, tc := range []struct {
			name string
			conn driver.Conn
			want string
		}{
			{"raw", rawConn{hidePgx(dc.(driver.Conn)), dc.(driver.Conn)}, "*dialect.pgWriter"},
			{"raw of raw", rawConn{hidePgx(dc.(driver.Conn)), rawConn{hidePgx(dc.(driver.Conn)), dc.(driver.Conn)}}, "*dialect.pgWriter"},
			{"hidden", hidePgx(dc.(driver.Conn)), "*dialect.pgValuesWriter"},
		} {
			w := postgres{}.NewWriter(tc.conn)
			if got := fmt.Sprintf("%T", w); got != tc.want {
				t.Errorf("%s: writer %s, want %s", tc.name, got, tc.want)
			}
			if _, err := w.WriteTx(context.Background(), tc.conn,
				[]*Group{pgdUpdate(table, []string{"views+"}, []string{"id"}, []any{int64(1), int64(1)})}, 10, nil); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
		return nil
	})
	if got := pgdRows(t, db, "SELECT views FROM "+table); got[0][0] != "3" {
		t.Fatalf("views = %s, want 3", got[0][0])
	}
	var loop loopConn
	if isPgxConn(&loop) {
		t.Fatal("a Raw that returns itself: isPgxConn = true")
	}
}

// hiddenConn offers a connection's database/sql/driver methods and hides
// the rest (pgx's Conn), as a wrapper without Raw does.
type hiddenConn struct{ c driver.Conn }

func hidePgx(c driver.Conn) driver.Conn { return hiddenConn{c} }

// hidingWriter hands its Writer each connection with pgx's hidden.
type hidingWriter struct{ Writer }

func (w hidingWriter) WriteTx(ctx context.Context, conn driver.Conn, groups []*Group, batch int, inTx func(exec Exec) error) ([][]int, error) {
	return w.Writer.WriteTx(ctx, hidePgx(conn), groups, batch, inTx)
}

func (h hiddenConn) Prepare(q string) (driver.Stmt, error) { return h.c.Prepare(q) }
func (h hiddenConn) Close() error                          { return h.c.Close() }
func (h hiddenConn) Begin() (driver.Tx, error) {
	//lint:ignore SA1019 delegates the legacy method driver.Conn requires
	return h.c.Begin()
}
func (h hiddenConn) BeginTx(ctx context.Context, o driver.TxOptions) (driver.Tx, error) {
	return h.c.(driver.ConnBeginTx).BeginTx(ctx, o)
}
func (h hiddenConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return h.c.(driver.ExecerContext).ExecContext(ctx, q, args)
}
func (h hiddenConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return h.c.(driver.QueryerContext).QueryContext(ctx, q, args)
}

// rawConn is a wrapper that offers the connection it wraps through Raw.
type rawConn struct {
	driver.Conn
	raw driver.Conn
}

func (r rawConn) Raw() driver.Conn { return r.raw }

// loopConn's Raw returns itself.
type loopConn struct{ pgdFakeConn }

func (l *loopConn) Raw() driver.Conn { return l }

// pgvStateErr is a driver error with a SQLSTATE, as lib/pq's is.
type pgvStateErr string

func (e pgvStateErr) Error() string    { return "state " + string(e) }
func (e pgvStateErr) SQLState() string { return string(e) }

// TestClassOfSQLState: any driver's error that says its SQLSTATE is
// classed by it.
func TestClassOfSQLState(t *testing.T) {
	for code, want := range map[string]ErrorClass{"23505": Permanent, "40001": Transient, "40P01": Transient, "08006": Connection, "57P01": Connection, "55P03": Transient} {
		err := fmt.Errorf("wrapped: %w", pgvStateErr(code))
		if got := ClassOf(err); got != want {
			t.Errorf("%s: class %v, want %v", code, got, want)
		}
		if got, ok := SQLState(err); !ok || got != code {
			t.Errorf("SQLState = %q %v", got, ok)
		}
	}
	if _, ok := SQLState(errors.New("plain")); ok {
		t.Error("a plain error has a SQLSTATE")
	}
}
