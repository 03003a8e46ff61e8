package sqlparse

import (
	"fmt"
	"testing"
)

func TestClassifyUpsert(t *testing.T) {
	// sets renders an UpsertSet list: col=src, col+=src, col-=src; src is
	// EXCLUDED, a literal or $ordinal; ! marks a bare reference.
	sets := func(u *UpsertClause) string {
		s := ""
		for _, x := range u.Sets {
			op := map[int8]string{0: "=", 1: "+=", -1: "-="}[x.Delta]
			src := fmt.Sprint(x.Val.Lit)
			if !x.Val.IsLit {
				src = fmt.Sprintf("$%d", x.Val.Ordinal)
			}
			if x.Excluded {
				src = "EX"
			}
			bare := ""
			if x.BareRef {
				bare = "!"
			}
			s += " " + x.Col.Norm + op + src + bare
		}
		return s
	}
	cases := []struct {
		q      string
		sqlite bool
		want   string // "" when not an upsert
	}{
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = t.n + EXCLUDED.n", false, "id: n+=EX"},
		{"insert into t (id, n) values ($1, $2) on conflict (id) do update set n = excluded.n + t.n", false, "id: n+=EX"},
		{"INSERT INTO t (id, n) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = t.n + 1, m = $2, s = t.s - $3", false, "id: n+=1 m=$2 s-=$3"},
		{"INSERT INTO t (id, n) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = 2 + t.n", false, "id: n+=2"},
		{`INSERT INTO "t" ("id","views") VALUES ($1,$2) ON CONFLICT ("id") DO UPDATE SET "views"="t"."views"+EXCLUDED."views"`, false, "id: views+=EX"},
		{`INSERT INTO "t" ("id","a","b") VALUES ($1,$2,$3) ON CONFLICT ("id") DO UPDATE SET "a"="excluded"."a","b"="excluded"."b"`, false, "id: a=EX b=EX"},
		{"INSERT INTO t (a, b, n) VALUES (?, ?, ?) ON CONFLICT (b, a) DO UPDATE SET n = n + excluded.n;", true, "b,a: n+=EX!"},
		{"INSERT INTO s.t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = t.n + $3", false, "id: n+=$3"},
		{"INSERT INTO t (id, n) VALUES ($1, $2), ($3, $4) ON CONFLICT (id) DO UPDATE SET n = NULL", false, "id: n=<nil>"},
		// Not upserts (DO NOTHING and OR IGNORE are INSERTs: parse_test.go); not bufferable.
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT ON CONSTRAINT t_pkey DO UPDATE SET n = 1", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) WHERE n > 0 DO UPDATE SET n = 1", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = 1 WHERE t.n > 0", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = t.n + 1 RETURNING n", false, "id: n+=1"},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = t.n + 1 RETURNING n + 1", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = t.n - EXCLUDED.n", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = t.m + 1", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.m", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = u.n + 1", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = t.n * 2", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = 1, n = 2", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id, id) DO UPDATE SET n = 1", false, ""},
		{"INSERT INTO t (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = 'a' + t.n", false, ""},
		{"INSERT INTO excluded (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = excluded.n", false, ""},
		{"INSERT INTO t AS x (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = x.n + 1", false, ""},
		// SQLite's REPLACE: every inserted column its proposed value, no target.
		{"INSERT OR REPLACE INTO t (id, n) VALUES (?, ?)", true, ": id=EX n=EX"},
		{"replace into t (id, n) values (?, ?), (?, ?);", true, ": id=EX n=EX"},
		{"INSERT OR REPLACE INTO t (id, n) VALUES (?, ?)", false, ""},
		{"REPLACE INTO t (id, n) VALUES (?, ?)", false, ""},
		{"REPLACE INTO t (id, n) VALUES (?, ?) RETURNING id", true, ""},
		{"REPLACE INTO t (id, n) VALUES (?, ?) ON CONFLICT (id) DO NOTHING", true, ""},
		{"INSERT OR REPLACE INTO t (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = 1", true, ""},
		{"REPLACE INTO t (id, n) SELECT 1, 2", true, ""},
		{"REPLACE INTO t DEFAULT VALUES", true, ""},
		{"INSERT OR ABORT INTO t (id, n) VALUES (?, ?)", true, ""},
		{"REPLACE INTO t (id, n) VALUES (?, ?)", true, ": id=EX n=EX"},
		// MySQL's ON DUPLICATE KEY UPDATE: no target, VALUES(c) or the row
		// alias for EXCLUDED, a bare column is the existing row's.
		{"INSERT INTO t (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n)", false, ": n+=EX!"},
		{"insert into t (id, n) values (?, ?) on duplicate key update n = values(n) + t.n", false, ": n+=EX"},
		{"INSERT INTO t (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + ?, m = VALUES(m), s = s - 2, u = ?", false, ": n+=$3! m=EX s-=2! u=$4"},
		{"INSERT INTO `t` (`id`, `n`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `n` = `n` + VALUES(`n`)", false, ": n+=EX!"},
		{"INSERT INTO t (id, n) VALUES (?, ?), (?, ?) AS new ON DUPLICATE KEY UPDATE n = n + new.n", false, ": n+=EX!"},
		{"INSERT INTO t (id, n) VALUES (?, ?) AS new ON DUPLICATE KEY UPDATE n = new.n + t.n, m = new.m", false, ": n+=EX m=EX"},
		{"INSERT INTO t (id, n) VALUES (?, ?) AS new (a, b) ON DUPLICATE KEY UPDATE n = n + b", false, ""},
		{"INSERT INTO t (id, n) VALUES (?, ?) AS t ON DUPLICATE KEY UPDATE n = n + t.n", false, ""},
		{"INSERT INTO t (id, n) VALUES (?, ?) AS new", false, ""},
		{"INSERT INTO t (id, n) VALUES (?, ?) AS new ON DUPLICATE KEY UPDATE n = n + VALUES(m)", false, ""},
		{"INSERT INTO t (id, n) VALUES (?, ?) AS new ON DUPLICATE KEY UPDATE n = n + old.n", false, ""},
		{"INSERT INTO t (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n - VALUES(n)", false, ""},
		{"INSERT INTO t (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = IF(n > 0, n + 1, 0)", false, ""},
		{"INSERT INTO t (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = EXCLUDED.n", false, ""},
		{"INSERT INTO t (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = n + VALUES(n) RETURNING id", false, ": n+=EX!"},
		{"INSERT IGNORE INTO t (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = 1", false, ""},
		{"INSERT INTO t (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = VALUES(n)", false, ""},
	}
	for _, c := range cases {
		checkClassify(t, c.q, c.sqlite) // the fuzz oracles: round trip, comments and spaces
		st := Classify(c.q, c.sqlite)
		got := ""
		if st.Kind == Upsert {
			tg := ""
			for i, id := range st.Upsert.Target {
				if i > 0 {
					tg += ","
				}
				tg += id.Norm
			}
			got = tg + ":" + sets(st.Upsert)
			if (st.OnDuplicateKey || st.OrReplace) != (st.Upsert.Target == nil) {
				t.Errorf("%s: OnDuplicateKey %v with target %v", c.q, st.OnDuplicateKey, st.Upsert.Target)
			}
		} else if st.Upsert != nil {
			t.Errorf("%s: kind %d with an ON CONFLICT clause", c.q, st.Kind)
		}
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.q, got, c.want)
		}
		if c.want == "" && st.Kind != Other {
			t.Errorf("%s: kind %d, want Other", c.q, st.Kind)
		}
	}
}
