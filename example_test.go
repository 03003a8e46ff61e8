package writeback_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/writeback-go/writeback"
)

// The examples run on an embedded SQLite database in a temporary folder. Their
// rules give page_views a max_loss of an hour, so nothing is flushed before
// the example asks for it and the figures they print are the same every run.

// Example opens a SQLite database through writeback with a rules file,
// buffers writes to a back table, flushes them and reads them back.
func Example() {
	dir, err := os.MkdirTemp("", "writeback-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// page_views is write-back, keyed by page_id; tables not listed are
	// write-through.
	rules := filepath.Join(dir, "writeback.yaml")
	err = os.WriteFile(rules, []byte(`
tables:
  page_views:
    mode: back
    key: [page_id]
    max_loss: 1h
`), 0o644)
	if err != nil {
		log.Fatal(err)
	}
	base := "file:" + filepath.Join(dir, "app.db") + "?_journal_mode=WAL&_busy_timeout=5000"

	// The application's migrations have created its tables: writeback reads
	// them when it opens, and refuses a rule that does not fit them.
	migrations, err := sql.Open("sqlite3", base)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := migrations.Exec(`CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	migrations.Close()

	db, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+base)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close() // flushes whatever is still buffered

	ctx := context.Background()
	// An INSERT that names the key is buffered; so are UPDATEs by key, and
	// the UPDATEs coalesce into the pending INSERT.
	if _, err := db.ExecContext(ctx, `INSERT INTO page_views (page_id, views) VALUES (?, 0)`, 1); err != nil {
		log.Fatal(err)
	}
	var res sql.Result
	for range 3 {
		res, err = db.ExecContext(ctx, `UPDATE page_views SET views = views + 1 WHERE page_id = ?`, 1)
		if err != nil {
			log.Fatal(err)
		}
	}
	n, _ := res.RowsAffected()
	_, err = res.LastInsertId()
	fmt.Println("rows affected:", n, "- LastInsertId is ErrBuffered:", errors.Is(err, writeback.ErrBuffered))

	st, err := writeback.StatsOf(db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("before Flush: buffered %d, coalesced %d, dirty rows %d\n", st.Buffered, st.Coalesced, st.Dirty)

	if err := writeback.Flush(ctx, db); err != nil {
		log.Fatal(err)
	}
	var views int
	if err := db.QueryRowContext(ctx, `SELECT views FROM page_views WHERE page_id = 1`).Scan(&views); err != nil {
		log.Fatal(err)
	}
	st, _ = writeback.StatsOf(db)
	fmt.Printf("after Flush: views %d, %d row written in %d transaction, dirty rows %d\n", views, st.FlushedRows, st.Flushes, st.Dirty)
	// Output:
	// rows affected: 1 - LastInsertId is ErrBuffered: true
	// before Flush: buffered 4, coalesced 3, dirty rows 1
	// after Flush: views 3, 1 row written in 1 transaction, dirty rows 0
}

// sqliteConnector is a driver.Connector for one SQLite DSN. database/sql
// has no public way to get the connector behind a *sql.DB, so a program that
// builds its connector in code writes one like this (or uses its driver's own,
// such as pgx's stdlib.GetConnector).
type sqliteConnector struct{ dsn string }

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) { return c.Driver().Open(c.dsn) }
func (sqliteConnector) Driver() driver.Driver                          { return &sqlite3.SQLiteDriver{} }

// ExampleNewConnector builds the rules in code and wraps a base connector,
// for use with sql.OpenDB.
func ExampleNewConnector() {
	dir, err := os.MkdirTemp("", "writeback-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	base := "file:" + filepath.Join(dir, "app.db") + "?_journal_mode=WAL&_busy_timeout=5000"

	// The file name only labels errors ("inline.yaml:3: ...").
	rules, err := writeback.ParseRules([]byte(`
tables:
  page_views: {mode: back, key: [page_id], max_loss: 1h}
  orders:     {mode: through}
`), "inline.yaml")
	if err != nil {
		log.Fatal(err)
	}
	// The tables exist before the connector opens (migrations).
	migrations, err := sql.Open("sqlite3", base)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := migrations.Exec(`CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL DEFAULT 0);
		CREATE TABLE orders (order_id INTEGER PRIMARY KEY, amount_cents INTEGER NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	migrations.Close()
	c, err := writeback.NewConnector(sqliteConnector{dsn: base}, rules,
		writeback.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(c) // closing db closes c, which flushes first

	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO orders (order_id, amount_cents) VALUES (1, 2500)`,           // write-through
		`INSERT INTO page_views (page_id, views) VALUES (7, 41)`,                 // buffered
		`UPDATE page_views SET views = views + 1 WHERE page_id = 7`,              // buffered, coalesced
		`UPDATE orders SET amount_cents = amount_cents + 100 WHERE order_id = 1`, // write-through
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			log.Fatal(err)
		}
	}
	st := c.Stats() // the same figures as writeback.StatsOf(db)
	fmt.Printf("buffered %d, coalesced %d, dirty rows %d\n", st.Buffered, st.Coalesced, st.Dirty)
	for name, t := range st.Tables {
		fmt.Printf("back table %s: buffered %d\n", name, t.Buffered)
	}

	if err := db.Close(); err != nil { // flushes page_views
		log.Fatal(err)
	}
	plain, err := sql.Open("sqlite3", base)
	if err != nil {
		log.Fatal(err)
	}
	defer plain.Close()
	var views, amount int
	if err := plain.QueryRowContext(ctx, `SELECT (SELECT views FROM page_views WHERE page_id = 7), (SELECT amount_cents FROM orders WHERE order_id = 1)`).Scan(&views, &amount); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("after Close, SQLite holds: views %d, amount_cents %d\n", views, amount)
	// Output:
	// buffered 2, coalesced 1, dirty rows 1
	// back table page_views: buffered 2
	// after Close, SQLite holds: views 42, amount_cents 2600
}

// ExampleOpenDB builds the rules in code, leaving the fields it does not
// need at zero (their defaults), and opens a *sql.DB over a base connector in
// one call.
func ExampleOpenDB() {
	dir, err := os.MkdirTemp("", "writeback-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	base := "file:" + filepath.Join(dir, "app.db") + "?_journal_mode=WAL&_busy_timeout=5000"

	rules := &writeback.Rules{Tables: map[string]*writeback.TableRule{
		"page_views": {Mode: writeback.ModeBack, Key: []string{"page_id"}, MaxLoss: time.Hour},
	}}
	// The table does not exist yet: it is created below, through db, as
	// migrations run by the application would. WithDeferredChecks lets the
	// connector open anyway; page_views is buffered once the CREATE TABLE
	// has made it fit its rule.
	db, err := writeback.OpenDB(sqliteConnector{dsn: base}, rules,
		writeback.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), writeback.WithDeferredChecks())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close() // flushes whatever is still buffered

	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO page_views (page_id, views) VALUES (1, 0)`,
		`UPDATE page_views SET views = views + 1 WHERE page_id = 1`,
		`UPDATE page_views SET views = views + 1 WHERE page_id = 1`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			log.Fatal(err)
		}
	}
	st, err := writeback.StatsOf(db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("buffered %d, coalesced %d\n", st.Buffered, st.Coalesced)
	if err := writeback.Flush(ctx, db); err != nil {
		log.Fatal(err)
	}
	var views int
	if err := db.QueryRowContext(ctx, `SELECT views FROM page_views WHERE page_id = 1`).Scan(&views); err != nil {
		log.Fatal(err)
	}
	fmt.Println("views after Flush:", views)
	// Output:
	// buffered 3, coalesced 2
	// views after Flush: 2
}

// openPageViews opens, through writeback, a fresh SQLite database holding
// page_views(page_id, views) with pages 1 to 3 at zero views, page_views being
// a back table. It returns the base DSN too, to read the file behind the
// driver's back.
func openPageViews() (db *sql.DB, base string, cleanup func()) {
	dir, err := os.MkdirTemp("", "writeback-example-")
	if err != nil {
		log.Fatal(err)
	}
	base = "file:" + filepath.Join(dir, "app.db") + "?_journal_mode=WAL&_busy_timeout=5000"
	// The schema and rows, written with plain sqlite3, before writeback is used.
	plain, err := sql.Open("sqlite3", base)
	if err != nil {
		log.Fatal(err)
	}
	_, err = plain.Exec(`CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL DEFAULT 0);
		INSERT INTO page_views (page_id) VALUES (1), (2), (3)`)
	plain.Close()
	if err != nil {
		log.Fatal(err)
	}
	rules := filepath.Join(dir, "writeback.yaml")
	yaml := "tables:\n  page_views: {mode: back, key: [page_id], max_loss: 1h}\n"
	if err := os.WriteFile(rules, []byte(yaml), 0o644); err != nil {
		log.Fatal(err)
	}
	db, err = sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+base)
	if err != nil {
		log.Fatal(err)
	}
	return db, base, func() {
		if err := db.Close(); err != nil {
			log.Print(err)
		}
		os.RemoveAll(dir)
	}
}

// sumViews reads SUM(views) from the database file with a plain sqlite3
// connection: what is durable, whatever writeback still holds.
func sumViews(base string) int {
	plain, err := sql.Open("sqlite3", base)
	if err != nil {
		log.Fatal(err)
	}
	defer plain.Close()
	var sum int
	if err := plain.QueryRow(`SELECT SUM(views) FROM page_views`).Scan(&sum); err != nil {
		log.Fatal(err)
	}
	return sum
}

// ExampleFlush shows that a buffered write reaches the database when Flush
// returns (or at max_loss, or at Close), not when Exec returns.
func ExampleFlush() {
	db, base, cleanup := openPageViews()
	defer cleanup()
	ctx := context.Background()

	for _, page := range []int{1, 2, 1, 3, 1} {
		if _, err := db.ExecContext(ctx, `UPDATE page_views SET views = views + 1 WHERE page_id = ?`, page); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("in SQLite before Flush:", sumViews(base))
	if err := writeback.Flush(ctx, db); err != nil {
		log.Fatal(err)
	}
	fmt.Println("in SQLite after Flush: ", sumViews(base))
	// Output:
	// in SQLite before Flush: 0
	// in SQLite after Flush:  5
}

// ExampleStatsOf reads the buffer's figures: writes acknowledged from memory,
// how many of them coalesced, and what the flush wrote.
func ExampleStatsOf() {
	db, _, cleanup := openPageViews()
	defer cleanup()
	ctx := context.Background()

	// Ten views: seven of page 1, three of page 2.
	for _, page := range []int{1, 1, 2, 1, 1, 2, 1, 1, 2, 1} {
		if _, err := db.ExecContext(ctx, `UPDATE page_views SET views = views + 1 WHERE page_id = ?`, page); err != nil {
			log.Fatal(err)
		}
	}
	st, err := writeback.StatsOf(db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Buffered %d, Coalesced %d, Dirty %d\n", st.Buffered, st.Coalesced, st.Dirty)

	if err := writeback.Flush(ctx, db); err != nil {
		log.Fatal(err)
	}
	st, _ = writeback.StatsOf(db)
	fmt.Printf("Flushes %d, FlushedRows %d, Dirty %d\n", st.Flushes, st.FlushedRows, st.Dirty)
	fmt.Printf("row writes per application write: %.1f\n", st.RowWritesPerWrite())
	// Output:
	// Buffered 10, Coalesced 8, Dirty 2
	// Flushes 1, FlushedRows 2, Dirty 0
	// row writes per application write: 0.2
}

// ExampleContextWithAck makes one write go to the database before Exec
// returns, while the table's other writes stay buffered.
func ExampleContextWithAck() {
	db, base, cleanup := openPageViews()
	defer cleanup()
	ctx := context.Background()
	const inc = `UPDATE page_views SET views = views + 1 WHERE page_id = ?`

	if _, err := db.ExecContext(ctx, inc, 1); err != nil { // buffered
		log.Fatal(err)
	}
	// Written through, after the row's earlier buffered write: when Exec
	// returns, both are in SQLite.
	if _, err := db.ExecContext(writeback.ContextWithAck(ctx, writeback.AckThrough), inc, 1); err != nil {
		log.Fatal(err)
	}
	st, err := writeback.StatsOf(db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Buffered %d, PassedThrough %d\n", st.Buffered, st.PassedThrough)
	fmt.Println("in SQLite without Flush:", sumViews(base))
	// Output:
	// Buffered 1, PassedThrough 1
	// in SQLite without Flush: 2
}
