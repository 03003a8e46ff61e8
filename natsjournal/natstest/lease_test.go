package natstest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/testdb"
)

// TestLeaseLostFences: when this process's lease is taken from it (here,
// deleted and re-created by another holder), it stops applying and taking
// records: writes and flushes fail with an error that says so, and the
// database gets nothing more from it.
func TestLeaseLostFences(t *testing.T) {
	c := startCluster(t, 3)
	direct := testdb.OpenPostgres(t)
	table := counterTable(t, direct, 5)
	rules := natsRules(t, t.TempDir(), c.URLs(), "wblease", table, "memory", 2*time.Second, false, time.Hour)
	logger, lost := newSignal("lost its lease")
	db := openWB(t, rules, "web-1", writeback.WithLogger(logger))
	query := fmt.Sprintf("UPDATE %s SET n = n + 1 WHERE id = 1", table)
	if _, err := db.Exec(query); err != nil {
		t.Fatal(err)
	}

	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "wblease_leases")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "web-1", []byte(`{"host":"another"}`)); err != nil {
		t.Fatal(err)
	}
	wait(t, lost, "the fence after the lease was taken")

	_, err = db.Exec(query)
	if err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("a write after the lease was lost: %v, want an error about the lease", err)
	}
	ferr := writeback.Flush(context.Background(), db)
	if ferr == nil {
		t.Error("a flush after the lease was lost succeeded")
	}
	start := time.Now()
	if err := db.Close(); err == nil {
		t.Error("the fenced connector closed as if it had flushed")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the fenced connector's close took %s: it retried a flush it may not make", took)
	}
	if got := counts(t, direct, table); sum(got) != 0 {
		t.Errorf("the fenced process applied %d increments, want 0 (the new holder applies its records)", sum(got))
	}
}

// TestSameInstanceTwice: a second process opening with a live instance's
// name waits for its lease, then fails with an error that names the holder.
func TestSameInstanceTwice(t *testing.T) {
	c := startCluster(t, 3)
	direct := testdb.OpenPostgres(t)
	table := counterTable(t, direct, 5)
	rules := natsRules(t, t.TempDir(), c.URLs(), "wbtwice", table, "memory", time.Second, false, time.Hour)
	db := openWB(t, rules, "web-1")
	defer db.Close()
	start := time.Now()
	_, err := writeback.OpenDSN("driver=pgx rules=" + rules + " instance=web-1 dsn=" + testdb.PostgresDSN())
	if err == nil {
		t.Fatal("a second connector opened with the name of a live instance")
	}
	if !strings.Contains(err.Error(), "two processes must not share an instance name") || !strings.Contains(err.Error(), "pid") {
		t.Errorf("error %q does not name the holder and the cause", err)
	}
	t.Logf("refused after %s: %v", time.Since(start).Round(time.Millisecond), err)
}
