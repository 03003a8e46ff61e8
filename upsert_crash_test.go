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
				c := crashConfig{driver: driver, maxLoss: v.maxLoss, fsync: "always", ack: "disk", keys: 20, workers: 8, mode: "upsert"}
				var direct *sql.DB
				crashTrials(t, c, v.hook, func(int) (dsn string) {
					dsn, direct = crashBase(t, driver, c.keys/2)
					return dsn
				}, func(c crashConfig, dsn, rules string, acked, inflight []childWrite) {
					recoverAndCheck(t, c, dsn, rules, direct, acked, inflight)
				})
			})
		}
	}
}

// crashTrials runs children configured as base, each killed at a random
// instant or, with hook, stopped at that step of the flush protocol (at one
// of its first ten passes), and after each, check recovers and checks the
// database. setup prepares trial i's database and returns its DSN. It runs
// at least four trials, and up to twelve until a child has acknowledged a
// write: a child stopped at a flush step before its first acknowledgment (a
// loaded machine) still recovers only writes it had begun, so more trials
// then show recovery of acknowledged ones. It stops at the first failure.
func crashTrials(t *testing.T, base crashConfig, hook string, setup func(i int) (dsn string),
	check func(c crashConfig, dsn, rules string, acked, inflight []childWrite)) {
	t.Helper()
	ackedTrials := 0
	for i := 0; i < 4 || ackedTrials == 0 && i < 12; i++ {
		c := base
		killAfter := 20 + rand.IntN(300)
		if hook != "" {
			c.hook, c.hookN, killAfter = hook, 1+rand.IntN(10), 1<<30
		}
		dsn := setup(i)
		rules := writeRulesFile(t, journalRules(filepath.Join(t.TempDir(), "journal"), c.fsync, c.ack, c.maxLoss))
		acked, inflight, _, _, exit := runChild(t, c, dsn, rules, killAfter)
		if len(acked) == 0 && c.hook == "" {
			t.Fatalf("child acknowledged nothing (%v)", exit)
		}
		if len(acked) > 0 {
			ackedTrials++
		}
		check(c, dsn, rules, acked, inflight)
		if t.Failed() {
			return
		}
	}
	if ackedTrials == 0 {
		t.Fatal("no child acknowledged anything before it was stopped")
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
			c := crashConfig{driver: "sqlite3", maxLoss: v.maxLoss, fsync: "always", ack: "disk", keys: 8, workers: 8, mode: "replace"}
			var direct *sql.DB
			crashTrials(t, c, v.hook, func(i int) string {
				dsn := sqliteDSN(t, "crash")
				var err error
				direct, err = sql.Open("sqlite3", dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { direct.Close() })
				// An INTEGER PRIMARY KEY, which REPLACE keeps as the rowid.
				execAll(t, direct, "CREATE TABLE counters (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);"+
					"INSERT INTO counters VALUES (0, 0), (1, 0), (2, 0), (3, 0)")
				if i == 0 {
					_, cn := openWritebackWith(t, "sqlite3", dsn, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
					if cn.info("REPLACE INTO counters (id, n) VALUES (?, ?)").target == nil {
						t.Fatal("the child's REPLACE is not buffered")
					}
				}
				return dsn
			}, func(c crashConfig, dsn, rules string, acked, inflight []childWrite) {
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
			})
		})
	}
}
