package serve

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/internal/sshsig/sshsigtest"
)

// verifyBytes verifies an in-memory decision log.
func verifyBytes(t testing.TB, data []byte, opt decisionlog.Options) *decisionlog.Result {
	t.Helper()
	v := decisionlog.NewVerifier(opt)
	if err := v.Add("log", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return v.Result()
}

// testSigner returns a checkpoint signer and the keys that trust it.
func testSigner(t testing.TB) (*decisionlog.Signer, *sshsig.Keys) {
	t.Helper()
	s, keys := sshsigtest.Key(t, 7)
	return decisionlog.NewSigner(s), keys
}

func newFileServer(t testing.TB, path string, opts Options) (*Server, *LogFile) {
	t.Helper()
	f, err := OpenLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts.Source, opts.DecisionLog, opts.LogTimeout = builtin, f, time.Minute
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

// TestChainAcrossRestartAndRotation: a server appending to a log
// continues its chain, and the first record of a reopened file links to
// the last line of the old one.
func TestChainAcrossRestartAndRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	s, f := newFileServer(t, path, Options{})
	for range 3 {
		decodeCheck(t, post(s, allowBody))
	}
	s.Close()
	f.Close()

	s, f = newFileServer(t, path, Options{})
	defer f.Close()
	defer s.Close()
	if h := health(t, s); h.DecisionLog.Seq != 3 {
		t.Errorf("healthz after a restart: seq %d, want 3", h.DecisionLog.Seq)
	}
	for range 2 {
		decodeCheck(t, post(s, allowBody))
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		decodeCheck(t, post(s, allowBody))
	}
	r := verifyLog(t, path+".1", path)
	if !r.Intact() || r.Decisions != 7 {
		t.Fatalf("verify: %v, %d decisions, want intact with 7", r.Problem, r.Decisions)
	}
	if f := r.Files[1]; f.FirstSeq != 6 || f.Starts != "after decisions.jsonl.1" {
		t.Errorf("the reopened file: got %+v, want it to start at seq 6 after the old one", f)
	}
	h := health(t, s)
	if h.DecisionLog.Seq != 7 || h.DecisionLog.Head != r.Head.Hash.String() {
		t.Errorf("healthz: seq %d head %s, want %s", h.DecisionLog.Seq, h.DecisionLog.Head, r.Head)
	}
	metrics := do(s, "GET", "/metrics", "", "", nil).Body.String()
	for _, want := range []string{"flexauth_decision_log_seq 7", `flexauth_decision_log_head_info{head="` + r.Head.Hash.String() + `",seq="7"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: want %s", want)
		}
	}
}

// TestChainThroughFailures: a write cut short, a failed fsync and the
// not_given record after it are all links of the chain.
func TestChainThroughFailures(t *testing.T) {
	f := &faultyWriter{short: true}
	s, err := New(Options{Source: builtin, DecisionLog: f, LogSync: true, LogTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	decodeCheck(t, post(s, allowBody))
	f.failing.Store(true)
	decodeError(t, post(s, allowBody), 503, "decision_log_unavailable")
	decodeError(t, post(s, allowBody), 503, "decision_log_unavailable") // the end of the first fragment, and half of this one
	f.failing.Store(false)
	decodeCheck(t, post(s, allowBody))
	f.syncErr.Store(true)
	decodeError(t, post(s, allowBody), 503, "decision_log_unavailable") // written, not synced
	f.syncErr.Store(false)
	decodeCheck(t, post(s, allowBody))
	r := verifyBytes(t, []byte(f.String()), decisionlog.Options{})
	if !r.Intact() || r.TornCount != 2 || r.NotGiven != 1 || r.Decisions != 4 {
		t.Errorf("got %v, %d torn, %d not_given, %d decisions; want intact, 2, 1, 4:\n%s", r.Problem, r.TornCount, r.NotGiven, r.Decisions, f.String())
	}
}

// TestCheckpoints: with a signer, checkpoints every N records, at close,
// and before the file is switched on reopen, each signing its place in
// the chain.
func TestCheckpoints(t *testing.T) {
	signer, keys := testSigner(t)
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	s, f := newFileServer(t, path, Options{LogSigner: signer, CheckpointLines: 3, CheckpointInterval: time.Hour})
	defer f.Close()
	for range 7 {
		decodeCheck(t, post(s, allowBody))
	}
	h := health(t, s)
	if c := h.DecisionLog.Checkpoint; c == nil || c.Seq != 8 || c.Key != signer.Fingerprint() || c.At.IsZero() {
		t.Errorf("healthz checkpoint after 7 decisions: got %+v, want the second, at seq 8", c)
	}
	if m := do(s, "GET", "/metrics", "", "", nil).Body.String(); !strings.Contains(m, "flexauth_decision_log_checkpoint_seq 8") {
		t.Errorf("metrics: want flexauth_decision_log_checkpoint_seq 8")
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	decodeCheck(t, post(s, allowBody))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The old file ends signed; so does the new one, at close.
	old := verifyLog(t, path+".1")
	r := verifyLogKeys(t, keys, path+".1", path)
	if !r.Intact() || r.Decisions != 8 || r.Checkpoints != 4 || r.Signed != 4 || r.Uncovered != 0 {
		t.Errorf("verify: %v, %d decisions, %d checkpoints (%d signed), %d uncovered; want intact, 8, 4 (4), 0", r.Problem, r.Decisions, r.Checkpoints, r.Signed, r.Uncovered)
	}
	if old.Decisions != 7 || old.Checkpoints != 3 {
		t.Errorf("the rotated file: %d decisions, %d checkpoints, want 7 and 3 (the last before the switch)", old.Decisions, old.Checkpoints)
	}
	data, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &last); err != nil || last["checkpoint"] == nil {
		t.Errorf("the rotated file's last line: got %s, want a checkpoint", ls[len(ls)-1])
	}
}

// verifyLogKeys verifies log files with trusted keys.
func verifyLogKeys(t testing.TB, keys *sshsig.Keys, files ...string) *decisionlog.Result {
	t.Helper()
	v := decisionlog.NewVerifier(decisionlog.Options{Keys: keys})
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Add(filepath.Base(name), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	return v.Result()
}

// TestCheckpointInterval: an idle log gets its checkpoint once the
// interval has passed, with no decision to carry it.
func TestCheckpointInterval(t *testing.T) {
	signer, keys := testSigner(t)
	log := &syncBuffer{}
	s, err := New(Options{Source: builtin, DecisionLog: log, LogSigner: signer, CheckpointInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	decodeCheck(t, post(s, allowBody))
	waitFor(t, "a checkpoint", func() bool { return strings.Contains(log.String(), `"checkpoint":`) })
	r := verifyBytes(t, []byte(log.String()), decisionlog.Options{Keys: keys})
	if !r.Intact() || r.Signed != 1 || r.Uncovered != 0 {
		t.Errorf("got %v, %d signed, %d uncovered", r.Problem, r.Signed, r.Uncovered)
	}
}

// TestChainAuthZENBatches: an AuthZEN batch or search writes the records
// of all its decisions in one write; each is a record of the chain of its
// own, with the next seq, linked to the one before it.
func TestChainAuthZENBatches(t *testing.T) {
	log := &syncBuffer{}
	s := newPackagesServer(t, log, Options{}, opsPackage, todoPackage)
	decodeCheck(t, post(s, allowBody))
	batch := `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"action":{"name":"ssh.sign"},"evaluations":[` +
		`{"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":1}},` +
		`{"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":25}},` +
		`{"resource":{"type":"actor","id":"agt-nobody"},"context":{"ttl_hours":1}}]}`
	if w := az(s, "/access/v1/evaluations", batch); w.Code != 200 {
		t.Fatalf("batch: %d %s", w.Code, w.Body)
	}
	search := `{"subject":{"type":"user","id":"CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},"action":{"name":"can_read_user"},"resource":{"type":"user"}}`
	a := decodeJSON[searchAnswer](t, az(s, "/access/v1/search/resource", search))
	if len(a.Results) < 2 {
		t.Fatalf("search: %d results, want several", len(a.Results))
	}
	decodeCheck(t, post(s, allowBody))

	want := 1 + 3 + len(a.Results) + 1
	r := verifyBytes(t, []byte(log.String()), decisionlog.Options{})
	if !r.Intact() || r.Decisions != want || r.TornCount != 0 {
		t.Fatalf("chain: intact %v (%v), %d decisions and %d torn lines, want %d and 0", r.Intact(), r.Problem, r.Decisions, r.TornCount, want)
	}
	for i, l := range log.lines(t) {
		if l["seq"] != float64(i+1) {
			t.Errorf("line %d: seq %v, want %d", i+1, l["seq"], i+1)
		}
	}
}
