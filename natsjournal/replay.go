package natsjournal

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// replayed is one record read back from the stream.
type replayed struct {
	lsn uint64
	rec []byte
}

// Replay reads every message of the instance's subject and hands fn the
// records above after, in LSN order, each once (a message stored twice, a
// retried publish outside the deduplication window, is read once).
func (l *natsLog) Replay(after uint64, fn func(lsn uint64, rec []byte) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*openWait)
	defer cancel()
	var recs []replayed
	var msgs []*message
	for pause := 50 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		var err error
		recs, msgs, err = l.readSubject(ctx)
		if err == nil {
			break
		}
		// A consumer just made may not be known yet to the server this
		// connection uses: "no responders" passes; so may a leader change.
		if ctx.Err() != nil || !(errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	slices.SortStableFunc(recs, func(a, b replayed) int { return cmpU64(a.lsn, b.lsn) })
	recs = slices.CompactFunc(recs, func(a, b replayed) bool { return a.lsn == b.lsn })
	l.mu.Lock()
	for _, m := range msgs {
		if m.seq <= l.replayedSeq || m.records == 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(l.ackedMsgs, m.first, func(a *message, first uint64) int { return cmpU64(a.first, first) })
		l.ackedMsgs = slices.Insert(l.ackedMsgs, i, m)
	}
	if len(msgs) > 0 {
		l.replayedSeq = max(l.replayedSeq, msgs[len(msgs)-1].seq)
	}
	var lastRead uint64
	if len(recs) > 0 {
		lastRead = recs[len(recs)-1].lsn
	}
	l.startAboveLocked(lastRead)
	l.mu.Unlock()
	for _, r := range recs {
		if r.lsn <= after {
			continue
		}
		if err := fn(r.lsn, r.rec); err != nil {
			return err
		}
	}
	return nil
}

// readSubject reads every message of the instance's subject.
func (l *natsLog) readSubject(ctx context.Context) (recs []replayed, msgs []*message, err error) {
	// The stream's leader answers: a lagging replica must not end the
	// read early.
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(l.subj))
	if err != nil {
		return nil, nil, fmt.Errorf("natsjournal: reading %s: %w", l.subj, err)
	}
	if info.State.Subjects[l.subj] == 0 {
		return nil, nil, nil
	}
	cons, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{l.subj}})
	if err != nil {
		return nil, nil, fmt.Errorf("natsjournal: reading %s: %w", l.subj, err)
	}
	for more := true; more; {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, nil, fmt.Errorf("natsjournal: reading %s: %w", l.subj, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return nil, nil, fmt.Errorf("natsjournal: reading %s: %w", l.subj, err)
			}
			seq := md.Sequence.Stream
			more = md.NumPending > 0
			m := &message{seq: seq}
			err = decodeMsg(msg.Data(), func(lsn uint64, rec []byte) error {
				if m.records == 0 {
					m.first = lsn
				}
				m.last = lsn
				m.records++
				recs = append(recs, replayed{lsn, rec})
				return nil
			})
			if err != nil {
				return nil, nil, fmt.Errorf("natsjournal: %s, stream sequence %d: %w", l.subj, seq, err)
			}
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil {
			return nil, nil, fmt.Errorf("natsjournal: reading %s: %w", l.subj, err)
		}
		if n == 0 && ctx.Err() != nil {
			return nil, nil, fmt.Errorf("natsjournal: reading %s: %w", l.subj, ctx.Err())
		}
	}
	return recs, msgs, nil
}
