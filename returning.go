package writeback

import (
	"context"
	"database/sql/driver"
	"io"
	"reflect"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/dirtyset"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file buffers writes with a RETURNING list whose values the statement
// itself gives: GORM's INSERT … RETURNING "id" of a row whose id the
// application set, an UPDATE returning its key or a column it assigns. The
// rows are answered from the statement's own values, typed as the database
// returns them (integers and text only); any other RETURNING goes to the
// database.

// returnCol is one column of a bufferable RETURNING list: where its value
// is in the statement, and its catalog column.
type returnCol struct {
	name string // as the database names the result column
	// From an UPDATE: key (the index in the rule's key) or set (the index
	// in c.Sets), the other -1; from an INSERT: ins, the index in c.Cols.
	key, set, ins int
	col           *catalog.Column
}

// planReturning decides whether a bufferable statement's RETURNING list can
// be answered from its own values, and how.
func planReturning(kind dialect.Kind, info *stmtInfo, pos []int) bool {
	c := info.c
	if kind != dialect.Postgres && kind != dialect.SQLite {
		return false // MySQL has no RETURNING, MariaDB none on UPDATE: the database answers
	}
	if info.keyCols == nil || info.ignore {
		return false // no catalog to type the values; a skipped row returns nothing
	}
	if c.Kind != sqlparse.Update && len(c.Rows) != 1 {
		return false // the order of several rows' results is the database's
	}
	for _, r := range c.Returning {
		rc := returnCol{name: r.Norm, key: -1, set: -1, ins: -1}
		if kind == dialect.SQLite && !r.Quoted {
			rc.name = r.Raw // SQLite names the column as the statement wrote it
		}
		switch c.Kind {
		case sqlparse.Update:
			for i, p := range pos {
				if sameIdent(c.Where[p].Col, r) {
					rc.key, rc.col = i, info.keyCols[i]
				}
			}
			for i, s := range c.Sets {
				if sameIdent(s.Col, r) && s.Delta == 0 && s.Extreme == 0 {
					rc.set, rc.col = i, info.setCols[i]
				}
			}
		case sqlparse.Insert:
			for i, col := range c.Cols {
				if sameIdent(col, r) {
					rc.ins, rc.col = i, info.insCols[i]
				}
			}
		case sqlparse.Upsert:
			// Only the key: the other values are the existing row's on a conflict.
			for i, p := range pos {
				if sameIdent(c.Cols[p], r) {
					rc.ins, rc.col = p, info.keyCols[i]
				}
			}
		}
		if rc.col == nil || rc.col.Class != catalog.Integer && rc.col.Class != catalog.Text {
			return false
		}
		info.returning = append(info.returning, rc)
	}
	return true
}

// sameIdent reports whether two identifiers name one column.
func sameIdent(a, b sqlparse.Ident) bool { return a.Norm == b.Norm }

// returnedRow is the RETURNING row of a buffered statement, from its
// arguments; ok is false when a value is not of the type the database
// would return (the statement then goes to the database).
func (cn *Connector) returnedRow(info *stmtInfo, args []driver.NamedValue) ([]driver.Value, bool) {
	out := make([]driver.Value, len(info.returning))
	var keyVals []any
	var changes []dirtyset.Change
	var row []any
	switch info.c.Kind {
	case sqlparse.Update:
		keyVals = make([]any, len(info.keyPos))
		var ok bool
		if changes, ok = cn.updateValues(info, args, keyVals, nil); !ok {
			return nil, false
		}
	case sqlparse.Insert:
		_, rows, ok := cn.insertValues(info, args)
		if !ok {
			return nil, false
		}
		row = rows[0]
	case sqlparse.Upsert:
		_, rows, _, ok := cn.upsertValues(info, args)
		if !ok {
			return nil, false
		}
		row = rows[0]
	}
	for i, rc := range info.returning {
		var v any
		switch {
		case rc.key >= 0:
			v = keyVals[rc.key]
		case rc.set >= 0:
			v = changes[rc.set].Val
		default:
			v = row[rc.ins]
		}
		switch v.(type) {
		case nil:
		case int64:
			if rc.col.Class != catalog.Integer {
				return nil, false
			}
		case string:
			if rc.col.Class != catalog.Text {
				return nil, false
			}
		default:
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// queryReturning buffers a write with a RETURNING list and answers its
// rows; ok is false when the statement must go to the database.
func (c *conn) queryReturning(ctx context.Context, query string, info *stmtInfo, args []driver.NamedValue) (driver.Rows, bool, error) {
	row, ok := c.cn.returnedRow(info, args)
	if !ok {
		return nil, false, nil
	}
	var res driver.Result
	var err error
	if c.lazy != nil {
		if res, ok = c.holdLazy(ctx, query, info, args); !ok {
			return nil, false, nil
		}
	} else if res, ok, err = c.cn.tryBuffer(ctx, c, info, args); !ok || err != nil {
		return nil, ok, err
	}
	rows := &valueRows{cols: info.returning}
	if n, _ := res.RowsAffected(); n > 0 {
		rows.rows = [][]driver.Value{row}
	}
	return rows, true, nil
}

// valueRows are rows held in memory.
type valueRows struct {
	cols []returnCol
	rows [][]driver.Value
}

var (
	_ driver.Rows                           = (*valueRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*valueRows)(nil)
	_ driver.RowsColumnTypeScanType         = (*valueRows)(nil)
)

func (r *valueRows) Columns() []string {
	names := make([]string, len(r.cols))
	for i, c := range r.cols {
		names[i] = c.name
	}
	return names
}

func (r *valueRows) Close() error { r.rows = nil; return nil }

func (r *valueRows) Next(dest []driver.Value) error {
	if len(r.rows) == 0 {
		return io.EOF
	}
	copy(dest, r.rows[0])
	r.rows = r.rows[1:]
	return nil
}

// ColumnTypeDatabaseTypeName is the column's type as the catalog has it,
// upper-cased as database/sql's drivers give it.
func (r *valueRows) ColumnTypeDatabaseTypeName(i int) string {
	return upperASCII(r.cols[i].col.Type)
}

func (r *valueRows) ColumnTypeScanType(i int) reflect.Type {
	if r.cols[i].col.Class == catalog.Integer {
		return reflect.TypeFor[int64]()
	}
	return reflect.TypeFor[string]()
}

func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
