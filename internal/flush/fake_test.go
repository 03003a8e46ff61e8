package flush

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/writeback-go/writeback/internal/dialect"
)

// fakeDB is a scripted database behind a driver.Connector: it records the
// statements of committed transactions and fails the ones its script says.
type fakeDB struct {
	mu         sync.Mutex
	connectErr error
	conns      []*fakeConn
	committed  []execRec
	// execErr, when not nil, is asked before each statement runs.
	execErr func(query string, args []driver.Value) error
	// affected, when not nil, is the statement's RowsAffected (1 otherwise).
	affected func(query string, args []driver.Value) int64
}

type execRec struct {
	query string
	args  []driver.Value
}

func (db *fakeDB) connector() driver.Connector { return fakeConnector{db} }

func (db *fakeDB) connects() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.conns)
}

func (db *fakeDB) conn(i int) *fakeConn {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.conns[i]
}

func (db *fakeDB) commits() []execRec {
	db.mu.Lock()
	defer db.mu.Unlock()
	return append([]execRec(nil), db.committed...)
}

func (db *fakeDB) script(execErr func(string, []driver.Value) error, affected func(string, []driver.Value) int64) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.execErr, db.affected = execErr, affected
}

type fakeConnector struct{ db *fakeDB }

func (c fakeConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.db.mu.Lock()
	defer c.db.mu.Unlock()
	if c.db.connectErr != nil {
		return nil, c.db.connectErr
	}
	fc := &fakeConn{db: c.db}
	c.db.conns = append(c.db.conns, fc)
	return fc, nil
}

func (c fakeConnector) Driver() driver.Driver { return fakeDriver{} }

type fakeDriver struct{}

func (fakeDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("fake: use the connector")
}

type fakeConn struct {
	db     *fakeDB
	closed atomic.Bool
	tx     []execRec // statements of the open transaction
}

func (c *fakeConn) Prepare(query string) (driver.Stmt, error) {
	if c.closed.Load() {
		return nil, driver.ErrBadConn
	}
	return &fakeStmt{c: c, query: query}, nil
}

func (c *fakeConn) Close() error { c.closed.Store(true); return nil }

func (c *fakeConn) Begin() (driver.Tx, error) {
	if c.closed.Load() {
		return nil, driver.ErrBadConn
	}
	c.tx = nil
	return fakeTx{c}, nil
}

type fakeTx struct{ c *fakeConn }

func (tx fakeTx) Commit() error {
	tx.c.db.mu.Lock()
	defer tx.c.db.mu.Unlock()
	tx.c.db.committed = append(tx.c.db.committed, tx.c.tx...)
	tx.c.tx = nil
	return nil
}

func (tx fakeTx) Rollback() error { tx.c.tx = nil; return nil }

type fakeStmt struct {
	c     *fakeConn
	query string
}

func (s *fakeStmt) Close() error  { return nil }
func (s *fakeStmt) NumInput() int { return -1 }

func (s *fakeStmt) Exec(args []driver.Value) (driver.Result, error) {
	db := s.c.db
	db.mu.Lock()
	execErr, affected := db.execErr, db.affected
	db.mu.Unlock()
	if execErr != nil {
		if err := execErr(s.query, args); err != nil {
			return nil, err
		}
	}
	n := int64(1)
	if affected != nil {
		n = affected(s.query, args)
	}
	s.c.tx = append(s.c.tx, execRec{s.query, append([]driver.Value(nil), args...)})
	return driver.RowsAffected(n), nil
}

func (s *fakeStmt) Query([]driver.Value) (driver.Rows, error) {
	return nil, errors.New("fake: no queries")
}

func genericDialect(t *testing.T) dialect.Dialect {
	t.Helper()
	d, err := dialect.ByName("generic")
	if err != nil {
		t.Fatal(err)
	}
	return d
}
