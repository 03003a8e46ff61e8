package writeback

import (
	"context"
	"fmt"
	"time"

	"github.com/writeback-go/writeback/internal/dialect"
)

// resolveCommit asks the database, until it answers, whether the
// transaction of cu committed. While the database is down it keeps asking,
// with the table's backoff, and counts each failed attempt as a failure of
// t (Stats, log). Once Close has been asked for it gives up after the close
// timeout and returns an error.
func (f *flusher) resolveCommit(t *tableState, cu *dialect.CommitUnknownError) (committed bool, err error) {
	stop := f.stop
	var giveUp <-chan time.Time
	for {
		conn, _, err := f.connection()
		if err == nil {
			ctx, cancel := context.WithTimeout(f.ctx, flushAttemptTimeout)
			var known bool
			committed, known, err = cu.Resolve(ctx, conn)
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
