package writeback

import (
	"database/sql"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// TestCrashRecoveryUpsert is TestCrashRecovery with upserts: the child
// upserts counter deltas (half the keys start absent, so upserts insert
// them) mixed with plain UPDATEs, is killed at a random instant or stopped
// at a step of the flush protocol, and recovery must apply every
// acknowledged write exactly once. On MySQL the upserts are INSERT ... ON
// DUPLICATE KEY UPDATE n = n + VALUES(n).
func TestCrashRecoveryUpsert(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run child processes")
	}
	for _, driver := range []string{"sqlite3", "pgx", "mysql"} {
		for _, v := range []struct{ maxLoss, hook string }{{"5s", ""}, {"5ms", ""}, {"5ms", "after-rows"}, {"5ms", "after-commit"}} {
			name := driver + "/max_loss=" + v.maxLoss
			if v.hook != "" {
				name += "/" + v.hook
			}
			t.Run(name, func(t *testing.T) {
				if driver == "pgx" {
					requirePostgres(t)
				}
				ackedTrials := 0
				for i := 0; i < 4 || ackedTrials == 0 && i < 12; i++ {
					c := crashConfig{driver: driver, maxLoss: v.maxLoss, fsync: "always", ack: "disk", keys: 20, workers: 8, mode: "upsert"}
					killAfter := 20 + rand.IntN(300)
					if v.hook != "" {
						c.hook, c.hookN, killAfter = v.hook, 1+rand.IntN(10), 1<<30
					}
					dsn, direct := crashBase(t, driver, c.keys/2)
					rules := writeRulesFile(t, journalRules(filepath.Join(t.TempDir(), "journal"), c.fsync, c.ack, c.maxLoss))
					acked, inflight, _, _, exit := runChild(t, c, dsn, rules, killAfter)
					if len(acked) == 0 && c.hook == "" {
						t.Fatalf("child acknowledged nothing (%v)", exit)
					}
					if len(acked) > 0 {
						ackedTrials++
					}
					// A child stopped at a flush step before its first
					// acknowledgment (a loaded machine) still recovers only
					// writes it had begun; more trials then show recovery
					// of acknowledged ones.
					recoverAndCheck(t, c, dsn, rules, direct, acked, inflight)
					if t.Failed() {
						return
					}
				}
				if ackedTrials == 0 {
					t.Fatal("no child acknowledged anything before it was stopped")
				}
			})
		}
	}
}

// TestCrashRecoveryReplace is TestCrashRecoveryUpsert with SQLite's
// REPLACE, buffered as an upsert of every column: each of the child's
// goroutines owns a key (half of them absent at first) and replaces its
// row with increasing values, now and then assigning it by UPDATE; after a
// kill at a random instant or at a step of the flush protocol, recovery
// must leave each row at its last acknowledged value or the one in flight.
func TestCrashRecoveryReplace(t *testing.T) {
	if testing.Short() {
		t.Skip("crash tests run child processes")
	}
	for _, v := range []struct{ maxLoss, hook string }{{"5s", ""}, {"5ms", ""}, {"5ms", "after-rows"}, {"5ms", "after-commit"}} {
		t.Run("max_loss="+v.maxLoss+"/"+v.hook, func(t *testing.T) {
			ackedTrials := 0
			for i := 0; i < 4 || ackedTrials == 0 && i < 12; i++ {
				c := crashConfig{driver: "sqlite3", maxLoss: v.maxLoss, fsync: "always", ack: "disk", keys: 8, workers: 8, mode: "replace"}
				killAfter := 20 + rand.IntN(300)
				if v.hook != "" {
					c.hook, c.hookN, killAfter = v.hook, 1+rand.IntN(10), 1<<30
				}
				dsn := sqliteDSN(t, "crash")
				direct, err := sql.Open("sqlite3", dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer direct.Close()
				// An INTEGER PRIMARY KEY, which REPLACE keeps as the rowid.
				execAll(t, direct, "CREATE TABLE counters (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);"+
					"INSERT INTO counters VALUES (0, 0), (1, 0), (2, 0), (3, 0)")
				rules := writeRulesFile(t, journalRules(filepath.Join(t.TempDir(), "journal"), c.fsync, c.ack, c.maxLoss))
				if i == 0 {
					_, cn := openWritebackWith(t, "sqlite3", dsn, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
					if cn.info("REPLACE INTO counters (id, n) VALUES (?, ?)").target == nil {
						t.Fatal("the child's REPLACE is not buffered")
					}
				}
				acked, inflight, _, _, exit := runChild(t, c, dsn, rules, killAfter)
				if len(acked) == 0 && c.hook == "" {
					t.Fatalf("child acknowledged nothing (%v)", exit)
				}
				if len(acked) > 0 {
					ackedTrials++
				}
				recoverJournal(t, c, dsn, rules)
				last, flight := map[int64]int64{}, map[int64]int64{}
				for _, w := range acked {
					last[w.key] = max(last[w.key], w.delta)
				}
				for _, w := range inflight {
					flight[w.key] = w.delta
				}
				got := counterValues(t, direct)
				for key := int64(0); key < int64(c.keys); key++ {
					if g := got[key]; g != last[key] && (flight[key] == 0 || g != flight[key]) {
						t.Errorf("key %d = %d: last acknowledged %d, in flight %d (an acknowledged REPLACE lost)", key, g, last[key], flight[key])
					}
				}
				if t.Failed() {
					return
				}
			}
			if ackedTrials == 0 {
				t.Fatal("no child acknowledged anything before it was stopped")
			}
		})
	}
}
