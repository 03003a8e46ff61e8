package writeback

// The cases of the exact oracle (exact_test.go). Keys are declared NOT NULL
// explicitly: SQLite lets a PRIMARY KEY other than INTEGER PRIMARY KEY hold
// NULL, and these cases are about other things.

// countersDDL is the common table: two rows.
const countersDDL = `CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, label TEXT);
INSERT INTO counters (id, n, label) VALUES (1, 0, 'x'), (2, 0, 'y')`

var countersRules = backRules("counters", "id")

const dumpCounters = "SELECT * FROM counters ORDER BY id"

// bump is the buffered counter delta on row id.
func bump(id any) exactStep { return execStep("UPDATE counters SET n = n + 1 WHERE id = ?", id) }

// benignSteps are writes whose result does not depend on how a table's schema
// is enforced: for a rule accepted with allow.
var benignSteps = []exactStep{bump(1), bump(1), bump(2), execStep("UPDATE counters SET label = ? WHERE id = ?", "z", 1)}

// refusedAndAllowed is a schema feature writeback cannot preserve: refused
// without allow, accepted with it (then the benignSteps writes are identical).
func refusedAndAllowed(name string, dbs exactDB, schema, schemaPG, allow string, words ...string) []exactCase {
	return []exactCase{
		{name: "refuse_" + name, dbs: dbs, schema: schema, schemaPG: schemaPG, rules: countersRules, want: wantRefused(words...)},
		{name: "allow_" + name, dbs: dbs, schema: schema, schemaPG: schemaPG,
			rules: backRules("counters", "id", "allow: ["+allow+"]"), steps: benignSteps, final: []string{dumpCounters}, want: wantSame},
	}
}

const auditSchema = `CREATE TABLE audit (seq INTEGER PRIMARY KEY, counter_id BIGINT NOT NULL, n BIGINT NOT NULL);
CREATE TRIGGER counters_audit AFTER UPDATE ON counters BEGIN INSERT INTO audit (counter_id, n) VALUES (NEW.id, NEW.n); END`

const auditSchemaPG = `CREATE TABLE audit (seq BIGSERIAL PRIMARY KEY, counter_id BIGINT NOT NULL, n BIGINT NOT NULL);
CREATE FUNCTION counters_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit (counter_id, n) VALUES (NEW.id, NEW.n); RETURN NEW; END $$;
CREATE TRIGGER counters_audit AFTER UPDATE ON counters FOR EACH ROW EXECUTE FUNCTION counters_audit()`

var exactCases = concatCases(
	[]exactCase{
		// A control that works today: integer keys bound as integers.
		{name: "key_int_control", dbs: onBoth, schema: countersDDL, rules: countersRules,
			steps: []exactStep{
				bump(1), bump(1), execStep("UPDATE counters SET label = ? WHERE id = ?", "z", 2),
				execStep("INSERT INTO counters (id, n, label) VALUES (?, ?, ?)", 3, 5, "w"), bump(3),
				execStep("UPDATE counters SET n = n - ?, label = NULL WHERE id = ?", 2, 1),
				queryStep("SELECT id, n, label FROM counters WHERE id = ?", 3),
				bump(2), bump(2),
			},
			final: []string{dumpCounters}, want: wantSame},

		// A control for the refusal check: a refusal the rules parser gives
		// today (at the table's line 2), so the harness's check is exercised.
		{name: "refuse_control_no_key", dbs: onBoth, schema: countersDDL,
			rules: "tables:\n  counters:\n    mode: back\n", want: wantRefused("needs key")},

		// 1. Two spellings of one key.
		{name: "key_uuid_spellings", dbs: onPostgres,
			schema: `CREATE TABLE u (id uuid NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0);
INSERT INTO u (id, n) VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0)`,
			rules: backRules("u", "id"),
			steps: []exactStep{
				execStep("UPDATE u SET n = n + 1 WHERE id = ?", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
				execStep("UPDATE u SET n = n + 1 WHERE id = ?", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
				execStep("UPDATE u SET n = n + 1 WHERE id = ?", "a0eebc999c0b4ef8bb6d6bb9bd380a11"),
			},
			final: []string{"SELECT id::text, n FROM u ORDER BY id"}, want: wantSame},
		{name: "key_char_padding", dbs: onBoth,
			schema: `CREATE TABLE c (code CHAR(5) NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0);
INSERT INTO c (code, n) VALUES ('ab', 0)`,
			rules: backRules("c", "code"),
			steps: []exactStep{
				execStep("UPDATE c SET n = n + 1 WHERE code = ?", "ab"),
				execStep("UPDATE c SET n = n + 1 WHERE code = ?", "ab   "),
				execStep("UPDATE c SET n = n + 1 WHERE code = ?", "ab"),
			},
			final: []string{"SELECT * FROM c ORDER BY code"}, want: wantSame},
		{name: "key_numeric_spellings", dbs: onBoth,
			schema: `CREATE TABLE k (k NUMERIC(6,2) NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0);
INSERT INTO k (k, n) VALUES (1.5, 0)`,
			rules: backRules("k", "k"),
			steps: []exactStep{
				execStep("UPDATE k SET n = n + 1 WHERE k = ?", "1.5"),
				execStep("UPDATE k SET n = n + 1 WHERE k = ?", "1.50"),
				execStep("UPDATE k SET n = n + 1 WHERE k = ?", "1.5"),
			},
			final: []string{"SELECT * FROM k ORDER BY k"}, want: wantSame},
		{name: "key_int_spellings", dbs: onBoth, schema: countersDDL, rules: countersRules,
			steps: []exactStep{bump("1"), bump("01"), bump(int64(1))},
			final: []string{dumpCounters}, want: wantSame},

		// 2, 3. Keys that cannot be keys, names that do not exist.
		{name: "refuse_key_not_unique", dbs: onBoth,
			schema: `CREATE TABLE users (id BIGINT NOT NULL PRIMARY KEY, email TEXT NOT NULL, n BIGINT NOT NULL DEFAULT 0);
CREATE INDEX users_email ON users (email)`,
			rules: backRules("users", "email"), want: wantRefused("unique")},
		{name: "refuse_key_nullable_unique", dbs: onBoth,
			schema: `CREATE TABLE users (id BIGINT NOT NULL PRIMARY KEY, email TEXT UNIQUE, n BIGINT NOT NULL DEFAULT 0)`,
			rules:  backRules("users", "email"), want: wantRefused("null")},
		{name: "refuse_missing_table", dbs: onBoth, schema: countersDDL,
			rules: backRules("countrs", "id"), want: wantRefused("countrs", "exist")},
		{name: "refuse_missing_key_column", dbs: onBoth, schema: countersDDL,
			rules: backRules("counters", "idd"), want: wantRefused("idd", "exist")},

		// 10. Case-insensitive keys.
		{name: "refuse_key_nocase", dbs: onSQLite,
			schema: `CREATE TABLE users (email TEXT COLLATE NOCASE NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0)`,
			rules:  backRules("users", "email"), want: wantRefused("case-insensitive|collat")},
		{name: "refuse_key_citext", dbs: onPostgres, needs: "citext",
			schema: `CREATE TABLE users (email public.citext NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0)`,
			rules:  backRules("users", "email"), want: wantRefused("case-insensitive|citext")},
		{name: "refuse_key_icu_nondeterministic", dbs: onPostgres,
			schema: `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE users (email TEXT COLLATE ci NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0)`,
			rules: backRules("users", "email"), want: wantRefused("case-insensitive|collat")},

		// 4. Column types decide arithmetic.
		{name: "types_text_plus", dbs: onBoth, schema: countersDDL, rules: countersRules,
			steps: []exactStep{
				execStep("UPDATE counters SET label = label + '1' WHERE id = 1").sameErrText(),
				execStep("UPDATE counters SET label = label + '1' WHERE id = 1").sameErrText(),
				queryStep("SELECT label FROM counters WHERE id = 1"),
			},
			final: []string{dumpCounters}, want: wantSame},
		{name: "types_numeric_rounding", dbs: onBoth,
			schema: `CREATE TABLE m (id BIGINT NOT NULL PRIMARY KEY, amount NUMERIC(12,2) NOT NULL DEFAULT 0);
INSERT INTO m (id, amount) VALUES (1, 0)`,
			rules: backRules("m", "id"),
			steps: []exactStep{
				execStep("UPDATE m SET amount = amount + ? WHERE id = 1", "0.005"),
				execStep("UPDATE m SET amount = amount + ? WHERE id = 1", "0.005"),
				queryStep("SELECT amount FROM m WHERE id = 1"),
			},
			final: []string{"SELECT * FROM m ORDER BY id"}, want: wantSame},
		{name: "types_float_delta_bigint", dbs: onBoth, schema: countersDDL, rules: countersRules,
			steps: []exactStep{
				execStep("UPDATE counters SET n = n + ? WHERE id = 1", 0.4),
				execStep("UPDATE counters SET n = n + ? WHERE id = 1", 0.4),
				execStep("UPDATE counters SET n = n + ? WHERE id = 1", 0.4),
				queryStep("SELECT n FROM counters WHERE id = 1"),
			},
			final: []string{dumpCounters}, want: wantSame},
		{name: "types_one_param_two_types", dbs: onBoth, schema: countersDDL, rules: countersRules,
			steps: []exactStep{
				execStep("UPDATE counters SET label = ?1, n = n + ?1 WHERE id = 1", "5").sameErrText(),
				queryStep("SELECT n, label FROM counters WHERE id = 1"),
			},
			final: []string{dumpCounters}, want: wantSame},

		// 5. Writes on either side of a schema change.
		{name: "ddl_numeric_to_double", dbs: onPostgres,
			schema: `CREATE TABLE d (id BIGINT NOT NULL PRIMARY KEY, v NUMERIC(10,1) NOT NULL DEFAULT 0);
INSERT INTO d (id, v) VALUES (1, 0)`,
			rules: backRules("d", "id"),
			steps: []exactStep{
				execStep("UPDATE d SET v = v + ? WHERE id = 1", "0.25"),
				ddlStep("ALTER TABLE d ALTER COLUMN v TYPE double precision"),
				execStep("UPDATE d SET v = v + ? WHERE id = 1", "0.25"),
				execStep("UPDATE d SET v = v + ? WHERE id = 1", "0.25"),
			},
			final: []string{"SELECT * FROM d ORDER BY id"}, want: wantSame},
		{name: "ddl_int_to_text", dbs: onPostgres, schema: countersDDL, rules: countersRules,
			steps: []exactStep{
				bump(1),
				ddlStep("ALTER TABLE counters ALTER COLUMN n TYPE text"),
				execStep("UPDATE counters SET n = n + ? WHERE id = 1", 1).sameErrText(),
				execStep("UPDATE counters SET n = ? WHERE id = 2", "7"),
				execStep("UPDATE counters SET n = n + 1 WHERE id = 2").sameErrText(),
			},
			final: []string{dumpCounters}, want: wantSame},
		// SQLite has no ALTER COLUMN TYPE: the table is rebuilt, as applications do.
		{name: "ddl_int_to_text_rebuild", dbs: onSQLite, schema: countersDDL, rules: countersRules,
			steps: []exactStep{
				bump(1),
				ddlStep("ALTER TABLE counters RENAME TO counters_old"),
				ddlStep("CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n TEXT NOT NULL DEFAULT '0', label TEXT)"),
				ddlStep("INSERT INTO counters SELECT * FROM counters_old"),
				ddlStep("DROP TABLE counters_old"),
				execStep("UPDATE counters SET n = n + ? WHERE id = 1", 1),
				execStep("UPDATE counters SET n = ? WHERE id = 2", "7"),
				execStep("UPDATE counters SET n = n + 1 WHERE id = 2"),
				execStep("UPDATE counters SET n = n + 1 WHERE id = 2"),
			},
			final: []string{dumpCounters, "SELECT id, typeof(n) FROM counters ORDER BY id"}, want: wantSame},

		// 6. Names: SQLite folds "N" and n to one column; PostgreSQL has no "N".
		{name: "names_quoted_case", dbs: onBoth, schema: countersDDL, rules: countersRules,
			steps: []exactStep{
				execStep(`UPDATE counters SET "N" = "N" + 1 WHERE id = 1`).sameErrText(),
				bump(1),
				execStep(`UPDATE counters SET "N" = 5 WHERE id = 1`).sameErrText(),
				bump(1),
				queryStep("SELECT n FROM counters WHERE id = 1"),
			},
			final: []string{dumpCounters}, want: wantSame},
		{name: "names_qualified_target", dbs: onBoth, schema: countersDDL, rules: countersRules,
			steps: []exactStep{
				execStep("UPDATE counters SET counters.n = 1 WHERE id = 1"),
				execStep("UPDATE counters SET counters.n = ? WHERE id = ?", 1, 2),
				queryStep("SELECT id, n FROM counters ORDER BY id"),
			},
			final: []string{dumpCounters}, want: wantSame},

		// 7. A view over a back table reads the writes made before it.
		{name: "view_reads_fresh", dbs: onBoth,
			schema: countersDDL + ";\nCREATE VIEW v_totals AS SELECT SUM(n) AS total FROM counters",
			rules:  countersRules,
			steps: []exactStep{
				bump(1), bump(2), bump(2),
				queryStep("SELECT total FROM v_totals"),
				bump(1),
				queryStep("SELECT total FROM v_totals"),
			},
			final: []string{dumpCounters}, want: wantSame},

		// 8. Session state of the connection that wrote.
		{name: "session_time_zone", dbs: onPostgres,
			schema: `CREATE TABLE s (id BIGINT NOT NULL PRIMARY KEY, seen_at timestamptz);
INSERT INTO s (id, seen_at) VALUES (1, NULL)`,
			rules: backRules("s", "id"),
			steps: []exactStep{
				execStep("SET TIME ZONE 'Asia/Tokyo'"),
				execStep("UPDATE s SET seen_at = ? WHERE id = 1", "2026-01-01 12:00:00"),
			},
			final: []string{"SELECT id, to_char(seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM s ORDER BY id"},
			want:  wantSame},

		// 9. Constraints and defaults that see the order of writes: identical,
		// or refused at open (refuse_*/allow_* below refuse them strictly).
		{name: "unique_swap", dbs: onBoth,
			schema: `CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, u TEXT NOT NULL UNIQUE);
INSERT INTO counters (id, u) VALUES (1, 'a'), (2, 'b')`,
			rules: countersRules,
			steps: []exactStep{
				execStep("UPDATE counters SET u = ? WHERE id = ?", "c", 1),
				execStep("UPDATE counters SET u = ? WHERE id = ?", "a", 2),
				execStep("UPDATE counters SET u = ? WHERE id = ?", "b", 1),
			},
			final: []string{dumpCounters}, want: wantSameOrRefused("unique")},
		{name: "fk_self", dbs: onBoth,
			schema: `CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, parent BIGINT REFERENCES counters (id), n BIGINT NOT NULL DEFAULT 0);
INSERT INTO counters (id, parent, n) VALUES (1, NULL, 0)`,
			rules: countersRules,
			steps: []exactStep{
				execStep("INSERT INTO counters (id, parent, n) VALUES (?, ?, ?)", 3, 2, 0),
				execStep("INSERT INTO counters (id, parent, n) VALUES (?, ?, ?)", 2, 1, 0),
				execStep("UPDATE counters SET parent = ? WHERE id = ?", 99, 1),
				queryStep("SELECT count(*) FROM counters"),
			},
			final: []string{"SELECT id, parent, n FROM counters ORDER BY id"}, want: wantSameOrRefused("foreign key")},
		{name: "sequence_default", dbs: onPostgres,
			schema: `CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, seq BIGSERIAL, n BIGINT NOT NULL DEFAULT 0)`,
			rules:  countersRules,
			steps: []exactStep{
				execStep("INSERT INTO counters (id, n) VALUES (?, ?)", 3, 0),
				execStep("INSERT INTO counters (id, n) VALUES (?, ?)", 1, 0),
				execStep("INSERT INTO counters (id, n) VALUES (?, ?)", 2, 0),
			},
			final: []string{"SELECT * FROM counters ORDER BY id"}, want: wantSameOrRefused("default")},
	},

	// 10. Schema features refused at open unless allowed.
	refusedAndAllowed("trigger", onBoth, countersDDL+";\n"+auditSchema, countersDDL+";\n"+auditSchemaPG, "triggers", "trigger"),
	refusedAndAllowed("fk_in", onBoth,
		countersDDL+";\nCREATE TABLE refs (id BIGINT NOT NULL PRIMARY KEY, counter_id BIGINT REFERENCES counters (id))", "",
		"foreign_keys", "foreign key"),
	refusedAndAllowed("fk_out", onBoth,
		`CREATE TABLE owners (id BIGINT NOT NULL PRIMARY KEY);
INSERT INTO owners (id) VALUES (1);
CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, label TEXT, owner BIGINT REFERENCES owners (id));
INSERT INTO counters (id, n, label, owner) VALUES (1, 0, 'x', 1), (2, 0, 'y', NULL)`, "",
		"foreign_keys", "foreign key"),
	refusedAndAllowed("fk_self", onBoth,
		`CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, label TEXT, parent BIGINT REFERENCES counters (id));
INSERT INTO counters (id, n, label, parent) VALUES (1, 0, 'x', NULL), (2, 0, 'y', 1)`, "",
		"foreign_keys", "foreign key"),
	refusedAndAllowed("unique_secondary", onBoth,
		`CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, label TEXT UNIQUE);
INSERT INTO counters (id, n, label) VALUES (1, 0, 'x'), (2, 0, 'y')`, "",
		"unique", "unique"),
	refusedAndAllowed("check", onBoth,
		`CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0 CHECK (n >= 0), label TEXT);
INSERT INTO counters (id, n, label) VALUES (1, 0, 'x'), (2, 0, 'y')`, "",
		"check", "check"),
	refusedAndAllowed("sequence_default", onPostgres,
		`CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, label TEXT, seq BIGSERIAL);
INSERT INTO counters (id, n, label) VALUES (1, 0, 'x'), (2, 0, 'y')`, "",
		"defaults", "default"),
	refusedAndAllowed("generated_column", onBoth,
		`CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, label TEXT, twice BIGINT GENERATED ALWAYS AS (n * 2) STORED);
INSERT INTO counters (id, n, label) VALUES (1, 0, 'x'), (2, 0, 'y')`, "",
		"defaults", "generated"),
)

func concatCases(groups ...[]exactCase) []exactCase {
	var out []exactCase
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}
