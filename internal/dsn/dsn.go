// Package dsn splits writeback's DSN: space-separated key=value fields,
// with dsn= last, which takes the rest of the string verbatim as the base
// driver's DSN (base DSNs have spaces). The driver checks the values; the
// command-line tool rewrites DSNs with it.
package dsn

import (
	"fmt"
	"strings"
)

// Field is one key=value field.
type Field struct{ Key, Val string }

// Split returns the fields before dsn=, in order, and the base DSN after
// it; hasBase reports whether dsn= was given. A field without = is an
// error that names it.
func Split(s string) (fields []Field, base string, hasBase bool, err error) {
	rest := strings.TrimSpace(s)
	for rest != "" {
		var field string
		field, rest, _ = strings.Cut(rest, " ")
		rest = strings.TrimLeft(rest, " \t")
		if field == "" {
			continue
		}
		key, val, ok := strings.Cut(field, "=")
		if !ok {
			return fields, "", false, fmt.Errorf("%q is not key=value", field)
		}
		if key == "dsn" {
			if rest != "" {
				val += " " + rest
			}
			return fields, val, true, nil
		}
		fields = append(fields, Field{key, val})
	}
	return fields, "", false, nil
}
