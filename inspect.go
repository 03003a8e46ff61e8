package writeback

import (
	"cmp"
	"time"

	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/inspect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file serves the writeback command (cmd/writeback, through
// internal/inspect): the rules and catalog of a DSN, checked and explained
// by the connector's own code — ruleFindings for the open-time checks,
// planStatement for the classifier — on a connector that is never opened
// (no flusher, no journal, nothing buffered).

func init() { inspect.Open = openInspection }

// inspection is one DSN's rules and catalog.
type inspection struct {
	cn     *Connector
	tables map[string]*catalog.Table // nil: not read (no catalog, or not connected)
	read   bool                      // the catalog was read
}

func openInspection(ctx context.Context, dsn string, connect bool) (inspect.Session, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", inspect.ErrUsage, err)
	}
	base, err := baseConnector(cfg.driver, cfg.dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", inspect.ErrUsage, err)
	}
	in, err := newInspection(ctx, base, cfg, connect)
	if err != nil {
		closeQuietly(base)
		return nil, err
	}
	return in, nil
}

func newInspection(ctx context.Context, base driver.Connector, cfg dsnConfig, connect bool) (*inspection, error) {
	rules, err := LoadRules(cfg.rules)
	if err != nil {
		return nil, err
	}
	if cfg.journal != "" {
		if rules.Journal == nil {
			rules.Journal = &JournalRule{}
		}
		rules.Journal.Path = cfg.journal
	}
	if rules, err = rules.withDefaults(); err != nil {
		return nil, err
	}
	dia := dialect.Detect(base.Driver())
	if cfg.dialect != "" {
		if dia, err = dialect.ByName(cfg.dialect); err != nil {
			return nil, fmt.Errorf("%w: writeback: DSN: dialect=%s: %w", inspect.ErrUsage, cfg.dialect, err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cn := &Connector{base: base, rules: rules, log: log, dia: dia}
	cn.buf = newBuffer(rules, DefaultMaxBufferBytes, log)
	cn.resetStatementCache()
	in := &inspection{cn: cn}
	if !connect || !hasCatalog(dia) {
		return in, nil
	}
	db := sql.OpenDB(drivercall.NoClose(base))
	db.SetMaxOpenConns(1)
	defer db.Close()
	tables, err := catalog.Read(ctx, db, dia.Kind(), rules.names())
	if err != nil {
		return nil, fmt.Errorf("writeback: reading the catalog: %w", err)
	}
	// As after a DDL: a rule that does not fit marks its table, whose
	// statements then go to the database (the open would refuse instead).
	_ = cn.useSchema(tables, false)
	in.tables, in.read = tables, true
	return in, nil
}

func (in *inspection) DB() *sql.DB { return sql.OpenDB(drivercall.NoClose(in.cn.base)) }

func (in *inspection) Close() error {
	if cl, ok := in.cn.base.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

func (in *inspection) Setup() inspect.Setup {
	r := in.cn.rules
	s := inspect.Setup{Rules: r.File, Dialect: in.cn.dia.Kind().String()}
	switch j := r.Journal; {
	case j != nil && j.NATS != "":
		s.NATS, s.Replicas = j.NATS, cmp.Or(j.Replicas, DefaultReplicas)
	case j != nil:
		s.Journal, s.Fsync = j.Path, j.Fsync.String()
	}
	for _, t := range r.sortedByLine() {
		s.Tables = append(s.Tables, inspect.Rule{
			Name: t.Name, File: r.File, Line: t.Line, Back: t.Mode == ModeBack, Key: t.Key,
			MaxLoss: t.MaxLoss, MaxDirty: t.MaxDirty, Ack: t.Ack.String(), OnFull: t.OnFull.String(), Reads: t.Reads.String(),
			Decision: ruleDecision(t),
		})
	}
	return s
}

func (in *inspection) Check() inspect.Report {
	r := in.cn.rules
	rep := inspect.Report{Rules: r.File, Dialect: in.cn.dia.Kind().String(), Findings: []inspect.Finding{}, Tables: []inspect.Table{}}
	if !in.read {
		rep.Findings = append(rep.Findings, inspect.Finding{Level: inspect.Warning, Check: "catalog", File: r.File,
			Message: "the " + in.cn.dia.Kind().String() + " dialect has no catalog: the rules are not checked against the schema, and column types are not checked"})
	}
	for _, rule := range r.sortedByLine() {
		t := inspect.Table{Name: rule.Name, Mode: rule.Mode.String(), File: r.File, Line: rule.Line, Findings: []inspect.Finding{}, Buffers: []inspect.Sample{}}
		if in.read {
			tab := in.tables[rule.Name]
			exists := tab != nil
			t.Exists = &exists
			fits := true
			for _, f := range ruleFindings(r.File, rule, tab) {
				level := inspect.Warning
				if !f.warn {
					level, fits = inspect.Error, false
				}
				t.Findings = append(t.Findings, inspect.Finding{Level: level, Check: f.check, File: f.err.File, Line: f.err.Line, Message: f.err.Msg})
			}
			if fits && rule.Mode == ModeBack {
				t.Buffers = in.samples(rule, tab)
			}
		}
		if msg := rule.DecisionFinding(time.Now()); msg != "" {
			line := rule.Line
			if rule.Decision != nil {
				line = rule.Decision.Line
			}
			t.Findings = append(t.Findings, inspect.Finding{Level: inspect.Warning, Check: "decision", File: r.File, Line: line,
				Message: "tables." + rule.Name + ": " + msg})
		}
		rep.Tables = append(rep.Tables, t)
	}
	rep.Count()
	return rep
}

// ruleDecision is t's decision record for the writeback command.
func ruleDecision(t *TableRule) *inspect.RuleDecision {
	d := t.Decision
	if d == nil {
		return nil
	}
	rd := &inspect.RuleDecision{Data: d.Data, Regulatory: d.Regulatory, Mitigations: d.Mitigations,
		ResidualRisk: d.ResidualRisk, ApprovedBy: d.ApprovedBy, Line: d.Line}
	if d.LossCost != LossCostUnset {
		rd.LossCost = d.LossCost.String()
	}
	if d.Recoverable != RecoveryUnset {
		rd.Recoverable = d.Recoverable.String()
	}
	if !d.Review.IsZero() {
		rd.Review = d.Review.Format(time.DateOnly)
	}
	rd.Due = t.DecisionFinding(time.Now())
	return rd
}

// samples runs one statement of each kind the driver buffers through the
// classifier for table rule, built from its catalog.
func (in *inspection) samples(rule *TableRule, tab *catalog.Table) []inspect.Sample {
	kind := in.cn.dia.Kind()
	ph := func(n int) string {
		if kind == dialect.Postgres {
			return "$" + strconv.Itoa(n)
		}
		return "?"
	}
	q := func(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
	if kind == dialect.MySQL {
		q = func(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }
	}
	parts := strings.Split(rule.Name, ".")
	for i := range parts {
		parts[i] = q(parts[i])
	}
	table := strings.Join(parts, ".")
	var keys, others, numeric, nullable []string
	for _, k := range rule.Key {
		keys = append(keys, tab.Column(k).Name) // the rule fits: every key column exists
	}
	for _, col := range tab.Columns {
		if col.Generated || containsFold(keys, col.Name, kind) {
			continue
		}
		others = append(others, col.Name)
		if numericClass(col.Class) {
			numeric = append(numeric, col.Name)
		}
		if !col.NotNull {
			nullable = append(nullable, col.Name)
		}
	}
	n := 0
	next := func() string { n++; return ph(n) }
	where := func() string {
		var eqs []string
		for _, k := range keys {
			eqs = append(eqs, q(k)+" = "+next())
		}
		return " WHERE " + strings.Join(eqs, " AND ")
	}
	insert := func(verb string) string {
		cols := append(append([]string{}, keys...), others...)
		var qs, vals []string
		for _, c := range cols {
			qs, vals = append(qs, q(c)), append(vals, next())
		}
		return verb + " INTO " + table + " (" + strings.Join(qs, ", ") + ") VALUES (" + strings.Join(vals, ", ") + ")"
	}
	var keyList []string
	for _, k := range keys {
		keyList = append(keyList, q(k))
	}
	var out []inspect.Sample
	add := func(what, sql string) {
		n = 0
		d := in.Explain(sql)
		s := inspect.Sample{Kind: what, SQL: sql, Buffered: d.Verdict == inspect.Buffered || d.Verdict == inspect.ReadByKey}
		switch {
		case d.Verdict == inspect.Barrier && strings.HasPrefix(sql, "SELECT"):
			s.Reason = "it waits for the table's buffered rows to be committed first"
		case !s.Buffered || d.Verdict == inspect.ReadByKey:
			s.Reason = d.Reason
		}
		out = append(out, s)
	}
	if len(others) > 0 {
		add("UPDATE by key", "UPDATE "+table+" SET "+q(others[0])+" = "+next()+where())
	}
	if len(numeric) > 0 {
		var sets []string
		for _, c := range numeric {
			sets = append(sets, q(c)+" = "+q(c)+" + "+next())
		}
		add("UPDATE by key, deltas on "+strings.Join(numeric, ", "), "UPDATE "+table+" SET "+strings.Join(sets, ", ")+where())
	}
	if len(nullable) > 0 && len(others) > 0 {
		add("UPDATE by key guarded by "+nullable[0]+" IS NULL (soft delete)",
			"UPDATE "+table+" SET "+q(others[0])+" = "+next()+where()+" AND "+q(nullable[0])+" IS NULL")
	}
	add("INSERT", insert("INSERT"))
	if len(others) > 0 && kind != dialect.Generic && kind != dialect.MySQL {
		add("upsert (ON CONFLICT key DO UPDATE)", insert("INSERT")+" ON CONFLICT ("+strings.Join(keyList, ", ")+") DO UPDATE SET "+q(others[0])+" = EXCLUDED."+q(others[0]))
	}
	switch kind {
	case dialect.Postgres:
		add("INSERT ... ON CONFLICT DO NOTHING", insert("INSERT")+" ON CONFLICT ("+strings.Join(keyList, ", ")+") DO NOTHING")
	case dialect.SQLite:
		add("INSERT OR IGNORE", insert("INSERT OR IGNORE"))
		if len(others) > 0 {
			add("INSERT OR REPLACE, every column (REPLACE INTO too)", insert("INSERT OR REPLACE"))
		}
	}
	if rule.Reads == ReadsFlush { // with reads: stale no read waits
		add("SELECT by key, without waiting for a flush", "SELECT * FROM "+table+where())
	}
	return out
}

// containsFold reports whether names holds name as the database compares
// column names (SQLite, MySQL: without regard to ASCII case).
func containsFold(names []string, name string, kind dialect.Kind) bool {
	for _, n := range names {
		if n == name || (kind == dialect.SQLite || kind == dialect.MySQL) && sqlparse.FoldASCII(n) == sqlparse.FoldASCII(name) {
			return true
		}
	}
	return false
}

func (in *inspection) Explain(query string) inspect.Decision {
	cn := in.cn
	w := &whyNot{}
	info := cn.planStatement(query, w)
	d := inspect.Decision{SQL: query}
	var waits []string
	for _, t := range info.barrier {
		waits = append(waits, t.rule.Name)
	}
	switch {
	case info.target != nil && !in.literalsFit(info, w):
		// The plan buffers the shape; the values written in the text
		// are checked at Exec, and one of them sends it to the database.
	case info.target != nil:
		d.Verdict, d.Table, d.Reason = inspect.Buffered, info.target.rule.Name, describeBuffered(info)
		return d
	case info.read != nil:
		d.Verdict, d.Table = inspect.ReadByKey, info.read.t.rule.Name
		d.Reason = "a read of one row of " + d.Table + " by its key: the database's row plus the key's buffered deltas, without waiting for a flush (it waits, as any read, when the key has a buffered assignment or INSERT, or when a flush of the table begins meanwhile)"
		return d
	}
	why := w.reason
	c := info.c
	word, _ := firstWord(query)
	first := strings.ToLower(word)
	read := isPlainSelect(query)
	switch {
	case why != "":
	case c.Kind == sqlparse.Other && (first == "update" || first == "insert"):
		why = dialect.WhyNot(cn.dia, query)
	case c.BeginsTx && cn.dia.TxNeedsFlush(driver.TxOptions{}):
		d.Verdict = inspect.Barrier
		d.Waits = cn.rules.backNames()
		d.Reason = "begins a transaction, which starts after every back table is flushed (its snapshot must hold every acknowledged write); nothing is buffered on the connection until it ends"
		return d
	case c.BeginsTx:
		why = "begins a transaction: nothing is buffered on the connection until it ends (a transaction opened with BeginTx holds one bufferable write instead)"
	case c.EndsTx:
		why = "ends a transaction"
	case c.DDL:
		why = "changes the schema; the catalog of the back tables it names is read again after it"
	case len(c.Session) > 0 && !harmlessSession(cn.dia, c.Session):
		why = "changes a session setting (" + strings.Join(c.Session, ", ") + "): the connection's later writes go to the database, since the flush's connection does not share it"
	case read && len(waits) > 0:
		why = "reads " + strings.Join(waits, ", ")
	case read:
		why = "a read of no back table"
		if stale := cn.staleNamed(c.Names); len(stale) > 0 {
			why = "reads " + strings.Join(stale, ", ") + ", which has reads: stale: it sees the database without the buffered rows"
		}
	case first == "":
		why = "no statement"
	default:
		why = strings.ToUpper(first) + ": only UPDATE and INSERT (and upserts) are buffered"
	}
	if why == "" {
		why = "not a bufferable statement"
	}
	d.Reason, d.Waits = why, waits
	d.Verdict = inspect.Through
	if len(waits) > 0 {
		d.Verdict = inspect.Barrier
		if !read {
			d.Reason += "; it runs after the buffered rows of " + strings.Join(waits, ", ") + " are committed"
		}
	}
	return d
}

// literalsFit checks the values the statement's text holds (not its
// placeholders, bound only at Exec) as Exec checks them (exactUpdate,
// exactInsertRow: the same catalog functions), recording in w why one
// sends the statement to the database.
func (in *inspection) literalsFit(info *stmtInfo, w *whyNot) bool {
	kind := in.cn.dia.Kind()
	c := info.c
	bad := func(v any, col *catalog.Column, what string) bool {
		w.not(fmt.Sprintf("%s %v for column %s of type %s, which Exec sends to the database (the database would refuse or change it, or the sum would not be exact)", what, v, col.Name, col.Type))
		return false
	}
	switch c.Kind {
	case sqlparse.Update:
		for i, p := range info.keyPos {
			if op := c.Where[p].Val; op.IsLit && info.keyCols != nil {
				if _, ok := catalog.KeyValue(kind, info.keyCols[i], op.Lit); !ok {
					return bad(op.Lit, info.keyCols[i], "the key value")
				}
			}
		}
		for i, s := range c.Sets {
			if !s.Val.IsLit || info.setCols == nil {
				continue
			}
			ch, ok := resolveSets(nil, c.Sets[i:i+1], nil)
			if !ok {
				return bad(s.Val.Lit, info.setCols[i], "the value")
			}
			col := info.setCols[i]
			if ch[0].Delta {
				if !catalog.DeltaExact(kind, col, ch[0].Val) {
					return bad(s.Val.Lit, col, "the delta")
				}
				continue
			}
			if v, ok := catalog.AssignOK(kind, col, ch[0].Val); !ok || ch[0].Fn != dialect.FnNone && !extremeValueOK(kind, v) {
				return bad(s.Val.Lit, col, "the value")
			}
		}
	case sqlparse.Insert, sqlparse.Upsert:
		for _, row := range c.Rows {
			for j, op := range row {
				if !op.IsLit || info.insCols == nil {
					continue
				}
				col := info.insCols[j]
				if slices.Contains(info.keyPos, j) {
					if _, ok := catalog.KeyValue(kind, col, op.Lit); !ok || op.Lit == nil {
						return bad(op.Lit, col, "the key value")
					}
				} else if _, ok := catalog.AssignOK(kind, col, op.Lit); !ok {
					return bad(op.Lit, col, "the value")
				}
			}
		}
	}
	return true
}

// describeBuffered says what a bufferable statement writes.
func describeBuffered(info *stmtInfo) string {
	c, t := info.c, info.target
	key := "(" + strings.Join(t.rule.Key, ", ") + ")"
	var sb strings.Builder
	switch {
	case c.Kind == sqlparse.Update:
		sb.WriteString("UPDATE by key " + key + " of " + t.rule.Name + ": ")
		var parts []string
		for _, s := range c.Sets {
			switch {
			case s.Extreme > 0:
				parts = append(parts, "GREATEST on "+s.Col.Norm)
			case s.Extreme < 0:
				parts = append(parts, "LEAST on "+s.Col.Norm)
			case s.Delta != 0 && s.NullAsZero:
				parts = append(parts, "a delta on "+s.Col.Norm+" (NULL counted as 0)")
			case s.Delta != 0:
				parts = append(parts, "a delta on "+s.Col.Norm)
			default:
				parts = append(parts, "an assignment of "+s.Col.Norm)
			}
		}
		sb.WriteString(strings.Join(parts, ", "))
		if len(info.guards) > 0 {
			var gs []string
			for _, g := range c.Guards {
				gs = append(gs, g.Col.Norm+map[bool]string{true: " IS NOT NULL", false: " IS NULL"}[g.NotNull])
			}
			sb.WriteString("; guarded by " + strings.Join(gs, " AND ") + ", decided from the buffered row or one probe")
		}
	case info.ignore:
		sb.WriteString("INSERT into " + t.rule.Name + " that skips an existing key " + key + ": answered from what is known of the key (one probe for a key not known)")
	case c.OrReplace:
		fmt.Fprintf(&sb, "REPLACE of %s into %s: the row if key %s is absent, else every other column assigned (the key is the table's only unique key and the statement lists every column, so this is what REPLACE does)", rows(len(c.Rows)), t.rule.Name, key)
	case c.Kind == sqlparse.Upsert:
		var parts []string
		for _, s := range c.Upsert.Sets {
			if s.Delta != 0 {
				parts = append(parts, "a delta on "+s.Col.Norm)
			} else {
				parts = append(parts, "an assignment of "+s.Col.Norm)
			}
		}
		fmt.Fprintf(&sb, "upsert of %s into %s: the row if key %s is absent, else %s", rows(len(c.Rows)), t.rule.Name, key, strings.Join(parts, ", "))
	default:
		fmt.Fprintf(&sb, "INSERT of %s with the key %s into %s", rows(len(c.Rows)), key, t.rule.Name)
	}
	switch t.rule.Ack {
	case AckDisk:
		sb.WriteString(" (ack: disk: Exec returns once its journal record is fsynced)")
	case AckReplicated:
		sb.WriteString(" (ack: replicated: Exec returns once a quorum of the NATS stream stored its journal record)")
	}
	return sb.String()
}

func rows(n int) string {
	if n == 1 {
		return "1 row"
	}
	return strconv.Itoa(n) + " rows"
}

// staleNamed lists the reads: stale back tables among names.
func (cn *Connector) staleNamed(names []string) []string {
	var out []string
	for _, t := range cn.buf.tablesNamed(names) {
		if t.rule.Reads == ReadsStale {
			out = append(out, t.rule.Name)
		}
	}
	return out
}

// backNames lists the back tables' names, sorted.
func (r *Rules) backNames() []string {
	var out []string
	for _, t := range r.backTables() {
		out = append(out, t.Name)
	}
	return out
}
