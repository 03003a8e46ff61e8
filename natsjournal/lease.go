package natsjournal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseValue is what a lease key holds: who holds it, for messages.
type leaseValue struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
}

func (l *natsLog) leaseValue() []byte {
	host, _ := os.Hostname()
	b, _ := json.Marshal(leaseValue{Host: host, PID: os.Getpid(), Since: time.Now().UTC()})
	return b
}

// acquireLease takes the instance's lease: a create, which succeeds only
// when the key is absent (expired or released). Unless NoLeaseWait, a held
// lease is waited for, up to leaseWaitMult leases: a process that died
// holding it lets it expire; a live one renews it, and two live processes
// must not share an instance name.
func (l *natsLog) acquireLease() error {
	deadline := time.Now().Add(leaseWaitMult * l.lease)
	logged := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), openWait)
		rev, err := l.kv.Create(ctx, l.cfg.Instance, l.leaseValue())
		cancel()
		if err == nil {
			l.leaseRev = rev
			return nil
		}
		// A wrong sequence is a create that raced another process's
		// write of the key (a deleted or expired lease taken meanwhile):
		// the lease is held, as when the key exists.
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return fmt.Errorf("taking the lease of instance %s: %w", l.cfg.Instance, err)
		}
		holder := l.holder()
		if l.cfg.NoLeaseWait {
			return fmt.Errorf("%w: instance %s, held by %s", ErrLeaseHeld, l.cfg.Instance, holder)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: instance %s is held by %s and was not released within %s; two processes must not share an instance name", ErrLeaseHeld, l.cfg.Instance, holder, leaseWaitMult*l.lease)
		}
		if !logged {
			logged = true
			l.log.Warn("writeback: waiting for this instance's lease, held by another process (a previous run, or a takeover of it): it expires within the lease", "instance", l.cfg.Instance, "holder", holder, "lease", l.lease)
		}
		time.Sleep(min(l.lease/4, time.Second)) // the key expires on the server; there is no signal for it
	}
}

// holder describes the process holding the instance's lease.
func (l *natsLog) holder() string {
	ctx, cancel := context.WithTimeout(context.Background(), openWait)
	defer cancel()
	e, err := l.kv.Get(ctx, l.cfg.Instance)
	if err != nil {
		return "an unknown process"
	}
	var v leaseValue
	if json.Unmarshal(e.Value(), &v) != nil {
		return "an unknown process"
	}
	return fmt.Sprintf("pid %d on %s since %s", v.PID, v.Host, v.Since.Format(time.RFC3339))
}

// renewLoop renews the lease four times per lease. A renewal that finds
// another revision means the lease was taken (this process stalled beyond
// it); renewals that fail for three quarters of the lease mean it may
// expire on the server. Either fences the journal off.
func (l *natsLog) renewLoop() {
	defer l.done.Done()
	every := l.lease / 4
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastOK := time.Now() // when the last successful renewal was sent
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), every)
		rev, err := l.kv.Update(ctx, l.cfg.Instance, l.leaseValue(), l.leaseRev)
		cancel()
		switch {
		case err == nil:
			l.leaseRev, lastOK = rev, sent
		case errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) || errors.Is(err, jetstream.ErrKeyNotFound):
			l.fenceOff(fmt.Errorf("natsjournal: the lease of instance %s was taken or expired (this process stalled beyond it): %w", l.cfg.Instance, err))
			return
		case time.Since(lastOK) > l.lease*3/4:
			l.fenceOff(fmt.Errorf("natsjournal: the lease of instance %s could not be renewed for %s and may expire: %w", l.cfg.Instance, time.Since(lastOK).Round(time.Millisecond), err))
			return
		}
	}
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == errCodeWrongLastSequenceConstant)
}

// errCodeWrongLastSequenceConstant is the server's JSStreamWrongLastSequenceConstantErr
// (nats.go names no constant for it): an update that expected a fixed last
// sequence found another, as a create does when another process wrote the
// key between the create's read of a deleted key and its write.
const errCodeWrongLastSequenceConstant jetstream.ErrorCode = 10164

// releaseLease deletes the lease key if this process still holds it.
func (l *natsLog) releaseLease() {
	if l.Fenced() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), openWait)
	defer cancel()
	if err := l.kv.Delete(ctx, l.cfg.Instance, jetstream.LastRevision(l.leaseRev)); err != nil {
		l.log.Warn("writeback: could not release the instance's lease; it expires on its own", "instance", l.cfg.Instance, "err", err)
	}
}

// takeoverLoop looks, twice per lease, for instances with records in the
// stream and no lease, and takes each over (durable.BackendConfig.TakeOver).
func (l *natsLog) takeoverLoop() {
	defer l.done.Done()
	tick := time.NewTicker(l.lease / 2)
	defer tick.Stop()
	// A takeover that fails (rules that no longer buffer the dead
	// instance's tables, a database refusing its rows) is tried again
	// after a pause that doubles up to a minute, not at every look.
	type retry struct {
		at    time.Time
		pause time.Duration
	}
	failing := map[string]retry{}
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		for _, inst := range l.orphans() {
			if r, ok := failing[inst]; ok && time.Now().Before(r.at) {
				continue
			}
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan struct{})
			go func() {
				select {
				case <-l.stop:
					cancel()
				case <-stopped:
				}
			}()
			l.log.Warn("writeback: taking over the records of an instance whose lease expired", "instance", inst, "by", l.cfg.Instance)
			err := l.cfg.TakeOver(ctx, inst)
			close(stopped)
			cancel()
			switch {
			case err == nil:
				delete(failing, inst)
				l.log.Info("writeback: took over and applied the records of an instance", "instance", inst)
			case errors.Is(err, ErrLeaseHeld):
				// Another process took it first, or it came back.
			default:
				pause := min(max(2*failing[inst].pause, l.lease), time.Minute)
				failing[inst] = retry{time.Now().Add(pause), pause}
				l.log.Error("writeback: taking over an instance failed; it is tried again", "instance", inst, "in", pause, "err", err)
			}
		}
	}
}

// orphans lists the instances with records in the stream and no lease.
func (l *natsLog) orphans() []string {
	ctx, cancel := context.WithTimeout(context.Background(), openWait)
	defer cancel()
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(l.cfg.Stream+".*"))
	if err != nil {
		return nil
	}
	var out []string
	for subj, n := range info.State.Subjects {
		inst, ok := strings.CutPrefix(subj, l.cfg.Stream+".")
		if !ok || n == 0 || inst == l.cfg.Instance {
			continue
		}
		if _, err := l.kv.Get(ctx, inst); errors.Is(err, jetstream.ErrKeyNotFound) {
			out = append(out, inst)
		}
	}
	return out
}
