package e2e

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestPackageServesTheBuiltInExample: `serve --package examples/ops-warden`
// serves what `serve` without flags does: the same digests on /healthz, the
// same snapshot on /v1/registry, and the same answers on /v1/check.
func TestPackageServesTheBuiltInExample(t *testing.T) {
	skipShort(t)
	t.Parallel()
	builtin := &server{Log: filepath.Join(t.TempDir(), "decisions.jsonl")}
	builtin.start(t, "serve", "--addr", "127.0.0.1:0", "--log", builtin.Log)
	pkg := &server{Log: filepath.Join(t.TempDir(), "decisions.jsonl")}
	pkg.start(t, "serve", "--addr", "127.0.0.1:0", "--package", "../examples/ops-warden", "--log", pkg.Log)

	hb, hp := builtin.health(), pkg.health()
	for _, p := range []string{"registry.digest", "registry.actors", "policy.package", "policy.digest", "status"} {
		if a, b := path(hb, p), path(hp, p); !reflect.DeepEqual(a, b) {
			t.Errorf("healthz %s: built-in %v, --package %v", p, a, b)
		}
	}
	if a, b := builtin.do("GET", "/v1/registry", "", nil), pkg.do("GET", "/v1/registry", "", nil); !bytes.Equal(a.Body, b.Body) || a.Header.Get("ETag") != b.Header.Get("ETag") {
		t.Errorf("/v1/registry differs")
	}
	fixture := loadFixture(t)
	n := 0
	for _, a := range fixture.Actors {
		for _, sub := range append(a.Subjects, "iam:nobody") {
			for _, ctx := range []map[string]any{{"ttl_hours": a.MaxTTLHours}, {"ttl_hours": a.MaxTTLHours + 1}, {"principal": "root", "ttl_hours": 1}, nil} {
				req := checkRequest{sub, "ssh.sign", a.Name, ctx}
				rb, rp := builtin.check(req).JSON(t), pkg.check(req).JSON(t)
				delete(rb, "decision_id")
				delete(rp, "decision_id")
				if !reflect.DeepEqual(rb, rp) {
					t.Errorf("%+v: built-in %v, --package %v", req, rb, rp)
				}
				n++
			}
		}
	}
	t.Logf("%d /v1/check answers agree", n)
}

// TestAuthZENOpsWardenLogLines: over the real binary, an AuthZEN request
// to the ops-warden package gets the decision, reason and grant of the
// same /v1/check request, and a decision log line with the same members
// and values, and an authzen member besides.
func TestAuthZENOpsWardenLogLines(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := newServer(t)
	s.start(t, "serve", "--addr", "127.0.0.1:0", "--package", "../examples/ops-warden", "--log", s.Log)
	requests := []checkRequest{
		{"iam:agt-state-hub-bridge", "ssh.sign", bridge, map[string]any{"principal": "agt-task-bridge", "ttl_hours": 24}},
		{"adm-example", "ssh.sign", bridge, map[string]any{"ttl_hours": 1}},
		{"agt-nobody", "ssh.sign", "agt-nobody", nil},
		{bridge, "ssh.exec", bridge, map[string]any{"ttl_hours": 1, "ticket": []any{"OPS-1", 2.5}}},
	}
	for _, req := range requests {
		c := s.check(req).JSON(t)
		body := map[string]any{
			"subject":  map[string]any{"type": "iam", "id": req.Subject},
			"action":   map[string]any{"name": req.Action},
			"resource": map[string]any{"type": "actor", "id": req.Resource},
		}
		if req.Context != nil {
			body["context"] = req.Context
		}
		a := s.do("POST", "/access/v1/evaluation", "application/json", []byte(mustMarshal(t, body)), "X-Request-ID", "e2e-1")
		if a.Status != 200 || a.Header.Get("X-Request-ID") != "e2e-1" {
			t.Fatalf("%+v: got %d %s", req, a.Status, a.Body)
		}
		v := a.JSON(t)
		if (path(v, "decision") == true) != (str(c, "effect") == "allow") || str(v, "context.reason") != str(c, "reason") ||
			!reflect.DeepEqual(path(v, "context.grant"), path(c, "grant")) {
			t.Errorf("%+v: AuthZEN %s, /v1/check %v", req, a.Body, c)
		}
		lines, _ := readLog(t, readFile(t, s.Log))
		checkLine, azLine := maps.Clone(lines[len(lines)-2]), maps.Clone(lines[len(lines)-1])
		if azLine.str("decision_id") != str(v, "context.decision_id") || checkLine.str("decision_id") != str(c, "decision_id") {
			t.Fatalf("%+v: the last two lines are not the two decisions", req)
		}
		if _, ok := azLine["authzen"]; !ok {
			t.Errorf("%+v: the AuthZEN line has no authzen member", req)
		}
		for _, l := range []logLine{checkLine, azLine} {
			for _, m := range []string{"time", "decision_id", "seq", "prev"} {
				delete(l, m) // the line's own
			}
		}
		delete(azLine, "authzen")
		if !reflect.DeepEqual(checkLine, azLine) {
			t.Errorf("%+v: lines differ:\n/v1/check %v\nAuthZEN   %v", req, checkLine, azLine)
		}
	}
}

// TestPackagesKeepServing serves three packages, breaks one, and checks
// that the others reload and serve on while it keeps its last good state,
// on SIGHUP and with --watch, and that /healthz and /metrics name every
// package and its digests.
func TestPackagesKeepServing(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	pkgDir := func(from, name string) string {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(from)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			copyFile(t, filepath.Join(from, e.Name()), filepath.Join(d, e.Name()))
		}
		return d
	}
	ops, cert, todo := pkgDir("../examples/ops-warden", "ops"), pkgDir("../examples/authzen-certification", "cert"), pkgDir("../examples/authzen-todo", "todo")
	s := newServer(t)
	s.start(t, "serve", "--addr", "127.0.0.1:0", "--package", todo, "--package", cert, "--package", ops, "--log", s.Log, "--watch",
		"--public-url", "https://pdp.example.test/authz")
	pkgs := func() map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, p := range s.health()["packages"].([]any) {
			m := p.(map[string]any)
			out[m["package"].(string)] = m
		}
		return out
	}
	before := pkgs()
	if len(before) != 3 || before["authzen/todo"]["default"] != true || before["ops-warden/ssh-signing"]["check"] != true {
		t.Fatalf("healthz packages: %v", before)
	}
	decide := func(path, body string) string {
		r := s.do("POST", path, "application/json", []byte(body))
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		return str(r.JSON(t), "context.reason")
	}
	const aliceReads = `{"subject":{"type":"user","id":"alice"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`
	const carolReads = `{"subject":{"type":"user","id":"carol"},"action":{"name":"read"},"resource":{"type":"record","id":"record-1"}}`

	// Break the todo package; change the certification package's data.
	writeFile(t, filepath.Join(todo, "entities.yaml"), []byte("not: [an entities document\n"))
	data := readFile(t, filepath.Join(cert, "entities.yaml"))
	writeFile(t, filepath.Join(cert, "entities.yaml"), bytes.Replace(data, []byte("    bob: {role: admin}\n"), []byte("    bob: {role: admin}\n    carol: {}\n"), 1))
	s.waitFor("the certification package to reload and the todo package to be degraded", func() bool {
		p := pkgs()
		return p["authzen/certification"]["data"].(map[string]any)["digest"] != before["authzen/certification"]["data"].(map[string]any)["digest"] &&
			p["authzen/todo"]["status"] == "degraded"
	})
	h := s.health()
	if h["status"] != "degraded" || !strings.HasPrefix(str(h, "reload.last_error"), "package authzen/todo: ") {
		t.Errorf("healthz: %v", h)
	}
	after := pkgs()
	if !reflect.DeepEqual(after["authzen/todo"]["data"], before["authzen/todo"]["data"]) || after["ops-warden/ssh-signing"]["status"] != "ok" {
		t.Errorf("the broken package must keep its last good data, the others must be ok: %v", after)
	}
	if got := decide("/access/v1/evaluation", carolReads); got != "record_read" {
		t.Errorf("carol, in the certification package's new data: got %s", got)
	}
	if got := decide("/access/v1/evaluation", `{"subject":{"type":"user","id":"CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},"action":{"name":"can_read_todos"},"resource":{"type":"todo","id":"t"}}`); got != "todos_readable" {
		t.Errorf("the todo package, on its last good data: got %s", got)
	}
	if r := s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 1}}); str(r.JSON(t), "effect") != "allow" {
		t.Errorf("/v1/check: %s", r.Body)
	}
	// SIGHUP: the todo package still fails, alone.
	s.signal(sighup)
	s.waitFor("the SIGHUP reload to be logged", func() bool { return strings.Contains(s.stderr.String(), "SIGHUP") })
	if got := decide("/authzen/certification/access/v1/evaluation", aliceReads); got != "record_read" {
		t.Errorf("by the package's path: got %s", got)
	}
	// Fixed, it serves again.
	copyFile(t, "../examples/authzen-todo/entities.yaml", filepath.Join(todo, "entities.yaml"))
	s.waitFor("the fixed todo package to be served", func() bool { return s.health()["status"] == "ok" })

	// /metrics names every package with its digests, and counts decisions
	// by package.
	fams := metricFamilies(t, s.do("GET", "/metrics", "", nil).Body)
	info := findFamily(t, fams, dto.MetricType_GAUGE, "package info", named("package", "info"))
	digests := map[string]string{}
	for _, m := range info.GetMetric() {
		l := labels(m)
		digests[l["package"]] = l["policy_digest"] + " " + l["data_digest"]
	}
	for name, p := range pkgs() {
		if want := p["policy_digest"].(string) + " " + p["data"].(map[string]any)["digest"].(string); digests[name] != want {
			t.Errorf("%s info: got %q, want %q", name, digests[name], want)
		}
	}
	byPackage := map[string]float64{}
	for _, m := range findFamily(t, fams, dto.MetricType_COUNTER, "decisions", labelled("package", "effect", "reason")).GetMetric() {
		byPackage[labels(m)["package"]] += m.GetCounter().GetValue()
	}
	if byPackage["authzen/certification"] != 2 || byPackage["authzen/todo"] != 1 || byPackage["ops-warden/ssh-signing"] != 1 {
		t.Errorf("decisions by package: %v", byPackage)
	}
	// The metadata names the public URL, and a package's its path.
	var meta map[string]string
	if err := json.Unmarshal(s.do("GET", "/.well-known/authzen-configuration/authzen/todo", "", nil).Body, &meta); err != nil {
		t.Fatal(err)
	}
	if meta["policy_decision_point"] != "https://pdp.example.test/authz/authzen/todo" ||
		meta["access_evaluations_endpoint"] != "https://pdp.example.test/authz/authzen/todo/access/v1/evaluations" {
		t.Errorf("metadata: %v", meta)
	}
	// Every decision is a line naming its package and digests.
	lines, _ := readLog(t, readFile(t, s.Log))
	for _, l := range lines {
		if l.str("policy") == "" || l.str("policy_digest") == "" || l.str("registry_digest") == "" && l.str("data_digest") == "" {
			t.Errorf("line %v does not name its package and digests", l)
		}
	}
}

// TestServeRefusesBadPackages: at start-up, a bad package is an error that
// names it, and nothing is served.
func TestServeRefusesBadPackages(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"a directory without a package", []string{"--package", dir}, "policy_package.md: no such file or directory"},
		{"a package twice", []string{"--package", "../examples/authzen-todo", "--package", "../examples/authzen-todo"}, "two packages are named authzen/todo"},
		{"an unknown default", []string{"--package", "../examples/authzen-todo", "--default-package", "x/y"}, "the default package x/y is not served"},
		{"a bad public URL", []string{"--package", "../examples/authzen-todo", "--public-url", "pdp.example.test"}, "--public-url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t)
			s.launch(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--log", s.Log}, tt.args...)...)
			if code := s.wait(); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if errOut := s.stderr.String(); !strings.Contains(errOut, tt.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("stderr: got %q, want one line with %q", errOut, tt.want)
			}
		})
	}
}
