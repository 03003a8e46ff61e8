package writeback

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decision is a table rule's written decision record: why the data may be
// buffered, what losing it costs, and who accepted the risk until when. The
// driver refuses a back table whose record says its loss would be
// catastrophic or that it is regulated; the writeback command's check warns
// of a back table without a record or past its review date.
type Decision struct {
	Data         string   // what the data is
	LossCost     LossCost // what losing some of it costs
	Recoverable  Recovery // whether lost data can be rebuilt
	Regulatory   bool     // the data is under a regulation that forbids losing it
	Mitigations  []string // what limits the loss (journal_everysec, ...)
	ResidualRisk string   // the loss that remains, in words
	ApprovedBy   string   // who accepted it
	Review       time.Time
	Line         int // line of the decision in the rules file
}

// LossCost is a decision record's cost of losing data.
type LossCost uint8

// The costs of losing data, from none to catastrophic. LossCostUnset is a
// record that does not say.
const (
	LossCostUnset LossCost = iota
	LossCostNone
	LossCostMinor
	LossCostModerate
	LossCostSerious
	LossCostCatastrophic
)

var lossCostNames = []string{"none", "minor", "moderate", "serious", "catastrophic"}

// String is the cost as the rules file writes it.
func (c LossCost) String() string {
	if c == LossCostUnset || int(c) > len(lossCostNames) {
		return fmt.Sprintf("LossCost(%d)", uint8(c))
	}
	return lossCostNames[c-1]
}

// Recovery is whether lost data can be rebuilt.
type Recovery uint8

// How lost data can be rebuilt. RecoveryUnset is a record that does not say.
const (
	RecoveryUnset Recovery = iota
	RecoveryNo
	RecoveryPartially
	RecoveryFromSource
	RecoveryAutomatically
)

var recoveryNames = []string{"no", "partially", "from_source", "automatically"}

// String is the value as the rules file writes it.
func (r Recovery) String() string {
	if r == RecoveryUnset || int(r) > len(recoveryNames) {
		return fmt.Sprintf("Recovery(%d)", uint8(r))
	}
	return recoveryNames[r-1]
}

// decisionFields lists a decision's fields, for errors.
const decisionFields = "data, loss_cost, recoverable, regulatory, mitigations, residual_risk, approved_by, review"

// decision parses a table's decision record.
func (p *rulesParser) decision(e yamlEntry, where string) (*Decision, error) {
	ents, err := p.mapping(e.val, where, "a mapping of "+decisionFields)
	if err != nil {
		return nil, err
	}
	d := &Decision{Line: e.key.Line}
	for _, f := range ents {
		fw := where + "." + f.name
		var i int
		switch f.name {
		case "data":
			d.Data, err = p.str(f.val, fw, "a description of the data")
		case "loss_cost":
			i, err = p.enum(f.val, fw, lossCostNames...)
			d.LossCost = LossCost(i + 1)
		case "recoverable":
			i, err = p.enum(f.val, fw, recoveryNames...)
			d.Recoverable = Recovery(i + 1)
		case "regulatory":
			d.Regulatory, err = p.boolean(f.val, fw)
		case "mitigations":
			d.Mitigations, err = p.strList(f.val, fw)
		case "residual_risk":
			d.ResidualRisk, err = p.str(f.val, fw, "the remaining risk, in words")
		case "approved_by":
			d.ApprovedBy, err = p.str(f.val, fw, "who accepted the risk")
		case "review":
			d.Review, err = p.date(f.val, fw)
		default:
			return nil, p.errAt(f.key.Line, where, "unknown field %q (want %s)", f.name, decisionFields)
		}
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// strList parses a list of non-empty strings.
func (p *rulesParser) strList(v *yaml.Node, where string) ([]string, error) {
	n, err := p.deref(v, where)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errAt(v.Line, where, "want a list of names, not %s", yamlKindOf(n))
	}
	if p.budget -= len(n.Content); p.budget < 0 {
		return nil, p.errAt(v.Line, where, "too many entries in the file")
	}
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		s, err := p.str(item, where, "a name")
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(s) == "" {
			return nil, p.errAt(item.Line, where, "an empty name")
		}
		out = append(out, s)
	}
	return out, nil
}

// date parses a calendar date written YYYY-MM-DD.
func (p *rulesParser) date(v *yaml.Node, where string) (time.Time, error) {
	const want = "a date, YYYY-MM-DD"
	s, err := p.str(v, where, want)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, p.errAt(v.Line, where, "%q is not %s", s, want)
	}
	return t, nil
}

// validateDecision refuses a back table whose record says it must not be
// buffered: a catastrophic loss, or regulated data.
func (r *Rules) validateDecision(where string, t *TableRule) error {
	d := t.Decision
	if d == nil || t.Mode != ModeBack {
		return nil
	}
	line := d.Line
	if line == 0 {
		line = t.Line
	}
	switch {
	case d.LossCost == LossCostCatastrophic:
		return r.errAt(line, "%s.decision: loss_cost catastrophic: data whose loss would be catastrophic must be mode: through", where)
	case d.Regulatory:
		return r.errAt(line, "%s.decision: regulatory data must be mode: through", where)
	case d.LossCost > LossCostCatastrophic:
		return r.errAt(line, "%s.decision.loss_cost: unknown cost %d", where, d.LossCost)
	case d.Recoverable > RecoveryAutomatically:
		return r.errAt(line, "%s.decision.recoverable: unknown value %d", where, d.Recoverable)
	}
	return nil
}

// DecisionFinding is what the writeback command's check says of a back
// table's decision record at now: "" when it is there and not due for
// review.
func (t *TableRule) DecisionFinding(now time.Time) string {
	switch d := t.Decision; {
	case t.Mode != ModeBack:
		return ""
	case d == nil:
		return "no decision record: say what the data is, what losing it costs and who accepted that (decision:)"
	case !d.Review.IsZero() && now.After(d.Review.AddDate(0, 0, 1)):
		return "the decision record was due for review on " + d.Review.Format(time.DateOnly)
	}
	return ""
}
