package dialect

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"

	"github.com/writeback-go/writeback/internal/drivercall"
)

// mysqlMaxParams is the most placeholders one MySQL prepared statement takes.
const mysqlMaxParams = 65535

// mysqlWriter writes a flush with multi-row statements: INSERT INTO t (...)
// VALUES (...), (...) for inserts, and for updates one UPDATE t JOIN (SELECT
// ? AS k, ? AS v UNION ALL ...) AS v ON ... SET ... per batch, which cannot
// insert. When that UPDATE affects fewer rows than it carries (a key matches
// no row, or MySQL's affected count leaves out rows it matched but did not
// change), it is rolled back to a savepoint and the batch is written again
// after a SELECT ... FOR UPDATE of its keys, which tells the rows that match
// nothing.
//
// A writer belongs to one flush connection and keeps its statements
// prepared (go-sql-driver/mysql otherwise prepares, runs and closes a
// statement with arguments: three round trips for one), up to
// mysqlStmtCache of them; Close closes them.
type mysqlWriter struct {
	stmts map[string]driver.Stmt
	order []string // oldest first
	// textCols caches, per table as the flush names it, the character set
	// and collation of each text column (by lower-cased name).
	textCols map[string]map[string]string
	// args and named are argument buffers reused from statement to
	// statement (a flush of 100k rows sends 100 statements of 1000 rows);
	// cleared after each, so that they keep no row alive.
	args  []any
	named []driver.NamedValue
	// connID and serverStart are the connection's session (mysqlSessionSQL),
	// read in its first transaction; values says the server takes the
	// UPDATE's rows as a table value constructor (mysqlValuesRows).
	connID, serverStart string
	values              bool
	// insertFirst remembers, per table, that the last chunk of its last
	// upsert group found its keys mostly missing: the next group's first
	// chunk tries the INSERT alone too (upsert). At worst one chunk's
	// INSERT meets a duplicate key and is written the other way.
	insertFirst map[string]bool
}

// mysqlStmtCache is how many prepared statements a writer keeps.
const mysqlStmtCache = 32

func newMySQLWriter() *mysqlWriter {
	return &mysqlWriter{stmts: map[string]driver.Stmt{}, textCols: map[string]map[string]string{}, insertFirst: map[string]bool{}}
}

// mysqlTextColsSQL lists the text columns of a table with their character
// set and collation.
const mysqlTextColsSQL = "SELECT LOWER(COLUMN_NAME), CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS " +
	"WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLLATION_NAME IS NOT NULL"

// keyCollations returns, for each key column of g, "CONVERT(%s USING cs)
// COLLATE coll" for a text column and "" for others: the derived table's
// key values compared under the column's own collation. Without it they
// would carry the connection's collation (utf8mb4_general_ci, which ignores
// case and trailing spaces) and could match another row.
func (w *mysqlWriter) keyCollations(ctx context.Context, conn driver.Conn, g *Group, table string) ([]string, error) {
	cols, ok := w.textCols[table]
	if !ok {
		var schema any
		if g.Schema != nil {
			schema = g.Schema.Norm
		}
		rows, err := w.query(ctx, conn, mysqlTextColsSQL, 3, []any{schema, g.Table.Norm})
		if err != nil {
			return nil, fmt.Errorf("reading the collations of %s: %w", table, err)
		}
		cols = map[string]string{}
		for _, r := range rows {
			cs, coll := mysqlText(r[1]), mysqlText(r[2])
			if !mysqlName(cs) || !mysqlName(coll) {
				return nil, fmt.Errorf("reading the collations of %s: unexpected %q, %q", table, cs, coll)
			}
			cols[mysqlText(r[0])] = "CONVERT(%s USING " + cs + ") COLLATE " + coll
		}
		w.textCols[table] = cols
	}
	out := make([]string, len(g.KeyCols))
	for i, k := range g.KeyCols {
		out[i] = cols[strings.ToLower(k.Norm)]
	}
	return out, nil
}

// mysqlName reports whether s is a character set or collation name.
func mysqlName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Close closes the writer's prepared statements: when its connection gets
// a new writer (after DDL) or closes.
func (w *mysqlWriter) Close() error {
	for _, q := range w.order {
		_ = w.stmts[q].Close()
	}
	clear(w.stmts)
	w.order = nil
	return nil
}

// stmt returns query prepared on conn, from the cache or prepared now.
func (w *mysqlWriter) stmt(ctx context.Context, conn driver.Conn, query string) (driver.Stmt, error) {
	if st, ok := w.stmts[query]; ok {
		return st, nil
	}
	st, err := drivercall.Prepare(ctx, conn, query)
	if err != nil {
		return nil, err
	}
	if len(w.order) == mysqlStmtCache {
		_ = w.stmts[w.order[0]].Close()
		delete(w.stmts, w.order[0])
		w.order = w.order[1:]
	}
	w.stmts[query] = st
	w.order = append(w.order, query)
	return st, nil
}

// exec runs query with args through the statement cache.
func (w *mysqlWriter) exec(ctx context.Context, conn driver.Conn, query string, args []any) error {
	_, err := w.execCount(ctx, conn, query, args)
	return err
}

// execCount is exec, returning the rows the statement affected.
func (w *mysqlWriter) execCount(ctx context.Context, conn driver.Conn, query string, args []any) (int64, error) {
	st, err := w.stmt(ctx, conn, query)
	if err != nil {
		return 0, err
	}
	named := drivercall.AppendNamed(w.named[:0], args)
	res, err := drivercall.StmtExec(ctx, st, named)
	clear(named)
	w.named = named[:0]
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// query runs query with args through the statement cache and returns its
// rows of width values.
func (w *mysqlWriter) query(ctx context.Context, conn driver.Conn, query string, width int, args []any) ([][]driver.Value, error) {
	st, err := w.stmt(ctx, conn, query)
	if err != nil {
		return nil, err
	}
	rows, err := drivercall.StmtQuery(ctx, st, drivercall.ValuesToNamed(args))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return readRows(rows, width)
}

func (*mysqlWriter) Name() string { return "mysql" }

func (w *mysqlWriter) WriteTx(ctx context.Context, conn driver.Conn, groups []*Group, batch int, inTx func(exec Exec) error) (noMatch [][]int, err error) {
	tx, err := drivercall.BeginTx(ctx, conn, driver.TxOptions{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// The connection's id and the server's start time let a COMMIT whose
	// answer is lost be resolved (mysqlResolve). Both are the session's:
	// the server gives a connection its id for its life, and a restart
	// ends it (the driver never reconnects a connection), so they are read
	// in the connection's first transaction and are the same at every
	// COMMIT it sends. So is the server's version.
	if w.connID == "" {
		row, err := pgvQueryRow(ctx, conn, mysqlWriterSessionSQL, 3)
		if err != nil {
			return nil, fmt.Errorf("writeback: mysql connection id: %w", err)
		}
		w.connID, w.serverStart, w.values = mysqlText(row[0]), mysqlText(row[1]), mysqlValuesRows(mysqlText(row[2]))
	}
	noMatch = make([][]int, len(groups))
	for gi, g := range groups {
		switch g.Op {
		case Insert:
			err = w.insert(ctx, conn, g, batch)
		case Update:
			noMatch[gi], err = w.update(ctx, conn, g, batch)
		case Upsert:
			err = w.upsert(ctx, conn, g, batch)
		default:
			err = fmt.Errorf("writeback: the mysql dialect writes no group of op %d", g.Op)
		}
		if err != nil {
			return nil, err
		}
	}
	if inTx != nil {
		if err = inTx(func(query string, args ...any) error { return connExec(ctx, conn, query, args) }); err != nil {
			return nil, err
		}
	}
	id, started := w.connID, w.serverStart
	if err = tx.Commit(); err != nil {
		err = fmt.Errorf("writeback: mysql commit: %w", err)
		if _, answered := MySQLErrorNumber(err); !answered {
			err = &CommitUnknownError{Err: err, Resolve: mysqlResolve(id, started)}
		}
		return nil, err
	}
	return noMatch, nil
}

// mysqlSessionSQL reads the connection's id and the server's start time (in
// seconds since the epoch, from its uptime: the same start may read one
// second apart, see mysqlResolve).
const mysqlSessionSQL = "SELECT " + mysqlSessionCols + mysqlSessionFrom

// mysqlWriterSessionSQL is mysqlSessionSQL and the server's version.
const mysqlWriterSessionSQL = "SELECT " + mysqlSessionCols + ", VERSION()" + mysqlSessionFrom

const (
	mysqlSessionCols = "CONNECTION_ID(), UNIX_TIMESTAMP() - CAST(VARIABLE_VALUE AS SIGNED)"
	mysqlSessionFrom = " FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME'"
)

// mysqlValuesRows reports whether the server of version (VERSION()) takes
// a table value constructor after UNION ALL: MariaDB from 10.3.3. MySQL 8
// has another syntax (VALUES ROW(...)).
func mysqlValuesRows(version string) bool {
	if !strings.Contains(version, "MariaDB") {
		return false
	}
	var v [3]int
	for i, part := range strings.SplitN(strings.SplitN(version, "-", 2)[0], ".", 3) {
		n, err := strconv.Atoi(part)
		if err != nil {
			return false
		}
		v[i] = n
	}
	return v[0] > 10 || v[0] == 10 && (v[1] > 3 || v[1] == 3 && v[2] >= 3)
}

// mysqlResolve returns the resolver of a COMMIT sent on connection id that
// got no answer. MySQL keeps no status of past transactions, so it cannot
// say whether one committed; what it can say is whether the connection
// still runs (its COMMIT may still be under way: the resolver kills it and
// asks again, so that the outcome is settled before anything reads it).
// Once the connection is gone the answer is ErrCommitAmbiguous, and the
// journal's checkpoint, written in the same transaction, decides. A server
// restart ends every connection and may give id to another: then too the
// answer is ambiguous.
func mysqlResolve(id, started string) func(ctx context.Context, conn driver.Conn) (committed, known bool, err error) {
	return func(ctx context.Context, conn driver.Conn) (bool, bool, error) {
		row, err := pgvQueryRow(ctx, conn, mysqlSessionSQL, 2)
		if err != nil {
			return false, false, err
		}
		if !sameStart(mysqlText(row[1]), started) {
			return false, false, fmt.Errorf("%w: the server restarted since the COMMIT was sent", ErrCommitAmbiguous)
		}
		rows, err := pgvQuery(ctx, conn, "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?", 1, id)
		if err != nil {
			return false, false, err
		}
		if len(rows) > 0 {
			// Still there: end it, and ask again once it is gone.
			_ = connExec(ctx, conn, "KILL CONNECTION "+id, nil)
			return false, false, nil
		}
		return false, false, fmt.Errorf("%w: MySQL keeps no status of a finished transaction", ErrCommitAmbiguous)
	}
}

// sameStart reports whether two readings of the server's start time are of
// one start: computed from the uptime in whole seconds, they may differ by one.
func sameStart(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	return x-y <= 1 && y-x <= 1
}

// mysqlText is a value of a result row as text.
func mysqlText(v driver.Value) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// mysqlTable is g's table as the flush statements name it.
func mysqlTable(g *Group) string {
	if g.Schema != nil {
		return g.Schema.Raw + "." + g.Table.Raw
	}
	return g.Table.Raw
}

// chunk is how many rows of width values one statement carries.
func chunk(batch, width int) int {
	n := batch
	if n <= 0 {
		n = 1000
	}
	if width > 0 && n*width > mysqlMaxParams {
		n = mysqlMaxParams / width
	}
	return max(n, 1)
}

// insert writes an INSERT group, chunk rows a statement.
func (w *mysqlWriter) insert(ctx context.Context, conn driver.Conn, g *Group, batch int) error {
	n := chunk(batch, len(g.Cols))
	for start := 0; start < len(g.Rows); start += n {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if err := w.insertRows(ctx, conn, g, g.Rows[start:min(start+n, len(g.Rows))]); err != nil {
			return err
		}
	}
	return nil
}

// insertRows writes rows of an INSERT group as one multi-row INSERT.
func (w *mysqlWriter) insertRows(ctx context.Context, conn driver.Conn, g *Group, rows [][]any) error {
	var sb strings.Builder
	sb.Grow(64 + 16*len(g.Cols) + len(rows)*(4+3*len(g.Cols)))
	writeInsertInto(&sb, mysqlTable(g), g.Cols)
	sb.WriteString(" VALUES ")
	args := w.args[:0]
	for r, row := range rows {
		if r > 0 {
			sb.WriteString(", ")
		}
		writeQTuple(&sb, len(g.Cols))
		args = append(args, row[:len(g.Cols)]...)
	}
	err := w.exec(ctx, conn, sb.String(), args)
	clear(args)
	w.args = args[:0]
	return err
}

// update writes an UPDATE group, chunk rows a statement, and returns
// the indices of the rows whose key matched no row.
func (w *mysqlWriter) update(ctx context.Context, conn driver.Conn, g *Group, batch int) ([]int, error) {
	n := chunk(batch, len(g.Cols)+len(g.KeyCols))
	table := mysqlTable(g)
	colls, err := w.keyCollations(ctx, conn, g, table)
	if err != nil {
		return nil, err
	}
	var missed []int
	locked := func(start int) error {
		m, err := w.lockedUpdate(ctx, conn, g, table, colls, start, g.Rows[start:min(start+n, len(g.Rows))])
		missed = append(missed, m...)
		return err
	}
	var sp mysqlSavepoint
	build := func(start int) (string, []any) {
		return mysqlUpdateSQL(g, table, g.Rows[start:min(start+n, len(g.Rows))], colls, w.values)
	}
	next := buildAhead(0, build)
	for start := 0; start < len(g.Rows); start += n {
		cur := next
		if start+n < len(g.Rows) {
			next = buildAhead(start+n, build)
		}
		if err := ctxErr(ctx); err != nil {
			next.wait() // the builder reads g.Rows: done with them before returning
			return nil, err
		}
		done, err := w.tryUpdate(ctx, conn, g, table, colls, &sp, start, n, cur, locked)
		if err == nil && !done {
			err = locked(start)
		}
		if err != nil {
			next.wait()
			return nil, err
		}
	}
	return missed, nil
}

// chunkSQL is one chunk's statement and arguments, built by a goroutine of
// its own (buildAhead) while the chunk before it is written: building a
// 1000-row chunk's text and arguments is Go work the database would
// otherwise wait for, between two round trips, and a second core does it
// meanwhile.
type chunkSQL struct {
	done  chan struct{}
	query string
	args  []any
}

// buildAhead starts building the chunk from start.
func buildAhead(start int, build func(start int) (string, []any)) *chunkSQL {
	c := &chunkSQL{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.query, c.args = build(start)
	}()
	return c
}

// builtNow is a chunk's statement built by the caller.
func builtNow(query string, args []any) *chunkSQL {
	c := &chunkSQL{done: make(chan struct{}), query: query, args: args}
	close(c.done)
	return c
}

// wait returns the chunk's statement once built.
func (c *chunkSQL) wait() (string, []any) {
	<-c.done
	return c.query, c.args
}

// mysqlSavepoint is what a group's writing knows of its savepoint: whether
// one is set, and the chunks written since, each by one UPDATE that
// affected as many rows as it carried. One savepoint serves a run of such
// chunks (a round trip per group, not one per statement); when a chunk
// falls short, the rollback to it undoes the run too, which is written
// again.
type mysqlSavepoint struct {
	set   bool
	since []int // the starts of the chunks written since, in order
}

// tryUpdate writes the rows of g from start (at most n of them) as one
// batched UPDATE, after the savepoint sp (set now if need be), and reports
// whether that was all: when it affected as many rows as it carried, each
// matched one (MySQL counts the rows it changed, or with clientFoundRows
// the rows it matched; either is at most the rows matched). Otherwise it
// undoes the UPDATE, and the caller writes the chunk by its locked path
// (after a SELECT ... FOR UPDATE of its keys, which tells the rows that
// match nothing). built is the chunk's statement (buildAhead); locked is
// that path, for the chunks of the savepoint's run, should they need it.
func (w *mysqlWriter) tryUpdate(ctx context.Context, conn driver.Conn, g *Group, table string, colls []string, sp *mysqlSavepoint, start, n int, built *chunkSQL, locked func(start int) error) (bool, error) {
	rows := g.Rows[start:min(start+n, len(g.Rows))]
	if !sp.set {
		if err := w.exec(ctx, conn, "SAVEPOINT wb_update", nil); err != nil {
			built.wait()
			return false, err
		}
		sp.set, sp.since = true, sp.since[:0]
	}
	query, args := built.wait()
	affected, err := w.execCount(ctx, conn, query, args)
	if err != nil {
		return false, err
	}
	if affected == int64(len(rows)) {
		sp.since = append(sp.since, start)
		return true, nil
	}
	// The locked path writes statements the savepoint's run could not
	// redo: the next chunk sets a new savepoint.
	sp.set = false
	if affected == 0 {
		return false, nil // it changed nothing: nothing to undo
	}
	// Undo it, and with it the chunks since the savepoint. Those matched
	// every row they carried, and a rollback to a savepoint keeps the row
	// locks taken after it (InnoDB releases none before the transaction
	// ends), so each is written again by its UPDATE alone. Should one all
	// the same affect fewer rows, the run is undone again and each of its
	// chunks written by the locked path.
	if err := w.exec(ctx, conn, "ROLLBACK TO SAVEPOINT wb_update", nil); err != nil {
		return false, err
	}
	for _, s := range sp.since {
		redo := g.Rows[s:min(s+n, len(g.Rows))]
		query, args := mysqlUpdateSQL(g, table, redo, colls, w.values)
		affected, err := w.execCount(ctx, conn, query, args)
		if err != nil {
			return false, err
		}
		if affected == int64(len(redo)) {
			continue
		}
		if err := w.exec(ctx, conn, "ROLLBACK TO SAVEPOINT wb_update", nil); err != nil {
			return false, err
		}
		for _, s := range sp.since {
			if err := locked(s); err != nil {
				return false, err
			}
		}
		break
	}
	return false, nil
}

// lockedUpdate writes rows (those of g from start) after finding which
// keys exist, locked until the transaction ends so that the UPDATE finds
// the same rows, and returns the indices of those whose key matched no
// row.
func (w *mysqlWriter) lockedUpdate(ctx context.Context, conn driver.Conn, g *Group, table string, colls []string, start int, rows [][]any) ([]int, error) {
	nc, nk := len(g.Cols), len(g.KeyCols)
	exists, err := w.lockKeys(ctx, conn, g, table, rows)
	if err != nil {
		return nil, err
	}
	var matched [][]any
	var missed []int
	for r, row := range rows {
		if exists[mysqlKeyText(row[nc:nc+nk])] {
			matched = append(matched, row)
		} else {
			missed = append(missed, start+r)
		}
	}
	if len(matched) == 0 {
		return missed, nil
	}
	query, args := mysqlUpdateSQL(g, table, matched, colls, w.values)
	return missed, w.exec(ctx, conn, query, args)
}

// lockKeys runs SELECT key FROM t WHERE (key) IN (...) FOR UPDATE for the
// keys of rows (an UPDATE row's layout: values, then key) and returns the
// keys found, as mysqlKeyText. The rows found stay locked until the
// transaction ends; under REPEATABLE READ, so do the gaps of the keys not
// found, which no other session can insert then.
func (w *mysqlWriter) lockKeys(ctx context.Context, conn driver.Conn, g *Group, table string, rows [][]any) (map[string]bool, error) {
	nc, nk := len(g.Cols), len(g.KeyCols)
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for i, k := range g.KeyCols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(k.Raw)
	}
	sb.WriteString(" FROM " + table + " WHERE (")
	for i, k := range g.KeyCols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(k.Raw)
	}
	sb.WriteString(") IN (")
	keyArgs := make([]any, 0, len(rows)*nk)
	for r, row := range rows {
		if r > 0 {
			sb.WriteString(", ")
		}
		writeQTuple(&sb, nk)
		keyArgs = append(keyArgs, row[nc:nc+nk]...)
	}
	sb.WriteString(") FOR UPDATE")
	found, err := w.query(ctx, conn, sb.String(), nk, keyArgs)
	if err != nil {
		return nil, err
	}
	exists := make(map[string]bool, len(found))
	for _, f := range found {
		exists[mysqlKeyText(f)] = true
	}
	return exists, nil
}

// mysqlUpdateSQL is UPDATE t JOIN (SELECT ? AS k0, ? AS c0 UNION ALL
// SELECT ?, ? ...) AS wb_v ON t.k = wb_v.k0 SET t.c = t.c + wb_v.c0 for rows,
// a text key's values compared under its column's collation (colls, see
// keyCollations). With values, the rows after the first are one table
// value constructor, UNION ALL VALUES (?, ?), (?, ?) ..., which MariaDB
// plans once where it plans each SELECT of a UNION (mysqlValuesRows).
// The derived table's columns are named k0.., c0.. so no column name of
// the application can clash with them.
func mysqlUpdateSQL(g *Group, table string, rows [][]any, colls []string, values bool) (string, []any) {
	nc, nk := len(g.Cols), len(g.KeyCols)
	// A derived table's column takes its type from its parameters, and
	// go-sql-driver/mysql sends a string as CHAR, whose trailing spaces
	// the derived table drops (a key 'a ' would match 'a'). Each column's
	// parameters are cast to a type that holds all of its values.
	keyCast, colCast := make([]string, nk), make([]string, nc)
	for j := range keyCast {
		keyCast[j] = mysqlParamCast(rows, nc+j)
	}
	for j := range colCast {
		colCast[j] = mysqlParamCast(rows, j)
	}
	values = values && mysqlValuesTyped(rows, keyCast, colCast, nc)
	var sb strings.Builder
	sb.WriteString("UPDATE " + table + " AS wb_t JOIN (")
	args := make([]any, 0, len(rows)*(nc+nk))
	for r, row := range rows {
		switch {
		case r == 0:
			sb.WriteString("SELECT ")
		case !values:
			sb.WriteString(" UNION ALL SELECT ")
		case r == 1:
			sb.WriteString(" UNION ALL VALUES (")
		default:
			sb.WriteString(", (")
		}
		for j := 0; j < nk; j++ {
			if j > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(keyCast[j])
			if r == 0 {
				sb.WriteString(" AS k" + strconv.Itoa(j))
			}
		}
		for j := 0; j < nc; j++ {
			sb.WriteString(", " + colCast[j])
			if r == 0 {
				sb.WriteString(" AS c" + strconv.Itoa(j))
			}
		}
		if r > 0 && values {
			sb.WriteByte(')')
		}
		args = append(args, row[nc:nc+nk]...)
		args = append(args, row[:nc]...)
	}
	sb.WriteString(") AS wb_v ON ")
	for j, k := range g.KeyCols {
		if j > 0 {
			sb.WriteString(" AND ")
		}
		v := "wb_v.k" + strconv.Itoa(j)
		if colls[j] != "" {
			v = fmt.Sprintf(colls[j], v)
		}
		sb.WriteString("wb_t." + k.Raw + " = " + v)
	}
	sb.WriteString(" SET ")
	// The order_by column is assigned last: MySQL assigns in order, and
	// its assignment may round the value (a DATETIME's fraction) that the
	// other columns' guards compare with (order.go).
	o := g.orderIdx()
	setOrder := make([]int, 0, nc)
	for j := range nc {
		if j != o {
			setOrder = append(setOrder, j)
		}
	}
	if o >= 0 {
		setOrder = append(setOrder, o)
	}
	for n, j := range setOrder {
		if n > 0 {
			sb.WriteString(", ")
		}
		c := g.Cols[j]
		cur := "wb_t." + c.Raw
		sb.WriteString(cur + " = ")
		param := "wb_v.c" + strconv.Itoa(j)
		if guarded(o, g.Delta, g.fnAt(j), j) {
			writeOrdered(&sb, "wb_t."+g.Cols[o].Raw, func(b *strings.Builder) { b.WriteString("wb_v.c" + strconv.Itoa(o)) },
				cur, func(b *strings.Builder) { b.WriteString(param) })
			continue
		}
		writeSet(&sb, cur, g.Delta[j], g.fnAt(j), false, func(b *strings.Builder) { b.WriteString(param) })
	}
	return sb.String(), args
}

// mysqlValuesTyped reports whether a table value constructor carries
// rows (an UPDATE row's layout: nc values, then the key) as the SELECTs of
// a UNION would. MariaDB types a prepared UNION ALL VALUES by its first
// SELECT alone: a longer text than the first row's is cut, and after a
// NULL the numbers read as empty text. So only columns whose type the first row
// gives whole: every value an int64 (sent as BIGINT), or cast to DOUBLE,
// and none of the first row's NULL.
func mysqlValuesTyped(rows [][]any, keyCast, colCast []string, nc int) bool {
	typed := func(i int, cast string) bool {
		if rows[0][i] == nil {
			return false
		}
		switch cast {
		case "CAST(? AS DOUBLE)":
			return true
		case "?":
			for _, row := range rows {
				if _, ok := row[i].(int64); !ok && row[i] != nil {
					return false
				}
			}
			return true
		}
		return false
	}
	for j, c := range colCast {
		if !typed(j, c) {
			return false
		}
	}
	for j, c := range keyCast {
		if !typed(nc+j, c) {
			return false
		}
	}
	return true
}

// mysqlParamCast is the placeholder of column i of rows in a derived
// table: ? for integers (sent as 64-bit), a cast to DOUBLE when a float is
// among them, to BINARY for bytes, and to CHAR for anything else (text,
// decimal text, times, a mix), which MySQL then converts on assignment as it
// would the parameter itself.
func mysqlParamCast(rows [][]any, i int) string {
	floats, bytes, other, ints := false, false, false, false
	for _, row := range rows {
		switch row[i].(type) {
		case nil:
		case int64, bool:
			ints = true
		case float64:
			floats = true
		case []byte:
			bytes = true
		default:
			other = true
		}
	}
	switch {
	case other || bytes && (ints || floats):
		return "CAST(? AS CHAR)"
	case bytes:
		return "CAST(? AS BINARY)"
	case floats:
		return "CAST(? AS DOUBLE)"
	}
	return "?" // integers, or only NULLs
}

// mysqlKeyText is a key's values as one comparable text: an integer as its
// digits, text and bytes as they are, each with its length so that no two
// keys share a text.
func mysqlKeyText[V any](vals []V) string {
	var sb strings.Builder
	for _, v := range vals {
		s := mysqlText(v)
		sb.WriteString(strconv.Itoa(len(s)))
		sb.WriteByte(':')
		sb.WriteString(s)
	}
	return sb.String()
}

// upsert writes an UPSERT group, chunk rows at a time. Rows whose key
// exists get their update part as the table's batched UPDATE (a delta added
// to the row the database has), the others are inserted by one multi-row
// INSERT. A chunk first tries what the last one suggests: after a chunk
// whose keys mostly existed, the UPDATE of every row after a savepoint,
// which is all when it affected as many rows as it carried (see update);
// after one whose keys were mostly missing, the INSERT of every row, which
// is all when no key exists (InnoDB rolls back a statement that meets a
// duplicate key, and only it). The first chunk follows the last one of the
// table's previous group (w.insertFirst). Otherwise a SELECT ... FOR UPDATE of the keys
// (lockKeys) tells which exist: they are updated, the others inserted. The
// rows found stay locked, and under REPEATABLE READ no other session can
// insert the keys not found either; where one did all the same (READ
// COMMITTED has no gap locks), that INSERT fails with a duplicate key and
// its rows are written one at a time as INSERT ... ON DUPLICATE KEY UPDATE,
// so that such a row gets the update part. The insert part is never
// proposed for a key known to exist: MySQL checks a proposed row's values
// even when its key exists, and a coalesced row's insert part is a row its
// writes never proposed.
func (w *mysqlWriter) upsert(ctx context.Context, conn driver.Conn, g *Group, batch int) error {
	u := upsertUpdate(g)
	nc, nk := len(u.Cols), len(u.KeyCols)
	n := chunk(batch, max(nc+nk, len(g.Cols)))
	table := mysqlTable(g)
	colls, err := w.keyCollations(ctx, conn, u, table)
	if err != nil {
		return err
	}
	insertFirst := w.insertFirst[table]
	defer func() { w.insertFirst[table] = insertFirst }()
	var found, missing [][]any
	var missed []int
	// locked writes the chunk from start after locking its keys.
	locked := func(start int) error {
		rows := u.Rows[start:min(start+n, len(g.Rows))]
		exists, err := w.lockKeys(ctx, conn, u, table, rows)
		if err != nil {
			return err
		}
		found, missing, missed = found[:0], missing[:0], missed[:0]
		for r, row := range rows {
			if exists[mysqlKeyText(row[nc:nc+nk])] {
				found = append(found, row)
			} else {
				ins, _ := upsertParts(g, g.Rows[start+r])
				missing, missed = append(missing, ins), append(missed, start+r)
			}
		}
		insertFirst = 2*len(missing) > len(rows)
		if len(found) > 0 {
			query, args := mysqlUpdateSQL(u, table, found, colls, w.values)
			if err := w.exec(ctx, conn, query, args); err != nil {
				return err
			}
		}
		if len(missing) == 0 {
			return nil
		}
		err = w.insertRows(ctx, conn, g, missing)
		if code, ok := MySQLErrorNumber(err); err == nil || !ok || code != mysqlDupKey {
			return err
		}
		query := mysqlUpsertSQL(g)
		for _, i := range missed {
			if err := w.exec(ctx, conn, query, g.Rows[i][:len(g.Cols)+len(g.UpdCols)]); err != nil {
				return err
			}
		}
		return nil
	}
	var sp mysqlSavepoint
	for start := 0; start < len(g.Rows); start += n {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if insertFirst {
			// Whatever it writes is outside the savepoint's run.
			sp.set = false
			missing = missing[:0]
			for r := range min(n, len(g.Rows)-start) {
				ins, _ := upsertParts(g, g.Rows[start+r])
				missing = append(missing, ins)
			}
			err := w.insertRows(ctx, conn, g, missing)
			if err == nil {
				continue // no key existed
			}
			if code, ok := MySQLErrorNumber(err); !ok || code != mysqlDupKey {
				return err
			}
		} else {
			built := builtNow(mysqlUpdateSQL(u, table, u.Rows[start:min(start+n, len(u.Rows))], colls, w.values))
			done, err := w.tryUpdate(ctx, conn, u, table, colls, &sp, start, n, built, locked)
			if err != nil {
				return err
			}
			if done {
				continue // every row matched one
			}
		}
		if err := locked(start); err != nil {
			return err
		}
	}
	return nil
}

// mysqlDupKey is MySQL's ER_DUP_ENTRY.
const mysqlDupKey = 1062

// writeQTuple writes a tuple of n placeholders: (?, ?, ?).
func writeQTuple(sb *strings.Builder, n int) {
	sb.WriteByte('(')
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('?')
	}
	sb.WriteByte(')')
}

// mysqlUpsertSQL is the one-row INSERT INTO t (k, a, b) VALUES (?, ?, ?)
// ON DUPLICATE KEY UPDATE a = a + ?, b = ? of g, whose arguments are a
// row's inserted values then its update values. A bare column there is
// the existing row's.
func mysqlUpsertSQL(g *Group) string {
	var sb strings.Builder
	writeInsertInto(&sb, mysqlTable(g), g.Cols)
	sb.WriteString(" VALUES ")
	writeQTuple(&sb, len(g.Cols))
	sb.WriteString(" ON DUPLICATE KEY UPDATE ")
	for i, c := range g.UpdCols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c.Raw + " = ")
		if g.UpdDelta[i] {
			sb.WriteString(c.Raw + " + ")
		}
		sb.WriteByte('?')
	}
	return sb.String()
}
