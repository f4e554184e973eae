package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// lockedBuffer is a bytes.Buffer that a running server writes to while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var serveListeningRE = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

func TestServeCommand(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "decisions.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--log", logPath}, strings.NewReader(""), stdout, stderr)
	}()
	var addr string
	deadline := time.Now().Add(30 * time.Second) // start-up compiles the policy, under -race
	for addr == "" {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before listening:\n%s", code, stderr)
		default:
		}
		if m := serveListeningRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address:\n%s", stderr)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	first, _, _ := strings.Cut(stderr.String(), "\n")
	if !strings.Contains(first, "built-in ops-warden example") {
		t.Errorf("first log line: got %q, want it to say the built-in example is served", first)
	}
	resp, err := http.Post("http://"+addr+"/v1/check", "application/json",
		strings.NewReader(`{"subject":"iam:agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":24}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"effect":"allow"`) {
		t.Errorf("check: got %d %s, want 200 allow", resp.StatusCode, body)
	}
	cancel() // what SIGTERM does through signal.NotifyContext
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code after shutdown: got %d, want 0\n%s", code, stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not exit after its context was cancelled")
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 1 {
		t.Errorf("decision log: got %d lines, want 1", n)
	}
	if stdout.String() != "" {
		t.Errorf("stdout: got %q, want nothing (the decision log went to --log)", stdout)
	}
}

func TestServeCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"schema": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	policy := "../../examples/ops-warden/policy_package.md"
	registry := "../../examples/ops-warden/production_registry_snapshot.json"
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	noLog := filepath.Join(dir, "missing", "decisions.jsonl")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"only --registry", []string{"--registry", bad}, "--registry and --policy go together"},
		{"only --policy", []string{"--policy", policy}, "--registry and --policy go together"},
		{"bad log format", []string{"--log-format", "xml"}, "--log-format"},
		{"invalid registry", []string{"--registry", bad, "--policy", policy}, "bad.json"},
		{"unknown flag", []string{"--adress", "x"}, "unknown flag"},
		// The built-in example's log line must not come before a
		// start-up error: the contract wants that error alone, on one line.
		{"built-in example, port in use", []string{"--addr", busy.Addr().String()}, busy.Addr().String()},
		{"built-in example, decision log cannot be opened", []string{"--log", noLog}, noLog},
		{"files, port in use", []string{"--registry", registry, "--policy", policy, "--addr", busy.Addr().String()}, busy.Addr().String()},
		{"--source with --registry", []string{"--source", "oci://127.0.0.1:1/x:y", "--registry", registry, "--policy", policy}, "give --source, or --registry and --policy"},
		{"--source without a tag", []string{"--source", "oci://127.0.0.1:1/x"}, "no tag"},
		{"--source not oci", []string{"--source", "https://127.0.0.1:1/x:y"}, "want oci://HOST/REPOSITORY:TAG"},
		{"--source with --watch", []string{"--source", "oci://127.0.0.1:1/x:y", "--watch"}, "--watch watches files"},
		{"a URL with --watch", []string{"--registry", "https://127.0.0.1:1/r.json", "--policy", policy, "--watch"}, "--watch watches files"},
		{"--poll with files", []string{"--registry", registry, "--policy", policy, "--poll", "5s"}, "--poll is for --source"},
		{"--poll zero", []string{"--source", "oci://127.0.0.1:1/x:y", "--poll", "0s"}, "--poll must be positive"},
		{"--verify-key without --source", []string{"--registry", "https://127.0.0.1:1/r.json", "--policy", policy, "--verify-key", policy}, "--verify-key is for --source"},
		{"--cache-dir without --source", []string{"--cache-dir", dir}, "--cache-dir is for --source"},
		{"--plain-http without --source", []string{"--plain-http"}, "--plain-http is for --source"},
		{"--verify-key not keys", []string{"--source", "oci://127.0.0.1:1/x:y", "--verify-key", policy}, "policy_package.md:"},
		{"--cache-dir not writable", []string{"--source", "oci://127.0.0.1:1/x:y", "--cache-dir", bad}, "--cache-dir"},
		{"--source unreachable", []string{"--source", "oci://127.0.0.1:1/x:y", "--plain-http"}, "connection refused"},
		{"a URL unreachable", []string{"--registry", "http://127.0.0.1:1/r.json", "--policy", policy}, "GET http://127.0.0.1:1/r.json: dial tcp 127.0.0.1:1: connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.args...)
			code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
			if code != 1 {
				t.Errorf("exit code: got %d, want 1", code)
			}
			out := stderr.String()
			if !strings.Contains(out, tt.want) {
				t.Errorf("stderr: got %q, want it to contain %q", out, tt.want)
			}
			if strings.Contains(out, "listening on") {
				t.Errorf("serve listened before failing: %q", out)
			}
			if tt.name != "unknown flag" && strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("stderr: got %q, want one line", out)
			}
		})
	}
}

// TestServeDocFlags checks that every flag the runbook's Serving section
// names exists, and that every flag of serve is documented there.
func TestServeDocFlags(t *testing.T) {
	doc, err := os.ReadFile("../../docs/ops-warden-registry-sync.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Serving\n")
	if !ok {
		t.Fatal("the runbook has no Serving section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	flags := newServeCmd().Flags()
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`--([a-z-]+)").FindAllStringSubmatch(section, -1) {
		documented[m[1]] = true
		if flags.Lookup(m[1]) == nil {
			t.Errorf("the runbook documents --%s, which serve does not have", m[1])
		}
	}
	flags.VisitAll(func(f *pflag.Flag) {
		if !documented[f.Name] {
			t.Errorf("serve --%s is not documented in the runbook's Serving section", f.Name)
		}
	})
}
