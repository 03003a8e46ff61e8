package writeback

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"
)

// commitUnknown is a COMMIT that got no answer: the connection broke after
// the server may have committed. Retrying the rows blindly could apply a
// counter's delta twice, so the flusher first asks the database what became
// of the transaction (resolve, on a new connection).
type commitUnknown struct {
	err     error
	resolve func(ctx context.Context, conn driver.Conn) (committed, known bool, err error)
}

func (e *commitUnknown) Error() string { return e.err.Error() + " (outcome unknown)" }
func (e *commitUnknown) Unwrap() error { return e.err }

// resolveCommit asks the database, until it answers, whether the
// transaction of cu committed. While the database is down it keeps asking,
// with the table's backoff, and counts each failed attempt as a failure of
// t (Stats, log). Once Close has been asked for it gives up after the close
// timeout and returns an error.
func (f *flusher) resolveCommit(t *tableState, cu *commitUnknown) (committed bool, err error) {
	stop := f.stop
	var giveUp <-chan time.Time
	for {
		conn, _, err := f.connection()
		if err == nil {
			ctx, cancel := context.WithTimeout(f.ctx, flushAttemptTimeout)
			var known bool
			committed, known, err = cu.resolve(ctx, conn)
			cancel()
			if err == nil && known {
				return committed, nil
			}
			if err != nil && isConnError(err) {
				f.closeConn()
			}
		}
		if err == nil {
			err = fmt.Errorf("%w: the transaction is still in progress", cu)
		}
		f.noteFailure(t, err)
		wait := time.NewTimer(max(0, time.Until(t.retryAt)))
		select {
		case <-wait.C:
		case <-stop:
			wait.Stop()
			stop = nil // closing: keep asking until the close timeout
			giveUp = time.After(f.closeTimeout)
		case <-giveUp:
			wait.Stop()
			return false, fmt.Errorf("%w: not resolved before the close timeout: %v", cu, err)
		case <-f.ctx.Done():
			wait.Stop()
			return false, fmt.Errorf("%w: not resolved: %v", cu, err)
		}
	}
}
