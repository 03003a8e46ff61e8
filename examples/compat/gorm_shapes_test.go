package compat

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/writeback-go/writeback"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// The counter updates GORM writes (UpdateColumn and Updates with gorm.Expr,
// a Where by struct over a composite key) are buffered by writeback, and give
// the tables the same statements give directly.

type post struct {
	ID    int64
	Views int64
	Score float64
	Title string
}

type tally struct {
	A int64  `gorm:"primaryKey;autoIncrement:false"`
	B string `gorm:"primaryKey"`
	N int64  `gorm:"not null;default:0"`
}

const gormShapesRules = `tables:
  posts:
    mode: back
    key: [id]
    max_loss: 1h
  tallies:
    mode: back
    key: [a, b]
    max_loss: 1h
`

const gormSchema = `CREATE TABLE posts (id BIGINT NOT NULL PRIMARY KEY, views BIGINT NOT NULL DEFAULT 0, score DOUBLE PRECISION NOT NULL DEFAULT 0, title TEXT NOT NULL DEFAULT '');
CREATE TABLE tallies (a BIGINT NOT NULL, b TEXT NOT NULL, n BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (a, b));
INSERT INTO posts (id) VALUES (1), (2);
INSERT INTO tallies (a, b) VALUES (1, 'x'), (1, 'y')`

// gormWrites is the application: the same calls on either database.
func gormWrites(db *gorm.DB) error {
	p1, p2 := post{ID: 1}, post{ID: 2}
	for i := 0; i < 3; i++ {
		if err := db.Model(&p1).UpdateColumn("views", gorm.Expr("views + ?", 1)).Error; err != nil {
			return err
		}
	}
	steps := []*gorm.DB{
		db.Model(&p2).Updates(map[string]any{"title": "t", "views": gorm.Expr("views + ?", 2)}),
		db.Model(&p2).UpdateColumn("score", gorm.Expr("score + ?", 1.5)),
		db.Model(&p1).Updates(post{Title: "hello", Views: 7}),
		db.Model(&post{}).Where("id = ?", 1).UpdateColumn("views", gorm.Expr("views + ?", 1)),
		db.Model(&tally{}).Where(&tally{A: 1, B: "x"}).UpdateColumn("n", gorm.Expr("n + ?", 4)),
		db.Model(&tally{}).Where("a = ? AND b = ?", 1, "y").UpdateColumn("n", gorm.Expr("n + ?", 2)),
		db.Model(&tally{}).Where("(a = ?) AND (b = ?)", 1, "y").UpdateColumn("n", gorm.Expr("COALESCE(n, 0) + ?", 3)),
	}
	for _, s := range steps {
		if s.Error != nil {
			return s.Error
		}
	}
	return nil
}

func TestGORMShapes(t *testing.T) {
	for _, dbName := range []string{"sqlite", "postgres"} {
		t.Run(dbName, func(t *testing.T) {
			direct, wbBase, driverName, dsn := gormDatabases(t, dbName)
			for _, db := range []*sql.DB{direct, wbBase} {
				if _, err := db.Exec(gormSchema); err != nil {
					t.Fatal(err)
				}
			}
			rules := filepath.Join(t.TempDir(), "writeback.yaml")
			if err := os.WriteFile(rules, []byte(gormShapesRules), 0o600); err != nil {
				t.Fatal(err)
			}
			wb, err := sql.Open("writeback", "driver="+driverName+" rules="+rules+" dsn="+dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer wb.Close()
			for _, db := range []*sql.DB{direct, wb} {
				if err := gormWrites(gormOpen(t, dbName, db)); err != nil {
					t.Fatal(err)
				}
			}
			st, err := writeback.StatsOf(wb)
			if err != nil {
				t.Fatal(err)
			}
			// Every write is buffered: 3 + 7 statements.
			if st.Buffered != 10 || st.PassedThrough != 0 {
				t.Errorf("buffered %d, passed through %d; want 10 and 0", st.Buffered, st.PassedThrough)
			}
			if err := writeback.Flush(context.Background(), wb); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{"SELECT id, views, score, title FROM posts ORDER BY id", "SELECT a, b, n FROM tallies ORDER BY a, b"} {
				want, got := gormRows(t, direct, q), gormRows(t, wbBase, q)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s:\nthrough writeback %q\ndirectly          %q", q, got, want)
				}
			}
		})
	}
}

// gormDatabases returns two identical empty databases (plain connections),
// the base driver's name and the DSN of the second, for writeback.
func gormDatabases(t *testing.T, dbName string) (direct, wbBase *sql.DB, driverName, wbDSN string) {
	t.Helper()
	open := func(driverName, dsn string) *sql.DB {
		db, err := sql.Open(driverName, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	if dbName == "sqlite" {
		dir := t.TempDir()
		dsn := "file:" + filepath.Join(dir, "wb.db") + "?_busy_timeout=10000"
		return open("sqlite3", "file:"+filepath.Join(dir, "direct.db")), open("sqlite3", dsn), "sqlite3", dsn
	}
	base := os.Getenv("WRITEBACK_TEST_POSTGRES")
	if base == "" {
		base = "host=/var/run/postgresql dbname=postgres"
	}
	admin := open("pgx", base)
	if err := admin.Ping(); err != nil {
		t.Skipf("PostgreSQL unreachable at %q: %v", base, err)
	}
	var schemas [2]string
	for i, name := range []string{"direct", "wb"} {
		schemas[i] = fmt.Sprintf("compat_gorm_%s_%d", name, os.Getpid())
		s := schemas[i]
		if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + s + " CASCADE; CREATE SCHEMA " + s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA IF EXISTS " + s + " CASCADE") })
	}
	dsn := base + " search_path=" + schemas[1]
	return open("pgx", base+" search_path="+schemas[0]), open("pgx", dsn), "pgx", dsn
}

// gormOpen opens GORM over an existing *sql.DB.
func gormOpen(t *testing.T, dbName string, db *sql.DB) *gorm.DB {
	t.Helper()
	var d gorm.Dialector = postgres.New(postgres.Config{Conn: db})
	if dbName == "sqlite" {
		d = sqlite.New(sqlite.Config{Conn: db})
	}
	g, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// gormRows reads every row of q as text.
func gormRows(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%v", vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
