package sqlparse

// This file holds the types the classifier produces.

// Kind is what a statement is, as far as buffering is concerned.
type Kind uint8

const (
	// Other is anything that is not a bufferable UPDATE or INSERT.
	Other Kind = iota
	// Update is UPDATE t SET ... WHERE k = v [AND k2 = v2 ...].
	Update
	// Insert is INSERT INTO t (cols) VALUES (...)[, (...)].
	Insert
	// Upsert is an Insert followed by ON CONFLICT (keys) DO UPDATE SET ...
	// (see Upsert).
	Upsert
)

// Ident is an identifier as the statement wrote it.
type Ident struct {
	// Norm is the name used to match rules and other identifiers: lower-cased
	// when unquoted, exact (quotes removed, doubled quotes undone) when quoted.
	Norm string
	// Raw is the text as written (with its quotes), used to emit flush SQL.
	Raw string
	// Quoted is true when the identifier was written in "", `` or [].
	Quoted bool
}

// Operand is where an operand's value comes from: a literal in the SQL text
// or a bind parameter.
type Operand struct {
	// IsLit: the value is lit, a literal from the SQL text: nil (NULL),
	// int64, bool, string (a quoted string), Decimal (a numeric literal
	// with a decimal point) or Clock.
	IsLit bool
	Lit   any
	// Ordinal is the 1-based bind position of a parameter (?, ?N, $N, and for
	// named parameters the position SQLite would give them).
	Ordinal int
	// Name is the parameter Name without its prefix for :Name, @Name (and
	// $Name in SQLite style); "" for positional parameters.
	Name string
	// Cast is the type the operand was cast to, v::type or CAST(v AS type),
	// as lower-case words joined by one space ("bigint", "double
	// precision"); "" when there is none. Casts with a type modifier
	// (varchar(10)), to arrays or to quoted or qualified type names are not
	// recognized. Whether a cast changes nothing is the caller's to decide,
	// from the column's type.
	Cast string
}

// Decimal is a numeric literal with a decimal point, as its canonical text:
// an optional '-', at least one digit before the point, and the point only
// when digits follow it ("1.50", "-0.5"; "5." is "5"). Its type is the
// database's to decide (numeric in PostgreSQL, REAL in SQLite), so the
// caller turns it into a value only knowing the column it goes to.
type Decimal string

// Clock is a function of the current time in a value's place, as its
// canonical spelling: the driver evaluates it itself, with the
// application's clock, where the column's type makes that exact.
type Clock string

// The recognized clocks.
const (
	ClockCurrentTimestamp     Clock = "CURRENT_TIMESTAMP"       // both dialects
	ClockNow                  Clock = "now()"                   // PostgreSQL
	ClockTransactionTimestamp Clock = "transaction_timestamp()" // PostgreSQL
	ClockDatetimeNow          Clock = "datetime('now')"         // SQLite
)

// SetClause is one assignment of an UPDATE: col = v, col = col + v or col =
// col - v (col + v may also be written v + col, and col COALESCE(col, 0)).
type SetClause struct {
	Col Ident
	// Delta is 0 for col = v, +1 for col = col + v, -1 for col = col - v.
	Delta int8
	// NullAsZero: the delta's column was written COALESCE(col, 0), so a
	// NULL counts as 0. The same as a plain delta on a NOT NULL column.
	NullAsZero bool
	// Extreme is +1 for col = GREATEST(col, v) and -1 for col = LEAST(col,
	// v), written max(col, v) and min(col, v) on SQLite (which has no
	// GREATEST and whose max and min return NULL when either is NULL);
	// Delta is then 0.
	Extreme int8
	Val     Operand
}

// KeyEq is one equality of an UPDATE's WHERE clause: col = v.
type KeyEq struct {
	Col Ident
	Val Operand
}

// Guard is a condition of an UPDATE's WHERE clause on a column besides the
// key: col IS NULL, or col IS NOT NULL (NotNull), the soft-delete shape.
type Guard struct {
	Col     Ident
	NotNull bool
}

// ParamStyle is the placeholder syntax the statement used, so the flusher's
// generic dialect can speak the same way.
type ParamStyle uint8

const (
	ParamNone     ParamStyle = iota // the statement has no placeholders
	ParamQuestion                   // ? or ?N
	ParamDollar                     // $N
	ParamNamed                      // :name, @name, $name
)

// Statement is the result of classifying one SQL text. It is immutable and
// shared between goroutines once built.
type Statement struct {
	Kind Kind

	// table is the target of a bufferable UPDATE or INSERT; Schema is set when
	// the statement wrote Schema.table.
	Schema *Ident
	Table  Ident
	// Alias is an UPDATE's alias for its table (UPDATE t AS a, or UPDATE t a
	// outside SQLite, which refuses it); nil when none. Columns qualified
	// with it are the table's, and then only with it.
	Alias *Ident

	// UPDATE: the SET list in order, and the WHERE equalities in order.
	Sets  []SetClause
	Where []KeyEq
	// Guards are the WHERE clause's IS [NOT] NULL conditions, in order.
	Guards []Guard

	// INSERT: the column list and one []valueSrc per VALUES row.
	Cols []Ident
	Rows [][]Operand

	// Returning is the statement's RETURNING list, when it has one made of
	// plain column names.
	Returning []Ident

	// UPSERT: the ON CONFLICT clause (Cols and Rows hold the INSERT part).
	Upsert *UpsertClause

	// INSERT that skips a row whose key exists: ON CONFLICT [(target)] DO
	// NOTHING (IgnoreConflict, with ConflictTarget as written, nil without
	// one), or SQLite's INSERT OR IGNORE (OrIgnore too).
	IgnoreConflict, OrIgnore bool
	ConflictTarget           []Ident

	// MySQL's forms: INSERT IGNORE INTO (InsertIgnore, with IgnoreConflict
	// set and no ConflictTarget), and INSERT ... ON DUPLICATE KEY UPDATE
	// (OnDuplicateKey, an Upsert whose Target is nil: MySQL names no
	// conflict target, any unique key of the table may be hit). The other
	// dialects refuse both.
	InsertIgnore, OnDuplicateKey bool

	// OrReplace: SQLite's INSERT OR REPLACE INTO or REPLACE INTO (recognized
	// only for SQLite). Its Kind is Upsert and its Upsert clause, with no
	// Target, assigns every inserted column its proposed value (EXCLUDED.c):
	// what the statement does when the row's key is the table's only unique
	// key and it lists every column, which the caller must check (REPLACE
	// deletes every row it conflicts with on any unique key and gives the
	// columns it leaves out their defaults, not the old row's values).
	OrReplace bool

	// Names is every identifier the statement mentions, lower-cased and
	// without quotes, de-duplicated (both parts of schema.table are listed
	// separately). Barriers compare it with the back tables' Names; being
	// conservative (a column named like a table) only costs a flush.
	Names []string

	// BeginsTx is true for BEGIN, START TRANSACTION and SAVEPOINT; endsTx for
	// COMMIT, END, ROLLBACK (not ROLLBACK TO SAVEPOINT) and RELEASE is neither.
	BeginsTx bool
	EndsTx   bool

	// DDL is set when a statement of the text changes a schema (CREATE,
	// ALTER, DROP, RENAME): what the driver knows of the tables it names
	// must be read again.
	DDL bool
	// Session lists the session settings a statement of the text changes,
	// lower-cased: SET name, RESET name, PRAGMA name, set_config('name', ...).
	// "*" stands for a change whose setting cannot be told (RESET ALL,
	// DISCARD, set_config with a computed name). SET LOCAL and SET
	// TRANSACTION, which end with the transaction, are not listed.
	Session []string

	// Style is the placeholder syntax used; numParams the number of distinct
	// bind positions.
	Style     ParamStyle
	NumParams int
}
