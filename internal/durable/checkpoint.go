package durable

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
)

// This file is the exactly-once half of the journal: what the target database
// records, in the same transaction as the rows a flush writes, about which
// journal records those rows carry. After a crash, recovery replays only the
// records the database does not say are applied, so a counter delta is never
// applied twice, whatever instant the process died at.
//
// Two tables hold it, created when a connector with a journal opens (or,
// when the schema is not managed, created by migrations with Schema's DDL
// and only checked):
//
//	writeback_checkpoint(journal_id, table_name, lsn)
//	    the watermark: every record of the table with LSN <= lsn is applied.
//	    A full flush (everything of the table, taken under all its shard
//	    locks) advances it to the table's highest LSN at take time.
//	writeback_applied(journal_id, table_name, row_key, lsn)
//	    exceptions above the watermark: the row's records with LSN <= lsn are
//	    applied. Partial flushes (evicted rows, bisection halves, dead
//	    letters) write them; a full flush deletes those it covers.
//
// journal_id is the random id of the journal directory, so several journals
// (processes, or a journal recreated from scratch) can share a database.

// Names of the checkpoint tables, unqualified: they live where the
// connection's default schema (search_path) puts them.
const (
	checkpointTable = "writeback_checkpoint"
	appliedTable    = "writeback_applied"
)

// cpFlavor is how checkpoint SQL is written for a base database.
type cpFlavor uint8

const (
	cpGeneric  cpFlavor = iota // ? placeholders, one statement per row
	cpPostgres                 // $N placeholders, arrays, ON CONFLICT
	cpMySQL                    // ? placeholders, multi-row ON DUPLICATE KEY UPDATE, VARBINARY keys
)

// flavorOf is the checkpoint SQL flavor of a dialect.
func flavorOf(k dialect.Kind) cpFlavor {
	switch k {
	case dialect.Postgres:
		return cpPostgres
	case dialect.MySQL:
		return cpMySQL
	}
	return cpGeneric
}

// ph returns the n-th (1-based) placeholder.
func (f cpFlavor) ph(n int) string {
	if f == cpPostgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// cpColumn is one column of a checkpoint table.
type cpColumn struct{ name, typ string }

// cpTable describes one checkpoint table: its DDL (Schema) and the check
// of an existing table (CheckSchema) are both made from it.
type cpTable struct {
	name string
	cols []cpColumn
	key  []string // the primary key: PostgreSQL's ON CONFLICT needs it
}

// cpTables are the tables the journal keeps in the target database.
var cpTables = []cpTable{
	{checkpointTable, []cpColumn{{"journal_id", "VARCHAR(64)"}, {"table_name", "VARCHAR(512)"}, {"lsn", "BIGINT"}},
		[]string{"journal_id", "table_name"}},
	{appliedTable, []cpColumn{{"journal_id", "VARCHAR(64)"}, {"table_name", "VARCHAR(512)"}, {"row_key", "TEXT"}, {"lsn", "BIGINT"}},
		[]string{"journal_id", "table_name", "row_key"}},
}

// myMaxKey is the longest row key MySQL's checkpoint table stores as it
// is: InnoDB's index key holds 3072 bytes, of which journal_id and
// table_name take 576. A longer key is stored as its SHA-256 (cpKey).
const myMaxKey = 2496

// myTypes are the MySQL types of the checkpoint columns: bytes, so that
// keys compare exactly (the default collations ignore case and trailing
// spaces) and fit InnoDB's index key.
var myTypes = map[string]string{"journal_id": "VARBINARY(64)", "table_name": "VARBINARY(512)",
	"row_key": "VARBINARY(" + strconv.Itoa(myMaxKey) + ")"}

// cpKey is how a row key is stored in the applied table of flavor f.
func cpKey(f cpFlavor, key string) string {
	if f == cpMySQL && len(key) > myMaxKey {
		sum := sha256.Sum256([]byte(key))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return key
}

// ddl is the statement that creates the table if it is missing.
func (t cpTable) ddl(f cpFlavor) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE IF NOT EXISTS " + t.name + " (")
	for _, c := range t.cols {
		typ := c.typ
		if my, ok := myTypes[c.name]; ok && f == cpMySQL {
			typ = my
		}
		b.WriteString(c.name + " " + typ + " NOT NULL, ")
	}
	b.WriteString("PRIMARY KEY (" + strings.Join(t.key, ", ") + "))")
	return b.String()
}

// colNames lists the table's columns, in order.
func (t cpTable) colNames() []string {
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	return names
}

// Schema is the DDL of the checkpoint tables, one statement each: what a
// journal runs when it manages the schema, and what migrations run when it
// does not (writeback.SchemaSQL). The same statements serve every dialect
// but MySQL, whose key columns are VARBINARY.
func Schema(kind dialect.Kind) []string {
	f := flavorOf(kind)
	out := make([]string, len(cpTables))
	for i, t := range cpTables {
		out[i] = t.ddl(f)
	}
	return out
}

// SchemaError is a checkpoint table the journal cannot use: missing,
// lacking a column, its key or a privilege (when the schema is checked), or
// impossible to create (when it is managed). Retrying does not mend it.
type SchemaError struct {
	Table   string // the checkpoint table
	Problem string // what is wrong, e.g. "does not exist"
	Managed bool   // the journal tried to create the table
	Err     error  // the database's error, if any
	kind    dialect.Kind
}

// Error names the table, the problem and the way out: the DDL to run.
func (e *SchemaError) Error() string {
	var ddl string
	for _, t := range cpTables {
		if t.name == e.Table {
			ddl = t.ddl(flavorOf(e.kind))
		}
	}
	msg := "writeback: journal checkpoint table " + e.Table + " " + e.Problem
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Managed {
		return msg + "; where the connection's role may not create tables, create them beforehand (writeback.SchemaSQL returns the DDL; this table's is: " + ddl + ") and set manage_schema: false in the rules (or manage_schema=false in the DSN), so that the driver only checks them"
	}
	return msg + "; with manage_schema false the driver only checks its tables, which migrations create with writeback.SchemaSQL's DDL; this table's is: " + ddl
}

// Unwrap returns the database's error, if any.
func (e *SchemaError) Unwrap() error { return e.Err }

// createSchema runs Schema. A failure the database will repeat (a
// permission, a clashing object) is a *SchemaError; others (the database
// is down) are returned as they are, so that recovery can wait.
func createSchema(ctx context.Context, db *sql.DB, kind dialect.Kind) error {
	for _, t := range cpTables {
		if _, err := db.ExecContext(ctx, t.ddl(flavorOf(kind))); err != nil {
			if answered(err) && dialect.ClassOf(err) == dialect.Permanent {
				return &SchemaError{Table: t.name, Problem: "cannot be created", Managed: true, Err: err, kind: kind}
			}
			return fmt.Errorf("create %s: %w", t.name, err)
		}
	}
	return nil
}

// answered reports whether err is the database's answer (PostgreSQL's
// SQLSTATE, MySQL's error number).
func answered(err error) bool {
	if _, ok := dialect.SQLState(err); ok {
		return true
	}
	_, ok := dialect.MySQLErrorNumber(err)
	return ok
}

// CheckSchema checks, without changing anything, that the checkpoint
// tables exist where an unqualified name finds them, with every column and
// the primary key the journal writes by, and (PostgreSQL) that the
// connection's role may read and write them. What is wrong is a
// *SchemaError; a failed query is returned as it is.
func CheckSchema(ctx context.Context, db *sql.DB, kind dialect.Kind) error {
	if kind == dialect.Generic {
		return probeSchema(ctx, db, kind)
	}
	names := make([]string, len(cpTables))
	for i, t := range cpTables {
		names[i] = t.name
	}
	found, err := catalog.Read(ctx, db, kind, names)
	if err != nil {
		return err
	}
	for _, want := range cpTables {
		got := found[want.name]
		if got == nil {
			return &SchemaError{Table: want.name, Problem: "does not exist (it is looked up unqualified, in the connection's default schema)", kind: kind}
		}
		var missing []string
		for _, c := range want.cols {
			if got.Column(c.name) == nil {
				missing = append(missing, c.name)
			}
		}
		if len(missing) > 0 {
			return &SchemaError{Table: want.name, Problem: "has no column " + strings.Join(missing, ", "), kind: kind}
		}
		if ok, why := got.IsUniqueKey(want.key); !ok {
			return &SchemaError{Table: want.name, Problem: "needs its primary key (" + strings.Join(want.key, ", ") + "), and has " + why, kind: kind}
		}
		if kind == dialect.Postgres {
			if err := pgPrivileges(ctx, db, want.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// pgPrivileges checks that the current role may read and write table.
func pgPrivileges(ctx context.Context, db *sql.DB, table string) error {
	privs := []string{"SELECT", "INSERT", "UPDATE", "DELETE"}
	has := make([]bool, len(privs))
	err := db.QueryRowContext(ctx, "SELECT has_table_privilege(to_regclass($1), 'SELECT'), has_table_privilege(to_regclass($1), 'INSERT'), "+
		"has_table_privilege(to_regclass($1), 'UPDATE'), has_table_privilege(to_regclass($1), 'DELETE')", table).Scan(&has[0], &has[1], &has[2], &has[3])
	if err != nil {
		return err
	}
	var lacking []string
	for i, ok := range has {
		if !ok {
			lacking = append(lacking, privs[i])
		}
	}
	if len(lacking) > 0 {
		return &SchemaError{Table: table, Problem: "is not writable by the connection's role: it lacks " + strings.Join(lacking, ", ") + " (GRANT SELECT, INSERT, UPDATE, DELETE ON " + table + " TO the role)", kind: dialect.Postgres}
	}
	return nil
}

// probeSchema checks the tables of a database without a catalog by reading
// no row of each: a missing table or column fails the query.
func probeSchema(ctx context.Context, db *sql.DB, kind dialect.Kind) error {
	for _, t := range cpTables {
		rows, err := db.QueryContext(ctx, "SELECT "+strings.Join(t.colNames(), ", ")+" FROM "+t.name+" WHERE 1 = 0")
		if err == nil {
			err = rows.Close()
		}
		if err != nil {
			if dialect.ClassOf(err) != dialect.Permanent {
				return err
			}
			return &SchemaError{Table: t.name, Problem: "is missing or lacks a column of (" + strings.Join(t.colNames(), ", ") + ")", Err: err, kind: kind}
		}
	}
	return nil
}

// Checkpoints is what the database says is applied, for one journal id.
type Checkpoints struct {
	watermark map[string]uint64            // table → lsn
	applied   map[string]map[string]uint64 // table → row key (as cpKey stores it) → lsn
	flavor    cpFlavor
}

// Covers reports whether record lsn of table's row key is applied.
func (c *Checkpoints) Covers(table, key string, lsn uint64) bool {
	if lsn <= c.watermark[table] {
		return true
	}
	return lsn <= c.applied[table][cpKey(c.flavor, key)]
}

// loadCheckpoints creates the checkpoint tables if needed, or checks them
// when the journal does not manage the schema, and reads the watermarks and
// exceptions of the journal's id.
func (d *Journal) loadCheckpoints(ctx context.Context, db *sql.DB) (*Checkpoints, error) {
	var err error
	if d.checkSchema {
		err = CheckSchema(ctx, db, d.kind)
	} else {
		err = createSchema(ctx, db, d.kind)
	}
	if err != nil {
		return nil, err
	}
	return readCheckpoints(ctx, db, d.kind, d.ID())
}

// ReadCheckpoints reads the watermarks and exceptions of journal id without
// changing the database: where the checkpoint tables do not exist (no
// connector with a journal ever opened on it), nothing is applied.
func ReadCheckpoints(ctx context.Context, db *sql.DB, kind dialect.Kind, id string) (*Checkpoints, error) {
	tables, err := catalog.Read(ctx, db, kind, []string{checkpointTable, appliedTable})
	switch {
	case errors.Is(err, catalog.ErrNoCatalog):
		// No catalog to ask: read, and let a missing table be the error.
	case err != nil:
		return nil, err
	case tables[checkpointTable] == nil || tables[appliedTable] == nil:
		return &Checkpoints{watermark: map[string]uint64{}, applied: map[string]map[string]uint64{}}, nil
	}
	return readCheckpoints(ctx, db, kind, id)
}

// readCheckpoints reads what the checkpoint tables hold for journal id.
func readCheckpoints(ctx context.Context, db *sql.DB, kind dialect.Kind, id string) (*Checkpoints, error) {
	f := flavorOf(kind)
	cp := &Checkpoints{watermark: map[string]uint64{}, applied: map[string]map[string]uint64{}, flavor: f}
	rows, err := db.QueryContext(ctx, "SELECT table_name, lsn FROM "+checkpointTable+" WHERE journal_id = "+f.ph(1), id)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var table string
		var lsn int64
		if err := rows.Scan(&table, &lsn); err != nil {
			rows.Close()
			return nil, err
		}
		cp.watermark[table] = uint64(lsn)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = db.QueryContext(ctx, "SELECT table_name, row_key, lsn FROM "+appliedTable+" WHERE journal_id = "+f.ph(1), id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var table, key string
		var lsn int64
		if err := rows.Scan(&table, &key, &lsn); err != nil {
			return nil, err
		}
		if cp.applied[table] == nil {
			cp.applied[table] = map[string]uint64{}
		}
		cp.applied[table][key] = uint64(lsn)
	}
	return cp, rows.Err()
}

// Mark is what a flush transaction records in the checkpoint tables.
type Mark struct {
	Table string
	// Full: the transaction writes everything of the table up to UpTo.
	Full bool
	UpTo uint64
}

// CheckpointTx returns the statements to run in a flush transaction of rows:
// for a full flush the new watermark (and the exceptions it makes useless),
// otherwise an exception per row. Rows without journal records (none were
// journaled: a table flushed before any record) need nothing.
func (d *Journal) CheckpointTx(m Mark, rows []*dirtyset.Row) func(exec dialect.Exec) error {
	cp := d.checkpointStmts(m, rows)
	if cp == nil {
		return nil
	}
	return func(exec dialect.Exec) error {
		if err := d.Fenced(); err != nil {
			// Another process may be applying these records: checked
			// inside the transaction, as close to its commit as can be.
			return &CheckpointError{err}
		}
		if err := cp(exec); err != nil {
			return &CheckpointError{err}
		}
		return nil
	}
}

// Fenced is why this process may no longer apply the journal's records (a
// backend's lease was lost); nil when it may.
func (d *Journal) Fenced() error {
	if f, ok := d.j.(interface{ Fenced() error }); ok {
		return f.Fenced()
	}
	return nil
}

// CheckpointError is a failed checkpoint statement. The flusher retries it
// like a transient failure, whatever the database said: a checkpoint that
// cannot be written (a dropped table, a permission) must not make the rows
// of the transaction dead letters.
type CheckpointError struct{ err error }

// Error says the checkpoint failed and why.
func (e *CheckpointError) Error() string { return "journal checkpoint: " + e.err.Error() }

// Unwrap returns the database's error.
func (e *CheckpointError) Unwrap() error { return e.err }

func (d *Journal) checkpointStmts(m Mark, rows []*dirtyset.Row) func(exec dialect.Exec) error {
	f, id := flavorOf(d.kind), d.ID()
	if m.Full {
		if m.UpTo == 0 {
			return nil
		}
		return func(exec dialect.Exec) error {
			if f == cpPostgres {
				if err := exec("INSERT INTO "+checkpointTable+" (journal_id, table_name, lsn) VALUES ($1, $2, $3) "+
					"ON CONFLICT (journal_id, table_name) DO UPDATE SET lsn = GREATEST("+checkpointTable+".lsn, excluded.lsn)",
					id, m.Table, int64(m.UpTo)); err != nil {
					return err
				}
			} else if f == cpMySQL {
				if err := exec("INSERT INTO "+checkpointTable+" (journal_id, table_name, lsn) VALUES (?, ?, ?) "+
					"ON DUPLICATE KEY UPDATE lsn = GREATEST(lsn, VALUES(lsn))", id, m.Table, int64(m.UpTo)); err != nil {
					return err
				}
			} else {
				if err := exec("DELETE FROM "+checkpointTable+" WHERE journal_id = ? AND table_name = ?", id, m.Table); err != nil {
					return err
				}
				if err := exec("INSERT INTO "+checkpointTable+" (journal_id, table_name, lsn) VALUES (?, ?, ?)", id, m.Table, int64(m.UpTo)); err != nil {
					return err
				}
			}
			return exec("DELETE FROM "+appliedTable+" WHERE journal_id = "+f.ph(1)+" AND table_name = "+f.ph(2)+" AND lsn <= "+f.ph(3),
				id, m.Table, int64(m.UpTo))
		}
	}
	// One exception per key, its highest LSN: two rows of one key (a retry
	// and a newer one) may be in one flush, and ON CONFLICT may not touch a
	// row twice in one statement.
	var keys []string
	var lsns []int64
	at := map[string]int{}
	for _, r := range rows {
		if r.MaxLSN == 0 {
			continue
		}
		kt := cpKey(f, r.KeyText())
		if i, ok := at[kt]; ok {
			lsns[i] = max(lsns[i], int64(r.MaxLSN))
			continue
		}
		at[kt] = len(keys)
		keys = append(keys, kt)
		lsns = append(lsns, int64(r.MaxLSN))
	}
	if len(keys) == 0 {
		return nil
	}
	return func(exec dialect.Exec) error {
		if f == cpPostgres {
			return exec("INSERT INTO "+appliedTable+" (journal_id, table_name, row_key, lsn) "+
				"SELECT $1, $2, v.k, v.l FROM unnest($3::text[], $4::int8[]) AS v(k, l) "+
				"ON CONFLICT (journal_id, table_name, row_key) DO UPDATE SET lsn = GREATEST("+appliedTable+".lsn, excluded.lsn)",
				id, m.Table, keys, lsns)
		}
		if f == cpMySQL {
			return myApplied(exec, id, m.Table, keys, lsns)
		}
		for i, k := range keys {
			if err := exec("DELETE FROM "+appliedTable+" WHERE journal_id = ? AND table_name = ? AND row_key = ?", id, m.Table, k); err != nil {
				return err
			}
			if err := exec("INSERT INTO "+appliedTable+" (journal_id, table_name, row_key, lsn) VALUES (?, ?, ?, ?)", id, m.Table, k, lsns[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

// Committed decides, from the checkpoints in the target database, whether
// a flush transaction of rows committed, when the database itself cannot
// tell (dialect.ErrCommitAmbiguous): the transaction wrote the checkpoint of
// every row it carried, all or nothing. A row whose journal records the
// checkpoints cover was applied by it. Rows without journal records decide
// nothing; when no row has any, or the checkpoints cover some rows and not
// others, the answer is an error wrapping dialect.ErrCommitAmbiguous.
func (d *Journal) Committed(ctx context.Context, db *sql.DB, table string, rows []*dirtyset.Row) (bool, error) {
	cp, err := d.loadCheckpoints(ctx, db)
	if err != nil {
		return false, err
	}
	covered, decided := 0, 0
	for _, r := range rows {
		if r.MaxLSN == 0 {
			continue
		}
		decided++
		if cp.Covers(table, r.KeyText(), r.MaxLSN) {
			covered++
		}
	}
	switch {
	case decided == 0:
		return false, fmt.Errorf("%w: its rows carry no journal record", dialect.ErrCommitAmbiguous)
	case covered == decided:
		return true, nil
	case covered == 0:
		return false, nil
	}
	return false, fmt.Errorf("%w: the checkpoints cover %d of its %d journaled rows", dialect.ErrCommitAmbiguous, covered, decided)
}

// myApplied writes MySQL's exceptions, many rows a statement.
func myApplied(exec dialect.Exec, id, table string, keys []string, lsns []int64) error {
	const perStmt = 1000
	for start := 0; start < len(keys); start += perStmt {
		end := min(start+perStmt, len(keys))
		var b strings.Builder
		b.WriteString("INSERT INTO " + appliedTable + " (journal_id, table_name, row_key, lsn) VALUES ")
		args := make([]any, 0, 4*(end-start))
		for i := start; i < end; i++ {
			if i > start {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?)")
			args = append(args, id, table, keys[i], lsns[i])
		}
		b.WriteString(" ON DUPLICATE KEY UPDATE lsn = GREATEST(lsn, VALUES(lsn))")
		if err := exec(b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}
