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
	"gorm.io/gorm/clause"

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

// TestGormUpsertMySQL runs GORM's upserts on MySQL (gorm.io/driver/mysql
// writes INSERT ... ON DUPLICATE KEY UPDATE) directly and through writeback
// and requires the same RowsAffected and final table; the increment form is
// buffered, and in GORM's default one-statement transactions too.
func TestGormUpsertMySQL(t *testing.T) {
	const params = "clientFoundRows=true&parseTime=true"
	dsnDirect, dsnWB := testdb.MySQLDatabase(t, "gudirect", params), testdb.MySQLDatabase(t, "guwb", params)
	rawDirect, err := sql.Open("mysql", dsnDirect)
	if err != nil {
		t.Fatal(err)
	}
	defer rawDirect.Close()
	for _, dsn := range []string{dsnDirect, dsnWB} {
		raw, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec("CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL DEFAULT 0, label VARCHAR(20))"); err != nil {
			t.Fatal(err)
		}
		raw.Close()
	}
	rawWB, err := sql.Open("writeback", "driver=mysql rules="+rulesFile(t, upsertRules)+" dsn="+dsnWB)
	if err != nil {
		t.Fatal(err)
	}
	defer rawWB.Close()
	dialector := func(db *sql.DB) gorm.Dialector { return mysql.New(mysql.Config{Conn: db}) }
	direct, err := gorm.Open(dialector(rawDirect), gormConfig())
	if err != nil {
		t.Fatal(err)
	}
	wb, err := gorm.Open(dialector(rawWB), gormConfig())
	if err != nil {
		t.Fatal(err)
	}
	incr := clause.OnConflict{DoUpdates: clause.Assignments(map[string]any{"views": gorm.Expr("views + VALUES(views)")})}
	all := clause.OnConflict{UpdateAll: true}
	nothing := clause.OnConflict{DoNothing: true}
	dry := wb.Session(&gorm.Session{DryRun: true})
	for _, oc := range []clause.OnConflict{incr, all, nothing} {
		t.Logf("GORM writes: %s", dry.Clauses(oc).Create(&LabeledCounter{ID: 1, Views: 1, Label: "x"}).Statement.SQL.String())
	}
	before, err := writeback.StatsOf(rawWB)
	if err != nil {
		t.Fatal(err)
	}
	run := func(oc clause.OnConflict, c LabeledCounter) {
		t.Helper()
		var n [2]int64
		for i, db := range []*gorm.DB{direct, wb} {
			row := c
			res := db.Clauses(oc).Create(&row)
			if res.Error != nil {
				t.Fatal(res.Error)
			}
			n[i] = res.RowsAffected
		}
		if n[0] != n[1] {
			t.Fatalf("%+v %+v: RowsAffected %d through writeback, %d directly", oc, c, n[1], n[0])
		}
	}
	for i := 0; i < 12; i++ {
		run(incr, LabeledCounter{ID: int64(i % 4), Views: int64(1 + i%2), Label: "a"})
	}
	after, err := writeback.StatsOf(rawWB)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Buffered - before.Buffered; got != 12 {
		t.Errorf("%d of GORM's 12 increments buffered (passed through %d)", got, after.PassedThrough-before.PassedThrough)
	}
	run(all, LabeledCounter{ID: 2, Views: 50, Label: "all"})
	run(all, LabeledCounter{ID: 9, Views: 5, Label: "new"})
	run(nothing, LabeledCounter{ID: 3, Views: 7, Label: "no"})
	run(nothing, LabeledCounter{ID: 10, Views: 7, Label: "yes"})
	if err := writeback.Flush(context.Background(), rawWB); err != nil {
		t.Fatal(err)
	}
	dump := func(db *sql.DB) string {
		rows, err := db.Query("SELECT id, views, COALESCE(label, '-') FROM counters ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, views int64
			var label string
			if err := rows.Scan(&id, &views, &label); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%d=%d/%s", id, views, label))
		}
		return strings.Join(out, " ")
	}
	if got, want := dump(rawWB), dump(rawDirect); got != want {
		t.Fatalf("through writeback %s, directly %s", got, want)
	}
}
