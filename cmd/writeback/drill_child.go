package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/writeback-go/writeback"
	"github.com/writeback-go/writeback/internal/drillfault"
)

// The drill's child process: the same binary, started with drillChildEnv
// set and its job on stdin. It opens the connector on the scratch target, says
// "ready" on stdout, and runs the load until it is killed, reporting each
// write on stdout before it is made ("i") and once it is acknowledged
// ("a"; "n" for an UPDATE acknowledged as matching no row) or failed
// ("f"), one write(2) per line, so that a kill -9 loses no
// report of an acknowledged write.

// drillChildEnv set to 1 makes the process a drill child; it reads its
// job (JSON) from stdin.
const drillChildEnv = "WRITEBACK_DRILL_CHILD"

// drillDropEnv is for the drill's own tests only: the child acknowledges
// its nth bufferable write and discards it, a broken promise the drill
// must report. It is read by the drill's child process and nowhere else.
const drillDropEnv = "WRITEBACK_DRILL_TEST_ONLY_DROP_WRITE"

// childJob is what the parent tells a child.
type childJob struct {
	DSN       string        `json:"dsn"`
	StateFile string        `json:"state_file"`
	Plans     []*loadPlan   `json:"plans"`
	Writers   int           `json:"writers"` // per table
	Seed      uint64        `json:"seed"`
	MaxRun    time.Duration `json:"max_run"` // stop by itself after this, should no kill come
}

// drillChildMain runs a child if the environment says this process is
// one; ok is false otherwise.
func drillChildMain() (code int, ok bool) {
	if os.Getenv(drillChildEnv) != "1" {
		return 0, false
	}
	var job childJob
	if err := json.NewDecoder(os.Stdin).Decode(&job); err != nil {
		fmt.Fprintln(os.Stderr, "writeback drill child:", err)
		return exitUsage, true
	}
	// The child runs until it is killed: it returns only on an error.
	fmt.Fprintln(os.Stderr, "writeback drill child:", runDrillChild(job, os.Stdout))
	return exitProblems, true
}

// reporter writes the child's report lines, each with one write(2).
type reporter struct {
	mu sync.Mutex
	w  io.Writer
}

func (r *reporter) line(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := io.WriteString(r.w, s); err != nil {
		os.Exit(exitProblems) // the parent is gone
	}
}

func runDrillChild(job childJob, out io.Writer) error {
	opts := []writeback.Option{writeback.WithStateFile(job.StateFile)}
	if s := os.Getenv(drillDropEnv); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%s=%q: want a positive number", drillDropEnv, s)
		}
		opts = append(opts, drillfault.DropAckedWrite(n).(writeback.Option))
	}
	db, err := writeback.OpenDSN(job.DSN, opts...)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := db.PingContext(ctx); err != nil {
		return err
	}
	rep := &reporter{w: out}
	rep.line("ready\n")
	rng := rand.New(rand.NewPCG(job.Seed, 1))
	for ti, p := range job.Plans {
		for w := 0; w < job.Writers; w++ {
			seed := rng.Uint64()
			go drillWriter(ctx, db, p, ti, w, job.Writers, seed, rep)
		}
	}
	time.Sleep(job.MaxRun) // the parent kills the process long before
	return fmt.Errorf("not killed within %s", job.MaxRun)
}

// drillWriter is one writer of one table. Writer w of n owns the ids
// w+1, w+1+n, ...: it inserts a new one now and then and increments the
// counters of those it inserted.
func drillWriter(ctx context.Context, db *sql.DB, p *loadPlan, ti, w, n int, seed uint64, rep *reporter) {
	rng := rand.New(rand.NewPCG(seed, uint64(w)))
	next := int64(w + 1)
	var mine []int64
	prefix := strconv.Itoa(ti) + " " + strconv.Itoa(w)
	for {
		var id int64
		var query string
		var args []any
		insert := p.Update == "" || len(mine) == 0 || rng.IntN(8) == 0
		if insert {
			id, next = next, next+int64(n)
			query, args = p.Insert, p.insertArgs(id)
			rep.line("i " + prefix + " " + strconv.FormatInt(id, 10) + " i\n")
		} else {
			id = mine[rng.IntN(len(mine))]
			query, args = p.Update, p.keyArgs(id)
			rep.line("i " + prefix + " " + strconv.FormatInt(id, 10) + " u\n")
		}
		res, err := db.ExecContext(ctx, query, args...)
		if err != nil {
			rep.line("f " + prefix + "\n")
			continue
		}
		if n, err := res.RowsAffected(); !insert && err == nil && n == 0 {
			// Acknowledged as matching no row (its INSERT was lost): it
			// promised no change.
			rep.line("n " + prefix + "\n")
			continue
		}
		rep.line("a " + prefix + "\n")
		if insert {
			mine = append(mine, id)
		}
	}
}
