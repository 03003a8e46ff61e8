package writeback

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// rulesParser walks the YAML node tree of a rules file.
type rulesParser struct {
	file   string
	merged map[*yaml.Node][]yamlEntry // entries of mappings already expanded
	active map[*yaml.Node]bool        // mappings being expanded (merge cycles)
	budget int                        // keys and key columns left to read (alias blow-up)
}

// yamlEntry is one key of a mapping, after merge keys are applied.
type yamlEntry struct {
	key  *yaml.Node // the key as written, for its line
	val  *yaml.Node // the value as written (maybe an alias)
	name string     // the key's text
}

// newRulesParser returns a parser for the rules file named file.
func newRulesParser(file string) *rulesParser {
	return &rulesParser{
		file:   file,
		merged: make(map[*yaml.Node][]yamlEntry),
		active: make(map[*yaml.Node]bool),
		budget: 1 << 20,
	}
}

// errAt returns a *RulesError at line, prefixed with the field path where.
func (p *rulesParser) errAt(line int, where, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	if line < 0 {
		line = 0
	}
	return &RulesError{File: p.file, Line: line, Msg: msg}
}

// decode parses data as exactly one YAML document.
func (p *rulesParser) decode(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decodeYAMLNode(dec, &doc); err == io.EOF {
		return nil, p.errAt(0, "", "the rules file is empty")
	} else if err != nil {
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	if err := decodeYAMLNode(dec, &extra); err == nil {
		return nil, p.errAt(extra.Line, "", "a second YAML document starts here (a rules file holds one)")
	} else if err != io.EOF {
		return nil, p.yamlError(err)
	}
	return &doc, nil
}

// decodeYAMLNode decodes the next document, turning a panic of the YAML library
// into an error.
func decodeYAMLNode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("yaml: %v", v)
		}
	}()
	return dec.Decode(n)
}

// yamlError turns a YAML syntax error ("yaml: line 3: ...") into a RulesError.
func (p *rulesParser) yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil && n > 0 {
				line, msg = n, rest[i+2:]
			}
		}
	}
	if msg == "" {
		msg = "unknown problem"
	}
	return p.errAt(line, "", "invalid YAML: %s", msg)
}

// deref follows aliases and rejects tags a rules file has no use for.
func (p *rulesParser) deref(n *yaml.Node, where string) (*yaml.Node, error) {
	orig := n
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i == 100 {
			return nil, p.errAt(orig.Line, where, "alias chain too long")
		}
		n = n.Alias
	}
	if n == nil {
		return nil, p.errAt(orig.Line, where, "alias to nothing")
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!map", "!!seq", "!!merge":
	default:
		return nil, p.errAt(orig.Line, where, "unsupported YAML tag %q", n.Tag)
	}
	switch n.Kind {
	case yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode:
	default:
		return nil, p.errAt(orig.Line, where, "unexpected YAML node")
	}
	return n, nil
}

// yamlIsNull reports whether n is an empty or null scalar.
func yamlIsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// yamlKindOf describes a (dereferenced) node for messages.
func yamlKindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if yamlIsNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

// entries lists the keys of mapping m (already dereferenced), applying merge
// keys (<<): keys written in m win over merged ones, and earlier merged
// mappings win over later ones. Duplicate keys written in m are errors.
func (p *rulesParser) entries(m *yaml.Node, where string) ([]yamlEntry, error) {
	if out, ok := p.merged[m]; ok {
		return out, nil
	}
	if p.active[m] {
		return nil, p.errAt(m.Line, where, "a merge (<<) includes the mapping it is in")
	}
	p.active[m] = true
	defer delete(p.active, m)

	out, merges, seen, err := p.writtenEntries(m, where)
	if err != nil {
		return nil, err
	}
	p.budget -= len(out)
	for _, mv := range merges {
		srcs, err := p.mergeSources(mv, where)
		if err != nil {
			return nil, err
		}
		for _, src := range srcs {
			sub, err := p.entries(src, where)
			if err != nil {
				return nil, err
			}
			p.budget -= len(sub)
			if p.budget < 0 {
				return nil, p.errAt(m.Line, where, "too many merged keys")
			}
			for _, e := range sub {
				if _, ok := seen[e.name]; !ok {
					seen[e.name] = e.key.Line
					out = append(out, e)
				}
			}
		}
	}
	if p.budget < 0 {
		return nil, p.errAt(m.Line, where, "too many keys")
	}
	p.merged[m] = out
	return out, nil
}

// writtenEntries returns the keys written in mapping m, in order, the values
// of its merge keys (<<), and the line of each written key by name. Duplicate
// written keys are errors.
func (p *rulesParser) writtenEntries(m *yaml.Node, where string) (out []yamlEntry, merges []*yaml.Node, seen map[string]int, err error) {
	seen = make(map[string]int) // key -> line
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		kd, err := p.deref(k, where)
		if err != nil {
			return nil, nil, nil, err
		}
		if kd.Kind == yaml.ScalarNode && kd.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if kd.Kind != yaml.ScalarNode {
			return nil, nil, nil, p.errAt(k.Line, where, "a key must be a name, not %s", yamlKindOf(kd))
		}
		name := kd.Value
		if yamlIsNull(kd) {
			name = ""
		}
		if first, dup := seen[name]; dup {
			return nil, nil, nil, p.errAt(k.Line, where, "duplicate key %q (first at line %d)", name, first)
		}
		seen[name] = k.Line
		out = append(out, yamlEntry{key: k, val: v, name: name})
	}
	return out, merges, seen, nil
}

// mergeSources returns the mappings a merge key's value mv names: one
// mapping, or a list of them.
func (p *rulesParser) mergeSources(mv *yaml.Node, where string) ([]*yaml.Node, error) {
	md, err := p.deref(mv, where)
	if err != nil {
		return nil, err
	}
	switch md.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{md}, nil
	case yaml.SequenceNode:
		srcs := make([]*yaml.Node, 0, len(md.Content))
		for _, item := range md.Content {
			d, err := p.deref(item, where)
			if err != nil {
				return nil, err
			}
			if d.Kind != yaml.MappingNode {
				return nil, p.errAt(item.Line, where, "a merge (<<) list may only hold mappings, not %s", yamlKindOf(d))
			}
			srcs = append(srcs, d)
		}
		return srcs, nil
	}
	return nil, p.errAt(mv.Line, where, "a merge (<<) takes a mapping or a list of mappings, not %s", yamlKindOf(md))
}

// mapping returns the entries of v, which must be a mapping; a null v is an
// empty mapping. want describes the expected mapping for messages.
func (p *rulesParser) mapping(v *yaml.Node, where, want string) ([]yamlEntry, error) {
	n, err := p.deref(v, where)
	if err != nil {
		return nil, err
	}
	switch {
	case yamlIsNull(n):
		return nil, nil
	case n.Kind == yaml.MappingNode:
		return p.entries(n, where)
	}
	return nil, p.errAt(v.Line, where, "want %s, not %s", want, yamlKindOf(n))
}

// rules builds Rules from a decoded document.
func (p *rulesParser) rules(doc *yaml.Node) (*Rules, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, p.errAt(doc.Line, "", "not a YAML document")
	}
	top, err := p.deref(doc.Content[0], "")
	if err != nil {
		return nil, err
	}
	if yamlIsNull(top) {
		return nil, p.errAt(top.Line, "", "the rules file is empty")
	}
	if top.Kind != yaml.MappingNode {
		return nil, p.errAt(doc.Content[0].Line, "", "the rules file must be a mapping with the sections journal and tables, not %s", yamlKindOf(top))
	}
	ents, err := p.entries(top, "")
	if err != nil {
		return nil, err
	}
	r := &Rules{Tables: make(map[string]*TableRule)}
	var journal, tables *yamlEntry
	for i := range ents {
		switch ents[i].name {
		case "journal":
			journal = &ents[i]
		case "tables":
			tables = &ents[i]
		case "manage_schema":
			manage, err := p.boolean(ents[i].val, "manage_schema")
			if err != nil {
				return nil, err
			}
			r.SchemaCheckOnly = !manage
		case "instance":
			s, err := p.str(ents[i].val, "instance", "a name")
			if err == nil {
				if cerr := checkNATSName(s); cerr != nil {
					err = p.errAt(ents[i].val.Line, "instance", "%v", cerr)
				}
			}
			if err != nil {
				return nil, err
			}
			r.Instance = s
		default:
			return nil, p.errAt(ents[i].key.Line, "", "unknown top-level field %q (want instance, journal, manage_schema, tables)", ents[i].name)
		}
	}
	if journal != nil {
		if r.Journal, err = p.journal(journal); err != nil {
			return nil, err
		}
	}
	if tables != nil {
		if err := p.tables(tables, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// journal parses the journal section.
func (p *rulesParser) journal(e *yamlEntry) (*JournalRule, error) {
	const where = "journal"
	ents, err := p.mapping(e.val, where, "a mapping with path and fsync, or nats, stream, replicas, lease and takeover")
	if err != nil {
		return nil, err
	}
	j := &JournalRule{Fsync: FsyncEverysec, Line: e.key.Line}
	havePath := false
	fileLine, natsLine := 0, 0 // the first field of each kind of journal
	for _, f := range ents {
		fw := where + "." + f.name
		switch f.name {
		case "path":
			s, err := p.str(f.val, fw, "a file path")
			if err != nil {
				return nil, err
			}
			switch {
			case s == "":
				return nil, p.errAt(f.val.Line, fw, "must not be empty")
			case strings.IndexByte(s, 0) >= 0:
				return nil, p.errAt(f.val.Line, fw, "must not contain a NUL byte")
			}
			j.Path, havePath = s, true
			fileLine = cmp.Or(fileLine, f.key.Line)
		case "fsync":
			i, err := p.enum(f.val, fw, "always", "everysec", "no")
			if err != nil {
				return nil, err
			}
			j.Fsync = [...]FsyncPolicy{FsyncAlways, FsyncEverysec, FsyncNo}[i]
			fileLine = cmp.Or(fileLine, f.key.Line)
		case "nats":
			s, err := p.str(f.val, fw, "NATS server URLs, comma-separated")
			if err != nil {
				return nil, err
			}
			if strings.TrimSpace(s) == "" {
				return nil, p.errAt(f.val.Line, fw, "must not be empty")
			}
			for _, u := range strings.Split(s, ",") {
				if strings.TrimSpace(u) == "" {
					return nil, p.errAt(f.val.Line, fw, "an empty URL in %q", s)
				}
			}
			j.NATS = s
			natsLine = cmp.Or(natsLine, f.key.Line)
		case "stream":
			s, err := p.str(f.val, fw, "a stream name")
			if err == nil {
				if cerr := checkNATSName(s); cerr != nil {
					err = p.errAt(f.val.Line, fw, "%v", cerr)
				}
			}
			if err != nil {
				return nil, err
			}
			j.Stream = s
			natsLine = cmp.Or(natsLine, f.key.Line)
		case "replicas":
			if j.Replicas, err = p.positive(f.val, fw, 5); err != nil {
				return nil, err
			}
			natsLine = cmp.Or(natsLine, f.key.Line)
		case "lease":
			if j.Lease, err = p.duration(f.val, fw); err != nil {
				return nil, err
			}
			if j.Lease < time.Second {
				return nil, p.errAt(f.val.Line, fw, "must be at least 1s (the lease is renewed three times per lease), got %s", j.Lease)
			}
			natsLine = cmp.Or(natsLine, f.key.Line)
		case "takeover":
			if j.Takeover, err = p.boolean(f.val, fw); err != nil {
				return nil, err
			}
			natsLine = cmp.Or(natsLine, f.key.Line)
		default:
			return nil, p.errAt(f.key.Line, where, "unknown field %q (want path and fsync for a local journal; nats, stream, replicas, lease and takeover for a replicated one)", f.name)
		}
	}
	switch {
	case fileLine != 0 && natsLine != 0:
		return nil, p.errAt(max(fileLine, natsLine), where, "path and fsync (a local journal) and nats, stream, replicas, lease and takeover (a replicated one) are exclusive")
	case natsLine != 0 && j.NATS == "":
		return nil, p.errAt(e.key.Line, where, "nats is required (the NATS servers' URLs) for a replicated journal")
	case j.NATS != "":
		return j, nil
	case !havePath:
		return nil, p.errAt(e.key.Line, where, "path (a local journal) or nats (a replicated one) is required")
	}
	if p.file != "" && !filepath.IsAbs(j.Path) {
		j.Path = filepath.Join(filepath.Dir(p.file), j.Path)
	}
	return j, nil
}

// tables parses the tables section into r.Tables.
func (p *rulesParser) tables(e *yamlEntry, r *Rules) error {
	const where = "tables"
	ents, err := p.mapping(e.val, where, "a mapping from table names to rules")
	if err != nil {
		return err
	}
	raw := make(map[string]yamlEntry, len(ents)) // normalized name -> entry
	for _, te := range ents {
		name, err := normalizeRuleName(te.name)
		if err != nil {
			return p.errAt(te.key.Line, where, "bad table name %q: %v", te.name, err)
		}
		if prev, dup := raw[name]; dup {
			return p.errAt(te.key.Line, where, "%q (line %d) and %q (line %d) name the same table %s",
				prev.name, prev.key.Line, te.name, te.key.Line, name)
		}
		raw[name] = te
		t, err := p.table(te, name, r.Journal)
		if err != nil {
			return err
		}
		r.Tables[name] = t
	}
	return nil
}

// ruleTableFields lists a table's fields, for messages.
const ruleTableFields = "mode, key, max_loss, batch, max_dirty, priority, reads, ack, on_full, rows_affected, allow, order_by, decision"

// table parses one table's rule.
func (p *rulesParser) table(te yamlEntry, name string, jr *JournalRule) (*TableRule, error) {
	where := "tables." + te.name
	ents, err := p.mapping(te.val, where, "a mapping of "+ruleTableFields)
	if err != nil {
		return nil, err
	}
	t := &TableRule{
		Name:     name,
		Priority: PriorityNormal,
		Reads:    ReadsFlush,
		Ack:      AckMemory,
		OnFull:   FullBlock,
		Line:     te.key.Line,
	}
	haveMode := false
	ackLine := 0
	for _, f := range ents {
		fw := where + "." + f.name
		var i int
		switch f.name {
		case "mode":
			i, err = p.enum(f.val, fw, "back", "through")
			t.Mode = [...]Mode{ModeBack, ModeThrough}[i]
			haveMode = true
		case "key":
			t.Key, err = p.keyColumns(f.val, fw)
		case "max_loss":
			t.MaxLoss, err = p.duration(f.val, fw)
		case "batch":
			t.Batch, err = p.positive(f.val, fw, maxBatch)
		case "max_dirty":
			t.MaxDirty, err = p.positive(f.val, fw, rulesMaxInt)
		case "priority":
			i, err = p.enum(f.val, fw, "high", "normal", "low")
			t.Priority = [...]Priority{PriorityHigh, PriorityNormal, PriorityLow}[i]
		case "reads":
			i, err = p.enum(f.val, fw, "flush", "stale")
			t.Reads = [...]ReadPolicy{ReadsFlush, ReadsStale}[i]
		case "ack":
			i, err = p.enum(f.val, fw, "memory", "replicated", "disk")
			t.Ack = [...]AckLevel{AckMemory, AckReplicated, AckDisk}[i]
			ackLine = f.val.Line
		case "on_full":
			i, err = p.enum(f.val, fw, "block", "through", "error")
			t.OnFull = [...]OnFull{FullBlock, FullThrough, FullError}[i]
		case "rows_affected":
			i, err = p.enum(f.val, fw, "exact", "assume")
			t.RowsAffected = [...]RowsPolicy{RowsExact, RowsAssume}[i]
		case "allow":
			t.Allow, err = p.allowance(f.val, fw)
		case "order_by":
			t.OrderBy, err = p.columnName(f.val, fw)
			t.orderByLine = f.val.Line
		case "decision":
			t.Decision, err = p.decision(f, fw)
		default:
			return nil, p.errAt(f.key.Line, where, "unknown field %q (want %s)", f.name, ruleTableFields)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !haveMode:
		return nil, p.errAt(te.key.Line, where, "mode is required (back or through)")
	case t.Mode == ModeBack && len(t.Key) == 0:
		return nil, p.errAt(te.key.Line, where, "mode back needs key (the row's primary or unique key columns)")
	case t.Ack == AckDisk && (jr == nil || jr.Path == ""):
		return nil, p.errAt(ackLine, where+".ack", "disk needs a local journal (journal.path)")
	case t.Ack == AckReplicated && (jr == nil || jr.NATS == ""):
		return nil, p.errAt(ackLine, where+".ack", "replicated needs a replicated journal (journal.nats)")
	}
	return t, nil
}

// columnName parses one column name, normalized as the key's are.
func (p *rulesParser) columnName(v *yaml.Node, where string) (string, error) {
	s, err := p.str(v, where, "a column name")
	if err != nil {
		return "", err
	}
	col, err := normalizeColumnName(s)
	if err != nil {
		return "", p.errAt(v.Line, where, "bad column name %q: %v", s, err)
	}
	return col, nil
}

// allowance parses allow: a list of the features in allowNames.
func (p *rulesParser) allowance(v *yaml.Node, where string) (Allowance, error) {
	want := "a list of " + strings.Join(allowNames, ", ")
	n, err := p.deref(v, where)
	if err != nil {
		return 0, err
	}
	if n.Kind != yaml.SequenceNode {
		return 0, p.errAt(v.Line, where, "want %s, not %s", want, yamlKindOf(n))
	}
	if p.budget -= len(n.Content); p.budget < 0 {
		return 0, p.errAt(v.Line, where, "too many entries in the file")
	}
	var a Allowance
	for _, item := range n.Content {
		i, err := p.enum(item, where, allowNames...)
		if err != nil {
			return 0, err
		}
		if a&(1<<i) != 0 {
			return 0, p.errAt(item.Line, where, "%s is listed twice", allowNames[i])
		}
		a |= 1 << i
	}
	return a, nil
}

// rulesMaxInt is the largest int.
const rulesMaxInt = int(^uint(0) >> 1)

// scalar returns the dereferenced scalar v; want describes the expected value.
func (p *rulesParser) scalar(v *yaml.Node, where, want string) (*yaml.Node, error) {
	n, err := p.deref(v, where)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.ScalarNode {
		return nil, p.errAt(v.Line, where, "want %s, not %s", want, yamlKindOf(n))
	}
	if yamlIsNull(n) {
		return nil, p.errAt(v.Line, where, "missing value (want %s)", want)
	}
	return n, nil
}

// str returns the text of scalar v.
func (p *rulesParser) str(v *yaml.Node, where, want string) (string, error) {
	n, err := p.scalar(v, where, want)
	if err != nil {
		return "", err
	}
	return n.Value, nil
}

// enum returns the index of v's value in names.
func (p *rulesParser) enum(v *yaml.Node, where string, names ...string) (int, error) {
	want := "one of " + strings.Join(names, ", ")
	s, err := p.str(v, where, want)
	if err != nil {
		return 0, err
	}
	if i := slices.Index(names, s); i >= 0 {
		return i, nil
	}
	return 0, p.errAt(v.Line, where, "%q is not %s", s, want)
}

// boolean returns v, which must be written true or false (yes, no, on and
// off are YAML 1.1 spellings that readers disagree on: refused).
func (p *rulesParser) boolean(v *yaml.Node, where string) (bool, error) {
	const want = "true or false"
	n, err := p.scalar(v, where, want)
	if err != nil {
		return false, err
	}
	if n.ShortTag() == "!!bool" {
		switch n.Value {
		case "true", "True", "TRUE":
			return true, nil
		case "false", "False", "FALSE":
			return false, nil
		}
	}
	return false, p.errAt(v.Line, where, "%q is not %s", n.Value, want)
}

// positive returns v as an integer in [1, limit].
func (p *rulesParser) positive(v *yaml.Node, where string, limit int) (int, error) {
	n, err := p.scalar(v, where, "a positive integer")
	if err != nil {
		return 0, err
	}
	if n.ShortTag() != "!!int" {
		return 0, p.errAt(v.Line, where, "%q is not an integer", n.Value)
	}
	// As the YAML library reads integers: _ separators, 0x, 0o, 0b prefixes.
	x, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(n.Value, "-"):
		return 0, p.errAt(v.Line, where, "must be at most %d, got %s", limit, n.Value)
	case err != nil && errors.Is(err, strconv.ErrRange):
		return 0, p.errAt(v.Line, where, "must be > 0, got %s", n.Value)
	case err != nil:
		return 0, p.errAt(v.Line, where, "%q is not an integer", n.Value)
	case x <= 0:
		return 0, p.errAt(v.Line, where, "must be > 0, got %d", x)
	case uint64(x) > uint64(limit):
		return 0, p.errAt(v.Line, where, "must be at most %d, got %d", limit, x)
	}
	return int(x), nil
}

// duration returns v as a positive Go duration (5s, 250ms, 1m).
func (p *rulesParser) duration(v *yaml.Node, where string) (time.Duration, error) {
	const want = "a duration like 5s, 250ms or 1m"
	n, err := p.scalar(v, where, want)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		if tag := n.ShortTag(); tag == "!!int" || tag == "!!float" {
			return 0, p.errAt(v.Line, where, "%s has no unit (want %s)", n.Value, want)
		}
		return 0, p.errAt(v.Line, where, "%q is not %s", n.Value, want)
	}
	if d <= 0 {
		return 0, p.errAt(v.Line, where, "must be > 0, got %s", n.Value)
	}
	return d, nil
}

// keyColumns returns v, a column name or a list of them, normalized.
func (p *rulesParser) keyColumns(v *yaml.Node, where string) ([]string, error) {
	const want = "a column name or a list of column names"
	n, err := p.deref(v, where)
	if err != nil {
		return nil, err
	}
	var items []*yaml.Node
	switch {
	case n.Kind == yaml.SequenceNode:
		items = n.Content
		if len(items) == 0 {
			return nil, p.errAt(v.Line, where, "must name at least one column")
		}
	case n.Kind == yaml.ScalarNode && !yamlIsNull(n):
		items = []*yaml.Node{v}
	case yamlIsNull(n):
		return nil, p.errAt(v.Line, where, "missing value (want %s)", want)
	default:
		return nil, p.errAt(v.Line, where, "want %s, not %s", want, yamlKindOf(n))
	}
	// Aliases can repeat a long list under many tables: bound the total work.
	if p.budget -= len(items); p.budget < 0 {
		return nil, p.errAt(v.Line, where, "too many key columns in the file")
	}
	cols := make([]string, 0, len(items))
	seen := make(map[string]int, len(items)) // column -> line
	for _, item := range items {
		s, err := p.str(item, where, "a column name")
		if err != nil {
			return nil, err
		}
		col, err := normalizeColumnName(s)
		if err != nil {
			return nil, p.errAt(item.Line, where, "bad column name %q: %v", s, err)
		}
		if first, dup := seen[col]; dup {
			return nil, p.errAt(item.Line, where, "column %s is listed twice (first at line %d)", col, first)
		}
		seen[col] = item.Line
		cols = append(cols, col)
	}
	return cols, nil
}
