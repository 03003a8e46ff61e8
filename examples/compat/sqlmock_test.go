package compat

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"

	"github.com/writeback-go/writeback"
)

// A unit test of application code that runs through writeback over
// go-sqlmock. The application's statement is what the test expects; the
// helpers below write the expectations for what writeback sends around it:
// the probe that makes RowsAffected exact, and the flush.

// expectExists expects writeback's probe of one key not yet known to
// exist, and answers that the row exists (or not).
func expectExists(mock sqlmock.Sqlmock, table, keyCol string, key driver.Value, exists bool) {
	rows := sqlmock.NewRows([]string{"1"})
	if exists {
		rows.AddRow(1)
	}
	mock.ExpectQuery(fmt.Sprintf("SELECT 1 FROM %s WHERE (%s = ?) LIMIT 1", table, keyCol)).WithArgs(key).WillReturnRows(rows)
}

// expectFlush expects one flush of rows written with the application's
// statement: a transaction, the statement prepared once, one execution per
// coalesced row (its arguments as the statement takes them), the commit.
func expectFlush(mock sqlmock.Sqlmock, query string, rows ...[]driver.Value) {
	mock.ExpectBegin()
	prep := mock.ExpectPrepare(query)
	for _, args := range rows {
		prep.ExpectExec().WithArgs(args...).WillReturnResult(sqlmock.NewResult(0, 1))
	}
	mock.ExpectCommit()
}

// countView is the application code under test.
func countView(ctx context.Context, db *sql.DB, page int64) error {
	res, err := db.ExecContext(ctx, "UPDATE counters SET views = views + ? WHERE id = ?", 1, page)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("page %d: no such page", page)
	}
	return nil
}

// mockSeq numbers the sqlmock DSNs: sqlmock keeps a DSN registered for the
// life of the process, so a test run again (-count) needs a new one.
var mockSeq atomic.Int64

func TestSqlmockThroughWriteback(t *testing.T) {
	dsn := fmt.Sprintf("compat_sqlmock_%d", mockSeq.Add(1))
	_, mock, err := sqlmock.NewWithDSN(dsn, sqlmock.QueryMatcherOption(sqlmock.QueryMatcherEqual))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("writeback", "driver=sqlmock rules="+rulesFile(t, counterRules)+" dsn="+dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // sqlmock has one connection
	ctx := context.Background()

	expectExists(mock, "counters", "id", int64(7), true)
	for i := 0; i < 3; i++ {
		if err := countView(ctx, db, 7); err != nil {
			t.Fatal(err)
		}
	}
	// The missing page: the probe finds no row, so the UPDATE matches
	// nothing, as directly.
	expectExists(mock, "counters", "id", int64(8), false)
	if err := countView(ctx, db, 8); err == nil {
		t.Fatal("a missing page must be reported")
	}
	// The three views of page 7 are one row write.
	expectFlush(mock, "UPDATE counters SET views = views + ? WHERE id = ?", []driver.Value{int64(3), int64(7)})
	if err := writeback.Flush(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
}
