package natsjournal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishLoop publishes the records in rounds: it forms the pending records
// into messages, sends up to window of the unacknowledged messages in LSN
// order, and waits for their acknowledgments. Records appended meanwhile
// form the next round (group commit). A message whose publish failed stays,
// with its content and id, and is sent again first: JetStream's
// deduplication drops it if the failed attempt was stored after all.
func (l *natsLog) publishLoop() {
	defer l.done.Done()
	pause := time.Duration(0)
	for {
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-l.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		l.mu.Lock()
		for len(l.pending) == 0 && len(l.unacked) == 0 {
			l.mu.Unlock()
			select {
			case <-l.stop:
				return
			case <-l.kick:
			}
			l.mu.Lock()
		}
		l.formLocked()
		round := slices.Clone(l.unacked[:min(len(l.unacked), window)])
		l.mu.Unlock()

		failed := l.publishRound(round)
		if failed == nil {
			pause = 0
			continue
		}
		if pause == 0 {
			l.log.Warn("writeback: publishing to the replicated journal fails; records wait in memory and are published when JetStream answers", "journal", l.name, "err", failed)
		}
		pause = min(max(2*pause, retryMin), retryMax)
	}
}

// formLocked forms the pending units into messages of at most maxMsgBytes.
func (l *natsLog) formLocked() {
	for len(l.pending) > 0 {
		n, size := 0, 0
		for n < len(l.pending) && (n == 0 || size+l.pending[n].size <= maxMsgBytes) {
			size += l.pending[n].size
			n++
		}
		var lsns []uint64
		var recs [][]byte
		for _, u := range l.pending[:n] {
			lsns = append(lsns, u.lsns...)
			recs = append(recs, u.recs...)
		}
		m := &message{first: lsns[0], last: lsns[len(lsns)-1], records: len(recs), at: l.pending[0].at}
		m.data = encodeMsg(make([]byte, 0, size), lsns, recs)
		l.waitBytes += len(m.data) - size
		l.unacked = append(l.unacked, m)
		clear(l.pending[:n])
		l.pending = l.pending[n:]
	}
}

// msgID is a message's deduplication id.
func (l *natsLog) msgID(m *message) string {
	return l.cfg.Instance + ":" + strconv.FormatUint(m.first, 10) + "-" + strconv.FormatUint(m.last, 10)
}

// publishRound sends the round's messages and waits for every answer; it
// returns the first failure, nil when all were stored.
func (l *natsLog) publishRound(round []*message) error {
	type sent struct {
		m   *message
		f   jetstream.PubAckFuture
		at  time.Time
		err error
	}
	out := make([]sent, 0, len(round))
	for _, m := range round {
		l.hook("before-publish")
		msg := &nats.Msg{Subject: l.subj, Data: m.data}
		f, err := l.js.PublishMsgAsync(msg, jetstream.WithMsgID(l.msgID(m)), jetstream.WithExpectStream(l.cfg.Stream))
		out = append(out, sent{m: m, f: f, at: time.Now(), err: err})
		if err != nil {
			break // what follows waits for the next round, in order
		}
	}
	var firstErr error
	acked := make([]*message, 0, len(out))
	var rtt time.Duration
	for i := range out {
		s := &out[i]
		if s.err == nil {
			select {
			case ack := <-s.f.Ok():
				s.m.seq = ack.Sequence
				rtt = time.Since(s.at)
				acked = append(acked, s.m)
				continue
			case s.err = <-s.f.Err():
			case <-l.stop:
				s.err = errors.New("closed while waiting for an acknowledgment")
			}
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("publish to %s: %w", l.subj, s.err)
		}
	}
	l.hook("after-ack")
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range out {
		if out[i].err != nil {
			out[i].m.failed = true
		}
	}
	if len(acked) > 0 {
		l.acks += uint64(len(acked))
		l.rttLast = rtt
		l.rttSum += rtt * time.Duration(len(acked))
		l.unacked = slices.DeleteFunc(l.unacked, func(m *message) bool { return m.seq != 0 })
		for _, m := range acked {
			l.waitBytes -= len(m.data)
			m.data = nil
			i, _ := slices.BinarySearchFunc(l.acked, m.first, func(a *message, first uint64) int { return cmpU64(a.first, first) })
			l.acked = slices.Insert(l.acked, i, m)
		}
		l.notifyLocked()
	}
	l.pubErr = firstErr
	return firstErr
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// hook calls the crash tests' hook at a named point.
func (l *natsLog) hook(point string) {
	if l.cfg.Hook != nil {
		l.cfg.Hook("nats:" + point)
	}
}

// Compact purges the instance's messages whose records are all applied (up
// to upTo): by subject, up to a stream sequence. Only a prefix of messages
// in LSN order, all acknowledged, is purged, and only when no message that
// may be stored out of order (a failed publish not yet answered) is waiting,
// so an unapplied record is never purged.
func (l *natsLog) Compact(upTo uint64) error {
	l.mu.Lock()
	for _, m := range l.unacked {
		if m.failed {
			l.mu.Unlock()
			return nil
		}
	}
	limit := upTo
	if len(l.unacked) > 0 {
		limit = min(limit, l.unacked[0].first-1)
	}
	if len(l.pending) > 0 {
		limit = min(limit, l.pending[0].lsns[0]-1)
	}
	n := 0
	var seq uint64
	for n < len(l.acked) && l.acked[n].last <= limit {
		seq = max(seq, l.acked[n].seq)
		n++
	}
	for _, m := range l.acked[n:] {
		if m.seq <= seq {
			n = 0 // stored before a purged one: the prefix is not a prefix of the stream
		}
	}
	l.mu.Unlock()
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), openWait)
	defer cancel()
	err := l.stream.Purge(ctx, jetstream.WithPurgeSubject(l.subj), jetstream.WithPurgeSequence(seq+1))
	if err != nil {
		return fmt.Errorf("purging %s up to sequence %d: %w", l.subj, seq, err)
	}
	l.mu.Lock()
	// Compactions are serialised by the caller, and only Replay and
	// publishRound insert: the first n are still the ones purged.
	l.acked = slices.Delete(l.acked, 0, n)
	l.mu.Unlock()
	return nil
}
