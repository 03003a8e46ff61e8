package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's examples of the command (section "The writeback command")
// are the output of these fixtures: TestREADMEExamples runs every command
// shown there and requires the output shown.

const readmeSchema = `CREATE TABLE page_views (page_id INTEGER PRIMARY KEY, views INTEGER NOT NULL DEFAULT 0, title TEXT)
CREATE VIEW popular AS SELECT * FROM page_views WHERE views > 100
CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)
CREATE TABLE sessions (token TEXT COLLATE NOCASE PRIMARY KEY, seen TEXT DEFAULT CURRENT_TIMESTAMP)
CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty >= 0))
CREATE TRIGGER stock_audit AFTER UPDATE ON stock BEGIN SELECT 1; END`

const readmeRules = `tables:
  page_views:
    mode: back
    key: page_id
    max_loss: 2s
    decision:
      data: page view counters shown on article pages
      loss_cost: minor
      recoverable: from_source
      residual_risk: up to 2 s of views on a crash
      approved_by: analytics team
  orders:
    mode: through
  sessions:
    mode: back
    key: token
  stock:
    mode: back
    key: sku
    allow: [check]
`

const readmeDurability = `journal:
  path: journal
  fsync: everysec
tables:
  page_views:
    mode: back
    key: page_id
    max_loss: 2s
    decision:
      data: page view counters shown on article pages
      loss_cost: minor
      recoverable: from_source
      mitigations: [journal_everysec]
      residual_risk: about 1 s of views on a power loss
      approved_by: analytics team
  carts:
    mode: back
    key: cart_id
    ack: disk
`

func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	for name, rules := range map[string]string{"writeback.yaml": readmeRules, "durability.yaml": readmeDurability} {
		if !strings.Contains(text, "```yaml\n# "+name+"\n"+rules+"```\n") {
			t.Errorf("the README does not show the fixture's %s:\n%s", name, rules)
		}
	}
	dir := t.TempDir()
	db := sqliteDB(t, strings.Split(readmeSchema, "\n")...)
	if err := os.Rename(db, filepath.Join(dir, "app.db")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "writeback.yaml", readmeRules)
	writeFile(t, dir, "durability.yaml", readmeDurability)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)

	examples := 0
	for _, block := range strings.Split(text, "```console\n")[1:] {
		block, _, _ = strings.Cut(block, "```\n")
		cmdLine, want, _ := strings.Cut(block, "\n")
		if !strings.HasPrefix(cmdLine, "$ writeback ") {
			continue
		}
		args, err := splitArgs(strings.TrimPrefix(cmdLine, "$ writeback "))
		if err != nil {
			t.Fatalf("%s: %v", cmdLine, err)
		}
		examples++
		code, got, errOut := runCmd(t, args...)
		if got != want {
			t.Errorf("%s (exit %d, stderr %q): the README shows\n%s\nthe command prints\n%s", cmdLine, code, errOut, want, got)
		}
	}
	if examples < 3 {
		t.Errorf("%d examples of the command in the README, want check, explain with SQL and without", examples)
	}
}

// splitArgs splits a shell command line of plain words and "double-quoted"
// words (no escapes inside).
func splitArgs(s string) ([]string, error) {
	var args []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, os.ErrInvalid
			}
			args = append(args, s[1:end+1])
			s = s[end+2:]
			continue
		}
		word, rest, _ := strings.Cut(s, " ")
		args, s = append(args, word), rest
	}
	return args, nil
}
