// Package catalog reads, from the database itself, what writeback must know
// of a table's schema so that it never coalesces writes wrongly.
//
// Buffering a write is only correct when the buffer's notion of "the same
// row" is the database's: the key must be the primary key or a unique index
// over NOT NULL columns, compared byte for byte (no citext, no
// nondeterministic collation, no COLLATE NOCASE), and nothing in the database
// must observe or change the row behind writeback's back between the
// application's write and the flush (triggers, rules, foreign keys, views
// read by other statements, defaults evaluated at flush time rather than at
// Exec time). Read gathers those facts for a list of tables in one pass:
//
//   - PostgreSQL: from pg_catalog, in four queries whatever the number of
//     tables (names resolved, columns, unique indexes, and the other facts).
//   - SQLite: from PRAGMA table_xinfo, index_list, index_info,
//     foreign_key_list and sqlite_schema; what SQLite does not report
//     (collations, CHECK constraints, which views read a table) is found by
//     a crude, conservative reading of the stored CREATE text.
//   - MySQL and MariaDB: from information_schema, a few queries per table.
//   - Any other database (dialect.Generic): ErrNoCatalog.
//
// The package only reads and reports; what to refuse is the caller's choice.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// ErrNoCatalog is returned by Read for dialect.Generic: writeback knows no
// catalog for a database it cannot identify, so it knows nothing of its tables.
var ErrNoCatalog = errors.New("catalog: no catalog for a generic database")

// Querier is what the reader needs: *sql.DB, *sql.Conn and *sql.Tx all fit.
// PostgreSQL names are resolved in the first query and every later query
// works on table oids, so a pooled *sql.DB is consistent as long as every
// connection has the same search_path. To read under one snapshot, pass a
// *sql.Tx opened at repeatable read.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// TypeClass is what a column's type is, for comparing and summing values.
type TypeClass uint8

const (
	Other   TypeClass = iota // anything else (enums, arrays, ranges, intervals, ...)
	Integer                  // int2/int4/int8, SQLite INTEGER affinity
	Numeric                  // numeric/decimal, SQLite NUMERIC affinity
	Float                    // real, double precision, SQLite REAL affinity
	Text                     // text, varchar, citext, SQLite TEXT affinity
	Char                     // blank-padded char(n) (bpchar): 'a' = 'a  '
	UUID                     // uuid
	Bool                     // boolean
	Time                     // date, time[tz], timestamp[tz]
	Bytes                    // bytea, SQLite BLOB
	JSON                     // json, jsonb
)

func (c TypeClass) String() string {
	names := [...]string{"Other", "Integer", "Numeric", "Float", "Text", "Char", "UUID", "Bool", "Time", "Bytes", "JSON"}
	if int(c) < len(names) {
		return names[c]
	}
	return fmt.Sprintf("TypeClass(%d)", c)
}

// Column is one column of a table.
type Column struct {
	// Name is the name as the database stores it: PostgreSQL's
	// case-resolved attname, SQLite's as declared.
	Name string
	// Type is the database's type text: "numeric(12,2)", "character
	// varying(20)", a domain's name, SQLite's declared type ("INTEGER").
	Type string
	// Class is the class of the type, domains resolved to their base type.
	// SQLite: by the affinity rules (INT → Integer; CHAR, CLOB, TEXT → Text;
	// BLOB → Bytes; REAL, FLOA, DOUB → Float; no type → Other; else Numeric),
	// so BOOLEAN and DATE are Numeric there.
	Class TypeClass
	// Length is n of varchar(n) or char(n), 0 when unbounded. Always 0 on
	// SQLite, which does not enforce declared lengths.
	Length int
	// Precision and Scale are p and s of numeric(p,s); for a Numeric column
	// without them (and on SQLite, which enforces neither) Precision is 0
	// and Scale -1. Both 0 for other classes.
	Precision, Scale int
	// NotNull: the column cannot hold NULL (NOT NULL, a NOT NULL domain, a
	// primary key of PostgreSQL or of a SQLite WITHOUT ROWID table, SQLite's
	// INTEGER PRIMARY KEY).
	NotNull bool
	// Collation names a non-default collation, "" for the default (and for
	// SQLite's BINARY).
	Collation string
	// CaseInsensitive: equal strings need not be equal bytes. PostgreSQL:
	// citext, or a nondeterministic collation. SQLite: any collation but
	// BINARY (NOCASE, RTRIM, or one the application registered).
	CaseInsensitive bool
	// Generated: a generated column (stored or virtual); Default is then
	// its generation expression where the database reports it.
	Generated bool
	// Default is the default expression's text, "" when none (a PostgreSQL
	// domain's default counts when the column has none of its own).
	Default string
	// SequenceDefault: the database assigns a fresh value when none is
	// given: nextval(...) (serial), an identity column, SQLite's INTEGER
	// PRIMARY KEY.
	SequenceDefault bool
	// VolatileDefault: the default's value depends on when it is evaluated,
	// so a deferred INSERT gets a different one: a volatile or stable
	// function other than nextval (random(), now(), clock_timestamp(),
	// currval...), CURRENT_TIMESTAMP and the like. SQLite: CURRENT_* or a
	// call to any function not known to be deterministic (date and time
	// functions included, whatever their arguments).
	VolatileDefault bool
	// Identity: GENERATED ... AS IDENTITY, or SQLite's INTEGER PRIMARY KEY
	// (an alias of the rowid).
	Identity bool
}

// Index is one unique index or unique constraint.
type Index struct {
	Name string
	// Columns are the key columns in key order ("" for an expression
	// part); INCLUDE columns are not part of the key and not listed.
	Columns []string
	// Partial: the index has a WHERE predicate, so it is unique only among
	// the rows it covers.
	Partial bool
	// Expression: a key part is an expression rather than a column.
	Expression bool
	// Invalid: a PostgreSQL index left invalid (a failed CREATE INDEX
	// CONCURRENTLY): it guarantees nothing.
	Invalid bool
	// NullsNotDistinct: PostgreSQL 15's NULLS NOT DISTINCT; NULL keys collide.
	NullsNotDistinct bool
	// Definition is the index's SQL where the database keeps it.
	Definition string
}

// Table is what Read found of one table.
type Table struct {
	Schema, Name string // as stored; SQLite's Schema is "main", "temp" or an attached name
	Columns      []*Column
	// PrimaryKey lists the primary key's columns in key order; nil when none.
	PrimaryKey []string
	// Uniques are the unique indexes and constraints other than the primary
	// key whose parts are all plain columns, without predicate, and valid.
	Uniques []*Index
	// OtherUniques are partial, expression or invalid unique indexes: not
	// keys, reported so a refusal can say why.
	OtherUniques []*Index
	// Triggers names the user triggers on the table (not PostgreSQL's
	// internal foreign key triggers). SQLite: also TEMP triggers naming a
	// table of this name (they may be on this one).
	Triggers []string
	// Rules names PostgreSQL rewrite rules on the table (DO ALSO/INSTEAD).
	Rules []string
	// ForeignKeysOut describes each foreign key by which this table
	// references another (or itself): "name FOREIGN KEY (a) REFERENCES p(id)".
	ForeignKeysOut []string
	// ForeignKeysIn describes each foreign key by which a table (this one
	// included) references this one: "child: name FOREIGN KEY (...) ...".
	ForeignKeysIn []string
	// Checks are CHECK constraints ("CHECK ((n > 0))"), not NOT NULL; a
	// PostgreSQL domain's checks are listed as "column: CHECK (...)".
	// SQLite: each CHECK clause found in the CREATE TABLE text.
	Checks []string
	// Views are the views (and PostgreSQL materialized views) that read the
	// table, directly or through other views, as "schema.view". SQLite: a
	// view whose text mentions the name as a word (conservative).
	Views []string
	// WithoutRowid: a SQLite WITHOUT ROWID table. A rowid table's rows
	// also have a rowid, which REPLACE changes (it deletes the row and
	// inserts a new one) unless the key is an alias of it (INTEGER PRIMARY
	// KEY). False elsewhere, and in a snapshot taken before it was read:
	// the safe answer.
	WithoutRowid bool

	kind dialect.Kind
}

// Read reads the named tables. names are as a rules file names them, "t" or
// "schema.t", and resolve as the database would resolve them in a statement:
// PostgreSQL folds unquoted names to lower case and finds bare ones through
// the connection's search_path (to_regclass); SQLite compares names without
// regard to ASCII case, looks bare ones up in temp, main, then attached
// databases, and "main.t" and "t" alike name main's t.
//
// The result has one entry per name, keyed by the name as given. A name that
// names no table (nothing, a view, a sequence, a foreign or virtual table,
// or a name the database would not parse) maps to nil. An error is returned
// only when a query fails.
func Read(ctx context.Context, q Querier, kind dialect.Kind, names []string) (map[string]*Table, error) {
	switch kind {
	case dialect.Postgres:
		return readPostgres(ctx, q, names)
	case dialect.SQLite:
		return readSQLite(ctx, q, names)
	case dialect.MySQL:
		return readMySQL(ctx, q, names)
	}
	return nil, ErrNoCatalog
}

// Column returns the column called name under the database's rules for a
// stored name: PostgreSQL compares exactly (the name must already be
// case-resolved: see UnquotedColumn), SQLite without regard to ASCII case.
// It returns nil when there is none.
func (t *Table) Column(name string) *Column {
	for _, c := range t.Columns {
		if c.Name == name || (t.kind == dialect.SQLite || t.kind == dialect.MySQL) && sqlparse.FoldASCII(c.Name) == sqlparse.FoldASCII(name) {
			return c
		}
	}
	return nil
}

// UnquotedColumn returns the column that name, written unquoted in a
// statement, refers to: PostgreSQL folds ASCII letters to lower case first;
// SQLite is as Column.
func (t *Table) UnquotedColumn(name string) *Column {
	if t.kind == dialect.Postgres {
		name = sqlparse.FoldASCII(name)
	}
	return t.Column(name)
}

// IsUniqueKey reports whether cols, taken as a set and looked up as Column
// does, are a key that identifies at most one row: the primary key, or the
// columns of a unique index each NOT NULL (or the index NULLS NOT DISTINCT). reason says which, or why not ("no unique index on (email)",
// "unique index on (code) but code is nullable"). It judges uniqueness only:
// a key column that is CaseInsensitive or of a class whose equal values may
// differ in text (Char, Numeric, Float) is the caller's to check.
func (t *Table) IsUniqueKey(cols []string) (ok bool, reason string) {
	if len(cols) == 0 {
		return false, "no key columns"
	}
	set := map[string]bool{}
	var names []string
	for _, name := range cols {
		c := t.Column(name)
		if c == nil {
			return false, fmt.Sprintf("no column %s in %s", name, t.Name)
		}
		if !set[c.Name] {
			set[c.Name] = true
			names = append(names, c.Name)
		}
	}
	list := "(" + strings.Join(names, ", ") + ")"
	if sameSet(set, t.PrimaryKey) {
		// Even where SQLite lets a rowid table's primary key hold NULL: a
		// NULL key is never buffered (WHERE k = NULL and an INSERT of a
		// NULL key go to the database), and non-NULL keys are unique.
		return true, "primary key " + list
	}
	var nullReason string
	for _, u := range t.Uniques {
		if !sameSet(set, u.Columns) {
			continue
		}
		null := t.nullable(names)
		if null == "" || u.NullsNotDistinct {
			return true, fmt.Sprintf("unique index %s on %s", u.Name, list)
		}
		nullReason = fmt.Sprintf("unique index on %s but %s is nullable", list, null)
	}
	if nullReason != "" {
		return false, nullReason
	}
	for _, u := range t.OtherUniques {
		if sameSet(set, u.Columns) {
			return false, fmt.Sprintf("unique index %s on %s is %s", u.Name, list, otherWhy(u))
		}
	}
	return false, "no unique index on " + list
}

// otherWhy says why an index of OtherUniques is no key.
func otherWhy(u *Index) string {
	switch {
	case u.Invalid:
		return "invalid"
	case u.Partial:
		return "partial (WHERE ...)"
	}
	return "over expressions"
}

// nullable returns the first of names that may hold NULL, "" when none.
func (t *Table) nullable(names []string) string {
	for _, n := range names {
		if c := t.Column(n); c == nil || !c.NotNull {
			return n
		}
	}
	return ""
}

// sameSet reports whether cols (stored names) are exactly the set.
func sameSet(set map[string]bool, cols []string) bool {
	seen := map[string]bool{}
	for _, c := range cols {
		if !set[c] {
			return false
		}
		seen[c] = true
	}
	return len(seen) == len(set)
}

// ViewsReading returns, for the tables Read returned, which of them each view
// reads (directly or through other views): a map from the view's name, in
// lower case, both bare ("v") and schema-qualified ("public.v"), to the
// names (the keys of tables) of the tables it reads, sorted. A statement
// that names a view of the map touches those tables. Two views of one bare
// name in different schemas share the bare entry (conservative).
func ViewsReading(tables map[string]*Table) map[string][]string {
	sets := map[string]map[string]bool{}
	add := func(view, table string) {
		if sets[view] == nil {
			sets[view] = map[string]bool{}
		}
		sets[view][table] = true
	}
	for name, t := range tables {
		if t == nil {
			continue
		}
		for _, v := range t.Views {
			v = sqlparse.FoldASCII(v)
			add(v, name)
			if i := strings.LastIndexByte(v, '.'); i >= 0 {
				add(v[i+1:], name)
			}
		}
	}
	out := make(map[string][]string, len(sets))
	for v, set := range sets {
		for name := range set {
			out[v] = append(out[v], name)
		}
		sort.Strings(out[v])
	}
	return out
}
