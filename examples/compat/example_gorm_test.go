package compat

import (
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/writeback-go/writeback"
)

// PageView is a GORM model whose table is write-back.
type PageView struct {
	ID    int64 `gorm:"primaryKey;autoIncrement:false"`
	Views int64
}

// Example_gorm counts page views with GORM at its default settings (every
// write in a transaction of its own) over writeback on SQLite: the
// increments are acknowledged from memory and coalesced, and the read by
// key sees them all.
func Example_gorm() {
	dir, err := os.MkdirTemp("", "writeback-gorm")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dsn := "file:" + filepath.Join(dir, "app.db") + "?_journal_mode=WAL&_busy_timeout=5000"
	rules := filepath.Join(dir, "writeback.yaml")
	if err := os.WriteFile(rules, []byte("tables:\n  page_views:\n    mode: back\n    key: [id]\n    max_loss: 1s\n"), 0o600); err != nil {
		log.Fatal(err)
	}

	// Migrations run on the base driver, before writeback reads the catalog.
	raw, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	if err := raw.AutoMigrate(&PageView{}); err != nil {
		log.Fatal(err)
	}
	raw.Create(&PageView{ID: 1})

	// The one line that changes: the *sql.DB GORM runs on.
	sqlDB, err := sql.Open("writeback", "driver=sqlite3 rules="+rules+" dsn="+dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer sqlDB.Close()
	db, err := gorm.Open(sqlite.New(sqlite.Config{Conn: sqlDB}), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}

	for i := 0; i < 1000; i++ {
		db.Model(&PageView{ID: 1}).UpdateColumn("views", gorm.Expr("views + ?", 1))
	}
	var pv PageView
	db.Select("views").Where("id = ?", 1).Take(&pv)
	st, _ := writeback.StatsOf(sqlDB)
	fmt.Println("views:", pv.Views)
	fmt.Println("buffered writes:", st.Buffered)
	// Output:
	// views: 1000
	// buffered writes: 1000
}
