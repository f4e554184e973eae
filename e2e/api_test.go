package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var (
	decisionIDRE = regexp.MustCompile(`^decision:[0-9a-f]{16}$`)
	digestRE     = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// logTimeRE is RFC 3339 in UTC with a fraction of a second.
	logTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$`)
)

func wantJSONContentType(t *testing.T, what string, r *reply) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: got Content-Type %q, want application/json", what, ct)
	}
}

func TestHealthz(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	fixture := loadFixture(t)
	before := time.Now().Add(-time.Minute)
	r := s.do("GET", "/healthz", "", nil)
	if r.Status != 200 {
		t.Fatalf("got %d, want 200", r.Status)
	}
	wantJSONContentType(t, "GET /healthz", r)
	h := r.JSON(t)
	if got := str(h, "status"); got != "ok" {
		t.Errorf("status: got %q, want ok", got)
	}
	if got := str(h, "registry.digest"); got != fixture.Digest {
		t.Errorf("registry.digest: got %q, want %q", got, fixture.Digest)
	}
	if got := path(h, "registry.actors"); fmt.Sprint(got) != "4" {
		t.Errorf("registry.actors: got %v, want 4", got)
	}
	if loaded, err := time.Parse(time.RFC3339Nano, str(h, "registry.loaded_at")); err != nil || loaded.Before(before) || loaded.After(time.Now().Add(time.Minute)) {
		t.Errorf("registry.loaded_at: got %q (%v), want an RFC 3339 time of the start-up", str(h, "registry.loaded_at"), err)
	}
	if got := str(h, "policy.package"); got != "ops-warden/ssh-signing" {
		t.Errorf("policy.package: got %q, want ops-warden/ssh-signing", got)
	}
	if got := str(h, "policy.digest"); !digestRE.MatchString(got) {
		t.Errorf("policy.digest: got %q, want sha256:<64 hex>", got)
	}
	reload, ok := path(h, "reload").(map[string]any)
	if !ok {
		t.Fatalf("reload: got %v, want an object", path(h, "reload"))
	}
	if v, present := reload["last_error"]; !present || v != nil {
		t.Errorf("reload.last_error: got %v (present %v), want null", v, present)
	}
	if _, present := reload["last_attempt_at"]; !present {
		t.Errorf("reload.last_attempt_at: missing")
	}
}

func TestReadyz(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	r := s.do("GET", "/readyz", "", nil)
	if r.Status != 200 || str(r.JSON(t), "status") != "ready" {
		t.Errorf("got %d %s, want 200 {\"status\": \"ready\"}", r.Status, r.Body)
	}
	wantJSONContentType(t, "GET /readyz", r)
}

// contextOf returns the request context of the key, value pairs kv.
func contextOf(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// checkRequest is a /v1/check request in the contract's shape.
type checkRequest struct {
	Subject  string         `json:"subject"`
	Action   string         `json:"action,omitempty"`
	Resource string         `json:"resource"`
	Context  map[string]any `json:"context,omitempty"`
}

func TestDecisions(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	fixture := loadFixture(t)
	h := s.health()
	ctx := contextOf
	tests := []struct {
		name       string
		req        any
		wantEffect string
		wantReason string
		wantGrant  string // "principal/ttl" on an allow
	}{
		{"bridge with iam subject", checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", bridge, ctx("principal", "agt-task-bridge", "ttl_hours", 24)},
			"allow", "signing_policy_matched", "agt-task-bridge/24"},
		{"bridge with its name, no principal", checkRequest{bridge, "ssh.sign", bridge, ctx("ttl_hours", 24)},
			"allow", "signing_policy_matched", "agt-task-bridge/24"},
		{"action defaults to ssh.sign", checkRequest{"iam:agt-state-hub-bridge", "", bridge, ctx("ttl_hours", 1)},
			"allow", "signing_policy_matched", "agt-task-bridge/1"},
		{"ttl below max is granted as asked", checkRequest{"iam:adm-example", "ssh.sign", "adm-example", ctx("ttl_hours", 12)},
			"allow", "signing_policy_matched", "adm-full/12"},
		{"ttl 999", checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", bridge, ctx("ttl_hours", 999)},
			"deny", "ttl_out_of_bounds", ""},
		{"ttl max+1", checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", bridge, ctx("ttl_hours", 25)},
			"deny", "ttl_out_of_bounds", ""},
		{"ttl 0", checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", bridge, ctx("ttl_hours", 0)},
			"deny", "ttl_out_of_bounds", ""},
		{"ttl missing", checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", bridge, nil},
			"deny", "ttl_out_of_bounds", ""},
		{"ttl a string", checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", bridge, ctx("ttl_hours", "24")},
			"deny", "ttl_out_of_bounds", ""},
		{"ttl a fraction", checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", bridge, ctx("ttl_hours", 1.5)},
			"deny", "ttl_out_of_bounds", ""},
		{"unknown actor", checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", "agt-flex-auth-smoke-nonexistent", ctx("ttl_hours", 1)},
			"deny", "unknown_actor_resource", ""},
		{"unknown action", checkRequest{"iam:agt-state-hub-bridge", "ssh.revoke", bridge, ctx("ttl_hours", 24)},
			"deny", "action_not_supported", ""},
		{"subject of another actor", checkRequest{"iam:adm-example", "ssh.sign", bridge, ctx("ttl_hours", 24)},
			"deny", "subject_not_bound", ""},
		{"unbound subject", checkRequest{"iam:role/state-hub", "ssh.sign", bridge, ctx("ttl_hours", 24)},
			"deny", "subject_not_bound", ""},
		{"principal of another actor", checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", bridge, ctx("principal", "adm-full", "ttl_hours", 24)},
			"deny", "principal_not_allowed", ""},
	}
	ids := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.check(tt.req)
			if r.Status != 200 {
				t.Fatalf("got %d %s, want 200", r.Status, r.Body)
			}
			wantJSONContentType(t, "POST /v1/check", r)
			d := r.JSON(t)
			if got, want := str(d, "effect")+" "+str(d, "reason"), tt.wantEffect+" "+tt.wantReason; got != want {
				t.Errorf("got %s, want %s", got, want)
			}
			id := str(d, "decision_id")
			if !decisionIDRE.MatchString(id) {
				t.Errorf("decision_id: got %q, want decision:<16 lowercase hex>", id)
			}
			if prev, dup := ids[id]; dup {
				t.Errorf("decision_id %s also answered %q", id, prev)
			}
			ids[id] = tt.name
			if got := str(d, "policy"); got != "ops-warden/ssh-signing" {
				t.Errorf("policy: got %q, want ops-warden/ssh-signing", got)
			}
			if got, want := str(d, "policy_digest"), str(h, "policy.digest"); got != want {
				t.Errorf("policy_digest: got %q, want %q as on /healthz", got, want)
			}
			if got := str(d, "registry_digest"); got != fixture.Digest {
				t.Errorf("registry_digest: got %q, want %q", got, fixture.Digest)
			}
			grant, hasGrant := d["grant"]
			switch {
			case tt.wantGrant == "" && hasGrant:
				t.Errorf("got grant %v on a deny, want none", grant)
			case tt.wantGrant != "":
				if got := fmt.Sprintf("%v/%v", path(d, "grant.principal"), path(d, "grant.ttl_hours")); got != tt.wantGrant {
					t.Errorf("grant: got %s, want %s", got, tt.wantGrant)
				}
			}
		})
	}
}

func TestDecisionIDsUniqueAcrossRestarts(t *testing.T) {
	skipShort(t)
	t.Parallel()
	seen := map[string]bool{}
	req := checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}}
	for run := range 2 {
		s := startServer(t)
		for range 50 {
			id := str(s.check(req).JSON(t), "decision_id")
			if seen[id] {
				t.Fatalf("run %d: decision id %s answered twice", run, id)
			}
			seen[id] = true
		}
		s.signal(sigterm)
		if code := s.wait(); code != 0 {
			t.Fatalf("run %d: exit %d after SIGTERM, want 0", run, code)
		}
	}
}

func TestErrorStatuses(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	valid := `{"subject": "iam:agt-state-hub-bridge", "action": "ssh.sign", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 24}}`
	// bigBody is valid JSON of exactly n bytes.
	bigBody := func(n int) string {
		head := `{"subject": "agt-state-hub-bridge", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 24, "pad": "`
		tail := `"}}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	tests := []struct {
		name, method, path, contentType, body string
		wantStatus                            int
		wantCode                              string // "" means any non-empty code
		wantAllow                             string // methods the Allow header must list
	}{
		{"valid", "POST", "/v1/check", "application/json", valid, 200, "", ""},
		{"charset parameter", "POST", "/v1/check", "application/json; charset=utf-8", valid, 200, "", ""},
		{"malformed", "POST", "/v1/check", "application/json", `{"subject": "a",`, 400, "invalid_request", ""},
		{"not json", "POST", "/v1/check", "application/json", `subject=a&resource=b`, 400, "invalid_request", ""},
		{"empty body", "POST", "/v1/check", "application/json", ``, 400, "invalid_request", ""},
		{"array", "POST", "/v1/check", "application/json", `[]`, 400, "invalid_request", ""},
		{"null", "POST", "/v1/check", "application/json", `null`, 400, "invalid_request", ""},
		{"subject a number", "POST", "/v1/check", "application/json", `{"subject": 1, "resource": "agt-state-hub-bridge"}`, 400, "invalid_request", ""},
		{"resource null", "POST", "/v1/check", "application/json", `{"subject": "agt-state-hub-bridge", "resource": null}`, 400, "invalid_request", ""},
		{"action a number", "POST", "/v1/check", "application/json", `{"subject": "a", "action": 5, "resource": "agt-state-hub-bridge"}`, 400, "invalid_request", ""},
		{"context a string", "POST", "/v1/check", "application/json", `{"subject": "a", "resource": "agt-state-hub-bridge", "context": "ttl=24"}`, 400, "invalid_request", ""},
		{"context an array", "POST", "/v1/check", "application/json", `{"subject": "a", "resource": "agt-state-hub-bridge", "context": []}`, 400, "invalid_request", ""},
		{"subject missing", "POST", "/v1/check", "application/json", `{"resource": "agt-state-hub-bridge"}`, 400, "invalid_request", ""},
		{"resource missing", "POST", "/v1/check", "application/json", `{"subject": "agt-state-hub-bridge"}`, 400, "invalid_request", ""},
		{"subject empty", "POST", "/v1/check", "application/json", `{"subject": "", "resource": "agt-state-hub-bridge"}`, 400, "invalid_request", ""},
		{"resource empty", "POST", "/v1/check", "application/json", `{"subject": "a", "resource": ""}`, 400, "invalid_request", ""},
		{"trailing object", "POST", "/v1/check", "application/json", valid + `{}`, 400, "invalid_request", ""},
		{"trailing garbage", "POST", "/v1/check", "application/json", valid + ` x`, 400, "invalid_request", ""},
		{"64 KiB exactly", "POST", "/v1/check", "application/json", bigBody(64 << 10), 200, "", ""},
		{"one byte over 64 KiB", "POST", "/v1/check", "application/json", bigBody(64<<10 + 1), 413, "request_too_large", ""},
		{"1 MiB", "POST", "/v1/check", "application/json", bigBody(1 << 20), 413, "request_too_large", ""},
		{"text/plain", "POST", "/v1/check", "text/plain", valid, 415, "unsupported_media_type", ""},
		{"form", "POST", "/v1/check", "application/x-www-form-urlencoded", valid, 415, "unsupported_media_type", ""},
		{"GET /v1/check", "GET", "/v1/check", "", "", 405, "", "POST"},
		{"PUT /v1/check", "PUT", "/v1/check", "application/json", valid, 405, "", "POST"},
		{"POST /healthz", "POST", "/healthz", "application/json", `{}`, 405, "", "GET"},
		{"POST /readyz", "POST", "/readyz", "application/json", `{}`, 405, "", "GET"},
		{"DELETE /v1/registry", "DELETE", "/v1/registry", "", "", 405, "", "GET"},
		{"POST /metrics", "POST", "/metrics", "application/json", `{}`, 405, "", "GET"},
		{"unknown path", "GET", "/v1/nothing", "", "", 404, "", ""},
		{"root", "GET", "/", "", "", 404, "", ""},
		{"check with a trailing slash", "POST", "/v1/check/", "application/json", valid, 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(tt.method, tt.path, tt.contentType, []byte(tt.body))
			if r.Status != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", r.Status, r.Body, tt.wantStatus)
			}
			wantJSONContentType(t, tt.method+" "+tt.path, r)
			v := r.JSON(t)
			if tt.wantStatus == 200 {
				if str(v, "effect") != "allow" {
					t.Errorf("got %s, want an allow", r.Body)
				}
				return
			}
			code, msg := str(v, "error.code"), str(v, "error.message")
			if code == "" || msg == "" {
				t.Errorf("got %s, want {\"error\": {\"code\": ..., \"message\": ...}}", r.Body)
			}
			if tt.wantCode != "" && code != tt.wantCode {
				t.Errorf("error.code: got %q, want %q", code, tt.wantCode)
			}
			if _, hasID := v["decision_id"]; hasID {
				t.Errorf("got a decision id on an error: %s", r.Body)
			}
			if tt.wantAllow != "" {
				allow := strings.Split(strings.ReplaceAll(r.Header.Get("Allow"), " ", ""), ",")
				if !slices.Contains(allow, tt.wantAllow) {
					t.Errorf("Allow: got %q, want it to list %s", r.Header.Get("Allow"), tt.wantAllow)
				}
			}
		})
	}
}

func TestRegistryEndpoint(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	fixture := loadFixture(t)
	r := s.do("GET", "/v1/registry", "", nil)
	if r.Status != 200 {
		t.Fatalf("got %d, want 200", r.Status)
	}
	wantJSONContentType(t, "GET /v1/registry", r)
	if want := fixture.Canonical(); !bytes.Equal(r.Body, want) {
		t.Errorf("body: got\n%s\nwant the canonical snapshot\n%s", r.Body, want)
	}
	etag := r.Header.Get("ETag")
	if strings.Trim(strings.TrimPrefix(etag, "W/"), `"`) != fixture.Digest {
		t.Fatalf("ETag: got %q, want the digest %s", etag, fixture.Digest)
	}
	tests := []struct {
		name, ifNoneMatch string
		wantStatus        int
	}{
		{"matching", etag, 304},
		{"in a list", `"sha256:0000", ` + etag, 304},
		{"other digest", `"sha256:0000000000000000000000000000000000000000000000000000000000000000"`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do("GET", "/v1/registry", "", nil, "If-None-Match", tt.ifNoneMatch)
			if r.Status != tt.wantStatus {
				t.Fatalf("got %d, want %d", r.Status, tt.wantStatus)
			}
			if tt.wantStatus == 304 && len(r.Body) != 0 {
				t.Errorf("got a body of %d bytes on 304, want none", len(r.Body))
			}
			if got := r.Header.Get("ETag"); got != etag {
				t.Errorf("ETag: got %q, want %q", got, etag)
			}
		})
	}
}

// metricFamilies parses a Prometheus text exposition.
func metricFamilies(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

// findFamily returns the one family of type typ, other than the Go and
// process collectors' own, for which match holds.
func findFamily(t *testing.T, fams map[string]*dto.MetricFamily, typ dto.MetricType, what string, match func(name string, f *dto.MetricFamily) bool) *dto.MetricFamily {
	t.Helper()
	var found []*dto.MetricFamily
	for name, f := range fams {
		if f.GetType() == typ && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && match(name, f) {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		var names []string
		for n := range fams {
			names = append(names, n)
		}
		slices.Sort(names)
		t.Fatalf("got %d %v families of %s, want 1; families: %v", len(found), typ, what, names)
	}
	return found[0]
}

// named matches families whose name contains every word.
func named(words ...string) func(string, *dto.MetricFamily) bool {
	return func(name string, _ *dto.MetricFamily) bool {
		for _, w := range words {
			if !strings.Contains(name, w) {
				return false
			}
		}
		return true
	}
}

// labelled matches families whose first metric has every label.
func labelled(names ...string) func(string, *dto.MetricFamily) bool {
	return func(_ string, f *dto.MetricFamily) bool {
		if len(f.GetMetric()) == 0 {
			return false
		}
		l := labels(f.GetMetric()[0])
		for _, n := range names {
			if _, ok := l[n]; !ok {
				return false
			}
		}
		return true
	}
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}

// The contract fixes what /metrics counts, not the metric names, so the
// families are found by type, a word of their name, and their labels.
func TestMetrics(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	allow := checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}}
	deny := checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 999}}
	for _, req := range []checkRequest{allow, allow, deny} {
		if r := s.check(req); r.Status != 200 {
			t.Fatalf("got %d, want 200", r.Status)
		}
	}
	// One reload, and one that fails.
	reloads := func() float64 {
		fams := metricFamilies(t, s.do("GET", "/metrics", "", nil).Body)
		var total float64
		for _, m := range findFamily(t, fams, dto.MetricType_COUNTER, "reloads by result", named("reload")).GetMetric() {
			total += m.GetCounter().GetValue()
		}
		return total
	}
	s.signal(sighup)
	s.waitFor("/metrics counts the reload", func() bool { return reloads() == 1 })
	writeFile(t, s.Registry, []byte("{}"))
	s.signal(sighup)
	s.waitFor("/metrics counts the failed reload", func() bool { return reloads() == 2 })

	r := s.do("GET", "/metrics", "", nil)
	if r.Status != 200 {
		t.Fatalf("got %d, want 200", r.Status)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type: got %q, want text/plain", ct)
	}
	fams := metricFamilies(t, r.Body)

	decisions := findFamily(t, fams, dto.MetricType_COUNTER, "decisions by effect and reason", labelled("effect", "reason"))
	counts := map[string]float64{}
	for _, m := range decisions.GetMetric() {
		l := labels(m)
		counts[l["effect"]+" "+l["reason"]] = m.GetCounter().GetValue()
	}
	if counts["allow signing_policy_matched"] != 2 || counts["deny ttl_out_of_bounds"] != 1 {
		t.Errorf("%s: got %v, want allow signing_policy_matched 2, deny ttl_out_of_bounds 1", decisions.GetName(), counts)
	}

	latency := findFamily(t, fams, dto.MetricType_HISTOGRAM, "check latency", named("check"))
	if n := latency.GetMetric()[0].GetHistogram().GetSampleCount(); n != 3 {
		t.Errorf("%s: got %d samples, want 3", latency.GetName(), n)
	}

	actors := findFamily(t, fams, dto.MetricType_GAUGE, "registry actors", named("actors"))
	if v := actors.GetMetric()[0].GetGauge().GetValue(); v != 4 {
		t.Errorf("%s: got %v, want 4", actors.GetName(), v)
	}

	byResult := map[string]float64{}
	for _, m := range findFamily(t, fams, dto.MetricType_COUNTER, "reloads by result", named("reload")).GetMetric() {
		result, ok := labels(m)["result"]
		if !ok {
			t.Errorf("reloads: got labels %v, want a result label", labels(m))
		}
		byResult[result] = m.GetCounter().GetValue()
	}
	if len(byResult) != 2 || slices.Contains(slices.Collect(maps.Values(byResult)), 0) {
		t.Errorf("reloads by result: got %v, want one success and one failure", byResult)
	}

	logErrors := findFamily(t, fams, dto.MetricType_COUNTER, "decision-log errors", named("log", "error"))
	if v := logErrors.GetMetric()[0].GetCounter().GetValue(); v != 0 {
		t.Errorf("%s: got %v, want 0", logErrors.GetName(), v)
	}
}

// A logLine is one decision log line; fields are raw so that types can be
// checked.
type logLine map[string]json.RawMessage

func (l logLine) str(k string) string {
	var s string
	json.Unmarshal(l[k], &s)
	return s
}

// readLog parses the decision log: complete lines, and the bytes after the
// last newline (a line cut short by a crash), if any.
func readLog(t *testing.T, data []byte) (lines []logLine, partial []byte) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	complete := data
	if i := bytes.LastIndexByte(data, '\n'); i < len(data)-1 {
		complete, partial = data[:i+1], data[i+1:]
	}
	sc = bufio.NewScanner(bytes.NewReader(complete))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("decision log line %d is not a JSON object: %v: %s", n, err, sc.Bytes())
		}
		lines = append(lines, l)
	}
	return lines, partial
}

func TestDecisionLog(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	const secret = "s3cr3t-bearer-token-value"
	headers := []string{"Authorization", "Bearer " + secret, "X-Vault-Token", "hvs." + secret, "Cookie", "session=" + secret}
	reqs := []checkRequest{
		{"iam:agt-state-hub-bridge", "ssh.sign", bridge, map[string]any{"principal": "agt-task-bridge", "ttl_hours": 24}},
		{bridge, "", bridge, map[string]any{"ttl_hours": 999}},
		{"iam:agt-state-hub-bridge", "ssh.sign", "agt-nobody", nil},
	}
	var answers []map[string]any
	for _, req := range reqs {
		r := s.check(req, headers...)
		if r.Status != 200 {
			t.Fatalf("got %d, want 200", r.Status)
		}
		answers = append(answers, r.JSON(t))
	}
	// Errors are not decisions: they add no line.
	if r := s.do("POST", "/v1/check", "application/json", []byte(`{`), headers...); r.Status != 400 {
		t.Fatalf("got %d, want 400", r.Status)
	}
	data := readFile(t, s.Log)
	lines, partial := readLog(t, data)
	if len(partial) > 0 {
		t.Errorf("log ends without a newline: %q", partial)
	}
	if len(lines) != len(reqs) {
		t.Fatalf("got %d log lines, want %d:\n%s", len(lines), len(reqs), data)
	}
	for i, l := range lines {
		req, ans := reqs[i], answers[i]
		wantAction := req.Action
		if wantAction == "" {
			wantAction = "ssh.sign"
		}
		for k, want := range map[string]string{
			"decision_id": str(ans, "decision_id"), "subject": req.Subject, "action": wantAction, "resource": req.Resource,
			"effect": str(ans, "effect"), "reason": str(ans, "reason"), "policy": str(ans, "policy"),
			"policy_digest": str(ans, "policy_digest"), "registry_digest": str(ans, "registry_digest"),
		} {
			if got := l.str(k); got != want {
				t.Errorf("line %d: %s: got %q, want %q", i+1, k, got, want)
			}
		}
		if ts := l.str("time"); !logTimeRE.MatchString(ts) {
			t.Errorf("line %d: time: got %q, want RFC 3339 UTC with a fraction", i+1, ts)
		}
		var ctx map[string]any
		if err := json.Unmarshal(l["context"], &ctx); err != nil || ctx == nil {
			t.Errorf("line %d: context: got %s, want an object", i+1, l["context"])
		}
		if want := mustMarshal(t, req.Context); req.Context != nil && mustMarshal(t, ctx) != want {
			t.Errorf("line %d: context: got %s, want %s", i+1, l["context"], want)
		}
	}
	for _, h := range []string{secret, "Authorization", "Bearer", "Cookie", "X-Vault-Token"} {
		if bytes.Contains(bytes.ToLower(data), bytes.ToLower([]byte(h))) {
			t.Errorf("decision log contains %q from a request header:\n%s", h, data)
		}
		if strings.Contains(strings.ToLower(s.stderr.String()), strings.ToLower(secret)) {
			t.Errorf("server log contains the secret header value")
		}
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecisionLogToStdout(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s2 := newServer(t)
	s2.start(t, "serve", "--addr", "127.0.0.1:0", "--registry", s2.Registry, "--policy", s2.Policy, "--log", "-")
	id := str(s2.check(checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}}).JSON(t), "decision_id")
	// The line reached the pipe before the answer; the copy into the test
	// process may still be on its way.
	if !waitOutput(s2.stdout, id, s2.exited) {
		t.Fatalf("stdout: got %q, want the decision %s", s2.stdout.String(), id)
	}
	lines, _ := readLog(t, []byte(s2.stdout.String()))
	if len(lines) != 1 || lines[0].str("decision_id") != id {
		t.Errorf("stdout: got %q, want one decision line for %s", s2.stdout.String(), id)
	}
}

// When the decision log cannot be written, no decision is given: 503
// decision_log_unavailable, never an allow.
func TestDecisionLogUnavailable(t *testing.T) {
	skipShort(t)
	if !fileExists("/dev/full") {
		t.Skip("no /dev/full to make log writes fail")
	}
	t.Parallel()
	s2 := newServer(t)
	s2.start(t, "serve", "--addr", "127.0.0.1:0", "--registry", s2.Registry, "--policy", s2.Policy, "--log", "/dev/full")
	for _, ttl := range []int{24, 999} {
		r := s2.check(checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": ttl}})
		if r.Status != 503 {
			t.Fatalf("ttl %d: got %d %s, want 503", ttl, r.Status, r.Body)
		}
		v := r.JSON(t)
		if got := str(v, "error.code"); got != "decision_log_unavailable" {
			t.Errorf("error.code: got %q, want decision_log_unavailable", got)
		}
		if _, ok := v["effect"]; ok {
			t.Errorf("got an effect with the 503: %s", r.Body)
		}
	}
	fams := metricFamilies(t, s2.do("GET", "/metrics", "", nil).Body)
	logErrors := findFamily(t, fams, dto.MetricType_COUNTER, "decision-log errors", named("log", "error"))
	if v := logErrors.GetMetric()[0].GetCounter().GetValue(); v != 2 {
		t.Errorf("%s: got %v, want 2", logErrors.GetName(), v)
	}
}

func TestServeEmbeddedExample(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := &server{Log: t.TempDir() + "/decisions.jsonl"}
	s.start(t, "serve", "--addr", "127.0.0.1:0", "--log", s.Log)
	first, _, _ := strings.Cut(s.stderr.String(), "\n")
	if !strings.Contains(strings.ToLower(first), "embedded") && !strings.Contains(strings.ToLower(first), "built-in") &&
		!strings.Contains(strings.ToLower(first), "built into") {
		t.Errorf("first log line: got %q, want it to say the embedded example is served", first)
	}
	if got, want := str(s.health(), "registry.digest"), loadFixture(t).Digest; got != want {
		t.Errorf("registry.digest: got %q, want the example's %q", got, want)
	}
	d := s.check(checkRequest{"iam:agt-state-hub-bridge", "ssh.sign", bridge, map[string]any{"ttl_hours": 24}}).JSON(t)
	if str(d, "effect") != "allow" || str(d, "reason") != "signing_policy_matched" {
		t.Errorf("got %v, want allow signing_policy_matched", d)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Bad input is a 400 or 413, never a 500 and never a crash: every prefix
// of a valid request, random byte changes, and hostile shapes.
func TestBadInputNeverFailsTheServer(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	valid := `{"subject": "iam:agt-state-hub-bridge", "action": "ssh.sign", "resource": "agt-state-hub-bridge", "context": {"principal": "agt-task-bridge", "ttl_hours": 24}}`
	var bodies []string
	for i := range len(valid) {
		bodies = append(bodies, valid[:i])
	}
	rnd := rand.New(rand.NewPCG(1, 2)) // fixed: a failure reproduces
	for range 200 {
		b := []byte(valid)
		for range 1 + rnd.IntN(3) {
			b[rnd.IntN(len(b))] = byte(rnd.IntN(256))
		}
		bodies = append(bodies, string(b))
	}
	bodies = append(bodies,
		`{"subject": "a", "resource": "b", "context": `+strings.Repeat("[", 10000)+strings.Repeat("]", 10000)+`}`,
		`{"subject": "a", "resource": "b", "context": {"ttl_hours": 1e400}}`,
		`{"subject": "a", "resource": "b", "context": {"ttl_hours": -9223372036854775809}}`,
		`{"subject": "\ud800", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 24}}`,
		"{\"subject\": \"a\x00b\", \"resource\": \"agt-state-hub-bridge\"}",
		"{\"subject\": \"\xff\xfe\", \"resource\": \"agt-state-hub-bridge\"}",
		`{"subject": "a", "subject": "b", "resource": "agt-state-hub-bridge"}`,
		`{"subject": "a", "resource": "agt-state-hub-bridge", "context": {"principal": {"x": [1, 2, {"y": null}]}, "ttl_hours": true}}`,
		`{"subject": "a", "resource": "agt-state-hub-bridge", "extra": 1}`,
		"\ufeff"+valid,
	)
	for i, body := range bodies {
		r := s.do("POST", "/v1/check", "application/json", []byte(body))
		switch r.Status {
		case 200, 400, 413:
		default:
			t.Errorf("body %d %q: got %d %s, want 200, 400 or 413", i, body, r.Status, r.Body)
		}
		if !json.Valid(r.Body) {
			t.Errorf("body %d %q: answer is not JSON: %q", i, body, r.Body)
		}
	}
	if h := s.health(); str(h, "status") != "ok" {
		t.Errorf("after the bad input: got %v, want a healthy server", h)
	}
}
