package natsjournal

import (
	"bytes"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	lsns := []uint64{7, 8, 1 << 62}
	recs := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{0xff}, 300)}
	b := encodeMsg(nil, lsns, recs)
	var gotL []uint64
	var gotR [][]byte
	if err := decodeMsg(b, func(lsn uint64, rec []byte) error {
		gotL = append(gotL, lsn)
		gotR = append(gotR, append([]byte(nil), rec...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(gotL) != 3 {
		t.Fatalf("decoded %d records, want 3", len(gotL))
	}
	for i := range lsns {
		if gotL[i] != lsns[i] || !bytes.Equal(gotR[i], recs[i]) {
			t.Errorf("record %d: lsn %d %q, want %d %q", i, gotL[i], gotR[i], lsns[i], recs[i])
		}
	}
}

func TestMessageDamaged(t *testing.T) {
	good := encodeMsg(nil, []uint64{1, 2}, [][]byte{[]byte("hello"), []byte("world")})
	for name, b := range map[string][]byte{
		"empty":       nil,
		"not ours":    []byte("{\"json\": true}"),
		"version":     {msgMagic, 9, 0},
		"cut":         good[:len(good)-2],
		"extra":       append(append([]byte(nil), good...), 0),
		"huge count":  {msgMagic, msgVersion, 0xff, 0xff, 0xff, 0x0f},
		"huge length": {msgMagic, msgVersion, 1, 1, 0xff, 0xff, 0x03},
	} {
		if err := decodeMsg(b, func(uint64, []byte) error { return nil }); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// FuzzDecodeMsg: no message read from a stream panics the decoder.
func FuzzDecodeMsg(f *testing.F) {
	f.Add(encodeMsg(nil, []uint64{1}, [][]byte{[]byte("x")}))
	f.Add([]byte{msgMagic, msgVersion, 2, 1, 1, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = decodeMsg(b, func(uint64, []byte) error { return nil })
	})
}
