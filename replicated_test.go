package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writeback-go/writeback/internal/durable"
	"github.com/writeback-go/writeback/internal/journal"
)

// memStore stands in for a replicated journal's servers: each instance's
// records, kept across its connectors (a restart, a takeover).
type memStore struct {
	mu      sync.Mutex
	records map[string]map[uint64][]byte // instance -> LSN -> record
	leases  map[string]*memLog           // instance -> its lease's holder

	syncs int
	cfgs  []durable.BackendConfig
}

func (s *memStore) open(cfg durable.BackendConfig) (durable.Log, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[cfg.Instance] != nil {
		return nil, "", fmt.Errorf("lease of %s held", cfg.Instance)
	}
	if s.records[cfg.Instance] == nil {
		s.records[cfg.Instance] = map[uint64][]byte{}
	}
	s.cfgs = append(s.cfgs, cfg)
	l := &memLog{s: s, inst: cfg.Instance}
	s.leases[cfg.Instance] = l
	for lsn := range s.records[cfg.Instance] {
		l.last = max(l.last, lsn)
	}
	return l, "mem/" + cfg.Instance, nil
}

// memLog is one connector's log in a memStore.
type memLog struct {
	s    *memStore
	inst string
	last uint64
}

func (l *memLog) Append(rec []byte) (uint64, error) { return l.AppendBatch([][]byte{rec}) }

func (l *memLog) AppendBatch(recs [][]byte) (uint64, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	for _, r := range recs {
		l.last++
		l.s.records[l.inst][l.last] = append([]byte(nil), r...)
	}
	return l.last, nil
}

func (l *memLog) Sync(context.Context, uint64) error {
	l.s.mu.Lock()
	l.s.syncs++
	l.s.mu.Unlock()
	return nil
}

func (l *memLog) LastLSN() uint64 {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.last
}

func (l *memLog) Advance(lsn uint64) {
	l.s.mu.Lock()
	l.last = max(l.last, lsn)
	l.s.mu.Unlock()
}

func (l *memLog) Replay(after uint64, fn func(uint64, []byte) error) error {
	l.s.mu.Lock()
	var lsns []uint64
	for lsn := range l.s.records[l.inst] {
		if lsn > after {
			lsns = append(lsns, lsn)
		}
	}
	slices.Sort(lsns)
	recs := make([][]byte, len(lsns))
	for i, lsn := range lsns {
		recs[i] = l.s.records[l.inst][lsn]
	}
	l.s.mu.Unlock()
	for i, lsn := range lsns {
		if err := fn(lsn, recs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (l *memLog) Compact(upTo uint64) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	for lsn := range l.s.records[l.inst] {
		if lsn <= upTo {
			delete(l.s.records[l.inst], lsn)
		}
	}
	return nil
}

func (l *memLog) Stats() journal.Stats {
	return journal.Stats{LastLSN: l.LastLSN(), DurableLSN: l.LastLSN()}
}

func (l *memLog) Close() error {
	l.s.mu.Lock()
	if l.s.leases[l.inst] == l {
		delete(l.s.leases, l.inst)
	}
	l.s.mu.Unlock()
	return nil
}

// Fenced: a log whose lease another holds may not apply its records.
func (l *memLog) Fenced() error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.leases[l.inst] != l {
		return fmt.Errorf("the lease of %s is not this log's", l.inst)
	}
	return nil
}

// expire ends inst's lease, as its expiry on the servers would.
func (s *memStore) expire(inst string) {
	s.mu.Lock()
	delete(s.leases, inst)
	s.mu.Unlock()
}

func (s *memStore) held(inst string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records[inst])
}

const replicatedRules = `instance: web-1
journal:
  nats: nats://127.0.0.1:1
  takeover: true
tables:
  counters:
    mode: back
    key: [id]
    max_loss: 1h
    ack: replicated
`

// TestReplicatedJournalWiring checks, with an in-memory backend in place
// of NATS, how the connector uses a replicated journal: the message when
// the backend is not linked, the instance, ack levels it cannot give served
// through, and the takeover of a dead instance's records exactly once.
// (The NATS backend itself is tested against a real cluster in its own
// module.)
func TestReplicatedJournalWiring(t *testing.T) {
	dsn := sqliteDSN(t, "replicated")
	direct, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if _, err := direct.Exec("CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counters VALUES (1, 0), (2, 0)"); err != nil {
		t.Fatal(err)
	}
	rules := writeRulesFile(t, replicatedRules)

	if !durable.HasBackend("nats") {
		_, err := OpenDSN("driver=sqlite3 rules=" + rules + " dsn=" + dsn)
		if err == nil || !strings.Contains(err.Error(), natsJournalImport) || !strings.Contains(err.Error(), ":2: journal.nats") {
			t.Fatalf("without the NATS journal linked: %v, want the import to add, with the rules' file and line", err)
		}
	}
	testReplicatedWiring(t, memBackend(), rules, dsn, direct)
}

// memBackend registers the in-memory backend as "nats", once per process.
var memBackend = sync.OnceValue(func() *memStore {
	store := &memStore{records: map[string]map[uint64][]byte{}, leases: map[string]*memLog{}}
	durable.RegisterBackend("nats", store.open)
	return store
})

func testReplicatedWiring(t *testing.T, store *memStore, rules, dsn string, direct *sql.DB) {
	noInstance := writeRulesFile(t, strings.Replace(replicatedRules, "instance: web-1\n", "", 1))
	if _, err := OpenDSN("driver=sqlite3 rules=" + noInstance + " dsn=" + dsn); err == nil || !strings.Contains(err.Error(), "instance") {
		t.Fatalf("a replicated journal without an instance name: %v", err)
	}

	// The DSN's instance= names the one that dies: it writes (max_loss 1h:
	// nothing is flushed), then its lease expires (it hangs, or its host
	// is gone).
	dead, err := OpenDSN("driver=sqlite3 rules="+rules+" instance=web-0 dsn="+dsn, WithCloseTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := dead.Exec("UPDATE counters SET n = n + 1 WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
	}
	if store.syncs < 3 {
		t.Errorf("%d journal syncs for 3 writes at ack: replicated, want 3", store.syncs)
	}
	if store.held("web-0") != 3 {
		t.Fatalf("web-0's journal holds %d records, want 3", store.held("web-0"))
	}
	store.expire("web-0")

	db, err := OpenDSN("driver=sqlite3 rules=" + rules + " dsn=" + dsn) // instance web-1, from the rules
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before, _ := StatsOf(db)
	ctx := ContextWithAck(context.Background(), AckDisk) // a local journal's level: served through
	if _, err := db.ExecContext(ctx, "UPDATE counters SET n = n + 10 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	after, _ := StatsOf(db)
	if after.PassedThrough != before.PassedThrough+1 {
		t.Errorf("an AckDisk write on a replicated journal was not sent through (passed through %d -> %d)", before.PassedThrough, after.PassedThrough)
	}

	// The takeover, as the backend calls it for an instance without a lease.
	var cfg durable.BackendConfig
	store.mu.Lock()
	for _, c := range store.cfgs {
		if c.Instance == "web-1" {
			cfg = c
		}
	}
	store.mu.Unlock()
	if !cfg.Takeover || cfg.TakeOver == nil {
		t.Fatal("web-1 was opened without takeover")
	}
	if err := cfg.TakeOver(context.Background(), "web-0"); err != nil {
		t.Fatal(err)
	}
	if err := cfg.TakeOver(context.Background(), "web-0"); err != nil { // nothing left: a no-op
		t.Fatal(err)
	}
	var n1, n2 int
	if err := direct.QueryRow("SELECT (SELECT n FROM counters WHERE id = 1), (SELECT n FROM counters WHERE id = 2)").Scan(&n1, &n2); err != nil {
		t.Fatal(err)
	}
	if n1 != 3 || n2 != 10 {
		t.Errorf("after the takeover: n = %d and %d, want 3 (web-0's, once) and 10", n1, n2)
	}
	if store.held("web-0") != 0 {
		t.Errorf("web-0's journal holds %d records after the takeover, want 0", store.held("web-0"))
	}
	// The process that lost its lease still holds the rows in memory: it is
	// fenced off, and its close applies nothing twice.
	if err := dead.Close(); err == nil {
		t.Error("the fenced connector closed as if it had flushed")
	}
	if err := direct.QueryRow("SELECT n FROM counters WHERE id = 1").Scan(&n1); err != nil || n1 != 3 {
		t.Errorf("after the fenced connector's close: n = %d (%v), want 3", n1, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
