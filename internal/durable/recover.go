package durable

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/journal"
)

// Replayer is the connector's side of recovery.
type Replayer interface {
	// Replay buffers again the rows of rec that cp does not cover, with the
	// record's own LSN, and returns how many it buffered.
	Replay(ctx context.Context, rec *Record, lsn uint64, cp *Checkpoints) (int, error)
	// Buffers reports whether the rules buffer table (mode: back).
	Buffers(table string) bool
	// Flush commits everything buffered.
	Flush(ctx context.Context) error
}

// Unreachable wraps an error of the database met during recovery.
func (d *Journal) Unreachable(err error) error {
	return fmt.Errorf("writeback: journal %s: recovery needs the database, which failed (the journal is kept and replayed on the next open): %w", d.dir, err)
}

// Recover replays the journal's unapplied records into the buffer and
// flushes them, before the connector serves anything. The database (db)
// says which records are applied: those are skipped, so replay is
// exactly-once. On an error the journal is left as it is. It returns the
// rows replayed.
func (d *Journal) Recover(ctx context.Context, db *sql.DB, r Replayer) (int, error) {
	cp, err := LoadCheckpoints(ctx, db, d.kind, d.ID())
	if err != nil {
		return 0, d.Unreachable(err)
	}
	for _, t := range d.tables {
		t.SetApplied(cp.watermark[t.Name()])
	}
	replayed := 0
	// Every record the journal still holds is read, not only those above
	// the lowest watermark of the rules' tables: a table the rules no longer
	// buffer may have records below it that are not applied. Compaction
	// keeps what is held close to what is unapplied.
	err = d.j.Replay(0, func(lsn uint64, b []byte) error {
		rec, err := DecodeRecord(b)
		if err != nil {
			return fmt.Errorf("writeback: journal %s: record %d: %w", d.dir, lsn, err)
		}
		if lsn <= cp.watermark[rec.Table] {
			return nil
		}
		if !r.Buffers(rec.Table) {
			if recordCovered(cp, rec, lsn) {
				return nil
			}
			return fmt.Errorf("writeback: journal %s: record %d is an unapplied write to table %s, which the rules no longer buffer; restore its rule (mode: back) so that recovery can apply it", d.dir, lsn, rec.Table)
		}
		n, err := r.Replay(ctx, rec, lsn, cp)
		replayed += n
		return err
	})
	if err != nil {
		var ce *journal.CorruptError
		if errors.As(err, &ce) {
			return replayed, fmt.Errorf("writeback: %w", err)
		}
		return replayed, err
	}
	if err := r.Flush(ctx); err != nil {
		return replayed, d.Unreachable(err)
	}
	if err := d.renewIDIfBehind(cp); err != nil {
		return replayed, err
	}
	if err := d.Compact(true); err != nil {
		return replayed, fmt.Errorf("writeback: journal %s: compact: %w", d.dir, err)
	}
	d.ready.Store(true)
	return replayed, nil
}

// renewIDIfBehind gives the journal a new id when the database's marks are
// ahead of it. LSNs are only handed out again after the journal lost its
// tail (the -fix repair); the marks of the lost records would hide the new
// ones. Everything is applied when it runs: a new id starts the marks afresh.
func (d *Journal) renewIDIfBehind(cp *Checkpoints) error {
	maxMarked := uint64(0)
	for _, wm := range cp.watermark {
		maxMarked = max(maxMarked, wm)
	}
	for _, keys := range cp.applied {
		for _, lsn := range keys {
			maxMarked = max(maxMarked, lsn)
		}
	}
	if maxMarked <= d.j.LastLSN() {
		return nil
	}
	id, err := journalID(d.dir, true)
	if err != nil {
		return fmt.Errorf("writeback: journal %s: %w", d.dir, err)
	}
	d.log.Warn("writeback: the journal is behind the database's checkpoints (repaired or replaced); it gets a new id", "journal", d.dir, "id", id)
	d.idp.Store(&id)
	for _, t := range d.tables {
		t.SetApplied(0)
	}
	return nil
}

// recordCovered reports whether the database says every row of rec is applied.
func recordCovered(cp *Checkpoints, rec *Record, lsn uint64) bool {
	keys := rec.Keys
	if rec.Op == dialect.Update {
		keys = [][]any{rec.Key}
	}
	for _, k := range keys {
		if !dirtyset.KeysValid(k) || !cp.Covers(rec.Table, dirtyset.KeyText(k), lsn) {
			return false
		}
	}
	return true
}
