package writeback

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The exact oracle: each case runs the same statements directly on one
// database and through writeback on an identical one (a fresh schema or a
// fresh SQLite file each), and then either
//
//   - every read, every error (its presence; its text where marked), and
//     after writeback.Flush every final query must be identical, or
//   - opening the writeback connector must fail with an error that names the
//     rules file and the rule's line (file:LINE) and says why.
//
// Expected values are never written down: the database, run directly,
// decides them. The cases are in exact_cases_test.go.

// exactDB is the set of databases a case runs on.
type exactDB uint8

const (
	onSQLite exactDB = 1 << iota
	onPostgres
	onBoth = onSQLite | onPostgres
)

type stepKind uint8

const (
	stepExec  stepKind = iota // a statement whose error is compared
	stepQuery                 // a read whose rows and error are compared
	stepDDL                   // schema change through writeback; it must succeed directly
)

// exactStep is one statement, written with ? (or ?N) placeholders; they
// become $N on PostgreSQL. Args are bound as given, to both sides.
type exactStep struct {
	kind    stepKind
	query   string
	args    []any
	errText bool // compare the error's text as well as its presence
}

func execStep(q string, args ...any) exactStep {
	return exactStep{kind: stepExec, query: q, args: args}
}
func queryStep(q string, args ...any) exactStep {
	return exactStep{kind: stepQuery, query: q, args: args}
}
func ddlStep(q string) exactStep { return exactStep{kind: stepDDL, query: q} }

// sameErrText marks a step whose error text, not only its presence, must be
// the database's own wording through writeback too.
func (s exactStep) sameErrText() exactStep { s.errText = true; return s }

type expectKind uint8

const (
	expectSame          expectKind = iota // opens; everything identical
	expectRefused                         // the open fails (see checkRefusal)
	expectSameOrRefused                   // either of the two
)

// exactExpect is a case's expectation. words are lower-case substrings the
// refusal must contain (case-insensitively); "a|b" accepts either.
type exactExpect struct {
	kind  expectKind
	words []string
}

var wantSame = exactExpect{kind: expectSame}

func wantRefused(words ...string) exactExpect { return exactExpect{kind: expectRefused, words: words} }
func wantSameOrRefused(words ...string) exactExpect {
	return exactExpect{kind: expectSameOrRefused, words: words}
}

type exactCase struct {
	name string
	dbs  exactDB
	// schema is run directly on both databases (one Exec, several
	// statements allowed) before writeback opens; schemaPG replaces it on
	// PostgreSQL when set.
	schema, schemaPG string
	needs            string // "citext": the PostgreSQL extension schemaPG uses (skipped when it cannot be had)
	rules            string
	steps            []exactStep
	// final are read from both databases with plain connections after
	// writeback.Flush; each must have an ORDER BY that makes it total.
	final []string
	want  exactExpect
}

// backRules is a rules file with one back table: "tables:" on line 1, the
// table's name on line 2, its key on line 4, max_loss 1h (nothing is flushed
// before a barrier or Flush), then extra lines, e.g. "allow: [check]".
func backRules(table, key string, extra ...string) string {
	s := "tables:\n  " + table + ":\n    mode: back\n    key: [" + key + "]\n    max_loss: 1h\n"
	for _, e := range extra {
		s += "    " + e + "\n"
	}
	return s
}

func TestExact(t *testing.T) {
	for _, d := range []struct {
		name string
		db   exactDB
	}{{"sqlite", onSQLite}, {"postgres", onPostgres}} {
		t.Run(d.name, func(t *testing.T) {
			if d.db == onPostgres {
				requirePostgres(t)
			}
			for _, c := range exactCases {
				if c.dbs&d.db != 0 {
					t.Run(c.name, func(t *testing.T) { runExact(t, c, d.db == onPostgres) })
				}
			}
		})
	}
}

// exactEnv is a pair of identical, fresh databases.
type exactEnv struct {
	driver, directDSN, wbDSN string
	pg                       bool
}

func newExactEnv(t *testing.T, pg bool) exactEnv {
	if pg {
		return exactEnv{driver: "pgx", directDSN: pgSchema(t, "exd"), wbDSN: pgSchema(t, "exw"), pg: true}
	}
	// Foreign keys are enforced, on both sides, as an application using them would.
	const fk = "&_foreign_keys=1"
	return exactEnv{driver: "sqlite3", directDSN: sqliteDSN(t, "direct") + fk, wbDSN: sqliteDSN(t, "wb") + fk}
}

// openPlain opens the base driver on dsn and closes it when the test ends.
func (e exactEnv) openPlain(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(e.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func runExact(t *testing.T, c exactCase, pg bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if pg && c.needs != "" {
		ensureExtension(t, c.needs)
	}
	env := newExactEnv(t, pg)
	schema := c.schema
	if pg && c.schemaPG != "" {
		schema = c.schemaPG
	}
	direct, wbBase := env.openPlain(t, env.directDSN), env.openPlain(t, env.wbDSN)
	for _, db := range []*sql.DB{direct, wbBase} {
		if _, err := db.ExecContext(ctx, schema); err != nil {
			t.Fatalf("harness: schema: %v", err)
		}
	}

	rulesPath := writeRulesFile(t, c.rules)
	wb, err := sql.Open("writeback", "driver="+env.driver+" rules="+rulesPath+" dsn="+env.wbDSN)
	switch {
	case err != nil && c.want.kind == expectSame:
		t.Fatalf("open refused, want it accepted: %v", err)
	case err != nil:
		for _, p := range refusalProblems(err, rulesPath, c.rules, c.want.words) {
			t.Errorf("refusal %s: %v", p, err)
		}
		return
	case c.want.kind == expectRefused:
		wb.Close()
		t.Fatalf("open accepted, want it refused naming %s at the rule's line and saying %q", filepath.Base(rulesPath), c.want.words)
	}
	defer func() {
		if err := wb.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	// Every step runs on one pinned connection a side, so session state
	// (SET ...) is the application's.
	dc, err := direct.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	wc, err := wb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	diffs := 0
	for i, s := range c.steps {
		q := exactSQL(s.query, pg)
		want, got := runExactStep(ctx, dc, s, q), runExactStep(ctx, wc, s, q)
		if s.kind == stepDDL && want.err != nil {
			t.Fatalf("harness: step %d: DDL %q fails directly: %v", i+1, q, want.err)
		}
		if d := want.diff(got, s.errText); d != "" {
			diffs++
			t.Errorf("step %d %q %v: %s", i+1, q, s.args, d)
		}
	}
	dc.Close() // the writes are done: release both before the flush
	wc.Close()

	if err := Flush(ctx, wb); err != nil {
		t.Errorf("Flush: %v", err)
	}
	for _, q := range c.final {
		want, err := exactRows(ctx, direct, q)
		if err != nil {
			t.Fatalf("harness: final %q directly: %v", q, err)
		}
		got, err := exactRows(ctx, wbBase, q)
		if err != nil {
			t.Fatalf("final %q on the writeback database: %v", q, err)
		}
		if !reflect.DeepEqual(got, want) {
			diffs++
			t.Errorf("after Flush, %q:\nthrough writeback %q\ndirectly          %q", q, got, want)
		}
	}
	if diffs > 0 {
		if st, err := StatsOf(wb); err == nil {
			t.Logf("writeback stats: buffered %d, passed through %d, no-match %d, dead letters %d, last error %v",
				st.Buffered, st.PassedThrough, st.NoMatch, st.DeadLetters, st.LastError)
		}
	}
}

// refusalProblems says what err lacks as a refusal: the rules file named at
// a line of the rule (a table's name or its key: line) and every word.
func refusalProblems(err error, rulesPath, rules string, words []string) []string {
	msg := err.Error()
	var lines, problems []string
	for i, l := range strings.Split(rules, "\n") {
		tl := strings.TrimSpace(l)
		isTable := strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") && strings.HasSuffix(tl, ":")
		if isTable || strings.HasPrefix(tl, "key:") {
			lines = append(lines, strconv.Itoa(i+1))
		}
	}
	at := regexp.MustCompile(regexp.QuoteMeta(filepath.Base(rulesPath)) + `:(` + strings.Join(lines, "|") + `)\b`)
	if !at.MatchString(msg) {
		problems = append(problems, fmt.Sprintf("does not name %s at the rule's line (one of %v)", filepath.Base(rulesPath), lines))
	}
	low := strings.ToLower(msg)
	for _, w := range words {
		found := false
		for _, alt := range strings.Split(w, "|") {
			found = found || strings.Contains(low, alt)
		}
		if !found {
			problems = append(problems, fmt.Sprintf("does not say %q", w))
		}
	}
	return problems
}

// ensureExtension creates a PostgreSQL extension in public (it stays) or
// skips the test when that is not possible.
func ensureExtension(t *testing.T, name string) {
	t.Helper()
	admin, err := sql.Open("pgx", postgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var schema string
	if _, err := admin.Exec("CREATE EXTENSION IF NOT EXISTS " + name + " WITH SCHEMA public"); err != nil {
		t.Skipf("extension %s cannot be created: %v", name, err)
	}
	if err := admin.QueryRow("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = $1", name).Scan(&schema); err != nil || schema != "public" {
		t.Skipf("extension %s is not in public (%q, %v)", name, schema, err)
	}
}

// exactOutcome is what a step returned: its error, and a read's rows.
type exactOutcome struct {
	err  error
	rows []string
}

// diff describes how got (through writeback) differs from o (directly), or
// returns "".
func (o exactOutcome) diff(got exactOutcome, errText bool) string {
	switch {
	case (o.err == nil) != (got.err == nil):
		return fmt.Sprintf("through writeback error %v, directly error %v", got.err, o.err)
	case o.err != nil && errText && o.err.Error() != got.err.Error():
		return fmt.Sprintf("error text differs:\nthrough writeback %v\ndirectly          %v", got.err, o.err)
	case !reflect.DeepEqual(o.rows, got.rows):
		return fmt.Sprintf("read differs:\nthrough writeback %q\ndirectly          %q", got.rows, o.rows)
	}
	return ""
}

func runExactStep(ctx context.Context, c *sql.Conn, s exactStep, q string) exactOutcome {
	if s.kind != stepQuery {
		_, err := c.ExecContext(ctx, q, s.args...)
		return exactOutcome{err: err}
	}
	rows, err := exactRows(ctx, c, q, s.args...)
	return exactOutcome{err: err, rows: rows}
}

type exactQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// exactRows reads every row as one line of |-separated text; an error from
// the query, a scan or the iteration is returned.
func exactRows(ctx context.Context, q exactQueryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := []string{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		line := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				line[i] = "NULL"
			case []byte:
				line[i] = fmt.Sprintf("%q", x)
			default:
				// %T keeps an integer 1 apart from a text "1" or a real 1.0.
				line[i] = fmt.Sprintf("%T:%v", x, x)
			}
		}
		out = append(out, strings.Join(line, "|"))
	}
	return out, rows.Err()
}

// exactSQL turns ? into $1, $2 ... and ?N into $N for PostgreSQL, outside
// string literals.
func exactSQL(q string, pg bool) string {
	if !pg {
		return q
	}
	var sb strings.Builder
	n, inStr := 0, false
	for i := 0; i < len(q); i++ {
		ch := q[i]
		if ch == '\'' {
			inStr = !inStr
		}
		if ch != '?' || inStr {
			sb.WriteByte(ch)
			continue
		}
		j := i + 1
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			j++
		}
		if j > i+1 {
			sb.WriteString("$" + q[i+1:j])
			i = j - 1
			continue
		}
		n++
		sb.WriteString("$" + strconv.Itoa(n))
	}
	return sb.String()
}

// TestExactHarness checks the harness's own helpers.
func TestExactHarness(t *testing.T) {
	for in, want := range map[string]string{
		"UPDATE t SET a = ?, b = b + ? WHERE id = ?":    "UPDATE t SET a = $1, b = b + $2 WHERE id = $3",
		"UPDATE t SET a = ?1, b = b + ?1 WHERE k = '?'": "UPDATE t SET a = $1, b = b + $1 WHERE k = '?'",
	} {
		if got := exactSQL(in, true); got != want {
			t.Errorf("exactSQL(%q) = %q, want %q", in, got, want)
		}
	}
	rules := backRules("t", "id")
	for msg, ok := range map[string]bool{
		"/x/writeback.yaml:2: tables.t: has a trigger": true,
		"/x/writeback.yaml:4: tables.t.key: ...":       true,
		"/x/writeback.yaml:5: tables.t: ...":           false,
		"/x/writeback.yaml:21: tables.t: ...":          false,
		"/x/other.yaml:2: tables.t: ...":               false,
	} {
		if p := refusalProblems(errors.New(msg), "/x/writeback.yaml", rules, nil); (len(p) == 0) != ok {
			t.Errorf("refusalProblems(%q) = %q, want accepted %v", msg, p, ok)
		}
	}
	if p := refusalProblems(errors.New("writeback.yaml:2: a TRIGGER"), "writeback.yaml", rules, []string{"trigger", "check|trig"}); len(p) != 0 {
		t.Errorf("words: %q", p)
	}
	if p := refusalProblems(errors.New("writeback.yaml:2: a trigger"), "writeback.yaml", rules, []string{"unique"}); len(p) != 1 {
		t.Errorf("missing word accepted: %q", p)
	}
}
