package writeback

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file joins the probes of one table's cold keys (exists.go) that
// arrive while another probe of the table is in flight into one query, as
// concurrent fsyncs share one in the journal: a writer that finds no probe
// in flight sends its own at once, on its connection; the others queue, and
// when the query in flight ends its sender hands the queue to the first of
// them, who sends the whole queue as one query on its own connection.

// maxProbeBatch bounds the keys one probe query asks about.
const maxProbeBatch = 256

// probeBatcher is one table's queue of probes.
type probeBatcher struct {
	mu      sync.Mutex
	running int         // probe queries in flight
	queue   []*probeReq // probes waiting for the next query; queue[0] leads it
}

// maxProbesInFlight is how many probe queries of one table run at once
// before the next probes wait and are joined into one.
const maxProbesInFlight = 4

// probeReq is one writer's probe of one key.
type probeReq struct {
	key   []any
	done  chan struct{} // closed with found and err set
	lead  chan struct{} // closed when this writer is to send the next query
	found bool
	err   error
}

// probeKey reports whether the row of key (one key, no guards) exists,
// asking the database together with the table's other writers.
func (cn *Connector) probeKey(ctx context.Context, c *conn, t *tableState, info *stmtInfo, key []any) (bool, error) {
	b := &t.prober
	r := &probeReq{key: key, done: make(chan struct{}), lead: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, r)
	if b.running < maxProbesInFlight {
		b.running++
		close(r.lead) // a free slot: this writer leads at once
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.found, r.err
	case <-r.lead:
		return cn.leadProbes(ctx, c, t, info, r)
	case <-ctx.Done():
	}
	b.mu.Lock()
	if i := slices.Index(b.queue, r); i >= 0 && !closed(r.lead) {
		b.queue = slices.Delete(b.queue, i, i+1)
		b.mu.Unlock()
		return false, ctx.Err()
	}
	b.mu.Unlock()
	// Taken into a query, or handed a lead: see it through, so the writers
	// behind it are answered.
	select {
	case <-r.done:
		return r.found, r.err
	case <-r.lead:
		return cn.leadProbes(ctx, c, t, info, r)
	}
}

// closed reports whether ch is closed.
func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// passLeadLocked hands the lead a query just ended held to the first
// queued writer without one, or frees the slot.
func (b *probeBatcher) passLeadLocked() {
	for _, q := range b.queue {
		if !closed(q.lead) {
			close(q.lead)
			return
		}
	}
	b.running--
}

// leadProbes sends the queued probes, r first, as one query on c, answers
// them, and passes the lead on. If another leader already took r into its
// query, it passes the lead on and waits for that answer.
func (cn *Connector) leadProbes(ctx context.Context, c *conn, t *tableState, info *stmtInfo, r *probeReq) (bool, error) {
	b := &t.prober
	b.mu.Lock()
	i := slices.Index(b.queue, r)
	if i < 0 {
		b.passLeadLocked()
		b.mu.Unlock()
		<-r.done
		return r.found, r.err
	}
	// r first, then the others queued, up to maxProbeBatch; those with a
	// lead of their own find themselves taken and pass it on.
	b.queue = slices.Delete(b.queue, i, i+1)
	n := min(len(b.queue), maxProbeBatch-1)
	batch := append([]*probeReq{r}, b.queue[:n]...)
	b.queue = slices.Delete(b.queue, 0, n)
	b.mu.Unlock()
	// The others wait for this query: it runs even if the caller gives up.
	t.probes.Add(1)
	found, err := cn.probeMany(context.WithoutCancel(ctx), c, info, batch)
	if err != nil {
		found = make([]bool, len(batch))
	}
	for i, q := range batch {
		q.found, q.err = found[i], err
		close(q.done)
	}
	b.mu.Lock()
	b.passLeadLocked()
	b.mu.Unlock()
	return r.found, r.err
}

// probeMany asks the database which of the requests' keys have a row: one
// EXISTS per key, joined by UNION ALL, answering the positions that do.
func (cn *Connector) probeMany(ctx context.Context, c *conn, info *stmtInfo, batch []*probeReq) ([]bool, error) {
	keys := make([][]any, len(batch))
	for i, q := range batch {
		keys[i] = q.key
	}
	found := make([]bool, len(batch))
	if len(batch) == 1 {
		ok, err := cn.probeRows(ctx, c, info, keys)
		found[0] = ok
		return found, err
	}
	query, args := probeUnionSQL(info.names, info.c.Style, keys)
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	rows, err := c.queryBase(pctx, query, args)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	for {
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			return found, nil
		}
		if err != nil {
			return nil, err
		}
		var i int64
		switch v := dest[0].(type) {
		case int64:
			i = v
		case []byte:
			i, err = strconv.ParseInt(string(v), 10, 64)
		case string:
			i, err = strconv.ParseInt(v, 10, 64)
		default:
			err = errors.New("writeback: probe: unexpected answer")
		}
		if err != nil || i < 1 || int(i) > len(found) {
			return nil, errors.New("writeback: probe: unexpected answer")
		}
		found[i-1] = true
	}
}

// probeUnionSQL is the probe of several keys, one answer row per key whose
// row exists: SELECT 1 WHERE EXISTS (...) UNION ALL SELECT 2 WHERE ...
func probeUnionSQL(names *dirtyset.Names, style sqlparse.ParamStyle, keys [][]any) (string, []driver.NamedValue) {
	var sb strings.Builder
	args := make([]driver.NamedValue, 0, len(keys)*len(names.KeyCols))
	for i, kv := range keys {
		if i > 0 {
			sb.WriteString(" UNION ALL ")
		}
		sb.WriteString("SELECT ")
		sb.WriteString(strconv.Itoa(i + 1))
		sb.WriteString(" WHERE EXISTS (SELECT 1 FROM ")
		writeProbeTable(&sb, names)
		sb.WriteString(" WHERE ")
		args = writeProbeKey(&sb, names, style, kv, args)
		sb.WriteByte(')')
	}
	return sb.String(), args
}

// queryBase runs a query on the connection's base connection, as database/sql
// would: QueryerContext, or a prepared statement closed with the rows.
func (c *conn) queryBase(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	base, err := c.attach(ctx)
	if err != nil {
		return nil, err
	}
	var rows driver.Rows
	if q, ok := base.(driver.QueryerContext); ok {
		rows, err = q.QueryContext(ctx, query, args)
	}
	if rows == nil && (err == nil || errors.Is(err, driver.ErrSkip)) {
		var st driver.Stmt
		if st, err = drivercall.Prepare(ctx, base, query); err == nil {
			if rows, err = drivercall.StmtQuery(ctx, st, args); err != nil {
				st.Close()
			} else {
				rows = closeStmtRows{rows, st}
			}
		}
	}
	if err != nil {
		if errors.Is(err, driver.ErrBadConn) {
			c.detach()
		}
		return nil, err
	}
	return rows, nil
}
