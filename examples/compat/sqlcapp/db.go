// Code in this package has the form sqlc v1.27 generates (engine
// postgresql, sql_package database/sql) for query.sql; it is kept by hand
// here so the example builds without sqlc. Generated code needs no change to
// run through writeback: it takes any DBTX, and a *sql.DB opened with
// sql.Open("writeback", ...) is one.

package sqlcapp

import (
	"context"
	"database/sql"
)

// DBTX is what sqlc's queries run on: a *sql.DB, *sql.Conn or *sql.Tx.
type DBTX interface {
	ExecContext(context.Context, string, ...interface{}) (sql.Result, error)
	PrepareContext(context.Context, string) (*sql.Stmt, error)
	QueryContext(context.Context, string, ...interface{}) (*sql.Rows, error)
	QueryRowContext(context.Context, string, ...interface{}) *sql.Row
}

// New returns the queries on db.
func New(db DBTX) *Queries {
	return &Queries{db: db}
}

// Queries holds the generated queries.
type Queries struct {
	db DBTX
}

// WithTx returns the queries on tx.
func (q *Queries) WithTx(tx *sql.Tx) *Queries {
	return &Queries{db: tx}
}
