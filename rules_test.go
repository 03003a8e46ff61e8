package writeback

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mustParseRules parses src as file and fails the test on error.
func mustParseRules(t *testing.T, src, file string) *Rules {
	t.Helper()
	r, err := ParseRules([]byte(src), file)
	if err != nil {
		t.Fatalf("ParseRules: %v\n%s", err, src)
	}
	return r
}

func TestParseRulesFull(t *testing.T) {
	src := `journal:
  path: wb.journal
  fsync: always
tables:
  page_views:
    mode: back
    key: [page_id, "\"Day\""]
    max_loss: 5s
    batch: 500
    max_dirty: 2000
    priority: high
    reads: stale
    ack: disk
    on_full: error
  orders:
    mode: through
`
	r := mustParseRules(t, src, "/etc/app/rules.yaml")
	if r.File != "/etc/app/rules.yaml" {
		t.Errorf("File = %q", r.File)
	}
	wantJournal := &JournalRule{Path: filepath.Join("/etc/app", "wb.journal"), Fsync: FsyncAlways, Line: 1}
	if !reflect.DeepEqual(r.Journal, wantJournal) {
		t.Errorf("Journal = %+v, want %+v", r.Journal, wantJournal)
	}
	want := map[string]*TableRule{
		"page_views": {
			Name: "page_views", Mode: ModeBack, Key: []string{"page_id", "Day"},
			MaxLoss: 5 * time.Second, Batch: 500, MaxDirty: 2000,
			Priority: PriorityHigh, Reads: ReadsStale, Ack: AckDisk, OnFull: FullError, Line: 5,
		},
		"orders": {
			Name: "orders", Mode: ModeThrough,
			MaxLoss: DefaultMaxLoss, Batch: DefaultBatch, MaxDirty: DefaultMaxDirty,
			Priority: PriorityNormal, Reads: ReadsFlush, Ack: AckMemory, OnFull: FullBlock, Line: 15,
		},
	}
	if !reflect.DeepEqual(r.Tables, want) {
		for k, v := range r.Tables {
			t.Logf("got %s: %+v", k, *v)
		}
		t.Errorf("Tables differ from want")
	}
}

func TestParseRulesDefaults(t *testing.T) {
	r := mustParseRules(t, "tables:\n  t:\n    mode: back\n    key: id\n", "")
	if r.Journal != nil {
		t.Errorf("Journal = %+v, want nil", r.Journal)
	}
	want := &TableRule{
		Name: "t", Mode: ModeBack, Key: []string{"id"},
		MaxLoss: DefaultMaxLoss, Batch: DefaultBatch, MaxDirty: DefaultMaxDirty,
		Priority: PriorityNormal, Reads: ReadsFlush, Ack: AckMemory, OnFull: FullBlock, Line: 2,
	}
	if got := r.Tables["t"]; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	r = mustParseRules(t, "journal:\n  path: j\n", "")
	if r.Journal.Fsync != FsyncEverysec || r.Journal.Path != "j" {
		t.Errorf("journal defaults: %+v", r.Journal)
	}
	for _, src := range []string{"tables:\n", "tables: {}\n", "{}\n", "journal: {path: j}\n"} {
		r := mustParseRules(t, src, "")
		if len(r.Tables) != 0 || r.Tables == nil {
			t.Errorf("%q: Tables = %v, want empty non-nil", src, r.Tables)
		}
	}
}

func TestParseRulesEnums(t *testing.T) {
	tests := []struct {
		field, value string
		check        func(*TableRule) bool
	}{
		{"priority", "low", func(r *TableRule) bool { return r.Priority == PriorityLow }},
		{"priority", "normal", func(r *TableRule) bool { return r.Priority == PriorityNormal }},
		{"priority", "high", func(r *TableRule) bool { return r.Priority == PriorityHigh }},
		{"reads", "flush", func(r *TableRule) bool { return r.Reads == ReadsFlush }},
		{"reads", "stale", func(r *TableRule) bool { return r.Reads == ReadsStale }},
		{"ack", "memory", func(r *TableRule) bool { return r.Ack == AckMemory }},
		{"ack", "disk", func(r *TableRule) bool { return r.Ack == AckDisk }},
		{"on_full", "block", func(r *TableRule) bool { return r.OnFull == FullBlock }},
		{"on_full", "through", func(r *TableRule) bool { return r.OnFull == FullThrough }},
		{"on_full", "error", func(r *TableRule) bool { return r.OnFull == FullError }},
		{"rows_affected", "exact", func(r *TableRule) bool { return r.RowsAffected == RowsExact }},
		{"rows_affected", "assume", func(r *TableRule) bool { return r.RowsAffected == RowsAssume }},
		{"max_loss", "250ms", func(r *TableRule) bool { return r.MaxLoss == 250*time.Millisecond }},
		{"max_loss", "1m", func(r *TableRule) bool { return r.MaxLoss == time.Minute }},
		{"max_loss", `"1h30m"`, func(r *TableRule) bool { return r.MaxLoss == 90*time.Minute }},
		{"batch", "100000", func(r *TableRule) bool { return r.Batch == 100000 }},
		{"batch", "1_000", func(r *TableRule) bool { return r.Batch == 1000 }},
		{"max_dirty", "1", func(r *TableRule) bool { return r.MaxDirty == 1 }},
		{"key", "[a, b]", func(r *TableRule) bool { return reflect.DeepEqual(r.Key, []string{"a", "b"}) }},
		{"key", "ID", func(r *TableRule) bool { return reflect.DeepEqual(r.Key, []string{"id"}) }},
		{"key", `'"ID"'`, func(r *TableRule) bool { return reflect.DeepEqual(r.Key, []string{"ID"}) }},
		{"key", "\n      - x\n      - \"\\\"Y\\\"\"", func(r *TableRule) bool { return reflect.DeepEqual(r.Key, []string{"x", "Y"}) }},
	}
	for _, tt := range tests {
		key := "    key: [id]\n"
		if tt.field == "key" {
			key = ""
		}
		src := "journal: {path: j}\ntables:\n  t:\n    mode: back\n" + key + "    " + tt.field + ": " + tt.value + "\n"
		r := mustParseRules(t, src, "")
		if !tt.check(r.Tables["t"]) {
			t.Errorf("%s: %s: got %+v", tt.field, tt.value, *r.Tables["t"])
		}
	}
	r := mustParseRules(t, "tables:\n  t: {mode: through}\n", "")
	if r.Tables["t"].Mode != ModeThrough {
		t.Errorf("mode through: got %v", r.Tables["t"].Mode)
	}
	for _, f := range []struct {
		v    string
		want FsyncPolicy
	}{{"always", FsyncAlways}, {"everysec", FsyncEverysec}, {"no", FsyncNo}} {
		r := mustParseRules(t, "journal:\n  path: j\n  fsync: "+f.v+"\n", "")
		if r.Journal.Fsync != f.want {
			t.Errorf("fsync %s: got %v", f.v, r.Journal.Fsync)
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		want []string // substrings of the message
	}{
		{"empty file", "", 0, []string{"empty"}},
		{"only comments", "# nothing\n", 0, []string{"empty"}},
		{"null document", "~\n", 1, []string{"empty"}},
		{"not a mapping: list", "- a\n- b\n", 1, []string{"must be a mapping", "a list"}},
		{"not a mapping: scalar", "hello\n", 1, []string{"must be a mapping", `"hello"`}},
		{"two documents", "tables: {}\n---\ntables: {}\n", 2, []string{"second YAML document"}},
		{"syntax error", "tables:\n  t: mode: back\n", 2, []string{"invalid YAML", "mapping values are not allowed"}},
		{"tab indentation", "tables:\n\tt: {}\n", 2, []string{"invalid YAML"}},
		{"unknown anchor", "tables: *nope\n", 0, []string{"invalid YAML", "nope"}},
		{"unknown top-level field", "journal: {path: j}\ntabels: {}\n", 2, []string{`unknown top-level field "tabels"`}},
		{"duplicate top-level key", "tables: {}\ntables: {}\n", 2, []string{`duplicate key "tables"`, "line 1"}},
		{"unknown journal field", "journal:\n  path: j\n  size: 10\n", 3, []string{"journal:", `unknown field "size"`}},
		{"journal without path", "journal:\n  fsync: no\n", 1, []string{"journal: path (a local journal) or nats (a replicated one) is required"}},
		{"journal null", "journal:\n", 1, []string{"journal: path (a local journal) or nats (a replicated one) is required"}},
		{"journal empty path", "journal:\n  path: ''\n", 2, []string{"journal.path: must not be empty"}},
		{"journal path list", "journal:\n  path: [a]\n", 2, []string{"journal.path", "a list"}},
		{"journal not a mapping", "journal: j\n", 1, []string{"journal: want a mapping"}},
		{"bad fsync", "journal:\n  path: j\n  fsync: sometimes\n", 3, []string{`journal.fsync: "sometimes" is not one of always, everysec, no`}},
		{"tables a list", "tables:\n  - t\n", 2, []string{"tables: want a mapping", "a list"}},
		{"unknown table field", "tables:\n  t:\n    mode: through\n    mod: back\n", 4, []string{"tables.t:", `unknown field "mod"`}},
		{"duplicate table field", "tables:\n  t:\n    mode: through\n    mode: back\n", 4, []string{"tables.t:", `duplicate key "mode"`, "line 3"}},
		{"table not a mapping", "tables:\n  t: back\n", 2, []string{"tables.t: want a mapping"}},
		{"missing mode", "tables:\n  t:\n    key: id\n", 2, []string{"tables.t: mode is required"}},
		{"null table", "tables:\n  t:\n", 2, []string{"tables.t: mode is required"}},
		{"bad mode", "tables:\n  t:\n    mode: front\n", 3, []string{`tables.t.mode: "front" is not one of back, through`}},
		{"bad duration", "tables:\n  t:\n    mode: back\n    key: id\n    max_loss: fast\n", 5, []string{`tables.t.max_loss: "fast" is not a duration`}},
		{"duration without unit", "tables:\n  t:\n    mode: back\n    key: id\n    max_loss: 5\n", 5, []string{"tables.t.max_loss: 5 has no unit"}},
		{"zero duration", "tables:\n  t:\n    mode: back\n    key: id\n    max_loss: 0s\n", 5, []string{"tables.t.max_loss: must be > 0"}},
		{"zero duration bare", "tables:\n  t:\n    mode: back\n    key: id\n    max_loss: 0\n", 5, []string{"tables.t.max_loss: must be > 0"}},
		{"negative duration", "tables:\n  t:\n    mode: back\n    key: id\n    max_loss: -1s\n", 5, []string{"tables.t.max_loss: must be > 0"}},
		{"duration list", "tables:\n  t:\n    mode: back\n    key: id\n    max_loss: [1s]\n", 5, []string{"tables.t.max_loss: want a duration", "a list"}},
		{"batch zero", "tables:\n  t:\n    mode: back\n    key: id\n    batch: 0\n", 5, []string{"tables.t.batch: must be > 0, got 0"}},
		{"batch negative", "tables:\n  t:\n    mode: back\n    key: id\n    batch: -3\n", 5, []string{"tables.t.batch: must be > 0"}},
		{"batch string", "tables:\n  t:\n    mode: back\n    key: id\n    batch: ten\n", 5, []string{`tables.t.batch: "ten" is not an integer`}},
		{"batch quoted number", "tables:\n  t:\n    mode: back\n    key: id\n    batch: \"10\"\n", 5, []string{`tables.t.batch: "10" is not an integer`}},
		{"batch float", "tables:\n  t:\n    mode: back\n    key: id\n    batch: 1.5\n", 5, []string{`tables.t.batch: "1.5" is not an integer`}},
		{"batch too large", "tables:\n  t:\n    mode: back\n    key: id\n    batch: 100001\n", 5, []string{"tables.t.batch: must be at most 100000"}},
		{"batch huge", "tables:\n  t:\n    mode: back\n    key: id\n    batch: 9223372036854775808\n", 5, []string{"tables.t.batch: must be at most"}},
		{"batch null", "tables:\n  t:\n    mode: back\n    key: id\n    batch:\n", 5, []string{"tables.t.batch: missing value"}},
		{"batch mapping", "tables:\n  t:\n    mode: back\n    key: id\n    batch: {a: 1}\n", 5, []string{"tables.t.batch: want a positive integer, not a mapping"}},
		{"max_dirty zero", "tables:\n  t:\n    mode: back\n    key: id\n    max_dirty: 0\n", 5, []string{"tables.t.max_dirty: must be > 0"}},
		{"bad priority", "tables:\n  page_views:\n    mode: back\n    key: id\n    priority: urgent\n", 5, []string{`tables.page_views.priority: "urgent" is not one of high, normal, low`}},
		{"bad reads", "tables:\n  t:\n    mode: back\n    key: id\n    reads: never\n", 5, []string{`tables.t.reads: "never" is not one of flush, stale`}},
		{"bad ack", "tables:\n  t:\n    mode: back\n    key: id\n    ack: through\n", 5, []string{`tables.t.ack: "through" is not one of memory, replicated, disk`}},
		{"nats and path", "journal:\n  path: j\n  nats: nats://a:4222\n", 3, []string{"journal: path and fsync (a local journal) and nats", "are exclusive"}},
		{"nats and fsync", "journal:\n  nats: nats://a:4222\n  fsync: always\n", 3, []string{"are exclusive"}},
		{"nats empty", "journal:\n  nats: \"\"\n", 2, []string{"journal.nats: must not be empty"}},
		{"nats empty url", "journal:\n  nats: nats://a:4222,,nats://b:4222\n", 2, []string{"journal.nats: an empty URL"}},
		{"stream without nats", "journal:\n  stream: wb\n", 1, []string{"journal: nats is required"}},
		{"stream bad name", "journal:\n  nats: nats://a:4222\n  stream: a.b\n", 3, []string{"journal.stream:", "only letters, digits"}},
		{"replicas zero", "journal:\n  nats: nats://a:4222\n  replicas: 0\n", 3, []string{"journal.replicas: must be > 0"}},
		{"replicas six", "journal:\n  nats: nats://a:4222\n  replicas: 6\n", 3, []string{"journal.replicas: must be at most 5"}},
		{"lease short", "journal:\n  nats: nats://a:4222\n  lease: 500ms\n", 3, []string{"journal.lease: must be at least 1s"}},
		{"takeover string", "journal:\n  nats: nats://a:4222\n  takeover: sometimes\n", 3, []string{"journal.takeover:"}},
		{"instance bad", "instance: web 1\njournal:\n  nats: nats://a:4222\n", 1, []string{"instance:", "only letters, digits"}},
		{"ack replicated without nats", "journal:\n  path: j\ntables:\n  t:\n    mode: back\n    key: id\n    ack: replicated\n", 7, []string{"tables.t.ack: replicated needs a replicated journal (journal.nats)"}},
		{"ack disk with nats", "journal:\n  nats: nats://a:4222\ntables:\n  t:\n    mode: back\n    key: id\n    ack: disk\n", 7, []string{"tables.t.ack: disk needs a local journal (journal.path)"}},
		{"bad on_full", "tables:\n  t:\n    mode: back\n    key: id\n    on_full: drop\n", 5, []string{`tables.t.on_full: "drop" is not one of block, through, error`}},
		{"bad rows_affected", "tables:\n  t:\n    mode: back\n    key: id\n    rows_affected: always\n", 5, []string{`tables.t.rows_affected: "always" is not one of exact, assume`}},
		{"enum is a list", "tables:\n  t:\n    mode: [back]\n", 3, []string{"tables.t.mode: want one of back, through, not a list"}},
		{"back without key", "tables:\n  t:\n    mode: back\n", 2, []string{"tables.t: mode back needs key"}},
		{"back with empty key", "tables:\n  t:\n    mode: back\n    key: []\n", 4, []string{"tables.t.key: must name at least one column"}},
		{"key null", "tables:\n  t:\n    mode: back\n    key:\n", 4, []string{"tables.t.key: missing value"}},
		{"key mapping", "tables:\n  t:\n    mode: back\n    key: {a: b}\n", 4, []string{"tables.t.key: want a column name or a list", "a mapping"}},
		{"key nested list", "tables:\n  t:\n    mode: back\n    key:\n      - a\n      - [b]\n", 6, []string{"tables.t.key: want a column name, not a list"}},
		{"key duplicate column", "tables:\n  t:\n    mode: back\n    key:\n      - id\n      - ID\n", 6, []string{"tables.t.key: column id is listed twice (first at line 5)"}},
		{"key bad column", "tables:\n  t:\n    mode: back\n    key: [a b]\n", 4, []string{`tables.t.key: bad column name "a b"`}},
		{"key qualified column", "tables:\n  t:\n    mode: back\n    key: [t.id]\n", 4, []string{`tables.t.key: bad column name "t.id"`}},
		{"ack disk without journal", "tables:\n  t:\n    mode: back\n    key: id\n    ack: disk\n    batch: 10\n", 5, []string{"tables.t.ack: disk needs a local journal (journal.path)"}},
		{"duplicate table", "tables:\n  t:\n    mode: through\n  t:\n    mode: back\n", 4, []string{"tables:", `duplicate key "t"`, "line 2"}},
		{"duplicate table after normalization", "tables:\n  page_views:\n    mode: through\n  PAGE_VIEWS:\n    mode: through\n", 4,
			[]string{`"page_views" (line 2) and "PAGE_VIEWS" (line 4) name the same table page_views`}},
		{"duplicate quoted table", "tables:\n  '\"foo\"':\n    mode: through\n  Foo:\n    mode: through\n", 4, []string{"(line 2)", "(line 4)", "same table foo"}},
		{"bad table name", "tables:\n  page views:\n    mode: through\n", 2, []string{`tables: bad table name "page views"`}},
		{"empty table name", "tables:\n  '':\n    mode: through\n", 2, []string{`tables: bad table name ""`}},
		{"null table name", "tables:\n  ~: {mode: through}\n", 2, []string{`tables: bad table name ""`}},
		{"three-part table name", "tables:\n  a.b.c:\n    mode: through\n", 2, []string{`bad table name "a.b.c"`, "schema.table"}},
		{"table name starts with digit", "tables:\n  1t:\n    mode: through\n", 2, []string{`bad table name "1t"`}},
		{"unterminated quote", "tables:\n  '\"Foo':\n    mode: through\n", 2, []string{"unterminated"}},
		{"list as key of mapping", "tables:\n  ? [a]\n  : {mode: through}\n", 2, []string{"tables: a key must be a name, not a list"}},
		{"custom tag", "tables:\n  t:\n    mode: !weird back\n", 3, []string{"tables.t.mode", "unsupported YAML tag"}},
		{"binary tag", "tables:\n  t:\n    mode: !!binary YmFjaw==\n", 3, []string{"unsupported YAML tag"}},
		{"merge of a scalar", "tables:\n  t:\n    <<: x\n    mode: through\n", 3, []string{"merge (<<) takes a mapping"}},
		{"merge cycle", "tables: &a\n  <<: *a\n", 1, []string{"includes the mapping it is in"}},
		{"self-referencing alias", "tables:\n  t: &a\n    mode: through\n    key: [*a]\n", 4, []string{"tables.t.key: want a column name, not a mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const file = "conf/rules.yaml"
			r, err := ParseRules([]byte(tt.src), file)
			if err == nil {
				t.Fatalf("no error; got %+v", r)
			}
			var re *RulesError
			if !errors.As(err, &re) {
				t.Fatalf("error %T %v is not a *RulesError", err, err)
			}
			if re.Line != tt.line {
				t.Errorf("line = %d, want %d (%v)", re.Line, tt.line, err)
			}
			if re.File != file {
				t.Errorf("file = %q, want %q", re.File, file)
			}
			if !strings.HasPrefix(err.Error(), file+":") {
				t.Errorf("error %q does not start with the file name", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(re.Msg, w) {
					t.Errorf("message %q does not contain %q", re.Msg, w)
				}
			}
		})
	}
}

func TestParseRulesNames(t *testing.T) {
	tests := []struct {
		yamlKey string
		want    string
	}{
		{"page_views", "page_views"},
		{"PageViews", "pageviews"},
		{`'"PageViews"'`, "PageViews"},
		{`"\"PageViews\""`, "PageViews"},
		{"Public.Foo", "public.foo"},
		{`'Public."Foo"'`, "public.Foo"},
		{`'"My Schema"."My Table"'`, "My Schema.My Table"},
		{`'"a""b"'`, `a"b`},
		{"t$1", "t$1"},
		{"_x", "_x"},
		{"Café", "café"},
		{"ÉTÉ", "ÉtÉ"}, // only ASCII letters are folded
	}
	for _, tt := range tests {
		src := "tables:\n  " + tt.yamlKey + ":\n    mode: through\n"
		r := mustParseRules(t, src, "")
		rule, ok := r.Tables[tt.want]
		if !ok {
			t.Errorf("%s: tables = %v, want key %q", tt.yamlKey, r.Tables, tt.want)
			continue
		}
		if rule.Name != tt.want || rule.Line != 2 {
			t.Errorf("%s: Name %q Line %d", tt.yamlKey, rule.Name, rule.Line)
		}
	}
}

func TestNormalizeRuleName(t *testing.T) {
	good := map[string]string{
		"t":            "t",
		"T":            "t",
		`"T"`:          "T",
		`s."T"`:        "s.T",
		`"S".t`:        "S.t",
		`"S"."T"`:      "S.T",
		`"x y"`:        "x y",
		`""""`:         `"`,
		"a_b$c9":       "a_b$c9",
		`"1abc"`:       "1abc",
		`"select"`:     "select",
		"schema.table": "schema.table",
	}
	for in, want := range good {
		got, err := normalizeRuleName(in)
		if err != nil || got != want {
			t.Errorf("normalizeRuleName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{"", ".", "a.", ".a", "a..b", "a.b.c", `""`, `"a`, `"a"b`, `a"b"`, "a b", "1a", "$a", "a-b",
		`"a.b"`, "\"a\x00\"", "a\x00", "\xff", `"a".`, "a.1"}
	for _, in := range bad {
		if got, err := normalizeRuleName(in); err == nil {
			t.Errorf("normalizeRuleName(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseRulesJournalPath(t *testing.T) {
	abs, err := filepath.Abs(filepath.Join(t.TempDir(), "wb.journal"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, path, want string
	}{
		{"/etc/app/rules.yaml", "wb.journal", filepath.Join("/etc/app", "wb.journal")},
		{"/etc/app/rules.yaml", "../var/wb.journal", filepath.Join("/etc", "var", "wb.journal")},
		{"conf/rules.yaml", "wb.journal", filepath.Join("conf", "wb.journal")},
		{"rules.yaml", "wb.journal", "wb.journal"},
		{"", "wb.journal", "wb.journal"},
		{"", "sub/wb.journal", "sub/wb.journal"},
		{"conf/rules.yaml", abs, abs},
	}
	for _, tt := range tests {
		r := mustParseRules(t, "journal:\n  path: '"+tt.path+"'\n", tt.file)
		if r.Journal.Path != tt.want {
			t.Errorf("file %q path %q: got %q, want %q", tt.file, tt.path, r.Journal.Path, tt.want)
		}
	}
}

func TestParseRulesAliasesAndMerge(t *testing.T) {
	src := `defaults: &d
  mode: back
  max_loss: 2s
  priority: low
`
	// An unknown top-level field, even one holding only anchors, is an error.
	if _, err := ParseRules([]byte(src+"tables: {}\n"), ""); err == nil {
		t.Fatal("unknown top-level field accepted")
	}
	src = `tables:
  a: &d
    mode: back
    key: id
    max_loss: 2s
    priority: low
  b:
    <<: *d
    key: [b_id]
    priority: high
  c:
    <<: [*d, {batch: 7, priority: normal}]
  d: *d
`
	r := mustParseRules(t, src, "")
	if len(r.Tables) != 4 {
		t.Fatalf("tables: %v", r.Tables)
	}
	b := r.Tables["b"]
	if b.Mode != ModeBack || b.MaxLoss != 2*time.Second || b.Priority != PriorityHigh || !reflect.DeepEqual(b.Key, []string{"b_id"}) || b.Line != 7 {
		t.Errorf("b = %+v", *b)
	}
	c := r.Tables["c"]
	if c.Priority != PriorityLow || c.Batch != 7 || !reflect.DeepEqual(c.Key, []string{"id"}) {
		t.Errorf("c = %+v", *c)
	}
	d := r.Tables["d"]
	if d.Name != "d" || d.Mode != ModeBack || d.Line != 13 {
		t.Errorf("d = %+v", *d)
	}
}

func TestLoadRules(t *testing.T) {
	path := filepath.Join("testdata", "rules", "example.yaml")
	r, err := LoadRules(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.File != path {
		t.Errorf("File = %q", r.File)
	}
	if want := filepath.Join("testdata", "rules", "writeback.journal"); r.Journal == nil || r.Journal.Path != want || r.Journal.Fsync != FsyncEverysec {
		t.Errorf("Journal = %+v, want path %q", r.Journal, want)
	}
	pv := r.Tables["page_views"]
	if pv == nil || pv.Mode != ModeBack || pv.MaxLoss != 5*time.Second || pv.Priority != PriorityLow || !reflect.DeepEqual(pv.Key, []string{"page_id"}) {
		t.Errorf("page_views = %+v", pv)
	}
	dc := r.Tables["analytics.DailyCounters"]
	if dc == nil || dc.Ack != AckDisk || dc.OnFull != FullThrough || !reflect.DeepEqual(dc.Key, []string{"day", "Metric"}) {
		t.Errorf("analytics.DailyCounters = %+v", dc)
	}
	if o := r.Tables["orders"]; o == nil || o.Mode != ModeThrough {
		t.Errorf("orders = %+v", o)
	}
	backs := r.backTables()
	if len(backs) != 2 || backs[0].Name != "analytics.DailyCounters" || backs[1].Name != "page_views" {
		t.Errorf("backTables = %v", backs)
	}
}

func TestLoadRulesErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	_, err := LoadRules(missing)
	var re *RulesError
	if !errors.As(err, &re) || re.File != missing || !strings.Contains(err.Error(), missing) {
		t.Fatalf("LoadRules(missing) = %v", err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("tables:\n  t:\n    mode: back\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadRules(bad)
	if !errors.As(err, &re) || re.File != bad || re.Line != 2 || !strings.HasPrefix(err.Error(), bad+":2: ") {
		t.Fatalf("LoadRules(bad) = %v", err)
	}
}

func TestRulesErrorString(t *testing.T) {
	tests := []struct {
		err  RulesError
		want string
	}{
		{RulesError{File: "a.yaml", Line: 3, Msg: "m"}, "a.yaml:3: m"},
		{RulesError{File: "a.yaml", Msg: "m"}, "a.yaml: m"},
		{RulesError{Line: 3, Msg: "m"}, "rules:3: m"},
		{RulesError{Msg: "m"}, "rules: m"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	r := &Rules{
		Journal: &JournalRule{Path: "j"},
		Tables: map[string]*TableRule{
			"Page_Views":      {Mode: ModeBack, Key: []string{"id"}},
			`s."T"`:           {Mode: ModeBack, Key: []string{"id"}, MaxLoss: time.Minute, Batch: 3, MaxDirty: 4, Ack: AckDisk},
			"orders":          {Name: "orders"},
			`"Exact"`:         {Name: "Exact"},
			"Mixed":           {Name: "Mixed"}, // Name set and equal: taken as normalized
			"through_ack_thr": {Ack: AckThrough},
		},
	}
	r, err := r.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"page_views", "s.T", "orders", "Exact", "Mixed", "through_ack_thr"}
	if len(r.Tables) != len(keys) {
		t.Fatalf("Tables = %v", r.Tables)
	}
	for _, k := range keys {
		if rule := r.Tables[k]; rule == nil || rule.Name != k {
			t.Errorf("%s: %+v", k, rule)
		}
	}
	pv := r.Tables["page_views"]
	if pv.MaxLoss != DefaultMaxLoss || pv.Batch != DefaultBatch || pv.MaxDirty != DefaultMaxDirty {
		t.Errorf("defaults not filled: %+v", *pv)
	}
	st := r.Tables["s.T"]
	if st.MaxLoss != time.Minute || st.Batch != 3 || st.MaxDirty != 4 {
		t.Errorf("values overwritten: %+v", *st)
	}
	if got := r.backTables(); len(got) != 2 || got[0].Name != "page_views" || got[1].Name != "s.T" {
		t.Errorf("backTables = %v", got)
	}
	// Validate is idempotent.
	before := r.Tables
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, r.Tables) {
		t.Error("second Validate changed the rules")
	}
	// Parsed rules validate unchanged.
	parsed := mustParseRules(t, "journal: {path: j}\ntables:\n  '\"Foo\"': {mode: back, key: '\"K\"', ack: disk}\n", "x.yaml")
	if err := parsed.Validate(); err != nil || parsed.Tables["Foo"] == nil {
		t.Fatalf("Validate(parsed) = %v, %v", err, parsed.Tables)
	}
	var nilRules *Rules
	if err := nilRules.Validate(); err == nil {
		t.Error("nil rules validated")
	}
	if got := nilRules.backTables(); got != nil {
		t.Errorf("nil backTables = %v", got)
	}
	if err := (&Rules{}).Validate(); err != nil {
		t.Errorf("empty rules: %v", err)
	}
}

func TestValidateErrors(t *testing.T) {
	back := func(mod func(*TableRule)) *TableRule {
		r := &TableRule{Mode: ModeBack, Key: []string{"id"}, Line: 7}
		mod(r)
		return r
	}
	tests := []struct {
		name string
		r    *Rules
		want string
	}{
		{"nil rule", &Rules{Tables: map[string]*TableRule{"t": nil}}, "tables.t: nil rule"},
		{"back without key", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Key = nil })}}, "mode back needs key"},
		{"negative max_loss", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.MaxLoss = -time.Second })}}, "max_loss: must be > 0"},
		{"negative batch", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Batch = -1 })}}, "batch: must be > 0"},
		{"huge batch", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Batch = maxBatch + 1 })}}, "batch: must be at most"},
		{"negative max_dirty", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.MaxDirty = -1 })}}, "max_dirty: must be > 0"},
		{"ack disk without journal", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Ack = AckDisk })}}, "disk needs a local journal"},
		{"bad mode", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Mode = 9 })}}, "unknown mode"},
		{"bad priority", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Priority = 9 })}}, "unknown priority"},
		{"bad reads", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Reads = 9 })}}, "unknown read policy"},
		{"bad ack", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Ack = 9 })}}, "unknown ack level"},
		{"bad on_full", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.OnFull = 9 })}}, "unknown on_full"},
		{"empty key column", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Key = []string{""} })}}, "bad column name"},
		{"dotted key column", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Key = []string{"t.id"} })}}, "bad column name"},
		{"duplicate key column", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Key = []string{"a", "a"} })}}, "listed twice"},
		{"bad table key", &Rules{Tables: map[string]*TableRule{"a b": back(func(*TableRule) {})}}, "bad table name"},
		{"name mismatch", &Rules{Tables: map[string]*TableRule{"t": back(func(r *TableRule) { r.Name = "u" })}}, "does not match"},
		{"bad name", &Rules{Tables: map[string]*TableRule{"a..b": back(func(r *TableRule) { r.Name = "a..b" })}}, "bad table name"},
		{"same table twice", &Rules{Tables: map[string]*TableRule{"T": back(func(*TableRule) {}), "t": back(func(*TableRule) {})}}, "name the same table t"},
		{"journal without path", &Rules{Journal: &JournalRule{Line: 2}}, "journal: path (a local journal) or nats (a replicated one) is required"},
		{"bad fsync", &Rules{Journal: &JournalRule{Path: "j", Fsync: 9}}, "journal.fsync"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.File = "code"
			var snapshot []TableRule
			for _, k := range []string{"t", "T", "a b", "a..b"} {
				if rule := tt.r.Tables[k]; rule != nil {
					snapshot = append(snapshot, *rule)
				}
			}
			err := tt.r.Validate()
			var re *RulesError
			if !errors.As(err, &re) {
				t.Fatalf("Validate() = %v, want a *RulesError", err)
			}
			if !strings.Contains(re.Msg, tt.want) || re.File != "code" {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
			var after []TableRule
			for _, k := range []string{"t", "T", "a b", "a..b"} {
				if rule := tt.r.Tables[k]; rule != nil {
					after = append(after, *rule)
				}
			}
			if !reflect.DeepEqual(snapshot, after) {
				t.Errorf("failed Validate changed the rules")
			}
		})
	}
}

func TestParseRulesAliasBlowup(t *testing.T) {
	// A long key list repeated under many tables through an alias must not
	// make ParseRules do unbounded work.
	var b strings.Builder
	b.WriteString("tables:\n  t:\n    mode: back\n    key: &k [c0")
	for i := 1; i < 1000; i++ {
		b.WriteString(", c" + strconv.Itoa(i))
	}
	b.WriteString("]\n")
	for i := 0; i < 2000; i++ {
		b.WriteString("  t" + strconv.Itoa(i) + ": {mode: back, key: *k}\n")
	}
	_, err := ParseRules([]byte(b.String()), "")
	if err == nil || !strings.Contains(err.Error(), "too many") {
		t.Fatalf("got %v, want a too-many error", err)
	}
	// Merges of merges are expanded once each.
	b.Reset()
	b.WriteString("tables:\n  <<:\n    - &l0 {t0: {mode: through}}\n")
	for i := 1; i < 200; i++ {
		b.WriteString("    - &l" + strconv.Itoa(i) + " {<<: [*l" + strconv.Itoa(i-1) + ", *l" + strconv.Itoa(i-1) + "], t" + strconv.Itoa(i) + ": {mode: through}}\n")
	}
	r, err := ParseRules([]byte(b.String()), "")
	if err != nil || len(r.Tables) != 200 {
		t.Fatalf("got %v, %d tables", err, len(r.Tables))
	}
}

func TestParseRulesReplicated(t *testing.T) {
	r := mustRules(t, `instance: web-1
journal:
  nats: nats://n1:4222,nats://n2:4222
  stream: wb_journal
  replicas: 3
  lease: 15s
  takeover: true
tables:
  carts: {mode: back, key: [id], ack: replicated}
  counters: {mode: back, key: [id]}
`)
	j := r.Journal
	if r.Instance != "web-1" || j.NATS != "nats://n1:4222,nats://n2:4222" || j.Stream != "wb_journal" || j.Replicas != 3 || j.Lease != 15*time.Second || !j.Takeover || j.Path != "" {
		t.Errorf("parsed %+v, instance %q", *j, r.Instance)
	}
	if r.Tables["carts"].Ack != AckReplicated || r.Tables["counters"].Ack != AckMemory {
		t.Errorf("acks %v and %v", r.Tables["carts"].Ack, r.Tables["counters"].Ack)
	}
	if AckReplicated.String() != "replicated" {
		t.Errorf("AckReplicated.String() = %q", AckReplicated.String())
	}
	// A rule built in code is checked the same way.
	bad := &Rules{Instance: "a.b", Journal: &JournalRule{NATS: "nats://x:4222"}, Tables: map[string]*TableRule{}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "instance") {
		t.Errorf("Validate of instance a.b: %v", err)
	}
}

func TestDSNInstance(t *testing.T) {
	cfg, err := parseDSN("driver=pgx rules=r.yaml instance=web-7 dsn=x")
	if err != nil || cfg.instance != "web-7" {
		t.Fatalf("instance=web-7: %+v, %v", cfg, err)
	}
	if _, err := parseDSN("driver=pgx rules=r.yaml instance=web.7 dsn=x"); err == nil || !strings.Contains(err.Error(), "instance=") {
		t.Errorf("instance=web.7: %v", err)
	}
	if err := WithInstance("a b")(&config{}); err == nil {
		t.Error("WithInstance(\"a b\") accepted")
	}
}
