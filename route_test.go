package writeback

import (
	"testing"
)

func TestIsPlainSelect(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                              true,
		"  select * from t":                     true,
		"/* c */ (SELECT 1)":                    true,
		"-- note\nSELECT 1":                     true,
		"SELECTED":                              false,
		"WITH x AS (UPDATE t SET a=1) SELECT 1": false,
		"UPDATE t SET a = 1":                    false,
		"/* unterminated":                       false,
	} {
		if got := isPlainSelect(q); got != want {
			t.Errorf("isPlainSelect(%q) = %v, want %v", q, got, want)
		}
	}
}
