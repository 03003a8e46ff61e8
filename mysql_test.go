package writeback

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/writeback-go/writeback/internal/testdb"
)

// mysqlDSN creates a fresh database on the MySQL (MariaDB) test server and
// returns its DSN. clientFoundRows=true makes an UPDATE's RowsAffected the
// rows it matched, as writeback reports for a buffered UPDATE (MySQL's
// default counts only the rows it changed).
func mysqlDSN(t testing.TB, prefix string) string {
	t.Helper()
	return testdb.MySQLDatabase(t, prefix, "clientFoundRows=true")
}

// mysqlTypes rewrites a test schema written for PostgreSQL and SQLite into
// MySQL's types: TEXT, which MySQL cannot index whole, becomes a VARCHAR
// with an exact collation (binary, NO PAD), as a text key must have.
func mysqlTypes(schema string) string {
	return strings.ReplaceAll(schema, " TEXT", " VARCHAR(255) COLLATE utf8mb4_nopad_bin")
}

// diffSchemaMySQL is diffSchema in MySQL's types: a text key must be a
// VARCHAR with an exact (binary, NO PAD) collation.
const diffSchemaMySQL = `
CREATE TABLE counters (id BIGINT PRIMARY KEY, views BIGINT NOT NULL DEFAULT 0, label TEXT);
CREATE TABLE pairs (a BIGINT NOT NULL, b VARCHAR(20) COLLATE utf8mb4_nopad_bin NOT NULL, n BIGINT, PRIMARY KEY (a, b));
CREATE TABLE events (id BIGINT PRIMARY KEY, kind TEXT NOT NULL, amount BIGINT NOT NULL)`

func TestDifferentialMySQL(t *testing.T) {
	for _, s := range diffSeeds {
		t.Run(fmt.Sprintf("seed%d_maxloss%s", s.seed, s.maxLoss), func(t *testing.T) {
			direct, err := sql.Open("mysql", mysqlDSN(t, "diffd"))
			if err != nil {
				t.Fatal(err)
			}
			defer direct.Close()
			wb := openWritebackDeferred(t, "mysql", mysqlDSN(t, "diffw"), diffRules(s.maxLoss))
			defer func() {
				if err := wb.Close(); err != nil {
					t.Error(err)
				}
			}()
			start := time.Now()
			runDifferentialSchema(t, direct, wb, false, s.seed, diffOps(), diffSchemaMySQL)
			t.Logf("took %s", time.Since(start))
		})
	}
}
