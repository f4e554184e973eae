package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/registry"
)

func TestHistogramPercentilesMatchSortedSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	tests := []struct {
		name string
		gen  func() int64
	}{
		{"small exact values", func() int64 { return r.Int64N(256) }},
		{"microseconds", func() int64 { return 20_000 + r.Int64N(200_000) }},
		{"log-normal with a long tail", func() int64 { return int64(math.Exp(r.NormFloat64()*1.5 + 11)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			samples := make([]int64, 50_000)
			for i := range samples {
				samples[i] = tt.gen()
				h.record(time.Duration(samples[i]))
			}
			slices.Sort(samples)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				want := samples[int(math.Ceil(q*float64(len(samples))))-1]
				got := int64(h.percentile(q))
				// The bucket's upper bound is reported: never below the
				// true value, at most 1/128 above it.
				if got < want || float64(got-want) > float64(want)/128+1 {
					t.Errorf("p%v: got %d, want %d (within 0.8%% above)", q*100, got, want)
				}
			}
			if got, want := h.count(), int64(len(samples)); got != want {
				t.Errorf("count: got %d, want %d", got, want)
			}
			if got, want := int64(h.percentile(1)), samples[len(samples)-1]; got != want {
				t.Errorf("max: got %d, want %d", got, want)
			}
		})
	}
}

func TestHistogramBucketsAreContiguous(t *testing.T) {
	// Every value falls in a bucket whose upper bound is >= the value, and
	// the bucket after it starts just past that bound.
	for _, v := range []int64{0, 1, 255, 256, 257, 511, 512, 1000, 1 << 20, 1<<40 + 12345, 1<<62 - 1} {
		b := bucketOf(v)
		if b < 0 || b >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range [0, %d)", v, b, histBuckets)
		}
		hi := bucketHigh(b)
		if hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d, want >= %d", v, hi, v)
		}
		if hi < 1<<62-1 {
			if got := bucketOf(hi + 1); got != b+1 {
				t.Errorf("bucketOf(%d) = %d, want %d (the next bucket)", hi+1, got, b+1)
			}
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.record(d)
		if i%3 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.merge(&b)
	for _, q := range []float64{0.1, 0.5, 0.99} {
		if got, want := a.percentile(q), all.percentile(q); got != want {
			t.Errorf("p%v after merge: got %v, want %v", q*100, got, want)
		}
	}
	if a.min != all.min || a.max != all.max || a.n != all.n {
		t.Errorf("merge: got min %d max %d n %d, want %d %d %d", a.min, a.max, a.n, all.min, all.max, all.n)
	}
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name      string
		wire      string
		status    int
		body      string
		close     bool
		wantError bool
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", false, false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: 1\r\n\r\n", 200, "hello", false, false},
		{"connection close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 503, "{}", true, false},
		{"HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", true, false},
		{"no length reads to the end", "HTTP/1.1 200 OK\r\n\r\nrest", 200, "rest", true, false},
		{"304 has no body", "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 304, "", false, false},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 0, "", false, true},
		{"garbage status", "SSH-2.0-OpenSSH\r\n\r\n", 0, "", false, true},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 0, "", false, true},
		{"empty", "", 0, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.wire))
			r, _, err := readResponse(br, make([]byte, 2))
			if tt.wantError {
				if err == nil {
					t.Fatalf("got no error, want one (status %d, body %q)", r.status, r.body)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if r.status != tt.status || string(r.body) != tt.body || r.close != tt.close {
				t.Errorf("got status %d body %q close %v, want %d %q %v", r.status, r.body, r.close, tt.status, tt.body, tt.close)
			}
		})
	}
}

func TestDecisionMembers(t *testing.T) {
	tests := []struct {
		body, effect, reason string
		ok                   bool
	}{
		{`{"effect":"allow","reason":"x"}`, "allow", "x", true},
		{`{"effect" : "deny" , "reason": "ttl_out_of_bounds", "grant": {"reason": "no"}}`, "deny", "ttl_out_of_bounds", true},
		{`{"effect":"\u0061llow"}`, "allow", "", true},
		{`{"error":{"code":"invalid_request"}}`, "", "", false},
		{`{"effect":1}`, "", "", false},
		{`{"effect":"unterminated`, "", "", false},
		{`{"effect":"allow","effect":"deny"}`, "", "", false},
		{`{"effect":"allow"} {}`, "", "", false},
		{`["effect","allow"]`, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			e, r, ok := decisionMembers([]byte(tt.body))
			if string(e) != tt.effect || string(r) != tt.reason || ok != tt.ok {
				t.Errorf("got %q %q %v, want %q %q %v", e, r, ok, tt.effect, tt.reason, tt.ok)
			}
		})
	}
	body := []byte(`{"decision_id":"decision:0123456789abcdef","effect":"deny","reason":"ttl_out_of_bounds"}`)
	if n := testing.AllocsPerRun(100, func() { decisionMembers(body) }); n != 0 && !raceEnabled {
		t.Errorf("got %v allocations per answer, want 0", n)
	}
}

func TestMixCoversEveryRuleAndIsValidHTTP(t *testing.T) {
	snap := largeSnapshot(30, registry.DefaultPolicyPackage, "")
	reqs, err := buildMix(snap, "127.0.0.1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(reqs), 50; got != want {
		t.Fatalf("got %d requests, want %d", got, want)
	}
	reasons := map[string]int{}
	for _, r := range reqs {
		reasons[r.effect+" "+r.reason]++
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(r.wire)))
		if err != nil {
			t.Fatalf("request does not parse as HTTP: %v\n%s", err, r.wire)
		}
		body, _ := io.ReadAll(hr.Body)
		if hr.Method != "POST" || hr.URL.Path != "/v1/check" || hr.Header.Get("Content-Type") != "application/json" || !bytes.HasPrefix(body, []byte(`{"subject":`)) {
			t.Errorf("got %s %s %q %s, want a JSON POST to /v1/check", hr.Method, hr.URL.Path, hr.Header.Get("Content-Type"), body)
		}
	}
	want := map[string]int{
		"allow signing_policy_matched": 20, "deny ttl_out_of_bounds": 10,
		"deny subject_not_bound": 10, "deny unknown_actor_resource": 10,
	}
	for k, n := range want {
		if reasons[k] != n {
			t.Errorf("%s: got %d requests, want %d", k, reasons[k], n)
		}
	}
}

func TestLargeSnapshotIsValid(t *testing.T) {
	snap := largeSnapshot(1000, registry.DefaultPolicyPackage, "agt-bench-reload-1")
	back, err := registry.Parse(snap.Canonical())
	if err != nil {
		t.Fatalf("generated registry does not load: %v", err)
	}
	if got, want := len(back.Actors), 1001; got != want {
		t.Errorf("got %d actors, want %d", got, want)
	}
	if other := largeSnapshot(1000, registry.DefaultPolicyPackage, ""); other.Digest == snap.Digest {
		t.Errorf("the reload actor does not change the digest")
	}
}

// decisionServer decides check requests over snap the way the ops-warden
// policy does, except that every failEvery-th answer is a 503. *asked
// counts the requests it got.
func decisionServer(snap *registry.Snapshot, failEvery int, asked *atomic.Int64) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req checkBody
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if k := asked.Add(1); failEvery > 0 && k%int64(failEvery) == 0 {
			http.Error(w, `{"error":{"code":"decision_log_unavailable"}}`, 503)
			return
		}
		effect, reason := "allow", "signing_policy_matched"
		a := snap.Lookup(req.Resource)
		ttl, _ := req.Context["ttl_hours"].(float64)
		switch {
		case a == nil:
			effect, reason = "deny", "unknown_actor_resource"
		case !slices.Contains(a.Subjects, req.Subject):
			effect, reason = "deny", "subject_not_bound"
		case ttl < 1 || ttl > float64(a.MaxTTLHours):
			effect, reason = "deny", "ttl_out_of_bounds"
		}
		fmt.Fprintf(w, `{"decision_id": "decision:0", "effect": %q, "reason": %q}`, effect, reason)
	}))
}

// TestLoadClosedLoopCountsAnswersAndErrors checks the counts of a closed
// loop against what the server saw, over the whole run, so that nothing
// depends on how many requests this machine manages in the window: every
// request sent is answered and counted once, the failures as errors of
// kind status and the others as answers, and only answers have a latency.
func TestLoadClosedLoopCountsAnswersAndErrors(t *testing.T) {
	tests := []struct {
		name      string
		failEvery int
	}{
		{"all answered as expected", 0},
		{"every 10th answer fails", 10},
	}
	snap := largeSnapshot(30, registry.DefaultPolicyPackage, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked atomic.Int64
			srv := decisionServer(snap, tt.failEvery, &asked)
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "http://")
			reqs, err := buildMix(snap, addr, 0)
			if err != nil {
				t.Fatal(err)
			}
			l := &load{addr: addr, requests: reqs, conns: 4, warmup: 50 * time.Millisecond, duration: 300 * time.Millisecond, check: true}
			res, err := l.run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			n := asked.Load()
			// Each connection sends at least one request, whatever the
			// machine's speed.
			if res.sent != n || n < int64(l.conns) {
				t.Fatalf("got %d requests sent, the server %d, want equal and at least %d", res.sent, n, l.conns)
			}
			var failed int64
			if tt.failEvery > 0 {
				failed = n / int64(tt.failEvery)
			}
			if res.errsTotal != failed || res.errKinds["status"] != failed || res.okTotal != n-failed {
				t.Errorf("got %d answers and %d errors (%v), want %d and %d, all of kind status", res.okTotal, res.errsTotal, res.errKinds, n-failed, failed)
			}
			if res.ok+res.errs > res.sent || res.latency.count() != res.ok {
				t.Errorf("window: got %d answers, %d errors and %d latencies of %d requests, want as many latencies as answers, and no more than sent",
					res.ok, res.errs, res.latency.count(), res.sent)
			}
		})
	}
}

// TestLoadOpenLoopKeepsTheSchedule checks what the open loop controls:
// the requests it sends. At 2000 requests a second over 4 connections,
// each connection is due every 2 ms, the k-th a quarter of that after the
// one before it; in 0.6 s (warm-up and window) that is 300 each, 1200 in
// all, sent however late this machine runs, and no more.
func TestLoadOpenLoopKeepsTheSchedule(t *testing.T) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		bareHandler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	reqs, err := buildMix(largeSnapshot(10, registry.DefaultPolicyPackage, ""), addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := &load{addr: addr, requests: reqs, conns: 4, warmup: 100 * time.Millisecond, duration: 500 * time.Millisecond, rate: 2000}
	res, err := l.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.sent != 1200 || asked.Load() != 1200 {
		t.Errorf("got %d requests sent, %d received, want the 1200 of the schedule", res.sent, asked.Load())
	}
	if res.errsTotal != 0 || res.okTotal != res.sent {
		t.Errorf("got %d answers and %d errors, want every request answered: %v", res.okTotal, res.errsTotal, res.events)
	}
}

func TestBareHandler(t *testing.T) {
	tests := []struct {
		body   string
		status int
	}{
		{`{"subject":"a","action":"ssh.sign","resource":"agt-x","context":{"ttl_hours":1}}`, 200},
		{`{"subject":"a"}`, 400},
		{`not json`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			rec := httptest.NewRecorder()
			bareHandler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/check", strings.NewReader(tt.body)))
			if rec.Code != tt.status {
				t.Errorf("got status %d, want %d", rec.Code, tt.status)
			}
			if tt.status == 200 && !decisionIs(rec.Body.Bytes(), "allow", "signing_policy_matched") {
				t.Errorf("got %s, want an allow", rec.Body)
			}
		})
	}
}

func TestSummaryAndReport(t *testing.T) {
	runs := func(s string, rps ...float64) []runResult {
		var out []runResult
		for i, r := range rps {
			out = append(out, runResult{Scenario: s, Round: i + 1, RPS: r, P99: r / 10, ErrorsTotal: 1})
		}
		return out
	}
	a, c := runs("a", 800, 900, 700), runs("c", 1000, 1000, 1400)
	sa := summarize("a", "x", a)
	if sa.RPS != 800 || sa.RPSMin != 700 || sa.RPSMax != 900 || sa.P99 != 80 || sa.Errors != 3 {
		t.Errorf("summary: got %+v, want median 800, min 700, max 900, p99 80, 3 errors", sa)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of an even count: got %v, want 2.5", got)
	}
	// Per round: 0.8, 0.9, 0.5.
	if got := pairedRatio(a, c); got != 0.8 {
		t.Errorf("paired ratio: got %v, want 0.8", got)
	}
	rep := &report{Summaries: []summary{sa, summarize("c", "bare", c)}, RatioA: 0.8, Large: []largeResult{{Actors: 100000, PeakRSS: 100 << 20, ReloadMS: 12.5}}}
	var text, md bytes.Buffer
	rep.writeText(&text)
	rep.writeMarkdown(&md)
	for _, want := range []string{"ratio a/c = 0.800 (paired 0.000)", "peak 100.0 MB", "reload visible in 12.5 ms",
		"against the targets:\n  met    a/c >= 0.80, decision log to a file: 0.800 (paired 0.000)\n  met    100000 actors: peak RSS <= 150 MB: 100.0 MB\n"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	for _, want := range []string{"| a x | 3 | 800 |", "Ratio a/c = **0.800**", "| round 1 | 100000 |", "| reload visible on /healthz within 1 s of SIGHUP | 12 ms | met |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown report lacks %q:\n%s", want, md.String())
		}
	}
}

// TestTargets checks each target of the report at its bound and past it.
func TestTargets(t *testing.T) {
	tests := []struct {
		name string
		rep  report
		met  bool
	}{
		{"a/c at 0.80", report{RatioA: 0.80}, true},
		{"a/c under 0.80", report{RatioA: 0.79}, false},
		{"b/c at 0.60", report{RatioB: 0.60}, true},
		{"b/c under 0.60", report{RatioB: 0.59}, false},
		{"p99 at 2 ms", report{HalfLoad: &summary{P99: 2000}}, true},
		{"p99 over 2 ms", report{HalfLoad: &summary{P99: 2001}}, false},
		{"peak RSS at 150 MB", report{Large: []largeResult{{PeakRSS: 150 << 20}}}, true},
		{"peak RSS over 150 MB", report{Large: []largeResult{{PeakRSS: 150<<20 + 1}}}, false},
		{"a reload visible after 1 s", report{Large: []largeResult{{}, {ReloadMS: 1001}}}, false},
		{"a failed request during a reload", report{Large: []largeResult{{}, {ReloadErrors: 1}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := tt.rep.targets()
			met := len(ts) > 0
			for _, x := range ts {
				met = met && x.Met
			}
			if met != tt.met {
				t.Errorf("got %+v, want met %v", ts, tt.met)
			}
		})
	}
}

func TestPolicyPackageName(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, text, want, wantErr string
	}{
		{"plain", "---\npackage: ops-warden/ssh-signing\nversion: 1\n---\n", "ops-warden/ssh-signing", ""},
		{"quoted", "---\npackage: \"team/x\"\n---\n", "team/x", ""},
		{"missing", "---\nversion: 1\n---\n", "", "no \"package:\" line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".md")
			if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := policyPackageName(path)
			if got != tt.want || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %q, %v; want %q, %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFlushCounts(t *testing.T) {
	tests := []struct {
		name, text         string
		flushes, decisions float64
	}{
		{"counted", `# HELP flexauth_decision_log_flushes_total Flushes.
# TYPE flexauth_decision_log_flushes_total counter
flexauth_decision_log_flushes_total 40
flexauth_decision_log_flushed_decisions_total 700
flexauth_decisions_total{effect="allow",reason="x"} 7
`, 40, 700},
		{"no --log-sync", "flexauth_decision_log_flushes_total 0\nflexauth_decision_log_flushed_decisions_total 0\n", 0, 0},
		{"an older flex-auth", "flexauth_decisions_total 1\n", 0, 0},
		{"not a number", "flexauth_decision_log_flushes_total many\n", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseFlushCounts([]byte(tt.text))
			if got.flushes != tt.flushes || got.decisions != tt.decisions {
				t.Errorf("got %+v, want %v flushes, %v decisions", got, tt.flushes, tt.decisions)
			}
		})
	}
}

func TestCheckHistogram(t *testing.T) {
	text := []byte(`# HELP flexauth_check_duration_seconds Time to answer.
# TYPE flexauth_check_duration_seconds histogram
flexauth_check_duration_seconds_bucket{le="5e-05"} 10
flexauth_check_duration_seconds_bucket{le="0.0001"} 90
flexauth_check_duration_seconds_bucket{le="0.0002"} 99
flexauth_check_duration_seconds_bucket{le="0.0004"} 100
flexauth_check_duration_seconds_bucket{le="+Inf"} 100
flexauth_check_duration_seconds_sum 0.01
flexauth_check_duration_seconds_count 100
flexauth_decisions_total{effect="allow",reason="x"} 7
`)
	h, ok := parseCheckHistogram(text)
	if !ok {
		t.Fatal("histogram not found")
	}
	tests := []struct {
		q, want float64
	}{
		{0.05, 50}, {0.5, 100}, {0.9, 100}, {0.99, 200}, {1, 400},
	}
	for _, tt := range tests {
		if got := h.quantile(tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("quantile(%v): got %v µs, want %v", tt.q, got, tt.want)
		}
	}
	if _, ok := parseCheckHistogram([]byte("flexauth_decisions_total 1\n")); ok {
		t.Errorf("found a histogram in text without one")
	}
}

// TestOpenLoopChargesAStallToEveryRequestItDelays checks the correction
// for coordinated omission: when one answer takes 50 ms on a connection
// that should send every millisecond, the requests due meanwhile count
// from when they were due, not from when they could be sent.
func TestOpenLoopChargesAStallToEveryRequestItDelays(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.Add(1) == 300 {
			time.Sleep(50 * time.Millisecond) // the stall under test
		}
		w.Write(bareDecision)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	reqs, err := buildMix(largeSnapshot(10, registry.DefaultPolicyPackage, ""), addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := &load{addr: addr, requests: reqs, conns: 1, warmup: 100 * time.Millisecond, duration: 600 * time.Millisecond, rate: 1000}
	res, err := l.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := res.latency.percentile(1); got < 50*time.Millisecond {
		t.Errorf("max latency: got %v, want >= 50ms (the stall)", got)
	}
	// About 50 of the ~600 requests were due during the stall; the first
	// 40 of them waited more than 10 ms.
	if got := res.latency.percentile(0.95); got < 10*time.Millisecond {
		t.Errorf("p95: got %v, want >= 10ms: the requests held up by the stall are not charged for it", got)
	}
}
