package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/decisionlog"
)

// signedLog runs a server with checkpoints every 10 records, sends 25
// decisions, rotates the log (rename and SIGHUP), sends 7 more and stops
// it. It returns the two files, in order, the key, and the chain's head
// as /healthz gave it before the stop.
func signedLog(t *testing.T) (files []string, key, head string) {
	t.Helper()
	s := newServer(t)
	key = sshKey(t, s.Dir, "log-signer")
	s.start(t, s.serveArgs("--log-sign-key", key, "--log-checkpoint-lines", "10")...)
	for i := range 25 {
		s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 1 + i%30}})
	}
	if err := os.Rename(s.Log, s.Log+".1"); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	s.signal(syscall.SIGHUP)
	s.waitReloaded(since, "ok")
	for i := range 7 {
		s.check(checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 40 + i}})
	}
	h := s.health()
	head = fmt.Sprintf("%v:%s", h["decision_log"].(map[string]any)["seq"], str(h, "decision_log.head"))
	s.signal(sigterm)
	if code := s.wait(); code != 0 {
		t.Fatalf("exit code after SIGTERM: got %d, want 0", code)
	}
	return []string{s.Log + ".1", s.Log}, key, head
}

// TestLogVerify proves a signed, rotated decision log with flex-auth log
// verify and every checkpoint with ssh-keygen -Y verify, then tampers
// with it in every way the command must catch, and some it cannot.
func TestLogVerify(t *testing.T) {
	skipShort(t)
	t.Parallel()
	files, key, head := signedLog(t)
	pub := key + ".pub"
	code, out, errOut := runCLI(t, nil, append([]string{"log", "verify", "--key", pub, "--head", head}, files...)...)
	first, second := lines(readFile(t, files[0])), lines(readFile(t, files[1]))
	n := len(first) // every line a record: seq n+1 is the second file's first
	if code != 0 || !strings.Contains(out, "intact: 32 decisions, 0 not_given records, 4 checkpoints, 0 torn lines") ||
		!strings.Contains(out, "0 records after it not covered") || !strings.Contains(out, fmt.Sprintf("%s: 8 lines, seq %d to %d (after %s)", files[1], n+1, n+8, files[0])) {
		t.Fatalf("log verify of the intact log: exit %d\n%s%s", code, out, errOut)
	}
	changed := edit(first, 2, func(l string) string { return strings.Replace(l, `"effect":"allow"`, `"effect":"deny"`, 1) })
	recomputed := rechain(t, append(slices.Clone(changed), second...), decisionlog.Head{})

	t.Run("ssh-keygen verifies every checkpoint", func(t *testing.T) {
		keygen, _ := exec.LookPath("ssh-keygen")
		dir := t.TempDir()
		allowed := filepath.Join(dir, "allowed_signers")
		os.WriteFile(allowed, append([]byte("log-signer "), readFile(t, pub)...), 0o600)
		n := 0
		for _, f := range files {
			for line := range strings.Lines(string(readFile(t, f))) {
				var rec struct{ Checkpoint, Signature string }
				if json.Unmarshal([]byte(line), &rec) != nil || rec.Checkpoint == "" {
					continue
				}
				n++
				sig := filepath.Join(dir, "sig")
				os.WriteFile(sig, []byte(rec.Signature), 0o600)
				cmd := exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "log-signer", "-n", "flex-auth-log", "-s", sig)
				cmd.Stdin = strings.NewReader(rec.Checkpoint)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("ssh-keygen -Y verify of %q: %v\n%s", rec.Checkpoint, err, out)
				}
			}
		}
		if n != 4 {
			t.Errorf("checkpoints: got %d, want 4 (every 10 records, before the switch, at shutdown)", n)
		}
	})

	other := sshKey(t, t.TempDir(), "someone-else")
	tests := []struct {
		name     string
		first    []string // the rotated file's lines; nil: as it was
		second   []string
		args     []string // before the files
		code     int
		want     string
		alsoWant string // when not "", in the output as well
	}{
		{name: "an effect changed", first: changed,
			args: []string{"--key", pub}, code: 1, want: "decisions.jsonl.1:3: modified or inserted (or a torn line after it removed): its hash is not the prev that decisions.jsonl.1:4 names"},
		{name: "a line deleted", first: slices.Delete(slices.Clone(first), 4, 5), code: 1, want: "decisions.jsonl.1:5: seq 6, want 5: record 5 is missing"},
		{name: "two lines swapped", second: swap(second, 1, 2), code: 1, want: fmt.Sprintf("decisions.jsonl:2: seq %d, want %d", n+3, n+2)},
		{name: "a line repeated", second: slices.Insert(slices.Clone(second), 3, second[1]), code: 1, want: "decisions.jsonl:4: the same line as decisions.jsonl:2: repeated"},
		{name: "a forged line inserted", second: slices.Insert(slices.Clone(second), 1, forge(t, second[0])), code: 1, want: "decisions.jsonl:2: inserted"},
		{name: "a crash's fragment at the end of the first file", first: append(slices.Clone(first), `{"time":"2026`), code: 0, want: fmt.Sprintf("torn: decisions.jsonl.1:%d: the last line has no newline", n+1),
			// Reported, and not counted as a decision.
			alsoWant: "intact: 32 decisions, 0 not_given records, 4 checkpoints, 1 torn lines"},
		{name: "files out of order", args: []string{"--key", pub}, code: 1, want: "in the order they were written"},
		{name: "recomputed, no key", first: recomputed[:n], second: recomputed[n:], code: 0, want: "intact"},
		{name: "recomputed, with the key", first: recomputed[:n], second: recomputed[n:],
			args: []string{"--key", pub}, code: 1, want: "decisions.jsonl.1:11: checkpoint signature: signature does not verify"},
		{name: "recomputed, checkpoints removed, with the key", first: rechain(t, withoutCheckpoints(append(slices.Clone(changed), second...)), decisionlog.Head{}),
			second: []string{}, args: []string{"--key", pub}, code: 1, want: "checkpoints: none, though keys were given"},
		{name: "cut after the last checkpoint: not detectable with the key", second: second[:0], args: []string{"--key", pub}, code: 0, want: "intact"},
		{name: "cut after the last checkpoint: the recorded head is missing", second: second[:3], args: []string{"--key", pub, "--head", head}, code: 1, want: "NOT FOUND"},
		{name: "signed by another key", args: []string{"--key", other + ".pub"}, code: 1, want: "decisions.jsonl.1:11: checkpoint signature: signed by a key that is not trusted"},
		{name: "a file that does not exist", args: []string{"--key", pub, "nonexistent.jsonl"}, code: 2, want: "nonexistent.jsonl"},
		{name: "a bad key file", args: []string{"--key", files[0]}, code: 2, want: "--key"},
		{name: "a bad head", args: []string{"--head", "12"}, code: 2, want: "--head 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b := "decisions.jsonl.1", "decisions.jsonl"
			writeFile(t, filepath.Join(dir, a), join(orElse(tt.first, first)))
			writeFile(t, filepath.Join(dir, b), join(orElse(tt.second, second)))
			args := append([]string{"log", "verify"}, tt.args...)
			if tt.name == "files out of order" {
				args = append(args, b, a)
			} else {
				args = append(args, a, b)
			}
			// In dir, so that the report names the files as given.
			cmd := exec.Command(flexAuth, args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			code := cmd.ProcessState.ExitCode()
			if err != nil && code < 0 {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), tt.alsoWant) {
				t.Errorf("exit %d, want %d and %q %q:\n%s", code, tt.code, tt.want, tt.alsoWant, out)
			}
		})
	}

	t.Run("compressed by logrotate", func(t *testing.T) {
		dir := t.TempDir()
		gz := filepath.Join(dir, "decisions.jsonl.1.gz")
		var buf bytes.Buffer
		z := gzip.NewWriter(&buf)
		z.Write(readFile(t, files[0]))
		z.Close()
		writeFile(t, gz, buf.Bytes())
		if code, out, errOut := runCLI(t, nil, "log", "verify", "--key", pub, gz, files[1]); code != 0 {
			t.Errorf("exit %d, want 0:\n%s%s", code, out, errOut)
		}
	})
	t.Run("no file", func(t *testing.T) {
		if code, _, errOut := runCLI(t, nil, "log", "verify"); code != 2 || !strings.Contains(errOut, "want one or more decision log files") {
			t.Errorf("exit %d, want 2: %s", code, errOut)
		}
	})
}

func lines(data []byte) []string {
	ls := strings.SplitAfter(string(data), "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

func join(ls []string) []byte { return []byte(strings.Join(ls, "")) }

func orElse(ls, def []string) []string {
	if ls == nil {
		return def
	}
	return ls
}

func edit(ls []string, i int, f func(string) string) []string {
	ls = slices.Clone(ls)
	ls[i] = f(ls[i])
	return ls
}

func swap(ls []string, i, j int) []string {
	ls = slices.Clone(ls)
	ls[i], ls[j] = ls[j], ls[i]
	return ls
}

func withoutCheckpoints(ls []string) []string {
	return slices.DeleteFunc(slices.Clone(ls), func(l string) bool { return strings.Contains(l, `"checkpoint":`) })
}

// forge makes a decision that links properly to the line before the
// first of after: what an attacker without the chain's later lines
// writes.
func forge(t *testing.T, before string) string {
	t.Helper()
	var p decisionlog.Parser
	var r decisionlog.Record
	if err := p.Parse([]byte(before), &r); err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(before[:strings.LastIndex(before, `,"seq":`)], `"effect":"deny"`, `"effect":"allow"`, 1)
	b, _ := decisionlog.Link([]byte(body), 0, decisionlog.Head{Seq: r.Seq, Hash: decisionlog.HashOf([]byte(before))})
	return string(b)
}

// rechain links the lines again from head, as an attacker who changed
// some and has no signing key does: every record gets the seq and prev
// that follow, every checkpoint the text of its new place and its old
// signature.
func rechain(t *testing.T, ls []string, head decisionlog.Head) []string {
	t.Helper()
	var p decisionlog.Parser
	out := make([]string, 0, len(ls))
	for _, line := range ls {
		var r decisionlog.Record
		if err := p.Parse([]byte(line), &r); err != nil {
			t.Fatalf("rechain: %v", err)
		}
		body := line[:strings.LastIndex(line, `,"seq":`)]
		if r.Kind == decisionlog.Checkpoint {
			stamp, _ := time.Parse(time.RFC3339Nano, decisionlog.String(r.Time))
			text, _ := json.Marshal(string(decisionlog.CheckpointMessage(head, stamp)))
			body = strings.Replace(body, string(r.CheckpointText), string(text), 1)
		}
		var b []byte
		b, head = decisionlog.Link([]byte(body), 0, head)
		out = append(out, string(b))
	}
	return out
}

// TestLogChainAcrossRestart: a server appending to an existing decision
// log continues its chain, so that the log of two runs verifies as one;
// with --log-sign-key, an idle log gets a checkpoint once
// --log-checkpoint-interval has passed (the line count, set high, never
// comes); and /healthz and /metrics name the chain head the file ends at.
func TestLogChainAcrossRestart(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := newServer(t)
	key := sshKey(t, s.Dir, "log-signer")
	args := s.serveArgs("--log-sign-key", key, "--log-checkpoint-lines", "1000000", "--log-checkpoint-interval", "200ms")
	hasCheckpoint := func() bool { return strings.Contains(string(readFile(t, s.Log)), `"checkpoint":`) }

	s.start(t, args...)
	for i := range 3 {
		s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 1 + i}})
	}
	s.waitFor("a checkpoint after --log-checkpoint-interval", hasCheckpoint)
	s.signal(sigterm)
	if code := s.wait(); code != 0 {
		t.Fatalf("exit code after SIGTERM: got %d, want 0", code)
	}
	firstRun := len(lines(readFile(t, s.Log)))

	s.start(t, args...)
	for i := range 2 {
		s.check(checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 30 + i}})
	}
	all := lines(readFile(t, s.Log))
	var first struct{ Seq int }
	if err := json.Unmarshal([]byte(all[firstRun]), &first); err != nil || first.Seq != firstRun+1 {
		t.Errorf("the second run's first line: seq %d (%v), want %d, after the first run's %d lines", first.Seq, err, firstRun+1, firstRun)
	}
	h := s.health()
	seq, head := fmt.Sprint(path(h, "decision_log.seq")), str(h, "decision_log.head")
	if seq != fmt.Sprint(len(all)) || !strings.HasPrefix(head, "sha256:") {
		t.Errorf("/healthz decision_log: seq %s head %q, want seq %d, the log's lines", seq, head, len(all))
	}
	fams := metricFamilies(t, s.do("GET", "/metrics", "", nil).Body)
	if m := fams["flexauth_decision_log_head_info"].GetMetric(); len(m) != 1 || labels(m[0])["seq"] != seq || labels(m[0])["head"] != head {
		t.Errorf("/metrics flexauth_decision_log_head_info: %v, want seq %s head %s as /healthz says", m, seq, head)
	}
	code, out, errOut := runCLI(t, nil, "log", "verify", "--key", key+".pub", "--head", seq+":"+head, s.Log)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("seq 1 to %d (the start of the chain)", len(all))) || !strings.Contains(out, "intact: 5 decisions, 0 not_given records, ") {
		t.Errorf("log verify of two runs' log: exit %d, want 0, one chain of %d lines and 5 decisions:\n%s%s", code, len(all), out, errOut)
	}
}
