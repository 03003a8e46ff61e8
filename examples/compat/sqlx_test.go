package compat

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/writeback-go/writeback"
)

const counterRules = `
tables:
  counters:
    mode: back
    key: [id]
`

// openSqlx is the sqlx recipe: sqlx picks its placeholder style by driver
// name and does not know "writeback", so name the base driver with
// sqlx.NewDb (PostgreSQL wants $1, and sqlx rewrites ? into it).
func openSqlx(t *testing.T, baseDriver, dsn string) *sqlx.DB {
	t.Helper()
	db, err := sql.Open("writeback", "driver="+baseDriver+" rules="+rulesFile(t, counterRules)+" dsn="+dsn)
	if err != nil {
		t.Fatal(err)
	}
	x := sqlx.NewDb(db, baseDriver)
	t.Cleanup(func() { x.Close() })
	return x
}

func testSqlx(t *testing.T, baseDriver, dsn string) {
	raw, err := sql.Open(baseDriver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec("CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("INSERT INTO counters (id, views) VALUES (1, 0), (2, 0)"); err != nil {
		t.Fatal(err)
	}
	db := openSqlx(t, baseDriver, dsn)
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		// sqlx.Rebind turns ? into the base driver's style.
		if _, err := db.ExecContext(ctx, db.Rebind("UPDATE counters SET views = views + ? WHERE id = ?"), 1, 1+i%2); err != nil {
			t.Fatal(err)
		}
		if _, err := db.NamedExecContext(ctx, "UPDATE counters SET views = views + :d WHERE id = :id", map[string]any{"d": 1, "id": 1 + i%2}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := writeback.StatsOf(db.DB)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buffered != 200 {
		t.Fatalf("buffered %d of 200 writes", st.Buffered)
	}
	var rows []struct {
		ID    int64 `db:"id"`
		Views int64 `db:"views"`
	}
	// A read through the barrier sees every write.
	if err := db.SelectContext(ctx, &rows, "SELECT id, views FROM counters ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Views != 100 || rows[1].Views != 100 {
		t.Fatalf("rows %+v, want 100 views each", rows)
	}
}

func TestSqlxPostgres(t *testing.T) { testSqlx(t, "pgx", pgSchema(t, "sqlx")) }
func TestSqlxSQLite(t *testing.T)   { testSqlx(t, "sqlite3", sqliteDSN(t, "sqlx")) }
