package writeback

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/journal"
)

// This file joins the connector to its journal (internal/durable): opening
// it with the rules' settings, and recovery, which replays the records the
// database lacks into the dirty set before the connector serves anything.

// openJournal opens the journal the rules name.
func (c *Connector) openJournal(rules *Rules, cfg *config) (*durable.Journal, error) {
	jr := rules.Journal
	where := "journal " + jr.Path
	if rules.File != "" && jr.Line > 0 {
		where = fmt.Sprintf("%s:%d: journal %s", rules.File, jr.Line, jr.Path)
	}
	policy := [...]journal.Policy{FsyncEverysec: journal.Everysec, FsyncAlways: journal.Always, FsyncNo: journal.No}[jr.Fsync]
	return durable.Open(jr.Path, c.dia.Kind(), c.buf.sets(), durable.Options{
		Fsync: policy, Where: where, Log: cfg.log,
		SegmentBytes: cfg.segmentBytes, CompactEvery: cfg.compactEvery, Hook: cfg.hook, Fault: cfg.journalFault,
	})
}

// recoverJournal replays the journal's unapplied records and flushes them.
func (c *Connector) recoverJournal(ctx context.Context) error {
	db := sql.OpenDB(drivercall.NoClose(c.base))
	db.SetMaxOpenConns(1)
	defer db.Close()
	replayed, err := c.buf.journal.Recover(ctx, db, replayer{c})
	if err != nil {
		return err
	}
	if replayed > 0 {
		c.log.Info("writeback: journal replayed", "journal", c.buf.journal.Dir(), "rows", replayed)
	}
	return nil
}

// replayer is the connector as durable.Journal.Recover sees it.
type replayer struct{ c *Connector }

func (r replayer) Buffers(table string) bool       { return r.c.buf.tables[table] != nil }
func (r replayer) Flush(ctx context.Context) error { return r.c.Flush(ctx) }

// Replay buffers one journal record again, with its own LSN, skipping the
// rows the database says are applied. A record that cannot be coalesced with
// what is already replayed (when it was written the earlier rows had been
// flushed) flushes the table first.
func (r replayer) Replay(ctx context.Context, rec *durable.Record, lsn uint64, cp *durable.Checkpoints) (int, error) {
	c := r.c
	t := c.buf.tables[rec.Table]
	jw := c.buf.journal.Replayed(lsn)
	var try func() dirtyset.Outcome
	n := 0
	switch rec.Op {
	case dialect.Update:
		if !t.set.CheckKey(rec.Key) {
			return 0, fmt.Errorf("writeback: journal record %d: key of %s does not match the table's key kinds", lsn, t.rule.Name)
		}
		if cp.Covers(t.rule.Name, dirtyset.KeyText(rec.Key), lsn) {
			return 0, nil
		}
		n = 1
		try = func() dirtyset.Outcome {
			out, _ := t.set.Update(rec.Key, rec.Changes, &rec.Names, jw, false)
			return out
		}
	case dialect.Insert:
		var keys, rows [][]any
		for i, k := range rec.Keys {
			if !t.set.CheckKey(k) {
				return 0, fmt.Errorf("writeback: journal record %d: key of %s does not match the table's key kinds", lsn, t.rule.Name)
			}
			if !cp.Covers(t.rule.Name, dirtyset.KeyText(k), lsn) {
				keys = append(keys, k)
				rows = append(rows, rec.Rows[i])
			}
		}
		if len(rows) == 0 {
			return 0, nil
		}
		n = len(rows)
		try = func() dirtyset.Outcome {
			out, _ := t.set.Insert(keys, rows, rec.Cols, &rec.Names, jw, false)
			return out
		}
	}
	if try() == dirtyset.Buffered {
		return n, nil
	}
	if err := c.buf.barrier(ctx, []*tableState{t}); err != nil {
		return 0, c.buf.journal.Unreachable(err)
	}
	if try() != dirtyset.Buffered {
		return 0, fmt.Errorf("writeback: journal %s: record %d of %s cannot be buffered again", c.buf.journal.Dir(), lsn, t.rule.Name)
	}
	return n, nil
}
