package writeback

import (
	"testing"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

func TestFamilyAccepts(t *testing.T) {
	cases := []struct {
		q        string
		fam      sqlFamily
		sqlite   bool
		accepted bool
	}{
		{"UPDATE t SET a = $1 WHERE k = $2", familyPostgres, false, true},
		{"UPDATE t SET a = ? WHERE k = ?", familyPostgres, false, false},   // PostgreSQL has no ?
		{"UPDATE t SET a = :a WHERE k = :k", familyPostgres, false, false}, // nor :name
		{`UPDATE "T" SET "A" = $1 WHERE k = $2`, familyPostgres, false, true},
		{"UPDATE `t` SET a = $1 WHERE k = $2", familyPostgres, false, false},
		{"UPDATE [t] SET a = ? WHERE k = ?", familySQLite, true, true},
		{"UPDATE `t` SET a = ? WHERE k = ?", familyGeneric, false, true},
		{`UPDATE t SET a = ? WHERE "k" = ?`, familyGeneric, false, false}, // MySQL: "k" is a string
		{`INSERT INTO t ("k", a) VALUES (?, ?)`, familySQLite, true, true},
	}
	for _, c := range cases {
		cl := sqlparse.Classify(c.q, c.sqlite)
		if cl.Kind == sqlparse.Other {
			t.Fatalf("%s: not classified as bufferable", c.q)
		}
		if got := c.fam.accepts(cl); got != c.accepted {
			t.Errorf("%s (family %d): accepts = %v, want %v", c.q, c.fam, got, c.accepted)
		}
	}
}

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
