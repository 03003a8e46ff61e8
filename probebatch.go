package writeback

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/joinq"
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

// maxProbesInFlight is how many probe queries of one table run at once
// before the next probes wait and are joined into one.
const maxProbesInFlight = 4

// probeReq is one writer's probe of one key; found and err are set by the
// batch's leader.
type probeReq struct {
	key   []any
	found bool
	err   error
}

// probeKey reports whether the row of key (one key, no guards) exists,
// asking the database together with the table's other writers.
func (cn *Connector) probeKey(ctx context.Context, c *conn, t *tableState, info *stmtInfo, key []any) (bool, error) {
	w := joinq.NewWaiter(&probeReq{key: key})
	lead, err := t.prober.Join(ctx, w, maxProbesInFlight)
	if err != nil {
		return false, err
	}
	if lead {
		cn.leadProbes(ctx, c, t, info, w)
	}
	return w.Req.found, w.Req.err
}

// leadProbes sends the queued probes, w first, as one query on c, answers
// them, and passes the lead on. If another leader already took w into its
// query, it waits for that answer.
func (cn *Connector) leadProbes(ctx context.Context, c *conn, t *tableState, info *stmtInfo, w *joinq.Waiter[*probeReq]) {
	batch := t.prober.Take(w, maxProbeBatch)
	if batch == nil {
		w.Wait()
		return
	}
	// The others wait for this query: it runs even if the caller gives up.
	t.probes.Add(1)
	found, err := cn.probeMany(context.WithoutCancel(ctx), c, info, batch)
	if err != nil {
		found = make([]bool, len(batch))
	}
	for i, q := range batch {
		q.Req.found, q.Req.err = found[i], err
	}
	t.prober.Finish(batch)
}

// probeMany asks the database which of the requests' keys have a row: one
// EXISTS per key, joined by UNION ALL, answering the positions that do.
func (cn *Connector) probeMany(ctx context.Context, c *conn, info *stmtInfo, batch []*joinq.Waiter[*probeReq]) ([]bool, error) {
	keys := make([][]any, len(batch))
	for i, q := range batch {
		keys[i] = q.Req.key
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
