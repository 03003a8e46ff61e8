package writeback

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"time"
)

// deadLetterFile appends dead letters to a file, one JSON object a line (see
// README "Dead-letter file" for the format). Dead letters are rare, so each
// is written and fsynced on its own: once a dead letter is reported it
// survives a crash.
type deadLetterFile struct {
	path string
	mu   sync.Mutex // one writer at a time, so lines never interleave
	f    *os.File
}

// openDeadLetterFile opens path for appending, creating it if need be.
func openDeadLetterFile(path string) (*deadLetterFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("writeback: dead-letter file %s: %w", path, err)
	}
	return &deadLetterFile{path: path, f: f}, nil
}

// write appends dl as one line and syncs the file.
func (d *deadLetterFile) write(dl DeadLetter) error {
	line := append(encodeDeadLetter(dl), '\n')
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return errors.New("writeback: dead-letter file is closed")
	}
	if _, err := d.f.Write(line); err != nil {
		return err
	}
	return d.f.Sync()
}

// close closes the file; later writes fail.
func (d *deadLetterFile) close() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	if err != nil {
		return fmt.Errorf("writeback: dead-letter file %s: %w", d.path, err)
	}
	return nil
}

// deadLetterJSON is the line format of the dead-letter file.
type deadLetterJSON struct {
	Time    string            `json:"time"`
	Table   string            `json:"table"`
	Key     []json.RawMessage `json:"key"`
	Op      string            `json:"op"`
	Columns []string          `json:"columns"`
	Values  []json.RawMessage `json:"values"`
	Delta   []bool            `json:"delta,omitempty"`
	Func    []string          `json:"func,omitempty"`
	UpdCols []string          `json:"update_columns,omitempty"`
	UpdVals []json.RawMessage `json:"update_values,omitempty"`
	UpdDel  []bool            `json:"update_delta,omitempty"`
	Writes  int               `json:"writes"`
	NoMatch bool              `json:"no_match"`
	Error   *string           `json:"error"`
}

// encodeDeadLetter is dl as one JSON object, without a newline.
func encodeDeadLetter(dl DeadLetter) []byte {
	j := deadLetterJSON{
		Time: dl.Time.UTC().Format(time.RFC3339Nano), Table: dl.Table, Op: dl.Op,
		Columns: dl.Columns, Delta: dl.Delta, Func: dl.Func, Writes: dl.Writes, NoMatch: dl.NoMatch,
		Key: dlEncodeValues(dl.Key), Values: dlEncodeValues(dl.Values),
		UpdCols: dl.UpdateColumns, UpdDel: dl.UpdateDelta,
	}
	if dl.UpdateValues != nil {
		j.UpdVals = dlEncodeValues(dl.UpdateValues)
	}
	if j.Columns == nil {
		j.Columns = []string{}
	}
	if dl.Err != nil {
		s := dl.Err.Error()
		j.Error = &s
	}
	b, err := json.Marshal(j)
	if err != nil { // every field is marshalable; keep a trace regardless
		b, _ = json.Marshal(map[string]string{"table": dl.Table, "encode_error": err.Error(), "text": fmt.Sprintf("%+v", dl)})
	}
	return b
}

func dlEncodeValues(vs []any) []json.RawMessage {
	out := make([]json.RawMessage, len(vs))
	for i, v := range vs {
		out[i] = dlEncodeValue(v)
	}
	return out
}

// dlEncodeValue writes a driver value so that dlDecodeValue gives it back with
// its Go type: JSON's own null, booleans, strings and integers stand for nil,
// bool, string and int64; every other type is an object with one tag.
func dlEncodeValue(v any) json.RawMessage {
	var x any
	switch v := v.(type) {
	case nil, bool, string, int64:
		x = v
	case float64:
		switch {
		case math.IsNaN(v), math.IsInf(v, 0):
			x = map[string]string{"float64": strconv.FormatFloat(v, 'g', -1, 64)}
		default:
			x = map[string]float64{"float64": v}
		}
	case []byte:
		x = map[string]string{"bytes": base64.StdEncoding.EncodeToString(v)}
	case time.Time:
		x = map[string]string{"time": v.Format(time.RFC3339Nano)}
	default:
		x = map[string]string{"type": fmt.Sprintf("%T", v), "text": fmt.Sprint(v)}
	}
	b, err := json.Marshal(x)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"type": fmt.Sprintf("%T", v), "text": fmt.Sprint(v)})
	}
	return b
}

// dlDecodeValue is the inverse of dlEncodeValue.
func dlDecodeValue(raw json.RawMessage) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errors.New("empty value")
	}
	switch raw[0] {
	case 'n':
		return nil, nil
	case 't', 'f':
		var b bool
		err := json.Unmarshal(raw, &b)
		return b, err
	case '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	case '{':
	default:
		return strconv.ParseInt(string(raw), 10, 64)
	}
	var tagged map[string]json.RawMessage
	if err := json.Unmarshal(raw, &tagged); err != nil {
		return nil, err
	}
	if f, ok := tagged["float64"]; ok {
		var n float64
		if json.Unmarshal(f, &n) == nil {
			return n, nil
		}
		var s string
		if err := json.Unmarshal(f, &s); err != nil {
			return nil, err
		}
		return strconv.ParseFloat(s, 64)
	}
	var s string
	if b, ok := tagged["bytes"]; ok {
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, err
		}
		return base64.StdEncoding.DecodeString(s)
	}
	if tm, ok := tagged["time"]; ok {
		if err := json.Unmarshal(tm, &s); err != nil {
			return nil, err
		}
		return time.Parse(time.RFC3339Nano, s)
	}
	return nil, fmt.Errorf("value %s has no replayable type", raw)
}

// ParseDeadLetter decodes one line of a dead-letter file (see
// WithDeadLetterFile), for inspection or replay. Values come back with the
// Go types the driver held (int64, float64, bool, string, []byte,
// time.Time, nil); Err carries the database's message as text.
func ParseDeadLetter(line []byte) (DeadLetter, error) {
	var j deadLetterJSON
	if err := json.Unmarshal(line, &j); err != nil {
		return DeadLetter{}, fmt.Errorf("writeback: dead letter: %w", err)
	}
	tm, err := time.Parse(time.RFC3339Nano, j.Time)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("writeback: dead letter time: %w", err)
	}
	dl := DeadLetter{Time: tm, Table: j.Table, Op: j.Op, Columns: j.Columns, Delta: j.Delta, Func: j.Func, Writes: j.Writes, NoMatch: j.NoMatch,
		UpdateColumns: j.UpdCols, UpdateDelta: j.UpdDel}
	for _, list := range []struct {
		raw []json.RawMessage
		out *[]any
	}{{j.Key, &dl.Key}, {j.Values, &dl.Values}, {j.UpdVals, &dl.UpdateValues}} {
		for i, r := range list.raw {
			v, err := dlDecodeValue(r)
			if err != nil {
				return DeadLetter{}, fmt.Errorf("writeback: dead letter %s value %d: %w", j.Table, i, err)
			}
			*list.out = append(*list.out, v)
		}
	}
	if j.Error != nil {
		dl.Err = errors.New(*j.Error)
	}
	return dl, nil
}
