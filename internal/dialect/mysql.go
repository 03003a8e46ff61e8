package dialect

import (
	"database/sql/driver"
	"reflect"
	"strings"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// mysql is MySQL and MariaDB through go-sql-driver/mysql: ? placeholders,
// `backquoted` names ("x" is a string unless ANSI_QUOTES is set, so a
// statement quoting a name with it is left to the database), column names
// compared without regard to case, and table names that are file names:
// compared exactly or folded, by the server's lower_case_table_names.
type mysql struct{}

func (mysql) Kind() Kind { return MySQL }

// Classify reads q as MySQL does. Column names are folded (MySQL compares
// them without regard to case); a table or schema name with an upper-case
// or non-ASCII letter is left to the database, since whether it names the
// same table as its lower-case spelling depends on lower_case_table_names,
// and a column name with a non-ASCII letter too (MySQL compares them
// accent-insensitively).
func (mysql) Classify(q string) *sqlparse.Statement {
	st := sqlparse.Classify(q, false)
	if st.Kind == sqlparse.Other {
		if name := mysqlSessionChange(q); name != "" {
			// LOCK TABLES keeps other sessions, the flush's among them,
			// from the tables until UNLOCK TABLES, and USE changes the
			// database bare names resolve in: the connection buffers
			// nothing more (a setting that is not harmless), so none of its
			// later statements waits for a flush its own locks block, or
			// is flushed into another database's table.
			st.Session = append(st.Session, name)
		}
		return st
	}
	if mysqlWhy(st) != "" {
		return demoted(st)
	}
	foldColumns(st)
	if dupCols(st) {
		return demoted(st)
	}
	return st
}

// mysqlWhy says why the names of a classified statement are not buffered
// on MySQL, "" when they are.
func mysqlWhy(st *sqlparse.Statement) string {
	if st.Schema != nil && !lowerASCII(st.Schema.Norm) || !lowerASCII(st.Table.Norm) || st.Table.Raw != "" && !st.Table.Quoted && !lowerASCII(st.Table.Raw) {
		return "the table name has an upper-case or non-ASCII letter: whether it names the lower-case table depends on the server's lower_case_table_names"
	}
	if st.Schema != nil && !st.Schema.Quoted && !lowerASCII(st.Schema.Raw) {
		return "the schema name has an upper-case or non-ASCII letter: whether it names the lower-case schema depends on the server's lower_case_table_names"
	}
	ascii := func(id sqlparse.Ident) bool { return lowerASCII(sqlparse.FoldASCII(id.Norm)) }
	for _, s := range st.Sets {
		if !ascii(s.Col) {
			return "a column name has a non-ASCII letter (MySQL compares column names without regard to case and accents)"
		}
	}
	for _, w := range st.Where {
		if !ascii(w.Col) {
			return "a column name has a non-ASCII letter (MySQL compares column names without regard to case and accents)"
		}
	}
	for _, c := range st.Cols {
		if !ascii(c) {
			return "a column name has a non-ASCII letter (MySQL compares column names without regard to case and accents)"
		}
	}
	if u := st.Upsert; u != nil {
		for _, s := range u.Sets {
			if !ascii(s.Col) {
				return "a column name has a non-ASCII letter (MySQL compares column names without regard to case and accents)"
			}
		}
	}
	return ""
}

// lowerASCII reports whether s has no upper-case ASCII letter and no byte
// outside ASCII.
func lowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

func (d mysql) Accepts(st *sqlparse.Statement) bool { return d.refusal(st) == "" }
func (mysql) refusal(st *sqlparse.Statement) string {
	switch {
	case st.OrIgnore:
		return "INSERT OR IGNORE is SQLite's syntax"
	case st.Kind == sqlparse.Upsert && !st.OnDuplicateKey, st.IgnoreConflict && !st.InsertIgnore:
		return "ON CONFLICT is PostgreSQL's and SQLite's syntax"
	case (st.OnDuplicateKey || st.InsertIgnore) && len(st.Returning) > 0:
		return "RETURNING after INSERT IGNORE or ON DUPLICATE KEY UPDATE"
	case st.Style == sqlparse.ParamDollar || st.Style == sqlparse.ParamNamed:
		return "MySQL has no $N or :name placeholders"
	case !quoteOK(st, func(q byte) bool { return q == '`' }):
		return `a name is quoted with "..." (a string in MySQL) or []: only names quoted with backquotes are buffered`
	}
	return ""
}

// TxNeedsFlush: InnoDB's default level, REPEATABLE READ, takes a snapshot
// at the first read, which may come before a later barrier; so does any
// transaction that does not ask for READ COMMITTED or below.
func (mysql) TxNeedsFlush(opts driver.TxOptions) bool {
	const readUncommitted, readCommitted = 1, 2 // sql.LevelReadUncommitted, sql.LevelReadCommitted
	return opts.Isolation != readCommitted && opts.Isolation != readUncommitted
}
func (mysql) HarmlessSetting(n string) bool { return harmless[MySQL][n] }
func (mysql) NewWriter(driver.Conn) Writer  { return newMySQLWriter() }

// mysqlSessionChange is "lock tables" when q begins (after blanks and
// comments) with LOCK TABLE[S] or FLUSH TABLE[S], "use" when it begins with
// USE, and "" otherwise.
func mysqlSessionChange(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n\f(")
		switch {
		case strings.HasPrefix(q, "/*"):
			end := strings.Index(q[2:], "*/")
			if end < 0 {
				return ""
			}
			q = q[2+end+2:]
		case strings.HasPrefix(q, "--"), strings.HasPrefix(q, "#"):
			end := strings.IndexByte(q, '\n')
			if end < 0 {
				return ""
			}
			q = q[end+1:]
		default:
			f := strings.Fields(q)
			switch {
			case len(f) >= 2 && (strings.EqualFold(f[0], "lock") || strings.EqualFold(f[0], "flush")) &&
				(strings.EqualFold(f[1], "tables") || strings.EqualFold(f[1], "table")):
				return "lock tables"
			case len(f) >= 2 && strings.EqualFold(f[0], "use"):
				return "use"
			}
			return ""
		}
	}
}

// MySQLFoundRows tells whether connections of c, a go-sql-driver/mysql
// connector, count the rows an UPDATE matched (its DSN sets
// clientFoundRows=true) rather than the rows it changed; known is false for
// any other connector (another driver, or one that wraps it). It reads the
// connector's configuration by reflection, so that programs on other
// databases need not link the driver.
func MySQLFoundRows(c driver.Connector) (foundRows, known bool) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return false, false
	}
	v = v.Elem()
	if v.Kind() != reflect.Struct || v.Type().PkgPath() != "github.com/go-sql-driver/mysql" || v.Type().Name() != "connector" {
		return false, false
	}
	cfg := v.FieldByName("cfg")
	if !cfg.IsValid() || cfg.Kind() != reflect.Pointer || cfg.IsNil() {
		return false, false
	}
	f := cfg.Elem().FieldByName("ClientFoundRows")
	if !f.IsValid() || f.Kind() != reflect.Bool {
		return false, false
	}
	return f.Bool(), true
}
