package dialect

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

func TestMySQLDetectAndByName(t *testing.T) {
	if k := Detect(&gomysql.MySQLDriver{}).Kind(); k != MySQL {
		t.Errorf("Detect(go-sql-driver/mysql) = %s, want mysql", k)
	}
	for _, n := range []string{"mysql", "mariadb"} {
		d, err := ByName(n)
		if err != nil || d.Kind() != MySQL {
			t.Errorf("ByName(%q) = %v, %v", n, d, err)
		}
	}
}

func TestMySQLErrorClasses(t *testing.T) {
	for _, c := range []struct {
		n    uint16
		want ErrorClass
	}{
		{1213, Transient}, {1205, Transient}, {1040, Transient},
		{2006, Connection}, {2013, Connection},
		{1062, Permanent}, {1406, Permanent}, {3819, Permanent}, {4025, Permanent}, {1048, Permanent},
	} {
		err := fmt.Errorf("flush: %w", &gomysql.MySQLError{Number: c.n, Message: "x"})
		if got := ClassOf(err); got != c.want {
			t.Errorf("error %d: class %d, want %d", c.n, got, c.want)
		}
		if n, ok := MySQLErrorNumber(err); !ok || n != int(c.n) {
			t.Errorf("MySQLErrorNumber = %d, %v", n, ok)
		}
	}
	if got := ClassOf(fmt.Errorf("commit: %w", gomysql.ErrInvalidConn)); got != Connection {
		t.Errorf("ErrInvalidConn: class %d, want Connection", got)
	}
	if _, ok := MySQLErrorNumber(errors.New("1062")); ok {
		t.Error("a plain error has no MySQL number")
	}
}

func TestMySQLClassify(t *testing.T) {
	d := mysql{}
	for _, c := range []struct {
		q    string
		kind sqlparse.Kind
		ok   bool
	}{
		{"UPDATE t SET n = n + ? WHERE id = ?", sqlparse.Update, true},
		{"UPDATE `t` SET `N` = ? WHERE `Id` = ?", sqlparse.Update, true},
		{"UPDATE t SET a = ?, `A` = ? WHERE id = ?", sqlparse.Other, false},
		{"UPDATE T SET n = ? WHERE id = ?", sqlparse.Other, false},
		{"UPDATE `T` SET n = ? WHERE id = ?", sqlparse.Other, false},
		{"UPDATE t SET `né` = ? WHERE id = ?", sqlparse.Other, false},
		{`UPDATE t SET "n" = ? WHERE id = ?`, sqlparse.Update, false},
		{"UPDATE t SET n = $1 WHERE id = $2", sqlparse.Update, false},
		{"INSERT INTO t (id, n) VALUES (?, ?) ON CONFLICT (id) DO NOTHING", sqlparse.Insert, false},
	} {
		st := d.Classify(c.q)
		if st.Kind != c.kind || st.Kind != sqlparse.Other && d.Accepts(st) != c.ok {
			t.Errorf("%s: kind %d accepted %v; want %d, %v (%s)", c.q, st.Kind, d.Accepts(st), c.kind, c.ok, Refusal(d, st))
		}
		if st.Kind == sqlparse.Update && c.ok {
			for _, s := range st.Sets {
				if s.Col.Norm != "n" {
					t.Errorf("%s: SET column %q, want n (folded)", c.q, s.Col.Norm)
				}
			}
		}
	}
	for q, want := range map[string]string{"LOCK TABLES t WRITE": "lock tables", "/* x */ lock table t read": "lock tables",
		"FLUSH TABLES WITH READ LOCK": "lock tables", "-- c\nLOCK TABLES t WRITE": "lock tables", "USE other": "use",
		"SELECT lock FROM tables": "", "UNLOCK TABLES": "", "SELECT use FROM t": ""} {
		st := d.Classify(q)
		if got := slices.Contains(st.Session, want); got != (want != "") || want != "" && d.HarmlessSetting(want) {
			t.Errorf("%q: session %q, want %q (not harmless)", q, st.Session, want)
		}
	}
	if why := WhyNot(d, "UPDATE T SET n = ? WHERE id = ?"); why == "" {
		t.Error("WhyNot gives no reason for an upper-case table name")
	}
	if !d.TxNeedsFlush(driver.TxOptions{}) || d.TxNeedsFlush(driver.TxOptions{Isolation: driver.IsolationLevel(sql.LevelReadCommitted)}) {
		t.Error("a default (REPEATABLE READ) transaction needs a flush; READ COMMITTED does not")
	}
}

// TestMySQLResolve: the resolver of a lost COMMIT asks again while the
// connection that sent it runs (and ends it), says ErrCommitAmbiguous once
// it is gone, and also when the server has restarted.
func TestMySQLResolve(t *testing.T) {
	db := myOpen(t, "resolve", "")
	ctx := context.Background()
	victim := testConn(t, db)
	var id, started string
	if err := victim.QueryRowContext(ctx, mysqlSessionSQL).Scan(&id, &started); err != nil {
		t.Fatal(err)
	}
	c := testConn(t, db)
	resolve := func(id, started string) (committed, known bool, err error) {
		t.Helper()
		return resolveConn(t, c, mysqlResolve(id, started))
	}
	if committed, known, err := resolve(id, started); committed || known || err != nil {
		t.Fatalf("connection still there: %v %v %v, want ask again", committed, known, err)
	}
	// KILL takes effect asynchronously: until the connection is gone the
	// answer is "ask again", as the flusher does (with its backoff).
	for i := 0; ; i++ {
		_, known, err := resolve(id, started)
		if errors.Is(err, ErrCommitAmbiguous) && !known {
			break
		}
		if err != nil || known || i == 100 {
			t.Fatalf("connection killed: known %v err %v after %d tries, want ErrCommitAmbiguous", known, err, i)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := victim.PingContext(ctx); err == nil {
		t.Error("the resolver did not end the connection")
	}
	if _, known, err := resolve(id, "12345"); known || !errors.Is(err, ErrCommitAmbiguous) {
		t.Errorf("restarted server: known %v err %v, want ErrCommitAmbiguous", known, err)
	}
}

// TestMySQLWriter: one flush transaction of an INSERT group and an UPDATE
// group (deltas, assignments, composite key, more rows than a batch) on a
// connection whose affected counts leave out unchanged rows: the rows that
// matched nothing are exactly those reported, the others are written.
func TestMySQLWriter(t *testing.T) {
	db := myOpen(t, "writer", "",
		"CREATE TABLE p (a BIGINT NOT NULL, b VARCHAR(10) COLLATE utf8mb4_nopad_bin NOT NULL, n BIGINT, s VARCHAR(10), PRIMARY KEY (a, b))",
		"INSERT INTO p VALUES (1, 'x', 10, 'old'), (2, 'x', 20, 'old'), (3, 'X', 30, 'old')")
	ins := &Group{Table: myIdent("p"), Op: Insert, Cols: myIdents("a", "b", "n", "s"),
		Rows: [][]any{{int64(4), "x", int64(40), nil}, {int64(5), "x", nil, "new"}}}
	upd := &Group{Table: myIdent("p"), Op: Update, Cols: myIdents("n", "s"), Delta: []bool{true, false},
		KeyCols: myIdents("a", "b"),
		Rows: [][]any{
			{int64(1), "new", int64(1), "x"},  // changes
			{int64(0), "old", int64(2), "x"},  // matches, changes nothing
			{int64(5), "new", int64(3), "x"},  // no such row: (3, 'X') differs in case
			{int64(7), "new", int64(9), "z"},  // no such row
			{int64(-1), "new", int64(4), "x"}, // the row inserted by the same transaction
		}}
	var checkpoint []string
	noMatch, err := flushDBTx(context.Background(), t, db, newMySQLWriter(), 2, func(exec Exec) error {
		checkpoint = append(checkpoint, "ran")
		return exec("INSERT INTO p (a, b, n) VALUES (?, ?, ?)", int64(100), "cp", int64(1))
	}, ins, upd)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(noMatch) != "[[] [2 3]]" || len(checkpoint) != 1 {
		t.Fatalf("noMatch %v (inTx ran %d times), want [[] [2 3]], once", noMatch, len(checkpoint))
	}
	got := queryLines(t, db, "SELECT a, b, COALESCE(n, -99), COALESCE(s, '-') FROM p ORDER BY a, b", func(rows *sql.Rows) (string, error) {
		var a, n int64
		var b, s string
		err := rows.Scan(&a, &b, &n, &s)
		return fmt.Sprintf("%d%s=%d/%s", a, b, n, s), err
	})
	want := "[1x=11/new 2x=20/old 3X=30/old 4x=39/new 5x=-99/new 100cp=1/-]"
	if fmt.Sprint(got) != want {
		t.Fatalf("table %v, want %s", got, want)
	}
}

// TestMySQLWriterValueTypes: a derived table's column takes its type from
// its parameters (go-sql-driver/mysql sends strings as CHAR, whose trailing
// spaces a derived table drops); every value of a batch arrives whole.
func TestMySQLWriterValueTypes(t *testing.T) {
	db := myOpen(t, "wtypes", "parseTime=true",
		"CREATE TABLE v (id BIGINT PRIMARY KEY, s VARCHAR(20), at DATETIME(6), f DOUBLE, d DECIMAL(10,3), b VARBINARY(10), n BIGINT)",
		"INSERT INTO v (id) VALUES (1), (2), (3)")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	upd := &Group{Table: myIdent("v"), Op: Update, Cols: myIdents("s", "at", "f", "d", "b", "n"),
		Delta: make([]bool, 6), KeyCols: myIdents("id"),
		Rows: [][]any{
			{"a", t0, int64(1), "1.5", []byte{1}, nil, int64(1)},
			{"abcdefghij  ", t1, 2.5, "1234.125", []byte{1, 2, 3}, int64(123456789012), int64(2)},
			{nil, nil, nil, nil, nil, int64(-7), int64(3)},
		}}
	c := testConn(t, db) // held until after w.Close, which closes statements prepared on it
	w := newMySQLWriter()
	defer w.Close()
	if _, err := writeConn(context.Background(), t, c, w, 10, nil, upd); err != nil {
		t.Fatal(err)
	}
	got := queryLines(t, db, "SELECT id, COALESCE(s, '-'), at, COALESCE(f, 0), COALESCE(d, 0), COALESCE(HEX(b), ''), COALESCE(n, 0) FROM v ORDER BY id", func(rows *sql.Rows) (string, error) {
		var i, n int64
		var s, d, b string
		var at sql.NullTime
		var f float64
		err := rows.Scan(&i, &s, &at, &f, &d, &b, &n)
		return fmt.Sprintf("%d [%s] %s %g %s %s %d", i, s, at.Time.Format(time.RFC3339Nano), f, d, b, n), err
	})
	want := []string{
		"1 [a] 2026-01-02T03:04:05Z 1 1.500 01 0",
		"2 [abcdefghij  ] 2026-01-02T03:04:05.123456Z 2.5 1234.125 010203 123456789012",
		"3 [-] 0001-01-01T00:00:00Z 0 0.000  -7",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("table:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestMySQLWriterUpsert: an UPSERT group's update part is added to rows
// that exist (a delta, not an assignment), its insert part inserts the
// others in one multi-row INSERT; when that INSERT meets a key inserted
// since the locking read (here: a key twice among the missed rows, as two
// sessions would make it), it is rolled back and the rows are written one at
// a time as INSERT ... ON DUPLICATE KEY UPDATE.
func TestMySQLWriterUpsert(t *testing.T) {
	db := myOpen(t, "wupsert", "",
		"CREATE TABLE c (id BIGINT PRIMARY KEY, n BIGINT NOT NULL, s VARCHAR(10))",
		"INSERT INTO c VALUES (1, 10, 'old'), (2, 20, 'old')")
	group := func(rows ...[]any) *Group {
		// rows: id, n, s (inserted), then n delta, s (update), then id (key)
		return &Group{Table: myIdent("c"), Op: Upsert, Cols: myIdents("id", "n", "s"),
			UpdCols: myIdents("n", "s"), UpdDelta: []bool{true, false}, KeyCols: myIdents("id"), Rows: rows}
	}
	write := func(g *Group) {
		t.Helper()
		if _, err := flushDB(t, db, newMySQLWriter(), 2, g); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		t.Helper()
		return strings.Join(queryLines(t, db, "SELECT id, n, COALESCE(s, '-') FROM c ORDER BY id", func(rows *sql.Rows) (string, error) {
			var k, n int64
			var s string
			err := rows.Scan(&k, &n, &s)
			return fmt.Sprintf("%d=%d/%s", k, n, s), err
		}), " ")
	}
	write(group(
		[]any{int64(1), int64(5), "a", int64(5), "a", int64(1)},     // exists: +5
		[]any{int64(3), int64(7), "b", int64(7), "b", int64(3)},     // missing: inserted
		[]any{int64(2), int64(0), "c", int64(0), "c", int64(2)},     // exists, + 0
		[]any{int64(4), int64(9), nil, int64(100), nil, int64(4)},   // missing: the insert part
		[]any{int64(5), int64(1), "e", int64(1), "e", int64(5)},     // missing
		[]any{int64(6), int64(2), "f", int64(3), "g", int64(6)},     // missing
		[]any{int64(7), int64(1), "h", int64(1), "h", int64(7)},     // missing
		[]any{int64(2), int64(0), "i", int64(1), "i", int64(2)},     // exists
		[]any{int64(8), int64(-1), "j", int64(-1), "j", int64(8)},   // missing
		[]any{int64(9), int64(-1), "k", int64(-1), "k", int64(9)},   // missing
		[]any{int64(10), int64(-1), "l", int64(-1), "l", int64(10)}, // missing
	))
	if got, want := read(), "1=15/a 2=21/i 3=7/b 4=9/- 5=1/e 6=2/f 7=1/h 8=-1/j 9=-1/k 10=-1/l"; got != want {
		t.Fatalf("after the upserts:\n got %s\nwant %s", got, want)
	}
	// Key 11 twice among the missing rows: the multi-row INSERT fails with
	// a duplicate key; one at a time, the second updates the first.
	write(group(
		[]any{int64(11), int64(1), "x", int64(1), "x", int64(11)},
		[]any{int64(11), int64(5), "y", int64(50), "y", int64(11)},
		[]any{int64(1), int64(0), "z", int64(2), "z", int64(1)},
	))
	if got, want := read(), "1=17/z 2=21/i 3=7/b 4=9/- 5=1/e 6=2/f 7=1/h 8=-1/j 9=-1/k 10=-1/l 11=51/y"; got != want {
		t.Fatalf("after the fallback:\n got %s\nwant %s", got, want)
	}
	// A chunk of new keys makes the next one try the INSERT first; it
	// meets key 1, which exists: rolled back, that chunk is written as
	// the others are (key 1 updated, 22 inserted), and so is the next.
	write(group(
		[]any{int64(20), int64(1), "n", int64(1), "n", int64(20)},
		[]any{int64(21), int64(1), "n", int64(1), "n", int64(21)},
		[]any{int64(1), int64(1000), "w", int64(3), "w", int64(1)},
		[]any{int64(22), int64(1), "n", int64(1), "n", int64(22)},
		[]any{int64(2), int64(1000), "v", int64(4), "v", int64(2)},
	))
	if got, want := read(), "1=20/w 2=25/v 3=7/b 4=9/- 5=1/e 6=2/f 7=1/h 8=-1/j 9=-1/k 10=-1/l 11=51/y 20=1/n 21=1/n 22=1/n"; got != want {
		t.Fatalf("after the INSERT first:\n got %s\nwant %s", got, want)
	}
}

// TestMySQLFoundRows: clientFoundRows is read from go-sql-driver/mysql's
// connector, whether made from a DSN or a Config; any other connector is
// not known.
func TestMySQLFoundRows(t *testing.T) {
	for dsn, want := range map[string]bool{"u@tcp(h:3306)/d": false, "u@tcp(h:3306)/d?clientFoundRows=true": true} {
		c, err := (gomysql.MySQLDriver{}).OpenConnector(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if found, known := MySQLFoundRows(c); !known || found != want {
			t.Errorf("%s: found rows %v (known %v), want %v", dsn, found, known, want)
		}
	}
	cfg := gomysql.NewConfig()
	cfg.ClientFoundRows = true
	c, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if found, known := MySQLFoundRows(c); !known || !found {
		t.Errorf("NewConnector: found rows %v (known %v), want true", found, known)
	}
	if _, known := MySQLFoundRows(nil); known {
		t.Error("a nil connector is known")
	}
	if _, known := MySQLFoundRows(struct{ driver.Connector }{c}); known {
		t.Error("a wrapped connector is known")
	}
}

// TestMySQLWriterSavepointRun: an UPDATE group's chunks share one
// savepoint while each UPDATE affects every row it carries. A chunk that
// falls short undoes the run since the savepoint with it; the run is
// written again, each row once, the short chunk after a SELECT ... FOR
// UPDATE, and the next chunk sets a new savepoint. A chunk that affects
// nothing needs no undo. Upsert groups take the same path for the rows
// whose keys exist.
func TestMySQLWriterSavepointRun(t *testing.T) {
	db := myOpen(t, "wsavept", "clientFoundRows=true",
		"CREATE TABLE u (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)",
		"INSERT INTO u VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0)")
	ctx := context.Background()
	c := testConn(t, db)
	status := func(name string) int64 {
		t.Helper()
		return mySessionStatus(t, c, name)
	}
	write := func(g *Group) [][]int {
		t.Helper()
		noMatch, err := writeConn(ctx, t, c, newMySQLWriter(), 2, nil, g)
		if err != nil {
			t.Fatal(err)
		}
		return noMatch
	}
	read := func() string {
		t.Helper()
		return strings.Join(queryLines(t, db, "SELECT id, n FROM u ORDER BY id", func(rows *sql.Rows) (string, error) {
			var k, n int64
			err := rows.Scan(&k, &n)
			return fmt.Sprintf("%d=%d", k, n), err
		}), " ")
	}
	sp0, rb0 := status("Com_savepoint"), status("Com_rollback_to_savepoint")
	// rows: delta, then key; batch 2
	noMatch := write(&Group{Table: myIdent("u"), Op: Update, Cols: myIdents("n"), Delta: []bool{true},
		KeyCols: myIdents("id"),
		Rows: [][]any{
			{int64(1), int64(1)}, {int64(2), int64(2)}, // the run: savepoint 1
			{int64(3), int64(3)}, {int64(4), int64(4)},
			{int64(5), int64(5)}, {int64(99), int64(99)}, // short: the run is undone and written again
			{int64(6), int64(6)}, {int64(7), int64(7)}, // savepoint 2
			{int64(97), int64(97)}, {int64(98), int64(98)}, // affects nothing: no undo
			{int64(8), int64(8)}, {int64(9), int64(9)}, // savepoint 3
		}})
	if fmt.Sprint(noMatch) != "[[5 8 9]]" {
		t.Errorf("noMatch %v, want [[5 8 9]]", noMatch)
	}
	if got, want := read(), "1=1 2=2 3=3 4=4 5=5 6=6 7=7 8=8 9=9"; got != want {
		t.Fatalf("after the UPDATE group:\n got %s\nwant %s", got, want)
	}
	if sp, rb := status("Com_savepoint")-sp0, status("Com_rollback_to_savepoint")-rb0; sp != 3 || rb != 1 {
		t.Errorf("%d savepoints, %d rollbacks to one; want 3 and 1", sp, rb)
	}
	// An upsert group: keys 1..4 exist, 50 does not. rows: id, n
	// (inserted), n delta (update), id (key).
	sp0, rb0 = status("Com_savepoint"), status("Com_rollback_to_savepoint")
	write(&Group{Table: myIdent("u"), Op: Upsert, Cols: myIdents("id", "n"),
		UpdCols: myIdents("n"), UpdDelta: []bool{true}, KeyCols: myIdents("id"),
		Rows: [][]any{
			{int64(1), int64(7), int64(10), int64(1)}, {int64(2), int64(7), int64(10), int64(2)},
			{int64(3), int64(7), int64(10), int64(3)}, {int64(50), int64(7), int64(10), int64(50)}, // short: 50 inserted
			{int64(4), int64(7), int64(10), int64(4)},
		}})
	if got, want := read(), "1=11 2=12 3=13 4=14 5=5 6=6 7=7 8=8 9=9 50=7"; got != want {
		t.Fatalf("after the upsert group:\n got %s\nwant %s", got, want)
	}
	if sp, rb := status("Com_savepoint")-sp0, status("Com_rollback_to_savepoint")-rb0; sp != 2 || rb != 1 {
		t.Errorf("upserts: %d savepoints, %d rollbacks to one; want 2 and 1", sp, rb)
	}
}

// TestMySQLWriterUpsertInsertFirst: a writer remembers, per table, that
// the last upsert chunk found its keys missing, and the next group's first
// chunk tries the INSERT alone (no UPDATE, no SELECT ... FOR UPDATE). When
// its keys exist after all, the INSERT meets a duplicate key and the chunk
// is written the other way, and the writer forgets.
func TestMySQLWriterUpsertInsertFirst(t *testing.T) {
	db := myOpen(t, "winsfirst", "clientFoundRows=true",
		"CREATE TABLE u (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
	ctx := context.Background()
	c := testConn(t, db)
	w := newMySQLWriter()
	defer w.Close()
	// upserts of keys: rows id, n (inserted), n delta (update), id (key).
	upserts := func(keys ...int64) *Group {
		g := &Group{Table: myIdent("u"), Op: Upsert, Cols: myIdents("id", "n"),
			UpdCols: myIdents("n"), UpdDelta: []bool{true}, KeyCols: myIdents("id")}
		for _, k := range keys {
			g.Rows = append(g.Rows, []any{k, int64(1), int64(10), k})
		}
		return g
	}
	// write runs one group, batch 2, and returns how many SELECTs, UPDATEs
	// (the batched UPDATE is a join: Com_update_multi) and INSERTs the
	// session ran for it.
	write := func(g *Group) [3]int64 {
		t.Helper()
		count := func() [3]int64 {
			return [3]int64{mySessionStatus(t, c, "Com_select"),
				mySessionStatus(t, c, "Com_update") + mySessionStatus(t, c, "Com_update_multi"),
				mySessionStatus(t, c, "Com_insert")}
		}
		before := count()
		if _, err := writeConn(ctx, t, c, w, 2, nil, g); err != nil {
			t.Fatal(err)
		}
		after := count()
		return [3]int64{after[0] - before[0], after[1] - before[1], after[2] - before[2]}
	}
	write(upserts(1, 2, 3, 4)) // the first group learns that keys are missing
	if d := write(upserts(5, 6, 7, 8)); d != [3]int64{0, 0, 2} {
		t.Errorf("new keys after new keys: SELECTs, UPDATEs, INSERTs %v; want [0 0 2], an INSERT a chunk", d)
	}
	if d := write(upserts(1, 2)); d[2] != 1 || d[1] != 1 {
		t.Errorf("existing keys after new keys: SELECTs, UPDATEs, INSERTs %v; want the INSERT tried, then the UPDATE", d)
	}
	if d := write(upserts(3, 4)); d[2] != 0 {
		t.Errorf("existing keys after existing keys: SELECTs, UPDATEs, INSERTs %v; want no INSERT", d)
	}
	got := strings.Join(queryLines(t, db, "SELECT id, n FROM u ORDER BY id", func(rows *sql.Rows) (string, error) {
		var k, n int64
		err := rows.Scan(&k, &n)
		return fmt.Sprintf("%d=%d", k, n), err
	}), " ")
	if want := "1=11 2=11 3=11 4=11 5=1 6=1 7=1 8=1"; got != want {
		t.Fatalf("rows:\n got %s\nwant %s", got, want)
	}
}

// TestMySQLWriterSession: a writer reads its connection's session (the id
// and the server's start, which resolve a COMMIT whose answer is lost) in
// the connection's first transaction only, and it is that connection's.
func TestMySQLWriterSession(t *testing.T) {
	db := myOpen(t, "wsession", "")
	ctx := context.Background()
	c := testConn(t, db)
	var connID string
	if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&connID); err != nil {
		t.Fatal(err)
	}
	w := newMySQLWriter()
	defer w.Close()
	var counts []int64
	for range 3 {
		before := mySessionStatus(t, c, "Com_select")
		if _, err := writeConn(ctx, t, c, w, 1, nil); err != nil {
			t.Fatal(err)
		}
		counts = append(counts, mySessionStatus(t, c, "Com_select")-before)
	}
	if fmt.Sprint(counts) != "[1 0 0]" {
		t.Errorf("SELECTs per transaction %v, want [1 0 0]", counts)
	}
	if w.connID != connID || w.serverStart == "" {
		t.Errorf("session %q started %q, want the connection's id %s", w.connID, w.serverStart, connID)
	}
}

// TestMySQLValuesRows: the UPDATE's rows are a table value constructor on
// MariaDB from 10.3.3 only; the statement carries the same placeholders
// either way.
func TestMySQLValuesRows(t *testing.T) {
	for version, want := range map[string]bool{
		"10.11.6-MariaDB-0+deb12u1": true, "10.3.3-MariaDB": true, "10.3.2-MariaDB": false,
		"10.2.44-MariaDB-log": false, "11.4.2-MariaDB": true, "8.0.36": false, "5.7.44-log": false, "MariaDB": false,
	} {
		if got := mysqlValuesRows(version); got != want {
			t.Errorf("%q: %v, want %v", version, got, want)
		}
	}
	g := &Group{Table: myIdent("c"), Op: Update, Cols: myIdents("n"), Delta: []bool{true}, KeyCols: myIdents("id")}
	rows := [][]any{{int64(1), int64(10)}, {nil, int64(20)}, {2.5, int64(30)}}
	union, uargs := mysqlUpdateSQL(g, "c", rows, []string{""}, false)
	values, vargs := mysqlUpdateSQL(g, "c", rows, []string{""}, true)
	const wantUnion = "UPDATE c AS wb_t JOIN (SELECT ? AS k0, CAST(? AS DOUBLE) AS c0 UNION ALL SELECT ?, CAST(? AS DOUBLE) UNION ALL SELECT ?, CAST(? AS DOUBLE)) AS wb_v ON wb_t.id = wb_v.k0 SET wb_t.n = wb_t.n + wb_v.c0"
	const wantValues = "UPDATE c AS wb_t JOIN (SELECT ? AS k0, CAST(? AS DOUBLE) AS c0 UNION ALL VALUES (?, CAST(? AS DOUBLE)), (?, CAST(? AS DOUBLE))) AS wb_v ON wb_t.id = wb_v.k0 SET wb_t.n = wb_t.n + wb_v.c0"
	if union != wantUnion || values != wantValues {
		t.Errorf("statements:\n%s\n%s\nwant\n%s\n%s", union, values, wantUnion, wantValues)
	}
	if fmt.Sprint(uargs) != fmt.Sprint(vargs) || fmt.Sprint(vargs) != "[10 1 20 <nil> 30 2.5]" {
		t.Errorf("arguments %v and %v, want [10 1 20 <nil> 30 2.5] both", uargs, vargs)
	}
	// A column the first row does not type whole is written as SELECTs:
	// text (cut to the first row's length), a NULL first, a bool.
	for _, rows := range [][][]any{
		{{int64(1), "a"}, {int64(2), "abc"}},
		{{nil, int64(1)}, {int64(5), int64(2)}},
		{{true, int64(1)}, {int64(500), int64(2)}},
		{{int64(1), int64(1)}, {true, int64(2)}},
	} {
		if q, _ := mysqlUpdateSQL(g, "c", rows, []string{""}, true); strings.Contains(q, "VALUES") {
			t.Errorf("rows %v: %s", rows, q)
		}
	}
}

// TestMySQLWriterValuesRows: on MariaDB an UPDATE of integer and DOUBLE
// columns carries its rows as a table value constructor; every value
// lands whole, a NULL after the first row and the ends of BIGINT too.
func TestMySQLWriterValuesRows(t *testing.T) {
	db := myOpen(t, "wvalues", "",
		"CREATE TABLE w (id BIGINT PRIMARY KEY, a BIGINT, f DOUBLE)",
		"INSERT INTO w VALUES (1, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0)")
	g := &Group{Table: myIdent("w"), Op: Update, Cols: myIdents("a", "f"), Delta: []bool{false, false},
		KeyCols: myIdents("id"),
		Rows: [][]any{
			{int64(5), 1.5, int64(1)},
			{nil, nil, int64(2)},
			{int64(math.MinInt64), 2.5e300, int64(3)},
			{int64(math.MaxInt64), int64(7), int64(4)},
		}}
	if q, _ := mysqlUpdateSQL(g, "w", g.Rows, []string{""}, true); !strings.Contains(q, "VALUES") {
		t.Fatalf("not written as VALUES: %s", q)
	}
	c := testConn(t, db) // held until after w.Close, which closes statements prepared on it
	w := newMySQLWriter()
	defer w.Close()
	if _, err := writeConn(context.Background(), t, c, w, 10, nil, g); err != nil {
		t.Fatal(err)
	}
	var version string
	if err := db.QueryRow("SELECT VERSION()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if w.values != mysqlValuesRows(version) {
		t.Errorf("server %s: values %v", version, w.values)
	}
	got := queryLines(t, db, "SELECT id, COALESCE(a, -1), COALESCE(f, -1) FROM w ORDER BY id", func(rows *sql.Rows) (string, error) {
		var k, a int64
		var f float64
		err := rows.Scan(&k, &a, &f)
		return fmt.Sprintf("%d=%d/%g", k, a, f), err
	})
	if want := "1=5/1.5 2=-1/-1 3=-9223372036854775808/2.5e+300 4=9223372036854775807/7"; strings.Join(got, " ") != want {
		t.Fatalf("table %s, want %s", strings.Join(got, " "), want)
	}
}
