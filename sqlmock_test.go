package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
)

var mockSeq atomic.Int64

// openMock opens a writeback *sql.DB over a go-sqlmock connection that
// matches SQL exactly, so every statement the driver sends is pinned; any
// statement not expected fails.
func openMock(t *testing.T, rules string, opts ...Option) (*sql.DB, sqlmock.Sqlmock, *Connector) {
	t.Helper()
	dsn := fmt.Sprintf("wbmock%d", mockSeq.Add(1))
	_, mock, err := sqlmock.NewWithDSN(dsn, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	base, err := baseConnector("sqlmock", dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(base, mustRules(t, rules), opts...)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1) // sqlmock hands the same connection to every Open
	return db, mock, c
}

const counterRules = `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 1h
  orders:
    mode: through
`

func TestBufferedWriteDoesNotReachBaseBeforeDue(t *testing.T) {
	db, mock, _ := openMock(t, counterRules)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		res, err := db.ExecContext(ctx, "UPDATE counters SET views = views + ? WHERE id = ?", 1, 7)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			t.Fatalf("RowsAffected = %d, %v; want 1, nil", n, err)
		}
		if _, err := res.LastInsertId(); !errors.Is(err, ErrBuffered) {
			t.Fatalf("LastInsertId error = %v; want ErrBuffered", err)
		}
	}
	// Nothing was expected: had any statement reached sqlmock, this fails.
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
	st, _ := StatsOf(db)
	if st.Dirty != 1 || st.Buffered != 3 || st.Coalesced != 2 || st.Flushes != 0 {
		t.Fatalf("stats = %+v; want 1 dirty row from 3 writes, no flush", st)
	}

	// Flush: one transaction, one prepared statement, the three deltas summed.
	mock.ExpectBegin()
	prep := mock.ExpectPrepare("UPDATE counters SET views = views + ? WHERE id = ?")
	prep.ExpectExec().WithArgs(int64(3), int64(7)).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	if err := Flush(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
	st, _ = StatsOf(db)
	if st.Dirty != 0 || st.Flushes != 1 || st.FlushedRows != 1 {
		t.Fatalf("stats after flush = %+v", st)
	}
	mock.ExpectClose() // sqlmock checks Close when its last open connection closes
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGenericDialectPinsSQL(t *testing.T) {
	db, mock, _ := openMock(t, `
tables:
  page_views:
    mode: back
    key: [site, page_id]
    max_loss: 1h
`)
	ctx := context.Background()
	mustExec(t, db, `UPDATE page_views SET views = views + $1, title = $2 WHERE site = $3 AND page_id = $4`, 2, "home", "a", 1)
	mustExec(t, db, `UPDATE page_views SET views = views - $1 WHERE page_id = $2 AND site = $3`, 1, 1, "a")
	mustExec(t, db, `INSERT INTO page_views (site, page_id, views) VALUES ($1, $2, 10), ($3, $4, 20)`, "b", 1, "b", 2)
	mustExec(t, db, `UPDATE page_views SET views = views + $1 WHERE site = $2 AND page_id = $3`, 5, "b", 2) // amends the pending INSERT

	mock.ExpectBegin()
	up := mock.ExpectPrepare(`UPDATE page_views SET title = $1, views = views + $2 WHERE site = $3 AND page_id = $4`)
	up.ExpectExec().WithArgs("home", int64(1), "a", int64(1)).WillReturnResult(sqlmock.NewResult(0, 1))
	ins := mock.ExpectPrepare(`INSERT INTO page_views (page_id, site, views) VALUES ($1, $2, $3)`)
	ins.ExpectExec().WithArgs(int64(1), "b", int64(10)).WillReturnResult(sqlmock.NewResult(0, 1))
	ins.ExpectExec().WithArgs(int64(2), "b", int64(25)).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	if err := Flush(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func TestBarrierFlushesBeforeRead(t *testing.T) {
	db, mock, _ := openMock(t, counterRules)
	mustExec(t, db, "UPDATE counters SET views = ? WHERE id = ?", 42, 1)
	mock.ExpectBegin()
	mock.ExpectPrepare("UPDATE counters SET views = ? WHERE id = ?").
		ExpectExec().WithArgs(int64(42), int64(1)).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	mock.ExpectQuery("SELECT views FROM counters WHERE id = ?").WithArgs(int64(1)).
		WillReturnRows(sqlmock.NewRows([]string{"views"}).AddRow(42))
	var v int
	if err := db.QueryRow("SELECT views FROM counters WHERE id = ?", 1).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
	// A statement on a write-through table needs no barrier and passes straight on.
	mock.ExpectExec("INSERT INTO orders (id) VALUES (?)").WithArgs(int64(9)).WillReturnResult(sqlmock.NewResult(9, 1))
	res := mustExec(t, db, "INSERT INTO orders (id) VALUES (?)", 9)
	if id, err := res.LastInsertId(); err != nil || id != 9 {
		t.Fatalf("write-through LastInsertId = %d, %v", id, err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func TestUpdateMatchingNoRowIsReported(t *testing.T) {
	var mu sync.Mutex
	var dead []DeadLetter
	db, mock, _ := openMock(t, counterRules, WithOnDeadLetter(func(d DeadLetter) {
		mu.Lock()
		dead = append(dead, d)
		mu.Unlock()
	}))
	mustExec(t, db, "UPDATE counters SET views = views + ? WHERE id = ?", 1, 404)
	mock.ExpectBegin()
	mock.ExpectPrepare("UPDATE counters SET views = views + ? WHERE id = ?").
		ExpectExec().WithArgs(int64(1), int64(404)).WillReturnResult(sqlmock.NewResult(0, 0))
	mock.ExpectCommit()
	if err := Flush(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	st, _ := StatsOf(db)
	mu.Lock()
	defer mu.Unlock()
	if st.NoMatch != 1 || len(dead) != 1 || !dead[0].NoMatch || dead[0].Key[0] != int64(404) {
		t.Fatalf("NoMatch = %d, dead letters = %+v; want the key 404 reported", st.NoMatch, dead)
	}
	db.Close()
}

func TestPermanentErrorIsolatesBadRow(t *testing.T) {
	var mu sync.Mutex
	var dead []DeadLetter
	db, mock, _ := openMock(t, counterRules, WithOnDeadLetter(func(d DeadLetter) {
		mu.Lock()
		dead = append(dead, d)
		mu.Unlock()
	}))
	for id := 1; id <= 2; id++ {
		mustExec(t, db, "UPDATE counters SET views = ? WHERE id = ?", id*10, id)
	}
	const q = "UPDATE counters SET views = ? WHERE id = ?"
	bad := errors.New("check constraint violated")
	// Rows are flushed in key order.
	good, poison := int64(1), int64(2)
	first, second := good, poison
	exec := func(p *sqlmock.ExpectedPrepare, id int64) {
		e := p.ExpectExec().WithArgs(id*10, id)
		if id == poison {
			e.WillReturnError(bad)
		} else {
			e.WillReturnResult(sqlmock.NewResult(0, 1))
		}
	}
	// First the whole batch, which fails on the poison row; then each half alone.
	mock.ExpectBegin()
	p := mock.ExpectPrepare(q)
	exec(p, first)
	if first != poison {
		exec(p, second)
	}
	mock.ExpectRollback()
	for _, id := range []int64{first, second} {
		mock.ExpectBegin()
		exec(mock.ExpectPrepare(q), id)
		if id == poison {
			mock.ExpectRollback()
		} else {
			mock.ExpectCommit()
		}
	}
	if err := Flush(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
	st, _ := StatsOf(db)
	mu.Lock()
	defer mu.Unlock()
	if st.DeadLetters != 1 || st.FlushedRows != 1 || len(dead) != 1 || dead[0].Key[0] != poison || !errors.Is(dead[0].Err, bad) {
		t.Fatalf("stats %+v dead %+v; want row 2 dead-lettered with its error, row 1 flushed", st, dead)
	}
	db.Close()
}

func TestTransactionIsNeverBuffered(t *testing.T) {
	db, mock, _ := openMock(t, counterRules)
	mock.ExpectBegin()
	mock.ExpectExec("UPDATE counters SET views = views + ? WHERE id = ?").WithArgs(int64(1), int64(1)).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectRollback()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE counters SET views = views + ? WHERE id = ?", 1, 1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
	st, _ := StatsOf(db)
	if st.Buffered != 0 {
		t.Fatalf("a write inside a transaction was buffered: %+v", st)
	}
	db.Close()
}

func TestCloseFlushes(t *testing.T) {
	db, mock, _ := openMock(t, counterRules)
	mustExec(t, db, "INSERT INTO counters (id, views) VALUES (?, ?)", 5, 1)
	// db.Close closes the pool's connection first, then the connector,
	// whose flusher opens its own connection, flushes and closes it.
	mock.ExpectClose()
	mock.ExpectBegin()
	mock.ExpectPrepare("INSERT INTO counters (id, views) VALUES (?, ?)").
		ExpectExec().WithArgs(int64(5), int64(1)).WillReturnResult(sqlmock.NewResult(5, 1))
	mock.ExpectCommit()
	mock.ExpectClose()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) sql.Result {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}

var _ driver.Connector = dsnConnector{}
