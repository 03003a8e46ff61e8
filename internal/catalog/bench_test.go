package catalog

import (
	"context"
	"fmt"
	"testing"

	"github.com/writeback-go/writeback/internal/dialect"
)

// BenchmarkReadPostgres20 reads 20 tables, each with a primary key, a unique
// column, a foreign key, a trigger and a view: four queries whatever the
// number of tables.
//
//	go test -run '^$' -bench ReadPostgres20 ./internal/catalog
func BenchmarkReadPostgres20(b *testing.B) {
	db, s := pgSchema(b)
	pgExec(b, db, sub(s,
		`CREATE TABLE S.root (id int PRIMARY KEY)`,
		`CREATE FUNCTION S.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`)...)
	names := make([]string, 20)
	prev := "root"
	for i := range names {
		t := fmt.Sprintf("t%02d", i)
		pgExec(b, db, sub(s,
			`CREATE TABLE S.`+t+` (id int PRIMARY KEY, code text NOT NULL UNIQUE, n int DEFAULT 0,
				up int REFERENCES S.`+prev+`)`,
			`CREATE TRIGGER `+t+`_touch BEFORE UPDATE ON S.`+t+` FOR EACH ROW EXECUTE FUNCTION S.touch()`,
			`CREATE VIEW S.`+t+`_v AS SELECT id, n FROM S.`+t)...)
		names[i] = s + "." + t
		prev = t
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := Read(ctx, db, dialect.Postgres, names)
		if err != nil {
			b.Fatal(err)
		}
		if t := got[names[5]]; t == nil || len(t.Uniques) != 1 || len(t.Triggers) != 1 ||
			len(t.Views) != 1 || len(t.ForeignKeysOut) != 1 || len(t.ForeignKeysIn) != 1 {
			b.Fatalf("unexpected table: %+v", t)
		}
	}
}
