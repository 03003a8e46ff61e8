package catalog

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/writeback-go/writeback/internal/dialect"
)

// TestSnapshotRoundTrip saves tables and loads them back unchanged (the
// kind included, which KeyValue and friends rely on); a snapshot of another
// kind of database, an older version or none at all loads as none.
func TestSnapshotRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.json")
	if got, _, err := LoadSnapshot(path, dialect.Postgres); got != nil || err != nil {
		t.Fatalf("no snapshot: %v, %v", got, err)
	}
	tables := map[string]*Table{
		"counters": {Schema: "public", Name: "counters", PrimaryKey: []string{"id"}, kind: dialect.Postgres,
			Columns:  []*Column{{Name: "id", Type: "bigint", Class: Integer, NotNull: true}, {Name: "n", Type: "numeric(12,2)", Class: Numeric, Precision: 12, Scale: 2}},
			Uniques:  []*Index{{Name: "u", Columns: []string{"n"}, Definition: "CREATE UNIQUE INDEX u ON counters (n)"}},
			Triggers: []string{"trg"}, Views: []string{"public.v"}},
		"gone": nil,
	}
	if err := SaveSnapshot(path, dialect.Postgres, tables); err != nil {
		t.Fatal(err)
	}
	got, read, err := LoadSnapshot(path, dialect.Postgres)
	if err != nil || read.IsZero() {
		t.Fatalf("load: %v (read %v)", err, read)
	}
	if !reflect.DeepEqual(got, tables) {
		t.Fatalf("loaded %#v, want %#v", got, tables)
	}
	if got, _, err := LoadSnapshot(path, dialect.SQLite); got != nil || err != nil {
		t.Fatalf("another kind: %v, %v", got, err)
	}
	if err := os.WriteFile(path, []byte(`{"version":0,"kind":"postgres","tables":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _, err := LoadSnapshot(path, dialect.Postgres); got != nil || err != nil {
		t.Fatalf("older version: %v, %v", got, err)
	}
	if err := os.WriteFile(path, []byte(`{"version":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadSnapshot(path, dialect.Postgres); err == nil {
		t.Fatal("a torn snapshot loaded without error")
	}
}
