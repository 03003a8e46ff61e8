package compat

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/writeback-go/writeback"
	"gorm.io/gorm"
)

// gormTxSteps runs transactions of several writes and creates of a model
// with GORM's default id, and returns what the application saw.
func gormTxSteps(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var out []string
	note := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	v := &Visit{ID: 1, Views: 1}
	res := db.Create(v)
	note("create visit: id %d rows %d err %v", v.ID, res.RowsAffected, res.Error)
	// Several writes in one transaction: buffered together at COMMIT.
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Counter{ID: 1}).UpdateColumn("views", gorm.Expr("views + ?", 2)).Error; err != nil {
			return err
		}
		if err := tx.Model(&Counter{ID: 2}).UpdateColumn("views", gorm.Expr("views - ?", 2)).Error; err != nil {
			return err
		}
		return tx.Create(&Visit{ID: 2, Views: 7}).Error
	})
	note("transfer: %v", err)
	// Rolled back: none of it.
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Counter{ID: 3}).UpdateColumn("views", gorm.Expr("views + ?", 100)).Error; err != nil {
			return err
		}
		if err := tx.Create(&Visit{ID: 3, Views: 1}).Error; err != nil {
			return err
		}
		return errors.New("changed my mind")
	})
	note("rolled back: %v", err)
	// A duplicate id inside a transaction: the error at the statement.
	err = db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Counter{ID: 4}).UpdateColumn("views", gorm.Expr("views + ?", 1)).Error; err != nil {
			return err
		}
		return tx.Create(&Visit{ID: 1}).Error
	})
	note("duplicate: %v", err != nil)
	var got []Visit
	note("find visits: %v", db.Order("id").Find(&got).Error)
	for _, g := range got {
		note("visit %d views %d", g.ID, g.Views)
	}
	return strings.Join(out, "\n")
}

func testGormTx(t *testing.T, backend string) {
	p := newGormPair(t, backend)
	want := gormTxSteps(t, p.direct)
	before, err := writeback.StatsOf(p.rawWB)
	if err != nil {
		t.Fatal(err)
	}
	if got := gormTxSteps(t, p.wb); got != want {
		t.Fatalf("through writeback:\n%s\n\ndirectly:\n%s", got, want)
	}
	after, err := writeback.StatsOf(p.rawWB)
	if err != nil {
		t.Fatal(err)
	}
	// The create of visit 1, and the three writes of the transfer.
	buffered := after.Buffered - before.Buffered
	if buffered < 4 {
		t.Errorf("buffered %d writes, want at least 4 (a create with RETURNING, a transaction of three writes)", buffered)
	}
	if err := writeback.Flush(t.Context(), p.rawWB); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"counters", "visits"} {
		if got, want := dump(t, p.rawWB, table), dump(t, p.rawDirect, table); got != want {
			t.Errorf("table %s through writeback:\n%s\n\ndirectly:\n%s", table, got, want)
		}
	}
}

func TestGormTxSQLite(t *testing.T)   { testGormTx(t, "sqlite") }
func TestGormTxPostgres(t *testing.T) { testGormTx(t, "postgres") }
