// Package testdb gives the tests of every package the same PostgreSQL: the
// server named by WRITEBACK_TEST_POSTGRES, or the machine's local one. A
// test that cannot reach it is skipped, unless CI=true, where that fails it.
// Only tests import this package.
package testdb

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the tests' PostgreSQL driver
)

// PostgresDSN is the base DSN of the test server.
func PostgresDSN() string {
	if s := os.Getenv("WRITEBACK_TEST_POSTGRES"); s != "" {
		return s
	}
	return "host=/var/run/postgresql dbname=test"
}

// OpenPostgres opens the test server through pgx's database/sql driver and
// checks that it answers; the pool is closed when the test ends.
func OpenPostgres(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("pgx", PostgresDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		if os.Getenv("CI") == "true" {
			tb.Fatalf("PostgreSQL at %q unreachable: %v", PostgresDSN(), err)
		}
		tb.Skipf("PostgreSQL at %q unreachable (set WRITEBACK_TEST_POSTGRES): %v", PostgresDSN(), err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
