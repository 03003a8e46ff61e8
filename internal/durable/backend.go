package durable

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/journal"
)

// Log is where a Journal keeps its records: the local file journal
// (internal/journal), or a backend's, such as the replicated NATS
// JetStream journal, which lives in its own module and registers itself
// (RegisterBackend) so that the library does not depend on its client.
//
// LSNs increase with every record; they need not be dense. A Log need not
// keep its records in LSN order, but Replay hands them over in LSN order.
type Log interface {
	// Append keeps one record and returns its LSN. It need not wait for
	// the record to be durable (Sync does).
	Append(rec []byte) (uint64, error)
	// AppendBatch keeps records with consecutive LSNs, all or none after a
	// crash as far as the Log can (a file journal can keep a prefix; the
	// last record's presence then says the batch was whole), and returns
	// the last one's LSN.
	AppendBatch(recs [][]byte) (uint64, error)
	// Sync returns once every record up to lsn is durable at the Log's
	// level (fsynced, or stored by a quorum), or ctx ends.
	Sync(ctx context.Context, lsn uint64) error
	// LastLSN is the last LSN handed out (0 if none).
	LastLSN() uint64
	// Replay hands fn every record above after that the Log holds, in LSN
	// order.
	Replay(after uint64, fn func(lsn uint64, rec []byte) error) error
	// Compact drops records up to upTo, all applied.
	Compact(upTo uint64) error
	// Stats reports the Log's figures.
	Stats() journal.Stats
	// Close ends the Log.
	Close() error
}

// BackendConfig is what a backend's Log is opened with: the rules'
// journal section and the connector's settings.
type BackendConfig struct {
	// URL is the backend's address list (for NATS, nats://host:port,...).
	URL string
	// Stream is the name of the backend's log (a JetStream stream).
	Stream string
	// Instance is this writer's identity: its records, lease and
	// checkpoints are named by it.
	Instance string
	// Replicas is how many copies the backend keeps of each record.
	Replicas int
	// Lease is how long the instance's lease lives without renewal.
	Lease time.Duration
	// Takeover lets this instance apply the records of dead instances
	// (see TakeOver).
	Takeover bool
	// NoLeaseWait makes the open fail at once when another process holds
	// the instance's lease, instead of waiting for it to expire (a
	// takeover's open).
	NoLeaseWait bool
	// Where names the journal section in errors (rules file and line).
	Where string
	// Log receives the backend's messages.
	Log *slog.Logger
	// TakeOver, when Takeover is set, applies the unapplied records of a
	// dead instance exactly once: the backend calls it after it found an
	// instance with records and no live lease. It opens a journal for that
	// instance with NoLeaseWait (which takes the lease, or fails when
	// another process took it first), recovers it and closes it.
	TakeOver func(ctx context.Context, instance string) error
	// Hook, when not nil, is called at the backend's fault points as
	// "<backend>:<point>" (crash tests).
	Hook func(point string)
}

// Backend opens a backend's Log. The name it returns names the journal in
// messages.
type Backend func(cfg BackendConfig) (l Log, name string, err error)

var (
	backendsMu sync.Mutex
	backends   = map[string]Backend{}
)

// RegisterBackend makes a journal backend available under name (the rules'
// journal key, such as "nats"). A backend's package calls it from init; a
// second registration of a name panics, as database/sql.Register does.
func RegisterBackend(name string, b Backend) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	if b == nil {
		panic("durable: RegisterBackend of a nil backend")
	}
	if _, dup := backends[name]; dup {
		panic("durable: RegisterBackend called twice for " + name)
	}
	backends[name] = b
}

// HasBackend reports whether a backend of that name is registered.
func HasBackend(name string) bool {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	return backends[name] != nil
}

// OpenBackend opens a journal on the registered backend name. Its id, which
// names it in the checkpoint tables, is the instance name: another host,
// restarting the instance or taking it over, finds its checkpoints.
func OpenBackend(name string, cfg BackendConfig, kind dialect.Kind, tables []*dirtyset.Table, opts Options) (*Journal, error) {
	backendsMu.Lock()
	b := backends[name]
	backendsMu.Unlock()
	if b == nil {
		return nil, fmt.Errorf("writeback: %s: no %s journal backend is linked into this program", cfg.Where, name)
	}
	if cfg.Log == nil {
		cfg.Log = opts.Log
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	l, lname, err := b(cfg)
	if err != nil {
		return nil, fmt.Errorf("writeback: %s: %w", cfg.Where, err)
	}
	d := &Journal{j: l, name: lname, kind: kind, checkSchema: opts.CheckSchema, log: cfg.Log, every: opts.CompactEvery, tables: tables, fixedID: true}
	if d.every <= 0 {
		d.every = DefaultCompactEvery
	}
	id := cfg.Instance
	d.idp.Store(&id)
	return d, nil
}
