package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/writeback-go/writeback/internal/dialect"
)

// readMySQL reads the named tables of a MySQL or MariaDB server from
// information_schema, one table at a time. A bare name is looked up in the
// connection's current database (DATABASE()); names compare exactly, as
// table names do on a server with lower_case_table_names=0 (information_schema
// itself compares them without regard to case, so the rows are filtered here).
func readMySQL(ctx context.Context, q Querier, names []string) (map[string]*Table, error) {
	out := make(map[string]*Table, len(names))
	for _, n := range names {
		out[n] = nil
		schema, name, ok := strings.Cut(n, ".")
		if !ok {
			schema, name = "", n
		}
		if name == "" || strings.Contains(name, ".") {
			continue
		}
		t, err := readMySQLTable(ctx, q, schema, name)
		if err != nil {
			return nil, err
		}
		out[n] = t
	}
	return out, nil
}

// myQuery runs one catalog query and calls scan for each row.
func myQuery(ctx context.Context, q Querier, what, query string, scan func(*sql.Rows) error, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("catalog: mysql %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("catalog: mysql %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catalog: mysql %s: %w", what, err)
	}
	return nil
}

// readMySQLTable reads one table; nil when schema.name is no base table.
func readMySQLTable(ctx context.Context, q Querier, schema, name string) (*Table, error) {
	var t *Table
	err := myQuery(ctx, q, "table", `SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND TABLE_NAME = ?`, func(rows *sql.Rows) error {
		var s, n, typ string
		if err := rows.Scan(&s, &n, &typ); err != nil {
			return err
		}
		if n == name && (schema == "" || s == schema) && typ == "BASE TABLE" {
			t = &Table{Schema: s, Name: n, kind: dialect.MySQL}
		}
		return nil
	}, schema, name)
	if err != nil || t == nil {
		return nil, err
	}
	if err := myColumns(ctx, q, t); err != nil {
		return nil, err
	}
	if err := myIndexes(ctx, q, t); err != nil {
		return nil, err
	}
	if err := myFacts(ctx, q, t); err != nil {
		return nil, err
	}
	return t, nil
}

// myColumns reads t's columns.
func myColumns(ctx context.Context, q Querier, t *Table) error {
	return myQuery(ctx, q, "columns", `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA,
		COALESCE(CHARACTER_MAXIMUM_LENGTH, 0), COALESCE(NUMERIC_PRECISION, 0), COALESCE(NUMERIC_SCALE, 0),
		COALESCE(CHARACTER_SET_NAME, ''), COALESCE(COLLATION_NAME, '')
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, func(rows *sql.Rows) error {
		var name, dataType, colType, nullable, extra, charset, collation string
		var def sql.NullString
		var length, precision, scale int64
		if err := rows.Scan(&name, &dataType, &colType, &nullable, &def, &extra, &length, &precision, &scale, &charset, &collation); err != nil {
			return err
		}
		if name != "" && t.Column(name) != nil {
			return nil // the filter matched another table's spelling
		}
		c := &Column{Name: name, NotNull: nullable == "NO"}
		myType(c, strings.ToLower(dataType), strings.ToLower(colType), length, precision, scale, charset, collation)
		extra = strings.ToLower(extra)
		switch {
		case strings.Contains(extra, "virtual generated"), strings.Contains(extra, "stored generated"),
			strings.Contains(extra, "persistent generated"):
			c.Generated = true
		case strings.Contains(extra, "auto_increment"):
			c.SequenceDefault, c.Identity = true, true
		}
		if def.Valid && !(def.String == "NULL" && !c.NotNull) {
			c.Default = def.String
			// A literal default is the same at flush time as at Exec; an
			// expression (MariaDB shows it unquoted, with a call; MySQL
			// marks it DEFAULT_GENERATED) may not be.
			if strings.Contains(def.String, "(") || strings.Contains(strings.ToLower(def.String), "current_") ||
				strings.Contains(extra, "default_generated") {
				c.VolatileDefault = true
			}
		}
		if strings.Contains(extra, "on update") {
			// The column changes at every UPDATE of the row, at flush time.
			t.Triggers = append(t.Triggers, "column "+name+" "+extra)
		}
		t.Columns = append(t.Columns, c)
		return nil
	}, t.Schema, t.Name)
}

// myType sets c's Type, Class and sizes from information_schema's view of
// it. Type is the data type, with " unsigned" for unsigned integers.
func myType(c *Column, dataType, colType string, length, precision, scale int64, charset, collation string) {
	c.Type = dataType
	unsigned := strings.Contains(colType, "unsigned")
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint":
		c.Class = Integer
		if unsigned {
			c.Type += " unsigned"
		}
	case "decimal", "numeric":
		if unsigned {
			c.Type += " unsigned" // no negative values: no Numeric delta may go below
			return
		}
		c.Class, c.Precision, c.Scale = Numeric, int(precision), int(scale)
	case "double", "double precision", "real":
		if !unsigned {
			c.Class = Float
		}
	case "varchar", "text", "tinytext", "mediumtext", "longtext":
		c.Class, c.Length = Text, int(length)
		if dataType != "varchar" {
			c.Length = 0 // a byte limit, not a character count
		}
		if charset != "utf8mb4" {
			c.Class = Other // 4-byte characters would be refused
		}
		c.Collation = collation
		if !myExactCollation(collation) {
			c.CaseInsensitive = true
			if strings.HasSuffix(collation, "_bin") {
				c.Collation += ", which ignores trailing spaces (PAD SPACE)"
			}
		}
	case "varbinary", "blob", "tinyblob", "mediumblob", "longblob":
		c.Class = Bytes
	case "date", "datetime", "timestamp", "time":
		c.Class = Time
	}
}

// myExactCollation reports whether two strings are equal under collation
// exactly when their bytes are: a binary collation without padding
// (MariaDB's *_nopad_bin, MySQL 8's utf8mb4_0900_bin).
func myExactCollation(collation string) bool {
	return strings.HasSuffix(collation, "_nopad_bin") || collation == "utf8mb4_0900_bin"
}

// myIndexes reads t's primary key and unique indexes.
func myIndexes(ctx context.Context, q Querier, t *Table) error {
	type idx struct {
		cols    []string
		partial bool // a prefix or an expression
	}
	byName := map[string]*idx{}
	var order []string
	err := myQuery(ctx, q, "indexes", `SELECT INDEX_NAME, COALESCE(COLUMN_NAME, ''), SUB_PART IS NOT NULL
		FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0
		ORDER BY INDEX_NAME, SEQ_IN_INDEX`, func(rows *sql.Rows) error {
		var name, col string
		var prefix bool
		if err := rows.Scan(&name, &col, &prefix); err != nil {
			return err
		}
		i := byName[name]
		if i == nil {
			i = &idx{}
			byName[name] = i
			order = append(order, name)
		}
		i.cols = append(i.cols, col)
		i.partial = i.partial || prefix || col == ""
		return nil
	}, t.Schema, t.Name)
	if err != nil {
		return err
	}
	for _, name := range order {
		i := byName[name]
		switch {
		case name == "PRIMARY" && !i.partial:
			t.PrimaryKey = i.cols
		case i.partial:
			t.OtherUniques = append(t.OtherUniques, &Index{Name: name, Columns: i.cols, Expression: true})
		default:
			t.Uniques = append(t.Uniques, &Index{Name: name, Columns: i.cols})
		}
	}
	return nil
}

// myFacts reads t's triggers, foreign keys, CHECK constraints and the
// views that mention it.
func myFacts(ctx context.Context, q Querier, t *Table) error {
	err := myQuery(ctx, q, "triggers", `SELECT TRIGGER_NAME FROM information_schema.TRIGGERS
		WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?`, func(rows *sql.Rows) error {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		t.Triggers = append(t.Triggers, n)
		return nil
	}, t.Schema, t.Name)
	if err != nil {
		return err
	}
	fks := map[string]string{}
	err = myQuery(ctx, q, "foreign keys", `SELECT TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA,
		REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE REFERENCED_TABLE_NAME IS NOT NULL AND ((TABLE_SCHEMA = ? AND TABLE_NAME = ?) OR (REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?))
		ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION`, func(rows *sql.Rows) error {
		var s, n, name, col, rs, rn, rc string
		if err := rows.Scan(&s, &n, &name, &col, &rs, &rn, &rc); err != nil {
			return err
		}
		if s == t.Schema && n == t.Name {
			k := "out\x00" + name
			fks[k] += col + "\x00" + rn + "\x00" + rc + "\x01"
		}
		if rs == t.Schema && rn == t.Name {
			k := "in\x00" + n + "\x00" + name
			fks[k] += col + "\x00" + rn + "\x00" + rc + "\x01"
		}
		return nil
	}, t.Schema, t.Name, t.Schema, t.Name)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(fks))
	for k := range fks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var cols, refCols []string
		var ref string
		for _, part := range strings.Split(strings.TrimSuffix(fks[k], "\x01"), "\x01") {
			f := strings.Split(part, "\x00")
			cols, ref, refCols = append(cols, f[0]), f[1], append(refCols, f[2])
		}
		desc := fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s(%s)", strings.Join(cols, ", "), ref, strings.Join(refCols, ", "))
		parts := strings.Split(k, "\x00")
		if parts[0] == "out" {
			t.ForeignKeysOut = append(t.ForeignKeysOut, parts[1]+" "+desc)
		} else {
			t.ForeignKeysIn = append(t.ForeignKeysIn, parts[1]+": "+parts[2]+" "+desc)
		}
	}
	err = myQuery(ctx, q, "checks", `SELECT c.CONSTRAINT_NAME, c.CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS c
		JOIN information_schema.TABLE_CONSTRAINTS tc ON tc.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND tc.CONSTRAINT_NAME = c.CONSTRAINT_NAME
		WHERE tc.CONSTRAINT_TYPE = 'CHECK' AND tc.TABLE_SCHEMA = ? AND tc.TABLE_NAME = ?`, func(rows *sql.Rows) error {
		var n, clause string
		if err := rows.Scan(&n, &clause); err != nil {
			return err
		}
		t.Checks = append(t.Checks, n+" CHECK ("+clause+")")
		return nil
	}, t.Schema, t.Name)
	if err != nil {
		return err
	}
	sort.Strings(t.Checks)
	t.Checks = dedupe(t.Checks)
	return myQuery(ctx, q, "views", `SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS`, func(rows *sql.Rows) error {
		var s, n string
		var def sql.NullString
		if err := rows.Scan(&s, &n, &def); err != nil {
			return err
		}
		// The server stores a view's text with every table qualified and
		// quoted (`db`.`t`); a definition it does not show (no SHOW VIEW
		// privilege) counts, in the table's schema, as reading it.
		if def.String == "" && s == t.Schema || strings.Contains(def.String, "`"+t.Schema+"`.`"+t.Name+"`") {
			t.Views = append(t.Views, s+"."+n)
		}
		return nil
	})
}

// dedupe removes adjacent duplicates of a sorted list.
func dedupe(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}
