// Package testdb gives the tests of every package the same PostgreSQL: the
// server named by WRITEBACK_TEST_POSTGRES, or the machine's local one; and
// the same MySQL (MariaDB): WRITEBACK_TEST_MYSQL, or the local one. A
// test that cannot reach it is skipped, unless CI=true, where that fails it.
// Only tests import this package.
package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the tests' MySQL driver
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

// MySQLDSN is the base DSN of the MySQL or MariaDB test server, without a
// database: WRITEBACK_TEST_MYSQL, or the machine's local server as root.
func MySQLDSN() string {
	if s := os.Getenv("WRITEBACK_TEST_MYSQL"); s != "" {
		return s
	}
	return "root@tcp(127.0.0.1:3306)/"
}

var mysqlSeq atomic.Int64

// MySQLDatabase creates a fresh database on the MySQL test server and
// returns a DSN for it, with params (go-sql-driver/mysql's, e.g.
// "clientFoundRows=true") added; the database is dropped when the test
// ends. An unreachable server skips the test, or under CI=true fails it.
func MySQLDatabase(tb testing.TB, prefix, params string) string {
	tb.Helper()
	admin, err := sql.Open("mysql", MySQLDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		if os.Getenv("CI") == "true" {
			tb.Fatalf("MySQL at %q unreachable: %v", MySQLDSN(), err)
		}
		tb.Skipf("MySQL at %q unreachable (set WRITEBACK_TEST_MYSQL): %v", MySQLDSN(), err)
	}
	name := fmt.Sprintf("wb_%s_%d_%d", prefix, os.Getpid(), mysqlSeq.Add(1))
	if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
		tb.Fatal(err)
	}
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name)
		admin.Close()
	})
	base, query, _ := strings.Cut(MySQLDSN(), "?")
	if !strings.HasSuffix(base, "/") {
		base = base[:strings.LastIndexByte(base, '/')+1]
	}
	dsn := base + name
	switch {
	case query != "" && params != "":
		dsn += "?" + query + "&" + params
	case query != "" || params != "":
		dsn += "?" + query + params
	}
	return dsn
}
