package compat

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/testdb"
)

// TestGormMySQL runs an application's GORM calls (gorm.io/driver/mysql, at
// GORM's default settings) on MariaDB directly and through writeback, and
// requires the same results and final tables; then increments counters
// from 8 goroutines and requires them buffered and coalesced. The DSNs set
// clientFoundRows=true (see the README: RowsAffected on MySQL) and
// parseTime=true (GORM's time columns).
func TestGormMySQL(t *testing.T) {
	const params = "clientFoundRows=true&parseTime=true"
	dsnDirect, dsnWB := testdb.MySQLDatabase(t, "gdirect", params), testdb.MySQLDatabase(t, "gwb", params)
	open := func(name, dsn string) *sql.DB {
		db, err := sql.Open(name, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	dialector := func(db *sql.DB) gorm.Dialector { return mysql.New(mysql.Config{Conn: db}) }
	rawDirect := open("mysql", dsnDirect)
	for _, raw := range []*sql.DB{rawDirect, open("mysql", dsnWB)} {
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
	rawWB := open("writeback", "driver=mysql rules="+rulesFile(t, gormRules)+" dsn="+dsnWB)
	direct, err := gorm.Open(dialector(rawDirect), gormConfig())
	if err != nil {
		t.Fatal(err)
	}
	wb, err := gorm.Open(dialector(rawWB), gormConfig())
	if err != nil {
		t.Fatal(err)
	}
	steps := func(db *gorm.DB) string {
		var out []string
		note := func(what string, tx *gorm.DB) {
			out = append(out, fmt.Sprintf("%s: rows %d err %v", what, tx.RowsAffected, tx.Error != nil))
		}
		for i := int64(1); i <= 3; i++ {
			note("create page", db.Create(&Page{ID: i, Title: fmt.Sprint("page ", i)}))
		}
		note("update column", db.Model(&Page{ID: 1}).UpdateColumn("views", gorm.Expr("views + ?", 1)))
		note("update column missing", db.Model(&Page{ID: 99}).UpdateColumn("views", gorm.Expr("views + ?", 1)))
		note("updates", db.Model(&Page{ID: 2}).Updates(map[string]any{"title": "renamed"}))
		note("updates, same value", db.Model(&Page{ID: 2}).Updates(map[string]any{"title": "renamed"}))
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
		note("create duplicate", db.Create(&Counter{ID: 20}))
		note("order", db.Create(&Order{ID: 1, Total: 100}))
		var cs []Counter
		note("find counters", db.Order("id").Find(&cs))
		out = append(out, fmt.Sprint(cs))
		return strings.Join(out, "\n")
	}
	want := steps(direct)
	if got := steps(wb); got != want {
		t.Fatalf("through writeback:\n%s\n\ndirectly:\n%s", got, want)
	}
	before, err := writeback.StatsOf(rawWB)
	if err != nil {
		t.Fatal(err)
	}
	if pages := before.Tables["pages"]; pages.Buffered == 0 {
		t.Errorf("no write of GORM's steps to pages was buffered: %+v", pages)
	}
	const goroutines, per = 8, 250
	for _, db := range []*gorm.DB{direct, wb} {
		var wg sync.WaitGroup
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < per; i++ {
					id := int64(1 + (g*7+i)%10)
					if err := db.Model(&Counter{ID: id}).UpdateColumn("views", gorm.Expr("views + ?", 1)).Error; err != nil {
						t.Error(err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
	}
	if err := writeback.Flush(context.Background(), rawWB); err != nil {
		t.Fatal(err)
	}
	after, err := writeback.StatsOf(rawWB)
	if err != nil {
		t.Fatal(err)
	}
	writes := int64(goroutines * per)
	buffered := after.Tables["counters"].Buffered - before.Tables["counters"].Buffered
	rowWrites := after.Tables["counters"].FlushedRows - before.Tables["counters"].FlushedRows
	t.Logf("%d counter writes: %d buffered, %d row writes", writes, buffered, rowWrites)
	if buffered != writes {
		t.Errorf("buffered %d of %d counter writes, want all", buffered, writes)
	}
	if rowWrites > writes/100 {
		t.Errorf("%d row writes for %d counter writes, want at most 1%%", rowWrites, writes)
	}
	for _, table := range []string{"counters", "pages", "orders"} {
		if got, want := dump(t, rawWB, table), dump(t, rawDirect, table); got != want {
			t.Errorf("table %s through writeback:\n%s\ndirectly:\n%s", table, got, want)
		}
	}
}
