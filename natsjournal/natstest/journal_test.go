package natstest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/testdb"
)

// subjectRecords is how many messages the stream holds on instance's subject.
func subjectMessages(t testing.TB, urls, stream, instance string) uint64 {
	t.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(stream+"."+instance))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[stream+"."+instance]
}

// TestReplicatedAck: writes at ack: replicated are acknowledged from the
// stream, flushed exactly, and purged from the stream once applied.
func TestReplicatedAck(t *testing.T) {
	c := startCluster(t, 3)
	direct := testdb.OpenPostgres(t)
	table := counterTable(t, direct, 20)
	rules := natsRules(t, t.TempDir(), c.URLs(), "wbt", table, "replicated", 2*time.Second, false, time.Hour)
	db := openWB(t, rules, "web-1")
	want := map[int64]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 200 {
				id := int64(r.IntN(20) + 1)
				if _, err := db.Exec(fmt.Sprintf("UPDATE %s SET n = n + 1 WHERE id = $1", table), id); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[id]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st, err := writeback.StatsOf(db)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buffered != 1600 {
		t.Fatalf("buffered %d writes, want 1600", st.Buffered)
	}
	if n := subjectMessages(t, c.URLs(), "wbt", "web-1"); n == 0 {
		t.Fatal("no message in the stream before the flush")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	got := counts(t, direct, table)
	for id, n := range want {
		if got[id] != n {
			t.Errorf("id %d: n = %d, want %d", id, got[id], n)
		}
	}
	if n := subjectMessages(t, c.URLs(), "wbt", "web-1"); n != 0 {
		t.Errorf("%d messages left on the subject after a clean close, want 0 (purged)", n)
	}
	// Close waits for the journal's loops: none is left.
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	if strings.Contains(buf.String(), "natsjournal.(*natsLog)") {
		t.Errorf("a journal goroutine outlived Close:\n%s", buf.String())
	}
}
