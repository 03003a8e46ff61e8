package writeback

import (
	"context"
	"database/sql"
	"encoding/json"
	"expvar"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var expvarRuns atomic.Int64

// readExpvar decodes the published variable name.
func readExpvar(t *testing.T, name string) map[string]any {
	t.Helper()
	v := expvar.Get(name)
	if v == nil {
		t.Fatalf("expvar %q not published", name)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(v.String()), &m); err != nil {
		t.Fatalf("expvar %q: %v in %s", name, err, v.String())
	}
	return m
}

func TestPublishExpvar(t *testing.T) {
	base := sqliteDSN(t, "expvar")
	ddb, err := sql.Open("sqlite3", base)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	execAll(t, ddb, "CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counters VALUES (1, 0), (2, 0), (3, 0)")
	wb, _ := openWritebackWith(t, "sqlite3", base, "tables:\n  counters: {mode: back, key: [id], max_loss: 1h}\n")
	for i := range 10 {
		if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", 1+i%3); err != nil {
			t.Fatal(err)
		}
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	// expvar's names are the process's: a fresh one for each run (-count).
	name := fmt.Sprintf("writeback_test_counters_%d", expvarRuns.Add(1))
	if err := PublishExpvar(name, wb); err != nil {
		t.Fatal(err)
	}

	m := readExpvar(t, name)
	st, err := StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	tables, _ := m["tables"].(map[string]any)
	counters, _ := tables["counters"].(map[string]any)
	if len(tables) != 1 || counters == nil {
		t.Fatalf("tables = %v, want counters alone", m["tables"])
	}
	for _, c := range []struct {
		key  string
		got  any
		want float64
	}{
		{"buffered", m["buffered"], 10},
		{"coalesced", m["coalesced"], 7},
		{"flushed_rows", m["flushed_rows"], 3},
		{"flushes", m["flushes"], float64(st.Flushes)},
		{"dirty", m["dirty"], 0},
		{"oldest_age_seconds", m["oldest_age_seconds"], 0},
		{"retries", m["retries"], 0},
		{"tables.counters.buffered", counters["buffered"], 10},
		{"tables.counters.flushed_rows", counters["flushed_rows"], 3},
		{"tables.counters.max_loss_seconds", counters["max_loss_seconds"], 3600},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	if st.Flushes == 0 {
		t.Error("StatsOf counts no flush")
	}
	for _, k := range []string{"last_error", "last_error_at", "failing_since", "overdue_since"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}
	if _, ok := m["max_loss_seconds"]; ok {
		t.Error("the sums carry max_loss_seconds, a per-table figure")
	}

	// The variable is read afresh: a buffered write shows, with its age.
	wrote := time.Now()
	if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	m = readExpvar(t, name)
	age, _ := m["oldest_age_seconds"].(float64)
	if m["buffered"] != 11.0 || m["dirty"] != 1.0 || age <= 0 || age > time.Since(wrote).Seconds() {
		t.Errorf("after one more write: buffered %v, dirty %v, oldest age %v s (written %v ago)", m["buffered"], m["dirty"], m["oldest_age_seconds"], time.Since(wrote))
	}

	// A name taken, by this call or anyone, is an error, not a panic.
	if err := PublishExpvar(name, wb); err == nil || !strings.Contains(err.Error(), name) {
		t.Errorf("duplicate name: %v, want an error naming it", err)
	}
	if err := PublishExpvar("memstats", wb); err == nil {
		t.Error("expvar's own memstats name accepted")
	}
	if err := PublishExpvar("", wb); err == nil {
		t.Error("empty name accepted")
	}
	if err := PublishExpvar("writeback_test_plain", ddb); err == nil || !strings.Contains(err.Error(), "not writeback") {
		t.Errorf("plain SQLite *sql.DB: %v, want an error", err)
	}
	if err := PublishExpvar("writeback_test_nil", nil); err == nil {
		t.Error("nil *sql.DB accepted")
	}
	for _, n := range []string{"writeback_test_plain", "writeback_test_nil"} {
		if expvar.Get(n) != nil {
			t.Errorf("%s published despite the error", n)
		}
	}
}
