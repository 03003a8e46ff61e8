package natstest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkRawPublish measures JetStream itself on the same embedded
// cluster: synchronous publishes of 100-byte messages to an R=3 stream by 1
// and 8 goroutines. A writer waiting for its own record cannot do better
// than one round trip per write, so goroutines / round trip bounds ack:
// replicated whatever the batching:
//
//	go test -run '^$' -bench RawPublish -benchtime 2s ./natsjournal/natstest/
func BenchmarkRawPublish(b *testing.B) {
	c := startCluster(b, 3)
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "raw", Subjects: []string{"raw.*"}, Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 100)
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("sync-g%d", g), func(b *testing.B) {
			var wg sync.WaitGroup
			var next sync.Mutex
			left := b.N
			start := time.Now()
			for range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						next.Lock()
						if left == 0 {
							next.Unlock()
							return
						}
						left--
						next.Unlock()
						if _, err := js.Publish(ctx, "raw.x", payload); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
