package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// sqliteReader reads SQLite tables with the pragma table-valued functions,
// a few queries a table (SQLite answers in-process), caching what every
// table shares: the schemas, the views and the foreign keys of each schema.
type sqliteReader struct {
	ctx     context.Context
	q       Querier
	schemas []string           // in the order a bare name is looked up: temp, main, attached
	views   []sqliteView       // every view of every schema, read on first use
	fks     map[string][]fkRow // schema → every foreign key column of its tables
	tables  map[string]*Table  // schema + "\x00" + lower-cased name → read table
}

// sqliteView is one view and the names its text mentions.
type sqliteView struct {
	schema, name string
	words        map[string]bool
}

// fkRow is one column of a foreign key (PRAGMA foreign_key_list), with the
// table that holds it.
type fkRow struct {
	child      string
	id         int64
	parent     string
	from, to   string
	toImplicit bool // "to" is NULL: the parent's primary key
}

// sqlIndex is one row of PRAGMA index_list.
type sqlIndex struct {
	name    string
	unique  bool
	origin  string // c: CREATE INDEX, u: UNIQUE constraint, pk: PRIMARY KEY
	partial bool
}

// readSQLite reads the named tables.
func readSQLite(ctx context.Context, q Querier, names []string) (map[string]*Table, error) {
	r := &sqliteReader{ctx: ctx, q: q, fks: map[string][]fkRow{}, tables: map[string]*Table{}}
	if err := r.readSchemas(); err != nil {
		return nil, err
	}
	out := make(map[string]*Table, len(names))
	for _, n := range names {
		t, err := r.lookup(n)
		if err != nil {
			return nil, err
		}
		out[n] = t
	}
	return out, nil
}

// query runs one query and calls scan for each row; rows are closed before
// it returns, so a single connection (a *sql.Conn or *sql.Tx) is free again.
func (r *sqliteReader) query(what, query string, scan func(*sql.Rows) error, args ...any) error {
	rows, err := r.q.QueryContext(r.ctx, query, args...)
	if err != nil {
		return fmt.Errorf("catalog: sqlite %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("catalog: sqlite %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catalog: sqlite %s: %w", what, err)
	}
	return nil
}

// readSchemas lists the schemas in lookup order: temp, main, then attached
// databases in the order they were attached.
func (r *sqliteReader) readSchemas() error {
	var names []string
	err := r.query("database_list", "SELECT name FROM pragma_database_list ORDER BY seq", func(rows *sql.Rows) error {
		var n string
		err := rows.Scan(&n)
		names = append(names, n)
		return err
	})
	r.schemas = []string{"temp", "main"}
	for _, n := range names {
		if n != "temp" && n != "main" {
			r.schemas = append(r.schemas, n)
		}
	}
	return err
}

// lookup resolves a rules-file name and reads its table, nil when none.
func (r *sqliteReader) lookup(name string) (*Table, error) {
	schema, table, ok := sqliteSplitName(name)
	if !ok {
		return nil, nil
	}
	type found struct {
		schema, name string
		wr, strict   bool
	}
	var hits []found
	err := r.query("table_list", `SELECT schema, name, type, wr, strict FROM pragma_table_list(?)`, func(rows *sql.Rows) error {
		var f found
		var typ string
		if err := rows.Scan(&f.schema, &f.name, &typ, &f.wr, &f.strict); err != nil {
			return err
		}
		if typ == "table" && !strings.HasPrefix(sqlparse.FoldASCII(f.name), "sqlite_") &&
			(schema == "" || sqlparse.FoldASCII(schema) == sqlparse.FoldASCII(f.schema)) {
			hits = append(hits, f)
		}
		return nil
	}, table)
	if err != nil || len(hits) == 0 {
		return nil, err
	}
	best := hits[0] // a schema named, or the first in lookup order
	for _, s := range r.schemas {
		if i := slices.IndexFunc(hits, func(f found) bool { return f.schema == s }); i >= 0 {
			best = hits[i]
			break
		}
	}
	key := best.schema + "\x00" + sqlparse.FoldASCII(best.name)
	if t := r.tables[key]; t != nil {
		return t, nil
	}
	t, err := r.read(best.schema, best.name, best.wr, best.strict)
	if err != nil {
		return nil, err
	}
	r.tables[key] = t
	return t, nil
}

// read reads one table that exists.
func (r *sqliteReader) read(schema, name string, withoutRowid, strict bool) (*Table, error) {
	t := &Table{Schema: schema, Name: name, WithoutRowid: withoutRowid, kind: dialect.SQLite}
	var createSQL string
	err := r.query("schema", "SELECT coalesce(sql, '') FROM "+sqliteQuote(schema)+
		".sqlite_schema WHERE type = 'table' AND name = ?", func(rows *sql.Rows) error {
		return rows.Scan(&createSQL)
	}, name)
	if err != nil {
		return nil, err
	}
	text := parseCreateTable(createSQL)
	t.Checks = text.checks
	if err := r.columns(t, strict, text); err != nil {
		return nil, err
	}
	pkIndex, err := r.uniques(t)
	if err != nil {
		return nil, err
	}
	r.identity(t, withoutRowid, pkIndex)
	if err := r.foreignKeys(t); err != nil {
		return nil, err
	}
	if err := r.triggers(t); err != nil {
		return nil, err
	}
	return t, r.readViews(t)
}

// columns reads PRAGMA table_xinfo: hidden 2 and 3 are generated columns
// (virtual, stored); pk is the column's position in the primary key.
func (r *sqliteReader) columns(t *Table, strict bool, text sqliteTableText) error {
	type pkCol struct {
		pos  int64
		name string
	}
	var pk []pkCol
	err := r.query("table_xinfo", `SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(?, ?) ORDER BY cid`, func(rows *sql.Rows) error {
		var (
			c           Column
			dflt        sql.NullString
			pos, hidden int64
		)
		if err := rows.Scan(&c.Name, &c.Type, &c.NotNull, &dflt, &pos, &hidden); err != nil {
			return err
		}
		lower := sqlparse.FoldASCII(c.Name)
		c.Class = sqliteClass(c.Type, strict)
		if c.Class == Numeric {
			c.Scale = -1
		}
		if coll := text.collations[lower]; coll != "" && !strings.EqualFold(coll, "BINARY") {
			c.Collation, c.CaseInsensitive = coll, true
		}
		c.Generated = hidden == 2 || hidden == 3
		if c.Generated {
			c.Default = text.generated[lower]
		} else if dflt.Valid {
			c.Default = dflt.String
			c.VolatileDefault = sqliteVolatileDefault(dflt.String)
		}
		if pos > 0 {
			pk = append(pk, pkCol{pos, c.Name})
		}
		t.Columns = append(t.Columns, &c)
		return nil
	}, t.Name, t.Schema)
	sort.Slice(pk, func(i, j int) bool { return pk[i].pos < pk[j].pos })
	for _, p := range pk {
		t.PrimaryKey = append(t.PrimaryKey, p.name)
	}
	return err
}

// identity marks an INTEGER PRIMARY KEY, the rowid's alias: a rowid table's
// only primary key column, declared exactly INTEGER, with no index behind
// the key (INTEGER PRIMARY KEY DESC in a column definition is no alias and
// has one).
func (r *sqliteReader) identity(t *Table, withoutRowid, pkIndex bool) {
	if withoutRowid || pkIndex || len(t.PrimaryKey) != 1 {
		return
	}
	c := t.Column(t.PrimaryKey[0])
	if c != nil && strings.EqualFold(strings.TrimSpace(c.Type), "INTEGER") {
		c.Identity, c.SequenceDefault, c.NotNull = true, true, true
	}
}

// uniques reads the unique indexes (PRAGMA index_list, index_info); pkIndex
// reports whether the primary key has an index of its own.
func (r *sqliteReader) uniques(t *Table) (pkIndex bool, err error) {
	var list []sqlIndex
	err = r.query("index_list", `SELECT name, "unique", origin, partial FROM pragma_index_list(?, ?) ORDER BY seq`, func(rows *sql.Rows) error {
		var ix sqlIndex
		err := rows.Scan(&ix.name, &ix.unique, &ix.origin, &ix.partial)
		list = append(list, ix)
		return err
	}, t.Name, t.Schema)
	if err != nil {
		return false, err
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	for _, ix := range list {
		if ix.origin == "pk" {
			pkIndex = true
		}
		if !ix.unique || ix.origin == "pk" {
			continue
		}
		u, err := r.index(t.Schema, ix)
		if err != nil {
			return false, err
		}
		if u.Partial || u.Expression {
			t.OtherUniques = append(t.OtherUniques, u)
		} else {
			t.Uniques = append(t.Uniques, u)
		}
	}
	return pkIndex, nil
}

// index reads one unique index's key columns and definition.
func (r *sqliteReader) index(schema string, ix sqlIndex) (*Index, error) {
	u := &Index{Name: ix.name, Partial: ix.partial}
	err := r.query("index_info", `SELECT name FROM pragma_index_info(?, ?) ORDER BY seqno`, func(rows *sql.Rows) error {
		var col sql.NullString
		err := rows.Scan(&col)
		if !col.Valid {
			u.Expression = true
		}
		u.Columns = append(u.Columns, col.String)
		return err
	}, ix.name, schema)
	if err != nil {
		return nil, err
	}
	err = r.query("index sql", "SELECT coalesce(sql, '') FROM "+sqliteQuote(schema)+
		".sqlite_schema WHERE type = 'index' AND name = ?", func(rows *sql.Rows) error {
		return rows.Scan(&u.Definition)
	}, ix.name)
	if u.Definition == "" {
		u.Definition = "UNIQUE (" + strings.Join(u.Columns, ", ") + ")"
	}
	return u, err
}

// foreignKeys reads the foreign keys of every table of t's schema once, and
// picks those of t (out) and those that reference t (in). SQLite keys
// reference tables of their own schema, by name, without regard to case.
func (r *sqliteReader) foreignKeys(t *Table) error {
	rows, ok := r.fks[t.Schema]
	if !ok {
		err := r.query("foreign_key_list", "SELECT m.name, f.id, f.\"table\", f.\"from\", f.\"to\" FROM "+
			sqliteQuote(t.Schema)+".sqlite_schema AS m JOIN pragma_foreign_key_list(m.name, ?) AS f "+
			"WHERE m.type = 'table' ORDER BY m.name, f.id, f.seq", func(rs *sql.Rows) error {
			var f fkRow
			var to sql.NullString
			err := rs.Scan(&f.child, &f.id, &f.parent, &f.from, &to)
			f.to, f.toImplicit = to.String, !to.Valid
			rows = append(rows, f)
			return err
		}, t.Schema)
		if err != nil {
			return err
		}
		r.fks[t.Schema] = rows
	}
	self := sqlparse.FoldASCII(t.Name)
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].child == rows[i].child && rows[j].id == rows[i].id {
			j++
		}
		desc := fkText(rows[i:j])
		if sqlparse.FoldASCII(rows[i].child) == self {
			t.ForeignKeysOut = append(t.ForeignKeysOut, desc)
		}
		if sqlparse.FoldASCII(rows[i].parent) == self {
			t.ForeignKeysIn = append(t.ForeignKeysIn, rows[i].child+": "+desc)
		}
		i = j
	}
	return nil
}

// fkText describes one foreign key from its column rows.
func fkText(cols []fkRow) string {
	var from, to []string
	for _, c := range cols {
		from, to = append(from, c.from), append(to, c.to)
	}
	s := "FOREIGN KEY (" + strings.Join(from, ", ") + ") REFERENCES " + cols[0].parent
	if !cols[0].toImplicit {
		s += "(" + strings.Join(to, ", ") + ")"
	}
	return s
}

// triggers lists the triggers on t: its schema's, and TEMP triggers on a
// table of its name (a TEMP trigger may be on a table of another schema).
func (r *sqliteReader) triggers(t *Table) error {
	schemas := []string{t.Schema}
	if t.Schema != "temp" {
		schemas = append(schemas, "temp")
	}
	for _, s := range schemas {
		err := r.query("triggers", "SELECT name FROM "+sqliteQuote(s)+
			".sqlite_schema WHERE type = 'trigger' AND tbl_name = ? COLLATE NOCASE ORDER BY name", func(rows *sql.Rows) error {
			var n string
			err := rows.Scan(&n)
			t.Triggers = append(t.Triggers, n)
			return err
		}, t.Name)
		if err != nil {
			return err
		}
	}
	return nil
}

// readViews finds the views that read t: those whose text mentions t's name
// as a word, then those that mention any of them, and so on. Every view of
// every schema is read once a Read.
func (r *sqliteReader) readViews(t *Table) error {
	if r.views == nil {
		r.views = []sqliteView{}
		for _, s := range r.schemas {
			err := r.query("views", "SELECT name, coalesce(sql, '') FROM "+sqliteQuote(s)+
				".sqlite_schema WHERE type = 'view' ORDER BY name", func(rows *sql.Rows) error {
				var v sqliteView
				var text string
				err := rows.Scan(&v.name, &text)
				v.schema, v.words = s, sqlWords(text)
				r.views = append(r.views, v)
				return err
			})
			if err != nil {
				return err
			}
		}
	}
	read := map[string]bool{sqlparse.FoldASCII(t.Name): true} // names whose readers read t
	found := make([]bool, len(r.views))
	for grew := true; grew; {
		grew = false
		for i, v := range r.views {
			if found[i] || !mentionsAny(v.words, read) {
				continue
			}
			found[i], grew = true, true
			read[sqlparse.FoldASCII(v.name)] = true
			t.Views = append(t.Views, v.schema+"."+v.name)
		}
	}
	return nil
}

// mentionsAny reports whether words holds any of names.
func mentionsAny(words, names map[string]bool) bool {
	for n := range names {
		if words[n] {
			return true
		}
	}
	return false
}
