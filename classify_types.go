package writeback

// This file holds the types the classifier produces (see classify.go). It is
// split out only so the classifier and its consumers can be written in parallel.

// stmtKind is what a statement is, as far as buffering is concerned.
type stmtKind uint8

const (
	// stmtOther is anything that is not a bufferable UPDATE or INSERT.
	stmtOther stmtKind = iota
	// stmtUpdate is UPDATE t SET ... WHERE k = v [AND k2 = v2 ...].
	stmtUpdate
	// stmtInsert is INSERT INTO t (cols) VALUES (...)[, (...)].
	stmtInsert
)

// ident is an identifier as the statement wrote it.
type ident struct {
	// norm is the name used to match rules and other identifiers: lower-cased
	// when unquoted, exact (quotes removed, doubled quotes undone) when quoted.
	norm string
	// raw is the text as written (with its quotes), used to emit flush SQL.
	raw string
	// quoted is true when the identifier was written in "", `` or [].
	quoted bool
}

// valueSrc is where an operand's value comes from: a literal in the SQL text
// or a bind parameter.
type valueSrc struct {
	// isLit: the value is lit, a literal from the SQL text: nil (NULL),
	// int64, bool, string (a quoted string, or a non-integer numeric literal
	// kept as its decimal text, e.g. "1.5").
	isLit bool
	lit   any
	// ordinal is the 1-based bind position of a parameter (?, ?N, $N, and for
	// named parameters the position SQLite would give them).
	ordinal int
	// name is the parameter name without its prefix for :name, @name (and
	// $name in SQLite style); "" for positional parameters.
	name string
}

// setClause is one assignment of an UPDATE: col = v, col = col + v or col = col - v.
type setClause struct {
	col ident
	// delta is 0 for col = v, +1 for col = col + v, -1 for col = col - v.
	delta int8
	val   valueSrc
}

// keyEq is one equality of an UPDATE's WHERE clause: col = v.
type keyEq struct {
	col ident
	val valueSrc
}

// paramStyle is the placeholder syntax the statement used, so the flusher's
// generic dialect can speak the same way.
type paramStyle uint8

const (
	paramNone     paramStyle = iota // the statement has no placeholders
	paramQuestion                   // ? or ?N
	paramDollar                     // $N
	paramNamed                      // :name, @name, $name
)

// classified is the result of classifying one SQL text. It is immutable and
// shared between goroutines once built.
type classified struct {
	kind stmtKind

	// table is the target of a bufferable UPDATE or INSERT; schema is set when
	// the statement wrote schema.table.
	schema *ident
	table  ident

	// UPDATE: the SET list in order, and the WHERE equalities in order.
	sets  []setClause
	where []keyEq

	// INSERT: the column list and one []valueSrc per VALUES row.
	cols []ident
	rows [][]valueSrc

	// names is every identifier the statement mentions, lower-cased and
	// without quotes, de-duplicated (both parts of schema.table are listed
	// separately). Barriers compare it with the back tables' names; being
	// conservative (a column named like a table) only costs a flush.
	names []string

	// beginsTx is true for BEGIN, START TRANSACTION and SAVEPOINT; endsTx for
	// COMMIT, END, ROLLBACK (not ROLLBACK TO SAVEPOINT) and RELEASE is neither.
	beginsTx bool
	endsTx   bool

	// style is the placeholder syntax used; numParams the number of distinct
	// bind positions.
	style     paramStyle
	numParams int
}
