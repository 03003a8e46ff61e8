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
	return fmt.Errorf("writeback: journal %s: recovery needs the database, which failed (the journal is kept and replayed on the next open): %w", d.name, err)
}

// CheckpointsError is a recovery that could not begin: the database's
// checkpoints could not be read, and nothing was replayed.
type CheckpointsError struct{ Err error }

func (e *CheckpointsError) Error() string { return e.Err.Error() }
func (e *CheckpointsError) Unwrap() error { return e.Err }

// Recover replays the journal's unapplied records into the buffer and
// flushes them, before the connector serves anything. The database (db)
// says which records are applied: those are skipped, so replay is
// exactly-once. On an error the journal is left as it is. It returns the
// rows replayed.
func (d *Journal) Recover(ctx context.Context, db *sql.DB, r Replayer) (int, error) {
	cp, err := d.loadCheckpoints(ctx, db)
	var se *SchemaError
	if errors.As(err, &se) {
		return 0, err // not the database's absence: waiting for it cannot help
	}
	if err != nil {
		return 0, &CheckpointsError{d.Unreachable(err)}
	}
	// Every record the journal still holds is read, not only those above
	// the lowest watermark of the rules' tables: a table the rules no longer
	// buffer may have records below it that are not applied. Compaction
	// keeps what is held close to what is unapplied.
	each := d.eachRecord
	if !d.fileJournal {
		// A backend reads its records over the network, into memory: read
		// them once for both passes of replay, not once per pass.
		h, err := d.Hold()
		if err != nil {
			return 0, err
		}
		each = h.each
	}
	replayed, err := d.replay(ctx, cp, r, each)
	if err != nil {
		return replayed, err
	}
	if err := r.Flush(ctx); err != nil {
		return replayed, d.Unreachable(err)
	}
	if err := d.renewIDIfBehind(cp, d.j.LastLSN()); err != nil {
		return replayed, err
	}
	if err := d.Compact(true); err != nil {
		return replayed, fmt.Errorf("writeback: journal %s: compact: %w", d.name, err)
	}
	d.ready.Store(true)
	return replayed, nil
}

// Held is every record a journal held when it was opened while the
// database was down, read into memory: which of them are applied is known
// only once the database answers (RecoverHeld). Records appended after
// are not in it.
type Held struct {
	upTo uint64 // the journal's last LSN at the read
	recs []heldRecord
}

type heldRecord struct {
	lsn uint64
	rec *Record
}

// each hands fn every held record, in LSN order.
func (h *Held) each(fn func(uint64, *Record) error) error {
	for _, hr := range h.recs {
		if err := fn(hr.lsn, hr.rec); err != nil {
			return err
		}
	}
	return nil
}

// Records is how many records are held.
func (h *Held) Records() int { return len(h.recs) }

// Hold reads and decodes every record the journal holds, for RecoverHeld.
// It needs no database; it fails only on a journal it cannot read.
func (d *Journal) Hold() (*Held, error) {
	h := &Held{upTo: d.j.LastLSN()}
	err := d.eachRecord(func(lsn uint64, rec *Record) error {
		h.recs = append(h.recs, heldRecord{lsn, rec})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// eachRecord decodes every record the journal holds, in LSN order, and
// hands it to fn; a damaged journal's error names the repair.
func (d *Journal) eachRecord(fn func(lsn uint64, rec *Record) error) error {
	err := d.j.Replay(0, func(lsn uint64, b []byte) error {
		rec, err := DecodeRecord(b)
		if err != nil {
			return fmt.Errorf("writeback: journal %s: record %d: %w", d.name, lsn, err)
		}
		return fn(lsn, rec)
	})
	var ce *journal.CorruptError
	if errors.As(err, &ce) {
		return fmt.Errorf("writeback: %w", err)
	}
	return err
}

// RecoverHeld finishes a recovery that had to wait for the database: it
// reads the checkpoints and replays the held records the database lacks
// through r, which must place them before every write the connector took
// since it opened. It does not flush (the caller is about to), and enables
// compaction. On an error nothing is replayed and it may be called again.
func (d *Journal) RecoverHeld(ctx context.Context, db *sql.DB, h *Held, r Replayer) (int, error) {
	cp, err := d.loadCheckpoints(ctx, db)
	var se *SchemaError
	if errors.As(err, &se) {
		return 0, err
	}
	if err != nil {
		return 0, d.Unreachable(err)
	}
	replayed, err := d.replay(ctx, cp, r, h.each)
	if err != nil {
		return replayed, err
	}
	// Marks above what the journal held at open would hide the records
	// appended since (renewIDIfBehind). The held records the database
	// lacks are now buffered under the new id; the ones it has stay in the
	// journal until compaction, so a crash before the next full flush would
	// replay them again: the window writeback journal fix leaves, kept as short
	// as the flush interval.
	if err := d.renewIDIfBehind(cp, h.upTo); err != nil {
		return replayed, err
	}
	h.recs = nil
	d.ready.Store(true)
	return replayed, nil
}

// replay sets each table's applied watermark from cp and hands r every
// record that cp does not say is applied, in LSN order.
func (d *Journal) replay(ctx context.Context, cp *Checkpoints, r Replayer, each func(func(uint64, *Record) error) error) (int, error) {
	for _, t := range d.tables {
		t.SetApplied(cp.watermark[t.Name()])
	}
	complete, cut, err := completeGroups(each)
	if err != nil {
		return 0, err
	}
	if cut > 0 {
		d.log.Warn("writeback: journal holds part of a transaction whose last record was never written (the process stopped while journaling its commit); none of it is replayed, as the commit did not return", "journal", d.name, "records", cut)
	}
	replayed := 0
	err = each(func(lsn uint64, rec *Record) error {
		if rec.Group != nil && !complete[rec.Group.ID] {
			return nil
		}
		if lsn <= cp.watermark[rec.Table] {
			return nil
		}
		if !r.Buffers(rec.Table) {
			if recordCovered(cp, rec, lsn) {
				return nil
			}
			return fmt.Errorf("writeback: journal %s: record %d is an unapplied write to table %s, which the rules no longer buffer; restore its rule (mode: back) so that recovery can apply it", d.name, lsn, rec.Table)
		}
		n, err := r.Replay(ctx, rec, lsn, cp)
		replayed += n
		return err
	})
	return replayed, err
}

// completeGroups reads the records once and returns the groups (committed
// transactions) whose last record the journal holds, and how many records
// belong to the others. A group's records are appended in order, and
// compaction drops only records up to a point, so a group whose last record
// is present has every record that is not yet applied; one without it was
// cut by a crash (or a refused append) before its commit returned.
func completeGroups(each func(func(uint64, *Record) error) error) (complete map[uint64]bool, cut int, err error) {
	complete = map[uint64]bool{}
	seen := map[uint64]int{}
	err = each(func(_ uint64, rec *Record) error {
		if g := rec.Group; g != nil {
			seen[g.ID]++
			if g.Last() {
				complete[g.ID] = true
			}
		}
		return nil
	})
	for id, n := range seen {
		if !complete[id] {
			cut += n
		}
	}
	return complete, cut, err
}

// renewIDIfBehind gives the journal a new id when the database's marks are
// ahead of its last record (upTo). LSNs are only handed out again after the
// journal lost its tail (writeback journal fix); the marks of the lost records
// would hide the new ones. A new id starts the marks afresh.
func (d *Journal) renewIDIfBehind(cp *Checkpoints, upTo uint64) error {
	maxMarked := uint64(0)
	for _, wm := range cp.watermark {
		maxMarked = max(maxMarked, wm)
	}
	for _, keys := range cp.applied {
		for _, lsn := range keys {
			maxMarked = max(maxMarked, lsn)
		}
	}
	if maxMarked <= upTo {
		return nil
	}
	if d.fixedID {
		// A backend's id is its instance name, which takeover and restarts
		// on other hosts look up: it numbers on above the marks instead.
		// Its records applied and purged, a backend's log may hold none:
		// being behind is then normal.
		if a, ok := d.j.(interface{ Advance(uint64) }); ok {
			a.Advance(maxMarked)
			return nil
		}
		return fmt.Errorf("writeback: journal %s: the database's checkpoints (up to record %d) are ahead of the journal (%d), and the journal cannot number above them", d.name, maxMarked, upTo)
	}
	id, err := journalID(d.dir, true)
	if err != nil {
		return fmt.Errorf("writeback: journal %s: %w", d.name, err)
	}
	d.log.Warn("writeback: the journal is behind the database's checkpoints (repaired or replaced); it gets a new id", "journal", d.name, "id", id)
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
