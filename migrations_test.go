package writeback

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// migrationDB is a fresh database of one kind for the migration tests,
// with a counters table (ids 0..2 at 0) and a direct connection to it.
type migrationDB struct {
	driver  string // the base driver
	dialect string // SchemaSQL's name for it
	base    string // the base DSN
	direct  *sql.DB
	dollar  bool // $N placeholders
}

func newMigrationDB(t *testing.T, kind string) migrationDB {
	t.Helper()
	m := migrationDB{driver: "sqlite3", dialect: "sqlite"}
	if kind == "postgres" {
		m = migrationDB{driver: "pgx", dialect: "postgres", base: pgSchema(t, "mig"), dollar: true}
	} else {
		m.base = sqliteDSN(t, "mig")
	}
	db, err := sql.Open(m.driver, m.base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m.direct = db
	createCounters(t, db, 3, m.dollar)
	return m
}

// runSchemaSQL runs SchemaSQL's statements, as a migration would.
func (m migrationDB) runSchemaSQL(t *testing.T) {
	t.Helper()
	stmts, err := SchemaSQL(m.dialect)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if _, err := m.direct.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// tableExists reports whether the database has table name.
func (m migrationDB) tableExists(t *testing.T, name string) bool {
	t.Helper()
	q := "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	if m.dollar {
		q = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1"
	}
	var n int
	if err := m.direct.QueryRow(q, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// open opens writeback over the database through a DSN with extra keys.
func (m migrationDB) open(rules, keys string) (*sql.DB, error) {
	db, err := sql.Open("writeback", "driver="+m.driver+" rules="+rules+" "+keys+" dsn="+m.base)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// writeAndCheck adds 5 to counter 1 through wb, flushes, and checks the
// counter and that the flush wrote a journal checkpoint.
func (m migrationDB) writeAndCheck(t *testing.T, wb *sql.DB) {
	t.Helper()
	before := counterValues(t, m.direct)[1]
	if _, err := wb.Exec(placeholders("UPDATE counters SET n = n + ? WHERE id = ?", m.dollar), 5, 1); err != nil {
		t.Fatal(err)
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	if got := counterValues(t, m.direct)[1]; got != before+5 {
		t.Fatalf("counter 1 = %d after the flush, want %d", got, before+5)
	}
	var marks int
	if err := m.direct.QueryRow("SELECT count(*) FROM writeback_checkpoint WHERE table_name = 'counters'").Scan(&marks); err != nil {
		t.Fatal(err)
	}
	if marks != 1 {
		t.Fatalf("%d checkpoint rows for counters, want 1", marks)
	}
}

func forEachDatabase(t *testing.T, fn func(t *testing.T, kind string)) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { fn(t, kind) })
	}
}

func TestSchemaSQLNames(t *testing.T) {
	for _, name := range []string{"postgres", "sqlite", "generic"} {
		stmts, err := SchemaSQL(name)
		if err != nil || len(stmts) != 2 {
			t.Fatalf("SchemaSQL(%q) = %q, %v", name, stmts, err)
		}
		for i, table := range []string{"writeback_checkpoint", "writeback_applied"} {
			if !strings.HasPrefix(stmts[i], "CREATE TABLE IF NOT EXISTS "+table+" (") {
				t.Errorf("SchemaSQL(%q)[%d] = %q, want the DDL of %s", name, i, stmts[i], table)
			}
		}
	}
	for _, name := range []string{"", "oracle", "Postgres"} {
		_, err := SchemaSQL(name)
		if err == nil || !strings.Contains(err.Error(), "postgres, sqlite") || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("SchemaSQL(%q) error = %v, want one naming it and the accepted names", name, err)
		}
	}
}

// TestSchemaSQLThenCheckOnly: SchemaSQL's statements, run on a fresh
// database, are what a connector with manage_schema=false needs: it opens,
// its flushes write their checkpoints, and it reopens (recovery reads them).
func TestSchemaSQLThenCheckOnly(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, kind string) {
		m := newMigrationDB(t, kind)
		m.runSchemaSQL(t)
		rules := writeRulesFile(t, journalRules(filepath.Join(t.TempDir(), "journal"), "always", "memory", "1h"))
		for round := 0; round < 2; round++ {
			wb, err := m.open(rules, "manage_schema=false")
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			m.writeAndCheck(t, wb)
			if err := wb.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if got := counterValues(t, m.direct)[1]; got != 10 {
			t.Fatalf("counter 1 = %d, want 10", got)
		}
	})
}

// TestCheckOnlyMissingTables: with manage_schema false and the tables
// missing, the open fails naming the table and its DDL, and creates nothing.
func TestCheckOnlyMissingTables(t *testing.T) {
	ddl, err := SchemaSQL("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	forEachDatabase(t, func(t *testing.T, kind string) {
		m := newMigrationDB(t, kind)
		rules := writeRulesFile(t, "manage_schema: false\n"+journalRules(filepath.Join(t.TempDir(), "journal"), "always", "memory", "1h"))
		for i, table := range []string{"writeback_checkpoint", "writeback_applied"} {
			wb, err := m.open(rules, "")
			if err == nil {
				wb.Close()
				t.Fatalf("opened without %s", table)
			}
			for _, want := range []string{table + " does not exist", ddl[i], "manage_schema", "SchemaSQL"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if m.tableExists(t, table) {
				t.Fatalf("%s was created", table)
			}
			// Create this one: the next open finds the next one missing.
			if _, err := m.direct.Exec(ddl[i]); err != nil {
				t.Fatal(err)
			}
		}
		wb, err := m.open(rules, "")
		if err != nil {
			t.Fatal(err)
		}
		m.writeAndCheck(t, wb)
		if err := wb.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCheckOnlyWrongTables: a checkpoint table without a column or without
// its key is refused with a message that names what is missing.
func TestCheckOnlyWrongTables(t *testing.T) {
	ddl, err := SchemaSQL("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, checkpoint, want string
	}{
		{"no lsn", "CREATE TABLE writeback_checkpoint (journal_id VARCHAR(64) NOT NULL, table_name VARCHAR(512) NOT NULL, PRIMARY KEY (journal_id, table_name))",
			"writeback_checkpoint has no column lsn"},
		{"no key", "CREATE TABLE writeback_checkpoint (journal_id VARCHAR(64) NOT NULL, table_name VARCHAR(512) NOT NULL, lsn BIGINT NOT NULL)",
			"writeback_checkpoint needs its primary key (journal_id, table_name)"},
		{"other key", "CREATE TABLE writeback_checkpoint (journal_id VARCHAR(64) NOT NULL, table_name VARCHAR(512) NOT NULL, lsn BIGINT NOT NULL, PRIMARY KEY (journal_id))",
			"writeback_checkpoint needs its primary key (journal_id, table_name)"},
	}
	forEachDatabase(t, func(t *testing.T, kind string) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				m := newMigrationDB(t, kind)
				if _, err := m.direct.Exec(c.checkpoint); err != nil {
					t.Fatal(err)
				}
				if _, err := m.direct.Exec(ddl[1]); err != nil {
					t.Fatal(err)
				}
				rules := writeRulesFile(t, journalRules(filepath.Join(t.TempDir(), "journal"), "always", "memory", "1h"))
				wb, err := m.open(rules, "manage_schema=false")
				if err == nil {
					wb.Close()
					t.Fatal("opened")
				}
				if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), ddl[0]) {
					t.Fatalf("error %q, want %q and the table's DDL", err, c.want)
				}
			})
		}
	})
}

// TestManageSchemaDSNOverridesRules: manage_schema= in the DSN wins over
// the rules file, as journal= does; SchemaSQL's statements then change
// nothing.
func TestManageSchemaDSNOverridesRules(t *testing.T) {
	m := newMigrationDB(t, "sqlite")
	rules := writeRulesFile(t, "manage_schema: false\n"+journalRules(filepath.Join(t.TempDir(), "journal"), "always", "memory", "1h"))
	wb, err := m.open(rules, "manage_schema=true")
	if err != nil {
		t.Fatal(err)
	}
	m.writeAndCheck(t, wb) // the tables were created
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	// A migration of SchemaSQL's statements takes the tables the driver
	// made unchanged, and the checks pass on them.
	m.runSchemaSQL(t)
	if wb, err = m.open(rules, ""); err != nil {
		t.Fatal(err)
	}
	m.writeAndCheck(t, wb)
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckOnlyRoleWithoutCreate: a PostgreSQL role that may not create
// tables opens a connector with a journal when manage_schema is false and
// the tables exist, writes and flushes through it; with manage_schema true
// (the default) the open fails naming the table, the refusal and the way
// out; without a privilege on a table it fails naming the privilege.
func TestCheckOnlyRoleWithoutCreate(t *testing.T) {
	m := newMigrationDB(t, "postgres")
	schema := m.base[strings.LastIndex(m.base, "search_path=")+len("search_path="):]
	role := fmt.Sprintf("wb_nocreate_%d", os.Getpid())
	admin := m.direct
	execAll(t, admin, "DROP ROLE IF EXISTS "+role+"; CREATE ROLE "+role+" LOGIN")
	t.Cleanup(func() {
		for _, q := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := admin.Exec(q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	m.runSchemaSQL(t)
	execAll(t, admin, "GRANT USAGE ON SCHEMA "+schema+" TO "+role+
		"; GRANT SELECT, INSERT, UPDATE, DELETE ON counters, writeback_checkpoint, writeback_applied TO "+role)
	roleBase := m.base + " user=" + role

	// The role may not create tables in the schema.
	roleDB, err := sql.Open("pgx", roleBase)
	if err != nil {
		t.Fatal(err)
	}
	defer roleDB.Close()
	var who string
	if err := roleDB.QueryRow("SELECT current_user").Scan(&who); err != nil || who != role {
		t.Fatalf("connected as %q (%v), want %s", who, err, role)
	}
	if _, err := roleDB.Exec("CREATE TABLE probe (a int)"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("the role created a table: %v", err)
	}
	roleDB.Close()

	jdir := filepath.Join(t.TempDir(), "journal")
	checkOnly := writeRulesFile(t, "manage_schema: false\n"+journalRules(jdir, "always", "memory", "1h"))
	wb, err := sql.Open("writeback", "driver=pgx rules="+checkOnly+" dsn="+roleBase)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wb.Exec("INSERT INTO counters (id, n) VALUES ($1, $2)", 10, 7); err != nil {
		t.Fatal(err)
	}
	m.writeAndCheck(t, wb)
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	if got := counterValues(t, admin); got[10] != 7 || got[1] != 5 {
		t.Fatalf("counters %v, want 10: 7 and 1: 5", got)
	}

	managed := writeRulesFile(t, journalRules(jdir, "always", "memory", "1h"))
	wb, err = sql.Open("writeback", "driver=pgx rules="+managed+" dsn="+roleBase)
	if err == nil {
		wb.Close()
		t.Fatal("opened with manage_schema true by a role that may not create tables")
	}
	for _, want := range []string{"writeback_checkpoint cannot be created", "permission denied for schema " + schema, "manage_schema: false", "SchemaSQL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	execAll(t, admin, "REVOKE DELETE ON writeback_applied FROM "+role)
	wb, err = sql.Open("writeback", "driver=pgx rules="+checkOnly+" dsn="+roleBase)
	if err == nil {
		wb.Close()
		t.Fatal("opened without DELETE on writeback_applied")
	}
	if !strings.Contains(err.Error(), "writeback_applied is not writable by the connection's role: it lacks DELETE") {
		t.Fatalf("error %q does not name the missing privilege", err)
	}
}

func ExampleSchemaSQL() {
	// The DDL of the driver's own tables, for a migration file
	// (README: Migrations).
	stmts, err := SchemaSQL("postgres")
	if err != nil {
		panic(err)
	}
	for _, s := range stmts {
		fmt.Println(s + ";")
	}
	// Output:
	// CREATE TABLE IF NOT EXISTS writeback_checkpoint (journal_id VARCHAR(64) NOT NULL, table_name VARCHAR(512) NOT NULL, lsn BIGINT NOT NULL, PRIMARY KEY (journal_id, table_name));
	// CREATE TABLE IF NOT EXISTS writeback_applied (journal_id VARCHAR(64) NOT NULL, table_name VARCHAR(512) NOT NULL, row_key TEXT NOT NULL, lsn BIGINT NOT NULL, PRIMARY KEY (journal_id, table_name, row_key));
}

// TestCheckOnlyGeneric: without a catalog (dialect=generic) the tables are
// checked by reading no row of them.
func TestCheckOnlyGeneric(t *testing.T) {
	m := newMigrationDB(t, "sqlite")
	rules := writeRulesFile(t, "manage_schema: false\n"+journalRules(filepath.Join(t.TempDir(), "journal"), "always", "memory", "1h"))
	wb, err := m.open(rules, "dialect=generic")
	if err == nil {
		wb.Close()
		t.Fatal("opened without the tables")
	}
	if !strings.Contains(err.Error(), "writeback_checkpoint is missing or lacks a column of (journal_id, table_name, lsn)") {
		t.Fatalf("error %q", err)
	}
	m.dialect = "generic"
	m.runSchemaSQL(t)
	if wb, err = m.open(rules, "dialect=generic"); err != nil {
		t.Fatal(err)
	}
	m.writeAndCheck(t, wb)
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParseRulesManageSchema(t *testing.T) {
	for src, checkOnly := range map[string]bool{
		"tables: {}\n":                       false,
		"manage_schema: true\ntables: {}\n":  false,
		"manage_schema: false\ntables: {}\n": true,
		"manage_schema: False\n":             true,
	} {
		r, err := ParseRules([]byte(src), "")
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if r.SchemaCheckOnly != checkOnly {
			t.Errorf("%q: SchemaCheckOnly = %v, want %v", src, r.SchemaCheckOnly, checkOnly)
		}
		c, err := r.withDefaults()
		if err != nil || c.SchemaCheckOnly != checkOnly {
			t.Errorf("%q: the connector's copy has SchemaCheckOnly = %v (%v)", src, c.SchemaCheckOnly, err)
		}
	}
	bad := []struct {
		src  string
		line int
		want string
	}{
		{"tables: {}\nmanage_schema: no\n", 2, `manage_schema: "no" is not true or false`},
		{"tables: {}\nmanage_schema: \"false\"\n", 2, `manage_schema: "false" is not true or false`},
		{"manage_schema: 0\n", 1, `manage_schema: "0" is not true or false`},
		{"manage_schema:\n", 1, "manage_schema: missing value (want true or false)"},
		{"manage_schema: [false]\n", 1, "manage_schema: want true or false, not a list"},
		{"manage_schema: false\nmanage_schema: true\n", 2, `duplicate key "manage_schema"`},
		{"manage_scheme: false\n", 1, `unknown top-level field "manage_scheme" (want instance, journal, manage_schema, tables)`},
	}
	for _, b := range bad {
		_, err := ParseRules([]byte(b.src), "rules.yaml")
		var re *RulesError
		if !errors.As(err, &re) || re.Line != b.line || !strings.Contains(re.Msg, b.want) {
			t.Errorf("%q: error %v, want rules.yaml:%d: ...%s", b.src, err, b.line, b.want)
		}
	}
}
