package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/e2e/chaos"
	"github.com/coulomb/flex-auth/internal/testregistry"
	"github.com/coulomb/flex-auth/registry"
)

// TestLoadSpreadsConnectionsOverAddrs checks that with addrs, connection
// i goes to addrs[i mod len(addrs)], and that onAnswer sees every answer
// of each connection.
func TestLoadSpreadsConnectionsOverAddrs(t *testing.T) {
	snap := largeSnapshot(30, registry.DefaultPolicyPackage, "")
	asked := make([]atomic.Int64, 2)
	var addrs []string
	for i := range asked {
		srv := decisionServer(snap, 0, &asked[i])
		defer srv.Close()
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	reqs, err := buildMix(snap, addrs[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	const conns = 5
	answers := make([]int64, conns) // each written by its connection's worker only
	l := &load{addrs: addrs, requests: reqs, conns: conns, warmup: 50 * time.Millisecond, duration: 300 * time.Millisecond, check: true,
		onAnswer: func(conn int, sent, done time.Time, body []byte) {
			if done.Before(sent) || !bytes.Contains(body, []byte(`"effect"`)) {
				t.Errorf("connection %d: answer %q sent at %v, done at %v", conn, body, sent, done)
			}
			answers[conn]++
		}}
	res, err := l.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got [2]int64
	for c, n := range answers {
		if n == 0 {
			t.Errorf("connection %d: no answer", c)
		}
		got[c%2] += n
	}
	if got[0] != asked[0].Load() || got[1] != asked[1].Load() || got[0]+got[1] != res.okTotal {
		t.Errorf("got %v answers on connections 0, 2, 4 and 1, 3; the servers were asked %d and %d; %d answered in all; want the same",
			got, asked[0].Load(), asked[1].Load(), res.okTotal)
	}
}

const (
	oldPair  = "sha256:" + "1111111111111111111111111111111111111111111111111111111111111111" + " sha256:" + "2222222222222222222222222222222222222222222222222222222222222222"
	nextPair = "sha256:" + "3333333333333333333333333333333333333333333333333333333333333333" + " sha256:" + "4444444444444444444444444444444444444444444444444444444444444444"
)

// decisionBody returns a deny answered with pair.
func decisionBody(id int, pair string) []byte {
	policy, reg, _ := strings.Cut(pair, " ")
	return fmt.Appendf(nil, `{"decision_id":"decision:%016x","effect":"deny","reason":"unknown_actor_resource","policy":"ops-warden","policy_digest":%q,"registry_digest":%q}`,
		id, policy, reg)
}

// TestAnswerLogCheck checks the pairs a convergence round accepts: two
// replicas, the new pair published at 10s, replica 0 showing it at 11s
// and replica 1 at 12s.
func TestAnswerLogCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	publishAt, seen := at(10), []time.Time{at(11), at(12)}
	type ans struct {
		conn       int
		sent, done float64
		pair       string
	}
	tests := []struct {
		name    string
		answers []ans
		old     int64
		next    int64
		wantErr string
	}{
		{"each pair when it may", []ans{
			{0, 9, 9.5, oldPair},    // before the publish
			{1, 10, 10.5, nextPair}, // after it, before /healthz showed it
			{0, 10.9, 11.1, oldPair},
			{1, 11.5, 11.6, oldPair}, // replica 1 shows it later
			{0, 11.1, 11.2, nextPair},
			{3, 12.5, 12.6, nextPair}, // connection 3 goes to replica 1
		}, 3, 3, ""},
		{"the new pair before the publish", []ans{{0, 9, 9.5, nextPair}}, 0, 0, "with the new pair 500ms before it was published"},
		{"the old pair after /healthz showed the new one", []ans{{2, 11.5, 11.6, oldPair}}, 0, 0, "replica 0 answered decision decision:0000000000000000 with the old pair, asked 500ms after"},
		{"a pair never published", []ans{{1, 9, 9.5, strings.Replace(oldPair, "1", "5", 1)}}, 0, 0, "not a pair that was published"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAnswerLog(4)
			for i, x := range tt.answers {
				a.add(x.conn, at(x.sent), at(x.done), decisionBody(i, x.pair))
			}
			var res convergenceResult
			err := a.check(oldPair, nextPair, publishAt, seen, &res)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got error %v, want %q", err, tt.wantErr)
			}
			if err == nil && (res.OldPair != tt.old || res.NewPair != tt.next) {
				t.Errorf("got %d decisions of the old pair and %d of the new, want %d and %d", res.OldPair, res.NewPair, tt.old, tt.next)
			}
		})
	}
}

// TestAnswerLogKeepsWhatTheLogIsCheckedAgainst checks that the decisions
// kept are what chaos.Log.Verify needs, replica by replica, and that an
// answer that is not a decision fails the check.
func TestAnswerLogKeepsWhatTheLogIsCheckedAgainst(t *testing.T) {
	a := newAnswerLog(3)
	now := time.Now()
	for i := range 6 {
		a.add(i%3, now, now, decisionBody(i, oldPair))
	}
	got := a.received(1, 2) // connections 1 and 3: there is no 3
	want := []chaos.Received{{ID: "decision:0000000000000001", Effect: "deny", Reason: "unknown_actor_resource", Policy: "ops-warden",
		PolicyDigest: oldPair[:71], RegistryDigest: oldPair[72:]}, {ID: "decision:0000000000000004", Effect: "deny", Reason: "unknown_actor_resource",
		Policy: "ops-warden", PolicyDigest: oldPair[:71], RegistryDigest: oldPair[72:]}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if err := a.check(oldPair, nextPair, now.Add(time.Hour), []time.Time{now.Add(time.Hour), now.Add(time.Hour)}, &convergenceResult{}); err != nil {
		t.Fatal(err)
	}
	a.add(2, now, now, []byte(`{"decision_id":"x","effect":"deny"}`))
	err := a.check(oldPair, nextPair, now.Add(time.Hour), []time.Time{now.Add(time.Hour), now.Add(time.Hour)}, &convergenceResult{})
	if err == nil || !strings.Contains(err.Error(), "connection 2: an answer that is not a decision: decision_id") {
		t.Errorf("got %v, want the answer that is not a decision", err)
	}
}

// TestRegistryCounter checks that the counter forwards every request to
// the registry and counts them, the manifest HEADs apart.
func TestRegistryCounter(t *testing.T) {
	var mu sync.Mutex
	var got []string
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Docker-Content-Digest", "sha256:abc")
		fmt.Fprint(w, "manifest")
	}))
	defer reg.Close()
	c, err := startRegistryCounter(strings.TrimPrefix(reg.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for _, r := range []struct{ method, path string }{
		{"HEAD", "/v2/bench/convergence/manifests/production"},
		{"GET", "/v2/bench/convergence/manifests/production"},
		{"GET", "/v2/bench/convergence/blobs/sha256:abc"},
		{"HEAD", "/v2/bench/convergence/manifests/production"},
	} {
		req, _ := http.NewRequest(r.method, "http://"+c.addr+r.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Docker-Content-Digest") != "sha256:abc" {
			t.Errorf("%s %s: got %s, digest %q, want the registry's answer", r.method, r.path, resp.Status, resp.Header.Get("Docker-Content-Digest"))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 || c.requests.Load() != 4 || c.manifestHeads.Load() != 2 {
		t.Errorf("got %d requests forwarded (%v), %d counted, %d manifest HEADs; want 4, 4 and 2", len(got), got, c.requests.Load(), c.manifestHeads.Load())
	}
}

// TestConvergenceTargets checks the rows of the "against the targets"
// table a convergence round gives, met and missed.
func TestConvergenceTargets(t *testing.T) {
	ok := convergenceResult{Replicas: 10, PollMS: 2000, ServedMS: []float64{100, 2900}, MaxServedMS: 2900, OldPair: 5, NewPair: 6, Logged: 11,
		IdleSeconds: 60, IdleRequests: []int64{33, 34}, IdleHeads: []int64{33, 34}, IdlePerMinute: 33.5}
	late := ok
	late.MaxServedMS = 3100
	failed := ok
	failed.Errors = 1
	notOnePerPoll := ok
	notOnePerPoll.IdleRequests = []int64{33, 36}
	tooMany := ok
	tooMany.IdlePerMinute = 40 // more than 60 / 1.6 s + 1
	tests := []struct {
		name   string
		rounds []convergenceResult
		missed string
	}{
		{"met", []convergenceResult{ok, ok}, ""},
		{"a replica later than a poll and a second", []convergenceResult{ok, late}, "within the poll interval and a second"},
		{"a failed request", []convergenceResult{failed}, "zero failed requests"},
		{"more requests than polls", []convergenceResult{notOnePerPoll}, "one request to the registry per poll"},
		{"more polls than the interval allows", []convergenceResult{tooMany}, "one request to the registry per poll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &report{Convergence: tt.rounds}
			ts := r.targets()
			if len(ts) != 4 {
				t.Fatalf("got %d targets, want 4: %v", len(ts), ts)
			}
			var missed []string
			for _, x := range ts {
				if !x.Met {
					missed = append(missed, x.What)
				}
			}
			if tt.missed == "" && len(missed) > 0 || tt.missed != "" && (len(missed) != 1 || !strings.Contains(missed[0], tt.missed)) {
				t.Errorf("got missed %q, want %q", missed, tt.missed)
			}
			var md strings.Builder
			r.writeMarkdown(&md)
			if !strings.Contains(md.String(), "| target | measured | |") || !strings.Contains(md.String(), "| round 2 |") && len(tt.rounds) == 2 {
				t.Errorf("markdown without the targets or the rounds:\n%s", md.String())
			}
		})
	}
}

// TestConvergenceRun runs the convergence mode on two replicas of the
// real binary and the real distribution registry: it must complete, with
// every decision in its replica's log and every replica timed. It checks
// no timing: that is what the mode reports.
func TestConvergenceRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds flex-auth and runs the distribution registry")
	}
	if _, err := testregistry.Binary(); err != nil {
		t.Skipf("the CNCF distribution registry could not be built, so this test cannot run: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "flex-auth")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/flex-auth").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Chdir("..") // the bench reads the example registry from the module root
	b := &bench{Config: Config{Bin: bin, Conns: 4, Warmup: 100 * time.Millisecond, Duration: time.Second, Policy: "examples/ops-warden/policy_package.md",
		ConvergenceReplicas: 2, ConvergencePoll: 500 * time.Millisecond, ConvergenceIdle: 2 * time.Second}, dir: dir, w: os.Stderr}
	res, err := b.convergenceRun(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ServedMS) != 2 || res.OldPair == 0 || res.NewPair == 0 || res.Logged < int(res.OldPair+res.NewPair) || res.Errors != 0 {
		t.Errorf("got %+v, want both replicas timed, decisions of both pairs, each logged, and no error", res)
	}
	if len(res.IdleHeads) != 2 || res.IdleHeads[0] == 0 || res.IdleHeads[1] == 0 {
		t.Errorf("got %v manifest HEADs while idle, want polls from both replicas", res.IdleHeads)
	}
	t.Log(convergenceLine(*res))
}
