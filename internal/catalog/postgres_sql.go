package catalog

// The PostgreSQL catalog queries. Each reads one kind of fact for every
// table at once; $1 is a text array literal (names for pgResolveSQL, oids for
// the others) cast on the server, so any driver can bind it as a string.

// pgResolveSQL resolves names as a statement would (to_regclass: quoting,
// case folding, search_path), keeping plain and partitioned tables only.
// Names are checked by pgNameOK first: to_regclass raises on bad syntax.
const pgResolveSQL = `SELECT n.i::int8, c.oid::int8, ns.nspname::text, c.relname::text
FROM unnest($1::text::text[]) WITH ORDINALITY AS n(name, i)
JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(n.name)
JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')`

// pgColumnsSQL reads the columns. d walks each column's domains down to the
// base type (the deepest level wins in b), carrying the type modifier (a
// domain over numeric(12,2) holds it in typtypmod), NOT NULL and the
// outermost domain default. The default's node tree names every function
// it calls (:funcid, :opfuncid): nextval makes a sequence default, any other
// function that is not immutable a volatile one, as does an SQL value
// function (CURRENT_TIMESTAMP, CURRENT_USER...) or an I/O coercion.
const pgColumnsSQL = `WITH RECURSIVE d(rel, num, typ, typmod, nn, def, defbin, depth) AS (
	SELECT a.attrelid, a.attnum, a.atttypid, a.atttypmod, a.attnotnull, NULL::text COLLATE "C", NULL::text COLLATE "C", 0
	FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = ANY ($1::text::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT d.rel, d.num, t.typbasetype,
		CASE WHEN d.typmod >= 0 THEN d.typmod ELSE t.typtypmod END,
		d.nn OR t.typnotnull,
		coalesce(d.def, t.typdefault), coalesce(d.defbin, t.typdefaultbin::text), d.depth + 1
	FROM d JOIN pg_catalog.pg_type t ON t.oid = d.typ
	WHERE t.typtype = 'd'
), b AS (
	SELECT DISTINCT ON (rel, num) * FROM d ORDER BY rel, num, depth DESC
)
SELECT b.rel::int8, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
	bt.typname::text, btn.nspname::text, b.typmod, b.nn,
	coalesce(co.collname::text, ''), coalesce(NOT co.collisdeterministic, false),
	a.attgenerated <> '', a.attidentity <> '',
	coalesce(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), b.def, ''),
	a.attidentity <> '' OR a.attgenerated = '' AND (coalesce(f.seq, false)
		OR coalesce(ad.adbin::text, b.defbin, '') LIKE '%{NEXTVALUEEXPR %'),
	a.attgenerated = '' AND (coalesce(f.vol, false)
		OR coalesce(ad.adbin::text, b.defbin, '') ~ '\{(SQLVALUEFUNCTION|COERCEVIAIO) ')
FROM b
JOIN pg_catalog.pg_attribute a ON a.attrelid = b.rel AND a.attnum = b.num
JOIN pg_catalog.pg_type bt ON bt.oid = b.typ
JOIN pg_catalog.pg_namespace btn ON btn.oid = bt.typnamespace
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN LATERAL (
	SELECT bool_or(p.proname = 'nextval' AND pn.nspname = 'pg_catalog') AS seq,
		bool_or(p.provolatile <> 'i' AND NOT (p.proname = 'nextval' AND pn.nspname = 'pg_catalog')) AS vol
	FROM regexp_matches(coalesce(ad.adbin::text, b.defbin), ':(?:op)?funcid (\d+)', 'g') AS m
	JOIN pg_catalog.pg_proc p ON p.oid = m[1]::oid
	JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
) f ON true
ORDER BY b.rel, b.num`

// pgIndexesSQL reads every unique index, one row per key part (INCLUDE
// columns excluded), attname "" for an expression part. NULLS NOT DISTINCT
// (PostgreSQL 15) is read through to_jsonb so older servers answer false.
const pgIndexesSQL = `SELECT i.indrelid::int8, ic.relname::text, i.indisprimary,
	i.indpred IS NOT NULL, i.indexprs IS NOT NULL, NOT i.indisvalid,
	coalesce((pg_catalog.to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false),
	pg_catalog.pg_get_indexdef(i.indexrelid), coalesce(a.attname::text, '')
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL pg_catalog.generate_series(0, i.indnkeyatts - 1) AS k(pos)
LEFT JOIN pg_catalog.pg_attribute a
	ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.pos] AND i.indkey[k.pos] <> 0
WHERE i.indrelid = ANY ($1::text::oid[]) AND i.indisunique
ORDER BY i.indrelid, ic.relname, k.pos`

// pgFactsSQL reads the other facts as (table, kind, text) rows: foreign keys
// out (o) and in (i), CHECK constraints of the table and of its columns'
// domains (c), user triggers (t), rules on the table or on another table
// that mention it (r), and the views and materialized views that read it,
// transitively through the views' _RETURN rules in pg_depend (v).
const pgFactsSQL = `WITH RECURSIVE dom(rel, attname, typ) AS (
	SELECT a.attrelid, a.attname, a.atttypid
	FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
	WHERE a.attrelid = ANY ($1::text::oid[]) AND a.attnum > 0 AND NOT a.attisdropped AND t.typtype = 'd'
	UNION ALL
	SELECT dom.rel, dom.attname, t.typbasetype
	FROM dom JOIN pg_catalog.pg_type t ON t.oid = dom.typ
	JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype
	WHERE bt.typtype = 'd'
), dep(rel, obj, rule) AS (
	SELECT DISTINCT d.refobjid, r.ev_class, r.oid
	FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
	WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
		AND d.refobjid = ANY ($1::text::oid[]) AND r.ev_class <> d.refobjid
), v(rel, view) AS (
	SELECT dep.rel, dep.obj FROM dep JOIN pg_catalog.pg_class c ON c.oid = dep.obj
	WHERE c.relkind IN ('v', 'm')
	UNION
	SELECT v.rel, r.ev_class
	FROM v JOIN pg_catalog.pg_depend d ON d.refobjid = v.view
		AND d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
	JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
	JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
	WHERE r.ev_class <> v.view AND c.relkind IN ('v', 'm')
)
SELECT c.conrelid::int8, 'o', c.conname::text || ' ' || pg_catalog.pg_get_constraintdef(c.oid)
FROM pg_catalog.pg_constraint c WHERE c.contype = 'f' AND c.conrelid = ANY ($1::text::oid[])
UNION ALL
SELECT c.confrelid::int8, 'i', c.conrelid::regclass::text || ': ' || c.conname::text || ' '
	|| pg_catalog.pg_get_constraintdef(c.oid)
FROM pg_catalog.pg_constraint c WHERE c.contype = 'f' AND c.confrelid = ANY ($1::text::oid[])
UNION ALL
SELECT c.conrelid::int8, 'c', pg_catalog.pg_get_constraintdef(c.oid)
FROM pg_catalog.pg_constraint c WHERE c.contype = 'c' AND c.conrelid = ANY ($1::text::oid[])
UNION ALL
SELECT dom.rel::int8, 'c', dom.attname::text || ': ' || pg_catalog.pg_get_constraintdef(c.oid)
FROM dom JOIN pg_catalog.pg_constraint c ON c.contypid = dom.typ AND c.contype = 'c'
UNION ALL
SELECT t.tgrelid::int8, 't', t.tgname::text
FROM pg_catalog.pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid = ANY ($1::text::oid[])
UNION ALL
SELECT r.ev_class::int8, 'r', r.rulename::text
FROM pg_catalog.pg_rewrite r WHERE r.ev_class = ANY ($1::text::oid[]) AND r.rulename <> '_RETURN'
UNION ALL
SELECT DISTINCT dep.rel::int8, 'r', dep.obj::regclass::text || ': ' || r.rulename::text
FROM dep JOIN pg_catalog.pg_class c ON c.oid = dep.obj
JOIN pg_catalog.pg_rewrite r ON r.oid = dep.rule
WHERE c.relkind IN ('r', 'p')
UNION ALL
SELECT v.rel::int8, 'v', n.nspname::text || '.' || c.relname::text
FROM v JOIN pg_catalog.pg_class c ON c.oid = v.view
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
ORDER BY 1, 2, 3`
