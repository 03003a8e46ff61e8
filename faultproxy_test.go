package writeback

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxyMode is what a faultProxy does with traffic.
type proxyMode int

const (
	proxyPass      proxyMode = iota // forward both ways
	proxyRefuse                     // accept new connections and close them at once
	proxyDelay                      // forward, each chunk after the proxy's delay
	proxyBlackhole                  // accept and read, drop everything, never answer
)

func (m proxyMode) String() string {
	return [...]string{"pass", "refuse", "delay", "blackhole"}[m]
}

// proxyMaxConns bounds the connections a proxy holds; more are closed at once.
const proxyMaxConns = 256

// faultProxy is a TCP proxy on the loopback interface in front of a database
// server, which injects faults: cut every open connection, refuse new ones,
// add latency, or swallow traffic. It closes itself when its test ends.
type faultProxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	done   chan struct{} // closed when the proxy stops
	wg     sync.WaitGroup

	mu    sync.Mutex
	mode  proxyMode
	delay time.Duration
	conns map[net.Conn]struct{} // both sides of every open connection
	cuts  int
	// accepted counts the connections clients opened to the proxy.
	accepted atomic.Int64
	// cutAfter, when set, sees every chunk going to the server; when it
	// returns true the chunk is forwarded and every connection cut at once,
	// before any answer can come back.
	cutAfter func(chunk []byte) bool
}

// cutAfterChunk makes the proxy cut every connection right after forwarding
// the first chunk to the server for which match is true, once.
func (p *faultProxy) cutAfterChunk(match func(chunk []byte) bool) {
	p.mu.Lock()
	p.cutAfter = match
	p.mu.Unlock()
}

// startFaultProxy listens on 127.0.0.1:0 and forwards to target.
func startFaultProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{t: t, ln: ln, target: target, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// port is the proxy's listening port.
func (p *faultProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// setMode changes what the proxy does from now on; open connections keep
// flowing unless the mode is blackhole (they go silent) or they are cut.
func (p *faultProxy) setMode(m proxyMode, delay time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = m, delay
	p.mu.Unlock()
}

// cut closes every open connection now, as a database restart or a network
// failure would.
func (p *faultProxy) cut() {
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
	p.cuts++
	p.mu.Unlock()
}

// outage cuts every connection and refuses new ones until the returned
// function is called.
func (p *faultProxy) outage() (end func()) {
	p.setMode(proxyRefuse, 0)
	p.cut()
	return func() { p.setMode(proxyPass, 0) }
}

func (p *faultProxy) state() (proxyMode, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay
}

// track registers open connections; it reports false (and closes them) when
// the proxy is stopping or full.
func (p *faultProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
	default:
		if len(p.conns)+len(cs) <= 2*proxyMaxConns {
			for _, c := range cs {
				p.conns[c] = struct{}{}
			}
			return true
		}
	}
	for _, c := range cs {
		_ = c.Close()
	}
	return false
}

func (p *faultProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
	p.mu.Unlock()
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.accepted.Add(1)
		mode, _ := p.state()
		switch mode {
		case proxyRefuse:
			_ = c.Close()
		case proxyBlackhole:
			if p.track(c) {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					defer p.untrack(c)
					_, _ = io.Copy(io.Discard, c)
				}()
			}
		default:
			p.wg.Add(1)
			go p.forward(c)
		}
	}
}

// forward connects c to the target and pumps both ways until either side ends.
func (p *faultProxy) forward(c net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: 5 * time.Second}
	s, err := d.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, s) {
		_ = s.Close()
		return
	}
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.pump(s, c, true) }()
	go func() { defer both.Done(); p.pump(c, s, false) }()
	both.Wait()
}

// pump copies src to dst a chunk at a time, applying the mode to each chunk;
// when it ends it closes both, which ends the other direction too.
func (p *faultProxy) pump(dst, src net.Conn, toServer bool) {
	defer p.untrack(dst, src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			mode, delay := p.state()
			if mode == proxyDelay && delay > 0 {
				// The latency is the fault being injected, not a wait for
				// an event.
				tm := time.NewTimer(delay)
				select {
				case <-tm.C:
				case <-p.done:
					tm.Stop()
					return
				}
			}
			if mode != proxyBlackhole {
				var cut bool
				if toServer {
					p.mu.Lock()
					if p.cutAfter != nil && p.cutAfter(buf[:n]) {
						cut, p.cutAfter = true, nil
					}
					p.mu.Unlock()
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
				if cut {
					p.cut()
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops accepting, closes every connection and waits for the proxy's
// goroutines.
func (p *faultProxy) close() {
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		return
	default:
	}
	close(p.done)
	p.mu.Unlock()
	_ = p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// proxyTarget is the TCP address of the test server the proxy forwards to,
// and a key=value DSN of it with the port left for the caller: taken from
// WRITEBACK_TEST_POSTGRES when that names a TCP host and port, else the local
// server at 127.0.0.1:5432 (user postgres, database test).
func proxyTarget() (addr string, dsn func(port int) string) {
	env := os.Getenv("WRITEBACK_TEST_POSTGRES")
	if strings.HasPrefix(env, "postgres://") || strings.HasPrefix(env, "postgresql://") {
		if u, err := url.Parse(env); err == nil && u.Hostname() != "" && !strings.HasPrefix(u.Hostname(), "/") {
			port := u.Port()
			if port == "" {
				port = "5432"
			}
			return net.JoinHostPort(u.Hostname(), port), func(p int) string {
				v := *u
				v.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
				q := v.Query()
				if q.Get("sslmode") == "" {
					q.Set("sslmode", "disable")
				}
				v.RawQuery = q.Encode()
				return v.String()
			}
		}
	}
	if env != "" && !strings.Contains(env, "://") {
		host, port, rest := "", "5432", []string{}
		for _, f := range strings.Fields(env) {
			switch k, v, _ := strings.Cut(f, "="); k {
			case "host":
				host = v
			case "port":
				port = v
			default:
				rest = append(rest, f)
			}
		}
		if host != "" && !strings.HasPrefix(host, "/") {
			return net.JoinHostPort(host, port), func(p int) string {
				return fmt.Sprintf("host=127.0.0.1 port=%d %s", p, strings.Join(rest, " "))
			}
		}
	}
	return "127.0.0.1:5432", func(p int) string {
		return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=test sslmode=disable", p)
	}
}

// withSearchPath adds a search_path to a key=value or URL DSN.
func withSearchPath(dsn, schema string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// proxiedPostgres starts a fault proxy in front of the test server and
// creates a fresh schema (dropped when the test ends). It returns the proxy,
// a DSN through the proxy and a direct DSN, both with the schema as their
// search_path. An unreachable server skips the test, or fails it under CI=true.
func proxiedPostgres(t testing.TB, prefix string) (p *faultProxy, viaProxy, direct string) {
	t.Helper()
	addr, dsnFor := proxyTarget()
	_, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	directBase := dsnFor(port)
	admin, err := sql.Open("pgx", directBase)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		msg := fmt.Sprintf("PostgreSQL over TCP at %s unreachable (%v); set WRITEBACK_TEST_POSTGRES to a host=/port= DSN or URL of a reachable server", addr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	name := fmt.Sprintf("wb_%s_%d_%d", prefix, os.Getpid(), schemaSeq.Add(1))
	if _, err := admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE; CREATE SCHEMA " + name); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	p = startFaultProxy(t, addr)
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE")
		admin.Close()
	})
	return p, withSearchPath(dsnFor(p.port()), name), withSearchPath(directBase, name)
}

// TestFaultProxyModes checks the proxy itself: pass, cut, refuse, delay and
// blackhole, each as the client sees it.
func TestFaultProxyModes(t *testing.T) {
	p, viaProxy, _ := proxiedPostgres(t, "proxy")
	db, err := sql.Open("pgx", viaProxy)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(1)
	ping := func(d time.Duration) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		start := time.Now()
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		return time.Since(start), err
	}
	if _, err := ping(5 * time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	p.cut()
	// A cut connection fails once (database/sql retries on a fresh one
	// when the driver reports a bad connection before sending); either
	// way the next query works.
	_, _ = ping(5 * time.Second)
	if _, err := ping(5 * time.Second); err != nil {
		t.Fatalf("after cut: %v", err)
	}
	end := p.outage()
	if took, err := ping(2 * time.Second); err == nil || took > 2500*time.Millisecond {
		t.Fatalf("refuse: err %v after %s; want an error within the context", err, took)
	}
	end()
	if _, err := ping(5 * time.Second); err != nil {
		t.Fatalf("pass again: %v", err)
	}
	p.setMode(proxyDelay, 50*time.Millisecond)
	if took, err := ping(5 * time.Second); err != nil || took < 50*time.Millisecond {
		t.Fatalf("delay: %v after %s; want success after at least 50ms", err, took)
	}
	p.setMode(proxyBlackhole, 0)
	p.cut()
	if took, err := ping(300 * time.Millisecond); err == nil || !errors.Is(err, context.DeadlineExceeded) && took > time.Second {
		t.Fatalf("blackhole: err %v after %s; want the context's deadline", err, took)
	}
	p.setMode(proxyPass, 0)
}
