package writeback

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParseRules checks that ParseRules never panics, that every error is a
// *RulesError with a sane line, and that accepted rules satisfy Validate.
func FuzzParseRules(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "rules", "example.yaml")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("tables:\n  t:\n    mode: back\n    key: [a, '\"B\"']\n    max_loss: 1s\n"))
	f.Add([]byte("tables: &a\n  <<: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRules(data, "fuzz/rules.yaml")
		if err != nil {
			var re *RulesError
			if !errors.As(err, &re) {
				t.Fatalf("error %T %v is not a *RulesError", err, err)
			}
			if re.Line < 0 {
				t.Fatalf("negative line in %v", err)
			}
			var n yaml.Node
			if yaml.Unmarshal(data, &n) == nil && re.Msg == "" {
				t.Fatalf("empty message for YAML input %q", data)
			}
			return
		}
		if r.File != "fuzz/rules.yaml" || r.Tables == nil {
			t.Fatalf("bad result %+v", r)
		}
		for name, tr := range r.Tables {
			if tr.Name != name || tr.MaxLoss <= 0 || tr.Batch <= 0 || tr.Batch > maxBatch || tr.MaxDirty <= 0 || tr.Line <= 0 {
				t.Fatalf("bad rule %q: %+v", name, *tr)
			}
			if tr.Mode == ModeBack && len(tr.Key) == 0 {
				t.Fatalf("back table %q without key", name)
			}
			if tr.Ack == AckDisk && r.Journal == nil {
				t.Fatalf("table %q: ack disk without journal", name)
			}
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed rules do not validate: %v", err)
		}
	})
}
