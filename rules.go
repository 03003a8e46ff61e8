package writeback

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Mode says whether a table's writes go straight to the database (ModeThrough)
// or are buffered and flushed later (ModeBack).
type Mode uint8

const (
	// ModeThrough sends every statement on the table to the database unchanged.
	ModeThrough Mode = iota
	// ModeBack buffers provably safe UPDATEs and INSERTs and flushes them later.
	ModeBack
)

// String returns the mode as a rules file spells it: "through" or "back".
func (m Mode) String() string { return enumString("Mode", uint8(m), "through", "back") }

// Priority orders tables whose flushes are due at the same time: high first,
// then normal, then low. The zero value is PriorityNormal, the default.
type Priority uint8

const (
	// PriorityNormal is the default: the zero value, so a rule built in code
	// that leaves Priority out gets it.
	PriorityNormal Priority = iota
	// PriorityLow tables are flushed after normal and high ones.
	PriorityLow
	// PriorityHigh tables are flushed first.
	PriorityHigh
)

// String returns the priority as a rules file spells it: "normal", "low" or
// "high".
func (p Priority) String() string {
	return enumString("Priority", uint8(p), "normal", "low", "high")
}

// rank orders priorities: higher flushes first.
func (p Priority) rank() int {
	switch p {
	case PriorityHigh:
		return 2
	case PriorityNormal:
		return 1
	}
	return 0
}

// ReadPolicy says what a statement that reads a back table sees.
type ReadPolicy uint8

const (
	// ReadsFlush makes a reading statement wait until the table's buffered rows
	// are committed, so a process always reads its own writes.
	ReadsFlush ReadPolicy = iota
	// ReadsStale lets reads see the database as it is, without the buffered rows.
	ReadsStale
)

// String returns the policy as a rules file spells it: "flush" or "stale".
func (r ReadPolicy) String() string { return enumString("ReadPolicy", uint8(r), "flush", "stale") }

// AckLevel is how durable a write is when Exec returns.
type AckLevel uint8

const (
	// AckMemory acknowledges a write once it is in the buffer.
	AckMemory AckLevel = iota
	// AckDisk acknowledges a write once it is fsynced to the journal.
	AckDisk
	// AckThrough writes through to the database before acknowledging.
	AckThrough
)

// String returns the level as a rules file spells it: "memory", "disk" or
// "through" (a level ContextWithAck can ask for; a table's ack is memory or
// disk).
func (a AckLevel) String() string {
	return enumString("AckLevel", uint8(a), "memory", "disk", "through")
}

// OnFull says what a write does when the buffer cannot take it.
type OnFull uint8

const (
	// FullBlock waits for room until the caller's context ends.
	FullBlock OnFull = iota
	// FullThrough writes the statement through to the database.
	FullThrough
	// FullError returns ErrBufferFull.
	FullError
)

// String returns the policy as a rules file spells it: "block", "through" or
// "error".
func (f OnFull) String() string { return enumString("OnFull", uint8(f), "block", "through", "error") }

// FsyncPolicy is the journal's sync policy.
type FsyncPolicy uint8

const (
	// FsyncEverysec syncs in the background about once a second.
	FsyncEverysec FsyncPolicy = iota
	// FsyncAlways syncs before a write is acknowledged (group commit).
	FsyncAlways
	// FsyncNo leaves syncing to the operating system.
	FsyncNo
)

// String returns the policy as a rules file spells it: "everysec", "always"
// or "no".
func (f FsyncPolicy) String() string {
	return enumString("FsyncPolicy", uint8(f), "everysec", "always", "no")
}

// enumString returns names[v], or typ(v) for a value without a name.
func enumString(typ string, v uint8, names ...string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return typ + "(" + strconv.Itoa(int(v)) + ")"
}

// Defaults for fields a table rule leaves out.
const (
	DefaultMaxLoss  = time.Second
	DefaultBatch    = 1000
	DefaultMaxDirty = 100000
)

// Rules is a parsed rules file: which tables are write-back and how.
type Rules struct {
	// File is the path the rules were read from ("" when built in code).
	File string
	// Journal is the optional journal section; nil when absent.
	Journal *JournalRule
	// Tables maps a normalized table name to its rule. Unquoted names are
	// lower-cased, quoted ones ("Name") kept exactly; "schema.table" is allowed.
	Tables map[string]*TableRule
}

// JournalRule configures the durable local journal.
type JournalRule struct {
	Path  string // resolved relative to the rules file's folder
	Fsync FsyncPolicy
	Line  int
}

// TableRule is one table's entry in the rules file.
//
// In a rule built in code, a zero MaxLoss, Batch or MaxDirty means the default
// (DefaultMaxLoss, DefaultBatch, DefaultMaxDirty): NewConnector uses the
// default, and ParseRules fills it in.
// The other fields have no "unset" state: their zero values are ModeThrough,
// PriorityNormal, ReadsFlush, AckMemory and FullBlock.
type TableRule struct {
	Name     string // normalized, as in Rules.Tables
	Mode     Mode
	Key      []string // normalized column names
	MaxLoss  time.Duration
	Batch    int
	MaxDirty int
	Priority Priority
	Reads    ReadPolicy
	Ack      AckLevel
	OnFull   OnFull
	Line     int // line of the table's entry in the rules file
}

// maxBatch is the largest batch a table rule may ask for.
const maxBatch = 100000

// RulesError is an error in a rules file, or in rules built in code. Every
// error ParseRules, LoadRules and Rules.Validate return is a *RulesError.
type RulesError struct {
	// File is the rules file ("" when the rules were parsed from memory or
	// built in code).
	File string
	// Line is the 1-based line of the offending YAML node, or 0 when no line
	// applies (an empty file, an unreadable file, rules built in code).
	Line int
	// Msg says what is wrong, naming the field, e.g.
	// `tables.page_views.priority: "urgent" is not one of high, normal, low`.
	Msg string
}

// Error formats the error as FILE:LINE: MSG, with "rules" standing in for an
// empty File and the line left out when it is 0.
func (e *RulesError) Error() string {
	file := e.File
	if file == "" {
		file = "rules"
	}
	if e.Line > 0 {
		return file + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return file + ": " + e.Msg
}

// LoadRules reads and parses the rules file at path (see ParseRules). A
// relative journal path is resolved against the folder holding path. The
// returned Rules has File set to path.
func LoadRules(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already in the RulesError
		}
		return nil, &RulesError{File: path, Msg: "cannot read rules file: " + err.Error()}
	}
	return ParseRules(data, path)
}

// ParseRules parses a rules file (DESIGN.md section 2). file names the file in
// errors and locates a relative journal path (it is taken relative to
// filepath.Dir(file); when file is "" the path is kept as written). The
// returned Rules has File set to file.
//
// Decoding is strict: unknown fields, duplicate keys, values of the wrong type
// and values out of range are errors, each a *RulesError carrying the line of
// the offending node. The file must hold exactly one YAML document, a mapping
// with the optional sections journal and tables; an empty file is an error,
// while tables: {} (or no tables section) means every table is write-through. Every table needs mode (back
// or through); a back table also needs key. Fields left out take their
// defaults: max_loss DefaultMaxLoss, batch DefaultBatch (at most 100000),
// max_dirty DefaultMaxDirty, priority normal, reads flush, ack memory,
// on_full block, and the journal's fsync everysec. Fields that only matter to
// back tables are accepted, and checked, on through tables too. ack: disk
// needs a journal section.
//
// Table names are SQL names: an unquoted name is lower-cased, a name written
// in double quotes inside the YAML string ('"PageViews"') keeps its case, and
// schema.table is allowed with each part treated the same way. Key columns are
// normalized likewise. YAML anchors, aliases and merge keys (<<) may be used.
func ParseRules(data []byte, file string) (*Rules, error) {
	p := &rulesParser{
		file:   file,
		merged: make(map[*yaml.Node][]yamlEntry),
		active: make(map[*yaml.Node]bool),
		budget: 1 << 20,
	}
	doc, err := p.decode(data)
	if err != nil {
		return nil, err
	}
	r, err := p.rules(doc)
	if err != nil {
		return nil, err
	}
	r.File = file
	// The parsed rules already hold; Validate keeps code-built and parsed
	// rules under exactly the same invariants.
	if err := r.Validate(); err != nil {
		return nil, err
	}
	for _, t := range r.Tables {
		t.fillDefaults()
	}
	return r, nil
}

// Validate checks rules built in code (or changed after parsing) against the
// invariants ParseRules enforces. It does not modify r.
//
// A zero MaxLoss, Batch or MaxDirty is valid and means DefaultMaxLoss,
// DefaultBatch or DefaultMaxDirty: NewConnector uses the default (ParseRules
// fills it in). Other fields have no unset state; a zero Priority is
// PriorityNormal.
//
// Tables keys are table names. A rule whose Name is empty takes its name from
// its key, read as in a rules file (unquoted parts lower-cased, "quoted" parts
// kept exactly, schema.table allowed); a rule with a Name must have the key
// equal to Name or to a rules-file spelling of it. Two keys may not name the
// same table. Key columns are taken as normalized names (exact, without
// quotes).
func (r *Rules) Validate() error {
	_, err := r.tableNames()
	return err
}

// errAt returns a *RulesError in r's file at line.
func (r *Rules) errAt(line int, format string, args ...any) error {
	return &RulesError{File: r.File, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// tableNames validates r (see Validate) and returns the normalized table name
// of each Tables key.
func (r *Rules) tableNames() (map[string]string, error) {
	if r == nil {
		return nil, &RulesError{Msg: "no rules (nil *Rules)"}
	}
	if err := r.validateJournal(); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(r.Tables))
	for k := range r.Tables {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	names := make(map[string]string, len(keys))  // map key -> normalized name
	byName := make(map[string]string, len(keys)) // normalized name -> map key
	for _, k := range keys {
		t := r.Tables[k]
		where := "tables." + k
		if t == nil {
			return nil, r.errAt(0, "%s: nil rule", where)
		}
		name, err := validRuleName(k, t.Name)
		if err != nil {
			return nil, r.errAt(t.Line, "%s: %v", where, err)
		}
		if other, dup := byName[name]; dup {
			return nil, r.errAt(t.Line, "tables: %q and %q name the same table %s", other, k, name)
		}
		byName[name] = k
		names[k] = name
		if err := r.validateTable(where, t); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// validateJournal checks the journal section, if any.
func (r *Rules) validateJournal() error {
	j := r.Journal
	switch {
	case j == nil:
		return nil
	case j.Path == "":
		return r.errAt(j.Line, "journal: path is required")
	case strings.IndexByte(j.Path, 0) >= 0:
		return r.errAt(j.Line, "journal.path: must not contain a NUL byte")
	case j.Fsync > FsyncNo:
		return r.errAt(j.Line, "journal.fsync: unknown policy %d", j.Fsync)
	}
	return nil
}

// validateTable checks the fields of table rule t, named where in messages.
func (r *Rules) validateTable(where string, t *TableRule) error {
	switch {
	case t.Mode > ModeBack:
		return r.errAt(t.Line, "%s.mode: unknown mode %d", where, t.Mode)
	case t.Priority > PriorityHigh:
		return r.errAt(t.Line, "%s.priority: unknown priority %d", where, t.Priority)
	case t.Reads > ReadsStale:
		return r.errAt(t.Line, "%s.reads: unknown read policy %d", where, t.Reads)
	case t.Ack > AckThrough:
		return r.errAt(t.Line, "%s.ack: unknown ack level %d", where, t.Ack)
	case t.OnFull > FullError:
		return r.errAt(t.Line, "%s.on_full: unknown on_full policy %d", where, t.OnFull)
	case t.MaxLoss < 0:
		return r.errAt(t.Line, "%s.max_loss: must be > 0, got %s", where, t.MaxLoss)
	case t.Batch < 0:
		return r.errAt(t.Line, "%s.batch: must be > 0, got %d", where, t.Batch)
	case t.Batch > maxBatch:
		return r.errAt(t.Line, "%s.batch: must be at most %d, got %d", where, maxBatch, t.Batch)
	case t.MaxDirty < 0:
		return r.errAt(t.Line, "%s.max_dirty: must be > 0, got %d", where, t.MaxDirty)
	case t.Mode == ModeBack && len(t.Key) == 0:
		return r.errAt(t.Line, "%s: mode back needs key (the row's primary or unique key columns)", where)
	case t.Ack == AckDisk && r.Journal == nil:
		return r.errAt(t.Line, "%s.ack: disk needs a journal section", where)
	}
	seen := make(map[string]bool, len(t.Key))
	for _, col := range t.Key {
		if err := checkNormalizedPart(col); err != nil {
			return r.errAt(t.Line, "%s.key: bad column name %q: %v", where, col, err)
		}
		if seen[col] {
			return r.errAt(t.Line, "%s.key: column %s is listed twice", where, col)
		}
		seen[col] = true
	}
	return nil
}

// withDefaults validates r and returns a copy that shares nothing with it,
// with every rule under its normalized name, Name set, and a zero MaxLoss,
// Batch or MaxDirty replaced by its default.
func (r *Rules) withDefaults() (*Rules, error) {
	names, err := r.tableNames()
	if err != nil {
		return nil, err
	}
	out := &Rules{File: r.File, Tables: make(map[string]*TableRule, len(r.Tables))}
	if r.Journal != nil {
		j := *r.Journal
		out.Journal = &j
	}
	for k, t := range r.Tables {
		c := *t
		c.Name = names[k]
		c.Key = slices.Clone(t.Key)
		c.fillDefaults()
		out.Tables[c.Name] = &c
	}
	return out, nil
}

// fillDefaults replaces a zero MaxLoss, Batch or MaxDirty by its default.
func (t *TableRule) fillDefaults() {
	if t.MaxLoss == 0 {
		t.MaxLoss = DefaultMaxLoss
	}
	if t.Batch == 0 {
		t.Batch = DefaultBatch
	}
	if t.MaxDirty == 0 {
		t.MaxDirty = DefaultMaxDirty
	}
}

// validRuleName is the normalized name of the rule stored under key k with
// Name name (see Validate).
func validRuleName(k, name string) (string, error) {
	switch {
	case name == "":
		n, err := normalizeRuleName(k)
		if err != nil {
			return "", fmt.Errorf("bad table name %q: %v", k, err)
		}
		return n, nil
	case name == k:
		parts := strings.Split(name, ".")
		if len(parts) > 2 {
			return "", fmt.Errorf("bad table name %q: want table or schema.table", name)
		}
		for _, part := range parts {
			if err := checkNormalizedPart(part); err != nil {
				return "", fmt.Errorf("bad table name %q: %v", name, err)
			}
		}
		return name, nil
	default:
		if n, err := normalizeRuleName(k); err == nil && n == name {
			return name, nil
		}
		return "", fmt.Errorf("map key %q does not match the rule's Name %q", k, name)
	}
}

// checkNormalizedPart checks one part of an already normalized name.
func checkNormalizedPart(s string) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case strings.IndexByte(s, '.') >= 0:
		return errors.New("a name part may not contain a dot")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("a name may not contain a NUL byte")
	}
	return nil
}

// backTables returns the write-back tables, sorted by name.
func (r *Rules) backTables() []*TableRule {
	if r == nil {
		return nil
	}
	var out []*TableRule
	for _, t := range r.Tables {
		if t != nil && t.Mode == ModeBack {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *TableRule) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// normalizeRuleName normalizes a table name as written in a rules file: table
// or schema.table, where an unquoted part is a SQL identifier (letters,
// digits, _ and $, not starting with a digit or $) and is lower-cased (ASCII
// letters only, as PostgreSQL and SQLite fold case), and a part in SQL double
// quotes is kept exactly, without the quotes ("" inside stands for one ").
// A quoted part may not contain a dot, so that the normalized name is
// unambiguous.
func normalizeRuleName(s string) (string, error) {
	parts, err := ruleIdentParts(s)
	if err != nil {
		return "", err
	}
	if len(parts) > 2 {
		return "", errors.New("want table or schema.table")
	}
	return strings.Join(parts, "."), nil
}

// normalizeColumnName normalizes a key column name like one part of a table
// name.
func normalizeColumnName(s string) (string, error) {
	parts, err := ruleIdentParts(s)
	if err != nil {
		return "", err
	}
	if len(parts) != 1 {
		return "", errors.New("want a bare column name, without a table or schema")
	}
	return parts[0], nil
}

// ruleIdentParts splits a dotted SQL name into normalized parts.
func ruleIdentParts(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New("empty name")
	}
	var parts []string
	i := 0
	for {
		if i == len(s) {
			return nil, errors.New("empty name part after a dot")
		}
		var part string
		if s[i] == '"' {
			var b strings.Builder
			j, closed := i+1, false
			for j < len(s) {
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				b.WriteByte(s[j])
				j++
			}
			part = b.String()
			switch {
			case !closed:
				return nil, errors.New("unterminated quoted name")
			case part == "":
				return nil, errors.New("empty quoted name")
			case strings.IndexByte(part, 0) >= 0:
				return nil, errors.New("a name may not contain a NUL byte")
			case strings.IndexByte(part, '.') >= 0:
				return nil, errors.New("a quoted name may not contain a dot")
			case !utf8.ValidString(part):
				return nil, errors.New("a name must be valid UTF-8")
			}
			i = j
		} else {
			j := i
			for j < len(s) && s[j] != '.' {
				r, size := utf8.DecodeRuneInString(s[j:])
				ok := r == '_' || (r != utf8.RuneError && unicode.IsLetter(r))
				if j > i {
					ok = ok || r == '$' || unicode.IsDigit(r)
				}
				if !ok {
					if r == '"' {
						return nil, errors.New(`a quote may only open a name part ("Name" or schema."Name")`)
					}
					return nil, fmt.Errorf("%q is not allowed in an unquoted name (quote the name to use it)", r)
				}
				j += size
			}
			if j == i {
				return nil, errors.New("empty name part before a dot")
			}
			part = foldASCIIRule(s[i:j])
			i = j
		}
		parts = append(parts, part)
		if i == len(s) {
			return parts, nil
		}
		if s[i] != '.' {
			return nil, errors.New("a quoted name part must be followed by a dot or end the name")
		}
		i++
	}
}

// foldASCIIRule lower-cases ASCII letters only.
func foldASCIIRule(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// rulesParser walks the YAML node tree of a rules file.
type rulesParser struct {
	file   string
	merged map[*yaml.Node][]yamlEntry // entries of mappings already expanded
	active map[*yaml.Node]bool        // mappings being expanded (merge cycles)
	budget int                        // keys and key columns left to read (alias blow-up)
}

// yamlEntry is one key of a mapping, after merge keys are applied.
type yamlEntry struct {
	key  *yaml.Node // the key as written, for its line
	val  *yaml.Node // the value as written (maybe an alias)
	name string     // the key's text
}

// errAt returns a *RulesError at line, prefixed with the field path where.
func (p *rulesParser) errAt(line int, where, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	if line < 0 {
		line = 0
	}
	return &RulesError{File: p.file, Line: line, Msg: msg}
}

// decode parses data as exactly one YAML document.
func (p *rulesParser) decode(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decodeYAMLNode(dec, &doc); err == io.EOF {
		return nil, p.errAt(0, "", "the rules file is empty")
	} else if err != nil {
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	if err := decodeYAMLNode(dec, &extra); err == nil {
		return nil, p.errAt(extra.Line, "", "a second YAML document starts here (a rules file holds one)")
	} else if err != io.EOF {
		return nil, p.yamlError(err)
	}
	return &doc, nil
}

// decodeYAMLNode decodes the next document, turning a panic of the YAML library
// into an error.
func decodeYAMLNode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("yaml: %v", v)
		}
	}()
	return dec.Decode(n)
}

// yamlError turns a YAML syntax error ("yaml: line 3: ...") into a RulesError.
func (p *rulesParser) yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil && n > 0 {
				line, msg = n, rest[i+2:]
			}
		}
	}
	if msg == "" {
		msg = "unknown problem"
	}
	return p.errAt(line, "", "invalid YAML: %s", msg)
}

// deref follows aliases and rejects tags a rules file has no use for.
func (p *rulesParser) deref(n *yaml.Node, where string) (*yaml.Node, error) {
	orig := n
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i == 100 {
			return nil, p.errAt(orig.Line, where, "alias chain too long")
		}
		n = n.Alias
	}
	if n == nil {
		return nil, p.errAt(orig.Line, where, "alias to nothing")
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!map", "!!seq", "!!merge":
	default:
		return nil, p.errAt(orig.Line, where, "unsupported YAML tag %q", n.Tag)
	}
	switch n.Kind {
	case yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode:
	default:
		return nil, p.errAt(orig.Line, where, "unexpected YAML node")
	}
	return n, nil
}

// yamlIsNull reports whether n is an empty or null scalar.
func yamlIsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// yamlKindOf describes a (dereferenced) node for messages.
func yamlKindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if yamlIsNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// entries lists the keys of mapping m (already dereferenced), applying merge
// keys (<<): keys written in m win over merged ones, and earlier merged
// mappings win over later ones. Duplicate keys written in m are errors.
func (p *rulesParser) entries(m *yaml.Node, where string) ([]yamlEntry, error) {
	if out, ok := p.merged[m]; ok {
		return out, nil
	}
	if p.active[m] {
		return nil, p.errAt(m.Line, where, "a merge (<<) includes the mapping it is in")
	}
	p.active[m] = true
	defer delete(p.active, m)

	var out []yamlEntry
	var merges []*yaml.Node
	seen := make(map[string]int) // key -> line
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		kd, err := p.deref(k, where)
		if err != nil {
			return nil, err
		}
		if kd.Kind == yaml.ScalarNode && kd.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if kd.Kind != yaml.ScalarNode {
			return nil, p.errAt(k.Line, where, "a key must be a name, not %s", yamlKindOf(kd))
		}
		name := kd.Value
		if yamlIsNull(kd) {
			name = ""
		}
		if first, dup := seen[name]; dup {
			return nil, p.errAt(k.Line, where, "duplicate key %q (first at line %d)", name, first)
		}
		seen[name] = k.Line
		out = append(out, yamlEntry{key: k, val: v, name: name})
	}
	p.budget -= len(out)
	for _, mv := range merges {
		md, err := p.deref(mv, where)
		if err != nil {
			return nil, err
		}
		var srcs []*yaml.Node
		switch md.Kind {
		case yaml.MappingNode:
			srcs = append(srcs, md)
		case yaml.SequenceNode:
			for _, item := range md.Content {
				d, err := p.deref(item, where)
				if err != nil {
					return nil, err
				}
				if d.Kind != yaml.MappingNode {
					return nil, p.errAt(item.Line, where, "a merge (<<) list may only hold mappings, not %s", yamlKindOf(d))
				}
				srcs = append(srcs, d)
			}
		default:
			return nil, p.errAt(mv.Line, where, "a merge (<<) takes a mapping or a list of mappings, not %s", yamlKindOf(md))
		}
		for _, src := range srcs {
			sub, err := p.entries(src, where)
			if err != nil {
				return nil, err
			}
			p.budget -= len(sub)
			if p.budget < 0 {
				return nil, p.errAt(m.Line, where, "too many merged keys")
			}
			for _, e := range sub {
				if _, ok := seen[e.name]; !ok {
					seen[e.name] = e.key.Line
					out = append(out, e)
				}
			}
		}
	}
	if p.budget < 0 {
		return nil, p.errAt(m.Line, where, "too many keys")
	}
	p.merged[m] = out
	return out, nil
}

// mapping returns the entries of v, which must be a mapping; a null v is an
// empty mapping. want describes the expected mapping for messages.
func (p *rulesParser) mapping(v *yaml.Node, where, want string) ([]yamlEntry, error) {
	n, err := p.deref(v, where)
	if err != nil {
		return nil, err
	}
	switch {
	case yamlIsNull(n):
		return nil, nil
	case n.Kind == yaml.MappingNode:
		return p.entries(n, where)
	}
	return nil, p.errAt(v.Line, where, "want %s, not %s", want, yamlKindOf(n))
}

// rules builds Rules from a decoded document.
func (p *rulesParser) rules(doc *yaml.Node) (*Rules, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, p.errAt(doc.Line, "", "not a YAML document")
	}
	top, err := p.deref(doc.Content[0], "")
	if err != nil {
		return nil, err
	}
	if yamlIsNull(top) {
		return nil, p.errAt(top.Line, "", "the rules file is empty")
	}
	if top.Kind != yaml.MappingNode {
		return nil, p.errAt(doc.Content[0].Line, "", "the rules file must be a mapping with the sections journal and tables, not %s", yamlKindOf(top))
	}
	ents, err := p.entries(top, "")
	if err != nil {
		return nil, err
	}
	var journal, tables *yamlEntry
	for i := range ents {
		switch ents[i].name {
		case "journal":
			journal = &ents[i]
		case "tables":
			tables = &ents[i]
		default:
			return nil, p.errAt(ents[i].key.Line, "", "unknown top-level field %q (want journal, tables)", ents[i].name)
		}
	}
	r := &Rules{Tables: make(map[string]*TableRule)}
	if journal != nil {
		if r.Journal, err = p.journal(journal); err != nil {
			return nil, err
		}
	}
	if tables != nil {
		if err := p.tables(tables, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// journal parses the journal section.
func (p *rulesParser) journal(e *yamlEntry) (*JournalRule, error) {
	const where = "journal"
	ents, err := p.mapping(e.val, where, "a mapping with path and fsync")
	if err != nil {
		return nil, err
	}
	j := &JournalRule{Fsync: FsyncEverysec, Line: e.key.Line}
	havePath := false
	for _, f := range ents {
		fw := where + "." + f.name
		switch f.name {
		case "path":
			s, err := p.str(f.val, fw, "a file path")
			if err != nil {
				return nil, err
			}
			switch {
			case s == "":
				return nil, p.errAt(f.val.Line, fw, "must not be empty")
			case strings.IndexByte(s, 0) >= 0:
				return nil, p.errAt(f.val.Line, fw, "must not contain a NUL byte")
			}
			j.Path, havePath = s, true
		case "fsync":
			i, err := p.enum(f.val, fw, "always", "everysec", "no")
			if err != nil {
				return nil, err
			}
			j.Fsync = [...]FsyncPolicy{FsyncAlways, FsyncEverysec, FsyncNo}[i]
		default:
			return nil, p.errAt(f.key.Line, where, "unknown field %q (want path, fsync)", f.name)
		}
	}
	if !havePath {
		return nil, p.errAt(e.key.Line, where, "path is required")
	}
	if p.file != "" && !filepath.IsAbs(j.Path) {
		j.Path = filepath.Join(filepath.Dir(p.file), j.Path)
	}
	return j, nil
}

// tables parses the tables section into r.Tables.
func (p *rulesParser) tables(e *yamlEntry, r *Rules) error {
	const where = "tables"
	ents, err := p.mapping(e.val, where, "a mapping from table names to rules")
	if err != nil {
		return err
	}
	raw := make(map[string]yamlEntry, len(ents)) // normalized name -> entry
	for _, te := range ents {
		name, err := normalizeRuleName(te.name)
		if err != nil {
			return p.errAt(te.key.Line, where, "bad table name %q: %v", te.name, err)
		}
		if prev, dup := raw[name]; dup {
			return p.errAt(te.key.Line, where, "%q (line %d) and %q (line %d) name the same table %s",
				prev.name, prev.key.Line, te.name, te.key.Line, name)
		}
		raw[name] = te
		t, err := p.table(te, name, r.Journal != nil)
		if err != nil {
			return err
		}
		r.Tables[name] = t
	}
	return nil
}

// ruleTableFields lists a table's fields, for messages.
const ruleTableFields = "mode, key, max_loss, batch, max_dirty, priority, reads, ack, on_full"

// table parses one table's rule.
func (p *rulesParser) table(te yamlEntry, name string, haveJournal bool) (*TableRule, error) {
	where := "tables." + te.name
	ents, err := p.mapping(te.val, where, "a mapping of "+ruleTableFields)
	if err != nil {
		return nil, err
	}
	t := &TableRule{
		Name:     name,
		Priority: PriorityNormal,
		Reads:    ReadsFlush,
		Ack:      AckMemory,
		OnFull:   FullBlock,
		Line:     te.key.Line,
	}
	haveMode := false
	ackLine := 0
	for _, f := range ents {
		fw := where + "." + f.name
		var i int
		switch f.name {
		case "mode":
			i, err = p.enum(f.val, fw, "back", "through")
			t.Mode = [...]Mode{ModeBack, ModeThrough}[i]
			haveMode = true
		case "key":
			t.Key, err = p.keyColumns(f.val, fw)
		case "max_loss":
			t.MaxLoss, err = p.duration(f.val, fw)
		case "batch":
			t.Batch, err = p.positive(f.val, fw, maxBatch)
		case "max_dirty":
			t.MaxDirty, err = p.positive(f.val, fw, rulesMaxInt)
		case "priority":
			i, err = p.enum(f.val, fw, "high", "normal", "low")
			t.Priority = [...]Priority{PriorityHigh, PriorityNormal, PriorityLow}[i]
		case "reads":
			i, err = p.enum(f.val, fw, "flush", "stale")
			t.Reads = [...]ReadPolicy{ReadsFlush, ReadsStale}[i]
		case "ack":
			i, err = p.enum(f.val, fw, "memory", "disk")
			t.Ack = [...]AckLevel{AckMemory, AckDisk}[i]
			ackLine = f.val.Line
		case "on_full":
			i, err = p.enum(f.val, fw, "block", "through", "error")
			t.OnFull = [...]OnFull{FullBlock, FullThrough, FullError}[i]
		default:
			return nil, p.errAt(f.key.Line, where, "unknown field %q (want %s)", f.name, ruleTableFields)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !haveMode:
		return nil, p.errAt(te.key.Line, where, "mode is required (back or through)")
	case t.Mode == ModeBack && len(t.Key) == 0:
		return nil, p.errAt(te.key.Line, where, "mode back needs key (the row's primary or unique key columns)")
	case t.Ack == AckDisk && !haveJournal:
		return nil, p.errAt(ackLine, where+".ack", "disk needs a journal section")
	}
	return t, nil
}

// rulesMaxInt is the largest int.
const rulesMaxInt = int(^uint(0) >> 1)

// scalar returns the dereferenced scalar v; want describes the expected value.
func (p *rulesParser) scalar(v *yaml.Node, where, want string) (*yaml.Node, error) {
	n, err := p.deref(v, where)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.ScalarNode {
		return nil, p.errAt(v.Line, where, "want %s, not %s", want, yamlKindOf(n))
	}
	if yamlIsNull(n) {
		return nil, p.errAt(v.Line, where, "missing value (want %s)", want)
	}
	return n, nil
}

// str returns the text of scalar v.
func (p *rulesParser) str(v *yaml.Node, where, want string) (string, error) {
	n, err := p.scalar(v, where, want)
	if err != nil {
		return "", err
	}
	return n.Value, nil
}

// enum returns the index of v's value in names.
func (p *rulesParser) enum(v *yaml.Node, where string, names ...string) (int, error) {
	want := "one of " + strings.Join(names, ", ")
	s, err := p.str(v, where, want)
	if err != nil {
		return 0, err
	}
	if i := slices.Index(names, s); i >= 0 {
		return i, nil
	}
	return 0, p.errAt(v.Line, where, "%q is not %s", s, want)
}

// positive returns v as an integer in [1, limit].
func (p *rulesParser) positive(v *yaml.Node, where string, limit int) (int, error) {
	n, err := p.scalar(v, where, "a positive integer")
	if err != nil {
		return 0, err
	}
	if n.ShortTag() != "!!int" {
		return 0, p.errAt(v.Line, where, "%q is not an integer", n.Value)
	}
	// As the YAML library reads integers: _ separators, 0x, 0o, 0b prefixes.
	x, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(n.Value, "-"):
		return 0, p.errAt(v.Line, where, "must be at most %d, got %s", limit, n.Value)
	case err != nil && errors.Is(err, strconv.ErrRange):
		return 0, p.errAt(v.Line, where, "must be > 0, got %s", n.Value)
	case err != nil:
		return 0, p.errAt(v.Line, where, "%q is not an integer", n.Value)
	case x <= 0:
		return 0, p.errAt(v.Line, where, "must be > 0, got %d", x)
	case uint64(x) > uint64(limit):
		return 0, p.errAt(v.Line, where, "must be at most %d, got %d", limit, x)
	}
	return int(x), nil
}

// duration returns v as a positive Go duration (5s, 250ms, 1m).
func (p *rulesParser) duration(v *yaml.Node, where string) (time.Duration, error) {
	const want = "a duration like 5s, 250ms or 1m"
	n, err := p.scalar(v, where, want)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		if tag := n.ShortTag(); tag == "!!int" || tag == "!!float" {
			return 0, p.errAt(v.Line, where, "%s has no unit (want %s)", n.Value, want)
		}
		return 0, p.errAt(v.Line, where, "%q is not %s", n.Value, want)
	}
	if d <= 0 {
		return 0, p.errAt(v.Line, where, "must be > 0, got %s", n.Value)
	}
	return d, nil
}

// keyColumns returns v, a column name or a list of them, normalized.
func (p *rulesParser) keyColumns(v *yaml.Node, where string) ([]string, error) {
	const want = "a column name or a list of column names"
	n, err := p.deref(v, where)
	if err != nil {
		return nil, err
	}
	var items []*yaml.Node
	switch {
	case n.Kind == yaml.SequenceNode:
		items = n.Content
		if len(items) == 0 {
			return nil, p.errAt(v.Line, where, "must name at least one column")
		}
	case n.Kind == yaml.ScalarNode && !yamlIsNull(n):
		items = []*yaml.Node{v}
	case yamlIsNull(n):
		return nil, p.errAt(v.Line, where, "missing value (want %s)", want)
	default:
		return nil, p.errAt(v.Line, where, "want %s, not %s", want, yamlKindOf(n))
	}
	// Aliases can repeat a long list under many tables: bound the total work.
	if p.budget -= len(items); p.budget < 0 {
		return nil, p.errAt(v.Line, where, "too many key columns in the file")
	}
	cols := make([]string, 0, len(items))
	seen := make(map[string]int, len(items)) // column -> line
	for _, item := range items {
		s, err := p.str(item, where, "a column name")
		if err != nil {
			return nil, err
		}
		col, err := normalizeColumnName(s)
		if err != nil {
			return nil, p.errAt(item.Line, where, "bad column name %q: %v", s, err)
		}
		if first, dup := seen[col]; dup {
			return nil, p.errAt(item.Line, where, "column %s is listed twice (first at line %d)", col, first)
		}
		seen[col] = item.Line
		cols = append(cols, col)
	}
	return cols, nil
}
