package sqlparse

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// describeClassified renders a classification compactly so table tests can state the
// whole expected result in one string: quoted identifiers are shown {norm},
// placeholders #ordinal or :name#ordinal, literals as Go values (strings and
// decimal text %q).
func describeClassified(c *Statement) string {
	idn, val := describeIdent, describeOperand
	var b strings.Builder
	tbl := idn(c.Table)
	if c.Schema != nil {
		tbl = idn(*c.Schema) + "." + tbl
	}
	if c.Alias != nil {
		tbl += " as " + idn(*c.Alias)
	}
	switch c.Kind {
	case Update:
		b.WriteString("update " + tbl + " set")
		for i, s := range c.Sets {
			if i > 0 {
				b.WriteString(",")
			}
			op := "="
			switch s.Delta {
			case 1:
				op = "+="
			case -1:
				op = "-="
			}
			if s.NullAsZero {
				op = "?" + op // NULL counts as 0
			}
			switch s.Extreme {
			case 1:
				op = "^="
			case -1:
				op = "v="
			}
			b.WriteString(" " + idn(s.Col) + op + val(s.Val))
		}
		b.WriteString(" where")
		for i, w := range c.Where {
			if i > 0 {
				b.WriteString(" and")
			}
			b.WriteString(" " + idn(w.Col) + "=" + val(w.Val))
		}
		for _, g := range c.Guards {
			b.WriteString(" and " + idn(g.Col) + " is")
			if g.NotNull {
				b.WriteString(" not")
			}
			b.WriteString(" null")
		}
	case Insert:
		b.WriteString("insert " + tbl + " (")
		for i, col := range c.Cols {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(idn(col))
		}
		b.WriteString(") values")
		for i, r := range c.Rows {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(" (")
			for j, v := range r {
				if j > 0 {
					b.WriteString(",")
				}
				b.WriteString(val(v))
			}
			b.WriteString(")")
		}
		switch {
		case c.OrIgnore:
			b.WriteString(" or ignore")
		case c.InsertIgnore:
			b.WriteString(" ignore")
		case c.IgnoreConflict:
			b.WriteString(" do nothing")
			for _, id := range c.ConflictTarget {
				b.WriteString(" " + idn(id))
			}
		}
	default:
		b.WriteString("other")
	}
	for i, id := range c.Returning {
		if i == 0 {
			b.WriteString(" returning ")
		} else {
			b.WriteString(",")
		}
		b.WriteString(idn(id))
	}
	return b.String()
}

// describeIdent writes a name for describeClassified: its norm, in braces
// when quoted.
func describeIdent(i Ident) string {
	if i.Quoted {
		return "{" + i.Norm + "}"
	}
	return i.Norm
}

// describeOperand writes an operand for describeClassified: #ordinal (with
// :name) for a placeholder, else the literal (a Decimal as d"text"); a cast
// follows as ::type.
func describeOperand(v Operand) string {
	if v.Cast != "" {
		c := v
		c.Cast = ""
		return describeOperand(c) + "::" + v.Cast
	}
	if !v.IsLit {
		if v.Name != "" {
			return fmt.Sprintf(":%s#%d", v.Name, v.Ordinal)
		}
		return fmt.Sprintf("#%d", v.Ordinal)
	}
	switch x := v.Lit.(type) {
	case Clock:
		return "clock:" + string(x)
	case nil:
		return "NULL"
	case bool:
		return strings.ToUpper(fmt.Sprint(x))
	case int64:
		return fmt.Sprint(x)
	case string:
		return fmt.Sprintf("%q", x)
	case Decimal:
		return fmt.Sprintf("d%q", string(x))
	}
	return fmt.Sprintf("?%T", v.Lit)
}

// Short names of the placeholder styles, for the table below.
const (
	clsNone = ParamNone
	clsQ    = ParamQuestion
	clsD    = ParamDollar
	clsNm   = ParamNamed
)

// shapeTests lists statements and their expected classification; the fuzz
// oracles also run on them (TestClassifyOracles).
var shapeTests = []struct {
	name   string
	query  string
	sqlite bool
	want   string
	style  ParamStyle
	n      int
}{
	// UPDATE with each placeholder style.
	{"update ?", "UPDATE t SET a = ? WHERE k = ?", false, "update t set a=#1 where k=#2", clsQ, 2},
	{"update ?N", "UPDATE t SET a = ?2 WHERE k = ?1", false, "update t set a=#2 where k=#1", clsQ, 2},
	{"update ?N sqlite", "UPDATE t SET a = ?2 WHERE k = ?1", true, "update t set a=#2 where k=#1", clsQ, 2},
	{"update $N", "UPDATE t SET a = $2 WHERE k = $1", false, "update t set a=#2 where k=#1", clsD, 2},
	{"update $N reused", "UPDATE t SET a = $1, b = b + $1 WHERE k = $3", false, "update t set a=#1, b+=#1 where k=#3", clsD, 3},
	{"update $N sqlite", "UPDATE t SET a = $2 WHERE k = $1", true, "update t set a=:2#1 where k=:1#2", clsNm, 2},
	{"update :name", "UPDATE t SET a = :a, b = :b WHERE k = :k", false, "update t set a=:a#1, b=:b#2 where k=:k#3", clsNm, 3},
	{"update @name", "UPDATE t SET a = @v WHERE k = @id", false, "update t set a=:v#1 where k=:id#2", clsNm, 2},
	{"update $name sqlite", "UPDATE t SET a = $v WHERE k = $id", true, "update t set a=:v#1 where k=:id#2", clsNm, 2},
	{"update :name repeated", "UPDATE t SET a = :x, b = :y WHERE k = :x", true, "update t set a=:x#1, b=:y#2 where k=:x#1", clsNm, 2},
	{"update named reuse", "UPDATE t SET a = :a, b = b + :d WHERE k = :k AND k2 = :a", false, "update t set a=:a#1, b+=:d#2 where k=:k#3 and k2=:a#1", clsNm, 3},
	{"update mixed named prefixes", "UPDATE t SET a = :a, b = @b WHERE k = :k", false, "update t set a=:a#1, b=:b#2 where k=:k#3", clsNm, 3},

	// Literal kinds.
	{"int literals", "UPDATE t SET a = 5, b = -7, c = +3, d = - 2 WHERE k = 10", false, "update t set a=5, b=-7, c=3, d=-2 where k=10", clsNone, 0},
	{"int64 bounds", "UPDATE t SET a = 9223372036854775807, b = -9223372036854775808 WHERE k = 007", false, "update t set a=9223372036854775807, b=-9223372036854775808 where k=7", clsNone, 0},
	// Decimal literals keep their text: their type is the database's to decide.
	{"decimals", "UPDATE t SET a = 1.50 WHERE k = 1", false, `update t set a=d"1.50" where k=1`, clsNone, 0},
	{"decimal signed", "UPDATE t SET b = -0.25, c = +0.5 WHERE k = 1", false, `update t set b=d"-0.25", c=d"0.5" where k=1`, clsNone, 0},
	{"decimal leading dot", "UPDATE t SET c = .5 WHERE k = 1", false, `update t set c=d"0.5" where k=1`, clsNone, 0},
	{"decimal trailing dot", "UPDATE t SET c = 5. WHERE k = 1", false, `update t set c=d"5" where k=1`, clsNone, 0},
	{"decimal exponent", "UPDATE t SET c = 1.5e3 WHERE k = 1", false, `other`, clsNone, 0},
	{"strings", "UPDATE t SET a = 'it''s', b = '', c = 'x' WHERE k = 'key'", false, `update t set a="it's", b="", c="x" where k="key"`, clsNone, 0},
	{"null true false", "UPDATE t SET a = NULL, b = true, c = FALSE WHERE k = 1", false, "update t set a=NULL, b=TRUE, c=FALSE where k=1", clsNone, 0},
	{"unicode string", "UPDATE t SET a = 'héllo ☃' WHERE k = 1", false, `update t set a="héllo ☃" where k=1`, clsNone, 0},

	// Deltas.
	{"delta plus", "UPDATE t SET n = n + 1 WHERE k = ?", false, "update t set n+=1 where k=#1", clsQ, 1},
	{"delta minus", "UPDATE t SET n = n - ? WHERE k = ?", false, "update t set n-=#1 where k=#2", clsQ, 2},
	{"delta v+c", "UPDATE t SET n = ? + n WHERE k = ?", false, "update t set n+=#1 where k=#2", clsQ, 2},
	{"delta literal v+c", "UPDATE t SET n = -2 + n WHERE k = 1", false, `update t set n+=-2 where k=1`, clsNone, 0},
	{"decimal delta", "UPDATE t SET n = n + 2.5, m = m - .25, o = 1.5 + o WHERE k = 1", false, `update t set n+=d"2.5", m-=d"0.25", o+=d"1.5" where k=1`, clsNone, 0},
	{"decimal delta negative", "UPDATE t SET n = n + -2.5 WHERE k = 1.0", false, `update t set n+=d"-2.5" where k=d"1.0"`, clsNone, 0},
	{"delta negative literal", "UPDATE t SET n = n + -1, m = m - -2 WHERE k = 1", false, "update t set n+=-1, m-=-2 where k=1", clsNone, 0},
	{"delta qualified", "UPDATE t SET n = t.n + 1 WHERE t.k = 1", false, "update t set n+=1 where k=1", clsNone, 0},
	{"delta mixed", "UPDATE counters SET hits = hits + 1, last = ?, bytes = bytes + ? WHERE id = ?", false, "update counters set hits+=1, last=#1, bytes+=#2 where id=#3", clsQ, 3},
	{"delta case-insensitive", "UPDATE t SET N = n + 1 WHERE k = 1", false, "update t set n+=1 where k=1", clsNone, 0},

	// Aliases.
	{"alias", "UPDATE counters AS c SET n = c.n + 1 WHERE c.id = 1", false, "update counters as c set n+=1 where id=1", clsNone, 0},
	{"alias unqualified", "UPDATE counters AS c SET n = n + 1 WHERE id = ?", false, "update counters as c set n+=1 where id=#1", clsQ, 1},
	{"bare alias", "UPDATE counters c SET n = c.n + $1 WHERE c.id = $2", false, "update counters as c set n+=#1 where id=#2", clsD, 2},
	{"alias SQLite", "UPDATE counters AS c SET n = c.n + ? WHERE c.id = ?", true, "update counters as c set n+=#1 where id=#2", clsQ, 2},
	{"alias quoted", `UPDATE "counters" AS "C" SET "n" = "C"."n" + $1 WHERE "C"."id" = $2`, false, "update {counters} as {C} set {n}+=#1 where {id}=#2", clsD, 2},
	{"alias case", "UPDATE counters AS C SET n = c.n + 1 WHERE C.id = 1", false, "update counters as c set n+=1 where id=1", clsNone, 0},
	{"alias schema", "UPDATE app.counters AS c SET n = 1 + c.n WHERE c.id = 1", false, "update app.counters as c set n+=1 where id=1", clsNone, 0},
	{"alias is table name", "UPDATE counters AS counters SET n = counters.n + 1 WHERE counters.id = 1", false, "update counters as counters set n+=1 where id=1", clsNone, 0},
	{"qualified by table", `UPDATE "counters" SET "n" = "counters"."n" + $1 WHERE "counters"."id" = $2`, false, "update {counters} set {n}+=#1 where {id}=#2", clsD, 2},
	{"gorm qualified keys", `UPDATE "tallies" SET "n"=n + $1 WHERE "tallies"."a" = $2 AND "tallies"."b" = $3`, false, "update {tallies} set {n}+=#1 where {a}=#2 and {b}=#3", clsD, 3},

	// Parenthesized WHERE.
	{"where parens", "UPDATE t SET a = 1 WHERE (k = 1)", false, "update t set a=1 where k=1", clsNone, 0},
	{"where double parens", "UPDATE t SET a = $2 WHERE ((k = $1))", false, "update t set a=#2 where k=#1", clsD, 2},
	{"where parens each", "UPDATE t SET a = 1 WHERE (k1 = 1) AND (k2 = 2)", false, "update t set a=1 where k1=1 and k2=2", clsNone, 0},
	{"where parens around and", "UPDATE t SET a = 1 WHERE (k1 = 1 AND k2 = 2)", false, "update t set a=1 where k1=1 and k2=2", clsNone, 0},
	{"where parens gorm", `UPDATE "tallies" SET "n"=n + $1 WHERE (b = $2 AND a = $3) AND "c" = $4`, false, "update {tallies} set {n}+=#1 where b=#2 and a=#3 and {c}=#4", clsD, 4},
	{"where parens nested", "UPDATE t SET a = 1 WHERE ((k1 = 1) AND ((k2 = 2) AND k3 = 3));", false, "update t set a=1 where k1=1 and k2=2 and k3=3", clsNone, 0},
	{"where parens reversed", "UPDATE t SET a = 1 WHERE (1 = k)", false, "update t set a=1 where k=1", clsNone, 0},
	{"where parens deep", "UPDATE t SET a = 1 WHERE " + strings.Repeat("(", 16) + "k = 1" + strings.Repeat(")", 16), false, "update t set a=1 where k=1", clsNone, 0},

	// Casts.
	{"cast key", "UPDATE t SET a = $1 WHERE id = $2::bigint", false, "update t set a=#1 where id=#2::bigint", clsD, 2},
	{"cast delta", "UPDATE t SET n = n + $1::int WHERE id = $2::INT8", false, "update t set n+=#1::int where id=#2::int8", clsD, 2},
	{"cast spaced", "UPDATE t SET a = $1 :: text WHERE k = $2", false, "update t set a=#1::text where k=#2", clsD, 2},
	{"CAST", "UPDATE t SET n = n + CAST(? AS bigint) WHERE k = cast(? as integer)", false, "update t set n+=#1::bigint where k=#2::integer", clsQ, 2},
	{"CAST SQLite", "UPDATE t SET n = n + CAST(? AS INTEGER) WHERE k = ?", true, "update t set n+=#1::integer where k=#2", clsQ, 2},
	{"CAST negative", "UPDATE t SET n = CAST(-1 AS bigint) + n WHERE k = 1", false, "update t set n+=-1::bigint where k=1", clsNone, 0},
	{"cast literals", "UPDATE t SET a = 1::bigint, b = 'x'::text, c = 1.5::numeric, d = NULL::int WHERE k = 2::int", false, `update t set a=1::bigint, b="x"::text, c=d"1.5"::numeric, d=NULL::int where k=2::int`, clsNone, 0},
	{"cast multi-word", "UPDATE t SET a = $1::double precision, b = $2::character varying, c = $3::timestamp with time zone, d = $4::time without time zone, e = $5::char varying WHERE k = $6::timestamp", false,
		"update t set a=#1::double precision, b=#2::character varying, c=#3::timestamp with time zone, d=#4::time without time zone, e=#5::char varying where k=#6::timestamp", clsD, 6},
	{"insert cast", "INSERT INTO t (a, b) VALUES ($1::int, CAST($2 AS text))", false, "insert t (a,b) values (#1::int,#2::text)", clsD, 2},

	{"composite key", "UPDATE t SET a = ? WHERE k1 = ? AND k2 = ? AND k3 = 'x'", false, `update t set a=#1 where k1=#2 and k2=#3 and k3="x"`, clsQ, 3},
	{"key reversed", "UPDATE t SET a = ? WHERE ? = k", false, "update t set a=#1 where k=#2", clsQ, 2},
	{"key literal reversed", "UPDATE t SET a = 1 WHERE 5 = k AND k2 = 6", false, "update t set a=1 where k=5 and k2=6", clsNone, 0},

	// Names and quoting.
	{"schema table", "UPDATE app.t SET a = 1 WHERE k = 1", false, "update app.t set a=1 where k=1", clsNone, 0},
	{"double quotes", `UPDATE "My""Tbl" SET "Col" = 1 WHERE "Key" = 2`, false, `update {My"Tbl} set {Col}=1 where {Key}=2`, clsNone, 0},
	{"backticks", "UPDATE `db`.`t` SET `a``b` = 1 WHERE `k` = 2", false, "update {db}.{t} set {a`b}=1 where {k}=2", clsNone, 0},
	{"brackets", "UPDATE [dbo].[T] SET [a b] = 1 WHERE [k] = 2", false, "update {dbo}.{T} set {a b}=1 where {k}=2", clsNone, 0},
	{"quoted delta", `UPDATE t SET "N" = "N" + 1 WHERE k = 1`, false, "update t set {N}+=1 where k=1", clsNone, 0},
	{"qualified columns", "UPDATE s.t SET a = t.a + 1 WHERE t.k = 1", false, "update s.t set a+=1 where k=1", clsNone, 0},
	// PostgreSQL and SQLite refuse a qualified SET target: not buffered, so
	// the database says so.
	{"qualified SET target", "UPDATE s.t SET t.a = 1 WHERE t.k = 1", false, "other", clsNone, 0},
	{"upper-case names", "UPDATE Page_Views SET Views = 1 WHERE Page_ID = 1", false, "update page_views set views=1 where page_id=1", clsNone, 0},
	{"non-reserved keyword names", "UPDATE t SET value = 1, status = 2, key = 3 WHERE id = 1", false, "update t set value=1, status=2, key=3 where id=1", clsNone, 0},
	{"63-byte name", "UPDATE a23456789012345678901234567890123456789012345678901234567890_63 SET a = 1 WHERE k = 1", false, "update a23456789012345678901234567890123456789012345678901234567890_63 set a=1 where k=1", clsNone, 0},
	{"dollar in name", "UPDATE t$1 SET a$b = 1 WHERE k = 1", false, "update t$1 set a$b=1 where k=1", clsNone, 0},

	// Layout: case, comments, whitespace, semicolon.
	{"lower-case keywords", "update t set a = 1 where k = 1", false, "update t set a=1 where k=1", clsNone, 0},
	{"mixed-case keywords", "UpDaTe t SeT a = 1 WhErE k = 1 AnD j = 2", false, "update t set a=1 where k=1 and j=2", clsNone, 0},
	{"no spaces", "UPDATE t SET a=?,b=b+?WHERE k=?", false, "update t set a=#1, b+=#2 where k=#3", clsQ, 3},
	{"trailing semicolon", "UPDATE t SET a = 1 WHERE k = 1;", false, "update t set a=1 where k=1", clsNone, 0},
	{"semicolon and space", "UPDATE t SET a = 1 WHERE k = 1 ; \n", false, "update t set a=1 where k=1", clsNone, 0},
	{"block comments everywhere", "/*c*/UPDATE/*c*/t/*c*/SET/*c*/a/*c*/=/*c*/?/*c*/,b=b/**/+/**/1/*c*/WHERE/*c*/k/*c*/=/*c*/?/*c*/;/*c*/", false, "update t set a=#1, b+=1 where k=#2", clsQ, 2},
	{"line comments", "-- first\nUPDATE t -- table\nSET a = ? -- value\nWHERE k = ? -- key\n", false, "update t set a=#1 where k=#2", clsQ, 2},
	{"line comment at end", "UPDATE t SET a = ? WHERE k = ? -- done", false, "update t set a=#1 where k=#2", clsQ, 2},
	{"comment CRLF", "UPDATE t -- x\r\nSET a = 1 WHERE k = 1", false, "update t set a=1 where k=1", clsNone, 0},
	{"tabs and newlines", "UPDATE\tt\nSET\r\na = 1\fWHERE k = 1", false, "update t set a=1 where k=1", clsNone, 0},
	{"schema dot spaced", "UPDATE s . t SET a = 1 WHERE k = 1", false, "update s.t set a=1 where k=1", clsNone, 0},

	// INSERT.
	{"insert ?", "INSERT INTO t (a, b) VALUES (?, ?)", false, "insert t (a,b) values (#1,#2)", clsQ, 2},
	{"insert $N", "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)", false, "insert t (a,b) values (#1,#2), (#3,#4)", clsD, 4},
	{"insert named", "INSERT INTO t (a, b) VALUES (:a, :b)", true, "insert t (a,b) values (:a#1,:b#2)", clsNm, 2},
	{"insert literals", "insert into s.t(a,b,c,d,e) values(1,'x',NULL,TRUE,-15);", false, `insert s.t (a,b,c,d,e) values (1,"x",NULL,TRUE,-15)`, clsNone, 0},
	{"insert decimal", "insert into s.t(a,e) values(1,-1.5);", false, `insert s.t (a,e) values (1,d"-1.5")`, clsNone, 0},
	{"insert quoted", "INSERT INTO \"T\" (\"A\", `b`, [c]) VALUES (1, 2, 3)", false, "insert {T} ({A},{b},{c}) values (1,2,3)", clsNone, 0},
	{"insert multi-row", "INSERT INTO t (k, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')", false, `insert t (k,v) values (1,"a"), (2,"b"), (3,"c")`, clsNone, 0},
	{"insert or ignore", "INSERT OR IGNORE INTO t (k, v) VALUES (?, 0)", true, "insert t (k,v) values (#1,0) or ignore", clsQ, 1},
	{"insert or replace", "INSERT OR REPLACE INTO t (k, v) VALUES (?, 0)", true, "other", clsQ, 1},
	{"do nothing", "INSERT INTO t (k, v) VALUES ($1, 0) ON CONFLICT (k) DO NOTHING", false, "insert t (k,v) values (#1,0) do nothing k", clsD, 1},
	{"do nothing, no target", `INSERT INTO "t" ("k","v") VALUES ($1,$2) ON CONFLICT DO NOTHING`, false, "insert {t} ({k},{v}) values (#1,#2) do nothing", clsD, 2},
	{"or ignore and on conflict", "INSERT OR IGNORE INTO t (k) VALUES (1) ON CONFLICT DO NOTHING", true, "other", clsNone, 0},
	{"do nothing where", "INSERT INTO t (k) VALUES (1) ON CONFLICT (k) WHERE k > 0 DO NOTHING", false, "other", clsNone, 0},
	{"insert comments", "INSERT /*x*/ INTO t /*y*/ (a) -- z\n VALUES (?) -- end", false, "insert t (a) values (#1)", clsQ, 1},
	{"insert value column", "INSERT INTO kv (key, value) VALUES (?, ?)", false, "insert kv (key,value) values (#1,#2)", clsQ, 2},

	// Not bufferable: UPDATE.
	{"update no where", "UPDATE t SET a = 1", false, "other", clsNone, 0},
	{"where or", "UPDATE t SET a = 1 WHERE k = 1 OR k = 2", false, "other", clsNone, 0},
	{"where gt", "UPDATE t SET a = 1 WHERE k > 1", false, "other", clsNone, 0},
	{"where ge", "UPDATE t SET a = 1 WHERE k >= 1", false, "other", clsNone, 0},
	{"where ne", "UPDATE t SET a = 1 WHERE k <> 1", false, "other", clsNone, 0},
	{"where ==", "UPDATE t SET a = 1 WHERE k == 1", false, "other", clsNone, 0},
	{"where in", "UPDATE t SET a = 1 WHERE k IN (1, 2)", false, "other", clsNone, 0},
	{"where is null", "UPDATE t SET a = 1 WHERE k IS NULL", false, "other", clsNone, 0},
	{"guard", "UPDATE t SET a = 1 WHERE k = 1 AND d IS NULL", false, "update t set a=1 where k=1 and d is null", clsNone, 0},
	{"guard first, GORM's soft delete", `UPDATE "pages" SET "views"=views + $1 WHERE "pages"."deleted_at" IS NULL AND "id" = $2`, false, "update {pages} set {views}+=#1 where {id}=#2 and {deleted_at} is null", clsD, 2},
	{"guard not null, parens", "UPDATE t SET d = ? WHERE (k = ? AND d IS NOT NULL)", false, "update t set d=#1 where k=#2 and d is not null", clsQ, 2},
	{"guard is not", "UPDATE t SET a = 1 WHERE k = 1 AND d IS NOT 5", false, "other", clsNone, 0},
	{"guard is true", "UPDATE t SET a = 1 WHERE k = 1 AND d IS TRUE", false, "other", clsNone, 0},
	{"where = null", "UPDATE t SET a = 1 WHERE k = NULL", false, "other", clsNone, 0},
	{"where null = k", "UPDATE t SET a = 1 WHERE NULL = k", false, "other", clsNone, 0},
	{"where parens, SET list", "UPDATE t SET (a) = 1 WHERE (k = 1)", false, "other", clsNone, 0},
	{"where parens unbalanced", "UPDATE t SET a = 1 WHERE (k = 1", false, "other", clsNone, 0},
	{"where parens unbalanced right", "UPDATE t SET a = 1 WHERE k = 1)", false, "other", clsNone, 0},
	{"where parens or", "UPDATE t SET a = 1 WHERE (k = 1 OR k = 2)", false, "other", clsNone, 0},
	{"where parens and or", "UPDATE t SET a = 1 WHERE j = 1 AND (k = 1 OR k = 2)", false, "other", clsNone, 0},
	{"where parens not", "UPDATE t SET a = 1 WHERE NOT (k = 1)", false, "other", clsNone, 0},
	{"where parens column", "UPDATE t SET a = 1 WHERE (k) = 1", false, "other", clsNone, 0},
	{"where parens empty", "UPDATE t SET a = 1 WHERE () AND k = 1", false, "other", clsNone, 0},
	{"where parens dup key", "UPDATE t SET a = 1 WHERE (k = 1) AND (k = 1)", false, "other", clsNone, 0},
	{"where parens too deep", "UPDATE t SET a = 1 WHERE " + strings.Repeat("(", 17) + "k = 1" + strings.Repeat(")", 17), false, "other", clsNone, 0},
	{"where parens value", "UPDATE t SET a = 1 WHERE k = (1)", false, "other", clsNone, 0},
	{"where function", "UPDATE t SET a = 1 WHERE k = lower(?)", false, "other", clsQ, 1},
	{"where col = col", "UPDATE t SET a = 1 WHERE k = j", false, "other", clsNone, 0},
	{"where v = v", "UPDATE t SET a = 1 WHERE 1 = 1", false, "other", clsNone, 0},
	{"where not", "UPDATE t SET a = 1 WHERE NOT k = 1", false, "other", clsNone, 0},
	{"where and true", "UPDATE t SET a = 1 WHERE k = 1 AND TRUE", false, "other", clsNone, 0},
	{"where dup key", "UPDATE t SET a = 1 WHERE k = 1 AND k = 2", false, "other", clsNone, 0},
	{"where dup key case", `UPDATE t SET a = 1 WHERE k = 1 AND "K" = 2`, false, "other", clsNone, 0},
	{"where user", "UPDATE t SET a = 1 WHERE user = 1", false, "other", clsNone, 0},
	{"where current_user", "UPDATE t SET a = 1 WHERE k = 1 AND current_user = 'x'", false, "other", clsNone, 0},
	{"set times", "UPDATE t SET a = a * 2 WHERE k = 1", false, "other", clsNone, 0},
	{"set other column", "UPDATE t SET a = b + 1 WHERE k = 1", false, "other", clsNone, 0},
	{"set plus column", "UPDATE t SET a = a + b WHERE k = 1", false, "other", clsNone, 0},
	{"set quoted other column", `UPDATE t SET "A" = a + 1 WHERE k = 1`, false, "other", clsNone, 0},
	{"set self", "UPDATE t SET a = a WHERE k = 1", false, "other", clsNone, 0},
	{"set v - c", "UPDATE t SET a = 1 - a WHERE k = 1", false, "other", clsNone, 0},
	{"set c + v + v", "UPDATE t SET a = a + 1 + 2 WHERE k = 1", false, "other", clsNone, 0},
	{"set v + v", "UPDATE t SET a = 1 + 2 WHERE k = 1", false, "other", clsNone, 0},
	{"set null delta", "UPDATE t SET a = a + NULL WHERE k = 1", false, "other", clsNone, 0},
	{"set string delta", "UPDATE t SET a = a + '1' WHERE k = 1", false, "other", clsNone, 0},
	{"set string delta reversed", "UPDATE t SET a = '1' + a WHERE k = 1", false, "other", clsNone, 0},
	{"set concat", "UPDATE t SET a = a || 'x' WHERE k = 1", false, "other", clsNone, 0},
	{"set dup column", "UPDATE t SET a = 1, a = 2 WHERE k = 1", false, "other", clsNone, 0},
	{"set dup column case", "UPDATE t SET a = 1, A = 2 WHERE k = 1", false, "other", clsNone, 0},
	{"set key column", "UPDATE t SET k = 2 WHERE k = 1", false, "other", clsNone, 0},
	{"set key column case", `UPDATE t SET "K" = 2 WHERE k = 1`, false, "other", clsNone, 0},
	{"set default", "UPDATE t SET a = DEFAULT WHERE k = 1", false, "other", clsNone, 0},
	{"set function", "UPDATE t SET a = now() WHERE k = 1", false, "update t set a=clock:now() where k=1", clsNone, 0},
	{"set other function", "UPDATE t SET a = lower(b) WHERE k = 1", false, "other", clsNone, 0},
	{"set niladic", "UPDATE t SET a = CURRENT_TIMESTAMP WHERE k = 1", false, "update t set a=clock:CURRENT_TIMESTAMP where k=1", clsNone, 0},
	{"set other niladic", "UPDATE t SET a = CURRENT_DATE WHERE k = 1", false, "other", clsNone, 0},
	{"set subquery", "UPDATE t SET a = (SELECT 1) WHERE k = 1", false, "other", clsNone, 0},
	{"cast with modifier", "UPDATE t SET a = $1::varchar(10) WHERE k = $2", false, "other", clsD, 2},
	{"CAST with modifier", "UPDATE t SET a = CAST($1 AS numeric(10,2)) WHERE k = $2", false, "other", clsD, 2},
	{"cast to array", "UPDATE t SET a = $1::int[] WHERE k = $2", false, "other", clsD, 2},
	{"cast to quoted type", `UPDATE t SET a = $1::"int" WHERE k = $2`, false, "other", clsD, 2},
	{"cast to qualified type", "UPDATE t SET a = $1::pg_catalog.int8 WHERE k = $2", false, "other", clsD, 2},
	{"cast twice", "UPDATE t SET a = $1::text::int WHERE k = $2", false, "other", clsD, 2},
	{"cast after sign", "UPDATE t SET a = -1::int WHERE k = 1", false, "other", clsNone, 0},
	{"cast on SQLite", "UPDATE t SET a = 1::int WHERE k = 1", true, "other", clsNone, 0},
	{"cast double alone", "UPDATE t SET a = $1::double WHERE k = $2", false, "other", clsD, 2},
	{"cast time with", "UPDATE t SET a = $1::timestamp with zone WHERE k = $2", false, "other", clsD, 2},
	{"cast of column", "UPDATE t SET a = a::int + 1 WHERE k = 1", false, "other", clsNone, 0},
	{"cast of delta", "UPDATE t SET a = (a + 1)::int WHERE k = 1", false, "other", clsNone, 0},
	{"CAST unclosed", "UPDATE t SET a = CAST(1 AS int WHERE k = 1", false, "other", clsNone, 0},
	{"CAST no AS", "UPDATE t SET a = CAST(1 int) WHERE k = 1", false, "other", clsNone, 0},
	{"CAST nested", "UPDATE t SET a = CAST(CAST(1 AS int) AS int) WHERE k = 1", false, "other", clsNone, 0},
	{"cast null key", "UPDATE t SET a = 1 WHERE k = NULL::int", false, "other", clsNone, 0},
	{"set collate", "UPDATE t SET a = 'x' COLLATE nocase WHERE k = 1", false, "other", clsNone, 0},
	{"set typed literal", "UPDATE t SET a = DATE '2020-01-01' WHERE k = 1", false, "other", clsNone, 0},
	{"set negative param", "UPDATE t SET a = -? WHERE k = 1", false, "other", clsQ, 1},
	{"set double sign", "UPDATE t SET a = - -1 WHERE k = 1", false, "other", clsNone, 0},
	{"set array element", "UPDATE t SET a[1] = 5 WHERE k = 1", false, "other", clsNone, 0},
	{"set qualified other table", "UPDATE t SET u.a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"set schema-qualified column", "UPDATE s.t SET s.t.a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"set quoted table mismatch", `UPDATE "T" SET t.a = 1 WHERE k = 1`, false, "other", clsNone, 0},
	{"long column", "UPDATE t SET a23456789012345678901234567890123456789012345678901234567890_640 = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"long quoted table", `UPDATE "a23456789012345678901234567890123456789012345678901234567890_640" SET a = 1 WHERE k = 1`, false, "other", clsNone, 0},
	{"set empty quoted", `UPDATE t SET "" = 1 WHERE k = 1`, false, "other", clsNone, 0},
	{"exponent", "UPDATE t SET a = 1e5 WHERE k = 1", false, "other", clsNone, 0},
	{"exponent decimal", "UPDATE t SET a = 1.5E-3 WHERE k = 1", false, "other", clsNone, 0},
	{"hex", "UPDATE t SET a = 0x10 WHERE k = 1", false, "other", clsNone, 0},
	{"digit separators", "UPDATE t SET a = 1_000 WHERE k = 1", false, "other", clsNone, 0},
	{"huge integer", "UPDATE t SET a = 9223372036854775808 WHERE k = 1", false, "other", clsNone, 0},
	{"huge negative integer", "UPDATE t SET a = -9223372036854775809 WHERE k = 1", false, "other", clsNone, 0},
	{"huge key", "UPDATE t SET a = 1 WHERE k = 99999999999999999999", false, "other", clsNone, 0},
	{"backslash string", `UPDATE t SET a = 'x\' WHERE k = 1`, false, "other", clsNone, 0},
	{"backslash string 2", `UPDATE t SET a = 'a\nb' WHERE k = 1`, false, "other", clsNone, 0},
	{"E string", `UPDATE t SET a = E'x' WHERE k = 1`, false, "other", clsNone, 0},
	{"X string", "UPDATE t SET a = X'ff' WHERE k = 1", false, "other", clsNone, 0},
	{"B string", "UPDATE t SET a = b'01' WHERE k = 1", false, "other", clsNone, 0},
	{"N string", "UPDATE t SET a = N'x' WHERE k = 1", false, "other", clsNone, 0},
	{"U& string", "UPDATE t SET a = U&'x' WHERE k = 1", false, "other", clsNone, 0},
	{"introducer", "UPDATE t SET a = _utf8mb4'x' WHERE k = 1", false, "other", clsNone, 0},
	{"dollar string", "UPDATE t SET a = $$x$$ WHERE k = 1", false, "other", clsNone, 0},
	{"tagged dollar string", "UPDATE t SET a = $q$x$q$ WHERE k = 1", false, "other", clsNone, 0},
	{"adjacent strings", "UPDATE t SET a = 'x'\n'y' WHERE k = 1", false, "other", clsNone, 0},
	{"double-quoted value", `UPDATE t SET a = "x" WHERE k = 1`, false, "other", clsNone, 0},
	{"unterminated string", "UPDATE t SET a = 'x WHERE k = 1", false, "other", clsNone, 0},
	{"unterminated comment", "UPDATE t SET a = 1 WHERE k = 1 /* x", false, "other", clsNone, 0},
	{"nested comment", "UPDATE t SET a = 1 /* /* */ , b = 2 */ WHERE k = 1", false, "other", clsNone, 0},
	{"mysql executable comment", "UPDATE t SET a = 1 /*! , b = 2 */ WHERE k = 1", false, "other", clsNone, 0},
	{"mysql -- without space", "UPDATE t SET a = 5 --1\nWHERE k = 1", false, "other", clsNone, 0},
	{"comment lone CR", "UPDATE t SET a = 5 -- x\r, b = 2\nWHERE k = 1", false, "other", clsNone, 0},
	{"hash comment", "UPDATE t SET a = 1 WHERE k = 1 # c", false, "other", clsNone, 0},
	{"returning", "UPDATE t SET a = 1 WHERE k = 1 RETURNING a", false, "update t set a=1 where k=1 returning a", clsNone, 0},
	{"returning columns", `UPDATE t SET a = 1 WHERE k = 1 RETURNING k, "A", t.b`, false, "update t set a=1 where k=1 returning k,{A},b", clsNone, 0},
	{"now", "UPDATE t SET seen = now(), n = n + 1 WHERE k = $1", false, "update t set seen=clock:now(), n+=1 where k=#1", clsD, 1},
	{"current_timestamp", "UPDATE t SET seen = CURRENT_TIMESTAMP WHERE k = ?", true, "update t set seen=clock:CURRENT_TIMESTAMP where k=#1", clsQ, 1},
	{"transaction_timestamp", "INSERT INTO t (k, seen) VALUES ($1, transaction_timestamp())", false, "insert t (k,seen) values (#1,clock:transaction_timestamp())", clsD, 1},
	{"datetime now", "UPDATE t SET seen = datetime('now') WHERE k = ?", true, "update t set seen=clock:datetime('now') where k=#1", clsQ, 1},
	{"datetime other", "UPDATE t SET seen = datetime('now', 'localtime') WHERE k = ?", true, "other", clsQ, 1},
	{"now on sqlite", "UPDATE t SET seen = now() WHERE k = ?", true, "other", clsQ, 1},
	{"now in key", "UPDATE t SET n = 1 WHERE k = now()", false, "other", clsNone, 0},
	{"now delta", "UPDATE t SET n = n + now() WHERE k = 1", false, "other", clsNone, 0},
	{"clock_timestamp", "UPDATE t SET seen = clock_timestamp() WHERE k = 1", false, "other", clsNone, 0},
	{"returning star", "UPDATE t SET a = 1 WHERE k = 1 RETURNING *", false, "other", clsNone, 0},
	{"returning expression", "UPDATE t SET a = 1 WHERE k = 1 RETURNING a + 1", false, "other", clsNone, 0},
	{"returning alias", "UPDATE t SET a = 1 WHERE k = 1 RETURNING a AS x", false, "other", clsNone, 0},
	{"returning other table", "UPDATE t SET a = 1 WHERE k = 1 RETURNING u.a", false, "other", clsNone, 0},
	{"returning nothing", "UPDATE t SET a = 1 WHERE k = 1 RETURNING", false, "other", clsNone, 0},
	{"from", "UPDATE t SET a = u.a FROM u WHERE t.k = u.k", false, "other", clsNone, 0},
	{"limit", "UPDATE t SET a = 1 WHERE k = 1 LIMIT 1", false, "other", clsNone, 0},
	{"order by", "UPDATE t SET a = 1 WHERE k = 1 ORDER BY k", false, "other", clsNone, 0},
	{"alias, table qualifies", "UPDATE t AS x SET a = t.a + 1 WHERE k = 1", false, "other", clsNone, 0},
	{"alias, table qualifies key", "UPDATE t AS x SET a = 1 WHERE t.k = 1", false, "other", clsNone, 0},
	{"alias qualified SET target", "UPDATE t AS x SET x.a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"alias other name", "UPDATE t AS x SET a = y.a + 1 WHERE k = 1", false, "other", clsNone, 0},
	{"alias quoted mismatch", `UPDATE t AS "X" SET a = x.a + 1 WHERE k = 1`, false, "other", clsNone, 0},
	{"alias reserved", "UPDATE t AS where SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"alias AS alone", "UPDATE t AS SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"bare alias SQLite", "UPDATE t x SET a = 1 WHERE k = 1", true, "other", clsNone, 0},
	{"two aliases", "UPDATE t AS x y SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"only", "UPDATE ONLY t SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"star", "UPDATE t * SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"ignore", "UPDATE IGNORE t SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"low priority", "UPDATE LOW_PRIORITY t SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"or replace", "UPDATE OR REPLACE t SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"three-part table", "UPDATE a.b.c SET x = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"reserved table", "UPDATE user SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"join", "UPDATE t JOIN u ON t.k = u.k SET t.a = 1 WHERE t.k = 1", false, "other", clsNone, 0},
	{"two statements", "UPDATE t SET a = 1 WHERE k = 1; DELETE FROM t", false, "other", clsNone, 0},
	{"two updates", "UPDATE t SET a = 1 WHERE k = 1; UPDATE t SET a = 2 WHERE k = 2", false, "other", clsNone, 0},
	{"double semicolon", "UPDATE t SET a = 1 WHERE k = 1;;", false, "other", clsNone, 0},
	{"with", "WITH x AS (SELECT 1) UPDATE t SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"explain", "EXPLAIN UPDATE t SET a = 1 WHERE k = 1", false, "other", clsNone, 0},
	{"parenthesised set list", "UPDATE t SET (a, b) = (1, 2) WHERE k = 1", false, "other", clsNone, 0},
	{"mix ? and ?N", "UPDATE t SET a = ? WHERE k = ?1", false, "other", clsQ, 1},
	{"mix ? and $N", "UPDATE t SET a = ? WHERE k = $1", false, "other", clsQ, 1},
	{"mix ? and :name", "UPDATE t SET a = ? WHERE k = :k", false, "other", clsQ, 2},
	{"mix $N and :name", "UPDATE t SET a = $1 WHERE k = :k", false, "other", clsD, 2},
	{"mix ?N and :name sqlite", "UPDATE t SET a = ?1 WHERE k = :k", true, "other", clsQ, 2},
	{"same name two prefixes", "UPDATE t SET a = :a WHERE k = @a", false, "other", clsNm, 2},
	{"?0", "UPDATE t SET a = ?0 WHERE k = 1", false, "other", clsNone, 0},
	{"$0", "UPDATE t SET a = $0 WHERE k = 1", false, "other", clsNone, 0},
	{"?N too large sqlite", "UPDATE t SET a = ?40000 WHERE k = 1", true, "other", clsNone, 0},
	{"?N too large", "UPDATE t SET a = ?70000 WHERE k = 1", false, "other", clsNone, 0},
	{"$1 trailing junk", "UPDATE t SET a = $1a WHERE k = 1", false, "other", clsNone, 0},
	{"mysql system var", "UPDATE t SET a = @@x WHERE k = 1", false, "other", clsNone, 0},
	{"invalid utf8", "UPDATE t SET a = '\xff' WHERE k = 1", false, "other", clsNone, 0},
	{"nul byte", "UPDATE t SET a = 'a\x00' WHERE k = 1", false, "other", clsNone, 0},
	{"vertical tab", "UPDATE t SET a = 1\vWHERE k = 1", false, "other", clsNone, 0},
	{"long s keyword", "UPDATE t ſET a = 1 WHERE k = 1", false, "other", clsNone, 0},

	// Not bufferable: INSERT.
	{"insert no columns", "INSERT INTO t VALUES (1)", false, "other", clsNone, 0},
	{"insert select", "INSERT INTO t (a) SELECT 1", false, "other", clsNone, 0},
	{"insert default values", "INSERT INTO t DEFAULT VALUES", false, "other", clsNone, 0},
	{"insert default", "INSERT INTO t (a, b) VALUES (1, DEFAULT)", false, "other", clsNone, 0},
	{"insert function", "INSERT INTO t (a) VALUES (now())", false, "insert t (a) values (clock:now())", clsNone, 0},
	{"insert other function", "INSERT INTO t (a) VALUES (random())", false, "other", clsNone, 0},
	{"insert cast modifier", "INSERT INTO t (a) VALUES ($1::varchar(3))", false, "other", clsD, 1},
	{"insert or replace", "INSERT OR REPLACE INTO t (a) VALUES (1)", false, "other", clsNone, 0},
	{"insert or ignore, SQLite's", "INSERT OR IGNORE INTO t (a) VALUES (1)", false, "insert t (a) values (1) or ignore", clsNone, 0},
	{"replace", "REPLACE INTO t (a) VALUES (1)", false, "other", clsNone, 0},
	{"insert ignore, MySQL's", "INSERT IGNORE INTO t (a) VALUES (1), (2)", false, "insert t (a) values (1), (2) ignore", clsNone, 0},
	{"insert ignore without into", "INSERT IGNORE t (a) VALUES (1)", false, "other", clsNone, 0},
	{"insert low_priority ignore", "INSERT LOW_PRIORITY IGNORE INTO t (a) VALUES (1)", false, "other", clsNone, 0},
	{"insert without into", "INSERT t (a) VALUES (1)", false, "other", clsNone, 0},
	{"on conflict do nothing", "INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING", false, "insert t (a) values (1) do nothing", clsNone, 0},
	{"on duplicate key, not understood", "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a * 2", false, "other", clsNone, 0},
	{"insert returning", "INSERT INTO t (a) VALUES (1) RETURNING id", false, "insert t (a) values (1) returning id", clsNone, 0},
	{"insert returning gorm", `INSERT INTO "t" ("v","id") VALUES ($1,$2) RETURNING "id"`, false, "insert {t} ({v},{id}) values (#1,#2) returning {id}", clsD, 2},
	{"insert value keyword", "INSERT INTO t (a) VALUE (1)", false, "other", clsNone, 0},
	{"insert short row", "INSERT INTO t (a, b) VALUES (1)", false, "other", clsNone, 0},
	{"insert long row", "INSERT INTO t (a) VALUES (1, 2)", false, "other", clsNone, 0},
	{"insert ragged rows", "INSERT INTO t (a, b) VALUES (1, 2), (3)", false, "other", clsNone, 0},
	{"insert dup column", "INSERT INTO t (a, a) VALUES (1, 2)", false, "other", clsNone, 0},
	{"insert dup column case", `INSERT INTO t (a, "A") VALUES (1, 2)`, false, "other", clsNone, 0},
	{"insert empty columns", "INSERT INTO t () VALUES ()", false, "other", clsNone, 0},
	{"insert qualified column", "INSERT INTO t (t.a) VALUES (1)", false, "other", clsNone, 0},
	{"insert alias", "INSERT INTO t AS x (a) VALUES (1)", false, "other", clsNone, 0},
	{"insert arithmetic", "INSERT INTO t (a) VALUES (1 + 2)", false, "other", clsNone, 0},
	{"insert trailing comma", "INSERT INTO t (a) VALUES (1),", false, "other", clsNone, 0},
	{"insert overriding", "INSERT INTO t (a) OVERRIDING SYSTEM VALUE VALUES (1)", false, "other", clsNone, 0},
	{"insert two statements", "INSERT INTO t (a) VALUES (1); SELECT 1", false, "other", clsNone, 0},
	{"insert exponent", "INSERT INTO t (a) VALUES (1e3)", false, "other", clsNone, 0},
	{"insert backslash", `INSERT INTO t (a) VALUES ('\')`, false, "other", clsNone, 0},
	{"insert mix ?", "INSERT INTO t (a, b) VALUES (?, ?2)", false, "other", clsQ, 2},

	// Other statements.
	{"select", "SELECT * FROM t WHERE k = ?", false, "other", clsQ, 1},
	{"delete", "DELETE FROM t WHERE k = $1", false, "other", clsD, 1},
	{"empty", "", false, "other", clsNone, 0},
	{"only comment", "-- nothing\n", false, "other", clsNone, 0},
	{"semicolon", ";", false, "other", clsNone, 0},
}

func TestClassifyShapes(t *testing.T) {
	tests := shapeTests
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Classify(tc.query, tc.sqlite)
			if got := describeClassified(c); got != tc.want {
				t.Errorf("classify(%q, %v)\n got  %s\n want %s", tc.query, tc.sqlite, got, tc.want)
			}
			if c.Style != tc.style || c.NumParams != tc.n {
				t.Errorf("classify(%q, %v): style %d numParams %d, want %d %d", tc.query, tc.sqlite, c.Style, c.NumParams, tc.style, tc.n)
			}
			if c.Kind == Other && (c.Schema != nil || c.Table != (Ident{}) || c.Sets != nil || c.Where != nil || c.Cols != nil || c.Rows != nil) {
				t.Errorf("classify(%q): Other carries shape fields: %+v", tc.query, c)
			}
		})
	}
}

// TestClassifyIdentRaw checks norm, raw and quoted of identifiers, schema
// included: flush SQL is written from raw.
func TestClassifyIdentRaw(t *testing.T) {
	// "t"."x" is qualified by a table other than "My""T".
	c := Classify(`UPDATE "Sch"."My""T" SET `+"`Ab`"+` = 1 WHERE "t"."x" = 3`, false)
	if c.Kind != Other {
		t.Errorf("column of another table accepted: %s", describeClassified(c))
	}
	c = Classify(`UPDATE "Sch"."My""T" SET `+"`Ab`"+` = 1, Cd = Cd + 1 WHERE [K 1] = 2 AND "My""T"."x" = 3`, false)
	if c.Kind != Update {
		t.Fatalf("not an update: %s", describeClassified(c))
	}
	if c.Schema == nil || *c.Schema != (Ident{Norm: "Sch", Raw: `"Sch"`, Quoted: true}) {
		t.Errorf("schema = %+v", c.Schema)
	}
	if c.Table != (Ident{Norm: `My"T`, Raw: `"My""T"`, Quoted: true}) {
		t.Errorf("table = %+v", c.Table)
	}
	wantSets := []Ident{{Norm: "Ab", Raw: "`Ab`", Quoted: true}, {Norm: "cd", Raw: "Cd"}}
	for i, s := range c.Sets {
		if s.Col != wantSets[i] {
			t.Errorf("sets[%d].col = %+v, want %+v", i, s.Col, wantSets[i])
		}
	}
	wantWhere := []Ident{{Norm: "K 1", Raw: "[K 1]", Quoted: true}, {Norm: "x", Raw: `"x"`, Quoted: true}}
	for i, w := range c.Where {
		if w.Col != wantWhere[i] {
			t.Errorf("where[%d].col = %+v, want %+v", i, w.Col, wantWhere[i])
		}
	}
	c = Classify("INSERT INTO Main.PV (ID, \"Views\") VALUES (1, 2)", false)
	if c.Schema == nil || *c.Schema != (Ident{Norm: "main", Raw: "Main"}) || c.Table != (Ident{Norm: "pv", Raw: "PV"}) {
		t.Errorf("insert table = %+v %+v", c.Schema, c.Table)
	}
	if !slices.Equal(c.Cols, []Ident{{Norm: "id", Raw: "ID"}, {Norm: "Views", Raw: `"Views"`, Quoted: true}}) {
		t.Errorf("insert cols = %+v", c.Cols)
	}
}

// TestClassifyUnicodeFold: unquoted names fold ASCII only, like PostgreSQL,
// SQLite and the rules file.
func TestClassifyUnicodeFold(t *testing.T) {
	c := Classify("UPDATE Ärger SET Ö = 1 WHERE K = 1", false)
	if c.Kind != Update || c.Table.Norm != "Ärger" || c.Sets[0].Col.Norm != "Ö" {
		t.Fatalf("got %s", describeClassified(c))
	}
	// names hold both foldings, so a barrier finds the table whichever way
	// its rule name was lower-cased.
	for _, n := range []string{"Ärger", "ärger", "Ö", "ö", "k"} {
		if !slices.Contains(c.Names, n) {
			t.Errorf("names %q lack %q", c.Names, n)
		}
	}
}

func TestClassifySQLiteParams(t *testing.T) {
	tests := []struct {
		query  string
		sqlite bool
		want   string
		n      int
	}{
		// $N: PostgreSQL numbers vs SQLite names numbered by first appearance.
		{"UPDATE t SET a = $2 WHERE k = $1", false, "update t set a=#2 where k=#1", 2},
		{"UPDATE t SET a = $2 WHERE k = $1", true, "update t set a=:2#1 where k=:1#2", 2},
		{"UPDATE t SET a = $1, b = $1 + b WHERE k = $3", true, "update t set a=:1#1, b+=:1#1 where k=:3#2", 2},
		// :a ... :b ... :a: the second :a reuses the first's position.
		{"UPDATE t SET a = :a, b = :b WHERE k = :a", false, "update t set a=:a#1, b=:b#2 where k=:a#1", 2},
		{"UPDATE t SET a = :a, b = :b WHERE k = :a", true, "update t set a=:a#1, b=:b#2 where k=:a#1", 2},
		{"INSERT INTO t (x, y, z) VALUES (:a, :b, :a)", false, "insert t (x,y,z) values (:a#1,:b#2,:a#1)", 2},
		{"INSERT INTO t (x, y, z) VALUES (:a, :b, :a)", true, "insert t (x,y,z) values (:a#1,:b#2,:a#1)", 2},
		{"INSERT INTO t (x, y, z) VALUES ($a, $b, $a)", true, "insert t (x,y,z) values (:a#1,:b#2,:a#1)", 2},
		{"INSERT INTO t (x, y) VALUES (@b, @a)", true, "insert t (x,y) values (:b#1,:a#2)", 2},
		// ?NNN counts as used: a later name takes the next position (mixing
		// is not buffered, but the numbering is SQLite's).
		{"SELECT ?5, :a", true, "other", 6},
		{"SELECT :a, ?1, :b", true, "other", 2},
		{"SELECT ?, ?, ?", false, "other", 3},
		{"SELECT ?3, ?", true, "other", 4},
		// $ in PostgreSQL mode: dollar quotes are not parameters.
		{"SELECT $x$ $1 $x$, $2", false, "other", 2},
		{"SELECT $x$ $1 $x$, $2", true, "other", 3},
	}
	for _, tc := range tests {
		c := Classify(tc.query, tc.sqlite)
		if got := describeClassified(c); got != tc.want {
			t.Errorf("classify(%q, %v)\n got  %s\n want %s", tc.query, tc.sqlite, got, tc.want)
		}
		if c.NumParams != tc.n {
			t.Errorf("classify(%q, %v): numParams %d, want %d", tc.query, tc.sqlite, c.NumParams, tc.n)
		}
	}
}

func TestClassifyNames(t *testing.T) {
	tests := []struct {
		query  string
		sqlite bool
		want   []string // must all be present
		absent []string // must not be present
	}{
		{"SELECT a, b FROM Page_Views WHERE c = 'orders' -- users\n", false,
			[]string{"select", "a", "b", "from", "page_views", "where", "c"}, []string{"orders", "users"}},
		{`SELECT * FROM "Sch"."Tbl", x.y.z`, false, []string{"sch", "tbl", "x", "y", "z"}, []string{`"sch"`, "Sch"}},
		{"SELECT * FROM `My Table` JOIN [Other T] ON 1", false, []string{"my table", "other t", "other", "t"}, nil},
		{`SELECT "a""b" FROM t /* hidden */`, false, []string{`a"b`, "t"}, []string{"hidden"}},
		{"UPDATE t SET a = 1 WHERE k = 1", false, []string{"update", "t", "set", "a", "where", "k"}, nil},
		// Dialect-dependent or code-bearing text: its words count.
		{"DO $$BEGIN UPDATE page_views SET n = 1; END$$", false, []string{"do", "page_views", "begin", "n"}, nil},
		{"SELECT $f$ SELECT * FROM hidden_tbl $f$", false, []string{"hidden_tbl"}, nil},
		{`SELECT 'a\'' , page_views, ''`, false, []string{"page_views"}, nil},
		{"SELECT 1 /* /* */ FROM page_views */", false, []string{"page_views"}, nil},
		{"SELECT /*! * FROM page_views */ 1", false, []string{"page_views"}, nil},
		{"SELECT arr[(SELECT max(id) FROM page_views)] FROM t", false, []string{"page_views", "t"}, nil},
		{"SELECT 1 --x FROM page_views", false, []string{"page_views"}, nil},
		// Parameters are not names; dollar-quoted bodies are not when
		// $ is SQLite's parameter prefix.
		{"SELECT :a, @b, $c FROM t", true, []string{"t"}, []string{"a", "b", "c"}},
		{"SELECT :a, @b FROM t", false, []string{"t"}, []string{"a", "b"}},
		{"SELECT 'x' AS y, 1.5e3, 0x1f FROM t", false, []string{"y", "t"}, []string{"x", "e3", "x1f"}},
	}
	for _, tc := range tests {
		c := Classify(tc.query, tc.sqlite)
		for _, w := range tc.want {
			if !slices.Contains(c.Names, w) {
				t.Errorf("classify(%q).names = %q, lacks %q", tc.query, c.Names, w)
			}
		}
		for _, w := range tc.absent {
			if slices.Contains(c.Names, w) {
				t.Errorf("classify(%q).names = %q, has %q", tc.query, c.Names, w)
			}
		}
		seen := map[string]bool{}
		for _, n := range c.Names {
			if seen[n] {
				t.Errorf("classify(%q).names = %q: %q twice", tc.query, c.Names, n)
			}
			seen[n] = true
		}
	}
	// Many names: de-duplication still holds past the linear-search size.
	var b strings.Builder
	b.WriteString("SELECT ")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "c%d, C%d, ", i%40, i%40)
	}
	b.WriteString("1 FROM t")
	c := Classify(b.String(), false)
	if len(c.Names) != 40+3 { // c0..c39, select, from, t
		t.Errorf("many names: got %d names %q", len(c.Names), c.Names)
	}
}

// TestClassifyManyColumns: past the linear-search size, repeated columns
// are still found, with the same case folding.
func TestClassifyManyColumns(t *testing.T) {
	cols := make([]string, 40)
	vals := make([]string, 41)
	sets := make([]string, 40)
	for i := range vals {
		vals[i] = "?"
	}
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d", i)
		sets[i] = cols[i] + " = ?"
	}
	ins := func(cs []string) string {
		return "INSERT INTO t (" + strings.Join(cs, ", ") + ") VALUES (" + strings.Join(vals[:len(cs)], ", ") + ")"
	}
	if c := Classify(ins(cols), false); c.Kind != Insert || len(c.Cols) != 40 || c.NumParams != 40 {
		t.Fatalf("40 columns: %s", describeClassified(c))
	}
	for _, dup := range []string{"c3", "C3", `"C3"`, "[c38]"} {
		cs := append(slices.Clone(cols[:39]), dup)
		if c := Classify(ins(cs), false); c.Kind != Other {
			t.Errorf("insert repeating %s: %s", dup, describeClassified(c))
		}
	}
	// Kelvin sign K folds with k: a possible duplicate, so not bufferable.
	cs := append(slices.Clone(cols[:39]), "\"\u212a\"", "k")
	if c := Classify(ins(cs), false); c.Kind != Other {
		t.Errorf("insert with K and k: %s", describeClassified(c))
	}
	upd := "UPDATE t SET " + strings.Join(sets, ", ") + " WHERE k = ?"
	if c := Classify(upd, false); c.Kind != Update || len(c.Sets) != 40 {
		t.Fatalf("40 sets: %s", describeClassified(c))
	}
	for _, key := range []string{"c0", "C17", "c39"} {
		if c := Classify(upd+" AND "+key+" = ?", false); c.Kind != Other {
			t.Errorf("update setting key %s: %s", key, describeClassified(c))
		}
	}
	if c := Classify(upd+" AND k = ?", false); c.Kind != Other {
		t.Errorf("update with key twice: %s", describeClassified(c))
	}
}

func TestKeywordTable(t *testing.T) {
	for w, kw := range keywords {
		if len(w) < 2 || len(w) > maxKeywordLen || w != kw.word || strings.Trim(w, "abcdefghijklmnopqrstuvwxyz_") != "" {
			t.Errorf("keyword %q: %+v", w, kw)
		}
		if got, ok := lookupKeyword(strings.ToUpper(w)); !ok || got != kw {
			t.Errorf("lookupKeyword(%q) = %+v, %v", strings.ToUpper(w), got, ok)
		}
	}
}

func TestClassifyTx(t *testing.T) {
	tests := []struct {
		query         string
		begins, ends  bool
		bufferableToo bool
	}{
		{"BEGIN", true, false, false},
		{"begin transaction;", true, false, false},
		{"BEGIN IMMEDIATE", true, false, false},
		{"/* x */ START TRANSACTION READ ONLY", true, false, false},
		{"START SLAVE", false, false, false},
		{"SAVEPOINT sp1", true, false, false},
		{"COMMIT", false, true, false},
		{"commit work", false, true, false},
		{"END", false, true, false},
		{"END TRANSACTION", false, true, false},
		{"ROLLBACK", false, true, false},
		{"ROLLBACK WORK", false, true, false},
		{"ROLLBACK TO sp1", false, false, false},
		{"ROLLBACK TO SAVEPOINT sp1", false, false, false},
		{"ROLLBACK TRANSACTION TO SAVEPOINT sp1", false, false, false},
		{"rollback work to sp1", false, false, false},
		{"ABORT", false, true, false},
		{"RELEASE SAVEPOINT sp1", false, false, false},
		{"COMMIT AND CHAIN", true, false, false},
		{"ROLLBACK AND NO CHAIN", false, true, false},
		{"SELECT 1", false, false, false},
		{`"begin"`, false, false, false},
		{"-- BEGIN\nSELECT 1", false, false, false},
		{"UPDATE t SET a = 1 WHERE k = 1", false, false, true},
		{"COMMIT;", false, true, false},
		{"PREPARE TRANSACTION 'x'", false, true, false},
		{"PREPARE stmt AS SELECT 1", false, false, false},
		// Several statements: the last one that matters decides; END is
		// ignored there (it closes trigger and procedure bodies).
		{"BEGIN; UPDATE t SET a = 1 WHERE k = 1; COMMIT", false, true, false},
		{"COMMIT; BEGIN", true, false, false},
		{"COMMIT; SELECT 1", false, true, false},
		{"SELECT 1; BEGIN; SELECT 2", true, false, false},
		{"BEGIN; SELECT 1; END", true, false, false},
		{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = n + 1 WHERE k = 1; END;", false, false, false},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", false, false, false},
		{"COMMIT AND CHAIN; SELECT 1", true, false, false},
		{"SELECT ';'; COMMIT", false, true, false},
		{"SELECT 1 -- ; COMMIT", false, false, false},
	}
	for _, tc := range tests {
		c := Classify(tc.query, false)
		if c.BeginsTx != tc.begins || c.EndsTx != tc.ends {
			t.Errorf("classify(%q): beginsTx %v endsTx %v, want %v %v", tc.query, c.BeginsTx, c.EndsTx, tc.begins, tc.ends)
		}
		if (c.Kind != Other) != tc.bufferableToo {
			t.Errorf("classify(%q): kind %d", tc.query, c.Kind)
		}
	}
}

// TestClassifyDeterministic: results for the same text are equal and independent
// calls do not share mutable state.
func TestClassifyDeterministic(t *testing.T) {
	q := "UPDATE t SET a = :a, b = b + 1.5 WHERE k = :k"
	a, b := Classify(q, true), Classify(q, true)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two classifications differ:\n%+v\n%+v", a, b)
	}
	if a == b {
		t.Fatal("classify returned a shared pointer")
	}
}

// TestLexerProgress: the lexer always ends, each token non-empty but EOF.
func TestLexerProgress(t *testing.T) {
	for _, q := range []string{"", "'", "\"", "`", "[", "/*", "/* /*", "--", "$", "$$", "$a", "$a$", "?", "?9", ":", "::", "@", "@@", "1e", "1.", ".", "E'", "E'\\", "\xff", "\x00"} {
		for _, sqlite := range []bool{false, true} {
			lx := lexer{s: q, sqlite: sqlite}
			for n := 0; ; n++ {
				tok := lx.next()
				if tok.kind == tkEOF {
					if tok.start != len(q) {
						t.Errorf("%q: EOF at %d", q, tok.start)
					}
					break
				}
				if tok.end <= tok.start || n > len(q) {
					t.Fatalf("%q: token %+v makes no progress", q, tok)
				}
			}
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	b.Run("update", func(b *testing.B) {
		q := "UPDATE page_views SET views = views + $1, last_seen = $2 WHERE page_id = $3"
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if Classify(q, false).Kind != Update {
				b.Fatal("not bufferable")
			}
		}
	})
	b.Run("update-shapes", func(b *testing.B) {
		q := `UPDATE "page_views" AS v SET "views" = v."views" + $1::bigint, last_seen = 1.5 WHERE (v."page_id" = $2)`
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if Classify(q, false).Kind != Update {
				b.Fatal("not bufferable")
			}
		}
	})
	b.Run("insert", func(b *testing.B) {
		q := "INSERT INTO events (id, kind, payload) VALUES (?, 'click', ?)"
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if Classify(q, true).Kind != Insert {
				b.Fatal("not bufferable")
			}
		}
	})
	b.Run("update-refused", func(b *testing.B) {
		q := "UPDATE page_views SET views = views + 1 WHERE page_id = $1 OR page_id = $2"
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if Classify(q, false).Kind != Other {
				b.Fatal("bufferable")
			}
		}
	})
	b.Run("select", func(b *testing.B) {
		q := "SELECT p.id, p.title, v.views FROM pages p JOIN page_views v ON v.page_id = p.id WHERE p.id = $1 /* app */"
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			Classify(q, false)
		}
	})
}

func TestClassifySchemaAndSession(t *testing.T) {
	for _, c := range []struct {
		q       string
		ddl     bool
		session []string
	}{
		{"ALTER TABLE t ALTER COLUMN v TYPE double precision", true, nil},
		{"create view v as select * from t", true, nil},
		{"DROP TABLE t; SELECT 1", true, nil},
		{"SELECT 1; CREATE INDEX i ON t (a)", true, nil},
		{"SET TIME ZONE 'Asia/Tokyo'", false, []string{"time"}},
		{"SET timezone = 'UTC'", false, []string{"timezone"}},
		{"SET SESSION search_path TO app", false, []string{"search_path"}},
		{"set application_name = 'x'", false, []string{"application_name"}},
		{"SET LOCAL statement_timeout = 5", false, nil},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", false, nil},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", false, []string{"*"}},
		{"RESET ALL", false, []string{"*"}},
		{"RESET datestyle", false, []string{"datestyle"}},
		{"DISCARD ALL", false, []string{"*"}},
		{"PRAGMA busy_timeout = 5000", false, []string{"busy_timeout"}},
		{"SELECT set_config('TimeZone', 'UTC', false)", false, []string{"timezone"}},
		{"SELECT set_config($1, 'UTC', false)", false, []string{"*"}},
		{"SELECT 'SET x = 1', set_configx FROM t", false, nil},
		{"UPDATE t SET n = n + 1 WHERE id = 1", false, nil},
		{"/* SET x */ SELECT 1", false, nil},
	} {
		st := Classify(c.q, false)
		if st.DDL != c.ddl || !slices.Equal(st.Session, c.session) {
			t.Errorf("%q: DDL %v Session %q, want %v %q", c.q, st.DDL, st.Session, c.ddl, c.session)
		}
	}
}

func TestClassifyQualifiedSetTarget(t *testing.T) {
	for _, q := range []string{
		"UPDATE counters SET counters.n = 1 WHERE id = 1",
		"UPDATE counters SET counters.n = counters.n + 1 WHERE id = 1",
	} {
		if st := Classify(q, false); st.Kind != Other {
			t.Errorf("%q: Kind %v, want Other (both databases refuse a qualified SET target)", q, st.Kind)
		}
	}
	if st := Classify("UPDATE counters SET n = counters.n + 1 WHERE counters.id = 1", false); st.Kind != Update {
		t.Errorf("a qualified column on the right and in WHERE: Kind %v, want Update", st.Kind)
	}
}

// TestWhyNot: the reason given for each kind of refusal.
func TestWhyNot(t *testing.T) {
	for _, c := range []struct {
		q, why string
		sqlite bool
	}{
		{q: "UPDATE t SET n = n + 1 WHERE id = 1 OR id = 2", why: "WHERE has OR"},
		{q: "UPDATE t SET n = n + 1 WHERE (id = 1 OR id = 2)", why: "WHERE has OR"},
		{q: "UPDATE t SET n = clock_timestamp() WHERE id = $1", why: "SET n = ...: a call of clock_timestamp()"},
		{q: "UPDATE t SET n = 1", why: "UPDATE without WHERE (every row)"},
		{q: "UPDATE t SET n = 1 WHERE id > 3", why: `WHERE has a condition other than column = value or column IS [NOT] NULL: ">"`},
		{q: "UPDATE t SET n = 1 WHERE id IN (1, 2)", why: "WHERE has IN (several keys in one statement)"},
		{q: "UPDATE t SET n = n * 2 WHERE id = 1", why: `SET n = n ...: only + or - a value: "*"`},
		{q: "UPDATE t SET n = m + 1 WHERE id = 1", why: "SET n = ...: column m"},
		{q: "UPDATE t SET n = 1 WHERE id = 1 RETURNING *", why: "RETURNING holds more than column names"},
		{q: "UPDATE t SET n = 1 FROM u WHERE t.id = u.id", why: "UPDATE ... FROM (a join)"},
		{q: "UPDATE t SET n = 1 WHERE id = (SELECT 1)", why: "WHERE id = ...: a subquery"},
		{q: "UPDATE t SET t.n = 1 WHERE id = 1", why: "a qualified SET target (t.c = ...), which the databases refuse"},
		{q: "UPDATE t SET n = 1 WHERE id = 1; DELETE FROM t", why: "several statements in one text"},
		{q: "UPDATE t SET n = 1 WHERE id = NULL", why: "WHERE id = NULL (it matches no row)"},
		{q: "UPDATE t SET n = 1 WHERE id = 1 AND id = 2", why: "WHERE names column id twice, or a column the statement sets"},
		{q: "UPDATE t SET n = 1, n = 2 WHERE id = 1", why: "SET names column n twice"},
		{q: "UPDATE t SET n = 1 WHERE other.id = 1", why: "WHERE: the qualified name other.id"},
		{q: "INSERT INTO t SELECT * FROM u", why: "INSERT ... SELECT"},
		{q: "INSERT INTO t VALUES (1)", why: "INSERT without a column list"},
		{q: "INSERT INTO t DEFAULT VALUES", why: "INSERT ... DEFAULT VALUES"},
		{q: "INSERT INTO t (a) VALUES (random())", why: "VALUES holds an expression, not a placeholder or literal: a call of random()"},
		{q: "INSERT INTO t (a, b) VALUES (1)", why: "a VALUES row has fewer values than there are columns"},
		{q: "INSERT INTO t (a) VALUES (1, 2)", why: "a VALUES row has more values than there are columns"},
		{q: "INSERT OR REPLACE INTO t (a) VALUES (1)", why: "", sqlite: true},
		{q: "INSERT OR ABORT INTO t (a) VALUES (1)", why: "INSERT OR ABORT (only OR IGNORE and SQLite's OR REPLACE are buffered)", sqlite: true},
		{q: "REPLACE INTO t (a) SELECT 1", why: "INSERT ... SELECT", sqlite: true},
		{q: "REPLACE INTO t (a) VALUES (1) RETURNING a", why: "REPLACE with RETURNING", sqlite: true},
		{q: "REPLACE INTO t (a) VALUES (1)", why: "", sqlite: false},
		{q: "INSERT INTO t (a) VALUES (1) ON CONFLICT ON CONSTRAINT x DO NOTHING", why: "ON CONFLICT ON CONSTRAINT (a constraint's name, not the key's columns)"},
		{q: "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) WHERE a > 0 DO NOTHING", why: "the ON CONFLICT target has a WHERE (a partial index)"},
		{q: "INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET b = b * 2", why: "DO UPDATE SET b = ...: not v, EXCLUDED.c, t.c + v or t.c + EXCLUDED.c"},
		{q: "INSERT INTO t (a, b) VALUES (1, 2) ON CONFLICT (a) DO UPDATE SET b = 1 WHERE t.b < 5", why: "DO UPDATE ... WHERE (a condition the database decides)"},
		{q: "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = a * 2", why: `ON DUPLICATE KEY UPDATE a = ...: not v, VALUES(c), c + v or c + VALUES(c)`},
		{q: "INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY a = 2", why: `expected ON DUPLICATE KEY UPDATE: "a"`},
		{q: "INSERT INTO t (a) VALUES (1) RETURNING id + 1", why: "RETURNING holds more than column names"},
		{q: "INSERT INTO t (a, b) VALUES ($1, ?)", why: "it mixes placeholder syntaxes (? and $1, or positional and named)"},
		{q: "UPDATE t SET n = 'a\\'b' WHERE id = 1", why: "part of the text reads differently in PostgreSQL, MySQL and SQLite"},
		{q: "UPDATE t SET n = 1 WHERE id = 1", why: ""},
		{q: "SELECT 1", why: ""},
		{q: "DELETE FROM t WHERE id = 1", why: ""},
	} {
		if got := WhyNot(c.q, c.sqlite); !strings.HasPrefix(got, c.why) || c.why == "" && got != "" {
			t.Errorf("WhyNot(%q) = %q, want %q", c.q, got, c.why)
		}
	}
}
