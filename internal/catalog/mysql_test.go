package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/testdb"
)

func TestReadMySQL(t *testing.T) {
	db, err := sql.Open("mysql", testdb.MySQLDatabase(t, "catalog", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE parent (id INT UNSIGNED PRIMARY KEY)`,
		`CREATE TABLE t (
			id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
			code VARCHAR(12) COLLATE utf8mb4_nopad_bin NOT NULL,
			name VARCHAR(40) NOT NULL,
			small TINYINT NOT NULL DEFAULT 3,
			price DECIMAL(10,2),
			ratio DOUBLE,
			raw VARBINARY(16),
			pid INT UNSIGNED,
			made DATETIME DEFAULT CURRENT_TIMESTAMP,
			twice BIGINT AS (id * 2) VIRTUAL,
			UNIQUE KEY code_u (code),
			UNIQUE KEY name_prefix (name(5)),
			CONSTRAINT pos CHECK (small >= 0),
			CONSTRAINT fk_p FOREIGN KEY (pid) REFERENCES parent (id))`,
		`CREATE VIEW v AS SELECT id FROM t`,
		`CREATE TABLE T2 (id INT PRIMARY KEY)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tables, err := Read(ctx, db, dialect.MySQL, []string{"t", "parent", "missing", "v", "t2", "T2"})
	if err != nil {
		t.Fatal(err)
	}
	if tables["missing"] != nil || tables["v"] != nil || tables["t2"] != nil || tables["T2"] == nil {
		t.Errorf("missing %v, view %v, t2 %v, T2 %v: want nil, nil, nil (names are exact), a table", tables["missing"], tables["v"], tables["t2"], tables["T2"])
	}
	tab := tables["t"]
	if tab == nil {
		t.Fatal("t not found")
	}
	col := func(n string) *Column {
		c := tab.Column(n)
		if c == nil {
			t.Fatalf("no column %s", n)
		}
		return c
	}
	for _, c := range []struct {
		name, want string
	}{
		{"id", "bigint Integer notnull seq"},
		{"CODE", "varchar Text notnull exact"}, // column names ignore case
		{"name", "varchar Text notnull ci"},
		{"small", "tinyint Integer notnull"},
		{"price", "decimal Numeric 10,2"},
		{"ratio", "double Float"},
		{"raw", "varbinary Bytes"},
		{"pid", "int unsigned Integer"},
		{"made", "datetime Time volatile"},
		{"twice", "bigint Integer generated"},
	} {
		c0 := col(c.name)
		got := c0.Type + " " + c0.Class.String()
		if c0.Class == Numeric {
			got += fmt.Sprintf(" %d,%d", c0.Precision, c0.Scale)
		}
		if c0.NotNull {
			got += " notnull"
		}
		if c0.SequenceDefault {
			got += " seq"
		}
		if c0.Class == Text {
			if c0.CaseInsensitive {
				got += " ci"
			} else {
				got += " exact"
			}
		}
		if c0.VolatileDefault {
			got += " volatile"
		}
		if c0.Generated {
			got += " generated"
		}
		if got != c.want {
			t.Errorf("column %s: %q, want %q", c.name, got, c.want)
		}
	}
	if ok, why := tab.IsUniqueKey([]string{"id"}); !ok {
		t.Errorf("id: %s", why)
	}
	if ok, why := tab.IsUniqueKey([]string{"code"}); !ok {
		t.Errorf("code: %s", why)
	}
	if ok, why := tab.IsUniqueKey([]string{"name"}); ok || !strings.Contains(why, "name_prefix") {
		t.Errorf("name (a prefix index): %v %s, want no key", ok, why)
	}
	if len(tab.Checks) != 1 || !strings.Contains(tab.Checks[0], "small") {
		t.Errorf("checks %v", tab.Checks)
	}
	if len(tab.ForeignKeysOut) != 1 || !strings.Contains(tab.ForeignKeysOut[0], "fk_p FOREIGN KEY (pid) REFERENCES parent(id)") {
		t.Errorf("foreign keys out %v", tab.ForeignKeysOut)
	}
	if in := tables["parent"].ForeignKeysIn; len(in) != 1 || !strings.HasPrefix(in[0], "t: fk_p") {
		t.Errorf("parent's foreign keys in %v", in)
	}
	if len(tab.Views) != 1 || !strings.HasSuffix(tab.Views[0], ".v") {
		t.Errorf("views %v", tab.Views)
	}
	if i, _ := intRange(col("pid")); i != 0 {
		t.Errorf("int unsigned: low %d, want 0", i)
	}
}

// TestMySQLKeyValueStrings: MySQL documents comparing an integer with a
// string as doubles, so a string key is taken only where a double is exact.
func TestMySQLKeyValueStrings(t *testing.T) {
	c := &Column{Name: "id", Type: "bigint", Class: Integer, NotNull: true}
	for _, x := range []struct {
		v  any
		ok bool
	}{{"42", true}, {"9007199254740991", true}, {"9007199254740993", false}, {"-9007199254740993", false}, {int64(9007199254740993), true}} {
		if _, ok := KeyValue(dialect.MySQL, c, x.v); ok != x.ok {
			t.Errorf("KeyValue(%v) ok = %v, want %v", x.v, ok, x.ok)
		}
	}
	if _, ok := KeyValue(dialect.Postgres, c, "9007199254740993"); !ok {
		t.Error("PostgreSQL reads the string as int8 exactly")
	}
}
