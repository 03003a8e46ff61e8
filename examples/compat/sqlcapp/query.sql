-- name: CreateCounter :exec
INSERT INTO counters (id, views) VALUES ($1, $2);

-- name: GetCounter :one
SELECT id, views FROM counters WHERE id = $1;

-- name: IncrementViews :execrows
UPDATE counters SET views = views + $1 WHERE id = $2;
