package catalog

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
)

// A snapshot is the last catalog read, kept beside a journal so that a
// connector can open, and buffer writes exactly as before, while the
// database is down. It is replaced whole (written aside, then renamed)
// after every read.

// snapshotVersion changes when Table's meaning changes; an older snapshot
// is then ignored, as if there were none.
const snapshotVersion = 1

type snapshot struct {
	Version int               `json:"version"`
	Kind    string            `json:"kind"`
	Read    time.Time         `json:"read"`
	Tables  map[string]*Table `json:"tables"` // by rule name; null: no such table
}

// SaveSnapshot writes tables, read from a database of kind, to path.
func SaveSnapshot(path string, kind dialect.Kind, tables map[string]*Table) error {
	b, err := json.Marshal(snapshot{Version: snapshotVersion, Kind: kind.String(), Read: time.Now().UTC(), Tables: tables})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}

// LoadSnapshot reads the snapshot at path, written for a database of kind.
// It returns nil tables and no error when there is none (or it is of an
// older version or another kind of database); read is when it was taken.
func LoadSnapshot(path string, kind dialect.Kind) (tables map[string]*Table, read time.Time, err error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, time.Time{}, fmt.Errorf("catalog snapshot %s: %w", path, err)
	}
	if s.Version != snapshotVersion || s.Kind != kind.String() || s.Tables == nil {
		return nil, time.Time{}, nil
	}
	for _, t := range s.Tables {
		if t != nil {
			t.kind = kind
		}
	}
	return s.Tables, s.Read, nil
}
