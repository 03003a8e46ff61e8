package writeback

import (
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
				for i := 0; i < 4; i++ {
					c := crashConfig{driver: driver, maxLoss: v.maxLoss, fsync: "always", ack: "disk", keys: 20, workers: 8, mode: "upsert"}
					killAfter := 20 + rand.IntN(300)
					if v.hook != "" {
						c.hook, c.hookN, killAfter = v.hook, 1+rand.IntN(10), 1<<30
					}
					dsn, direct := crashBase(t, driver, c.keys/2)
					rules := writeRulesFile(t, journalRules(filepath.Join(t.TempDir(), "journal"), c.fsync, c.ack, c.maxLoss))
					acked, inflight, _, _, exit := runChild(t, c, dsn, rules, killAfter)
					if len(acked) == 0 {
						t.Fatalf("child acknowledged nothing (%v)", exit)
					}
					recoverAndCheck(t, c, dsn, rules, direct, acked, inflight)
					if t.Failed() {
						return
					}
				}
			})
		}
	}
}
