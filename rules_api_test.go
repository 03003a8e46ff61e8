package writeback

import (
	"fmt"
	"testing"
)

func TestEnumStrings(t *testing.T) {
	tests := []struct {
		v    fmt.Stringer
		want string
	}{
		{ModeThrough, "through"},
		{ModeBack, "back"},
		{Mode(7), "Mode(7)"},

		{PriorityHigh, "high"},
		{PriorityNormal, "normal"},
		{PriorityLow, "low"},
		{Priority(7), "Priority(7)"},

		{ReadsFlush, "flush"},
		{ReadsStale, "stale"},
		{ReadPolicy(7), "ReadPolicy(7)"},

		{AckMemory, "memory"},
		{AckDisk, "disk"},
		{AckThrough, "through"},
		{AckLevel(7), "AckLevel(7)"},

		{FullBlock, "block"},
		{FullThrough, "through"},
		{FullError, "error"},
		{OnFull(255), "OnFull(255)"},

		{FsyncEverysec, "everysec"},
		{FsyncAlways, "always"},
		{FsyncNo, "no"},
		{FsyncPolicy(7), "FsyncPolicy(7)"},
	}
	for _, tt := range tests {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%T(%d).String() = %q, want %q", tt.v, tt.v, got, tt.want)
		}
		if got := fmt.Sprint(tt.v); got != tt.want {
			t.Errorf("fmt.Sprint(%T(%d)) = %q, want %q", tt.v, tt.v, got, tt.want)
		}
	}
}

// TestEnumStringsParse checks that every name String returns for a table or
// journal field is the spelling ParseRules reads back to the same value.
func TestEnumStringsParse(t *testing.T) {
	for _, m := range []Mode{ModeThrough, ModeBack} {
		for _, p := range []Priority{PriorityNormal, PriorityLow, PriorityHigh} {
			for _, rp := range []ReadPolicy{ReadsFlush, ReadsStale} {
				for _, a := range []AckLevel{AckMemory, AckDisk} {
					for _, f := range []OnFull{FullBlock, FullThrough, FullError} {
						for _, fs := range []FsyncPolicy{FsyncEverysec, FsyncAlways, FsyncNo} {
							yaml := fmt.Sprintf("journal: {path: j, fsync: %s}\ntables:\n  t: {mode: %s, key: [id], priority: %s, reads: %s, ack: %s, on_full: %s}\n", fs, m, p, rp, a, f)
							r, err := ParseRules([]byte(yaml), "")
							if err != nil {
								t.Fatalf("%s: %v", yaml, err)
							}
							tr := r.Tables["t"]
							if tr.Mode != m || tr.Priority != p || tr.Reads != rp || tr.Ack != a || tr.OnFull != f || r.Journal.Fsync != fs {
								t.Fatalf("%s: parsed %+v, journal %+v", yaml, *tr, *r.Journal)
							}
						}
					}
				}
			}
		}
	}
}
