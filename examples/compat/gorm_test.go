package compat

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/mattn/go-sqlite3"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/writeback-go/writeback"
)

// The GORM models of the tests: counters and pages are back tables, orders
// is write-through.
type Counter struct {
	ID    int64 `gorm:"primaryKey;autoIncrement:false"`
	Views int64
}

type Page struct {
	ID        int64 `gorm:"primaryKey;autoIncrement:false"`
	Title     string
	Views     int64
	UpdatedAt time.Time
	DeletedAt gorm.DeletedAt
}

// Visit has GORM's default primary key (an auto-increment id): GORM's
// INSERTs of it end with RETURNING "id", even when the id is set.
type Visit struct {
	ID    uint
	Views int64
}

type Order struct {
	ID    int64 `gorm:"primaryKey;autoIncrement:false"`
	Total int64
}

const gormRules = `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 1s
  pages:
    mode: back
    key: [id]
    max_loss: 1s
  visits:
    mode: back
    key: [id]
    max_loss: 1s
`

// gormPair is one database opened by GORM twice over: through its own
// driver, and through writeback over that driver (GORM's default settings
// in both).
type gormPair struct {
	direct, wb       *gorm.DB
	rawDirect, rawWB *sql.DB // the same databases without GORM, for dumps
}

var fixedNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func gormConfig() *gorm.Config {
	return &gorm.Config{
		Logger:  logger.Discard,
		NowFunc: func() time.Time { return fixedNow }, // the same timestamps on both sides
	}
}

func newGormPair(t *testing.T, backend string) *gormPair {
	t.Helper()
	var driverName, dsnDirect, dsnWB string
	var dialector func(*sql.DB) gorm.Dialector
	switch backend {
	case "sqlite":
		driverName, dsnDirect, dsnWB = "sqlite3", sqliteDSN(t, "direct"), sqliteDSN(t, "wb")
		dialector = func(db *sql.DB) gorm.Dialector { return sqlite.New(sqlite.Config{Conn: db}) }
	case "postgres":
		driverName, dsnDirect, dsnWB = "pgx", pgSchema(t, "gdirect"), pgSchema(t, "gwb")
		dialector = func(db *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: db}) }
	}
	open := func(name, dsn string) *sql.DB {
		db, err := sql.Open(name, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	p := &gormPair{rawDirect: open(driverName, dsnDirect)}
	// The schema first, by GORM's migrator on the raw driver, as an
	// application's migration step would.
	for _, raw := range []*sql.DB{p.rawDirect, open(driverName, dsnWB)} {
		g, err := gorm.Open(dialector(raw), gormConfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := g.AutoMigrate(&Counter{}, &Page{}, &Order{}, &Visit{}); err != nil {
			t.Fatal(err)
		}
		for i := int64(1); i <= 10; i++ {
			if err := g.Create(&Counter{ID: i}).Error; err != nil {
				t.Fatal(err)
			}
		}
	}
	p.rawWB = open("writeback", "driver="+driverName+" rules="+rulesFile(t, gormRules)+" dsn="+dsnWB)
	var err error
	if p.direct, err = gorm.Open(dialector(p.rawDirect), gormConfig()); err != nil {
		t.Fatal(err)
	}
	if p.wb, err = gorm.Open(dialector(p.rawWB), gormConfig()); err != nil {
		t.Fatal(err)
	}
	return p
}

// gormSteps runs an application's GORM calls and returns what it saw.
func gormSteps(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var out []string
	note := func(what string, tx *gorm.DB) {
		errText := "nil"
		if tx.Error != nil {
			errText = "error"
		}
		out = append(out, fmt.Sprintf("%s: rows %d err %s", what, tx.RowsAffected, errText))
	}
	for i := int64(1); i <= 3; i++ {
		note("create page", db.Create(&Page{ID: i, Title: fmt.Sprint("page ", i)}))
	}
	note("update column", db.Model(&Page{ID: 1}).UpdateColumn("views", gorm.Expr("views + ?", 1)))
	note("update column missing", db.Model(&Page{ID: 99}).UpdateColumn("views", gorm.Expr("views + ?", 1)))
	note("updates", db.Model(&Page{ID: 2}).Updates(map[string]any{"title": "renamed"}))
	var p Page
	note("first", db.First(&p, 1))
	p.Title = "saved"
	note("save existing", db.Save(&p))
	note("save new", db.Save(&Page{ID: 4, Title: "new"}))
	note("soft delete", db.Delete(&Page{}, 3))
	note("soft delete again", db.Delete(&Page{}, 3))
	note("update deleted", db.Model(&Page{ID: 3}).UpdateColumn("views", gorm.Expr("views + ?", 1)))
	var pages []Page
	note("find", db.Order("id").Find(&pages))
	for _, pg := range pages {
		out = append(out, fmt.Sprintf("page %d %q views %d", pg.ID, pg.Title, pg.Views))
	}
	note("save new counter", db.Save(&Counter{ID: 20, Views: 5}))
	note("save existing counter", db.Save(&Counter{ID: 20, Views: 6}))
	note("upsert add", db.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.Assignments(map[string]any{"views": gorm.Expr("counters.views + excluded.views")}),
	}).Create(&Counter{ID: 20, Views: 3}))
	note("upsert new", db.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.Assignments(map[string]any{"views": gorm.Expr("counters.views + ?", 1)}),
	}).Create(&Counter{ID: 21, Views: 1}))
	note("create duplicate", db.Create(&Counter{ID: 21}))
	note("order", db.Create(&Order{ID: 1, Total: 100}))
	var c Counter
	note("first counter", db.First(&c, 20))
	out = append(out, fmt.Sprintf("counter 20 views %d", c.Views))
	var cs []Counter
	note("find counters", db.Order("id").Find(&cs))
	out = append(out, fmt.Sprint(cs))
	return strings.Join(out, "\n")
}

// gormCounters increments counters from 8 goroutines, GORM's two usual
// ways, and returns how many writes it made.
func gormCounters(t *testing.T, db *gorm.DB, perGoroutine int) int {
	t.Helper()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perGoroutine; i++ {
				id := int64(1 + (g*7+i)%10)
				var err error
				if i%2 == 0 {
					err = db.Model(&Counter{ID: id}).UpdateColumn("views", gorm.Expr("views + ?", 1)).Error
				} else {
					err = db.Clauses(clause.OnConflict{
						Columns:   []clause.Column{{Name: "id"}},
						DoUpdates: clause.Assignments(map[string]any{"views": gorm.Expr("counters.views + excluded.views")}),
					}).Create(&Counter{ID: id, Views: 1}).Error
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	return 8 * perGoroutine
}

func testGorm(t *testing.T, backend string) {
	p := newGormPair(t, backend)
	want := gormSteps(t, p.direct)
	if got := gormSteps(t, p.wb); got != want {
		t.Fatalf("through writeback:\n%s\n\ndirectly:\n%s", got, want)
	}
	before, err := writeback.StatsOf(p.rawWB)
	if err != nil {
		t.Fatal(err)
	}
	const per = 250
	gormCounters(t, p.direct, per)
	writes := gormCounters(t, p.wb, per)
	if err := writeback.Flush(context.Background(), p.rawWB); err != nil {
		t.Fatal(err)
	}
	after, err := writeback.StatsOf(p.rawWB)
	if err != nil {
		t.Fatal(err)
	}
	buffered := after.Tables["counters"].Buffered - before.Tables["counters"].Buffered
	rowWrites := after.Tables["counters"].FlushedRows - before.Tables["counters"].FlushedRows
	t.Logf("%d counter writes: %d buffered, %d row writes, %d passed through", writes, buffered, rowWrites,
		after.Tables["counters"].PassedThrough-before.Tables["counters"].PassedThrough)
	if buffered < int64(writes)*9/10 {
		t.Errorf("buffered %d of %d counter writes, want > 90%%", buffered, writes)
	}
	if rowWrites > int64(writes)/100 {
		t.Errorf("%d row writes for %d counter writes, want at most 1%%", rowWrites, writes)
	}
	// A soft-delete model (gorm.DeletedAt): GORM's UPDATEs carry
	// "deleted_at" IS NULL; page 3 is soft-deleted.
	pagesBefore := after.Tables["pages"]
	var pageWrites int
	for _, db := range []*gorm.DB{p.direct, p.wb} {
		var wg sync.WaitGroup
		pageWrites = 0
		for g := 0; g < 8; g++ {
			wg.Add(1)
			pageWrites += 100
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					id := []int64{1, 2, 3, 4}[(g+i)%4]
					if err := db.Model(&Page{ID: id}).UpdateColumn("views", gorm.Expr("views + ?", 1)).Error; err != nil {
						t.Error(err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
	}
	if err := writeback.Flush(context.Background(), p.rawWB); err != nil {
		t.Fatal(err)
	}
	pagesAfter, err := writeback.StatsOf(p.rawWB)
	if err != nil {
		t.Fatal(err)
	}
	pb := pagesAfter.Tables["pages"].Buffered - pagesBefore.Buffered
	t.Logf("%d soft-delete model writes: %d buffered (a quarter match nothing), %d probes, %d barriers", pageWrites, pb,
		pagesAfter.Tables["pages"].Probes-pagesBefore.Probes, pagesAfter.Tables["pages"].Barriers-pagesBefore.Barriers)
	if pb < int64(pageWrites)*3/4*9/10 {
		t.Errorf("buffered %d of the %d soft-delete model writes that match a row, want > 90%%", pb, pageWrites*3/4)
	}
	for _, table := range []string{"counters", "pages", "orders"} {
		if got, want := dump(t, p.rawWB, table), dump(t, p.rawDirect, table); got != want {
			t.Errorf("table %s through writeback:\n%s\n\ndirectly:\n%s", table, got, want)
		}
	}
}

func TestGormSQLite(t *testing.T)   { testGorm(t, "sqlite") }
func TestGormPostgres(t *testing.T) { testGorm(t, "postgres") }
