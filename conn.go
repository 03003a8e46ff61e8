package writeback

import (
	"context"
	"database/sql/driver"
	"errors"
	"slices"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/flush"
)

// conn wraps one base driver connection. It implements every optional
// interface database/sql looks for, forwarding to the base where the base has
// it and falling back the way database/sql itself would where it has not.
// database/sql never uses a driver.Conn from two goroutines at once, so inTx
// needs no lock.
//
// base is nil while the connection is detached: the database could not be
// reached when database/sql asked for a connection, or the base connection
// died. A detached connection still acknowledges write-back writes from
// memory (the point of the buffer during an outage); anything that needs the
// database connects on demand, with the caller's context.
type conn struct {
	base driver.Conn
	cn   *Connector
	inTx bool // an explicit transaction is open: nothing is buffered, everything is ordered
	// txSnapshot: the open transaction keeps one snapshot from its first
	// statement on (SQLite; isolation above read committed), and txBegun:
	// that statement has run. Nothing committed after it can be visible to
	// the transaction, so later statements need no barrier — and must not
	// wait for one: a flush blocked by the transaction's own locks would
	// wait for the transaction, which waits for the flush.
	txSnapshot, txBegun bool
	// tx is what the open transaction holds locked (txlocks.go); nil
	// until it writes a back table.
	tx *txWrites
	// session is set once the application changed a session setting that
	// can change what a write means (a time zone, a search path): the
	// flush connection does not share it, so this connection's writes go
	// to the database from then on.
	session bool
	// lazy is the open transaction while it is not yet opened on the
	// database (txlazy.go); inTx is false meanwhile.
	lazy *lazyTx
	// resetDue: database/sql asked for a session reset (ResetSession) that
	// the base connection has not had yet. It gets it right before it is
	// next used (resetBase): a buffered write never uses it, and the base's
	// reset (pgx: a clock read, a ping after a second idle, the
	// application's reset hook) was about a twentieth of a buffered Exec.
	resetDue bool
	// recent is the connection's last few classifications (recentStmts).
	recent recentStmts
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

func newConn(base driver.Conn, cn *Connector) *conn {
	return &conn{base: base, cn: cn}
}

// attach returns the base connection, connecting a detached one first.
func (c *conn) attach(ctx context.Context) (driver.Conn, error) {
	c.resetBase(ctx)
	if c.base != nil {
		return c.base, nil
	}
	base, err := c.cn.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	c.base = base
	return base, nil
}

// detach drops a dead base connection, keeping the writeback connection.
func (c *conn) detach() {
	c.endTx() // a dead connection's transaction is over
	if c.base != nil {
		_ = c.base.Close()
		c.base = nil
	}
}

// Unwrap returns the base driver's connection, for code that needs its native
// API (pgx users: stdlib.Conn's Conn()). Statements sent on it bypass the
// buffer's ordering: call Flush first when they touch back tables.
func (c *conn) Unwrap() driver.Conn {
	if c.lazy != nil {
		// The caller may run statements of the open transaction on the base
		// connection (a COPY in it): the transaction must be open there.
		if err := c.materialize(context.Background()); err != nil {
			return nil
		}
	}
	base, _ := c.attach(context.Background())
	return base
}

// BaseConn returns the base driver connection behind a writeback connection,
// as handed to the function given to sql.Conn.Raw. ok is false when
// driverConn is not a writeback connection, or is detached (conn) and the
// database cannot be reached.
func BaseConn(driverConn any) (base driver.Conn, ok bool) {
	c, ok := driverConn.(*conn)
	if !ok {
		return nil, false
	}
	base = c.Unwrap()
	return base, base != nil
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	base, err := c.attach(ctx)
	if err != nil {
		return nil, err
	}
	st, err := drivercall.Prepare(ctx, base, query)
	if err != nil {
		return nil, err
	}
	return &stmt{base: st, conn: c, query: query, info: c.info(query)}, nil
}

func (c *conn) Close() error {
	c.lazy = nil
	c.endTx()
	if c.base == nil {
		return nil
	}
	return c.base.Close()
}

// Begin is the legacy form of BeginTx.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx opens a transaction on the base. Statements inside it are never
// buffered and wait for the back tables they name. Where the transaction's
// snapshot may be taken before such a wait (SQLite, or an isolation level
// above read committed), every back table is flushed first instead.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.lazyTxOK(opts) {
		c.lazy = &lazyTx{c: c, opts: opts}
		return c.lazy, nil
	}
	tx, err := c.beginReal(ctx, opts)
	if err != nil {
		return nil, err // not a nil *wrappedTx in a non-nil interface
	}
	return tx, nil
}

// beginReal opens a transaction on the base connection.
func (c *conn) beginReal(ctx context.Context, opts driver.TxOptions) (*wrappedTx, error) {
	if c.cn.dia.TxNeedsFlush(opts) {
		if err := c.cn.buf.barrier(ctx, c.cn.buf.ordered); err != nil {
			return nil, err
		}
	}
	base, err := c.attach(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := drivercall.BeginTx(ctx, base, opts)
	if err != nil {
		return nil, err
	}
	c.inTx, c.txSnapshot, c.txBegun = true, c.cn.dia.TxNeedsFlush(opts), false
	return &wrappedTx{base: tx, conn: c}, nil
}

func (c *conn) Ping(ctx context.Context) error {
	base, err := c.attach(ctx)
	if err != nil {
		return err
	}
	if p, ok := base.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// ResetSession notes that the base connection is due a session reset,
// which it gets before its next use (resetBase). It never reports the
// writeback connection bad: a base connection that does is detached then,
// and replaced when needed, as replacing the writeback connection here
// would need the database, which write-back writes must not.
func (c *conn) ResetSession(context.Context) error {
	c.resetDue = c.base != nil
	return nil
}

// resetBase gives the base connection the session reset it is due, and
// detaches it if it reports itself bad. Another error is dropped, as
// database/sql drops it from ResetSession.
func (c *conn) resetBase(ctx context.Context) {
	if !c.resetDue {
		return
	}
	c.resetDue = false
	if r, ok := c.base.(driver.SessionResetter); ok {
		if err := r.ResetSession(ctx); errors.Is(err, driver.ErrBadConn) {
			c.detach()
		}
	}
}

// IsValid detaches an invalid base connection (see ResetSession).
func (c *conn) IsValid() bool {
	if v, ok := c.base.(driver.Validator); ok && !v.IsValid() {
		c.detach()
	}
	return true
}

// CheckNamedValue lets the base driver accept its own argument types (pgx
// takes arrays, UUIDs ...); without a checker the default conversion applies.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.base.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	info := c.info(query)
	if c.lazy != nil {
		if res, ok := c.holdLazy(ctx, query, info, args); ok {
			return res, nil
		}
		if err := c.materialize(ctx); err != nil {
			return nil, err
		}
	}
	if res, ok, err := c.cn.tryBuffer(ctx, c, info, args); ok {
		return res, err
	}
	return c.execThrough(ctx, query, info, args)
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	info := c.info(query)
	if info.returning != nil {
		if rows, ok, err := c.queryReturning(ctx, query, info, args); ok {
			return rows, err
		}
	}
	if c.lazy != nil {
		if err := c.materialize(ctx); err != nil {
			return nil, err
		}
	}
	if info.read != nil && !c.inTx && !c.session {
		if rows, ok, err := c.readByKey(ctx, query, info.read, args); ok {
			return rows, err
		}
	}
	if err := c.before(ctx, info, args); err != nil {
		return nil, err
	}
	base, err := c.attach(ctx)
	if err != nil {
		return nil, err
	}
	var rows driver.Rows
	switch b := base.(type) {
	case driver.QueryerContext:
		rows, err = b.QueryContext(ctx, query, args)
	//lint:ignore SA1019 the legacy interface is the fallback
	case driver.Queryer:
		var vals []driver.Value
		if vals, err = drivercall.NamedToValues(args); err == nil {
			rows, err = b.Query(query, vals)
		}
	default:
		return nil, driver.ErrSkip
	}
	c.after(info, err)
	return rows, err // the base's rows, unwrapped: scanning costs nothing extra
}

// before runs the ordering barrier for a statement that goes to the
// database: every back table it names is committed first.
func (c *conn) before(ctx context.Context, info *stmtInfo, args []driver.NamedValue) error {
	if info.target != nil {
		info.target.passed.Add(1)
	}
	if info.c.BeginsTx && !c.inTx && c.cn.dia.TxNeedsFlush(driver.TxOptions{}) {
		// BEGIN in plain SQL, as BeginTx: the transaction's snapshot
		// must hold every write acknowledged before it.
		return c.cn.buf.barrier(ctx, c.cn.buf.ordered)
	}
	if len(info.barrier) == 0 {
		return nil
	}
	if !c.inTx {
		return c.cn.buf.barrier(ctx, info.barrier)
	}
	if !(c.txSnapshot && c.txBegun) {
		tables := info.barrier
		if c.tx != nil && len(c.tx.unkeyed) > 0 {
			tables = slices.DeleteFunc(slices.Clone(tables), c.tx.skipsBarrier)
		}
		if err := c.cn.buf.barrierFor(ctx, tables, c.tx); err != nil {
			return err
		}
	}
	if !info.writes {
		return nil
	}
	unkeyed, err := c.lockRows(ctx, info, args)
	for _, t := range unkeyed {
		c.txState().unkeyed[t] = true
	}
	return err
}

// after follows transactions opened and closed with plain SQL (BEGIN,
// COMMIT) and changes of session settings.
func (c *conn) after(info *stmtInfo, err error) {
	c.forgetAfter(info) // a failed statement may still have deleted rows (a statement list)
	if err != nil {
		return
	}
	if c.inTx {
		c.txBegun = true
	}
	if info.c.BeginsTx && !c.inTx {
		c.inTx, c.txSnapshot, c.txBegun = true, c.cn.dia.TxNeedsFlush(driver.TxOptions{}), false
	}
	if info.c.EndsTx {
		c.endTx()
	}
	if !harmlessSession(c.cn.dia, info.c.Session) {
		c.session = true
	}
	if info.c.DDL && len(info.barrier) > 0 {
		if c.inTx {
			// Other connections, the catalog's among them, see the change
			// only once the transaction commits (GORM migrates in one).
			c.txState().ddl = true
			return
		}
		c.cn.readCatalogAfterDDL()
	}
}

// harmlessSession reports whether every setting in names (a statement's
// Session) leaves the connection's writes bufferable (conn.after).
func harmlessSession(d dialect.Dialect, names []string) bool {
	for _, n := range names {
		if n == "*" || !d.HarmlessSetting(n) {
			return false
		}
	}
	return true
}

// readCatalogAfterDDL reads the catalog again after a DDL statement naming a
// back table took effect.
func (cn *Connector) readCatalogAfterDDL() {
	ctx, cancel := context.WithTimeout(context.Background(), flush.AttemptTimeout)
	cn.afterDDL(ctx)
	cancel()
}

// wrappedTx clears the connection's transaction state when it ends.
type wrappedTx struct {
	base driver.Tx
	conn *conn
}

func (t *wrappedTx) Commit() error {
	defer t.conn.endTx() // after: the rows stay locked until the commit ends
	return t.base.Commit()
}

func (t *wrappedTx) Rollback() error {
	defer t.conn.endTx()
	return t.base.Rollback()
}

// stmt wraps a base prepared statement; executing it is classified exactly
// like the same SQL text sent with Exec.
type stmt struct {
	base  driver.Stmt
	conn  *conn
	query string
	info  *stmtInfo
}

var (
	_ driver.Stmt              = (*stmt)(nil)
	_ driver.StmtExecContext   = (*stmt)(nil)
	_ driver.StmtQueryContext  = (*stmt)(nil)
	_ driver.NamedValueChecker = (*stmt)(nil)
)

func (s *stmt) Close() error  { return s.base.Close() }
func (s *stmt) NumInput() int { return s.base.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), drivercall.ValuesToNamed(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), drivercall.ValuesToNamed(args))
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if c := s.conn; c.lazy != nil {
		if res, ok := c.holdLazy(ctx, s.query, s.info, args); ok {
			return res, nil
		}
		if err := c.materialize(ctx); err != nil {
			return nil, err
		}
	}
	if res, ok, err := s.conn.cn.tryBuffer(ctx, s.conn, s.info, args); ok {
		return res, err
	}
	if err := s.conn.before(ctx, s.info, args); err != nil {
		return nil, err
	}
	s.conn.resetBase(ctx)
	res, err := drivercall.StmtExec(ctx, s.base, args)
	s.conn.after(s.info, err)
	s.conn.cn.learnThrough(s.conn, s.info, args, res, err)
	return res, err
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if s.info.returning != nil {
		if rows, ok, err := s.conn.queryReturning(ctx, s.query, s.info, args); ok {
			return rows, err
		}
	}
	if c := s.conn; c.lazy != nil {
		if err := c.materialize(ctx); err != nil {
			return nil, err
		}
	}
	if c := s.conn; s.info.read != nil && !c.inTx && !c.session {
		if rows, ok, err := c.readByKey(ctx, s.query, s.info.read, args); ok {
			return rows, err
		}
	}
	if err := s.conn.before(ctx, s.info, args); err != nil {
		return nil, err
	}
	s.conn.resetBase(ctx)
	rows, err := drivercall.StmtQuery(ctx, s.base, args)
	s.conn.after(s.info, err)
	return rows, err
}

func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.base.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return s.conn.CheckNamedValue(nv)
}

// The helpers below call a base driver through its context interfaces when it
// has them and through the legacy ones otherwise, as database/sql does.
