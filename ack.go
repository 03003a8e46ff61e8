package writeback

import "context"

type ackKey struct{}

// WithAck returns a context whose writes are acknowledged at least at level
// (seed patterns 3 and 4: a checkout flow can ask for write-through while
// browsing stays buffered). A level lower than the table's rule has no effect:
// nothing lowers a table's durability.
//
// AckThrough sends the write to the database before Exec returns (after the
// row's earlier buffered writes). AckDisk needs the journal; until a journal
// is configured it is served as AckThrough, the next stronger level.
func WithAck(ctx context.Context, level AckLevel) context.Context {
	return context.WithValue(ctx, ackKey{}, level)
}

// ackOf is the level a context asks for; AckMemory when it asks for none.
// Without a journal AckDisk is served as AckThrough.
func ackOf(ctx context.Context) AckLevel {
	if ctx == nil {
		return AckMemory
	}
	level, _ := ctx.Value(ackKey{}).(AckLevel)
	if level == AckDisk {
		return AckThrough
	}
	return level
}
