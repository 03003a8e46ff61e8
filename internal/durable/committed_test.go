package durable

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// TestCommittedByCheckpoint: when the database cannot tell whether a flush
// transaction committed, the checkpoints it wrote decide: all of its rows
// covered is committed, none is not, anything else stays ambiguous.
func TestCommittedByCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	set := dirtyset.NewShared(1 << 20).NewTable(dirtyset.Config{Name: "t", MaxDirty: 100, MaxLoss: 1e9})
	j, err := Open(filepath.Join(dir, "journal"), dialect.SQLite, []*dirtyset.Table{set}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Abandon()
	names := &dirtyset.Names{Table: sqlparse.Ident{Norm: "t", Raw: "t"}, KeyCols: []sqlparse.Ident{{Norm: "id", Raw: "id"}}, Style: sqlparse.ParamQuestion}
	for _, id := range []int64{1, 2} {
		ch := []dirtyset.Change{{Col: sqlparse.Ident{Norm: "n", Raw: "n"}, Delta: true, Val: int64(1)}}
		rec, err := EncodeUpdate(nil, "t", names, []any{id}, ch)
		if err != nil {
			t.Fatal(err)
		}
		if out, _ := set.Update([]any{id}, ch, names, j.NewWrite(rec), false); out != dirtyset.Buffered {
			t.Fatalf("not buffered: %v", out)
		}
	}
	rows := set.Take(true).Rows
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if committed, err := j.Committed(ctx, db, "t", rows); committed || err != nil {
		t.Fatalf("before any checkpoint: %v %v, want not committed", committed, err)
	}
	// The partial checkpoint of the first row only: ambiguous.
	apply := func(rs []*dirtyset.Row) {
		t.Helper()
		cp := j.CheckpointTx(Mark{Table: "t"}, rs)
		if err := cp(func(q string, args ...any) error { _, err := db.Exec(q, args...); return err }); err != nil {
			t.Fatal(err)
		}
	}
	apply(rows[:1])
	if _, err := j.Committed(ctx, db, "t", rows); !errors.Is(err, dialect.ErrCommitAmbiguous) {
		t.Fatalf("one of two rows covered: %v, want ErrCommitAmbiguous", err)
	}
	apply(rows)
	if committed, err := j.Committed(ctx, db, "t", rows); !committed || err != nil {
		t.Fatalf("every row covered: %v %v, want committed", committed, err)
	}
	noRecords := []*dirtyset.Row{{}}
	if _, err := j.Committed(ctx, db, "t", noRecords); !errors.Is(err, dialect.ErrCommitAmbiguous) {
		t.Fatalf("rows without journal records: %v, want ErrCommitAmbiguous", err)
	}
}
