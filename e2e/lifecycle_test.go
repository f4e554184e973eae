package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
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

	"github.com/coulomb/flex-auth/registry"
)

// load sends decisions from one goroutine until stop is called, and
// reports every answer that was not a 200 decision.
func load(t *testing.T, s *server) (stop func() (answered int, failures []string)) {
	t.Helper()
	done := make(chan struct{})
	var (
		wg       sync.WaitGroup
		n        int
		failures []string
	)
	body := []byte(`{"subject": "agt-state-hub-bridge", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 12}}`)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			resp, err := httpClient.Post(s.URL+"/v1/check", "application/json", bytes.NewReader(body))
			if err != nil {
				failures = append(failures, err.Error())
				continue
			}
			var d map[string]any
			err = json.NewDecoder(resp.Body).Decode(&d)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil || d["decision_id"] == nil {
				failures = append(failures, fmt.Sprintf("%d %v %v", resp.StatusCode, d, err))
			}
			n++
		}
	}()
	return func() (int, []string) {
		close(done)
		wg.Wait()
		return n, failures
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	fixture := loadFixture(t)
	policy := readFile(t, s.Policy)
	stopLoad := load(t, s)

	lastAttempt := func() any { return path(s.health(), "reload.last_attempt_at") }
	// reload sends SIGHUP and waits until /healthz shows the attempt.
	reload := func() map[string]any {
		t.Helper()
		before := lastAttempt()
		s.signal(sighup)
		s.waitFor("the reload is attempted", func() bool { a := lastAttempt(); return a != nil && a != before })
		return s.health()
	}
	decide := func(ttl int) map[string]any {
		t.Helper()
		r := s.check(checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": ttl}})
		if r.Status != 200 {
			t.Fatalf("got %d %s, want 200", r.Status, r.Body)
		}
		return r.JSON(t)
	}

	// A valid new registry: the bridge's TTLs drop from 24 to 12.
	changed := withBridgeTTL(t, fixture, 12)
	writeFile(t, s.Registry, changed.Canonical())
	h := reload()
	if str(h, "status") != "ok" || str(h, "registry.digest") != changed.Digest || path(h, "reload.last_error") != nil {
		t.Fatalf("after a good reload: got %v, want status ok, digest %s, last_error null", h, changed.Digest)
	}
	if d := decide(24); str(d, "effect")+" "+str(d, "reason") != "deny ttl_out_of_bounds" || str(d, "registry_digest") != changed.Digest {
		t.Errorf("ttl 24 after the reload: got %v, want deny ttl_out_of_bounds from %s", d, changed.Digest)
	}
	if d := decide(12); str(d, "effect") != "allow" || fmt.Sprint(path(d, "grant.ttl_hours")) != "12" {
		t.Errorf("ttl 12 after the reload: got %v, want allow for 12h", d)
	}
	if r := s.do("GET", "/v1/registry", "", nil); !bytes.Equal(r.Body, changed.Canonical()) {
		t.Errorf("/v1/registry after the reload: got\n%s\nwant the new snapshot", r.Body)
	}

	// Broken inputs: each leaves the last good pair serving, degraded.
	mismatched := registry.New(changed.Source, "other/package", changed.Actors)
	brokenPolicy := bytes.Replace(policy, []byte("when:"), []byte("when: nosuchvar ||"), 1)
	if bytes.Equal(brokenPolicy, policy) {
		t.Fatal(`policy package has no "when:" to break`)
	}
	tests := []struct {
		name             string
		registry, policy []byte
		wantFile         string // the file last_error must name
	}{
		{"hand-edited registry", bytes.Replace(changed.Canonical(), []byte(`"max_ttl_hours": 12`), []byte(`"max_ttl_hours": 48`), 1), policy, s.Registry},
		{"registry not JSON", []byte("{\n"), policy, s.Registry},
		{"registry for another policy package", mismatched.Canonical(), policy, ""},
		{"policy that does not compile", changed.Canonical(), brokenPolicy, s.Policy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, s.Registry, tt.registry)
			writeFile(t, s.Policy, tt.policy)
			h := reload()
			lastErr, _ := path(h, "reload.last_error").(string)
			if str(h, "status") != "degraded" || lastErr == "" {
				t.Errorf("got status %q last_error %q, want degraded with an error", str(h, "status"), lastErr)
			}
			if tt.wantFile != "" && !strings.Contains(lastErr, filepath.Base(tt.wantFile)) {
				t.Errorf("last_error: got %q, want it to name %s", lastErr, filepath.Base(tt.wantFile))
			}
			if got := str(h, "registry.digest"); got != changed.Digest {
				t.Errorf("registry.digest: got %s, want the last good %s", got, changed.Digest)
			}
			if d := decide(12); str(d, "effect") != "allow" || str(d, "registry_digest") != changed.Digest {
				t.Errorf("decision while degraded: got %v, want an allow from %s", d, changed.Digest)
			}
		})
	}

	// Fixed again: ok, and the error is gone.
	writeFile(t, s.Registry, fixture.Canonical())
	writeFile(t, s.Policy, policy)
	h = reload()
	if str(h, "status") != "ok" || str(h, "registry.digest") != fixture.Digest || path(h, "reload.last_error") != nil {
		t.Errorf("after the fix: got %v, want status ok, digest %s, last_error null", h, fixture.Digest)
	}

	n, failures := stopLoad()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests during reloads failed, want none; first: %s", len(failures), n, failures[0])
	}
	if n == 0 {
		t.Error("no request was answered during the reloads")
	}
}

// SIGHUP reopens the decision log, so logrotate can move it away.
func TestSIGHUPReopensDecisionLog(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	req := checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}}
	first := str(s.check(req).JSON(t), "decision_id")
	rotated := s.Log + ".1"
	if err := os.Rename(s.Log, rotated); err != nil {
		t.Fatal(err)
	}
	s.signal(sighup)
	s.waitFor("the decision log is reopened", func() bool { return fileExists(s.Log) })
	second := str(s.check(req).JSON(t), "decision_id")
	old, _ := readLog(t, readFile(t, rotated))
	cur, _ := readLog(t, readFile(t, s.Log))
	if len(old) != 1 || old[0].str("decision_id") != first {
		t.Errorf("rotated log: got %v, want only %s", old, first)
	}
	if len(cur) != 1 || cur[0].str("decision_id") != second {
		t.Errorf("new log: got %v, want only %s", cur, second)
	}
}

// SIGTERM: /readyz turns 503 (when the listener is still open to say so),
// a request in flight finishes, the log is flushed, exit 0.
func TestShutdownFinishesRequestsInFlight(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"subject": "iam:agt-state-hub-bridge", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 24}}`
	fmt.Fprintf(conn, "POST /v1/check HTTP/1.1\r\nHost: flex-auth\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	// The kernel queues connections in order, so once a later connection
	// has been answered the server has accepted this one; a connection it
	// has accepted counts as in flight, and shutdown waits for it.
	if r := s.do("GET", "/readyz", "", nil); r.Status != 200 {
		t.Fatalf("readyz before shutdown: got %d, want 200", r.Status)
	}
	s.signal(sigterm)

	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	sawNotReady := false
	s.waitFor("/readyz stops answering 200", func() bool {
		resp, err := probe.Get(s.URL + "/readyz")
		if err != nil {
			return true // the listener is closed: nothing to observe
		}
		defer resp.Body.Close()
		var v map[string]any
		json.NewDecoder(resp.Body).Decode(&v)
		if resp.StatusCode == 503 {
			sawNotReady = true
			return true
		}
		if resp.StatusCode != 200 {
			t.Errorf("/readyz during shutdown: got %d, want 200 or 503", resp.StatusCode)
			return true
		}
		return false
	})
	t.Logf("/readyz 503 observed during the drain: %v", sawNotReady)

	if _, err := conn.Write([]byte(body[10:])); err != nil {
		t.Fatalf("finishing the request in flight: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight got no answer: %v", err)
	}
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if resp.StatusCode != 200 || str(d, "effect") != "allow" {
		t.Fatalf("request in flight: got %d %v, want 200 allow", resp.StatusCode, d)
	}
	if code := s.wait(); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0", code)
	}
	lines, partial := readLog(t, readFile(t, s.Log))
	if len(lines) != 1 || lines[0].str("decision_id") != str(d, "decision_id") || len(partial) > 0 {
		t.Errorf("decision log: got %v + %q, want the one decision %s", lines, partial, str(d, "decision_id"))
	}
}

// TestShutdownDrainClosesKeepAliveConnections: with --drain-delay,
// SIGTERM keeps the process serving, and every answer meanwhile closes
// its connection. A client's keep-alive connection is what a Kubernetes
// Service keeps sending to a terminating pod (it routes connections, not
// requests); closed after an answer during the drain, it is made again,
// to a pod still ready. Left open, it would be closed as idle when the
// drain ends, and a request sent on it at that moment lost.
func TestShutdownDrainClosesKeepAliveConnections(t *testing.T) {
	skipShort(t)
	t.Parallel()
	// The request below must be answered while the drain lasts, from
	// when the test sees it begin: room for a busy machine.
	const drain = 5 * time.Second
	s := startServer(t, "--drain-delay", drain.String())
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	body := `{"subject": "iam:agt-state-hub-bridge", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 24}}`
	var ids []string
	ask := func(when string) *http.Response {
		t.Helper()
		fmt.Fprintf(conn, "POST /v1/check HTTP/1.1\r\nHost: flex-auth\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		var d map[string]any
		json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if resp.StatusCode != 200 || str(d, "effect") != "allow" {
			t.Fatalf("%s: got %d %v, want 200 allow", when, resp.StatusCode, d)
		}
		ids = append(ids, str(d, "decision_id"))
		return resp
	}
	// resp.Close: the answer said Connection: close (which ReadResponse
	// takes out of the header).
	if resp := ask("before SIGTERM"); resp.Close {
		t.Fatalf("before SIGTERM: the answer closes the connection, want it kept alive")
	}
	s.signal(sigterm)
	if s.waitStderr(regexp.MustCompile(`/readyz now answers 503`)) == nil {
		t.Fatalf("no log line saying the drain began; stderr:\n%s", s.stderr)
	}
	if resp := ask("during the drain"); !resp.Close {
		t.Errorf("during the drain: the answer keeps the connection alive, want Connection: close")
	}
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the connection after an answer during the drain: read %d bytes, %v; want it closed by the server", n, err)
	}
	if code := s.wait(); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0", code)
	}
	lines, _ := readLog(t, readFile(t, s.Log))
	if len(lines) != 2 || lines[0].str("decision_id") != ids[0] || lines[1].str("decision_id") != ids[1] {
		t.Errorf("decision log: got %v, want the two decisions %v", lines, ids)
	}
}

func TestShutdownOnSIGINT(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	s.signal(sigint)
	if code := s.wait(); code != 0 {
		t.Errorf("exit code after SIGINT: got %d, want 0", code)
	}
}

func TestStartupFailures(t *testing.T) {
	skipShort(t)
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // not defer: the subtests run after this function returns
	fixture := loadFixture(t)
	tests := []struct {
		name string
		// prepare breaks the files of s and returns the extra flags and
		// the name the error must mention.
		prepare func(t *testing.T, s *server) (args []string, want string)
	}{
		{"hand-edited registry", func(t *testing.T, s *server) ([]string, string) {
			writeFile(t, s.Registry, bytes.Replace(fixture.Canonical(), []byte(`"max_ttl_hours": 24`), []byte(`"max_ttl_hours": 2`), 1))
			return s.serveArgs(), s.Registry
		}},
		{"registry with an unknown member", func(t *testing.T, s *server) ([]string, string) {
			writeFile(t, s.Registry, bytes.Replace(fixture.Canonical(), []byte(`"source"`), []byte(`"owner": "me",
  "source"`), 1))
			return s.serveArgs(), s.Registry
		}},
		{"missing registry", func(t *testing.T, s *server) ([]string, string) {
			os.Remove(s.Registry)
			return s.serveArgs(), s.Registry
		}},
		{"missing policy", func(t *testing.T, s *server) ([]string, string) {
			os.Remove(s.Policy)
			return s.serveArgs(), s.Policy
		}},
		{"policy that does not compile", func(t *testing.T, s *server) ([]string, string) {
			writeFile(t, s.Policy, bytes.Replace(readFile(t, s.Policy), []byte("when:"), []byte("when: nosuchvar ||"), 1))
			return s.serveArgs(), s.Policy
		}},
		{"registry for another policy package", func(t *testing.T, s *server) ([]string, string) {
			writeFile(t, s.Registry, registry.New(fixture.Source, "other/package", fixture.Actors).Canonical())
			return s.serveArgs(), "is for another policy package than policy"
		}},
		{"port in use", func(t *testing.T, s *server) ([]string, string) {
			return []string{"serve", "--addr", busy.Addr().String(), "--registry", s.Registry, "--policy", s.Policy, "--log", s.Log}, busy.Addr().String()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			args, want := tt.prepare(t, s)
			s.launch(t, args...)
			if code := s.wait(); code != 1 {
				t.Fatalf("exit code: got %d, want 1", code)
			}
			// The error is one line, the last. Informational log lines
			// may come before it (a bind fails after the files loaded),
			// but no other error.
			stderr := strings.TrimRight(s.stderr.String(), "\n")
			lines := strings.Split(stderr, "\n")
			errLine := lines[len(lines)-1]
			for _, l := range lines[:len(lines)-1] {
				if !strings.Contains(l, "level=INFO") {
					t.Errorf("stderr: got %d lines, want one error line after informational ones:\n%s", len(lines), stderr)
					break
				}
			}
			if !strings.Contains(errLine, want) {
				t.Errorf("stderr: got %q, want its last line to name %s", stderr, want)
			}
			if listenRE.MatchString(stderr) {
				t.Errorf("stderr: got %q, want nothing served", stderr)
			}
			if strings.TrimSpace(s.stdout.String()) != "" {
				t.Errorf("stdout: got %q, want nothing", s.stdout.String())
			}
		})
	}
}

// A crash (SIGKILL) under load loses no decision a client received: each
// line is written before its answer is sent. At most the last line may be
// cut short, and then it is one nobody received.
func TestCrashLosesNoAnsweredDecision(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	const (
		workers   = 8
		perWorker = 2000 // bounds the run if the kill never comes
		killAfter = 400  // answered decisions before the kill
	)
	var (
		mu       sync.Mutex
		received []string
		enough   = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{}}
			for i := range perWorker {
				body := fmt.Sprintf(`{"subject": "agt-state-hub-bridge", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": %d, "worker": %d, "i": %d}}`, 20+i%10, w, i)
				resp, err := c.Post(s.URL+"/v1/check", "application/json", strings.NewReader(body))
				if err != nil {
					return // killed
				}
				var d map[string]any
				err = json.NewDecoder(resp.Body).Decode(&d)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					return // killed mid-answer: not received
				}
				mu.Lock()
				received = append(received, str(d, "decision_id"))
				if len(received) == killAfter {
					close(enough)
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-s.exited:
		t.Fatal("flex-auth exited under load")
	}
	s.signal(sigkill)
	s.wait()
	wg.Wait()

	lines, partial := readLog(t, readFile(t, s.Log))
	logged := make(map[string]bool, len(lines))
	for _, l := range lines {
		logged[l.str("decision_id")] = true
	}
	missing := 0
	for _, id := range received {
		if !logged[id] {
			missing++
			if missing <= 5 {
				t.Errorf("decision %s was received but is not in the log", id)
			}
		}
		if len(partial) > 0 && bytes.Contains(partial, []byte(id)) {
			t.Errorf("decision %s was received but its log line is cut short: %q", id, partial)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d received decisions missing from the log", missing, len(received))
	}
	if len(partial) > 0 && json.Valid(partial) {
		t.Errorf("the log ends with a complete JSON object but no newline: %q", partial)
	}
	// The hash chain holds through the kill: the log verifies, and a
	// fragment the kill left is reported as torn, not as a decision.
	code, out, errOut := runCLI(t, nil, "log", "verify", s.Log)
	if code != 0 || len(partial) > 0 && !strings.Contains(out, "the last line has no newline") {
		t.Errorf("log verify after SIGKILL: exit %d, want 0 and any fragment reported:\n%s%s", code, out, errOut)
	}
	t.Logf("%d decisions received, %d lines logged, partial last line: %d bytes", len(received), len(lines), len(partial))
}

// --watch reloads when a file is replaced by an atomic rename, and when a
// Kubernetes ConfigMap volume swaps its ..data symlink.
func TestWatch(t *testing.T) {
	skipShort(t)
	t.Parallel()
	fixture := loadFixture(t)
	policy := readFile(t, fixturePolicy)
	digest := func(s *server) string { return str(s.health(), "registry.digest") }

	t.Run("atomic rename", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, "--watch")
		for _, hours := range []int{12, 6} {
			changed := withBridgeTTL(t, fixture, hours)
			writeFile(t, s.Registry, changed.Canonical())
			s.waitFor(fmt.Sprintf("the registry with TTL %d is served", hours), func() bool { return digest(s) == changed.Digest })
		}
	})

	t.Run("configmap symlink swap", func(t *testing.T) {
		t.Parallel()
		files := func(reg []byte) map[string][]byte {
			return map[string][]byte{"registry.json": reg, "policy_package.md": policy}
		}
		vol := newConfigMapVolume(t, files(fixture.Canonical()))
		s := &server{Registry: vol.Path("registry.json"), Policy: vol.Path("policy_package.md"), Log: filepath.Join(t.TempDir(), "decisions.jsonl")}
		s.start(t, s.serveArgs("--watch")...)
		if got := digest(s); got != fixture.Digest {
			t.Fatalf("registry.digest: got %s, want %s", got, fixture.Digest)
		}
		changed := withBridgeTTL(t, fixture, 12)
		vol.update(files(changed.Canonical()))
		s.waitFor("the swapped registry is served", func() bool { return digest(s) == changed.Digest })
		d := s.check(checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}}).JSON(t)
		if str(d, "reason") != "ttl_out_of_bounds" || str(d, "registry_digest") != changed.Digest {
			t.Errorf("after the swap: got %v, want deny ttl_out_of_bounds from %s", d, changed.Digest)
		}
	})
}

// --log-sync changes when the line is durable, not what is written.
func TestLogSync(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t, "--log-sync")
	id := str(s.check(checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}}).JSON(t), "decision_id")
	lines, partial := readLog(t, readFile(t, s.Log))
	if len(lines) != 1 || lines[0].str("decision_id") != id || len(partial) > 0 {
		t.Errorf("decision log: got %v + %q, want the one decision %s", lines, partial, id)
	}
}
