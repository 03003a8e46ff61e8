package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEnumStrings(t *testing.T) {
	tests := []struct {
		v    fmt.Stringer
		want string
	}{
		{ModeThrough, "through"},
		{ModeBack, "back"},
		{Mode(7), "Mode(7)"},

		{PriorityHigh, "high"},
		{PriorityNormal, "normal"},
		{PriorityLow, "low"},
		{Priority(7), "Priority(7)"},

		{ReadsFlush, "flush"},
		{ReadsStale, "stale"},
		{ReadPolicy(7), "ReadPolicy(7)"},

		{AckMemory, "memory"},
		{AckDisk, "disk"},
		{AckThrough, "through"},
		{AckLevel(7), "AckLevel(7)"},

		{FullBlock, "block"},
		{FullThrough, "through"},
		{FullError, "error"},
		{OnFull(255), "OnFull(255)"},

		{FsyncEverysec, "everysec"},
		{FsyncAlways, "always"},
		{FsyncNo, "no"},
		{FsyncPolicy(7), "FsyncPolicy(7)"},
	}
	for _, tt := range tests {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%T(%d).String() = %q, want %q", tt.v, tt.v, got, tt.want)
		}
		if got := fmt.Sprint(tt.v); got != tt.want {
			t.Errorf("fmt.Sprint(%T(%d)) = %q, want %q", tt.v, tt.v, got, tt.want)
		}
	}
}

// TestEnumStringsParse checks that every name String returns for a table or
// journal field is the spelling ParseRules reads back to the same value.
func TestEnumStringsParse(t *testing.T) {
	for _, m := range []Mode{ModeThrough, ModeBack} {
		for _, p := range []Priority{PriorityNormal, PriorityLow, PriorityHigh} {
			for _, rp := range []ReadPolicy{ReadsFlush, ReadsStale} {
				for _, a := range []AckLevel{AckMemory, AckDisk} {
					for _, f := range []OnFull{FullBlock, FullThrough, FullError} {
						for _, fs := range []FsyncPolicy{FsyncEverysec, FsyncAlways, FsyncNo} {
							yaml := fmt.Sprintf("journal: {path: j, fsync: %s}\ntables:\n  t: {mode: %s, key: [id], priority: %s, reads: %s, ack: %s, on_full: %s}\n", fs, m, p, rp, a, f)
							r, err := ParseRules([]byte(yaml), "")
							if err != nil {
								t.Fatalf("%s: %v", yaml, err)
							}
							tr := r.Tables["t"]
							if tr.Mode != m || tr.Priority != p || tr.Reads != rp || tr.Ack != a || tr.OnFull != f || r.Journal.Fsync != fs {
								t.Fatalf("%s: parsed %+v, journal %+v", yaml, *tr, *r.Journal)
							}
						}
					}
				}
			}
		}
	}
}

// handBuiltRules returns rules as a program builds them in code: table names
// as written, no Name, and zero MaxLoss, Batch and MaxDirty (the defaults).
func handBuiltRules() *Rules {
	return &Rules{
		Journal: &JournalRule{Path: "j"},
		Tables: map[string]*TableRule{
			"Page_Views": {Mode: ModeBack, Key: []string{"page_id"}},
			`s."T"`:      {Mode: ModeBack, Key: []string{"id"}, MaxLoss: time.Minute, Batch: 3, MaxDirty: 4, Ack: AckDisk},
			"orders":     {Name: "orders"},
			`"Exact"`:    {Name: "Exact", Priority: PriorityHigh},
			"through":    {Ack: AckThrough, OnFull: FullError, Reads: ReadsStale},
		},
	}
}

// TestValidateDoesNotModify checks that Validate, whether it accepts the
// rules or not, leaves them exactly as they were: no defaults filled in, no
// names set, no re-keying.
func TestValidateDoesNotModify(t *testing.T) {
	tests := []struct {
		name  string
		build func() *Rules
		valid bool
	}{
		{"hand-built", handBuiltRules, true},
		{"empty", func() *Rules { return &Rules{} }, true},
		{"parsed", func() *Rules {
			return mustRules(t, "journal: {path: j}\ntables:\n  '\"Foo\"': {mode: back, key: '\"K\"', ack: disk}\n  bar: {mode: through}\n")
		}, true},
		{"invalid", func() *Rules {
			r := handBuiltRules()
			r.Tables["zz"] = &TableRule{Mode: ModeBack} // no key
			return r
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.build()
			tables, journal := r.Tables, r.Journal
			rules := make(map[string]*TableRule, len(r.Tables))
			for k, v := range r.Tables {
				rules[k] = v
			}
			err := r.Validate()
			if (err == nil) != tt.valid {
				t.Fatalf("Validate() = %v, want valid %v", err, tt.valid)
			}
			if want := tt.build(); !reflect.DeepEqual(r, want) {
				t.Errorf("Validate changed the rules:\n got %#v\nwant %#v", r, want)
			}
			if r.Journal != journal || reflect.ValueOf(r.Tables).Pointer() != reflect.ValueOf(tables).Pointer() {
				t.Error("Validate replaced the journal or the tables map")
			}
			for k, v := range rules {
				if r.Tables[k] != v {
					t.Errorf("Validate replaced the rule of %s", k)
				}
			}
		})
	}
}

// TestNewConnectorHandBuiltRules checks that rules built in code with zero
// fields work with NewConnector as they always have (names normalized,
// defaults used) while the caller's Rules value is left unchanged.
func TestNewConnectorHandBuiltRules(t *testing.T) {
	dsn := sqliteDSN(t, "hand")
	direct, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL); CREATE TABLE orders (id INTEGER PRIMARY KEY)")
	base, err := baseConnector("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	rules := &Rules{Tables: map[string]*TableRule{
		"Page_Views": {Mode: ModeBack, Key: []string{"page_id"}},
		"orders":     {},
	}}
	want := &Rules{Tables: map[string]*TableRule{
		"Page_Views": {Mode: ModeBack, Key: []string{"page_id"}},
		"orders":     {},
	}}
	c, err := NewConnector(base, rules)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if !reflect.DeepEqual(rules, want) {
		t.Errorf("NewConnector changed the rules: %#v", rules)
	}
	st := c.buf.tables["page_views"]
	if st == nil || len(c.buf.tables) != 1 {
		t.Fatalf("back tables = %v, want page_views", c.buf.tables)
	}
	if r := st.rule; r.Name != "page_views" || r.MaxLoss != DefaultMaxLoss || r.Batch != DefaultBatch || r.MaxDirty != DefaultMaxDirty {
		t.Errorf("connector's rule = %+v, want defaults under the normalized name", *r)
	}
	if c.rules.Tables["orders"] == nil || c.rules.Tables["orders"].Name != "orders" {
		t.Errorf("connector's rules = %v", c.rules.Tables)
	}
	// Changing the caller's rules later does not reach the connector.
	rules.Tables["Page_Views"].MaxLoss = time.Nanosecond
	rules.Tables["Page_Views"].Key[0] = "other"
	if st.rule.MaxLoss != DefaultMaxLoss || st.rule.Key[0] != "page_id" {
		t.Errorf("the connector shares its rule with the caller: %+v", *st.rule)
	}

	mustExec(t, db, "INSERT INTO page_views (page_id, views) VALUES (1, 0)")
	mustExec(t, db, "UPDATE page_views SET views = views + 1 WHERE page_id = 1")
	if s := c.Stats(); s.Buffered != 2 || s.Coalesced != 1 {
		t.Errorf("stats = %+v, want 2 writes buffered, 1 coalesced", s)
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var views int
	if err := db.QueryRow("SELECT views FROM page_views WHERE page_id = 1").Scan(&views); err != nil || views != 1 {
		t.Errorf("views = %d, %v; want 1", views, err)
	}
}

func TestRulesAllow(t *testing.T) {
	r := mustRules(t, `
tables:
  counters:
    mode: back
    key: [id]
    allow: [unique, triggers]
`)
	if got := r.Tables["counters"].Allow; got != AllowUnique|AllowTriggers {
		t.Fatalf("Allow = %s, want [triggers unique]", got)
	}
	if s := (AllowUnique | AllowTriggers).String(); s != "[triggers unique]" {
		t.Errorf("String() = %q", s)
	}
	for _, c := range []struct{ yaml, want string }{
		{"    allow: [speed]", `test.yaml:6: tables.counters.allow: "speed" is not one of triggers, foreign_keys, unique, check, defaults`},
		{"    allow: [check, check]", "test.yaml:6: tables.counters.allow: check is listed twice"},
		{"    allow: check", "test.yaml:6: tables.counters.allow: want a list of triggers, foreign_keys, unique, check, defaults, not \"check\""},
	} {
		_, err := ParseRules([]byte("\ntables:\n  counters:\n    mode: back\n    key: [id]\n"+c.yaml+"\n"), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.yaml, err, c.want)
		}
	}
}
