package writeback

import (
	"database/sql"
	"math/rand/v2"
	"testing"
)

// transfer moves delta from key from to key to in one transaction of two
// UPDATEs, which writeback buffers at COMMIT as one group.
func transfer(db *sql.DB, dollar bool, from, to, delta int) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	q := placeholders("UPDATE counters SET n = n + ? WHERE id = ?", dollar)
	if _, err := tx.Exec(q, -delta, from); err != nil {
		_ = tx.Rollback()
		return err
	}
	if _, err := tx.Exec(q, delta, to); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// checkTransfers recovers the journal and checks that every acknowledged
// transfer is applied, and of those in flight at the crash each is applied
// whole or not at all: some subset of them explains every counter.
func checkTransfers(t *testing.T, c crashConfig, dsn, rulesPath string, direct *sql.DB, acked, inflight []childWrite) {
	t.Helper()
	recoverJournal(t, c, dsn, rulesPath)
	want := map[int64]int64{}
	apply := func(m map[int64]int64, w childWrite) {
		m[w.key] += w.delta
		m[w.to] -= w.delta
	}
	for _, w := range acked {
		apply(want, w)
	}
	got := counterValues(t, direct)
	var total int64
	for _, v := range got {
		total += v
	}
	if total != 0 {
		t.Errorf("the counters sum to %d, not 0: a transaction was applied in part", total)
	}
	for mask := 0; mask < 1<<len(inflight); mask++ {
		exp := map[int64]int64{}
		for k, v := range want {
			exp[k] = v
		}
		for i, w := range inflight {
			if mask&(1<<i) != 0 {
				apply(exp, w)
			}
		}
		same := true
		for key := int64(0); key < int64(c.keys); key++ {
			same = same && exp[key] == got[key]
		}
		if same {
			return
		}
	}
	t.Errorf("counters %v: no subset of the %d transfers in flight explains them after the %d acknowledged ones", got, len(inflight), len(acked))
}

// TestCrashTransfers kills writers of two-row transactions (transfers
// between counters, buffered at COMMIT as one journal group) at random
// instants and at the journal's appends — often between the two records of
// one transaction — on SQLite and PostgreSQL, then recovers: acknowledged
// transactions survive, and none is applied in part.
func TestCrashTransfers(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run child processes")
	}
	for _, driver := range []string{"sqlite3", "pgx"} {
		for _, hook := range []string{"", "journal:after-write"} {
			name := driver + "/kill"
			if hook != "" {
				name = driver + "/" + hook
			}
			t.Run(name, func(t *testing.T) {
				if driver == "pgx" {
					requirePostgres(t)
				}
				for i := 0; i < 4 && !t.Failed(); i++ {
					c := crashConfig{driver: driver, maxLoss: "5ms", fsync: "always", ack: "disk", keys: 10, workers: 4, mode: "transfer",
						hook: hook, hookN: 2 + rand.IntN(40)}
					dsn, direct := crashBase(t, c.driver, c.keys)
					rules := writeRulesFile(t, journalRules(t.TempDir()+"/journal", c.fsync, c.ack, c.maxLoss))
					killAfter := 20 + rand.IntN(200)
					if hook != "" {
						killAfter = 1 << 30
					}
					acked, inflight, _, _, _ := runChild(t, c, dsn, rules, killAfter)
					if len(acked) == 0 && hook == "" {
						t.Fatal("child acknowledged nothing")
					}
					checkTransfers(t, c, dsn, rules, direct, acked, inflight)
				}
			})
		}
	}
}
