package writeback

import (
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/writeback-go/writeback/internal/catalog"
)

// TestOrderByParsed: order_by is a column name, normalized as the key's
// (unquoted folds to lower case, quoted is exact); absent, it is "".
func TestOrderByParsed(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"updated_at", "updated_at"},
		{"Updated_At", "updated_at"},
		{`'"UpdatedAt"'`, "UpdatedAt"},
	} {
		r := mustRules(t, "tables:\n  carts:\n    mode: back\n    key: [id]\n    order_by: "+tt.src+"\n")
		if got := r.Tables["carts"].OrderBy; got != tt.want {
			t.Errorf("order_by: %s: got %q, want %q", tt.src, got, tt.want)
		}
	}
	r := mustRules(t, "tables:\n  carts:\n    mode: back\n    key: [id]\n")
	if got := r.Tables["carts"].OrderBy; got != "" {
		t.Errorf("no order_by: got %q", got)
	}
}

// TestOrderByErrors: a bad order_by is an error naming the file and the
// order_by line.
func TestOrderByErrors(t *testing.T) {
	const head = "tables:\n  carts:\n    mode: back\n    key: [id]\n"
	for _, tt := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"list", head + "    order_by: [a, b]\n", 5, "tables.carts.order_by: want a column name, not a list"},
		{"null", head + "    order_by:\n", 5, "tables.carts.order_by: missing value"},
		{"qualified", head + "    order_by: carts.updated_at\n", 5, `tables.carts.order_by: bad column name "carts.updated_at"`},
		{"key column", head + "    max_loss: 1s\n    order_by: ID\n", 6, "tables.carts.order_by: id is a key column"},
		{"through table", "tables:\n  carts:\n    mode: through\n    order_by: updated_at\n", 4, "tables.carts.order_by: only a back table's flushes are ordered (mode is through)"},
		{"misspelled field", head + "    orderby: updated_at\n", 5, `unknown field "orderby"`},
	} {
		_, err := ParseRules([]byte(tt.src), "w.yaml")
		var re *RulesError
		switch {
		case err == nil:
			t.Errorf("%s: no error, want %q", tt.name, tt.want)
		case !errors.As(err, &re) || re.Line != tt.line || !strings.HasPrefix(err.Error(), "w.yaml:") || !strings.Contains(err.Error(), tt.want):
			t.Errorf("%s: got %v (line %d), want w.yaml:%d: ...%s", tt.name, err, re.Line, tt.line, tt.want)
		}
	}
	// The same checks on rules built in code.
	for _, tt := range []struct {
		name string
		r    *TableRule
		want string
	}{
		{"key column", &TableRule{Mode: ModeBack, Key: []string{"id"}, OrderBy: "id"}, "id is a key column"},
		{"through", &TableRule{Mode: ModeThrough, OrderBy: "updated_at"}, "only a back table's flushes are ordered"},
		{"qualified", &TableRule{Mode: ModeBack, Key: []string{"id"}, OrderBy: "t.updated_at"}, "bad column name"},
	} {
		err := (&Rules{Tables: map[string]*TableRule{"carts": tt.r}}).Validate()
		if err == nil || !strings.Contains(err.Error(), "tables.carts.order_by: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate, %s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestOrderByCatalog: at open, order_by must name a column of the table,
// not a key column, of a type with an order; the error points at the
// order_by line.
func TestOrderByCatalog(t *testing.T) {
	rule := func() *TableRule {
		return &TableRule{Name: "t", Mode: ModeBack, Key: []string{"id"}, Line: 3, orderByLine: 7}
	}
	tab := scPlain()
	tab.Columns = append(tab.Columns, &catalog.Column{Name: "doc", Type: "jsonb", Class: catalog.JSON})
	for _, tt := range []struct {
		col  string
		want string
	}{
		{"nope", "tables.t.order_by: column nope does not exist in table t"},
		{"doc", "tables.t.order_by: column doc is of type jsonb, which has no order"},
	} {
		r := rule()
		r.OrderBy = tt.col
		scWantErr(t, tt.col, checkRule(scFile, r, tab), tt.want)
	}
	r := rule()
	r.OrderBy = "n"
	scNoErr(t, "n", checkRule(scFile, r, tab))

	// Through the driver, as an application opens it.
	dsn := sqliteDSN(t, "orderopen")
	base, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	execAll(t, base, "CREATE TABLE carts (id INTEGER PRIMARY KEY, note TEXT, updated_at INTEGER)")
	path := writeRulesFile(t, "tables:\n  carts:\n    mode: back\n    key: [id]\n    order_by: changed_at\n")
	db, err := sql.Open("writeback", "driver=sqlite3 rules="+path+" dsn="+dsn)
	if err == nil {
		err = db.Ping()
		db.Close()
	}
	if err == nil || !strings.Contains(err.Error(), path+":5: tables.carts.order_by: column changed_at does not exist in table carts") {
		t.Errorf("open with an unknown order_by column: got %v", err)
	}
}

// TestOrderBySQLMock pins what a connector with order_by sends (generic
// dialect): an UPDATE that assigns updated_at is buffered and coalesced
// with a later delta; one that assigns without it goes to the database,
// after the barrier flushes the table with the guarded statement, whose
// placeholders take the row's updated_at once per assignment.
func TestOrderBySQLMock(t *testing.T) {
	db, mock, _ := openMock(t, `
tables:
  carts:
    mode: back
    key: [id]
    max_loss: 1h
    order_by: updated_at
`)
	mustExec(t, db, "UPDATE carts SET note = ?, updated_at = ? WHERE id = ?", "a", 5, 7)
	mustExec(t, db, "UPDATE carts SET n = n + ? WHERE id = ?", 2, 7)
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err) // nothing reached the database yet
	}
	mock.ExpectBegin()
	mock.ExpectPrepare("UPDATE carts SET n = n + ?, note = CASE WHEN updated_at IS NULL OR updated_at <= ? THEN ? ELSE note END, "+
		"updated_at = CASE WHEN updated_at IS NULL OR updated_at <= ? THEN ? ELSE updated_at END WHERE id = ?").
		ExpectExec().WithArgs(int64(2), int64(5), "a", int64(5), int64(5), int64(7)).WillReturnResult(sqlmock.NewResult(0, 1))
	mock.ExpectCommit()
	mock.ExpectExec("UPDATE carts SET note = ? WHERE id = ?").WithArgs("b", int64(8)).WillReturnResult(sqlmock.NewResult(0, 1))
	mustExec(t, db, "UPDATE carts SET note = ? WHERE id = ?", "b", 8)
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Fatal(err)
	}
	st, _ := StatsOf(db)
	if st.Buffered != 2 || st.Flushes != 1 {
		t.Errorf("stats = %+v; want 2 buffered writes, 1 flush", st.TableStats)
	}
	mock.ExpectClose()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOrderByClassify: on a table with order_by, a statement that assigns
// columns without the order_by column goes to the database, saying why;
// deltas and GREATEST alone, assignments with it, INSERTs and upserts
// that assign it are buffered.
func TestOrderByClassify(t *testing.T) {
	dsn := sqliteDSN(t, "orderclass")
	base, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	execAll(t, base, "CREATE TABLE carts (id INTEGER PRIMARY KEY, note TEXT, n INTEGER NOT NULL DEFAULT 0, hi INTEGER NOT NULL DEFAULT 0, updated_at INTEGER)")
	bc, err := baseConnector("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(bc, &Rules{Tables: map[string]*TableRule{"carts": {Mode: ModeBack, Key: []string{"id"}, OrderBy: "updated_at"}}})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	const why = "assigns columns of carts but not its order_by column updated_at"
	for _, tt := range []struct {
		q      string
		reason string // "" when buffered
	}{
		{"UPDATE carts SET note = ?, updated_at = ? WHERE id = ?", ""},
		{"UPDATE carts SET updated_at = ?, note = ?, n = n + 1 WHERE id = ?", ""},
		{"UPDATE carts SET n = n + ? WHERE id = ?", ""},
		{"UPDATE carts SET hi = max(hi, ?), n = n - 1 WHERE id = ?", ""},
		{"UPDATE carts SET UPDATED_AT = ?, note = ? WHERE id = ?", ""},
		{"UPDATE carts SET note = ? WHERE id = ?", why},
		{"UPDATE carts SET note = ?, n = n + 1 WHERE id = ?", why},
		{"UPDATE carts SET updated_at = updated_at + 1, note = ? WHERE id = ?", why},
		{"INSERT INTO carts (id, note) VALUES (?, ?)", ""},
		{"INSERT INTO carts (id, note, updated_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET note = excluded.note, updated_at = excluded.updated_at", ""},
		{"INSERT INTO carts (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = carts.n + excluded.n", ""},
		{"INSERT INTO carts (id, note, updated_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET note = excluded.note", why},
	} {
		w := &whyNot{}
		info := c.planStatement(tt.q, w)
		switch {
		case tt.reason == "" && info.target == nil:
			t.Errorf("%s: not buffered (%s), want buffered", tt.q, w.reason)
		case tt.reason != "" && (info.target != nil || !strings.Contains(w.reason, tt.reason)):
			t.Errorf("%s: buffered %v, reason %q; want not buffered because it %s", tt.q, info.target != nil, w.reason, tt.reason)
		}
	}
}
