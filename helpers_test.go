package writeback

import (
	"os"
	"path/filepath"
	"testing"
)

// writeRulesFile writes a rules file into a fresh temporary folder and
// returns its path.
func writeRulesFile(t testing.TB, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "writeback.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustRules parses rules from text or fails the test.
func mustRules(t testing.TB, yaml string) *Rules {
	t.Helper()
	r, err := ParseRules([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return r
}
