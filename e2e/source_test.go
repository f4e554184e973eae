package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/e2e/chaos"
)

// Poll interval and reload timeout of the replicas in these tests:
// short, to keep them quick; the behaviour does not depend on them.
const (
	testPoll          = 300 * time.Millisecond
	testReloadTimeout = 2 * time.Second
)

// followSlack is how late after its poll interval a replica may serve a
// new publication before a test fails. The target, a poll and a second,
// is checked by the bench tool (go run ./scripts/bench -convergence for
// ten replicas, -publication for one serving 100,000 actors); under
// -race, beside the other packages' tests on two cores, a replica can be
// seconds late without anything being wrong (ten replicas given a third
// of one core served a publication 10.3s after it was published, at a
// 2s poll), so the tests log what they saw and fail only on a replica
// that does not follow at all. It is under waitTimeout: a replica that
// follows later still fails this bound, with how late it was, and one
// that never follows fails its wait.
const followSlack = 20 * time.Second

// TestServeFromSource serves a publication and follows its tag: a new
// publication is served within a poll, /healthz names it, the decision
// log carries its digests, and nothing changes while the tag does not.
func TestServeFromSource(t *testing.T) {
	t.Parallel()
	e := newOCIEnv(t)
	first := e.pair(t)
	firstDigest := e.publish(t, first)
	r := e.replica(t, testPoll)
	waitServing(r, first)
	h := r.health()
	if str(h, "source.kind") != "oci" || str(h, "source.location") != e.source() || str(h, "source.poll") != testPoll.String() ||
		str(h, "source.publication.manifest_digest") != firstDigest || str(h, "source.publication.signed_by") == "" ||
		str(h, "source.publication.ref") != "oci://"+e.proxy.Addr+"/"+e.repo+"@"+firstDigest {
		t.Errorf("/healthz source: %v", h["source"])
	}
	if !strings.Contains(r.stderr.String(), "serving "+e.source()) {
		t.Errorf("no first log line naming the source:\n%s", r.stderr)
	}

	// While the tag does not move, a poll is one HEAD.
	heads, requests := e.proxy.heads.Load(), e.proxy.requests.Load()
	r.waitFor("three more polls", func() bool { return e.proxy.heads.Load() >= heads+3 })
	if got, want := e.proxy.requests.Load()-requests, e.proxy.heads.Load()-heads; got != want {
		t.Errorf("%d requests for %d polls of an unchanged tag, want one HEAD each", got, want)
	}

	second := e.pair(t)
	published := time.Now()
	secondDigest := e.publish(t, second)
	waitServing(r, second)
	took := time.Since(published)
	if took > testPoll+followSlack {
		t.Errorf("served the new publication %s after it was published, want within a poll (%s) and %s", took, testPoll, followSlack)
	}
	if got := str(r.health(), "source.publication.manifest_digest"); got != secondDigest {
		t.Errorf("/healthz names publication %s, want %s", got, secondDigest)
	}
	answer := r.check(map[string]any{"subject": "atm-revision-2", "resource": "atm-revision-2", "context": map[string]any{"ttl_hours": 1}})
	d := answer.JSON(t)
	if d["effect"] != "allow" || d["registry_digest"] != second.RegistryDigest || d["policy_digest"] != second.PolicyDigest {
		t.Errorf("decision from the second publication: %v", d)
	}
	log := string(readFile(t, r.Log))
	if !strings.Contains(log, `"registry_digest":"`+second.RegistryDigest+`"`) {
		t.Errorf("the decision log does not carry the second registry digest:\n%s", log)
	}
	// SIGHUP asks the registry again (and finds the same publication).
	heads = e.proxy.heads.Load()
	r.signal(sighup)
	r.waitFor("the SIGHUP's request", func() bool { return e.proxy.heads.Load() > heads })
	waitServing(r, second)
	// /metrics: the serial served, and the polls by result: the start and
	// the second publication updated, the polls between them did not.
	fams := metricFamilies(t, r.do("GET", "/metrics", "", nil).Body)
	serial, want := fams["flexauth_publication_serial"].GetMetric(), fmt.Sprint(path(r.health(), "source.publication.serial"))
	if len(serial) != 1 || strconv.FormatFloat(serial[0].GetGauge().GetValue(), 'f', -1, 64) != want {
		t.Errorf("flexauth_publication_serial %v, want the serial /healthz names, %s", serial, want)
	}
	if p := polls(t, r); p["updated"] != 2 || p["unchanged"] < 3 || p["refused"] != 0 || p["failed"] != 0 {
		t.Errorf("flexauth_source_polls_total %v, want updated 2, unchanged 3 or more, and nothing refused or failed", p)
	}
	// drift compares a publication with a snapshot, and with a replica.
	direct := "oci://" + e.reg.Addr + "/" + e.repo + ":" + e.tag
	if code, stdout, stderr := runCLI(t, nil, "drift", second.Registry, direct, "--plain-http"); code != 0 {
		t.Errorf("drift SNAPSHOT oci://: exit %d, want 0 (in sync)\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCLI(t, nil, "drift", direct, r.URL, "--plain-http"); code != 0 {
		t.Errorf("drift oci:// REPLICA: exit %d, want 0 (in sync)\n%s%s", code, stdout, stderr)
	}
	// With the checked-in policy package, the publication's statement
	// and the replica's answer are compared with it too.
	if code, stdout, stderr := runCLI(t, nil, "drift", direct, r.URL, "--plain-http", "--policy", second.Policy); code != 0 || !strings.Contains(stdout, second.PolicyDigest+")") {
		t.Errorf("drift oci:// REPLICA --policy: exit %d, want 0 (in sync)\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCLI(t, nil, "drift", second.Registry, direct, "--plain-http", "--policy", first.Policy); code != 1 ||
		!strings.Contains(stdout, "! policy differs: ACTUAL "+direct+" carries policy ops-warden/ssh-signing "+second.PolicyDigest+", not the checked-in "+first.Policy) {
		t.Errorf("drift SNAPSHOT oci:// --policy OLD: exit %d, want 1 (policy drift)\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ := runCLI(t, nil, "drift", first.Registry, direct, "--plain-http", "--format", "json")
	var rep struct {
		InSync bool `json:"in_sync"`
		Actual struct{ Source, Kind, Digest string }
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 1 || rep.InSync || rep.Actual.Kind != "publication" ||
		rep.Actual.Source != direct || rep.Actual.Digest != second.RegistryDigest || !strings.Contains(stdout, `"remove"`) {
		t.Errorf("drift of the first pair against the publication: exit %d, %v\n%s", code, err, stdout)
	}
	if code, _, stderr := runCLI(t, nil, "drift", first.Registry, direct); code != 2 || !strings.Contains(stderr, "http: server gave HTTP response to HTTPS client") {
		t.Errorf("drift without --plain-http: exit %d, %s", code, stderr)
	}
	t.Logf("a new publication was served %s after publish returned (poll %s)", took.Round(time.Millisecond), testPoll)
}

// TestSourceFaults breaks the registry in every way the issue lists,
// while a replica with a cache serves under load. Each fault keeps the
// last good pair serving, answers every request, and /healthz says why;
// each is then mended and the replica is healthy again.
func TestSourceFaults(t *testing.T) {
	t.Parallel()
	e := newOCIEnv(t)
	good := e.pair(t)
	goodDigest := e.publish(t, good)
	oldest := goodDigest
	cache := filepath.Join(t.TempDir(), "cache")
	args := []string{"--cache-dir", cache, "--reload-timeout", testReloadTimeout.String()}

	// Down at start-up, no cache: a start-up failure, one line.
	e.proxy.down()
	s := newServer(t)
	s.launch(t, e.replicaArgs(s, testPoll, args...)...)
	if code := s.wait(); code != 1 {
		t.Fatalf("registry down, no cache: exit %d, want 1", code)
	}
	if out := strings.TrimSpace(s.stderr.String()); strings.Count(out, "\n") != 0 || !strings.Contains(out, "connection refused") || !strings.Contains(out, e.source()) {
		t.Errorf("registry down, no cache: stderr %q, want one line naming the source and the error", out)
	}
	e.proxy.up()
	s = e.replica(t, testPoll, args...) // fills the cache
	waitServing(s, good)
	s.signal(sigterm)
	s.wait()

	// Down at start-up, with the cache: ready, serving it, degraded.
	e.proxy.down()
	r := e.replica(t, testPoll, args...)
	waitDegraded(r, good, "serving the cached publication ("+goodDigest)
	if h := r.health(); !strings.Contains(str(h, "reload.last_error"), "connection refused") || path(h, "source.publication.from_cache") != true {
		t.Errorf("started from the cache: %v", h)
	}
	if ready := r.do("GET", "/readyz", "", nil); ready.Status != 200 {
		t.Errorf("started from the cache: /readyz %d, want 200", ready.Status)
	}
	e.proxy.up()
	waitServing(r, good)

	load := startLoad(t, r.URL, 2)
	served := map[string]bool{good.served(): true}
	phase := func(name string) {
		load.SetPhase(name)
		waitAnswered(t, load, name, 50)
	}
	phase("healthy")

	// Down while serving.
	e.proxy.down()
	waitDegraded(r, good, "connection refused")
	phase("registry down")
	e.proxy.up()
	waitServing(r, good)

	// 500s.
	e.proxy.setFault("500", 0)
	waitDegraded(r, good, "500")
	phase("500s")
	e.proxy.setFault("", 0)
	waitServing(r, good)

	// Slow answers: slower than the reload timeout.
	e.proxy.setFault("slow", testReloadTimeout+time.Second)
	waitDegraded(r, good, "did not finish within the reload timeout")
	phase("slow answers")
	e.proxy.setFault("", 0)
	waitServing(r, good)

	// Truncated answers to a new publication's GETs.
	e.proxy.setFault("truncate", 0)
	next := e.pair(t)
	e.publish(t, next)
	waitDegraded(r, good, "unexpected EOF")
	phase("truncated answers")
	e.proxy.setFault("", 0)
	waitServing(r, next)
	good = next
	served[good.served()] = true

	// The registry is changed while the replica's requests wait, so that
	// it sees only the outcome.
	change := func(f func()) {
		release := e.proxy.holdRequests()
		defer release()
		f()
	}

	// A manifest pointing to a missing blob.
	next = e.pair(t)
	change(func() {
		e.publish(t, next)
		deleteBlob(t, e.reg.Addr, e.repo, next.PolicyDigest)
	})
	waitDegraded(r, good, "not found")
	phase("missing blob")
	e.publish(t, next) // pushes the blob again, with a new serial
	waitServing(r, next)
	good = next
	served[good.served()] = true

	// A blob changed in the registry's storage.
	next = e.pair(t)
	var original []byte
	change(func() {
		e.publish(t, next)
		path := e.reg.BlobPath(next.PolicyDigest)
		original = readFile(t, path)
		tampered := append([]byte(nil), original...)
		tampered[len(tampered)/2] ^= 0x20
		if err := os.WriteFile(path, tampered, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	waitDegraded(r, good, "mismatched digest")
	phase("tampered blob")
	if err := os.WriteFile(e.reg.BlobPath(next.PolicyDigest), original, 0o644); err != nil {
		t.Fatal(err)
	}
	waitServing(r, next)
	good = next
	served[good.served()] = true

	// A valid signature by a key the replica does not trust.
	next = e.pair(t)
	stranger := sshKey(t, t.TempDir(), "stranger")
	e.publish(t, next, "--sign-key", stranger)
	waitDegraded(r, good, "signed by a key that is not trusted: SHA256:")
	phase("unknown key")
	goodDigest = e.publish(t, next)
	waitServing(r, next)
	good = next
	served[good.served()] = true

	// A replayed older publication: the tag moved back to the first.
	e.retag(t, oldest)
	waitDegraded(r, good, "is lower than")
	phase("replayed older publication")
	e.retag(t, goodDigest)
	waitServing(r, good)

	// The tag moved to something that is not a flex-auth artifact.
	pushImage(t, e.reg.Addr, e.repo, e.tag)
	waitDegraded(r, good, "not a flex-auth publication")
	phase("not a publication")
	e.retag(t, goodDigest)
	waitServing(r, good)
	phase("mended")

	answers := load.Stop()
	// Each fault was counted: a registry that failed, a publication
	// refused.
	if p := polls(t, r); p["failed"] == 0 || p["refused"] == 0 || p["updated"] == 0 {
		t.Errorf("flexauth_source_polls_total %v, want failed, refused and updated polls", p)
	}
	for _, p := range chaos.Tally(answers) {
		t.Logf("faults %s: %d requests, %d decisions, failures: %s", p.Phase, p.Requests, p.Decisions, chaos.FailureCounts(p.Failures))
	}
	for _, a := range answers {
		if a.Decision == nil {
			t.Errorf("phase %s: request failed: %v", a.Phase, a.Err)
			continue
		}
		if pair := a.Decision.PolicyDigest + " " + a.Decision.RegistryDigest; !served[pair] {
			t.Errorf("phase %s: decision %s from %s, which was never a good pair", a.Phase, a.Decision.ID, pair)
		}
	}
	r.signal(sigterm)
	r.wait()
	_, v := verifyLog(t, chaos.ReceivedOf(answers), r.Log)
	t.Logf("faults: %s", v)
}

// deleteBlob deletes a blob from the registry.
func deleteBlob(t *testing.T, addr, repo, digest string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+addr+"/v2/"+repo+"/blobs/"+digest, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE blob %s: %d", digest, resp.StatusCode)
	}
}

// polls returns flexauth_source_polls_total of s by result.
func polls(t *testing.T, s *server) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range metricFamilies(t, s.do("GET", "/metrics", "", nil).Body)["flexauth_source_polls_total"].GetMetric() {
		out[labels(m)["result"]] = m.GetCounter().GetValue()
	}
	return out
}
