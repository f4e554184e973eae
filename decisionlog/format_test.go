package decisionlog

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestChainRecord(t *testing.T) {
	h := Head{Seq: 41, Hash: HashOf([]byte("x\n"))}
	b, next := Link([]byte(`{"time":"t","decision_id":"decision:0123456789abcdef"`), 0, h)
	want := `{"time":"t","decision_id":"decision:0123456789abcdef","seq":42,"prev":"` + h.Hash.String() + `"}` + "\n"
	if string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	if next.Seq != 42 || next.Hash != HashOf(b) {
		t.Errorf("next head: got %s", next)
	}
	var p Parser
	var r Record
	if err := p.Parse(b, &r); err != nil || r.Kind != Decision || !r.Chained || r.Seq != 42 || r.Prev != h.Hash {
		t.Errorf("parse: got %v, %+v", err, r)
	}
	if got, err := ParseHash(h.Hash.String()); err != nil || got != h.Hash {
		t.Errorf("ParseHash: got %v, %v", got, err)
	}
}

func TestParseHash(t *testing.T) {
	h := HashOf([]byte("x\n"))
	hex := h.String()[len("sha256:"):]
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"valid", "sha256:" + hex, true},
		{"zero", "sha256:" + strings.Repeat("0", 64), true},
		{"all f", "sha256:" + strings.Repeat("f", 64), true},
		{"uppercase", "sha256:" + strings.ToUpper(hex), false},
		{"one uppercase digit", "sha256:" + hex[:63] + "F", false},
		{"not hex", "sha256:" + hex[:10] + "g" + hex[11:], false},
		{"a byte over 0x7f", "sha256:" + hex[:63] + "\xe9", false},
		{"a NUL", "sha256:" + hex[:31] + "\x00" + hex[32:], false},
		{"short", "sha256:" + hex[:63], false},
		{"long", "sha256:" + hex + "0", false},
		{"another prefix", "sha512:" + hex, false},
		{"no prefix", hex + "1234567", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHash(tt.in)
			if tt.ok && (err != nil || got.String() != tt.in) || !tt.ok && (err == nil || got != Hash{}) {
				t.Errorf("ParseHash(%q): got %v, %v", tt.in, got, err)
			}
			if got2, err2 := parseHash([]byte(tt.in)); got2 != got || (err2 == nil) != (err == nil) {
				t.Errorf("parseHash([]byte(%q)): got %v, %v; ParseHash gives %v, %v", tt.in, got2, err2, got, err)
			}
		})
	}
}

func TestTornEnd(t *testing.T) {
	h := Head{Seq: 3, Hash: HashOf([]byte("y\n"))}
	tests := []struct {
		line          string
		torn, chained bool
		prev          Hash
	}{
		{string(AppendTornEnd([]byte(`{"time":"2026`), h)), true, true, h.Hash},
		{string(AppendTornEnd(nil, h)), true, true, h.Hash},
		{string(AppendTornEnd([]byte(`{"a":1}`), Head{})), true, true, Hash{}},
		{`{"time":"2026` + TornMarker + "\n", true, false, Hash{}},
		{TornMarker + "\n", true, false, Hash{}},
		{`{"time":"2026` + TornMarker + "; prev sha256:00\n", false, false, Hash{}},
		{`{"a":1}` + "\n", false, false, Hash{}},
	}
	for _, tt := range tests {
		prev, torn, chained := TornEnd([]byte(tt.line))
		if torn != tt.torn || chained != tt.chained || prev != tt.prev {
			t.Errorf("TornEnd(%q): got %v %v %v, want %v %v %v", tt.line, prev, torn, chained, tt.prev, tt.torn, tt.chained)
		}
		var r Record
		var p Parser
		err := p.Parse([]byte(tt.line), &r)
		if tt.torn && (err != nil || r.Kind != Torn) {
			t.Errorf("Parse(%q): got %v, %v; want a torn line", tt.line, err, r.Kind)
		}
	}
}

func TestParse(t *testing.T) {
	prev := `"prev":"sha256:` + strings.Repeat("ab", 32) + `"`
	tests := []struct {
		line    string
		kind    Kind
		chained bool
		seq     uint64
		err     string
	}{
		{`{"time":"t","decision_id":"d","seq":7,` + prev + "}\n", Decision, true, 7, ""},
		{`{"time":"t","decision_id":"d"}` + "\n", Decision, false, 0, ""},
		{`{"time":"t","not_given":["d"],"why":"w","seq":1,` + prev + "}\n", NotGiven, true, 1, ""},
		{`{"time":"t","checkpoint":"c","signature":"s","key":"k","seq":18446744073709551615,` + prev + "}\n", Checkpoint, true, 1<<64 - 1, ""},
		{`{"decision_id":"d","seq":18446744073709551616,` + prev + "}\n", Invalid, false, 0, "seq 18446744073709551616"},
		{`{"decision_id":"d","seq":0,` + prev + "}\n", Invalid, false, 0, "seq 0"},
		{`{"decision_id":"d","seq":1.0,` + prev + "}\n", Invalid, false, 0, "seq 1.0"},
		{`{"decision_id":"d","seq":"1",` + prev + "}\n", Invalid, false, 0, `seq "1"`},
		{`{"decision_id":"d","seq":1,"prev":"sha256:AB"}` + "\n", Invalid, false, 0, "prev"},
		{`{"decision_id":"d","seq":1}` + "\n", Decision, false, 0, "seq but no prev"},
		{`{"decision_id":"d",` + prev + "}\n", Decision, false, 0, "prev but no seq"},
		{`{"decision_id":"d","decision_id":"e"}` + "\n", Invalid, false, 0, "duplicate"},
		{`{"decision_id":"d"} {}` + "\n", Invalid, false, 0, "data after the value"},
		{`{"x":1}` + "\n", Invalid, false, 0, "not a record"},
		{`[1]` + "\n", Invalid, false, 0, "not a JSON object"},
		{"\n", Invalid, false, 0, "not JSON"},
		{`{"decision_id":"d"`, Invalid, false, 0, "not JSON"},
		{`{"decision_id":"d\xff"}` + "\n", Invalid, false, 0, "not JSON"},
	}
	var p Parser
	for _, tt := range tests {
		var r Record
		err := p.Parse([]byte(tt.line), &r)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("Parse(%q): %v", tt.line, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("Parse(%q): got error %v, want %q", tt.line, err, tt.err)
		case r.Kind != tt.kind || r.Chained != tt.chained || r.Seq != tt.seq:
			t.Errorf("Parse(%q): got %v chained %v seq %d, want %v %v %d", tt.line, r.Kind, r.Chained, r.Seq, tt.kind, tt.chained, tt.seq)
		}
	}
}

func TestCheckpointMessage(t *testing.T) {
	h := Head{Seq: 41, Hash: HashOf([]byte("x\n"))}
	got := string(CheckpointMessage(h, time.Date(2026, 6, 24, 9, 12, 5, 7, time.FixedZone("X", 3600))))
	want := "flex-auth-log checkpoint seq=41 head=" + h.Hash.String() + " time=2026-06-24T08:12:05.000000007Z"
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 6, 23, 10, 11, 12, 7, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 6, 23, 10, 11, 12, 120000000, time.FixedZone("CEST", 7200)),
	} {
		if got, want := string(AppendTime(nil, tm)), tm.UTC().Format(TimeLayout); got != want {
			t.Errorf("AppendTime(%v): got %s, want %s", tm, got, want)
		}
	}
}

func TestReadTail(t *testing.T) {
	var l builder
	l.decision()
	l.decision()
	chained := l.bytes()
	ls := lines(chained)
	old := `{"time":"t","decision_id":"decision:0000000000000001"}` + "\n"
	big := strings.Repeat(old, tailWindow/len(old)+10) // more than a window of lines before the chain
	tests := []struct {
		name     string
		data     string
		head     Head
		fragment string
	}{
		{"empty", "", Head{}, ""},
		{"chained", string(chained), l.head, ""},
		{"a fragment", string(chained) + `{"time":"20`, l.head, `{"time":"20`},
		{"only a fragment", `{"time":"20`, Head{}, `{"time":"20`},
		{"a torn line last", string(AppendTornEnd([]byte(string(chained)+"xy"), l.head)), Head{Seq: 2, Hash: HashOf(AppendTornEnd([]byte("xy"), l.head))}, ""},
		{"written before the chain", old + old, Head{Hash: HashOf([]byte(old))}, ""},
		{"many lines before the chain", big, Head{Hash: HashOf([]byte(old))}, ""},
		{"chain after many unchained", big + string(chained), l.head, ""},
		{"one line", ls[0], Head{Seq: 1, Hash: HashOf([]byte(ls[0]))}, ""},
		{"a long last line", string(chained) + strings.Repeat("x", 3*tailWindow) + "\n", Head{Seq: 2, Hash: HashOf([]byte(strings.Repeat("x", 3*tailWindow) + "\n"))}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadTail(strings.NewReader(tt.data), int64(len(tt.data)))
			if err != nil {
				t.Fatal(err)
			}
			if got.Head != tt.head || string(got.Fragment) != tt.fragment {
				t.Errorf("got %s %q, want %s %q", got.Head, got.Fragment, tt.head, tt.fragment)
			}
		})
	}
}

// TestProcessLines checks order, the last line without a newline, and
// chunk boundaries, with readers that return little at a time.
func TestProcessLines(t *testing.T) {
	var want []string
	var b bytes.Buffer
	for i := range 30000 {
		line := fmt.Sprintf("%d %s\n", i, strings.Repeat("x", i%200))
		want = append(want, line)
		b.WriteString(line)
	}
	b.WriteString("last")
	want = append(want, "last")
	for name, r := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(b.Bytes()) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b.Bytes()[:200000])) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(b.Bytes())) },
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			err := ProcessLines(r(), 3, func() func([]byte, *int) {
				return func(line []byte, n *int) { *n = len(line) }
			}, func(line []byte, n *int) error {
				if *n != len(line) {
					return fmt.Errorf("line %d: process saw %d bytes, consume %d", len(got)+1, *n, len(line))
				}
				got = append(got, string(line))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			w := want
			if name == "one byte" {
				w = lines(b.Bytes()[:200000])
			}
			if !slices.Equal(got, w) {
				t.Errorf("got %d lines, want %d", len(got), len(w))
			}
		})
	}
	t.Run("stop", func(t *testing.T) {
		stop := fmt.Errorf("stop")
		n := 0
		err := ProcessLines(bytes.NewReader(b.Bytes()), 2, func() func([]byte, *int) {
			return func([]byte, *int) {}
		}, func([]byte, *int) error {
			if n++; n == 1000 {
				return stop
			}
			return nil
		})
		if err != stop || n != 1000 {
			t.Errorf("got %v after %d lines, want stop after 1000", err, n)
		}
	})
}
