package writeback

import (
	"log/slog"
	"slices"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/flush"
	"github.com/writeback-go/writeback/internal/logagg"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file joins the connector to its flush workers (internal/flush): one
// per back table, so a table whose flush is slow, locked or failing never
// delays another; and it reports what a flush could not apply.

// DeadLetter is a buffered write that did not take effect in the database: the
// database refused its row permanently, or a flushed UPDATE matched no row.
// It carries everything needed to inspect or replay the write.
type DeadLetter struct {
	Time    time.Time
	Table   string   // the rule's table name
	Key     []any    // key values in the rule's key order
	Op      string   // "insert", "update" or "upsert"
	Columns []string // the coalesced columns, normalized (upsert: the row to insert)
	Values  []any    // their values (for an update, a delta where Delta[i])
	Delta   []bool   // update only: Values[i] is added to the column
	// Func (update only; nil when none) names the function of the column's
	// current value Values[i] is applied with: "coalesce" (a delta that
	// counts NULL as 0), "greatest", "least"; "" for none.
	Func []string
	// Upsert only: the update to apply when the key exists, as Columns,
	// Values and Delta are for an update.
	UpdateColumns []string
	UpdateValues  []any
	UpdateDelta   []bool
	Writes        int   // application writes coalesced into this row
	NoMatch       bool  // an UPDATE whose key matched no row
	Err           error // the database's error; nil when NoMatch
}

// identNorms is the normalized names of ids.
func identNorms(ids []sqlparse.Ident) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Norm
	}
	return out
}

// startFlusher creates the flush workers of every back table and starts them.
func (c *Connector) startFlusher(cfg *config) {
	f := flush.New(flush.Config{
		Connector:    c.base,
		Dialect:      c.dia,
		Journal:      c.buf.journal,
		Log:          c.log,
		RowLogs:      c.rowLogs,
		OnDead:       c.deadLetter,
		CloseTimeout: cfg.closeTimeout,
		Connections:  cfg.flushConns,
		Hook:         cfg.hook,
		Gate:         c.finishRecovery,
	})
	for _, t := range c.buf.ordered {
		t.flush = f.AddTable(flush.TableConfig{
			Set: t.set, Name: t.rule.Name, MaxLoss: t.rule.MaxLoss,
			Batch: t.rule.Batch, Priority: t.rule.Priority.rank(), Locks: &t.locks,
			OrderBy: t.rule.OrderBy,
		})
	}
	c.buf.flusher = f
	f.Start()
}

// The kinds of per-row log lines: a flush can dead-letter thousands of rows
// at once, so their lines are aggregated (internal/logagg).
var (
	noMatchLog = logagg.Kind{Level: slog.LevelWarn, Msg: "writeback: flushed UPDATEs matched no row"}
	refusedLog = logagg.Kind{Level: slog.LevelError, Msg: "writeback: the database refused buffered rows"}
)

// deadLetter reports a row that did not take effect: log, file and hook. It
// runs on the table's flush worker, outside every dirty-set lock.
func (c *Connector) deadLetter(t *flush.Table, r *dirtyset.Row, err error, noMatch bool) {
	dl := DeadLetter{Time: time.Now(), Table: t.Name(), Key: r.Key(), Writes: r.Writes, NoMatch: noMatch, Err: err}
	dl.Op = "update"
	switch r.Op {
	case dialect.Insert:
		dl.Op = "insert"
	case dialect.Upsert:
		dl.Op = "upsert"
		dl.UpdateColumns, dl.UpdateValues, dl.UpdateDelta = identNorms(r.UCols()), r.UVals(), r.UDelta()
	}
	for _, col := range r.Cols() {
		dl.Columns = append(dl.Columns, col.Norm)
	}
	dl.Values = r.Vals
	dl.Delta = slices.Clone(r.Delta()) // the row shares its flags with others: the hook may keep or change them
	if ts := c.buf.tables[t.Name()]; ts != nil && ts.known != nil {
		ts.known.forget() // an INSERT refused, or a row gone: what was learned may be wrong
	}
	if fns := r.Fn(); slices.ContainsFunc(fns, func(fn dialect.ColFn) bool { return fn != dialect.FnNone }) {
		dl.Func = make([]string, len(fns))
		for i, fn := range fns {
			dl.Func[i] = fn.String()
		}
	}
	if noMatch {
		c.rowLogs.Add(noMatchLog, dl.Table, dl.Key, nil)
	} else {
		c.rowLogs.Add(refusedLog, dl.Table, dl.Key, err)
	}
	if c.deadFile != nil {
		if werr := c.deadFile.write(dl); werr != nil {
			// The row is still traced: the log line carries it whole. Not
			// aggregated: this line is the row's only record.
			c.log.Error("writeback: could not append to the dead-letter file", "path", c.deadFile.path, "err", werr, "dead_letter", string(encodeDeadLetter(dl)))
		}
	}
	if c.onDead != nil {
		c.onDead(dl)
	}
}
