package compat

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/writeback-go/writeback"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

// LabeledCounter is a GORM model of the counters table whose key the
// application sets itself.
type LabeledCounter struct {
	ID    int64 `gorm:"primaryKey;autoIncrement:false"`
	Views int64 `gorm:"not null;default:0"`
	Label string
}

// TableName is the table GORM maps the model to.
func (LabeledCounter) TableName() string { return "counters" }

const upsertRules = `
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 1h
`

// gormUpserts runs GORM's upsert forms through writeback and checks that
// they were buffered and that the table ends as they say.
func gormUpserts(t *testing.T, dia func(*sql.DB) gorm.Dialector, wb *sql.DB) {
	// GORM wraps each Create in a transaction unless told not to; writes
	// inside a transaction go to the database.
	db, err := gorm.Open(dia(wb), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&LabeledCounter{}); err != nil {
		t.Fatal(err)
	}
	// An expression qualified by the table: GORM writes it as given.
	incr := clause.OnConflict{Columns: []clause.Column{{Name: "id"}},
		DoUpdates: clause.Assignments(map[string]any{"views": gorm.Expr(`"counters"."views" + ?`, 1)})}
	all := clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, UpdateAll: true}
	dry := db.Session(&gorm.Session{DryRun: true})
	for _, oc := range []clause.OnConflict{incr, all} {
		st := dry.Clauses(oc).Create(&LabeledCounter{ID: 1, Views: 1, Label: "x"}).Statement
		t.Logf("GORM writes: %s", st.SQL.String())
	}
	before, err := writeback.StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := db.Clauses(incr).Create(&LabeledCounter{ID: int64(i % 3), Views: 1, Label: "a"}).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Clauses(all).Create(&LabeledCounter{ID: 2, Views: 50, Label: "all"}).Error; err != nil {
		t.Fatal(err)
	}
	after, err := writeback.StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Buffered - before.Buffered; got != 11 {
		t.Errorf("%d of GORM's 11 upserts buffered (passed through %d)", got, after.PassedThrough-before.PassedThrough)
	}
	if err := writeback.Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	var rows []LabeledCounter
	if err := db.Order("id").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(rows), "[{0 4 a} {1 3 a} {2 50 all}]"; got != want {
		t.Errorf("counters %s, want %s", got, want)
	}
}

func openWriteback(t *testing.T, driver, dsn string) *sql.DB {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(upsertRules), 0o600); err != nil {
		t.Fatal(err)
	}
	wb, err := sql.Open("writeback", "driver="+driver+" rules="+path+" checks=deferred dsn="+dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wb.Close() })
	return wb
}

func TestGORMUpsertSQLite(t *testing.T) {
	wb := openWriteback(t, "sqlite3", "file:"+filepath.Join(t.TempDir(), "g.db")+"?_journal_mode=WAL&_busy_timeout=5000")
	gormUpserts(t, func(db *sql.DB) gorm.Dialector { return sqlite.New(sqlite.Config{Conn: db}) }, wb)
}

func TestGORMUpsertPostgres(t *testing.T) {
	base := os.Getenv("WRITEBACK_TEST_POSTGRES")
	if base == "" {
		t.Skip("WRITEBACK_TEST_POSTGRES not set")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := fmt.Sprintf("wb_gorm_%d", os.Getpid())
	if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE; CREATE SCHEMA " + schema); err != nil {
		t.Skip("PostgreSQL unreachable: ", err)
	}
	defer admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	wb := openWriteback(t, "pgx", base+" search_path="+schema)
	gormUpserts(t, func(db *sql.DB) gorm.Dialector { return postgres.New(postgres.Config{Conn: db}) }, wb)
}
