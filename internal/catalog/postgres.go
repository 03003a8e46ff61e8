package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/writeback-go/writeback/internal/dialect"
)

// readPostgres reads the named tables in four queries: names, columns,
// unique indexes, and the other facts.
func readPostgres(ctx context.Context, q Querier, names []string) (map[string]*Table, error) {
	out := make(map[string]*Table, len(names))
	var valid []string
	for _, n := range names {
		out[n] = nil
		if pgNameOK(n) {
			valid = append(valid, n)
		}
	}
	if len(valid) == 0 {
		return out, nil
	}
	byOid, err := pgResolve(ctx, q, valid, out)
	if err != nil || len(byOid) == 0 {
		return out, err
	}
	oids := make([]int64, 0, len(byOid))
	for oid := range byOid {
		oids = append(oids, oid)
	}
	sort.Slice(oids, func(i, j int) bool { return oids[i] < oids[j] })
	arg := pgOidArray(oids)
	if err := pgColumns(ctx, q, arg, byOid); err != nil {
		return nil, err
	}
	if err := pgIndexes(ctx, q, arg, byOid); err != nil {
		return nil, err
	}
	if err := pgFacts(ctx, q, arg, byOid); err != nil {
		return nil, err
	}
	return out, nil
}

// pgQuery runs one catalog query and calls scan for each row.
func pgQuery(ctx context.Context, q Querier, what, query, arg string, scan func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query, arg)
	if err != nil {
		return fmt.Errorf("catalog: postgres %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("catalog: postgres %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catalog: postgres %s: %w", what, err)
	}
	return nil
}

// pgResolve resolves valid (names pgNameOK accepts) to tables, fills out
// for those that resolve, and returns the tables by oid. Names that resolve
// to one table share its *Table.
func pgResolve(ctx context.Context, q Querier, valid []string, out map[string]*Table) (map[int64]*Table, error) {
	byOid := map[int64]*Table{}
	err := pgQuery(ctx, q, "resolve", pgResolveSQL, dialect.TextArrayLiteral(valid), func(rows *sql.Rows) error {
		var (
			i, oid       int64
			schema, name string
		)
		if err := rows.Scan(&i, &oid, &schema, &name); err != nil {
			return err
		}
		if i < 1 || int(i) > len(valid) {
			return fmt.Errorf("ordinal %d out of range", i)
		}
		t := byOid[oid]
		if t == nil {
			t = &Table{Schema: schema, Name: name, kind: dialect.Postgres}
			byOid[oid] = t
		}
		out[valid[i-1]] = t
		return nil
	})
	return byOid, err
}

// pgColumns reads the columns of every table.
func pgColumns(ctx context.Context, q Querier, arg string, byOid map[int64]*Table) error {
	return pgQuery(ctx, q, "columns", pgColumnsSQL, arg, func(rows *sql.Rows) error {
		var (
			rel, typmod      int64
			c                Column
			base, baseNsp    string
			nondeterministic bool
		)
		err := rows.Scan(&rel, &c.Name, &c.Type, &base, &baseNsp, &typmod, &c.NotNull,
			&c.Collation, &nondeterministic, &c.Generated, &c.Identity, &c.Default,
			&c.SequenceDefault, &c.VolatileDefault)
		if err != nil {
			return err
		}
		c.Class = pgClass(base, baseNsp)
		c.CaseInsensitive = nondeterministic || base == "citext"
		c.Length, c.Precision, c.Scale = pgModifier(c.Class, typmod)
		if t := byOid[rel]; t != nil {
			t.Columns = append(t.Columns, &c)
		}
		return nil
	})
}

// pgIndexes reads the unique indexes of every table, one row per key part.
func pgIndexes(ctx context.Context, q Querier, arg string, byOid map[int64]*Table) error {
	var cur *Index
	var curRel int64
	var primary bool
	flush := func() {
		if cur == nil || byOid[curRel] == nil {
			return
		}
		t := byOid[curRel]
		switch {
		case primary:
			t.PrimaryKey = cur.Columns
		case cur.Partial || cur.Expression || cur.Invalid:
			t.OtherUniques = append(t.OtherUniques, cur)
		default:
			t.Uniques = append(t.Uniques, cur)
		}
	}
	err := pgQuery(ctx, q, "indexes", pgIndexesSQL, arg, func(rows *sql.Rows) error {
		var (
			rel  int64
			ix   Index
			prim bool
			col  string
		)
		err := rows.Scan(&rel, &ix.Name, &prim, &ix.Partial, &ix.Expression, &ix.Invalid,
			&ix.NullsNotDistinct, &ix.Definition, &col)
		if err != nil {
			return err
		}
		if cur == nil || rel != curRel || ix.Name != cur.Name {
			flush()
			cur, curRel, primary = &ix, rel, prim
		}
		cur.Columns = append(cur.Columns, col)
		return nil
	})
	if err == nil {
		flush()
	}
	return err
}

// pgFacts reads foreign keys, checks, triggers, rules and views.
func pgFacts(ctx context.Context, q Querier, arg string, byOid map[int64]*Table) error {
	return pgQuery(ctx, q, "facts", pgFactsSQL, arg, func(rows *sql.Rows) error {
		var (
			rel        int64
			kind, text string
		)
		if err := rows.Scan(&rel, &kind, &text); err != nil {
			return err
		}
		t := byOid[rel]
		if t == nil {
			return nil
		}
		switch kind {
		case "o":
			t.ForeignKeysOut = append(t.ForeignKeysOut, text)
		case "i":
			t.ForeignKeysIn = append(t.ForeignKeysIn, text)
		case "c":
			t.Checks = append(t.Checks, text)
		case "t":
			t.Triggers = append(t.Triggers, text)
		case "r":
			t.Rules = append(t.Rules, text)
		case "v":
			t.Views = append(t.Views, text)
		}
		return nil
	})
}

// pgClass classifies a base type by its name; citext may live in any schema,
// the others are pg_catalog's.
func pgClass(typname, nsp string) TypeClass {
	if typname == "citext" {
		return Text
	}
	if nsp != "pg_catalog" {
		return Other
	}
	switch typname {
	case "int2", "int4", "int8":
		return Integer
	case "numeric":
		return Numeric
	case "float4", "float8":
		return Float
	case "text", "varchar", "name":
		return Text
	case "bpchar":
		return Char
	case "uuid":
		return UUID
	case "bool":
		return Bool
	case "date", "time", "timetz", "timestamp", "timestamptz":
		return Time
	case "bytea":
		return Bytes
	case "json", "jsonb":
		return JSON
	}
	return Other
}

// pgModifier decodes a type modifier: the length of varchar(n)/char(n),
// numeric's precision and scale (scale -1 when unconstrained; PostgreSQL 15
// allows a negative scale, kept in 11 bits).
func pgModifier(class TypeClass, typmod int64) (length, precision, scale int) {
	const varhdrsz = 4
	switch class {
	case Text, Char:
		if typmod >= varhdrsz {
			return int(typmod - varhdrsz), 0, 0
		}
	case Numeric:
		if typmod < varhdrsz {
			return 0, 0, -1
		}
		m := int(typmod - varhdrsz)
		return 0, (m >> 16) & 0xffff, ((m & 0x7ff) ^ 1024) - 1024
	}
	return 0, 0, 0
}

// pgNameOK reports whether to_regclass would parse name without raising:
// one or two dot-separated identifiers, each quoted ("" doubles a quote,
// not empty) or unquoted (no space, quote or dot), spaces around them,
// in valid UTF-8 without NUL.
func pgNameOK(name string) bool {
	if !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		return false // the server would refuse the whole array
	}
	parts, i := 0, 0
	skip := func() {
		for i < len(name) && strings.IndexByte(" \t\n\r\f\v", name[i]) >= 0 {
			i++
		}
	}
	for {
		skip()
		start := i
		if i < len(name) && name[i] == '"' {
			if i = pgQuotedEnd(name, i); i < 0 || i-start <= 2 {
				return false
			}
		} else {
			for i < len(name) && strings.IndexByte(" \t\n\r\f\v.\"", name[i]) < 0 {
				i++
			}
			if i == start {
				return false
			}
		}
		parts++
		skip()
		if i == len(name) {
			return parts <= 2
		}
		if name[i] != '.' {
			return false
		}
		i++
	}
}

// pgQuotedEnd returns the index after the quoted identifier starting at
// s[i] == '"', or -1 when it is not closed.
func pgQuotedEnd(s string, i int) int {
	for i++; i < len(s); i++ {
		if s[i] != '"' {
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			i++
			continue
		}
		return i + 1
	}
	return -1
}

// pgOidArray formats oids as an oid[] literal.
func pgOidArray(oids []int64) string {
	parts := make([]string, len(oids))
	for i, o := range oids {
		parts[i] = strconv.FormatInt(o, 10)
	}
	return "{" + strings.Join(parts, ",") + "}"
}
