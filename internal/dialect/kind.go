package dialect

import (
	"database/sql/driver"
	"fmt"
	"reflect"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// Kind names a dialect.
type Kind uint8

const (
	Generic  Kind = iota // any database/sql driver: strict about quoting, one statement per row
	SQLite               // go-sqlite3 and other SQLite drivers
	Postgres             // PostgreSQL, natively through pgx when the connection is pgx's
	MySQL                // MySQL and MariaDB through go-sql-driver/mysql
)

func (k Kind) String() string {
	switch k {
	case Generic:
		return "generic"
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Dialect is what writeback knows of one base database's SQL.
type Dialect interface {
	// Kind names the dialect.
	Kind() Kind
	// Classify classifies a SQL text under the database's parameter rules
	// (SQLite reads $1 and $name as named parameters).
	Classify(query string) *sqlparse.Statement
	// Accepts reports whether a bufferable statement means, in this
	// database, what the classifier read: PostgreSQL has no ? or :name
	// placeholders and no `` or [] quoting; MySQL reads "x" as a string.
	Accepts(st *sqlparse.Statement) bool
	// TxNeedsFlush reports whether a transaction with these options may
	// take its snapshot before a later barrier, so every back table must be
	// flushed before it begins (SQLite; levels above read committed).
	TxNeedsFlush(opts driver.TxOptions) bool
	// NewWriter returns the writer for one flush connection.
	NewWriter(conn driver.Conn) Writer
	// HarmlessSetting reports whether changing the session setting name
	// (lower-cased, as sqlparse.Statement.Session lists it) leaves the
	// meaning of a buffered write unchanged, so a connection on which it
	// was changed may still buffer: timeouts, names, cache sizes. Any other
	// change (time zone, search path, date style, ...) sends the
	// connection's later writes to the database.
	HarmlessSetting(name string) bool
}

// harmless lists settings that do not change what a write means.
var harmless = map[Kind]map[string]bool{
	Postgres: {"application_name": true, "statement_timeout": true, "lock_timeout": true,
		"idle_in_transaction_session_timeout": true, "idle_session_timeout": true,
		"work_mem": true, "maintenance_work_mem": true, "temp_buffers": true,
		"log_statement": true, "log_min_duration_statement": true, "jit": true},
	SQLite: {"busy_timeout": true, "cache_size": true, "synchronous": true, "journal_mode": true,
		"wal_autocheckpoint": true, "temp_store": true, "mmap_size": true, "optimize": true,
		"cache_spill": true, "threads": true, "soft_heap_limit": true, "hard_heap_limit": true},
	MySQL: {"wait_timeout": true, "interactive_timeout": true, "net_read_timeout": true,
		"net_write_timeout": true, "lock_wait_timeout": true, "innodb_lock_wait_timeout": true,
		"max_execution_time": true, "max_statement_time": true, "sort_buffer_size": true,
		"join_buffer_size": true, "tmp_table_size": true, "max_heap_table_size": true},
}

// Detect picks the dialect of a base driver by its package: pgx's stdlib
// and lib/pq are Postgres, go-sqlite3 is SQLite, go-sql-driver/mysql is
// MySQL. A driver that wraps another (otelsql, sqlhooks, sqlmw) holds it in
// a field: the wrapped driver found there, a few levels deep, decides.
// Anything else is Generic, unless the
// application names its dialect (ByName).
func Detect(d driver.Driver) Dialect {
	if dia, ok := dialectOfType(reflect.TypeOf(d)); ok {
		return dia
	}
	if t := wrappedDriver(reflect.ValueOf(d), 3); t != nil {
		if dia, ok := dialectOfType(t); ok {
			return dia
		}
	}
	return generic{}
}

// dialectOfType is the dialect of a driver type's package, if known.
func dialectOfType(t reflect.Type) (Dialect, bool) {
	if t == nil {
		return nil, false
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.PkgPath() {
	case "github.com/mattn/go-sqlite3":
		return sqlite{}, true
	case "github.com/jackc/pgx/v5/stdlib", "github.com/lib/pq":
		return postgres{}, true
	case "github.com/go-sql-driver/mysql":
		return mysql{}, true
	}
	return nil, false
}

var driverType = reflect.TypeOf((*driver.Driver)(nil)).Elem()

// wrappedDriver finds, in the fields of a wrapping driver's value v (up to
// depth levels of wrappers), the type of a driver of a known package. It
// only reads types, never the fields' values.
func wrappedDriver(v reflect.Value, depth int) reflect.Type {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if depth == 0 || v.Kind() != reflect.Struct {
		return nil
	}
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.Interface {
			if f.IsNil() {
				continue
			}
			f = f.Elem()
		}
		if !f.Type().Implements(driverType) {
			continue
		}
		if _, ok := dialectOfType(f.Type()); ok {
			return f.Type()
		}
		if t := wrappedDriver(f, depth-1); t != nil {
			return t
		}
	}
	return nil
}

// ByName returns the dialect called name: "postgres", "sqlite", "mysql"
// (MariaDB too) or "generic".
func ByName(name string) (Dialect, error) {
	switch name {
	case "postgres", "postgresql":
		return postgres{}, nil
	case "sqlite", "sqlite3":
		return sqlite{}, nil
	case "generic":
		return generic{}, nil
	case "mysql", "mariadb":
		return mysql{}, nil
	}
	return nil, fmt.Errorf("unknown dialect %q (want postgres, sqlite, mysql or generic)", name)
}

// aboveReadCommitted reports whether a transaction's isolation level keeps
// one snapshot for the whole transaction (sql.LevelRepeatableRead and up).
func aboveReadCommitted(opts driver.TxOptions) bool {
	const readUncommitted, readCommitted = 1, 2 // sql.LevelReadUncommitted, sql.LevelReadCommitted
	level := opts.Isolation
	return level != 0 && level != readCommitted && level != readUncommitted
}

// quoteOK reports whether every identifier of a bufferable statement is
// quoted in a way the dialect reads as an identifier.
func quoteOK(st *sqlparse.Statement, ok func(q byte) bool) bool {
	check := func(id sqlparse.Ident) bool {
		return !id.Quoted || id.Raw == "" || ok(id.Raw[0])
	}
	if st.Schema != nil && !check(*st.Schema) || !check(st.Table) {
		return false
	}
	for _, s := range st.Sets {
		if !check(s.Col) {
			return false
		}
	}
	for _, w := range st.Where {
		if !check(w.Col) {
			return false
		}
	}
	for _, g := range st.Guards {
		if !check(g.Col) {
			return false
		}
	}
	for _, c := range st.Cols {
		if !check(c) {
			return false
		}
	}
	if u := st.Upsert; u != nil {
		for _, c := range u.Target {
			if !check(c) {
				return false
			}
		}
		for _, s := range u.Sets {
			if !check(s.Col) {
				return false
			}
		}
	}
	return true
}

// generic is any database/sql driver. "x" may be a string (MySQL), so only
// statements that quote names with “ or [] or not at all are buffered.
type generic struct{}

func (generic) Kind() Kind { return Generic }
func (generic) Classify(q string) *sqlparse.Statement {
	return sqlparse.Classify(q, false)
}
func (g generic) Accepts(st *sqlparse.Statement) bool { return g.refusal(st) == "" }
func (generic) refusal(st *sqlparse.Statement) string {
	switch {
	case st.Kind == sqlparse.Upsert, st.IgnoreConflict:
		return "the generic dialect buffers no ON CONFLICT or OR IGNORE (not every database's syntax)"
	case len(st.Guards) > 0:
		return "the generic dialect buffers no IS [NOT] NULL guard (it needs the catalog)"
	case !quoteOK(st, func(q byte) bool { return q == '`' || q == '[' }):
		return `a name is quoted with "..." (a string in MySQL): the generic dialect buffers only names quoted with backquotes or []`
	}
	return ""
}
func (generic) TxNeedsFlush(opts driver.TxOptions) bool { return aboveReadCommitted(opts) }
func (generic) HarmlessSetting(string) bool             { return false }
func (generic) NewWriter(driver.Conn) Writer            { return &genericWriter{dialectName: "generic"} }

// sqlite is SQLite: "", “ and [] all quote names, $N and $name are named
// parameters, and transactions are serializable, so every transaction
// starts after a flush of every back table.
type sqlite struct{}

func (sqlite) Kind() Kind { return SQLite }

// Classify folds quoted names too: SQLite matches "N" and n as one column
// (and one table), whatever the quotes.
func (sqlite) Classify(q string) *sqlparse.Statement {
	st := sqlparse.Classify(q, true)
	if st.Kind == sqlparse.Other {
		return st
	}
	if st.Schema != nil {
		foldQuoted(st.Schema)
	}
	foldQuoted(&st.Table)
	foldColumns(st)
	if dupCols(st) {
		return demoted(st)
	}
	return st
}

// foldQuoted folds a quoted name's ASCII letters, as an unquoted one's are.
func foldQuoted(id *sqlparse.Ident) {
	if id.Quoted {
		id.Norm = sqlparse.FoldASCII(id.Norm)
	}
}

// foldColumns folds every quoted column name of st: for databases that
// match column names without regard to case (SQLite, MySQL).
func foldColumns(st *sqlparse.Statement) {
	for i := range st.Sets {
		foldQuoted(&st.Sets[i].Col)
	}
	for i := range st.Where {
		foldQuoted(&st.Where[i].Col)
	}
	for i := range st.Guards {
		foldQuoted(&st.Guards[i].Col)
	}
	for i := range st.Cols {
		foldQuoted(&st.Cols[i])
	}
	for i := range st.ConflictTarget {
		foldQuoted(&st.ConflictTarget[i])
	}
	if u := st.Upsert; u != nil {
		for i := range u.Target {
			foldQuoted(&u.Target[i])
		}
		for i := range u.Sets {
			foldQuoted(&u.Sets[i].Col)
		}
	}
}

// demoted is st as a statement that is not buffered, keeping what barriers
// and transactions read of it.
func demoted(st *sqlparse.Statement) *sqlparse.Statement {
	return &sqlparse.Statement{Names: st.Names, BeginsTx: st.BeginsTx, EndsTx: st.EndsTx,
		DDL: st.DDL, Session: st.Session, Style: st.Style, NumParams: st.NumParams}
}

// dupCols reports whether folding made two SET targets, WHERE columns or
// inserted columns one: the statement is then left to the database.
func dupCols(st *sqlparse.Statement) bool {
	seen := map[string]bool{}
	dup := func(n string) bool {
		if seen[n] {
			return true
		}
		seen[n] = true
		return false
	}
	for _, s := range st.Sets {
		if dup(s.Col.Norm) {
			return true
		}
	}
	clear(seen)
	for _, w := range st.Where {
		if dup(w.Col.Norm) {
			return true
		}
	}
	clear(seen)
	for _, c := range st.Cols {
		if dup(c.Norm) {
			return true
		}
	}
	if u := st.Upsert; u != nil {
		clear(seen)
		for _, s := range u.Sets {
			if dup(s.Col.Norm) {
				return true
			}
		}
	}
	return false
}
func (d sqlite) Accepts(st *sqlparse.Statement) bool { return d.refusal(st) == "" }
func (sqlite) refusal(st *sqlparse.Statement) string {
	if st.InsertIgnore || st.OnDuplicateKey {
		return "INSERT IGNORE and ON DUPLICATE KEY UPDATE are MySQL's syntax"
	}
	if !quoteOK(st, func(q byte) bool { return q == '"' || q == '`' || q == '[' }) {
		return "a name is quoted in a way SQLite does not read as a name"
	}
	return ""
}
func (sqlite) TxNeedsFlush(driver.TxOptions) bool { return true }
func (sqlite) HarmlessSetting(n string) bool      { return harmless[SQLite][n] }
func (sqlite) NewWriter(driver.Conn) Writer {
	return &genericWriter{dialectName: "sqlite", question: true}
}

// postgres is PostgreSQL: $N placeholders only, "" quotes names.
type postgres struct{}

func (postgres) Kind() Kind { return Postgres }
func (postgres) Classify(q string) *sqlparse.Statement {
	return sqlparse.Classify(q, false)
}
func (d postgres) Accepts(st *sqlparse.Statement) bool { return d.refusal(st) == "" }
func (postgres) refusal(st *sqlparse.Statement) string {
	if st.OrIgnore {
		return "INSERT OR IGNORE is SQLite's syntax"
	}
	if st.InsertIgnore || st.OnDuplicateKey {
		return "INSERT IGNORE and ON DUPLICATE KEY UPDATE are MySQL's syntax"
	}
	if st.Style == sqlparse.ParamQuestion || st.Style == sqlparse.ParamNamed {
		return "PostgreSQL has no ? or :name placeholders"
	}
	if u := st.Upsert; u != nil {
		for _, s := range u.Sets {
			if s.BareRef {
				return "DO UPDATE SET reads a column without the table's name (PostgreSQL: \"column reference is ambiguous\")"
			}
		}
	}
	if !quoteOK(st, func(q byte) bool { return q == '"' }) {
		return "a name is quoted with backquotes or [], which PostgreSQL does not read as a name"
	}
	return ""
}

// Refusal says why d does not accept st (see Dialect.Accepts), "" when it
// does: for tools that explain the driver's decisions.
func Refusal(d Dialect, st *sqlparse.Statement) string {
	if r, ok := d.(interface {
		refusal(*sqlparse.Statement) string
	}); ok {
		return r.refusal(st)
	}
	if !d.Accepts(st) {
		return "the dialect does not take this statement"
	}
	return ""
}

// WhyNot says why the text q is not a bufferable UPDATE or INSERT shape
// under d (sqlparse.WhyNot, and what d's Classify adds), "" when it is one
// or is no UPDATE or INSERT at all.
func WhyNot(d Dialect, q string) string {
	if why := sqlparse.WhyNot(q, d.Kind() == SQLite); why != "" {
		return why
	}
	st := sqlparse.Classify(q, d.Kind() == SQLite)
	if st.Kind != sqlparse.Other && d.Kind() == MySQL {
		if why := mysqlWhy(st); why != "" {
			return why
		}
		foldColumns(st)
		if dupCols(st) {
			return "two of its column names are one column to MySQL, which compares names without regard to case"
		}
		return ""
	}
	if st.Kind != sqlparse.Other && d.Classify(q).Kind == sqlparse.Other {
		return "two of its column names are one column to SQLite, which compares names without regard to case"
	}
	return ""
}
func (postgres) TxNeedsFlush(opts driver.TxOptions) bool { return aboveReadCommitted(opts) }
func (postgres) HarmlessSetting(n string) bool           { return harmless[Postgres][n] }

// NewWriter writes natively through pgx when conn is, or wraps (otelsql),
// a pgx connection, and with multi-row statements through plain
// database/sql/driver calls otherwise (lib/pq, other wrappers).
func (postgres) NewWriter(conn driver.Conn) Writer {
	if isPgxConn(conn) {
		return newPgWriter()
	}
	return newPgValuesWriter()
}
