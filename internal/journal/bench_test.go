package journal

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// BenchmarkAppendDurable measures Append+WaitDurable of 128-byte records.
// Set JOURNAL_BENCH_DIR to benchmark on a particular file system (the
// default is the test's temporary directory).
func BenchmarkAppendDurable(b *testing.B) {
	for _, bc := range []struct {
		policy     Policy
		goroutines int
	}{
		{Always, 1}, {Always, 8},
		{Everysec, 1}, {Everysec, 8},
		{No, 1}, {No, 8},
	} {
		b.Run(fmt.Sprintf("%s-%dg", bc.policy, bc.goroutines), func(b *testing.B) {
			dir := b.TempDir()
			if base := os.Getenv("JOURNAL_BENCH_DIR"); base != "" {
				var err error
				if dir, err = os.MkdirTemp(base, "bench"); err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(dir)
			}
			j := mustOpen(b, dir, Options{Fsync: bc.policy})
			defer j.Close()
			rec := make([]byte, 128)
			ctx := context.Background()
			b.SetBytes(int64(len(rec)))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for g := range bc.goroutines {
				n := b.N / bc.goroutines
				if g < b.N%bc.goroutines {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						lsn, err := j.Append(rec)
						if err == nil {
							err = j.WaitDurable(ctx, lsn)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start).Seconds()
			b.StopTimer()
			st := j.Stats()
			b.ReportMetric(float64(b.N)/elapsed, "records/s")
			b.ReportMetric(float64(st.Syncs)/elapsed, "fsyncs/s")
			if st.Syncs > 0 {
				b.ReportMetric(float64(b.N)/float64(st.Syncs), "records/fsync")
			}
		})
	}
}
