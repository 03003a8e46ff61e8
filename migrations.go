package writeback

import (
	"fmt"

	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/durable"
)

// SchemaSQL returns the DDL of the tables the driver keeps in the database,
// one statement per element, for a migration tool to run: exactly the
// statements a connector runs itself when the rules leave manage_schema at
// true. Only a connector with a journal uses them (the journal's checkpoint
// tables, writeback_checkpoint and writeback_applied); their names are
// unqualified, so they are created in, and looked up in, the connection's
// default schema (PostgreSQL's search_path).
//
// dialect names the database as WithDialect does: "postgres", "sqlite" or
// "mysql" (whose key columns are VARBINARY) ("generic" gives the statements a connector runs on other databases).
// Another name is an error that lists these. The statements are CREATE
// TABLE IF NOT EXISTS, so running them again changes nothing.
func SchemaSQL(dialectName string) ([]string, error) {
	d, err := dialect.ByName(dialectName)
	if err != nil {
		return nil, fmt.Errorf("writeback: SchemaSQL: %w", err)
	}
	return durable.Schema(d.Kind()), nil
}
