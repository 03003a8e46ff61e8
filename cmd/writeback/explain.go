package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/writeback-go/writeback/internal/inspect"
)

func explainUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: writeback explain [-json] [-rate TABLE=N/s]... [-keys TABLE=N/s]... DSN [SQL ...]

With SQL arguments: what the driver does with each statement, and why:
buffered (acknowledged from memory, coalesced, flushed later), through
(sent to the database at once), barrier (sent to the database once the
buffered rows of the back tables it names are committed) or read by key.
It reads the database's catalog, as the driver does, and decides from the
statement's text: a value bound at Exec that does not fit the column, a
transaction, or a changed session setting can still send a bufferable
statement to the database.

Without SQL: the durability decision per back table, from the rules alone
(no database needed): the writes at risk at max_loss (with -rate, and the
rows they coalesce into with -keys), what a process crash, a power loss and
the loss of the machine would take at the table's ack level and journal
policy, and the residual risk in words.

Flags come before DSN. Rates are N/s, N/min or N/h (N alone is per second).

Exit status: 0 fine, 1 rules file with errors, 2 usage or connection error.

`)
	printDefaults(w, fs)
}

// rateFlag collects TABLE=RATE flags.
type rateFlag map[string]float64

func (r rateFlag) String() string { return "" }

func (r rateFlag) Set(s string) error {
	table, rate, ok := strings.Cut(s, "=")
	if !ok || table == "" {
		return fmt.Errorf("%q: want TABLE=N/s", s)
	}
	v, err := parseRate(rate)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if _, dup := r[table]; dup {
		return fmt.Errorf("%q: table %s given twice", s, table)
	}
	r[table] = v
	return nil
}

// parseRate parses N, N/s, N/min or N/h into a rate per second.
func parseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(s, "/")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a rate (want N/s, N/min or N/h, N ≥ 0)", s)
	}
	switch unit {
	case "", "s", "sec":
		return v, nil
	case "m", "min":
		return v / 60, nil
	case "h":
		return v / 3600, nil
	}
	return 0, fmt.Errorf("%q: unknown unit /%s (want /s, /min or /h)", s, unit)
}

func runExplain(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("explain", stderr)
	asJSON := fs.Bool("json", false, "print JSON: the decisions, or the durability figures")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the database")
	rates, keys := rateFlag{}, rateFlag{}
	fs.Var(rates, "rate", "`TABLE=N/s`: the table's write rate (repeat for each table)")
	fs.Var(keys, "keys", "`TABLE=N/s`: unique keys written per second (default: the write rate)")
	if code, ok := parseFlags(fs, args, stdout, stderr, explainUsage); !ok {
		return code
	}
	if fs.NArg() < 1 {
		return usageError(stderr, fs, explainUsage, "want a DSN argument")
	}
	sqls := fs.Args()[1:]
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	sess, err := inspect.Open(ctx, fs.Arg(0), len(sqls) > 0)
	if err != nil {
		return openError(stderr, "explain", err)
	}
	defer sess.Close()
	if len(sqls) == 0 {
		return explainDurability(sess.Setup(), rates, keys, *asJSON, stdout, stderr, fs)
	}
	if len(rates) > 0 || len(keys) > 0 {
		return usageError(stderr, fs, explainUsage, "-rate and -keys are for the durability figures, without SQL arguments")
	}
	var ds []inspect.Decision
	for _, q := range sqls {
		ds = append(ds, sess.Explain(q))
	}
	if *asJSON {
		return writeJSON(stdout, stderr, ds)
	}
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintln(stdout, d.SQL)
		fmt.Fprintf(stdout, "  %s: %s\n", d.Verdict, d.Reason)
	}
	return exitOK
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, "writeback:", err)
		return exitUsage
	}
	return exitOK
}

// tableRisk is one back table's durability figures. Writes and Rows are
// nil when no rate was given.
type tableRisk struct {
	Table    string   `json:"table"`
	Rule     string   `json:"rule"` // file:line
	Rate     *float64 `json:"writes_per_second,omitempty"`
	Keys     *float64 `json:"keys_per_second,omitempty"`
	MaxLoss  string   `json:"max_loss"`
	Ack      string   `json:"ack"`
	Journal  string   `json:"journal"` // "none" or "fsync: POLICY"
	Writes   *int64   `json:"writes_at_risk,omitempty"`
	Rows     *int64   `json:"rows_at_risk,omitempty"`
	Crash    string   `json:"process_crash"`
	Power    string   `json:"power_loss"`
	Host     string   `json:"host_loss"`
	Outage   string   `json:"database_outage"`
	Residual string   `json:"residual_risk"`
	// Decision is the rule's decision record, printed beside the figures.
	Decision *inspect.RuleDecision `json:"decision,omitempty"`

	// The table's short forms of Crash, Power and Host.
	crash, power, host string
}

func explainDurability(s inspect.Setup, rates, keys rateFlag, asJSON bool, stdout, stderr io.Writer, fs *flag.FlagSet) int {
	back := map[string]inspect.Rule{}
	for _, t := range s.Tables {
		if t.Back {
			back[t.Name] = t
		}
	}
	for _, m := range []rateFlag{rates, keys} {
		for name := range m {
			if _, ok := back[name]; !ok {
				return usageError(stderr, fs, explainUsage, "%s is not a back table of %s", name, s.Rules)
			}
		}
	}
	for name, k := range keys {
		if r, ok := rates[name]; ok && k > r {
			return usageError(stderr, fs, explainUsage, "-keys %s=%g/s is more than its -rate %g/s (a key is written at least once)", name, k, r)
		}
	}
	var risks []tableRisk
	for _, t := range s.Tables {
		if t.Back {
			risks = append(risks, assess(t, s, rates, keys))
		}
	}
	if asJSON {
		if risks == nil {
			risks = []tableRisk{}
		}
		return writeJSON(stdout, stderr, risks)
	}
	printDurability(stdout, s, risks)
	return exitOK
}

// assess works out one back table's figures from its rule: what each
// failure takes at its ack level and journal policy (README, Durability).
func assess(t inspect.Rule, s inspect.Setup, rates, keys rateFlag) tableRisk {
	r := tableRisk{Table: t.Name, Rule: where(t.File, t.Line), MaxLoss: t.MaxLoss.String(), Ack: t.Ack, Journal: "none", Decision: t.Decision}
	if s.Journal != "" {
		r.Journal = "fsync: " + s.Fsync
	}
	// atRisk: what a loss of everything not yet in the database takes.
	atRisk, short := "the last "+t.MaxLoss.String()+" of writes", "≤ "+t.MaxLoss.String()
	hardRows := int64(2 * t.MaxDirty)
	rate, haveRate := rates[t.Name]
	if haveRate {
		k, ok := keys[t.Name]
		if !ok {
			k = rate
		}
		w := int64(math.Ceil(rate * t.MaxLoss.Seconds()))
		rows := min(int64(math.Ceil(k*t.MaxLoss.Seconds())), w, hardRows)
		r.Rate, r.Keys, r.Writes, r.Rows = &rate, &k, &w, &rows
		atRisk = fmt.Sprintf("up to %d writes (%s, in at most %d rows)", w, atRisk, rows)
		short = fmt.Sprintf("≤ %d writes", w)
	} else {
		atRisk = "up to " + atRisk
	}
	outage := fmt.Sprintf("every write buffered since the outage began, up to %d rows (2 × max_dirty) within the connector's byte bound", hardRows)
	if s.NATS != "" {
		r.Journal = fmt.Sprintf("nats (R=%d)", s.Replicas)
		r.Outage = "a crash during one loses no more than above: the stream keeps the writes buffered during it"
		if t.Ack == "replicated" {
			r.Crash, r.crash = "nothing: Exec returns once a quorum of the stream stored the write's record; another instance takes it over, or the instance replays it on any host", "none"
			r.Power, r.power = r.Crash, "none"
			r.Host, r.host = r.Crash, "none"
			r.Residual = fmt.Sprintf("Losing the process, its machine or its disk loses nothing of %s: its records are on the NATS servers. Losing a quorum of those at once loses what they had not synced to disk (their sync_interval; set sync_interval: always for power-loss safety).", t.Name)
			return r
		}
		inflight := "the writes whose records were not yet stored by the stream (published in the background, normally within milliseconds; while NATS is unreachable, every write since)"
		r.Crash, r.crash = inflight, "in flight"
		r.Power, r.power = inflight, "in flight"
		r.Host, r.host = inflight, "in flight"
		r.Residual = fmt.Sprintf("A crash, power loss or loss of the machine loses %s of %s; the rest is replayed from the stream. ack: replicated makes Exec wait for the stream and loses nothing.", inflight, t.Name)
		return r
	}
	if s.Journal == "" {
		r.Crash, r.Power, r.Host = atRisk, atRisk, atRisk
		r.crash, r.power, r.host = short, short, short
		r.Outage = "a crash during one loses " + outage
		r.Residual = fmt.Sprintf("Any crash of the process or the machine (panic, OOM, kill -9, power loss) loses %s of %s; what was flushed before stays in the database. A crash during a database outage loses %s. Close and Shutdown flush first and lose nothing they can flush.", atRisk, t.Name, outage)
		return r
	}
	r.Crash, r.crash = "nothing: every write is in the journal before Exec returns, and is replayed on the next open", "none"
	r.Host, r.host = atRisk+": the journal is on the machine's own disk", short
	r.Outage = "a crash during one loses no more than above: the journal keeps the writes buffered during it (disk space permitting)"
	var power string
	switch {
	case t.Ack == "disk":
		r.power, power = "none", "nothing: Exec returns once the write's journal record is fsynced"
	case s.Fsync == "always":
		r.power, power = "fsync in flight", "only the writes whose fsync was in flight: Exec returns once the record is written and its fsync started"
	case s.Fsync == "everysec":
		r.power, power = "≤ ~1s", "up to about 1 s of writes (fsync: everysec holds writers back when the oldest unsynced record is older than 1 s)"
		if haveRate {
			n := int64(math.Ceil(rate))
			r.power = fmt.Sprintf("≤ ~%d writes", n)
			power = fmt.Sprintf("up to about %d writes (about 1 s; fsync: everysec holds writers back when the oldest unsynced record is older than 1 s)", n)
		}
	default: // no
		r.power, power = short, atRisk+": what the operating system had not written to disk (fsync: no)"
	}
	r.Power = power
	r.Residual = fmt.Sprintf("A crash of the process (panic, OOM, kill -9) loses nothing of %s. A power loss loses %s. Losing the machine or its disk for good loses %s, since the journal is on it.", t.Name, power, atRisk)
	return r
}

func printDurability(w io.Writer, s inspect.Setup, risks []tableRisk) {
	journal := "no journal"
	switch {
	case s.NATS != "":
		journal = fmt.Sprintf("replicated journal on NATS %s (R=%d)", s.NATS, s.Replicas)
	case s.Journal != "":
		journal = "journal at " + s.Journal + " (fsync: " + s.Fsync + ")"
	}
	fmt.Fprintf(w, "rules %s, %s\n", s.Rules, journal)
	if len(risks) == 0 {
		fmt.Fprintln(w, "\nno back table: every statement goes to the database, nothing is at risk")
		return
	}
	fmt.Fprintln(w, "\nWorst case (just before a flush): writes at risk = writes/s × max_loss; after coalescing, rows = keys/s × max_loss.")
	fmt.Fprintln(w, "Lost on a process crash (panic, OOM, kill -9), a power loss, and the loss of the machine or its disk:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "table\twrites/s\tkeys/s\tmax_loss\tack\tjournal\twrites at risk\trows\tprocess crash\tpower loss\thost loss")
	for _, r := range risks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Table, figure(r.Rate), figure(r.Keys), r.MaxLoss, r.Ack, r.Journal,
			count(r.Writes), count(r.Rows), r.crash, r.power, r.host)
	}
	tw.Flush()
	for _, r := range risks {
		fmt.Fprintf(w, "\n%s (%s)\n", r.Table, r.Rule)
		fmt.Fprintf(w, "  process crash:    %s\n", r.Crash)
		fmt.Fprintf(w, "  power loss:       %s\n", r.Power)
		fmt.Fprintf(w, "  host loss:        %s\n", r.Host)
		fmt.Fprintf(w, "  database outage:  %s\n", r.Outage)
		switch {
		case r.Rate == nil || *r.Keys == 0:
		case *r.Rate == *r.Keys:
			fmt.Fprintln(w, "  coalescing:       none assumed (keys/s = writes/s; -keys gives the unique keys written per second)")
		default:
			fmt.Fprintf(w, "  coalescing:       %s writes per key written\n", strconv.FormatFloat(*r.Rate / *r.Keys, 'g', 3, 64))
		}
		fmt.Fprintf(w, "  residual risk:    %s\n", r.Residual)
		printDecision(w, r)
	}
	names := make([]string, len(risks))
	for i, r := range risks {
		names[i] = r.Table
	}
	sort.Strings(names)
	fmt.Fprintf(w, `
For each table (%s), decide and write down:
  1. What does losing the writes at risk above cost? Catastrophic or serious
     (payments, orders, audit logs, regulated records): mode: through.
     Inconvenience or approximate data: write-back fits.
  2. Can lost writes be rebuilt from another source? Then it fits well.
  3. Are writes frequent and on few keys (many writes per key)? That is
     where write-back pays; with few writes per key it may not.
  4. Is the residual risk acceptable? If not: a journal (fsync: everysec,
     or ack: disk), a smaller max_loss, or mode: through.
  5. Record it: data, pattern (write-back), max loss tolerated (max_loss),
     mitigations (ack, journal), residual risk, approved by, review date.
`, strings.Join(names, ", "))
}

// printDecision writes a table's decision record beside its figures, or
// says there is none.
func printDecision(w io.Writer, r tableRisk) {
	d := r.Decision
	if d == nil {
		fmt.Fprintln(w, "  decision record:  none (step 5 below; decision: in the rule)")
		return
	}
	fmt.Fprintf(w, "  decision record (line %d):\n", d.Line)
	for _, f := range [][2]string{
		{"data", d.Data}, {"loss cost", d.LossCost}, {"recoverable", d.Recoverable},
		{"mitigations", strings.Join(d.Mitigations, ", ")}, {"residual risk", d.ResidualRisk},
		{"approved by", d.ApprovedBy}, {"review", d.Review}, {"note", d.Due},
	} {
		if f[1] != "" {
			fmt.Fprintf(w, "    %-15s %s\n", f[0]+":", f[1])
		}
	}
}

func figure(v *float64) string {
	if v == nil {
		return "?"
	}
	return strconv.FormatFloat(*v, 'f', -1, 64) + "/s"
}

func count(v *int64) string {
	if v == nil {
		return "?"
	}
	return strconv.FormatInt(*v, 10)
}
