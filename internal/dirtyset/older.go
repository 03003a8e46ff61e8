package dirtyset

import (
	"math"
	"time"
)

// This file serves a recovery that had to wait for the database: the
// connector opened while the database was down, took new writes, and only
// later learnt which of its journal's older records the database lacks.
// Those records are replayed into an older table (NewOlder) and then
// adopted by the live one (Adopt), where each of their rows is flushed
// before the live row of its key, as a row put back by a failed flush is.

// olderSeqs is where a table's own row numbers start: the numbers below it
// are kept for rows adopted from older tables, so that they sort first
// among the rows of their key (Compare).
const olderSeqs = 1 << 40

// NewOlder returns an empty table for rows older than every row of t. Its
// rows coalesce among themselves as t's do; it has no bounds (the records
// it holds were acknowledged long ago) and no journal bookkeeping of its
// own beyond the rows' LSNs. It belongs to its caller, who hands it to
// t.Adopt when done.
func (t *Table) NewOlder() *Table {
	cfg := t.cfg
	cfg.MaxDirty = math.MaxInt32
	cfg.Wake = nil
	o := (&Shared{maxBytes: math.MaxInt64}).NewTable(cfg)
	o.rowSeq.Store(t.olderSeq.Load())
	return o
}

// Adopt moves every row of o, a table made by t.NewOlder, into t as rows
// to write before any row t already has of their key. Rows of an older
// table adopted earlier stay before them. o is empty and unusable after.
func (t *Table) Adopt(o *Table) {
	var rows []*Row
	for _, s := range o.shards {
		s.mu.Lock()
		rows = append(rows, s.lru.Values()...)
		for _, r := range s.evicted {
			rows = append(rows, r)
		}
		rows = append(rows, s.retry...)
		s.lru.Purge()
		s.evicted = map[ID]*Row{}
		s.retry = nil
		s.mu.Unlock()
	}
	t.olderSeq.Store(o.rowSeq.Load()) // 2^40 rows would not fit in memory
	if n := o.Names(); n != nil {
		t.noteNames(n)
	}
	if len(rows) == 0 {
		return
	}
	now := time.Now()
	var size int64
	for _, s := range t.shards {
		s.mu.Lock()
	}
	for _, r := range rows {
		s := t.shardFor(r.ID())
		r.since = monoOf(now) // when the database could first be told of it
		s.retry = append(s.retry, r)
		s.oldest = minNonZero(s.oldest, now)
		size += r.size
		// Under every shard lock, as noteLSNLocked: a full take after
		// this sees the adopted rows and an UpTo that covers them.
		s.lastLSN = max(s.lastLSN, r.MaxLSN)
		s.journaled += r.Recs
	}
	t.pending.Add(int64(len(rows)))
	t.bytes.Add(size)
	t.oldest.CompareAndSwap(0, now.UnixNano())
	for _, s := range t.shards {
		s.mu.Unlock()
	}
	t.cfg.Wake()
}
