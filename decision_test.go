package writeback

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

const decisionRules = `tables:
  page_views:
    mode: back
    key: [page_id]
    max_loss: 5s
    decision:
      data: page view counters shown on article pages
      loss_cost: minor
      recoverable: from_source
      mitigations: [journal_everysec]
      residual_risk: up to 5 s of views on a host crash
      approved_by: analytics team
      review: 2027-06-01
`

func TestDecisionParsed(t *testing.T) {
	r, err := ParseRules([]byte(decisionRules), "wb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := r.Tables["page_views"].Decision
	want := Decision{Data: "page view counters shown on article pages", LossCost: LossCostMinor, Recoverable: RecoveryFromSource,
		Mitigations: []string{"journal_everysec"}, ResidualRisk: "up to 5 s of views on a host crash", ApprovedBy: "analytics team",
		Review: time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC), Line: 6}
	if d == nil || d.Data != want.Data || d.LossCost != want.LossCost || d.Recoverable != want.Recoverable || !slices.Equal(d.Mitigations, want.Mitigations) ||
		d.ResidualRisk != want.ResidualRisk || d.ApprovedBy != want.ApprovedBy || !d.Review.Equal(want.Review) || d.Line != want.Line || d.Regulatory {
		t.Fatalf("decision %+v, want %+v", d, want)
	}
	if d.LossCost.String() != "minor" || d.Recoverable.String() != "from_source" {
		t.Errorf("names %s, %s", d.LossCost, d.Recoverable)
	}
	rule := r.Tables["page_views"]
	if f := rule.DecisionFinding(time.Date(2027, 6, 1, 23, 0, 0, 0, time.UTC)); f != "" {
		t.Errorf("on its review day: %q", f)
	}
	if f := rule.DecisionFinding(time.Date(2027, 6, 3, 0, 0, 0, 0, time.UTC)); !strings.Contains(f, "due for review on 2027-06-01") {
		t.Errorf("after its review day: %q", f)
	}
	r2, err := ParseRules([]byte("tables:\n  t: {mode: back, key: [id]}\n  u: {mode: through}\n"), "wb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f := r2.Tables["t"].DecisionFinding(time.Now()); !strings.Contains(f, "no decision record") {
		t.Errorf("back table without a record: %q", f)
	}
	if f := r2.Tables["u"].DecisionFinding(time.Now()); f != "" {
		t.Errorf("through table: %q", f)
	}
}

func TestDecisionErrors(t *testing.T) {
	base := "tables:\n  t:\n    mode: back\n    key: [id]\n    decision:\n"
	for _, tc := range []struct {
		name, body string
		line       int
		want       string
	}{
		{"catastrophic on back", "      loss_cost: catastrophic\n", 5, "data whose loss would be catastrophic must be mode: through"},
		{"regulatory on back", "      regulatory: true\n", 5, "regulatory data must be mode: through"},
		{"unknown cost", "      loss_cost: small\n", 6, `"small" is not one of none, minor, moderate, serious, catastrophic`},
		{"unknown recoverable", "      recoverable: maybe\n", 6, `"maybe" is not one of no, partially, from_source, automatically`},
		{"bad date", "      review: June 2027\n", 6, `"June 2027" is not a date, YYYY-MM-DD`},
		{"impossible date", "      review: 2027-02-30\n", 6, "is not a date"},
		{"unknown field", "      owner: me\n", 6, `unknown field "owner" (want data, loss_cost`},
		{"mitigations not a list", "      mitigations: journal\n", 6, "want a list of names"},
		{"empty mitigation", "      mitigations: ['']\n", 6, "an empty name"},
		{"regulatory yes", "      regulatory: yes\n", 6, "true or false"},
		{"not a mapping", "      - a\n", 6, "decision"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRules([]byte(base+tc.body), "wb.yaml")
			var re *RulesError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a RulesError", err)
			}
			if re.Line != tc.line || !strings.Contains(re.Msg, tc.want) {
				t.Fatalf("line %d %q, want line %d and %q", re.Line, re.Msg, tc.line, tc.want)
			}
		})
	}
	// On a through table a catastrophic record is what it should be.
	if _, err := ParseRules([]byte("tables:\n  t:\n    mode: through\n    decision: {loss_cost: catastrophic, regulatory: true}\n"), "wb.yaml"); err != nil {
		t.Fatalf("through table: %v", err)
	}
	// Rules built in Go are checked the same way.
	r := &Rules{Tables: map[string]*TableRule{"t": {Mode: ModeBack, Key: []string{"id"}, Decision: &Decision{LossCost: LossCostCatastrophic}}}}
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "catastrophic") {
		t.Fatalf("Validate: %v", err)
	}
}
