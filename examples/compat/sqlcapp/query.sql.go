// Code in the form sqlc generates; see db.go.
// source: query.sql

package sqlcapp

import (
	"context"
)

const createCounter = `-- name: CreateCounter :exec
INSERT INTO counters (id, views) VALUES ($1, $2)
`

// CreateCounterParams are CreateCounter's arguments.
type CreateCounterParams struct {
	ID    int64
	Views int64
}

// CreateCounter inserts a counter.
func (q *Queries) CreateCounter(ctx context.Context, arg CreateCounterParams) error {
	_, err := q.db.ExecContext(ctx, createCounter, arg.ID, arg.Views)
	return err
}

const getCounter = `-- name: GetCounter :one
SELECT id, views FROM counters WHERE id = $1
`

// Counter is a row of counters.
type Counter struct {
	ID    int64
	Views int64
}

// GetCounter reads a counter.
func (q *Queries) GetCounter(ctx context.Context, id int64) (Counter, error) {
	row := q.db.QueryRowContext(ctx, getCounter, id)
	var i Counter
	err := row.Scan(&i.ID, &i.Views)
	return i, err
}

const incrementViews = `-- name: IncrementViews :execrows
UPDATE counters SET views = views + $1 WHERE id = $2
`

// IncrementViewsParams are IncrementViews' arguments.
type IncrementViewsParams struct {
	Views int64
	ID    int64
}

// IncrementViews adds to a counter and returns the rows it matched.
func (q *Queries) IncrementViews(ctx context.Context, arg IncrementViewsParams) (int64, error) {
	result, err := q.db.ExecContext(ctx, incrementViews, arg.Views, arg.ID)
	if err != nil {
		return 0, err
	}
	return result.RowsAffected()
}
