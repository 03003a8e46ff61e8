package dsn

import (
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	fields, base, has, err := Split("  driver=pgx  rules=r.yaml dsn=host=/tmp dbname=x  sslmode=disable")
	if err != nil || !has || base != "host=/tmp dbname=x  sslmode=disable" {
		t.Fatalf("base %q (%v), %v", base, has, err)
	}
	if want := []Field{{"driver", "pgx"}, {"rules", "r.yaml"}}; !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %v, want %v", fields, want)
	}
	if _, _, has, err := Split("driver=pgx"); err != nil || has {
		t.Errorf("without dsn=: %v, %v", has, err)
	}
	if _, _, _, err := Split("driver=pgx oops dsn=x"); err == nil || err.Error() != `"oops" is not key=value` {
		t.Errorf("a field without =: %v", err)
	}
	if _, base, has, _ := Split("driver=pgx dsn="); !has || base != "" {
		t.Errorf("empty dsn=: %q, %v", base, has)
	}
}
