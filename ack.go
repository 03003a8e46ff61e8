package writeback

import "context"

type ackKey struct{}

// ContextWithAck returns a context whose writes are acknowledged at least at
// level, so one code path can ask for more durability than its table's rule
// (a checkout flow can ask for write-through while browsing stays buffered).
// A level lower than the table's rule has no effect: nothing lowers a table's
// durability.
//
// AckThrough sends the write to the database before Exec returns (after the
// row's earlier buffered writes). AckDisk returns once the write's journal
// record is on disk (fsync: always) or within the journal's loss window
// (everysec). AckReplicated returns once a quorum of the replicated journal
// stored the record. A level the connector's journal cannot give (AckDisk
// without a local journal, AckReplicated without a replicated one) is served
// as AckThrough: never less durable than asked. If Exec returns an error
// while waiting for the journal (the context ended, the journal failed, NATS
// is unreachable), the write may still be applied.
func ContextWithAck(ctx context.Context, level AckLevel) context.Context {
	return context.WithValue(ctx, ackKey{}, level)
}

// ackOf is the level a context asks for; AckMemory when it asks for none.
func ackOf(ctx context.Context) AckLevel {
	if ctx == nil {
		return AckMemory
	}
	level, _ := ctx.Value(ackKey{}).(AckLevel)
	return level
}

// ackLevel is the level a write on t is served at: the stronger of the
// table's rule and the context's request, with a level the journal cannot
// give served as AckThrough.
func (cn *Connector) ackLevel(ctx context.Context, t *tableState) AckLevel {
	level := max(ackOf(ctx), t.rule.Ack)
	j := cn.buf.journal
	switch {
	case level == AckDisk && (j == nil || !j.Local()):
		return AckThrough
	case level == AckReplicated && (j == nil || j.Local()):
		return AckThrough
	}
	return level
}

// waitsForJournal reports whether a write at level returns only once its
// journal record is durable.
func waitsForJournal(level AckLevel) bool { return level == AckDisk || level == AckReplicated }
