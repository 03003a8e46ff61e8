package dirtyset

import (
	"sync"
	"testing"
)

// TestConcurrentDeltasAreNeverLost has writers add +1 to a few hot keys
// while a flusher takes everything, commits it and releases it in a loop;
// sometimes it fails a batch instead so rows go back as retry rows. Every
// write must end in exactly one committed row.
func TestConcurrentDeltasAreNeverLost(t *testing.T) {
	const writers, perWriter, keys = 8, 500, 3
	for _, maxDirty := range []int{1, 1024} {
		tb := NewShared(1 << 40).NewTable(Config{Name: "t", MaxDirty: maxDirty * keys, Log: quietLog()})
		j := &fakeJournal{}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		type result struct {
			sum     int64
			recs    int64
			writes  int
			batches int
		}
		res := make(chan result)
		go func() {
			var r result
			flush := func(fail bool) int {
				b := tb.Take(true)
				if fail && len(b.Rows) > 0 {
					b.Fail(b.Rows)
					b.Release()
					return len(b.Rows)
				}
				for _, row := range b.Rows {
					if len(row.Vals) == 1 {
						r.sum += row.Vals[0].(int64)
					}
					r.recs += row.Recs
					r.writes += row.Writes
				}
				b.Done(b.Rows)
				b.Release()
				r.batches++
				return len(b.Rows)
			}
			for i := 0; ; i++ {
				select {
				case <-stop:
					for flush(false) > 0 {
					}
					res <- r
					return
				default:
					flush(i%5 == 4)
				}
			}
		}()
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < perWriter; i++ {
					k := int64((w + i) % keys)
					for {
						room := tb.shared.Room() // before the check: no wake-up is missed
						out, _ := tb.Update([]any{k}, []Change{add("n", int64(1))}, testNames(), j, false)
						if out == Buffered {
							break
						}
						if out != Full && out != FullInflight {
							t.Errorf("outcome %d, want Buffered (or Full to retry)", out)
							return
						}
						<-room
					}
				}
			}(w)
		}
		wg.Wait()
		close(stop)
		r := <-res
		if want := int64(writers * perWriter); r.sum != want || r.recs != want || r.writes != writers*perWriter {
			t.Errorf("max_dirty %d: committed sum %d (%d records, %d writes), want %d", maxDirty, r.sum, r.recs, r.writes, want)
		}
		sn := tb.Snapshot()
		if sn.Pending != 0 || sn.Bytes != 0 || sn.JournalUnapplied != 0 {
			t.Errorf("max_dirty %d: left Pending %d Bytes %d Unapplied %d", maxDirty, sn.Pending, sn.Bytes, sn.JournalUnapplied)
		}
		if sn.Buffered != writers*perWriter {
			t.Errorf("max_dirty %d: Buffered = %d, want %d", maxDirty, sn.Buffered, writers*perWriter)
		}
		if r.batches == 0 {
			t.Errorf("max_dirty %d: no batch committed", maxDirty)
		}
	}
}
