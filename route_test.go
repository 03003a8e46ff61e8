package writeback

import (
	"strings"
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

// TestConnRecentStatements: a connection's own classification cache gives
// what the connector's shared cache gives, for the same text in another
// string too, past its few slots, and not once the catalog was read again.
func TestConnRecentStatements(t *testing.T) {
	cn, c := sqliteDriverConn(t, "recent", "tables:\n  counters:\n    mode: back\n    key: [id]\n",
		"CREATE TABLE counters (id INTEGER PRIMARY KEY, views INTEGER NOT NULL)")
	const q = "UPDATE counters SET views = views + 1 WHERE id = ?"
	first := c.info(q)
	if first.target == nil {
		t.Fatalf("%q is not classified as a buffered write", q)
	}
	if got := c.info(q); got != first {
		t.Fatal("the second lookup built a new classification")
	}
	if got := c.info(strings.Clone(q)); got != first {
		t.Fatal("the same text in another string got another classification")
	}
	others := []string{"SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4", "SELECT 5"}
	for _, o := range others {
		if got, want := c.info(o), cn.info(o); got != want {
			t.Fatalf("%q: the connection's classification differs from the connector's", o)
		}
	}
	if got := c.info(q); got != cn.info(q) {
		t.Fatal("after the slots were reused: the connection's classification differs from the connector's")
	}
	cn.resetStatementCache()
	again := c.info(q)
	if again == first {
		t.Fatal("after the catalog was read again the connection kept the old classification")
	}
	if again != cn.info(q) {
		t.Fatal("after the catalog was read again: the connection's classification differs from the connector's")
	}
}
