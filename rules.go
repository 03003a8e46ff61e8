package writeback

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
	// AckReplicated acknowledges a write once its record is stored by a
	// quorum of the replicated journal (journal.nats): it survives the loss
	// of this host.
	AckReplicated
	// AckDisk acknowledges a write once it is fsynced to the local journal
	// (journal.path): it survives a crash or power loss of this host, not
	// the loss of its disk.
	AckDisk
	// AckThrough writes through to the database before acknowledging.
	AckThrough
)

// String returns the level as a rules file spells it: "memory",
// "replicated", "disk" or "through" (a level ContextWithAck can ask for; a
// table's ack is memory, replicated or disk).
func (a AckLevel) String() string {
	return enumString("AckLevel", uint8(a), "memory", "replicated", "disk", "through")
}

// RowsPolicy says how a buffered write's RowsAffected, and its key errors,
// are known at Exec.
type RowsPolicy uint8

const (
	// RowsExact makes RowsAffected and duplicate-key errors at Exec what
	// direct execution gives. The connector keeps, per table, a bounded set
	// of keys known to exist (learned from its own writes and from probes);
	// a write to a key it does not know costs one point query first
	// (SELECT 1 ... WHERE key = ...). An UPDATE of a missing row and an
	// INSERT of an existing key then go to the database, which answers them.
	RowsExact RowsPolicy = iota
	// RowsAssume acknowledges every write from memory without asking: an
	// UPDATE reports one row and an INSERT its rows, whether or not the
	// rows exist; a write that matches nothing, or an INSERT of an existing
	// key, is found at flush time and dead-lettered. For append-only
	// tables, or keys the application knows exist.
	RowsAssume
)

// String returns the policy as a rules file spells it: "exact" or "assume".
func (r RowsPolicy) String() string { return enumString("RowsPolicy", uint8(r), "exact", "assume") }

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
	// SchemaCheckOnly is the rules file's manage_schema: false. The
	// connector then checks that the tables it keeps in the database (the
	// journal's checkpoint tables, see SchemaSQL) exist, with their columns
	// and key, instead of creating them: migrations create them, and the
	// connection's role needs no CREATE privilege. The zero value, false,
	// is manage_schema: true: the connector creates them when missing.
	SchemaCheckOnly bool
	// Instance is this writer's identity (the rules' instance:, which the
	// DSN key instance= and WithInstance override): a replicated journal
	// names its records, lease and checkpoints by it. One per process.
	Instance string
}

// JournalRule configures the journal: the local file journal (Path) or the
// replicated one on NATS JetStream (NATS); exactly one of the two.
type JournalRule struct {
	Path  string // resolved relative to the rules file's folder
	Fsync FsyncPolicy
	Line  int

	// NATS is the NATS servers' URLs, comma-separated
	// (nats://n1:4222,nats://n2:4222). The program must link the NATS
	// journal: import _ "github.com/writeback-go/writeback/natsjournal".
	NATS string
	// Stream is the JetStream stream holding the records ("writeback" when
	// empty): created with Replicas when missing, checked when present.
	Stream string
	// Replicas is the stream's replica count (DefaultReplicas when 0).
	Replicas int
	// Lease is how long an instance's lease lives without renewal
	// (DefaultLease when 0): the longest a dead instance's records wait
	// for a takeover.
	Lease time.Duration
	// Takeover lets this instance apply the records of an instance whose
	// lease expired.
	Takeover bool
}

// Defaults of the replicated journal.
const (
	DefaultStream   = "writeback"
	DefaultReplicas = 3
	DefaultLease    = 10 * time.Second
)

// TableRule is one table's entry in the rules file.
//
// In a rule built in code, a zero MaxLoss, Batch or MaxDirty means the default
// (DefaultMaxLoss, DefaultBatch, DefaultMaxDirty): NewConnector uses the
// default, and ParseRules fills it in.
// The other fields have no "unset" state: their zero values are ModeThrough,
// PriorityNormal, ReadsFlush, AckMemory, FullBlock and RowsExact.
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
	// RowsAffected says how exact a buffered write's result is.
	RowsAffected RowsPolicy
	// Allow lists the schema features of a back table the rule accepts
	// although they can make buffered writes differ from direct execution
	// (see Allowance); the connector refuses to open on any other.
	Allow Allowance
	// Decision is the table's decision record (decision.go); nil when the
	// rule has none.
	Decision *Decision
	// OrderBy (back tables; "" for none) is the normalized name of a column
	// the application sets on every write, newer writes to larger values
	// (an updated_at timestamp, a version): the multi-instance ordering
	// guard. A flushed assignment then takes effect only where the stored
	// value is NULL or not newer than the write's; deltas always do. An
	// UPDATE or upsert that assigns other columns but not this one goes to
	// the database. See the README's "Several instances: order_by".
	OrderBy string
	Line    int // line of the table's entry in the rules file
	// orderByLine is the line of the rule's order_by in the rules file (0
	// when built in code): the catalog check's errors point at it.
	orderByLine int
}

// Allowance is a set of schema features a back table's rule accepts. Without
// them, a connector refuses to open on a back table that has the feature,
// because buffering can then differ from direct execution:
//
//   - AllowTriggers: triggers run at flush time, in key order, once per
//     coalesced row rather than once per statement.
//   - AllowForeignKeys: a foreign key (from or to the table) is checked at
//     flush time; rows flushed in key order may meet a constraint in another
//     order than the program's, and the error arrives as a dead letter.
//   - AllowUnique: a unique constraint other than the key is checked at
//     flush time, in key order: a swap of values between rows can fail, as a
//     dead letter, where the program's order would have succeeded.
//   - AllowCheck: a CHECK constraint fails at flush time, as a dead letter,
//     not at Exec.
//   - AllowDefaults: a default drawn from a sequence or a volatile function
//     on a non-key column is evaluated at flush time and in key order.
type Allowance uint8

// The features an Allowance can hold, as the rules file spells them.
const (
	AllowTriggers    Allowance = 1 << iota // triggers (and PostgreSQL rewrite rules)
	AllowForeignKeys                       // foreign_keys, from or to the table
	AllowUnique                            // unique: unique constraints other than the key
	AllowCheck                             // check: CHECK constraints
	AllowDefaults                          // defaults: sequence or volatile defaults, generated columns
)

// allowNames are the rules file's spellings of the Allowance bits, in order.
var allowNames = []string{"triggers", "foreign_keys", "unique", "check", "defaults"}

// String lists the allowed features as the rules file spells them, e.g.
// "[triggers unique]".
func (a Allowance) String() string {
	var names []string
	for i, n := range allowNames {
		if a&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return "[" + strings.Join(names, " ") + "]"
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

// ParseRules parses a rules file (README.md, "Rules reference"). file names
// the file in errors and locates a relative journal path (it is taken
// relative to filepath.Dir(file); when file is "" the path is kept as
// written). The returned Rules has File set to file, and every table's
// MaxLoss, Batch and MaxDirty filled in (with the default when left out).
//
// Decoding is strict: unknown fields, duplicate keys, values of the wrong type
// and values out of range are errors, each a *RulesError carrying the line of
// the offending node. The file must hold exactly one YAML document, a mapping
// with the optional sections journal and tables and the optional
// manage_schema (true or false; see Rules.SchemaCheckOnly); an empty file is
// an error, while tables: {} (or no tables section) means every table is
// write-through. Every table needs mode (back
// or through); a back table also needs key. Fields left out take their
// defaults: max_loss DefaultMaxLoss, batch DefaultBatch (at most 100000),
// max_dirty DefaultMaxDirty, priority normal, reads flush, ack memory,
// on_full block, rows_affected exact, and the journal's fsync everysec. Fields that only matter to
// back tables are accepted, and checked, on through tables too. ack: disk
// needs a local journal (journal.path), ack: replicated a replicated one
// (journal.nats, with stream, replicas, lease and takeover, and the
// top-level instance:, which names this process).
//
// Table names are SQL names: an unquoted name is lower-cased, a name written
// in double quotes inside the YAML string ('"PageViews"') keeps its case, and
// schema.table is allowed with each part treated the same way. Key columns are
// normalized likewise. YAML anchors, aliases and merge keys (<<) may be used.
func ParseRules(data []byte, file string) (*Rules, error) {
	p := newRulesParser(file)
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
	case r.Instance != "" && checkNATSName(r.Instance) != nil:
		return r.errAt(0, "instance: %v", checkNATSName(r.Instance))
	case j.Path != "" && j.NATS != "":
		return r.errAt(j.Line, "journal: path and nats are exclusive (a local file journal, or a replicated one)")
	case j.NATS != "":
		return r.validateNATS()
	case j.Path == "":
		return r.errAt(j.Line, "journal: path (a local journal) or nats (a replicated one) is required")
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
	case t.RowsAffected > RowsAssume:
		return r.errAt(t.Line, "%s.rows_affected: unknown policy %d", where, t.RowsAffected)
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
	case t.Ack == AckDisk && (r.Journal == nil || r.Journal.Path == ""):
		return r.errAt(t.Line, "%s.ack: disk needs a local journal (journal.path)", where)
	case t.Ack == AckReplicated && (r.Journal == nil || r.Journal.NATS == ""):
		return r.errAt(t.Line, "%s.ack: replicated needs a replicated journal (journal.nats)", where)
	}
	if err := r.validateDecision(where, t); err != nil {
		return err
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
	return r.validateOrderBy(where, t, seen)
}

// validateOrderBy checks t.OrderBy: a column name, on a back table, not a
// key column (keys are never SET, so they cannot order writes).
func (r *Rules) validateOrderBy(where string, t *TableRule, keys map[string]bool) error {
	if t.OrderBy == "" {
		return nil
	}
	line := t.orderByLine
	if line == 0 {
		line = t.Line
	}
	switch {
	case t.Mode != ModeBack:
		return r.errAt(line, "%s.order_by: only a back table's flushes are ordered (mode is %s)", where, t.Mode)
	case keys[t.OrderBy]:
		return r.errAt(line, "%s.order_by: %s is a key column; order_by names a column every write sets, such as updated_at", where, t.OrderBy)
	}
	if err := checkNormalizedPart(t.OrderBy); err != nil {
		return r.errAt(line, "%s.order_by: bad column name %q: %v", where, t.OrderBy, err)
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
	out := &Rules{File: r.File, Tables: make(map[string]*TableRule, len(r.Tables)), SchemaCheckOnly: r.SchemaCheckOnly, Instance: r.Instance}
	if r.Journal != nil {
		j := *r.Journal
		out.Journal = &j
	}
	for k, t := range r.Tables {
		c := *t
		c.Name = names[k]
		c.Key = slices.Clone(t.Key)
		if t.Decision != nil {
			d := *t.Decision
			d.Mitigations = slices.Clone(d.Mitigations)
			c.Decision = &d
		}
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

// validateNATS checks a replicated journal's settings.
func (r *Rules) validateNATS() error {
	j := r.Journal
	switch {
	case j.Fsync != FsyncEverysec:
		return r.errAt(j.Line, "journal.fsync: applies to a local journal (path), not to nats: the NATS servers' sync_interval decides")
	case j.Replicas < 0 || j.Replicas > 5:
		return r.errAt(j.Line, "journal.replicas: must be 1 to 5, got %d", j.Replicas)
	case j.Lease < 0:
		return r.errAt(j.Line, "journal.lease: must be > 0, got %s", j.Lease)
	case j.Lease > 0 && j.Lease < time.Second:
		return r.errAt(j.Line, "journal.lease: must be at least 1s (the lease is renewed three times per lease), got %s", j.Lease)
	}
	if j.Stream != "" {
		if err := checkNATSName(j.Stream); err != nil {
			return r.errAt(j.Line, "journal.stream: %v", err)
		}
	}
	for _, u := range strings.Split(j.NATS, ",") {
		if strings.TrimSpace(u) == "" {
			return r.errAt(j.Line, "journal.nats: an empty URL in %q", j.NATS)
		}
	}
	return nil
}

// checkNATSName checks a stream or instance name: it is a token of a NATS
// subject and a key of a key-value bucket.
func checkNATSName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%q: must be 1 to 64 characters", s)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%q: only letters, digits, - and _ are allowed (it names a NATS subject token)", s)
		}
	}
	return nil
}
