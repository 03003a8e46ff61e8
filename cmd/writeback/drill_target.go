package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
)

// This file makes the drill's scratch target: a copy of the structure of
// the rules' tables, never their rows, where the drill's writes go. The
// user's tables are only read (their definitions); nothing is written to
// them.

// scratch is a drill's target database.
type scratch struct {
	kind dialect.Kind
	// where says what the scratch target is, for the report.
	where string
	// baseDSN is the base driver's DSN of the scratch target.
	baseDSN string
	// db is a direct connection to the scratch target.
	db *sql.DB
	// tables are the copied tables, as the rules name them.
	tables []string
	// schema is where the copies are (PostgreSQL's schema, MySQL's
	// database, SQLite's main): every rule's name must resolve there.
	schema string
	// drop removes the scratch target (after db is closed).
	drop func(ctx context.Context) error
}

// close closes the connection and drops the scratch target.
func (s *scratch) close(ctx context.Context) error {
	err := s.db.Close()
	if s.drop != nil {
		err = errors.Join(err, s.drop(ctx))
	}
	return err
}

// reset empties the copied tables (between rounds).
func (s *scratch) reset(ctx context.Context) error {
	for _, t := range s.tables {
		if _, err := s.db.ExecContext(ctx, "DELETE FROM "+quoteRuleName(t, s.kind)); err != nil {
			return fmt.Errorf("emptying the scratch copy of %s: %w", t, err)
		}
	}
	return nil
}

// qualifiedRule reports whether a rule's table name names a schema (or, on
// MySQL, a database): a dot outside double quotes. SQLite's main. is not a
// schema of its own here (the scratch file's main is the copy).
func qualifiedRule(name string, kind dialect.Kind) bool {
	parts := splitRuleName(name)
	if len(parts) < 2 {
		return false
	}
	return !(kind == dialect.SQLite && len(parts) == 2 && strings.EqualFold(parts[0], "main"))
}

// splitRuleName splits a rule's table name at the dots outside double quotes.
func splitRuleName(name string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for _, r := range name {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case r == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(parts, cur.String())
}

// quoteRuleName writes a rule's table name as SQL: parts written in
// double quotes are kept as they are (MySQL: in backquotes), others are
// left bare, so the database resolves them as it resolves the rule.
func quoteRuleName(name string, kind dialect.Kind) string {
	parts := splitRuleName(name)
	for i, p := range parts {
		if kind == dialect.MySQL && strings.HasPrefix(p, `"`) && strings.HasSuffix(p, `"`) && len(p) >= 2 {
			parts[i] = "`" + strings.ReplaceAll(strings.ReplaceAll(p[1:len(p)-1], `""`, `"`), "`", "``") + "`"
		}
	}
	return strings.Join(parts, ".")
}

// quoteIdent quotes one identifier for kind.
func quoteIdent(name string, kind dialect.Kind) string {
	if kind == dialect.MySQL {
		return "`" + strings.ReplaceAll(name, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// makeScratch copies the structure of the named tables (those that exist)
// from real, the user's database, into a new scratch target. dir is the
// drill's temporary directory; tag makes the scratch names unique.
func makeScratch(ctx context.Context, kind dialect.Kind, real *sql.DB, realDSN string, names []string, dir, tag string) (*scratch, error) {
	found, err := catalog.Read(ctx, real, kind, names)
	if err != nil {
		return nil, fmt.Errorf("reading the tables' definitions: %w", err)
	}
	var tables []string
	for _, n := range names {
		if found[n] != nil {
			tables = append(tables, n)
		}
	}
	switch kind {
	case dialect.SQLite:
		return sqliteScratch(ctx, real, found, tables, dir)
	case dialect.Postgres:
		return postgresScratch(ctx, real, realDSN, found, tables, "writeback_drill_"+tag)
	case dialect.MySQL:
		return mysqlScratch(ctx, real, realDSN, found, tables, "writeback_drill_"+tag)
	}
	return nil, fmt.Errorf("the drill needs PostgreSQL, SQLite or MySQL (dialect %s)", kind)
}

// sqliteScratch copies the tables' CREATE TABLE and CREATE INDEX texts
// (not their triggers) into a new database file in dir.
func sqliteScratch(ctx context.Context, real *sql.DB, found map[string]*catalog.Table, tables []string, dir string) (*scratch, error) {
	var ddl []string
	for _, n := range tables {
		t := found[n]
		q := "SELECT sql FROM " + quoteIdent(t.Schema, dialect.SQLite) + ".sqlite_master WHERE tbl_name = ? AND type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type = 'index', rowid"
		rows, err := real.QueryContext(ctx, q, t.Name)
		if err != nil {
			return nil, fmt.Errorf("reading the definition of %s: %w", n, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return nil, err
			}
			ddl = append(ddl, s)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("reading the definition of %s: %w", n, err)
		}
	}
	path := filepath.Join(dir, "scratch.db")
	dsn := "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, err
	}
	for _, s := range ddl {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			return nil, fmt.Errorf("copying %q: %w", s, err)
		}
	}
	return &scratch{kind: dialect.SQLite, where: "SQLite file in a temporary directory", baseDSN: dsn, db: db, tables: tables, schema: "main",
		drop: func(context.Context) error { return os.Remove(path) }}, nil
}

// postgresScratch creates schema name in the user's database, copies each
// table there with CREATE TABLE ... (LIKE ... INCLUDING ALL), and returns
// a DSN whose search_path is that schema alone, so that the rules' bare
// names resolve to the copies. Defaults drawn from the original's
// sequences are dropped: the drill must not advance them.
func postgresScratch(ctx context.Context, real *sql.DB, realDSN string, found map[string]*catalog.Table, tables []string, name string) (*scratch, error) {
	schema := quoteIdent(name, dialect.Postgres)
	if _, err := real.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return nil, fmt.Errorf("creating the scratch schema %s: %w", name, err)
	}
	drop := func(ctx context.Context) error {
		_, err := real.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		return err
	}
	fail := func(err error) (*scratch, error) {
		return nil, errors.Join(err, drop(context.WithoutCancel(ctx)))
	}
	for _, n := range tables {
		t := found[n]
		copyName := schema + "." + quoteIdent(t.Name, dialect.Postgres)
		src := quoteIdent(t.Schema, dialect.Postgres) + "." + quoteIdent(t.Name, dialect.Postgres)
		if _, err := real.ExecContext(ctx, "CREATE TABLE "+copyName+" (LIKE "+src+" INCLUDING ALL)"); err != nil {
			return fail(fmt.Errorf("copying the definition of %s: %w", n, err))
		}
		rows, err := real.QueryContext(ctx, `SELECT a.attname FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1::regclass AND pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%'`, copyName)
		if err != nil {
			return fail(err)
		}
		var seqCols []string
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return fail(err)
			}
			seqCols = append(seqCols, c)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fail(err)
		}
		for _, c := range seqCols {
			if _, err := real.ExecContext(ctx, "ALTER TABLE "+copyName+" ALTER COLUMN "+quoteIdent(c, dialect.Postgres)+" DROP DEFAULT"); err != nil {
				return fail(err)
			}
		}
	}
	dsn := withSearchPath(realDSN, name)
	db, err := sql.Open("pgx", dsn)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		return fail(fmt.Errorf("connecting to the scratch schema: %w", err))
	}
	return &scratch{kind: dialect.Postgres, where: "PostgreSQL schema " + name + " in the given database", baseDSN: dsn, db: db, tables: tables, schema: name, drop: drop}, nil
}

// withSearchPath returns a pgx DSN (URL or key=value) whose search_path is
// schema alone.
func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return strings.TrimSpace(dsn) + " search_path=" + schema
}

// mysqlScratch creates database name and copies each table there with
// CREATE TABLE ... LIKE.
func mysqlScratch(ctx context.Context, real *sql.DB, realDSN string, found map[string]*catalog.Table, tables []string, name string) (*scratch, error) {
	cfg, err := mysql.ParseDSN(realDSN)
	if err != nil {
		return nil, err
	}
	dbName := quoteIdent(name, dialect.MySQL)
	if _, err := real.ExecContext(ctx, "CREATE DATABASE "+dbName); err != nil {
		return nil, fmt.Errorf("creating the scratch database %s: %w", name, err)
	}
	drop := func(ctx context.Context) error {
		_, err := real.ExecContext(ctx, "DROP DATABASE IF EXISTS "+dbName)
		return err
	}
	fail := func(err error) (*scratch, error) {
		return nil, errors.Join(err, drop(context.WithoutCancel(ctx)))
	}
	for _, n := range tables {
		t := found[n]
		src := quoteIdent(t.Schema, dialect.MySQL) + "." + quoteIdent(t.Name, dialect.MySQL)
		if _, err := real.ExecContext(ctx, "CREATE TABLE "+dbName+"."+quoteIdent(t.Name, dialect.MySQL)+" LIKE "+src); err != nil {
			return fail(fmt.Errorf("copying the definition of %s: %w", n, err))
		}
	}
	cfg.DBName = name
	dsn := cfg.FormatDSN()
	db, err := sql.Open("mysql", dsn)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		return fail(fmt.Errorf("connecting to the scratch database: %w", err))
	}
	return &scratch{kind: dialect.MySQL, where: "MySQL database " + name + " on the given server", baseDSN: dsn, db: db, tables: tables, schema: name, drop: drop}, nil
}
