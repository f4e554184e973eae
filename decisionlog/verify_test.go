package decisionlog

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// sampleLog is a chained log with every kind of line:
//
//	1-5 decisions, 6 checkpoint, 7-9 decisions, 10 torn line,
//	11 decision, 12 not_given naming it, 13-15 decisions,
//	16 checkpoint, 17-18 decisions
func sampleLog(t testing.TB, s *Signer) []byte {
	t.Helper()
	l := builder{signer: s}
	for range 5 {
		l.decision()
	}
	l.checkpoint(t)
	for range 3 {
		l.decision()
	}
	l.torn(`{"time":"2026-06-24T09:12:05.1Z","decision_id":"decision:00000000000000`)
	id := l.decision()
	l.notGiven(id)
	for range 3 {
		l.decision()
	}
	l.checkpoint(t)
	l.decision()
	l.decision()
	return l.bytes()
}

type file struct {
	name string
	data []byte
}

func verify(t *testing.T, opt Options, files ...file) *Result {
	t.Helper()
	v := NewVerifier(opt)
	for _, f := range files {
		if err := v.Add(f.name, bytes.NewReader(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	return v.Result()
}

func TestVerifyIntact(t *testing.T) {
	s, keys := newKey(t, 1)
	data := sampleLog(t, s)
	for _, opt := range []Options{{}, {Keys: keys}, {Workers: 1}} {
		r := verify(t, opt, file{"log", data})
		if !r.Intact() {
			t.Fatalf("intact log: %v", r.Problem)
		}
		if r.Decisions != 14 || r.NotGiven != 1 || r.Checkpoints != 2 || r.TornCount != 1 || r.Torn[0].Line != 10 {
			t.Errorf("counts: got %d decisions, %d not_given, %d checkpoints, torn %v; want 14, 1, 2, line 10", r.Decisions, r.NotGiven, r.Checkpoints, r.Torn)
		}
		if r.Head.Seq != 17 || r.Head.Hash != HashOf([]byte(lines(data)[17])) {
			t.Errorf("head: got %s, want seq 17 and the last line's hash", r.Head)
		}
		if opt.Keys != nil && (r.Signed != 2 || r.LastSigned.Line != 16 || r.Uncovered != 2) {
			t.Errorf("with keys: got %d signed, last %v, %d uncovered; want 2, line 16, 2", r.Signed, r.LastSigned, r.Uncovered)
		}
		if f := r.Files[0]; f.Lines != 18 || f.Records != 17 || f.FirstSeq != 1 || f.LastSeq != 17 || f.Starts != "the start of the chain" {
			t.Errorf("file: got %+v", f)
		}
	}
}

// TestVerifyTampered changes a log in every way an attacker or an
// accident can, and checks that verification names the first bad line
// and why.
func TestVerifyTampered(t *testing.T) {
	s, keys := newKey(t, 1)
	_, otherKeys := newKey(t, 2)
	other, _ := newKey(t, 2)
	data := sampleLog(t, s)
	edit := func(f func(ls []string) []string) []byte {
		return join(f(slices.Clone(lines(data))))
	}
	tests := []struct {
		name string
		data []byte
		opt  Options
		line int    // of the first problem; 0: intact
		why  string // in the problem
	}{
		{"a decision's effect changed", edit(func(ls []string) []string {
			ls[7] = strings.Replace(ls[7], `"effect":"allow"`, `"effect":"deny"`, 1)
			return ls
		}), Options{}, 8, "modified"},
		{"a decision's subject changed, same length", edit(func(ls []string) []string {
			ls[2] = strings.Replace(ls[2], "iam:agt-state-hub-bridge", "iam:agt-state-hub-bridgf", 1)
			return ls
		}), Options{}, 3, "modified or inserted (or a torn line after it removed): its hash is not the prev that log:4 names"},
		{"a line's prev changed", edit(func(ls []string) []string {
			ls[3] = strings.Replace(ls[3], `"prev":"sha256:`, `"prev":"sha256:0`, 1)[:len(ls[3])-3] + "\"}\n"
			return ls
		}), Options{}, 4, "modified or inserted"},
		{"a line deleted", edit(func(ls []string) []string { return slices.Delete(ls, 4, 5) }), Options{}, 5, "seq 6, want 5: record 5 is missing"},
		{"three lines deleted", edit(func(ls []string) []string { return slices.Delete(ls, 1, 4) }), Options{}, 2, "records 2 to 4 (3) are missing"},
		{"a line repeated", edit(func(ls []string) []string { return slices.Insert(ls, 3, ls[2]) }), Options{}, 4, "repeated"},
		{"a line repeated later", edit(func(ls []string) []string { return slices.Insert(ls, 4, ls[2]) }), Options{}, 5, "the same line as log:3: repeated"},
		{"a line moved later", edit(func(ls []string) []string { return slices.Insert(slices.Delete(ls, 2, 3), 4, ls[2]) }), Options{}, 3, "seq 4, want 3: record 3 is missing"},
		{"two lines swapped", edit(func(ls []string) []string { ls[2], ls[3] = ls[3], ls[2]; return ls }), Options{}, 3, "seq 4, want 3"},
		{"the torn line removed", edit(func(ls []string) []string { return slices.Delete(ls, 9, 10) }), Options{}, 9, "or a torn line after it removed"},
		{"a torn line inserted", edit(func(ls []string) []string {
			return slices.Insert(ls, 4, `{"time":"x"`+TornMarker+"; prev "+HashOf([]byte(ls[3])).String()+"\n")
		}), Options{}, 5, "modified or inserted (or a torn line after it removed): its hash is not the prev that log:6 names"},
		{"a legacy torn line inserted", edit(func(ls []string) []string { return slices.Insert(ls, 4, `{"x`+TornMarker+"\n") }), Options{}, 5, "a torn line without the hash"},
		{"an unchained decision inserted", edit(func(ls []string) []string {
			return slices.Insert(ls, 4, ls[3][:strings.LastIndex(ls[3], `,"seq"`)]+"}\n")
		}), Options{}, 5, "without seq and prev after the chain began"},
		{"a line that is not JSON", edit(func(ls []string) []string { ls[5] = "hello\n"; return ls }), Options{}, 6, "not a record: not JSON"},
		{"a JSON line that is no record", edit(func(ls []string) []string { ls[5] = `{"seq":6}` + "\n"; return ls }), Options{}, 6, "not a record"},
		{"a record inserted with the next seq and prev", func() []byte {
			ls := slices.Clone(lines(data))
			// Forge a decision linked properly to line 4: line 5 then
			// repeats its seq, and links to line 4 itself.
			var l builder
			l.head = Head{Seq: 4, Hash: HashOf([]byte(ls[3]))}
			l.n = 100
			l.decision()
			return join(slices.Insert(ls, 4, string(l.b)))
		}(), Options{}, 5, "inserted: log:6 links to log:4"},
		{"a new chain started in the middle", func() []byte {
			var l builder
			l.decision()
			return append(slices.Clone(data), l.b...)
		}(), Options{}, 19, "a new chain starts here after seq 17"},
		{"recomputed after a change, no keys", func() []byte {
			ls := slices.Clone(lines(data))
			ls[2] = strings.Replace(ls[2], `"effect":"allow"`, `"effect":"deny"`, 1)
			return rechain(t, ls, nil)
		}(), Options{}, 0, ""},
		{"recomputed after a change, with keys", func() []byte {
			ls := slices.Clone(lines(data))
			ls[2] = strings.Replace(ls[2], `"effect":"allow"`, `"effect":"deny"`, 1)
			return rechain(t, ls, nil)
		}(), Options{Keys: keys}, 6, "checkpoint signature: signature does not verify"},
		{"recomputed after a deletion, checkpoints kept, with keys", func() []byte {
			ls := slices.Clone(lines(data))
			return rechain(t, slices.Delete(ls, 12, 13), nil)
		}(), Options{Keys: keys}, 15, "checkpoint signature"},
		{"recomputed after a change, signed again with the stolen key: not detectable", func() []byte {
			ls := slices.Clone(lines(data))
			ls[2] = strings.Replace(ls[2], `"effect":"allow"`, `"effect":"deny"`, 1)
			return rechain(t, ls, s)
		}(), Options{Keys: keys}, 0, ""},
		{"checkpoint by a key not trusted", sampleLog(t, other), Options{Keys: keys}, 6, "not trusted"},
		{"checkpoint by the other key, trusted", sampleLog(t, other), Options{Keys: otherKeys}, 0, ""},
		{"the last line changed: not detectable", edit(func(ls []string) []string {
			ls[17] = strings.Replace(ls[17], `"effect":"allow"`, `"effect":"deny"`, 1)
			return ls
		}), Options{Keys: keys}, 0, ""},
		{"lines after the last checkpoint removed: not detectable", edit(func(ls []string) []string { return ls[:16] }), Options{Keys: keys}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := verify(t, tt.opt, file{"log", tt.data})
			switch {
			case tt.line == 0 && r.Problem != nil:
				t.Errorf("got problem %v, want intact", r.Problem)
			case tt.line == 0:
			case r.Problem == nil:
				t.Errorf("got intact, want a problem at line %d", tt.line)
			case r.Problem.Line != tt.line || !strings.Contains(r.Problem.Why, tt.why):
				t.Errorf("got problem %v, want line %d and %q", r.Problem, tt.line, tt.why)
			}
		})
	}
}

// TestVerifyLaterCheckpointsRemoved: an attacker without the key who
// changes a record after a checkpoint, removes the checkpoints after it
// and computes the hashes again leaves a log that verifies up to the
// checkpoint before the change, with every record after it reported not
// covered: what the checkpoints' cadence and a head recorded outside are
// for.
func TestVerifyLaterCheckpointsRemoved(t *testing.T) {
	s, keys := newKey(t, 1)
	data := sampleLog(t, s)
	ls := lines(data)
	head := Head{Seq: 17, Hash: HashOf([]byte(ls[17]))}
	forged := slices.Clone(ls)
	forged[12] = strings.Replace(forged[12], `"effect":"allow"`, `"effect":"deny"`, 1)
	forged = slices.Delete(forged, 15, 16) // the checkpoint at line 16
	r := verify(t, Options{Keys: keys}, file{"log", rechain(t, forged, nil)})
	if !r.Intact() || r.Signed != 1 || r.LastSigned.Line != 6 || r.Uncovered != 10 {
		t.Errorf("got %v, %d signed, last %v, %d uncovered; want intact, 1 signed at line 6, 10 uncovered", r.Problem, r.Signed, r.LastSigned, r.Uncovered)
	}
	if r := verify(t, Options{Keys: keys, Heads: []Head{head}}, file{"log", rechain(t, forged, nil)}); r.Intact() || r.HeadsFound[0] {
		t.Errorf("with the head recorded before: got intact, want the head missing")
	}
}

// TestVerifyCheckpointText: a checkpoint whose text does not sign its own
// place in the chain is found without keys.
func TestVerifyCheckpointText(t *testing.T) {
	s, _ := newKey(t, 1)
	ls := lines(sampleLog(t, s))
	ls[5] = strings.Replace(ls[5], "seq=5", "seq=4", 1)
	r := verify(t, Options{}, file{"log", join(ls)})
	if r.Problem == nil || r.Problem.Line != 6 || !strings.Contains(r.Problem.Why, `checkpoint signs "flex-auth-log checkpoint seq=4`) {
		t.Errorf("got %v, want line 6: checkpoint signs seq=4", r.Problem)
	}
}

// TestVerifyHeads: a head recorded from the server proves what was cut
// from the end and what was recomputed.
func TestVerifyHeads(t *testing.T) {
	s, keys := newKey(t, 1)
	data := sampleLog(t, s)
	ls := lines(data)
	head := Head{Seq: 17, Hash: HashOf([]byte(ls[17]))}
	if r := verify(t, Options{Heads: []Head{head}}, file{"log", data}); !r.Intact() {
		t.Errorf("intact log with its head: got %v %v", r.Problem, r.HeadsFound)
	}
	if r := verify(t, Options{Keys: keys, Heads: []Head{head}}, file{"log", join(ls[:16])}); r.Intact() || r.HeadsFound[0] {
		t.Errorf("truncated log: got intact, want the recorded head missing")
	}
	changed := slices.Clone(ls)
	changed[17] = strings.Replace(changed[17], `"effect":"allow"`, `"effect":"deny"`, 1)
	if r := verify(t, Options{Heads: []Head{head}}, file{"log", join(changed)}); r.Intact() {
		t.Errorf("last line changed: got intact, want the recorded head missing")
	}
}

func TestVerifyFiles(t *testing.T) {
	s, keys := newKey(t, 1)
	data := sampleLog(t, s)
	ls := lines(data)
	first, second := join(ls[:8]), join(ls[8:])
	t.Run("rotated", func(t *testing.T) {
		r := verify(t, Options{Keys: keys}, file{"log.1", first}, file{"log", second})
		if !r.Intact() || r.Files[1].Starts != "after log.1" || r.Files[1].FirstSeq != 9 {
			t.Errorf("got %v, files %+v", r.Problem, r.Files)
		}
	})
	t.Run("the later file alone", func(t *testing.T) {
		r := verify(t, Options{}, file{"log", second})
		if !r.Intact() || !strings.Contains(r.Files[0].Starts, "seq 9, continuing a chain from files not given") {
			t.Errorf("got %v, files %+v", r.Problem, r.Files)
		}
	})
	t.Run("out of order", func(t *testing.T) {
		r := verify(t, Options{}, file{"log", second}, file{"log.1", first})
		if r.Problem == nil || r.Problem.Position != (Position{"log.1", 1}) || !strings.Contains(r.Problem.Why, "in the order they were written") {
			t.Errorf("got %v, want log.1:1 and a hint about the order", r.Problem)
		}
	})
	t.Run("a crash left a fragment at the end of the first", func(t *testing.T) {
		r := verify(t, Options{}, file{"log.1", append(slices.Clone(first), `{"time":"2026`...)}, file{"log", second})
		if !r.Intact() || r.TornCount != 2 || !r.Torn[0].Last || r.Torn[0].Position != (Position{"log.1", 9}) {
			t.Errorf("got %v, torn %v", r.Problem, r.Torn)
		}
	})
}

// TestVerifyUnchainedPrefix: a log an earlier flex-auth started, which a
// chaining one continued.
func TestVerifyUnchainedPrefix(t *testing.T) {
	old := `{"time":"2026-06-23T10:11:12.000000007Z","decision_id":"decision:0000000000000001","subject":"s","action":"ssh.sign","resource":"r","context":{},"effect":"deny","reason":"unknown_actor_resource","policy":"p","policy_digest":"sha256:00","registry_digest":"sha256:00"}` + "\n"
	frag := `{"time":"2026` + TornMarker + "\n"
	l := builder{head: Head{Hash: HashOf([]byte(frag))}}
	l.decision()
	l.decision()
	data := []byte(old + old + frag)
	data = append(data, l.b...)
	r := verify(t, Options{}, file{"log", data})
	if !r.Intact() || r.Unchained != 2 || r.Decisions != 2 || r.TornCount != 1 || r.Files[0].Starts != "after the lines before the chain began" {
		t.Errorf("got %v, unchained %d, decisions %d, torn %d, file %+v", r.Problem, r.Unchained, r.Decisions, r.TornCount, r.Files[0])
	}
}

func TestVerifyLongLine(t *testing.T) {
	s, _ := newKey(t, 1)
	data := append(sampleLog(t, s), bytes.Repeat([]byte("x"), MaxLine+10)...)
	data = append(data, '\n')
	r := verify(t, Options{}, file{"log", data})
	if r.Problem == nil || r.Problem.Line != 19 || !strings.Contains(r.Problem.Why, "longer than") {
		t.Errorf("got %v, want line 19 too long", r.Problem)
	}
}
