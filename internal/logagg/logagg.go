// Package logagg turns per-row log events into at most one line per table and
// kind of event per window: a flush that dead-letters 1,000 rows logs one
// line with rows=1000 and the first few keys, not 1,000 lines. The row-level
// detail stays with the dead-letter file and hook; logs say that something
// happened, to which table, and how often.
//
// The first event of a quiet (table, kind) opens a window; at its end one
// line reports every event of the window. Events after that open the next
// window, so a steady stream logs one line a window. Close reports what is
// pending, so no event goes unreported.
package logagg

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Attribute keys of the lines: stable, so log queries can rely on them.
const (
	KeyTable = "table" // the table's rule name
	KeyRows  = "rows"  // how many events the line reports
	KeyKeys  = "keys"  // the keys of the first few, in the order they came
	KeyErr   = "err"   // the first event's error, when it had one
)

// DefaultWindow is the shortest time between two lines of one table and kind.
const DefaultWindow = time.Second

// DefaultMaxKeys is how many keys a line lists.
const DefaultMaxKeys = 5

// Clock tells the time and runs a function after a delay. Tests pass a fake
// one to decide when windows end without sleeping.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d; the returned stop
	// cancels the call if it has not started, reporting whether it did.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Kind is one kind of event: the level and message of its lines.
type Kind struct {
	Level slog.Level
	Msg   string
}

// Config configures an Aggregator; zero fields take the defaults.
type Config struct {
	Log     *slog.Logger // slog.Default() when nil
	Clock   Clock        // SystemClock when nil
	Window  time.Duration
	MaxKeys int
}

// Aggregator counts events per (table, kind) and logs them a window at a time.
// It is safe for concurrent use.
type Aggregator struct {
	cfg Config

	mu     sync.Mutex
	groups map[groupID]*group
	closed bool
	// emitting counts the windows being logged outside mu, so Close returns
	// only once every event added before it is logged.
	emitting sync.WaitGroup
}

type groupID struct {
	table string
	kind  Kind
}

// group is the events of one (table, kind) in the open window.
type group struct {
	rows int
	keys []any
	err  error
	stop func() bool // the window's timer; nil when no window is open
}

// New returns an Aggregator that writes to cfg.Log.
func New(cfg Config) *Aggregator {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	return &Aggregator{cfg: cfg, groups: map[groupID]*group{}}
}

// Add records one event of kind for table: key is the row's key, err the
// error the event carries (nil if none). After Close it logs the event on
// its own line at once.
func (a *Aggregator) Add(kind Kind, table string, key any, err error) {
	id := groupID{table, kind}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.emit(id, &group{rows: 1, keys: []any{key}, err: err})
		return
	}
	g := a.groups[id]
	if g == nil {
		g = &group{}
		a.groups[id] = g
	}
	g.rows++
	if len(g.keys) < a.cfg.MaxKeys {
		g.keys = append(g.keys, key)
	}
	if g.err == nil {
		g.err = err
	}
	if g.stop == nil {
		g.stop = a.cfg.Clock.AfterFunc(a.cfg.Window, func() { a.windowEnded(id) })
	}
	a.mu.Unlock()
}

// windowEnded logs the events of id's window and closes it.
func (a *Aggregator) windowEnded(id groupID) {
	a.mu.Lock()
	g := a.groups[id]
	if g == nil || g.rows == 0 { // Close took them
		a.mu.Unlock()
		return
	}
	delete(a.groups, id)
	a.emitting.Add(1)
	a.mu.Unlock()
	defer a.emitting.Done()
	a.emit(id, g) // outside the lock: a handler may be slow
}

// Close logs every pending event now and makes later events log at once.
// When it returns, every event added before it has been logged.
func (a *Aggregator) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		a.emitting.Wait()
		return
	}
	a.closed = true
	ids := make([]groupID, 0, len(a.groups))
	for id, g := range a.groups {
		g.stop()
		ids = append(ids, id)
	}
	pending := a.groups
	a.groups = map[groupID]*group{}
	a.mu.Unlock()
	// In a stable order, so the last lines read the same every time.
	slices.SortFunc(ids, func(x, y groupID) int {
		return cmp.Or(cmp.Compare(x.table, y.table), cmp.Compare(x.kind.Msg, y.kind.Msg))
	})
	for _, id := range ids {
		a.emit(id, pending[id])
	}
	a.emitting.Wait()
}

// emit writes g's line.
func (a *Aggregator) emit(id groupID, g *group) {
	attrs := make([]any, 0, 8)
	attrs = append(attrs, KeyTable, id.table, KeyRows, g.rows, KeyKeys, g.keys)
	if g.err != nil {
		attrs = append(attrs, KeyErr, g.err)
	}
	a.cfg.Log.Log(context.Background(), id.kind.Level, id.kind.Msg, attrs...)
}
