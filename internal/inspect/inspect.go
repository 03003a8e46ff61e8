// Package inspect is how the writeback command (cmd/writeback) reaches the
// driver's own checks and classifier without widening the writeback
// package's API: the writeback package sets Open when it is imported, and
// the command calls it. The types here are the command's JSON output too
// (writeback check -json), so their field names are kept stable.
package inspect

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Level is how serious a Finding is.
type Level string

// The levels of a Finding.
const (
	// Error: the connector refuses to open on it.
	Error Level = "error"
	// Warning: the connector opens; something differs from direct
	// execution, or a table buffers less than it might.
	Warning Level = "warning"
)

// Finding is one result of the driver's checks of a rule against the
// database's schema.
type Finding struct {
	Level Level `json:"level"`
	// Check names what was checked: rules_file, catalog, table,
	// key_column, collation, key, key_type, triggers, rules,
	// foreign_keys, unique, check, defaults, views.
	Check string `json:"check"`
	// File and Line locate the rule (Line 0: no line applies).
	File string `json:"file"`
	Line int    `json:"line"`
	// Message says what is wrong, starting with the rule's field
	// ("tables.page_views: ..."); it holds no file or line.
	Message string `json:"message"`
}

// Sample is one kind of statement run through the classifier for a back
// table: whether it would be buffered, and if not, why.
type Sample struct {
	// Kind names the statement kind: "UPDATE by key", "INSERT", "upsert"...
	Kind string `json:"kind"`
	// SQL is the statement the classifier was given.
	SQL      string `json:"sql"`
	Buffered bool   `json:"buffered"`
	// Reason says why not (empty when buffered), or, for a read, how it
	// is answered.
	Reason string `json:"reason,omitempty"`
}

// Table is what the checks found for one rule.
type Table struct {
	Name string `json:"table"`
	Mode string `json:"mode"` // back or through
	File string `json:"file"`
	Line int    `json:"line"`
	// Exists says whether the table is in the database; nil when the
	// dialect has no catalog to tell.
	Exists   *bool     `json:"exists,omitempty"`
	Findings []Finding `json:"findings"`
	// Buffers lists, for a back table whose rule fits, each statement
	// kind and whether it would be buffered; empty otherwise.
	Buffers []Sample `json:"buffers"`
}

// Report is the result of checking a DSN's rules against its database.
type Report struct {
	Rules   string `json:"rules"`
	Dialect string `json:"dialect"`
	// Findings are those of no one table (the rules file, the catalog).
	Findings []Finding `json:"findings"`
	Tables   []Table   `json:"tables"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
}

// Count sets Errors and Warnings from the findings.
func (r *Report) Count() {
	r.Errors, r.Warnings = 0, 0
	count := func(fs []Finding) {
		for _, f := range fs {
			if f.Level == Error {
				r.Errors++
			} else {
				r.Warnings++
			}
		}
	}
	count(r.Findings)
	for _, t := range r.Tables {
		count(t.Findings)
	}
}

// Verdicts of a Decision.
const (
	// Buffered: acknowledged from memory, coalesced, flushed later.
	Buffered = "buffered"
	// Through: sent to the database at once; it names no back table.
	Through = "through"
	// Barrier: sent to the database once the buffered rows of the back
	// tables it names are committed.
	Barrier = "barrier"
	// ReadByKey: a read of one row by key, answered by the database plus
	// the key's buffered deltas, without waiting for a flush.
	ReadByKey = "read by key"
)

// Decision is what the driver does with one SQL text.
type Decision struct {
	SQL     string `json:"sql"`
	Verdict string `json:"decision"`
	// Reason says what was decided and why, in words.
	Reason string `json:"reason"`
	// Table is the back table written (buffered) or read by key.
	Table string `json:"table,omitempty"`
	// Waits lists the back tables whose buffered rows are committed
	// before the statement runs.
	Waits []string `json:"waits_for,omitempty"`
}

// Rule is one table's rule, as the durability figures need it.
type Rule struct {
	Name     string
	File     string
	Line     int
	Back     bool
	Key      []string
	MaxLoss  time.Duration
	MaxDirty int
	Ack      string // memory or disk
	OnFull   string
	Reads    string
	// Decision is the rule's decision record; nil when it has none.
	Decision *RuleDecision
}

// RuleDecision is a rule's written decision record, as the rules file
// says it.
type RuleDecision struct {
	Data         string   `json:"data,omitempty"`
	LossCost     string   `json:"loss_cost,omitempty"`
	Recoverable  string   `json:"recoverable,omitempty"`
	Regulatory   bool     `json:"regulatory,omitempty"`
	Mitigations  []string `json:"mitigations,omitempty"`
	ResidualRisk string   `json:"residual_risk,omitempty"`
	ApprovedBy   string   `json:"approved_by,omitempty"`
	Review       string   `json:"review,omitempty"` // YYYY-MM-DD
	Line         int      `json:"line"`
	// Due is the finding of a record past its review date ("" if none).
	Due string `json:"due,omitempty"`
}

// Setup is a DSN's rules.
type Setup struct {
	Rules   string
	Dialect string
	// Journal is the journal's directory, "" without one; Fsync its
	// policy (always, everysec or no).
	Journal, Fsync string
	// NATS is a replicated journal's servers ("" without one), Replicas
	// its stream's replica count.
	NATS     string
	Replicas int
	Tables   []Rule // in file order
}

// Session is one DSN's rules and, when connected, its database's catalog.
type Session interface {
	// Setup returns the rules.
	Setup() Setup
	// Check runs the connector's open-time checks and reports every
	// finding, and what each back table would buffer.
	Check() Report
	// Explain says what the connector would do with one SQL text, as
	// the statement path decides it from the text (values bound at Exec,
	// a transaction or a session setting can still send a bufferable
	// statement to the database).
	Explain(sql string) Decision
	// DB returns a database handle on the base connector (the caller
	// closes it; the base connector stays open until Close).
	DB() *sql.DB
	// Close closes the base connector.
	Close() error
}

// ErrUsage marks an error in how the tool was called (a bad DSN).
var ErrUsage = errors.New("usage")

// Open parses dsn as sql.Open("writeback", dsn) does and loads its rules;
// with connect it also reads the catalog of the rules' tables from the
// database. It never opens the journal and never buffers. A bad DSN is an
// error wrapping ErrUsage; a bad rules file a *writeback.RulesError; a
// database that cannot be read any other error. The writeback package sets
// it when it is imported.
var Open func(ctx context.Context, dsn string, connect bool) (Session, error)
