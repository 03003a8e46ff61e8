package writeback

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/drivercall"
)

// This file joins the connector to the database's catalog
// (internal/catalog): at open, and again after DDL, the driver reads every
// rules table's columns, keys, constraints, triggers and views, refuses to
// open on a rule that does not fit them, and keeps what the statement path
// needs to buffer only what it can apply exactly.

// schemaState is what the connector knows of its rules' tables in the
// database. It is replaced whole, never changed.
type schemaState struct {
	tables map[string]*catalog.Table // by rule name; nil: no such table
	// views maps a view's lower-cased bare name to the back tables it
	// reads, for barriers.
	views map[string][]*tableState
	// broken holds back tables whose rule no longer fits the schema (a
	// DDL after open): their writes go to the database.
	broken map[string]error
}

// schemaKeeper loads and reloads the catalog.
type schemaKeeper struct {
	state   atomic.Pointer[schemaState] // nil: not read (yet, or never: generic dialect)
	pending atomic.Bool                 // a catalog exists but could not be read yet
	mu      sync.Mutex                  // one load at a time
	tried   time.Time                   // last failed load, under mu
}

// hasCatalog reports whether the dialect has a catalog to read.
func hasCatalog(d dialect.Dialect) bool { return d.Kind() != dialect.Generic }

// loadSchema reads the catalog of every rules table. With refuse, a rule
// that does not fit is an error (at open); otherwise such tables are marked
// broken and logged (after DDL).
func (c *Connector) loadSchema(ctx context.Context, refuse bool) error {
	db := sql.OpenDB(drivercall.NoClose(c.base))
	db.SetMaxOpenConns(1)
	defer db.Close()
	tables, err := catalog.Read(ctx, db, c.dia.Kind(), c.rules.names())
	if err != nil {
		return fmt.Errorf("writeback: reading the catalog: %w", err)
	}
	if err := c.useSchema(tables, refuse); err != nil {
		return err
	}
	c.schema.pending.Store(false)
	c.saveSchema()
	return nil
}

// useSchema checks the rules against tables and makes them what the
// statement path buffers by.
func (c *Connector) useSchema(tables map[string]*catalog.Table, refuse bool) error {
	st := &schemaState{tables: tables, views: map[string][]*tableState{}, broken: map[string]error{}}
	for _, rule := range c.rules.sortedByLine() {
		if err := checkRule(c.rules.File, rule, tables[rule.Name]); err != nil {
			if refuse {
				return err
			}
			st.broken[rule.Name] = err
			c.log.Error("writeback: a table does not fit its rule; its writes go to the database until a DDL statement makes it fit", "table", rule.Name, "err", err)
		}
	}
	for _, t := range c.buf.ordered {
		if tab := tables[t.rule.Name]; tab != nil {
			for _, v := range tab.Views {
				bare := strings.ToLower(v[strings.LastIndexByte(v, '.')+1:])
				st.views[bare] = append(st.views[bare], t)
			}
		}
	}
	c.schema.state.Store(st)
	c.resetStatementCache()
	return nil
}

// names lists the rules' table names.
func (r *Rules) names() []string {
	names := make([]string, 0, len(r.Tables))
	for name := range r.Tables {
		names = append(names, name)
	}
	return names
}

// schemaSnapshot is the file in the journal's directory that keeps the last
// catalog read, so that a connector can open while the database is down.
const schemaSnapshot = "WRITEBACK_CATALOG"

// saveSchema keeps the catalog just read beside the journal, if there is
// one; failing to is logged, not fatal (the snapshot only serves an open
// while the database is down).
func (c *Connector) saveSchema() {
	st := c.schema.state.Load()
	if c.rules.Journal == nil || c.rules.Journal.Path == "" || st == nil || c.buf.journal == nil {
		return // a replicated journal has no directory: its connector needs the database at open
	}
	path := filepath.Join(c.rules.Journal.Path, schemaSnapshot)
	if err := catalog.SaveSnapshot(path, c.dia.Kind(), st.tables); err != nil {
		c.log.Warn("writeback: could not keep the catalog beside the journal; an open while the database is down will not buffer until it answers", "path", path, "err", err)
	}
}

// openSchema reads the catalog at open. A rule that does not fit refuses
// the open. When the database cannot be reached, the catalog kept beside
// the journal at the last read stands in for it (the live one is read as
// soon as the database answers); without one, the catalog is left pending
// and nothing is buffered until it is read.
func (c *Connector) openSchema(timeout time.Duration, refuse bool) error {
	if !hasCatalog(c.dia) {
		c.log.Info("writeback: no catalog for the generic dialect: rules are not checked against the schema, column types are not checked", "dialect", c.dia.Kind())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := c.loadSchema(ctx, refuse)
	var re *RulesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return err
	case dialect.ClassOf(err) == dialect.Permanent:
		return err
	}
	c.schema.pending.Store(true)
	if c.rules.Journal != nil && c.rules.Journal.Path != "" {
		path := filepath.Join(c.rules.Journal.Path, schemaSnapshot)
		tables, read, serr := catalog.LoadSnapshot(path, c.dia.Kind())
		switch {
		case serr != nil:
			c.log.Warn("writeback: the catalog kept beside the journal cannot be read", "path", path, "err", serr)
		case tables != nil && c.snapshotCovers(tables):
			if err := c.useSchema(tables, refuse); err != nil {
				return err
			}
			c.log.Warn("writeback: the catalog could not be read at open; using the one kept beside the journal until the database answers", "read_at", read, "err", err)
			return nil
		}
	}
	c.log.Warn("writeback: the catalog could not be read at open; writes go to the database until it is read", "err", err)
	return nil
}

// snapshotCovers reports whether a kept catalog knows every rules table (a
// rule added since it was taken has never been checked).
func (c *Connector) snapshotCovers(tables map[string]*catalog.Table) bool {
	for name := range c.rules.Tables {
		if _, ok := tables[name]; !ok {
			return false
		}
	}
	return true
}

// ensureSchema reads the catalog when it could not be read at open (the
// database was down), at most once a second; until then nothing is
// buffered. It is called on the statement path only while pending.
func (c *Connector) ensureSchema(ctx context.Context) {
	c.schema.mu.Lock()
	defer c.schema.mu.Unlock()
	if !c.schema.pending.Load() || time.Since(c.schema.tried) < time.Second {
		return
	}
	if err := c.loadSchema(ctx, false); err != nil {
		c.schema.tried = time.Now()
	}
}

// afterDDL reads the catalog again once a DDL statement naming a back table
// has run, so what the statement path knows of column types is current.
func (c *Connector) afterDDL(ctx context.Context) {
	if !hasCatalog(c.dia) {
		return
	}
	c.buf.flusher.SchemaChanged()
	c.schema.mu.Lock()
	defer c.schema.mu.Unlock()
	if err := c.loadSchema(ctx, false); err != nil {
		// Nothing is buffered on stale types: wait for the next read.
		c.schema.state.Store(nil)
		c.schema.pending.Store(true)
		c.schema.tried = time.Now()
		c.resetStatementCache()
		c.log.Error("writeback: could not read the catalog after DDL; bufferable writes go to the database until it is read", "err", err)
	}
}

// sortedByLine lists the rules in file order, for errors in a stable order.
func (r *Rules) sortedByLine() []*TableRule {
	out := make([]*TableRule, 0, len(r.Tables))
	for _, t := range r.Tables {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *TableRule) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// ruleFinding is one result of checking a rule against its table's
// catalog: a refusal (the connector does not open on it), or a warning (a
// difference the rule accepts with allow:, or a limit worth knowing).
type ruleFinding struct {
	err   *RulesError // file, line and message
	check string      // what was checked: "table", "key_column", "collation", "key", "triggers", ...
	warn  bool
}

// checkRule checks one rule against its table's catalog and returns the
// first refusal ruleFindings finds, or nil when the rule fits.
func checkRule(file string, r *TableRule, t *catalog.Table) error {
	for _, f := range ruleFindings(file, r, t) {
		if !f.warn {
			return f.err
		}
	}
	return nil
}

// ruleFindings checks one rule against its table's catalog, and returns
// every finding, refusals in a fixed order (the open reports the first):
// the table exists; for a back table, each key column exists and compares
// exactly, the key is the primary key or a unique key over NOT NULL
// columns, and the table has no feature the rule does not allow. Features
// the rule allows, key types whose values are not canonicalized, and views
// that read the table are warnings.
func ruleFindings(file string, r *TableRule, t *catalog.Table) []ruleFinding {
	var out []ruleFinding
	add := func(check string, warn bool, format string, args ...any) {
		msg := "tables." + r.Name + ": " + fmt.Sprintf(format, args...)
		out = append(out, ruleFinding{err: &RulesError{File: file, Line: r.Line, Msg: msg}, check: check, warn: warn})
	}
	if t == nil {
		add("table", false, "table %s does not exist in the database", r.Name)
		return out
	}
	if r.Mode != ModeBack {
		return out
	}
	keysExist, keyOK := true, true
	for _, k := range r.Key {
		col := t.Column(k)
		switch {
		case col == nil:
			keysExist, keyOK = false, false
			add("key_column", false, "key column %s does not exist in table %s", k, r.Name)
		case col.CaseInsensitive:
			add("collation", false, "key column %s has a case-insensitive collation (%s): spellings the database takes as one key would be two buffered rows", k, strings.TrimSpace(col.Type+" "+col.Collation))
		case !catalog.KeyClassOK(col):
			add("key_type", true, "key column %s is of type %s, whose values writeback does not bring to one form: every statement keyed by it goes to the database (nothing is buffered)", k, col.Type)
		}
	}
	if keysExist {
		if ok, why := t.IsUniqueKey(r.Key); !ok {
			keyOK = false
			add("key", false, "key (%s) is not the primary key or a unique index over NOT NULL columns: %s", strings.Join(r.Key, ", "), why)
		}
	}
	if f, ok := orderByFinding(file, r, t); ok {
		out = append(out, f)
	}
	checkFeatures(r, t, keyOK, add)
	if len(t.Views) > 0 {
		add("views", true, "views read the table (%s): a read of one waits for the table's buffered rows, as a read of the table does; a view that reaches it only through a function is not seen", strings.Join(t.Views, ", "))
	}
	return out
}

// orderByFinding checks a back rule's order_by column against the
// catalog: it exists, and its values have an order the flush's guard can
// compare with <= (numbers, text, times). The error points at the
// order_by line.
func orderByFinding(file string, r *TableRule, t *catalog.Table) (ruleFinding, bool) {
	if r.OrderBy == "" {
		return ruleFinding{}, false
	}
	line := r.orderByLine
	if line == 0 {
		line = r.Line
	}
	refuse := func(format string, args ...any) (ruleFinding, bool) {
		msg := "tables." + r.Name + ".order_by: " + fmt.Sprintf(format, args...)
		return ruleFinding{err: &RulesError{File: file, Line: line, Msg: msg}, check: "order_by"}, true
	}
	col := t.Column(r.OrderBy)
	switch {
	case col == nil:
		return refuse("column %s does not exist in table %s", r.OrderBy, r.Name)
	case slices.ContainsFunc(r.Key, func(k string) bool { return t.Column(k) == col }):
		return refuse("column %s is a key column; order_by names a column every write sets, such as updated_at", col.Name)
	}
	switch col.Class {
	case catalog.Integer, catalog.Numeric, catalog.Float, catalog.Text, catalog.Char, catalog.Time:
		return ruleFinding{}, false
	}
	return refuse("column %s is of type %s, which has no order to compare writes by (want a number, text or a time)", col.Name, col.Type)
}

// checkFeatures finds the schema features that can make a buffered write
// differ from direct execution: refusals, or warnings when the rule allows
// them. Without keyOK (the rule's key is no key of the table) the findings
// that depend on which columns are the key (other unique constraints,
// defaults outside the key) are left out: they would change with the key.
func checkFeatures(r *TableRule, t *catalog.Table, keyOK bool, add func(check string, warn bool, format string, args ...any)) {
	feature := func(allow Allowance, check, name, format string, args ...any) {
		if r.Allow&allow != 0 {
			add(check, true, format+"; accepted by allow: [%s]", append(args, name)...)
			return
		}
		add(check, false, format+"; allow: [%s] in the rule accepts that (see the README)", append(args, name)...)
	}
	if len(t.Triggers) > 0 {
		feature(AllowTriggers, "triggers", "triggers", "table has triggers (%s), which would run at flush time, once per coalesced row", strings.Join(t.Triggers, ", "))
	}
	if len(t.Rules) > 0 {
		feature(AllowTriggers, "rules", "triggers", "table has rewrite rules (%s), which would act at flush time, once per coalesced row", strings.Join(t.Rules, ", "))
	}
	if fks := append(slices.Clone(t.ForeignKeysOut), t.ForeignKeysIn...); len(fks) > 0 {
		feature(AllowForeignKeys, "foreign_keys", "foreign_keys", "table has foreign keys (%s), checked at flush time in key order, not at Exec", strings.Join(fks, "; "))
	}
	if u := otherUniques(r, t); keyOK && u != "" {
		feature(AllowUnique, "unique", "unique", "table has a unique constraint other than the key (%s), checked at flush time in key order, not at Exec", u)
	}
	if len(t.Checks) > 0 {
		feature(AllowCheck, "check", "check", "table has check constraints (%s), checked at flush time, not at Exec", strings.Join(t.Checks, ", "))
	}
	if !keyOK {
		return
	}
	for _, col := range t.Columns {
		if slices.ContainsFunc(r.Key, func(k string) bool { return t.Column(k) == col }) {
			continue
		}
		switch {
		case col.Generated:
			feature(AllowDefaults, "defaults", "defaults", "column %s is generated, computed at flush time", col.Name)
		case col.SequenceDefault || col.VolatileDefault || col.Identity:
			what := "a default drawn from a sequence or a volatile function"
			if col.Default != "" {
				what += " (" + col.Default + ")"
			}
			feature(AllowDefaults, "defaults", "defaults", "column %s has %s, evaluated at flush time in key order", col.Name, what)
		}
	}
}

// otherUniques describes the table's unique constraints other than the
// rule's key ("" when none): the primary key when the key is another unique
// index, and every other unique index.
func otherUniques(r *TableRule, t *catalog.Table) string {
	same := func(cols []string) bool {
		if len(cols) != len(r.Key) {
			return false
		}
		for _, k := range r.Key {
			kc := t.Column(k)
			if !slices.ContainsFunc(cols, func(c string) bool { return t.Column(c) == kc }) {
				return false
			}
		}
		return true
	}
	var out []string
	if len(t.PrimaryKey) > 0 && !same(t.PrimaryKey) {
		out = append(out, "PRIMARY KEY ("+strings.Join(t.PrimaryKey, ", ")+")")
	}
	for _, u := range append(slices.Clone(t.Uniques), t.OtherUniques...) {
		if !same(u.Columns) {
			out = append(out, "UNIQUE "+u.Name)
		}
	}
	return strings.Join(out, ", ")
}
