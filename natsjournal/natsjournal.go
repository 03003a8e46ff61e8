// Package natsjournal is writeback's replicated journal on NATS JetStream.
// A program links it with a blank import, as it links a database driver:
//
//	import _ "github.com/writeback-go/writeback/natsjournal"
//
// and names it in the rules:
//
//	instance: web-1                 # this process; instance= in the DSN overrides
//	journal:
//	  nats: nats://n1:4222,nats://n2:4222,nats://n3:4222
//	  stream: writeback             # created if missing, checked if present
//	  replicas: 3
//	  lease: 10s
//	  takeover: true
//	tables:
//	  carts: {mode: back, key: [id], ack: replicated}
//
// Each instance publishes its records to its own subject of the stream
// (<stream>.<instance>), several records per message when writers are
// concurrent (group commit: a window of messages in flight, the next batch
// forming meanwhile). A write at ack: replicated returns once JetStream
// acknowledged its message, which a stream of R replicas does once a quorum
// stored it. A transaction's records are one message: all or none.
//
// Records the database applied (its checkpoint tables say which) are purged
// from the stream, by subject up to a sequence, so the stream does not grow
// under steady load. An instance that opens replays its unapplied records
// from the stream: it needs no local state, and may run on another host.
//
// Each instance holds a lease, a key of the key-value bucket <stream>_leases
// whose TTL is the lease, renewed while the process lives (a compare-and-set
// on the key's revision). An instance with takeover: true looks for subjects
// with records and no lease, takes the lease of that instance (the same
// compare-and-set: one taker wins), applies its records exactly once through
// a connector of that instance, and releases it. A process that cannot renew
// its lease for three quarters of it stops applying records (it is fenced:
// another may take them over) and refuses writes until it is reopened.
//
// Lock order: natsLog.mu is a leaf; no network call is made under it.
package natsjournal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/journal"
)

func init() { durable.RegisterBackend("nats", Open) }

// Tunables. The window bounds the messages in flight; records appended
// while it is full form the next, larger messages. Measured with
// BenchmarkReplicated (8 writers, embedded 3-node cluster, quiet machine):
// ack: replicated 8.5k updates/s at a window of 2, 22k at 8, 27k at 32 and
// 64, 22k at 128. maxWaitBytes bounds
// what waits for JetStream in memory while NATS is unreachable (beyond it,
// writes fail instead of growing the process without bound).
const (
	window        = 32
	idleWindow    = 4 // while no writer waits for a record (see windowLocked)
	maxMsgBytes   = 512 << 10
	maxWaitBytes  = 64 << 20
	publishWait   = 5 * time.Second  // an async publish's ack timeout
	ackWait       = 10 * time.Second // the longest Sync waits without a context deadline
	openWait      = 10 * time.Second // each network step of Open
	closeWait     = 5 * time.Second  // Close publishing what is left
	retryMin      = 50 * time.Millisecond
	retryMax      = 2 * time.Second
	bucketSuffix  = "_leases"
	leaseWaitMult = 3 // Open waits at most this many leases for a held lease
)

// ErrLeaseHeld is returned by an open with NoLeaseWait (a takeover) when
// another process holds the instance's lease.
var ErrLeaseHeld = errors.New("natsjournal: the instance's lease is held by another process")

// What a unit's size counts beyond its records' bytes, at most: a message's
// head (magic, version, count) and each record's (LSN and length varints).
const (
	msgHead = 16
	recHead = 20
)

// unit is one Append or AppendBatch: its records go in one message.
type unit struct {
	first uint64    // the first record's LSN; the others follow it
	rec   []byte    // the record of an Append
	recs  [][]byte  // the records of an AppendBatch
	at    time.Time // when it was appended, for the first pending unit (Lag)
	size  int
}

// records returns the unit's records.
func (u *unit) records() [][]byte {
	if u.recs != nil {
		return u.recs
	}
	return [][]byte{u.rec}
}

// count is how many records the unit holds.
func (u *unit) count() int {
	if u.recs != nil {
		return len(u.recs)
	}
	return 1
}

// message is records formed into one message of the stream.
type message struct {
	first, last uint64
	records     int
	data        []byte
	at          time.Time // when its oldest record was appended
	failed      bool      // a publish of it failed: it may be stored anyway
	sending     bool      // in flight
	gen         int       // bumped when its id was found taken (see msgID)
	seq         uint64    // the stream sequence, once acknowledged
	unitBytes   int       // what its units counted in waitBytes
}

// natsLog is an instance's journal on a stream: a durable.Log.
type natsLog struct {
	cfg    durable.BackendConfig
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	kv     jetstream.KeyValue
	subj   string
	name   string
	lease  time.Duration // the bucket's TTL

	kick chan struct{} // wakes the publisher
	stop chan struct{} // closed by Close: the loops end
	ackQ chan sent     // the messages in flight, in the order sent
	done sync.WaitGroup

	// leaseRev is the lease key's revision (the renewer's alone).
	leaseRev uint64

	mu          sync.Mutex
	last        uint64     // the last LSN handed out
	pending     []unit     // not yet formed into messages, in LSN order
	spare       []unit     // the slice the publisher formed last, for the next pending
	forming     uint64     // the first LSN of the units being formed (0: none)
	unacked     []*message // formed, not acknowledged, in LSN order
	ackedMsgs   []*message // acknowledged, not purged, in LSN order
	inflight    int        // messages sent and not answered
	syncWaiters int        // Syncs waiting for their records (windowLocked)
	retryAt     time.Time  // after a failure: when to send again
	pause       time.Duration
	waitBytes   int // bytes in pending, forming and unacked
	synced      chan struct{}
	err         error // sticky: the journal takes no more records (closed, fenced)
	fence       error // the lease was lost
	pubErr      error // the last publish failure, while publishes fail
	closing     bool
	acks        uint64
	rttLast     time.Duration
	rttSum      time.Duration
	replayedSeq uint64 // the highest stream sequence read by Replay
}

var _ durable.Log = (*natsLog)(nil)

// Open is the "nats" backend: it connects, makes or checks the stream and
// the lease bucket, takes the instance's lease (waiting for it unless
// NoLeaseWait), and starts publishing, renewing and, with Takeover, looking
// for dead instances.
func Open(cfg durable.BackendConfig) (durable.Log, string, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	name := fmt.Sprintf("nats %s/%s", cfg.Stream, cfg.Instance)
	nc, err := nats.Connect(cfg.URL,
		nats.Name("writeback "+cfg.Instance),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(200*time.Millisecond),
		nats.Timeout(openWait),
	)
	if err != nil {
		return nil, "", fmt.Errorf("NATS at %s: %w", cfg.URL, err)
	}
	l := &natsLog{
		cfg: cfg, log: cfg.Log, nc: nc, name: name,
		subj:   cfg.Stream + "." + cfg.Instance,
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		ackQ:   make(chan sent, window),
		synced: make(chan struct{}),
	}
	if err := l.setUp(); err != nil {
		nc.Close()
		return nil, "", err
	}
	l.done.Add(3)
	go l.publishLoop()
	go l.ackLoop()
	go l.renewLoop()
	if cfg.Takeover && cfg.TakeOver != nil {
		l.done.Add(1)
		go l.takeoverLoop()
	}
	return l, name, nil
}

// setUp makes or checks the stream and the bucket and takes the lease.
// The last LSN is learnt by Replay, which recovery runs before any append.
func (l *natsLog) setUp() error {
	var err error
	l.js, err = jetstream.New(l.nc,
		jetstream.WithPublishAsyncMaxPending(2*window),
		jetstream.WithPublishAsyncTimeout(publishWait))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), openWait)
	defer cancel()
	if l.stream, err = l.ensureStream(ctx); err != nil {
		return err
	}
	if l.kv, err = l.ensureBucket(ctx); err != nil {
		return err
	}
	if err := l.acquireLease(); err != nil {
		return err
	}
	return nil
}

// ensureStream returns the stream, made with the rules' settings when
// missing; a present one must take the instance's subject.
func (l *natsLog) ensureStream(ctx context.Context) (jetstream.Stream, error) {
	s, err := l.js.Stream(ctx, l.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = l.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        l.cfg.Stream,
			Description: "writeback journal: one subject per instance",
			Subjects:    []string{l.cfg.Stream + ".*"},
			Replicas:    l.cfg.Replicas,
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  2 * time.Minute,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = l.js.Stream(ctx, l.cfg.Stream) // another instance made it first
		}
		if err != nil {
			return nil, fmt.Errorf("creating stream %s with %d replicas: %w (a single NATS server takes replicas: 1)", l.cfg.Stream, l.cfg.Replicas, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", l.cfg.Stream, err)
	}
	c := s.CachedInfo().Config
	bound := false
	for _, sub := range c.Subjects {
		if sub == l.cfg.Stream+".*" || sub == l.cfg.Stream+".>" || sub == ">" || sub == l.subj {
			bound = true
		}
	}
	if !bound {
		return nil, fmt.Errorf("stream %s exists but does not take subject %s (its subjects: %s)", l.cfg.Stream, l.subj, strings.Join(c.Subjects, ", "))
	}
	if c.Replicas != l.cfg.Replicas {
		l.log.Warn("writeback: the journal's stream has another replica count than the rules ask; the stream's is used", "stream", l.cfg.Stream, "stream_replicas", c.Replicas, "rules_replicas", l.cfg.Replicas)
	}
	return s, nil
}

// ensureBucket returns the lease bucket, made when missing with the lease
// as its TTL; the lease in use is the bucket's TTL.
func (l *natsLog) ensureBucket(ctx context.Context) (jetstream.KeyValue, error) {
	bucket := l.cfg.Stream + bucketSuffix
	kv, err := l.js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = l.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: "writeback journal leases: one key per live instance",
			TTL:         l.cfg.Lease,
			Replicas:    l.cfg.Replicas,
			Storage:     jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = l.js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", bucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", bucket, err)
	}
	l.lease = st.TTL()
	if l.lease <= 0 {
		return nil, fmt.Errorf("lease bucket %s has no TTL: a lease that never expires would never let a dead instance be taken over", bucket)
	}
	if l.lease != l.cfg.Lease {
		l.log.Warn("writeback: the lease bucket's TTL differs from the rules' lease; the bucket's is used", "bucket", bucket, "ttl", l.lease, "rules_lease", l.cfg.Lease)
	}
	return kv, nil
}

// Append keeps one record: it is published in the background.
func (l *natsLog) Append(rec []byte) (uint64, error) {
	return l.add(unit{rec: append([]byte(nil), rec...), size: msgHead + recHead + len(rec)}) // the caller reuses its buffer
}

// AppendBatch keeps records with consecutive LSNs, published as one
// message (all or none), and returns the last LSN.
func (l *natsLog) AppendBatch(recs [][]byte) (uint64, error) {
	u := unit{recs: make([][]byte, len(recs)), size: msgHead}
	for i, r := range recs {
		u.recs[i] = append([]byte(nil), r...)
		u.size += recHead + len(r)
	}
	return l.add(u)
}

// add numbers the unit's records and queues it for the publisher.
//
// LSNs are dense. Recovery reads the instance's records and the database's
// checkpoints before anything is appended, and numbering then starts above
// both and above the clock's nanoseconds: a record a killed predecessor had
// in flight, stored after that read, cannot share an LSN (and so a message
// id, which JetStream would take for a duplicate) with a new one.
func (l *natsLog) add(u unit) (uint64, error) {
	if u.size > maxMsgBytes {
		return 0, fmt.Errorf("natsjournal: %d bytes of records in one write exceed a message's %d", u.size, maxMsgBytes)
	}
	size := u.size
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return 0, err
	}
	if l.waitBytes+size > maxWaitBytes {
		err := fmt.Errorf("natsjournal: %d MiB of records wait for JetStream, the most it holds (NATS connection %s, last publish error: %v); the write is refused", l.waitBytes>>20, strings.ToLower(l.nc.Status().String()), l.pubErr)
		l.mu.Unlock()
		return 0, err
	}
	if len(l.pending) == 0 {
		u.at = time.Now() // the oldest pending unit: its age is the lag
	}
	u.first = l.last + 1
	l.last += uint64(u.count())
	l.pending = append(l.pending, u)
	l.waitBytes += size
	last := l.last
	l.mu.Unlock()
	l.wake()
	return last, nil
}

// durableLocked is the highest LSN up to which every record is stored.
func (l *natsLog) durableLocked() uint64 {
	low := l.last + 1
	if len(l.unacked) > 0 {
		low = min(low, l.unacked[0].first)
	}
	if l.forming != 0 {
		low = min(low, l.forming)
	}
	if len(l.pending) > 0 {
		low = min(low, l.pending[0].first)
	}
	return low - 1
}

// Sync waits until every record up to lsn is acknowledged by JetStream, ctx
// ends, or ackWait passes.
func (l *natsLog) Sync(ctx context.Context, lsn uint64) error {
	timer := time.NewTimer(ackWait)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.durableLocked() >= lsn {
			l.mu.Unlock()
			return nil
		}
		if l.err != nil {
			err := l.err
			l.mu.Unlock()
			return err
		}
		ch := l.synced
		l.syncWaiters++
		l.mu.Unlock()
		l.wake() // the publisher may now use the whole window
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = fmt.Errorf("natsjournal: the record was not acknowledged by JetStream before the context ended (%w): %s", ctx.Err(), l.why())
		case <-timer.C:
			err = fmt.Errorf("natsjournal: the record was not acknowledged by JetStream within %s: %s", ackWait, l.why())
		}
		l.mu.Lock()
		l.syncWaiters--
		l.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// why says why records wait: the connection's state and the last publish
// failure.
func (l *natsLog) why() string {
	l.mu.Lock()
	pubErr := l.pubErr
	l.mu.Unlock()
	s := "NATS connection " + strings.ToLower(l.nc.Status().String())
	if pubErr != nil {
		s += "; last publish error: " + pubErr.Error()
	}
	return s
}

// notifyLocked wakes the Sync waiters.
func (l *natsLog) notifyLocked() {
	close(l.synced)
	l.synced = make(chan struct{})
}

// LastLSN is the last LSN handed out.
func (l *natsLog) LastLSN() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Advance makes the next LSNs higher than lsn (the database's checkpoints
// were ahead: the stream was replaced).
func (l *natsLog) Advance(lsn uint64) {
	l.mu.Lock()
	l.last = max(l.last, lsn)
	l.mu.Unlock()
}

// startAboveLocked makes the next LSN higher than last and than the clock's
// nanoseconds (see add).
func (l *natsLog) startAboveLocked(last uint64) {
	l.last = max(l.last, last, uint64(time.Now().UnixNano()))
}

// Fenced is why this process may no longer apply its records: its lease
// was lost, and another process may be applying them.
func (l *natsLog) Fenced() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fence
}

// fenceOff marks the lease lost: no more records are taken, and flushes of
// journaled rows fail (durable.Journal.CheckpointTx).
func (l *natsLog) fenceOff(err error) {
	l.mu.Lock()
	first := l.fence == nil
	if first {
		l.fence = err
		if l.err == nil {
			l.err = err
		}
		l.notifyLocked()
	}
	l.mu.Unlock()
	if first {
		l.log.Error("writeback: the replicated journal lost its lease; this connector stops applying and taking records, since another instance may take its records over; reopen it", "journal", l.name, "err", err)
	}
}

// Stats reports the records waiting for JetStream (Records, Bytes, Lag),
// acknowledgments (Syncs) and their round trip (SyncLatency).
func (l *natsLog) Stats() journal.Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := journal.Stats{LastLSN: l.last, DurableLSN: l.durableLocked(), Syncs: l.acks, SyncLatencyLast: l.rttLast, Bytes: int64(l.waitBytes)}
	if l.acks > 0 {
		s.SyncLatencyAvg = l.rttSum / time.Duration(l.acks)
	}
	oldest := time.Time{}
	for _, m := range l.unacked {
		s.Records += uint64(m.records)
		if oldest.IsZero() || m.at.Before(oldest) {
			oldest = m.at
		}
	}
	for _, u := range l.pending {
		s.Records += uint64(u.count())
	}
	if len(l.pending) > 0 && (oldest.IsZero() || l.pending[0].at.Before(oldest)) {
		oldest = l.pending[0].at
	}
	if !oldest.IsZero() {
		s.Lag = time.Since(oldest)
		s.FirstLSN = s.DurableLSN + 1
	}
	return s
}

// Close publishes what is left (for up to closeWait), stops the loops,
// releases the lease and closes the connection.
func (l *natsLog) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	left := len(l.pending) + len(l.unacked)
	l.mu.Unlock()
	var err error
	if left > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		err = l.Sync(ctx, l.LastLSN())
		cancel()
		if err != nil {
			err = fmt.Errorf("natsjournal: close: records not published to JetStream are lost unless their rows were flushed: %w", err)
		}
	}
	l.mu.Lock()
	if l.err == nil {
		l.err = errors.New("natsjournal: the journal is closed")
	}
	l.notifyLocked()
	l.mu.Unlock()
	close(l.stop)
	l.done.Wait()
	l.releaseLease()
	l.nc.Close()
	return err
}
