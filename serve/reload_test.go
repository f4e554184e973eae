package serve

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/policy"
)

func health(t testing.TB, s http.Handler) Health {
	t.Helper()
	var h Health
	if err := json.Unmarshal(do(s, http.MethodGet, "/healthz", "", "", nil).Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestReload(t *testing.T) {
	src, _ := fileSource(t)
	s := newTestServer(t, src, &syncBuffer{})
	_, fixtureDigest := builtinPair(t)
	alt := altRegistry(t, "ops-warden/ssh-signing")
	bridge24 := `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":24}}`

	steps := []struct {
		name     string
		file     string // which file to replace
		content  []byte
		errIs    error  // wanted error, nil for success
		errText  string // wanted in the error and in healthz last_error
		digest   string // registry digest served afterwards
		decision string // of bridge24 afterwards
	}{
		{"new registry", src.Registry, alt.Canonical(), nil, "", alt.Digest, "deny ttl_out_of_bounds"},
		{"registry edited by hand", src.Registry, []byte(strings.Replace(string(alt.Canonical()), `"max_ttl_hours": 12`, `"max_ttl_hours": 24`, 1)),
			nil, "digest does not match", alt.Digest, "deny ttl_out_of_bounds"},
		{"registry for another package", src.Registry, altRegistry(t, "other/package").Canonical(),
			policy.ErrPackageMismatch, `is for another policy package than policy`, alt.Digest, "deny ttl_out_of_bounds"},
		{"registry not JSON", src.Registry, []byte("{"), nil, "registry.json", alt.Digest, "deny ttl_out_of_bounds"},
		{"back to the fixture", src.Registry, fixture(t, examples.OpsWardenRegistry), nil, "", fixtureDigest, "allow signing_policy_matched"},
		{"policy that does not compile", src.Policy, []byte(strings.Replace(string(fixture(t, examples.OpsWardenPolicy)), "when: actor == null", "when: actor ==", 1)),
			nil, "policy.md", fixtureDigest, "allow signing_policy_matched"},
		{"policy removed", src.Policy, nil, os.ErrNotExist, "policy.md", fixtureDigest, "allow signing_policy_matched"},
		{"policy restored", src.Policy, fixture(t, examples.OpsWardenPolicy), nil, "", fixtureDigest, "allow signing_policy_matched"},
	}
	var ok, failed int
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.content == nil {
				os.Remove(st.file)
			} else {
				writeFile(t, st.file, st.content)
			}
			err := s.Reload()
			h := health(t, s)
			if st.errText == "" {
				ok++
				if err != nil {
					t.Fatalf("Reload: %v", err)
				}
				if h.Status != "ok" || h.Reload.LastError != nil {
					t.Errorf("healthz: got %s %v, want ok and no error", h.Status, h.Reload.LastError)
				}
			} else {
				failed++
				if err == nil {
					t.Fatalf("Reload: got no error, want one containing %q", st.errText)
				}
				if st.errIs != nil && !errors.Is(err, st.errIs) {
					t.Errorf("Reload: got %v, want errors.Is %v", err, st.errIs)
				}
				if !strings.Contains(err.Error(), st.errText) {
					t.Errorf("Reload: got %q, want it to contain %q", err, st.errText)
				}
				if h.Status != "degraded" || h.Reload.LastError == nil || !strings.Contains(*h.Reload.LastError, st.errText) {
					t.Errorf("healthz: got %s %v, want degraded with %q", h.Status, h.Reload.LastError, st.errText)
				}
				if h.Reload.LastError != nil && strings.Contains(*h.Reload.LastError, "\n") {
					t.Errorf("healthz last_error spans lines: %q", *h.Reload.LastError)
				}
			}
			if h.Registry.Digest != st.digest {
				t.Errorf("healthz registry digest: got %s, want %s", h.Registry.Digest, st.digest)
			}
			resp := decodeCheck(t, post(s, bridge24))
			if got := resp.Effect + " " + resp.Reason; got != st.decision || resp.RegistryDigest != st.digest {
				t.Errorf("decision: got %s with %s, want %s with %s", got, resp.RegistryDigest, st.decision, st.digest)
			}
		})
	}
	metrics := do(s, http.MethodGet, "/metrics", "", "", nil).Body.String()
	for _, want := range []string{
		`flexauth_reloads_total{package="ops-warden/ssh-signing",result="success"} ` + itoa(ok),
		`flexauth_reloads_total{package="ops-warden/ssh-signing",result="failure"} ` + itoa(failed),
		`flexauth_registry_actors 4`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics: missing %q", want)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestReloadBuiltin(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	before := health(t, s)
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload of the built-in example: %v", err)
	}
	after := health(t, s)
	if after.Status != "ok" || after.Registry.Digest != before.Registry.Digest || after.Policy.Digest != before.Policy.Digest {
		t.Errorf("healthz after reload: got %+v, want ok and the same pair as %+v", after, before)
	}
}

// TestReloadConcurrent hammers /v1/check while the registry flips between
// two versions: no request may fail, and every answer must be the decision
// of the pair whose digests it reports.
func TestReloadConcurrent(t *testing.T) {
	src, _ := fileSource(t)
	log := &syncBuffer{}
	s := newTestServer(t, src, log)
	_, fixtureDigest := builtinPair(t)
	alt := altRegistry(t, "ops-warden/ssh-signing")
	want := map[string]string{ // registry digest -> decision for ttl 24
		fixtureDigest: "allow signing_policy_matched",
		alt.Digest:    "deny ttl_out_of_bounds",
	}
	body := `{"subject":"iam:agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":24}}`

	stop := make(chan struct{})
	var served [2]atomic.Int64
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				w := post(s, body)
				var resp checkResponse
				if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &resp) != nil {
					bad.Add(1)
					t.Errorf("request failed during reload: %d %s", w.Code, w.Body)
					return
				}
				got := resp.Effect + " " + resp.Reason
				if want[resp.RegistryDigest] != got {
					bad.Add(1)
					t.Errorf("registry %s decided %s, want %q", resp.RegistryDigest, got, want[resp.RegistryDigest])
					return
				}
				if resp.RegistryDigest == alt.Digest {
					served[1].Add(1)
				} else {
					served[0].Add(1)
				}
			}
		})
	}
	files := [][]byte{alt.Canonical(), fixture(t, examples.OpsWardenRegistry)}
	for i := 0; i < 16 && bad.Load() == 0; i++ {
		writeFile(t, src.Registry, files[i%2])
		if err := s.Reload(); err != nil {
			t.Fatalf("Reload %d: %v", i, err)
		}
		// Let some requests see each pair before the next flip.
		n := served[0].Load() + served[1].Load()
		waitFor(t, "requests between reloads", func() bool { return served[0].Load()+served[1].Load() >= n+4 })
	}
	close(stop)
	wg.Wait()
	if served[0].Load() == 0 || served[1].Load() == 0 {
		t.Errorf("answers per registry: got %d and %d, want both served", served[0].Load(), served[1].Load())
	}
	// The decision log agrees with the answers.
	for _, line := range log.lines(t) {
		got := line["effect"].(string) + " " + line["reason"].(string)
		if d := line["registry_digest"].(string); want[d] != got {
			t.Errorf("log line for registry %s decided %s, want %s", d, got, want[d])
		}
	}
}

// gateFS is the built-in example, whose registry file blocks on open
// while the gate is shut, as a file on a hung mount does.
type gateFS struct {
	mu   sync.Mutex
	gate chan struct{} // nil: open
	reg  []byte        // the registry served
}

func (g *gateFS) Open(name string) (fs.File, error) {
	g.mu.Lock()
	gate, reg := g.gate, g.reg
	g.mu.Unlock()
	if name != examples.OpsWardenRegistry {
		return examples.OpsWarden.Open(name)
	}
	if gate != nil {
		<-gate
	}
	return fstest.MapFS{name: {Data: reg}}.Open(name)
}

func (g *gateFS) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = make(chan struct{})
}

// TestReloadStuck checks that a reload blocked reading a file fails after
// the reload timeout, that later reloads still run (until too many are
// stuck, when they fail at once), and that what the stuck ones read at
// last is discarded.
func TestReloadStuck(t *testing.T) {
	const timeout = 100 * time.Millisecond
	_, fixtureDigest := builtinPair(t)
	g := &gateFS{reg: fixture(t, examples.OpsWardenRegistry)}
	src := builtin
	src.FS = g
	logs := &syncBuffer{}
	s, err := New(Options{Source: src, DecisionLog: &syncBuffer{}, ReloadTimeout: timeout, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	g.shut()
	for i := range maxStuckJobs {
		start := time.Now()
		err := s.Reload()
		if err == nil || !strings.Contains(err.Error(), "reload timeout") {
			t.Fatalf("reload %d while the registry blocks: got %v, want the reload timeout", i, err)
		}
		if took := time.Since(start); took > timeout+5*time.Second {
			t.Errorf("reload %d returned after %s, want about %s", i, took, timeout)
		}
		if h := health(t, s); h.Status != "degraded" || h.Reload.LastError == nil {
			t.Errorf("healthz after a stuck reload: %+v, want degraded", h)
		}
		if got := decodeCheck(t, post(s, allowBody)); got.RegistryDigest != fixtureDigest {
			t.Errorf("served registry %s during stuck reloads, want %s", got.RegistryDigest, fixtureDigest)
		}
	}
	// Refused at once: not after a reload timeout, which is a minute
	// from here on (the file system answers again below, and 100ms is
	// too little for a reload under -race on a busy machine). A refusal
	// that waited would take that minute; one that did not takes a
	// moment however busy the machine.
	s.reloadTimeout = time.Minute
	start := time.Now()
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "still blocked") || time.Since(start) >= s.reloadTimeout/2 {
		t.Errorf("reload with %d stuck already: got %v after %s, want refused at once", maxStuckJobs, err, time.Since(start))
	}

	// The stuck reads return another registry: it is not applied. A
	// stuck job counts itself out before it logs the discarding: wait
	// for the log lines.
	alt := altRegistry(t, "ops-warden/ssh-signing")
	g.mu.Lock()
	g.reg = alt.Canonical()
	close(g.gate)
	g.gate = nil
	g.mu.Unlock()
	waitFor(t, "the stuck reloads to finish", func() bool { return strings.Count(logs.String(), "discarded") >= maxStuckJobs })
	if n := s.stuckJobs.Load(); n != 0 {
		t.Errorf("stuck reloads after every one logged its discarded read: got %d, want 0", n)
	}
	if got := decodeCheck(t, post(s, allowBody)); got.RegistryDigest != fixtureDigest {
		t.Errorf("after the stuck reloads returned: serving %s, want %s", got.RegistryDigest, fixtureDigest)
	}
	if n := strings.Count(logs.String(), "discarded"); n != maxStuckJobs {
		t.Errorf("log lines about discarded reads: got %d, want %d", n, maxStuckJobs)
	}
	if err := s.Reload(); err != nil {
		t.Fatalf("reload after the file system recovered: %v", err)
	}
	bridge24 := `{"subject":"agt-state-hub-bridge","resource":"agt-state-hub-bridge","context":{"ttl_hours":24}}`
	if got := decodeCheck(t, post(s, bridge24)); got.RegistryDigest != alt.Digest || got.Effect != "deny" {
		t.Errorf("after a good reload: %s %s from %s, want deny from %s", got.Effect, got.Reason, got.RegistryDigest, alt.Digest)
	}
}

// TestAfterLoad: Options.AfterLoad runs once a pair serves, at New and
// after each reload that swaps one in, and not after a failed reload;
// when it runs, the pair it follows is the one served.
func TestAfterLoad(t *testing.T) {
	src, _ := fileSource(t)
	var s *Server
	var served []string
	s, err := New(Options{Source: src, DecisionLog: &syncBuffer{}, Clock: fixedClock, LogTimeout: time.Minute,
		AfterLoad: func() {
			if s == nil { // New has not returned yet: read nothing of s
				served = append(served, "new")
				return
			}
			served = append(served, s.checkState().snap.Digest)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	alt := altRegistry(t, "ops-warden/ssh-signing")
	writeFile(t, src.Registry, alt.Canonical())
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, src.Registry, []byte("{"))
	if err := s.Reload(); err == nil {
		t.Fatal("a reload of an invalid registry succeeded")
	}
	if want := []string{"new", alt.Digest}; !slices.Equal(served, want) {
		t.Errorf("AfterLoad ran after %q, want %q", served, want)
	}
}
