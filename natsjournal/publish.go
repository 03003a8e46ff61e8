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

// publishLoop publishes the records: it forms the pending records into
// messages (outside the lock: appends go on), and sends them in LSN order
// while fewer than window are in flight; ackLoop takes the answers in the
// order they were sent. Records appended while messages are in flight form
// the next ones (group commit). A message whose publish failed keeps its
// content and id and is sent again, before any later one, after a pause:
// JetStream's deduplication drops it if the failed attempt was stored.
func (l *natsLog) publishLoop() {
	defer l.done.Done()
	defer close(l.ackQ)
	for {
		l.mu.Lock()
		for {
			if l.isClosed() {
				l.mu.Unlock()
				return
			}
			// Records are formed into messages only when one can be
			// sent: while the window is full they wait in pending, so
			// that the next message carries all of them. Forming them
			// at once would queue many small messages behind the window,
			// each costing JetStream a message (on two cores, with the
			// servers in the process, that was most of ack: memory's
			// cost).
			if l.inflight < l.windowLocked() && (len(l.pending) > 0 || l.sendableLocked()) {
				break
			}
			wait := time.Duration(-1)
			if !l.retryAt.IsZero() {
				wait = max(time.Until(l.retryAt), time.Millisecond)
			}
			l.mu.Unlock()
			l.idle(wait)
			l.mu.Lock()
		}
		units := l.pending
		l.pending = l.spare[:0] // appends go on into the spare, without growing a new slice under the lock
		l.spare = nil
		if len(units) > 0 {
			l.forming = units[0].first
		}
		l.mu.Unlock()

		msgs := formMessages(units)

		clear(units) // the records now live in the messages
		l.mu.Lock()
		if cap(units) <= 1<<16 {
			l.spare = units[:0]
		}
		l.forming = 0
		for _, m := range msgs {
			l.waitBytes += len(m.data) - m.unitBytes
		}
		l.unacked = append(l.unacked, msgs...)
		var send []*message
		if l.retryAt.IsZero() || !time.Now().Before(l.retryAt) {
			l.retryAt = time.Time{}
			for _, m := range l.unacked {
				if l.inflight+len(send) >= l.windowLocked() {
					break
				}
				if !m.sending {
					m.sending = true
					send = append(send, m)
				}
			}
		}
		l.inflight += len(send)
		l.mu.Unlock()

		for _, m := range send {
			l.hook("before-publish")
			msg := &nats.Msg{Subject: l.subj, Data: m.data}
			f, err := l.js.PublishMsgAsync(msg, jetstream.WithMsgID(l.msgID(m)), jetstream.WithExpectStream(l.cfg.Stream))
			l.ackQ <- sent{m: m, f: f, at: time.Now(), err: err}
		}
	}
}

// windowLocked is how many messages may be in flight now: window while a
// writer waits for its record to be stored (ack: replicated, or Close),
// idleWindow while none does. Without a waiter, latency buys nothing: fewer
// messages in flight leave more records to each message, and JetStream's
// cost is per message.
func (l *natsLog) windowLocked() int {
	if l.syncWaiters > 0 {
		return window
	}
	return idleWindow
}

// idle waits for a kick, the end, or wait (none when negative).
func (l *natsLog) idle(wait time.Duration) {
	var timeout <-chan time.Time
	if wait >= 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-l.stop:
	case <-l.kick:
	case <-timeout:
	}
}

// sendableLocked reports whether a message waits to be sent now.
func (l *natsLog) sendableLocked() bool {
	if !l.retryAt.IsZero() && time.Now().Before(l.retryAt) {
		return false
	}
	for _, m := range l.unacked {
		if !m.sending {
			return true
		}
	}
	return false
}

func (l *natsLog) isClosed() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// sent is a message in flight.
type sent struct {
	m   *message
	f   jetstream.PubAckFuture
	at  time.Time
	err error
}

// ackLoop takes the answers of the messages in flight, in the order they
// were sent.
func (l *natsLog) ackLoop() {
	defer l.done.Done()
	for s := range l.ackQ {
		if s.err == nil {
			select {
			case ack := <-s.f.Ok():
				if ack.Duplicate && !s.m.failed {
					// Never sent before, yet taken for a duplicate: another
					// message had this id. Its records were not stored.
					l.log.Error("writeback: JetStream took a new journal message for a duplicate; its records are sent again under a new id", "journal", l.name, "id", l.msgID(s.m))
					l.mu.Lock()
					s.m.gen++
					l.mu.Unlock()
					s.err = errors.New("message id taken by another message")
					break
				}
				l.acked(s.m, ack.Sequence, time.Since(s.at))
				continue
			case s.err = <-s.f.Err():
			case <-l.stop:
				s.err = errors.New("closed while waiting for an acknowledgment")
			}
		}
		l.failed(s.m, fmt.Errorf("publish to %s: %w", l.subj, s.err))
	}
}

// acked records a message stored at stream sequence seq.
func (l *natsLog) acked(m *message, seq uint64, rtt time.Duration) {
	l.hook("after-ack")
	l.mu.Lock()
	m.seq, m.sending = seq, false
	l.inflight--
	l.acks++
	l.rttLast = rtt
	l.rttSum += rtt
	if l.pubErr != nil {
		l.pubErr = nil
		l.log.Info("writeback: publishing to the replicated journal works again", "journal", l.name)
	}
	l.unacked = slices.DeleteFunc(l.unacked, func(u *message) bool { return u == m })
	l.waitBytes -= len(m.data)
	m.data = nil
	i, _ := slices.BinarySearchFunc(l.ackedMsgs, m.first, func(a *message, first uint64) int { return cmpU64(a.first, first) })
	l.ackedMsgs = slices.Insert(l.ackedMsgs, i, m)
	l.notifyLocked()
	l.mu.Unlock()
	l.wake()
}

// failed records a failed publish: the message is sent again, first, after
// a pause that grows while publishes fail.
func (l *natsLog) failed(m *message, err error) {
	l.mu.Lock()
	m.failed, m.sending = true, false
	l.inflight--
	if l.pubErr == nil {
		l.log.Warn("writeback: publishing to the replicated journal fails; records wait in memory and are published when JetStream answers", "journal", l.name, "err", err)
		l.pause = retryMin
	} else {
		l.pause = min(2*l.pause, retryMax)
	}
	l.pubErr = err
	l.retryAt = time.Now().Add(l.pause)
	l.mu.Unlock()
	l.wake()
}

// wake kicks the publisher.
func (l *natsLog) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// formMessages forms units into messages of at most maxMsgBytes; a unit is
// never split.
func formMessages(units []unit) []*message {
	var out []*message
	for len(units) > 0 {
		n, size := 0, 0
		for n < len(units) && (n == 0 || size+units[n].size <= maxMsgBytes) {
			size += units[n].size
			n++
		}
		var lsns []uint64
		var recs [][]byte
		for _, u := range units[:n] {
			for i, r := range u.records() {
				lsns = append(lsns, u.first+uint64(i))
				recs = append(recs, r)
			}
		}
		at := units[0].at
		if at.IsZero() {
			at = time.Now()
		}
		m := &message{first: lsns[0], last: lsns[len(lsns)-1], records: len(recs), at: at, unitBytes: size}
		m.data = encodeMsg(make([]byte, 0, size), lsns, recs)
		out = append(out, m)
		units = units[n:]
	}
	return out
}

// msgID is a message's deduplication id.
func (l *natsLog) msgID(m *message) string {
	id := l.cfg.Instance + ":" + strconv.FormatUint(m.first, 10) + "-" + strconv.FormatUint(m.last, 10)
	if m.gen > 0 {
		id += "/" + strconv.Itoa(m.gen)
	}
	return id
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
	limit := min(upTo, l.durableLocked())
	n := 0
	var seq uint64
	for n < len(l.ackedMsgs) && l.ackedMsgs[n].last <= limit {
		seq = max(seq, l.ackedMsgs[n].seq)
		n++
	}
	for _, m := range l.ackedMsgs[n:] {
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
	// Compactions are serialised by the caller, and acked inserts only
	// above durableLocked: the first n are still the ones purged.
	l.ackedMsgs = slices.Delete(l.ackedMsgs, 0, n)
	l.mu.Unlock()
	return nil
}
