package sqlparse

import "testing"

func TestClassifyKeyRead(t *testing.T) {
	for _, c := range []struct {
		q      string
		ok     bool
		list   string // the select list as written
		cols   int
		all    bool
		wheres int
	}{
		{"SELECT views FROM counters WHERE id = $1", true, "views", 1, false, 1},
		{"select id, views from counters where id = ?;", true, "id, views", 2, false, 1},
		{`SELECT * FROM "counters" WHERE "counters"."id" = $1 ORDER BY "counters"."id" LIMIT $2`, true, "*", 0, true, 1},
		{"SELECT counters.views FROM public.counters WHERE a = 1 AND b = 'x' LIMIT 1", true, "counters.views", 1, false, 2},
		{"SELECT n FROM t WHERE k = ? ORDER BY k DESC, n", true, "n", 1, false, 1},
		{"SELECT other.views FROM counters WHERE id = $1", false, "", 0, false, 0},
		{"SELECT views + 1 FROM counters WHERE id = $1", false, "", 0, false, 0},
		{"SELECT COUNT(*) FROM counters WHERE id = $1", false, "", 0, false, 0},
		{"SELECT views FROM counters WHERE id = $1 OR id = $2", false, "", 0, false, 0},
		{"SELECT views FROM counters WHERE id > $1", false, "", 0, false, 0},
		{"SELECT views FROM counters WHERE id = NULL", false, "", 0, false, 0},
		{"SELECT views FROM counters WHERE id = $1 AND id = $2", false, "", 0, false, 0},
		{"SELECT views FROM counters c WHERE id = $1", false, "", 0, false, 0},
		{"SELECT views FROM counters, other WHERE id = $1", false, "", 0, false, 0},
		{"SELECT views FROM counters WHERE id = $1 FOR UPDATE", false, "", 0, false, 0},
		{"SELECT views FROM counters WHERE id = $1; DELETE FROM counters", false, "", 0, false, 0},
		{"SELECT DISTINCT views FROM counters WHERE id = $1", false, "", 0, false, 0},
		{"SELECT views FROM counters WHERE id = $1 LIMIT 1 OFFSET 2", false, "", 0, false, 0},
		{"SELECT views FROM counters WHERE id = ? AND n = $1", false, "", 0, false, 0},
		{"SELECT views FROM counters WHERE id = $1 /* x */", true, "views", 1, false, 1},
	} {
		kr := ClassifyKeyRead(c.q, false)
		if (kr != nil) != c.ok {
			t.Errorf("%q: key read %v, want %v", c.q, kr != nil, c.ok)
			continue
		}
		if kr == nil {
			continue
		}
		if got := c.q[kr.ListStart:kr.ListEnd]; got != c.list || len(kr.Select) != c.cols || kr.SelectAll != c.all || len(kr.Where) != c.wheres {
			t.Errorf("%q: list %q cols %d all %v where %d", c.q, got, len(kr.Select), kr.SelectAll, len(kr.Where))
		}
	}
}

func FuzzClassifyKeyRead(f *testing.F) {
	f.Add("SELECT views FROM counters WHERE id = $1", false)
	f.Add(`SELECT * FROM "t" WHERE "t"."k" = ? ORDER BY "t"."k" LIMIT 1`, true)
	f.Fuzz(func(t *testing.T, q string, sqlite bool) {
		kr := ClassifyKeyRead(q, sqlite)
		if kr == nil {
			return
		}
		if kr.ListStart < 0 || kr.ListEnd > len(q) || kr.ListStart >= kr.ListEnd || len(kr.Where) == 0 {
			t.Fatalf("%q: bad key read %+v", q, kr)
		}
		if c := Classify(q, sqlite); c.Kind != Other || c.NumParams != kr.NumParams {
			t.Fatalf("%q: classified %v with %d parameters, key read has %d", q, c.Kind, c.NumParams, kr.NumParams)
		}
	})
}
