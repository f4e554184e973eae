package e2e

// Faults: a decision log that cannot be written, a registry replaced by a
// broken file under --watch and SIGHUP, slow and idle clients, SIGKILL
// under load with a restart, and a reload storm. Each says how many
// requests it sent under each fault (go test -v shows them), and each
// checks the log against what the clients received with e2e/chaos:
// no decision lost, no allow without its log line.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/e2e/chaos"
	"github.com/coulomb/flex-auth/registry"
)

// probes are the requests of the load: with the example registry, an
// allow for 24 hours, an allow for 12, a deny above the maximum TTL, and
// an unknown actor. Under a registry whose bridge may sign for 12 hours
// at most (withBridgeTTL 12), the first is a deny.
var probes = []client.Request{
	{Subject: "iam:" + bridge, Action: "ssh.sign", Resource: bridge, Context: map[string]any{"ttl_hours": 24}},
	{Subject: bridge, Resource: bridge, Context: map[string]any{"ttl_hours": 12}},
	{Subject: bridge, Resource: bridge, Context: map[string]any{"ttl_hours": 999}},
	{Subject: "iam:agt-nobody", Resource: "agt-nobody"},
}

const probeTTL24 = 0 // index in probes of the request whose effect tells the registries apart

// loadPerWorker bounds each load worker's requests. The load runs for as
// long as the test's waits take, which a busy machine stretches to
// minutes while the workers keep answering: a budget the test can spend
// ends the load before the test does, and the next phase waits for
// answers that never come. A worker answers a few thousand requests a
// second at most: this is most of an hour of it.
const loadPerWorker = 10_000_000

// startLoad starts workers sending probes to s until the test stops them.
func startLoad(t *testing.T, url string, workers int) *chaos.Load {
	t.Helper()
	l, err := chaos.StartLoad(chaos.LoadConfig{URL: url, Workers: workers, PerWorker: loadPerWorker, Requests: probes, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

// waitAnswered waits until the load has answered n requests in phase.
func waitAnswered(t *testing.T, l *chaos.Load, phase string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if !l.WaitAnswered(ctx, phase, n) {
		if l.Ended() {
			t.Fatalf("phase %q: %d requests answered, want %d: the load ended (each worker sends %d requests at most)", phase, l.Answered(phase), n, loadPerWorker)
		}
		t.Fatalf("phase %q: %d requests answered within %s, want %d", phase, l.Answered(phase), waitTimeout, n)
	}
}

// verifyLog checks the decision log files against the decisions clients
// received: none lost, none logged with another outcome, no torn line
// holding one. It returns the verdict for the figures.
func verifyLog(t *testing.T, received []chaos.Received, files ...string) (*chaos.Log, *chaos.Verdict) {
	t.Helper()
	log := chaos.NewLog()
	for _, f := range files {
		log.Add(filepath.Base(f), readFile(t, f))
	}
	v := log.Verify(received)
	if !v.OK() {
		t.Errorf("decision log against the answers: %s", v)
		for i, id := range v.Lost {
			if i == 5 {
				break
			}
			t.Errorf("decision %s was received but is not in the log as answered", id)
		}
		for _, s := range v.TornWithReceived {
			t.Errorf("torn line holds a received decision: %s", s)
		}
	}
	return log, v
}

// waitReloaded waits until a reload that started at or after since has
// finished with status want ("ok" or "degraded"), and returns /healthz.
func (s *server) waitReloaded(since time.Time, want string) map[string]any {
	s.t.Helper()
	var h map[string]any
	s.waitFor(fmt.Sprintf("a reload after %s reports %s", since.Format(time.StampMicro), want), func() bool {
		h = s.health()
		at, err := time.Parse(time.RFC3339Nano, str(h, "reload.last_attempt_at"))
		return err == nil && !at.Before(since) && str(h, "status") == want
	})
	return h
}

// A logFault makes the decision log unwritable and writable again.
type logFault struct {
	name string
	// prepare runs before the server starts; it may point s.Log
	// elsewhere and return extra flags.
	prepare func(t *testing.T, s *server) []string
	// inject makes writes fail; heal makes them work again. Both return
	// when the server sees the change.
	// decisions is how many decisions were received so far.
	inject, heal func(t *testing.T, s *server, decisions int)
	// logFiles returns what the server wrote, for the verification.
	logFiles func(t *testing.T, s *server, decisions int) []string
	// torn is how many torn lines the fault leaves in the log.
	torn int
}

// TestDecisionLogFaults makes the decision log fail in each way a disk or
// an operator can make it fail, under requests that would be allowed:
// every answer during the fault is 503 decision_log_unavailable, never an
// allow; /healthz and /metrics say so; and the server recovers when the
// log can be written again, with every decision it gave in the log.
func TestDecisionLogFaults(t *testing.T) {
	skipShort(t)
	t.Parallel()
	faults := []logFault{devFullFault()}
	faults = append(faults, platformLogFaults()...)
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			runLogFault(t, f)
		})
	}
}

func runLogFault(t *testing.T, f logFault) {
	s := newServer(t)
	extra := f.prepare(t, s)
	s.start(t, s.serveArgs(extra...)...)
	var received []chaos.Received
	// burst sends n probes from 4 workers at once and returns the answers.
	burst := func(n int) []chaos.Answer {
		t.Helper()
		l := startLoad(t, s.URL, 4)
		waitAnswered(t, l, "start", n)
		return l.Stop()
	}

	before := burst(40)
	for _, a := range before {
		if a.Decision == nil {
			t.Fatalf("before the fault: %v, want a decision", a.Err)
		}
	}
	received = append(received, chaos.ReceivedOf(before)...)
	errorsBefore := logErrors(t, s)

	f.inject(t, s, len(received))
	during := burst(60)
	for _, a := range during {
		if a.Decision != nil {
			t.Fatalf("during the fault: got a decision %s %s %s, want 503 decision_log_unavailable", a.Decision.ID, a.Decision.Effect, a.Decision.Reason)
		}
		if a.Failure != "503 decision_log_unavailable" {
			t.Fatalf("during the fault: got %s (%v), want 503 decision_log_unavailable", a.Failure, a.Err)
		}
	}
	// The envelope says nothing of the cause.
	r := s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}})
	wantEnvelope(t, "503 during the fault", r, 503, "decision_log_unavailable", s)
	if e, _ := path(s.health(), "decision_log.last_error").(string); e == "" {
		t.Errorf("/healthz decision_log.last_error during the fault: got null, want the write error")
	}
	if got, want := logErrors(t, s)-errorsBefore, float64(len(during)+1); got != want {
		t.Errorf("decision log errors counted during the fault: got %v, want %v", got, want)
	}

	f.heal(t, s, len(received))
	// The first answers after healing may still be 503 (a reopen in
	// progress); wait for a decision, then every answer must be one.
	s.waitFor("decisions are given again", func() bool {
		r := s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}})
		if r.Status == 200 {
			var d client.Decision
			if err := json.Unmarshal(r.Body, &d); err != nil {
				t.Fatal(err)
			}
			received = append(received, chaos.Received{ID: d.ID, Effect: d.Effect, Reason: d.Reason, Policy: d.Policy, PolicyDigest: d.PolicyDigest, RegistryDigest: d.RegistryDigest})
			return true
		}
		if r.Status != 503 {
			t.Fatalf("while healing: got %d %s, want 200 or 503", r.Status, r.Body)
		}
		return false
	})
	after := burst(40)
	for _, a := range after {
		if a.Decision == nil {
			t.Fatalf("after the fault: %v, want a decision", a.Err)
		}
	}
	received = append(received, chaos.ReceivedOf(after)...)
	if e := path(s.health(), "decision_log.last_error"); e != nil {
		t.Errorf("/healthz decision_log.last_error after recovery: got %v, want null", e)
	}

	log, v := verifyLog(t, received, f.logFiles(t, s, len(received))...)
	if v.Extra != 0 {
		t.Errorf("log has %d decisions no client received; every decision logged here was answered", v.Extra)
	}
	if len(log.Torn) != f.torn {
		t.Errorf("torn lines: got %d %v, want %d", len(log.Torn), log.Torn, f.torn)
	}
	t.Logf("fault %q: %d requests before, %d during (all 503, 0 allows), %d after; %s; torn lines %d",
		f.name, len(before), len(during)+1, len(after), v, len(log.Torn))
}

// devFullFault points the log, a symlink, at /dev/full (a full disk) and
// back at a file, reopening it with SIGHUP.
func devFullFault() logFault {
	var real string
	repoint := func(t *testing.T, s *server, target string) {
		t.Helper()
		tmp := s.Log + ".new"
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, s.Log); err != nil {
			t.Fatal(err)
		}
		since := time.Now()
		s.signal(sighup)
		s.waitReloaded(since, "ok")
	}
	return logFault{
		name: "full disk (/dev/full)",
		prepare: func(t *testing.T, s *server) []string {
			if !fileExists("/dev/full") {
				t.Skip("no /dev/full")
			}
			real = filepath.Join(s.Dir, "decisions-real.jsonl")
			s.Log = filepath.Join(s.Dir, "decisions.jsonl")
			if err := os.Symlink(real, s.Log); err != nil {
				t.Fatal(err)
			}
			return nil
		},
		inject:   func(t *testing.T, s *server, _ int) { repoint(t, s, "/dev/full") },
		heal:     func(t *testing.T, s *server, _ int) { repoint(t, s, real) },
		logFiles: func(t *testing.T, s *server, _ int) []string { return []string{real} },
	}
}

// logErrors returns flexauth_decision_log_errors_total.
func logErrors(t *testing.T, s *server) float64 {
	t.Helper()
	fams := metricFamilies(t, s.do("GET", "/metrics", "", nil).Body)
	f, ok := fams["flexauth_decision_log_errors_total"]
	if !ok || len(f.GetMetric()) != 1 {
		t.Fatalf("/metrics has no flexauth_decision_log_errors_total")
	}
	return f.GetMetric()[0].GetCounter().GetValue()
}

// internalsRE matches what an error message must never say: Go error
// text, file paths, errno names, stack traces.
var internalsRE = []string{".go:", "goroutine", "runtime.", "panic", "/dev/", "/tmp", "/proc", "/etc", "no space", "permission denied",
	"not permitted", "file too large", "broken pipe", "errno", "syscall", "0x", "x509", "tls:", "unexpected EOF", "flex-auth/"}

// wantEnvelope checks that r is the contract's error envelope and nothing
// more: status, Content-Type, exactly {"error": {"code", "message"}}, and
// a message free of internals (the server's files included).
func wantEnvelope(t *testing.T, what string, r *reply, status int, code string, s *server) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: got %d %s, want %d", what, r.Status, r.Body, status)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var env map[string]map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil || len(env) != 1 || env["error"] == nil || len(env["error"]) != 2 {
		t.Errorf("%s: body %s, want exactly {\"error\": {\"code\", \"message\"}}", what, r.Body)
		return
	}
	var gotCode, msg string
	if json.Unmarshal(env["error"]["code"], &gotCode) != nil || json.Unmarshal(env["error"]["message"], &msg) != nil || msg == "" {
		t.Errorf("%s: body %s, want string code and message", what, r.Body)
	}
	if code != "" && gotCode != code {
		t.Errorf("%s: code %q, want %q", what, gotCode, code)
	}
	low := strings.ToLower(msg)
	for _, bad := range internalsRE {
		if strings.Contains(low, bad) {
			t.Errorf("%s: message %q says %q, an internal", what, msg, bad)
		}
	}
	if s != nil {
		for _, p := range []string{s.Dir, s.Registry, s.Policy, s.Log} {
			if p != "" && strings.Contains(msg, p) {
				t.Errorf("%s: message %q names the server's file %s", what, msg, p)
			}
		}
	}
}

// registryFault breaks the registry file in place.
type registryFault struct {
	name  string
	apply func(t *testing.T, path string)
}

func registryFaults(good []byte) []registryFault {
	return []registryFault{
		{"truncated", func(t *testing.T, p string) {
			if err := os.WriteFile(p, good[:len(good)/2], 0o644); err != nil { // in place, not atomic
				t.Fatal(err)
			}
		}},
		{"invalid", func(t *testing.T, p string) { writeFile(t, p, []byte("registry: not JSON\n")) }},
		{"hand-edited", func(t *testing.T, p string) {
			writeFile(t, p, bytes.Replace(good, []byte(`"max_ttl_hours": 24`), []byte(`"max_ttl_hours": 48`), 1))
		}},
		{"key material", func(t *testing.T, p string) {
			writeFile(t, p, bytes.Replace(good, []byte(`"source"`), []byte(`"vault_token": "hvs.e2e-not-a-secret",
  "source"`), 1))
		}},
		{"empty", func(t *testing.T, p string) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"deleted", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}},
	}
}

// TestRegistryFaults replaces the served registry with a truncated, an
// invalid, a hand-edited, an empty file, one with key material, and
// deletes it, each picked up by --watch or by SIGHUP, under load: the
// last good pair keeps serving (every decision carries its digest),
// /healthz says degraded and names the file, and a good file brings the
// status back to ok. No request fails.
func TestRegistryFaults(t *testing.T) {
	skipShort(t)
	t.Parallel()
	for _, trigger := range []string{"watch", "sighup"} {
		t.Run(trigger, func(t *testing.T) {
			t.Parallel()
			s, signal := startReloading(t, trigger)
			fixture := loadFixture(t)
			good := fixture.Canonical()
			good12 := withBridgeTTL(t, fixture, 12)
			load := startLoad(t, s.URL, 4)

			reload := func(change func()) time.Time {
				since := time.Now()
				change()
				signal()
				return since
			}
			for _, f := range registryFaults(good) {
				load.SetPhase(f.name)
				since := reload(func() { f.apply(t, s.Registry) })
				h := s.waitReloaded(since, "degraded")
				if got := str(h, "registry.digest"); got != fixture.Digest {
					t.Errorf("%s: registry.digest %s, want the last good %s", f.name, got, fixture.Digest)
				}
				if e := str(h, "reload.last_error"); !strings.Contains(e, filepath.Base(s.Registry)) {
					t.Errorf("%s: reload.last_error %q, want it to name %s", f.name, e, filepath.Base(s.Registry))
				}
				waitAnswered(t, load, f.name, 20)
			}
			load.SetPhase("restored")
			since := reload(func() { writeFile(t, s.Registry, good12.Canonical()) })
			if h := s.waitReloaded(since, "ok"); str(h, "registry.digest") != good12.Digest || path(h, "reload.last_error") != nil {
				t.Errorf("after a good file: got %v, want ok with %s and no error", h, good12.Digest)
			}
			waitAnswered(t, load, "restored", 20)
			answers := load.Stop()

			digests := map[string]bool{fixture.Digest: true, good12.Digest: true}
			for _, a := range answers {
				if a.Decision == nil {
					t.Errorf("phase %s: request failed: %v", a.Phase, a.Err)
					continue
				}
				d := a.Decision
				if !digests[d.RegistryDigest] {
					t.Errorf("phase %s: decision from registry %s, which was never good", a.Phase, d.RegistryDigest)
				}
				if a.Phase != "restored" && a.Phase != "start" && d.RegistryDigest != fixture.Digest {
					t.Errorf("phase %s: decision from registry %s, want the last good %s", a.Phase, d.RegistryDigest, fixture.Digest)
				}
				checkConsistent(t, a, fixture.Digest, good12.Digest)
			}
			_, v := verifyLog(t, chaos.ReceivedOf(answers), s.Log)
			for _, p := range chaos.Tally(answers) {
				t.Logf("%s %s: %d requests, %d decisions, failures: %s", trigger, p.Phase, p.Requests, p.Decisions, chaos.FailureCounts(p.Failures))
			}
			t.Logf("%s: %s", trigger, v)
		})
	}
}

// checkConsistent checks that a decision is the one its registry gives:
// the 24-hour probe is allowed by the example registry (digest24) and
// denied by the one with a 12-hour maximum (digest12).
func checkConsistent(t *testing.T, a chaos.Answer, digest24, digest12 string) {
	t.Helper()
	d := a.Decision
	want := map[int]string{1: "allow signing_policy_matched", 2: "deny ttl_out_of_bounds", 3: "deny unknown_actor_resource"}
	if a.Request == probeTTL24 {
		switch d.RegistryDigest {
		case digest24:
			want[0] = "allow signing_policy_matched"
		case digest12:
			want[0] = "deny ttl_out_of_bounds"
		}
	}
	if got := d.Effect + " " + d.Reason; got != want[a.Request] {
		t.Errorf("phase %s probe %d: got %s from registry %s, want %s", a.Phase, a.Request, got, d.RegistryDigest, want[a.Request])
	}
}

// TestRegistryFaultsConfigMap breaks a registry mounted from a Kubernetes
// ConfigMap under --watch: ..data swapped to a generation whose registry
// is truncated, the previous generation deleted the way the kubelet does,
// ..data left dangling, then a good generation.
func TestRegistryFaultsConfigMap(t *testing.T) {
	skipShort(t)
	t.Parallel()
	fixture := loadFixture(t)
	good12 := withBridgeTTL(t, fixture, 12)
	policy := readFile(t, fixturePolicy)
	files := func(reg []byte) map[string][]byte {
		if reg == nil {
			return nil // a dangling ..data
		}
		return map[string][]byte{"registry.json": reg, "policy_package.md": policy}
	}
	vol := newConfigMapVolume(t, files(fixture.Canonical()))
	s := &server{Dir: vol.Dir, Registry: vol.Path("registry.json"), Policy: vol.Path("policy_package.md"), Log: filepath.Join(t.TempDir(), "decisions.jsonl")}
	s.start(t, s.serveArgs("--watch")...)
	load := startLoad(t, s.URL, 4)

	steps := []struct {
		name   string
		reg    []byte
		want   string // status
		digest string
	}{
		{"truncated generation", fixture.Canonical()[:100], "degraded", fixture.Digest},
		{"dangling ..data", nil, "degraded", fixture.Digest},
		{"good generation", good12.Canonical(), "ok", good12.Digest},
	}
	for _, st := range steps {
		load.SetPhase(st.name)
		h := s.waitReloaded(vol.update(files(st.reg)), st.want)
		if got := str(h, "registry.digest"); got != st.digest {
			t.Errorf("%s: registry.digest %s, want %s", st.name, got, st.digest)
		}
		waitAnswered(t, load, st.name, 20)
	}
	answers := load.Stop()
	for _, a := range answers {
		if a.Decision == nil {
			t.Errorf("phase %s: request failed: %v", a.Phase, a.Err)
			continue
		}
		checkConsistent(t, a, fixture.Digest, good12.Digest)
	}
	_, v := verifyLog(t, chaos.ReceivedOf(answers), s.Log)
	for _, p := range chaos.Tally(answers) {
		t.Logf("configmap %s: %d requests, %d decisions, failures: %s", p.Phase, p.Requests, p.Decisions, chaos.FailureCounts(p.Failures))
	}
	t.Logf("configmap: %s", v)
}

// TestReloadStorm sends SIGHUP every few milliseconds while the registry
// and the policy are rewritten between two versions each (and now and
// then a broken registry), under load: no request fails, and every
// decision carries the digests of a pair that was really served and is
// the decision that pair gives.
func TestReloadStorm(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	fixture := loadFixture(t)
	good12 := withBridgeTTL(t, fixture, 12)
	regs := [][]byte{fixture.Canonical(), good12.Canonical()}
	policyP := readFile(t, s.Policy)
	policyQ := append(bytes.Clone(policyP), "\n<!-- revision 2: same rules, another digest -->\n"...)
	policies := [][]byte{policyP, policyQ}
	// A sealed registry for another policy package: valid on its own,
	// refused as a pair, so its digest must never reach a decision.
	refused := registry.New(fixture.Source, "other/package", fixture.Actors)

	load := startLoad(t, s.URL, 4)
	load.SetPhase("storm")
	const (
		signals = 150
		every   = 5 * time.Millisecond
	)
	stop := make(chan struct{})
	var writer sync.WaitGroup
	var writeErr error
	writer.Add(1)
	go func() {
		defer writer.Done()
		for i := 0; writeErr == nil; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch {
			case i%7 == 6:
				writeErr = replace(s.Registry, refused.Canonical())
			case i%2 == 0:
				writeErr = replace(s.Registry, regs[(i/2)%2])
			default:
				writeErr = replace(s.Policy, policies[(i/3)%2])
			}
			time.Sleep(3 * time.Millisecond) // pacing of the file changes, not synchronisation
		}
	}()
	tick := time.NewTicker(every)
	for range signals {
		<-tick.C
		s.signal(sighup)
	}
	tick.Stop()
	close(stop)
	writer.Wait()
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	// End on a good pair, so that the last reload succeeds.
	writeFile(t, s.Registry, regs[0])
	since := time.Now()
	s.signal(sighup)
	s.waitReloaded(since, "ok")
	waitAnswered(t, load, "storm", 100)
	answers := load.Stop()

	policyDigests := map[string]bool{digestOf(policyP): true, digestOf(policyQ): true}
	regDigests := map[string]bool{fixture.Digest: true, good12.Digest: true}
	pairs := map[string]int{}
	for _, a := range answers {
		if a.Decision == nil {
			t.Errorf("request failed during the storm: %v", a.Err)
			continue
		}
		d := a.Decision
		if d.RegistryDigest == refused.Digest {
			t.Errorf("decision %s carries the digest of the refused registry", d.ID)
		}
		if !policyDigests[d.PolicyDigest] || !regDigests[d.RegistryDigest] {
			t.Errorf("decision %s carries policy %s and registry %s, not a pair that was served", d.ID, d.PolicyDigest, d.RegistryDigest)
		}
		checkConsistent(t, a, fixture.Digest, good12.Digest)
		pairs[d.PolicyDigest[:15]+"/"+d.RegistryDigest[:15]]++
	}
	_, v := verifyLog(t, chaos.ReceivedOf(answers), s.Log)
	reloads := metricFamilies(t, s.do("GET", "/metrics", "", nil).Body)["flexauth_reloads_total"]
	var ok, failed float64
	for _, m := range reloads.GetMetric() {
		if labels(m)["result"] == "success" {
			ok = m.GetCounter().GetValue()
		} else {
			failed = m.GetCounter().GetValue()
		}
	}
	if ok == 0 {
		t.Errorf("no reload succeeded during the storm")
	}
	t.Logf("reload storm: %d SIGHUPs, %.0f reloads succeeded, %.0f refused; %d requests, pairs served %v; %s",
		signals, ok, failed, len(answers), pairs, v)
}

// digestOf is the digest of a policy package file: sha256 of its bytes.
func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// replace writes path atomically, for goroutines other than the test's.
func replace(path string, data []byte) error {
	tmp := path + ".storm"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// TestCrashRestart kills the server under load with SIGKILL, leaves the
// worst fragment a crash can leave (a whole decision line cut just before
// its newline), restarts it on the same log under load, and stops it:
// every decision a client received, before and after the crash, is in
// the log as answered, and the fragment is never read as a decision.
func TestCrashRestart(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	load := startLoad(t, s.URL, 8)
	load.SetPhase("before the kill")
	waitAnswered(t, load, "before the kill", 300)
	s.signal(sigkill)
	s.wait()
	first := load.Stop()

	// The fragment: a complete decision line of an id nobody received,
	// without its newline.
	const ghost = "decision:0123456789abcdef"
	data := readFile(t, s.Log)
	lines := chaos.ReadLog("log", data)
	var sample chaos.Line
	for _, d := range lines.Decisions {
		sample = d
		break
	}
	if bytes.HasSuffix(data, []byte("\n")) {
		sample.ID = ghost
		frag, err := json.Marshal(sample)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(s.Log, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(frag); err != nil {
			t.Fatal(err)
		}
		f.Close()
	} else {
		t.Logf("the kill itself left a fragment of %d bytes", len(data)-bytes.LastIndexByte(data, '\n')-1)
	}

	s.start(t, s.serveArgs()...)
	load = startLoad(t, s.URL, 8)
	load.SetPhase("after the restart")
	waitAnswered(t, load, "after the restart", 300)
	second := load.Stop()
	s.signal(sigterm)
	if code := s.wait(); code != 0 {
		t.Errorf("exit code after SIGTERM: got %d, want 0", code)
	}

	answers := append(first, second...)
	for _, a := range second {
		if a.Decision == nil {
			t.Errorf("after the restart: request failed: %v", a.Err)
		}
	}
	log, v := verifyLog(t, chaos.ReceivedOf(answers), s.Log)
	if _, ok := log.Decisions[ghost]; ok {
		t.Errorf("the fragment left by the crash was read as decision %s", ghost)
	}
	if len(log.Torn) != 1 {
		t.Errorf("torn lines: got %d, want the one fragment: %v", len(log.Torn), log.Torn)
	}
	t.Logf("crash: %d requests before the kill (%d decisions), %d after the restart; %s; torn lines %d",
		len(first), len(chaos.ReceivedOf(first)), len(second), v, len(log.Torn))
}

// TestSlowAndIdleClients holds many connections the way a slow or hostile
// client does (connected and silent, idle after a request, headers or a
// body trickled a byte at a time, headers and bodies far over the
// limits) while a well-behaved client asks for decisions: it gets every
// answer, the server closes each abusive connection within its timeouts,
// answers oversized input with 431 and 413, and its memory stays bounded.
func TestSlowAndIdleClients(t *testing.T) {
	skipShort(t)
	t.Parallel()
	const (
		headerTimeout = 1500 * time.Millisecond
		readTimeout   = 2 * time.Second
		idleTimeout   = 1500 * time.Millisecond
		silent        = 200 // connected, never a byte
		idle          = 100 // one request, then keep-alive idle
		tricklers     = 10  // of each kind
		oversized     = 10  // of each kind
		maxRSS        = 128 << 20
	)
	s := startServer(t, "--read-header-timeout", headerTimeout.String(), "--read-timeout", readTimeout.String(),
		"--idle-timeout", idleTimeout.String())
	addr := strings.TrimPrefix(s.URL, "http://")
	start := time.Now()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	body := `{"subject": "iam:agt-state-hub-bridge", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 24}}`
	request := fmt.Sprintf("POST /v1/check HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)

	// watch reports, on results, how long after the call the server
	// closed c (its read returned), and what it sent first. It is called
	// when the timeout that should close c starts: after the dial, or
	// after the last answer on an idle connection. (Measured from the
	// start of the test, the bound would include setting up all the
	// connections before, which takes seconds on a busy machine.)
	type closed struct {
		kind  string
		after time.Duration
		got   string
	}
	var wg sync.WaitGroup
	results := make(chan closed, silent+idle+4*tricklers+3*oversized)
	watch := func(kind string, c net.Conn) {
		from := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(waitTimeout))
			data, _ := io.ReadAll(c)
			results <- closed{kind, time.Since(from), string(data)}
		}()
	}

	for range silent {
		watch("silent", dial())
	}
	for range idle {
		c := dial()
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("keep-alive request: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		watch("idle", c)
	}
	trickle := func(c net.Conn, data string) {
		go func() {
			for i := range len(data) {
				if _, err := c.Write([]byte{data[i]}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond) // the trickle's pace
			}
		}()
	}
	for range tricklers {
		c := dial()
		trickle(c, request)
		watch("headers trickled", c)
		c = dial()
		head, _, _ := strings.Cut(request, "\r\n\r\n")
		io.WriteString(c, head+"\r\n\r\n")
		trickle(c, body)
		watch("body trickled", c)
	}
	bigHeader := "POST /v1/check HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/json\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"
	manyHeaders := "POST /v1/check HTTP/1.1\r\nHost: e2e\r\n" + strings.Repeat("X-H: 1\r\n", 5000) + "\r\n"
	for range oversized {
		for _, req := range []string{bigHeader, manyHeaders,
			"POST /v1/check HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"} {
			c := dial()
			go io.WriteString(c, req)
			watch("oversized", c)
		}
		c := dial()
		go func() { // an 8 MiB chunked body
			io.WriteString(c, "POST /v1/check HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
			chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("x", 64<<10))
			for range 128 {
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
		}()
		watch("chunked 8 MiB", c)
	}

	// A well-behaved client is answered all the while.
	var slowest time.Duration
	for i := range 100 {
		t0 := time.Now()
		r := s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}})
		if r.Status != 200 || str(r.JSON(t), "effect") != "allow" {
			t.Fatalf("request %d under abuse: got %d %s, want 200 allow", i, r.Status, r.Body)
		}
		slowest = max(slowest, time.Since(t0))
	}
	answeredBy := time.Since(start)

	wg.Wait()
	close(results)
	latest := map[string]time.Duration{}
	counts := map[string]int{}
	statuses := map[string]map[string]int{}
	for r := range results {
		counts[r.kind]++
		latest[r.kind] = max(latest[r.kind], r.after)
		status := "closed without an answer"
		if resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(r.got)), nil); err == nil {
			status = strconv.Itoa(resp.StatusCode)
			b, _ := io.ReadAll(resp.Body)
			checkNoInternals(t, r.kind, string(b))
		}
		if statuses[r.kind] == nil {
			statuses[r.kind] = map[string]int{}
		}
		statuses[r.kind][status]++
	}
	// Every connection was closed by the server within its timeout (plus
	// slack for a loaded machine), not by the test's deadline.
	limits := map[string]time.Duration{"silent": headerTimeout, "idle": idleTimeout, "headers trickled": headerTimeout,
		"body trickled": readTimeout, "oversized": readTimeout, "chunked 8 MiB": readTimeout}
	for kind, after := range latest {
		if lim := limits[kind] + 5*time.Second; after > lim {
			t.Errorf("%s connections: one was closed %s after its timeout began, want within %s", kind, after.Round(time.Millisecond), lim)
		}
	}
	for _, st := range []struct{ kind, status string }{{"oversized", "431"}, {"oversized", "413"}, {"chunked 8 MiB", "413"}} {
		if statuses[st.kind][st.status] == 0 {
			t.Errorf("%s: no %s answer among %v", st.kind, st.status, statuses[st.kind])
		}
	}
	if n := statuses["oversized"]["431"] + statuses["oversized"]["413"]; n != 3*oversized {
		t.Errorf("oversized requests: got %v, want each answered 431 or 413", statuses["oversized"])
	}
	if got := statuses["chunked 8 MiB"]["413"]; got != oversized {
		t.Errorf("chunked 8 MiB bodies: got %v, want every one answered 413", statuses["chunked 8 MiB"])
	}
	if got := statuses["body trickled"]["200"]; got != 0 {
		t.Errorf("body trickled: %d decisions on a body that never arrived in time", got)
	}
	rss, hwm := memory(t, s)
	if hwm > maxRSS {
		t.Errorf("peak resident memory: got %d MiB, want under %d MiB", hwm>>20, maxRSS>>20)
	}
	if h := s.health(); str(h, "status") != "ok" {
		t.Errorf("after the abuse: %v", h)
	}
	for kind, after := range latest {
		latest[kind] = after.Round(time.Millisecond)
	}
	t.Logf("slow and idle clients: %v connections (%v), closed at most %v after their timeout began; 100 good requests answered by %s, slowest %s; server RSS %d MiB, peak %d MiB",
		counts, statuses, latest, answeredBy.Round(time.Millisecond), slowest.Round(time.Millisecond), rss>>20, hwm>>20)
}

// checkNoInternals checks a plain-text answer net/http wrote itself (431,
// a 400 for a malformed request) for internals.
func checkNoInternals(t *testing.T, what, body string) {
	t.Helper()
	low := strings.ToLower(body)
	for _, bad := range internalsRE {
		if strings.Contains(low, bad) {
			t.Errorf("%s: answer %q says %q, an internal", what, body, bad)
		}
	}
}

// memory returns the server's resident memory now and at its peak, from
// /proc/PID/status.
func memory(t *testing.T, s *server) (rss, hwm int64) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc to read the server's memory: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		}
	}
	if rss == 0 || hwm == 0 {
		t.Fatalf("/proc/%d/status: no VmRSS or VmHWM", s.cmd.Process.Pid)
	}
	return rss, hwm
}
