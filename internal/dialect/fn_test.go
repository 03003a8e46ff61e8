package dialect

import (
	"testing"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// TestFnSQLText pins the SET expressions of the column functions in both
// writers: PostgreSQL's native unnest form and the one-row statement of
// SQLite and of PostgreSQL through another driver.
func TestFnSQLText(t *testing.T) {
	g := pgdUpdate("g", []string{"a", "n+", "hi", "lo"}, []string{"id"})
	g.Fn = []ColFn{FnNone, FnNullZero, FnGreatest, FnLeast}
	int8 := pgColSQL{typ: "pg_catalog.int8"}
	got := pgUpdateSQL(g, []pgColSQL{int8, int8, int8, int8}, []pgColSQL{int8})
	want := "UPDATE g AS t SET a = v.c0, n = COALESCE(t.n, 0) + v.c1, hi = GREATEST(t.hi, v.c2), lo = LEAST(t.lo, v.c3) " +
		"FROM unnest($1::pg_catalog.int8[], $2::pg_catalog.int8[], $3::pg_catalog.int8[], $4::pg_catalog.int8[], $5::pg_catalog.int8[]) AS v(c0, c1, c2, c3, k0) " +
		"WHERE t.id = v.k0"
	if got != want {
		t.Errorf("pgx update:\n got %s\nwant %s", got, want)
	}
	if got, want := genericSQL(g, sqlparse.ParamDollar, false), "UPDATE g SET a = $1, n = COALESCE(n, 0) + $2, hi = GREATEST(hi, $3), lo = LEAST(lo, $4) WHERE id = $5"; got != want {
		t.Errorf("generic update:\n got %s\nwant %s", got, want)
	}
	if got, want := genericSQL(g, sqlparse.ParamQuestion, true), "UPDATE g SET a = ?, n = COALESCE(n, 0) + ?, hi = max(hi, ?), lo = min(lo, ?) WHERE id = ?"; got != want {
		t.Errorf("SQLite update:\n got %s\nwant %s", got, want)
	}
	g.Fn = nil // the common group: no functions
	if got, want := genericSQL(g, sqlparse.ParamQuestion, true), "UPDATE g SET a = ?, n = n + ?, hi = ?, lo = ? WHERE id = ?"; got != want {
		t.Errorf("update without functions:\n got %s\nwant %s", got, want)
	}
	for fn, name := range map[ColFn]string{FnNone: "", FnNullZero: "coalesce", FnGreatest: "greatest", FnLeast: "least"} {
		if fn.String() != name {
			t.Errorf("%d.String() = %q, want %q", fn, fn.String(), name)
		}
	}
}
