package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// todoVectors are the AuthZEN "todo" interop scenario's decision vectors
// (testdata/authzen/README.md says where they come from).
type todoVectors struct {
	Evaluation []struct {
		Request  json.RawMessage `json:"request"`
		Expected bool            `json:"expected"`
	} `json:"evaluation"`
	Evaluations []struct {
		Request  json.RawMessage `json:"request"`
		Expected json.RawMessage `json:"expected"`
	} `json:"evaluations"`
}

// TestAuthZENTodoInterop runs the todo interop vectors against `flex-auth
// serve --package examples/authzen-todo`, judged the way the working
// group's runner judges them: a single evaluation passes when its
// decision is the expected one; a batch when its evaluations array,
// serialized, is the expected array serialized.
func TestAuthZENTodoInterop(t *testing.T) {
	skipShort(t)
	t.Parallel()
	data, err := os.ReadFile("testdata/authzen/todo-decisions-1_0-02.json")
	if err != nil {
		t.Fatal(err)
	}
	var v todoVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Evaluation) != 40 || len(v.Evaluations) != 3 {
		t.Fatalf("vectors: %d evaluation, %d evaluations; want 40 and 3", len(v.Evaluation), len(v.Evaluations))
	}
	s := newServer(t)
	s.start(t, "serve", "--addr", "127.0.0.1:0", "--package", "../examples/authzen-todo", "--log", s.Log)

	passed := 0
	for i, vec := range v.Evaluation {
		r := s.do("POST", "/access/v1/evaluation", "application/json", vec.Request)
		var got struct {
			Decision bool `json:"decision"`
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil {
			t.Errorf("evaluation %d: %d %s", i, r.Status, r.Body)
			continue
		}
		if got.Decision != vec.Expected {
			t.Errorf("evaluation %d %s: decision %v, want %v", i, vec.Request, got.Decision, vec.Expected)
			continue
		}
		passed++
	}
	batches := 0
	for i, vec := range v.Evaluations {
		r := s.do("POST", "/access/v1/evaluations", "application/json", vec.Request)
		var got struct {
			Evaluations json.RawMessage `json:"evaluations"`
		}
		if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil {
			t.Errorf("evaluations %d: %d %s", i, r.Status, r.Body)
			continue
		}
		if a, b := compact(t, got.Evaluations), compact(t, vec.Expected); a != b {
			t.Errorf("evaluations %d %s:\ngot  %s\nwant %s", i, vec.Request, a, b)
			continue
		}
		batches++
	}
	t.Logf("todo interop vectors: evaluation %d/%d passed, evaluations %d/%d passed", passed, len(v.Evaluation), batches, len(v.Evaluations))
	lines, err := os.ReadFile(s.Log)
	if err != nil {
		t.Fatal(err)
	}
	if n, want := bytes.Count(lines, []byte("\n")), len(v.Evaluation)+2*len(v.Evaluations); n != want {
		t.Errorf("decision log: %d lines, want %d, one per decision", n, want)
	}
}

// compact returns JSON text without insignificant white space, as
// JSON.stringify writes a parsed value.
func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestAuthZENHarnessesCanFail runs the certification harness and the todo
// vectors against the package each is not written for: both must fail,
// so that their passing means something.
func TestAuthZENHarnessesCanFail(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := newServer(t)
	s.start(t, "serve", "--addr", "127.0.0.1:0", "--package", "../examples/authzen-todo", "--log", s.Log)
	eps, err := discover(httpClient, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	h := &certHarness{t: t, client: httpClient, base: s.URL, endpoints: eps}
	failed := map[string]bool{}
	for _, r := range certCases(h) {
		if r.err != nil {
			failed[r.level] = true
		}
	}
	for _, level := range []string{"Basic Core", "Basic Properties", "Batch Core", "Batch Properties", "Search Core", "Search Properties", "Discovery"} {
		if !failed[level] {
			t.Errorf("the certification harness passes level %s on the todo package", level)
		}
	}

	cert := newServer(t)
	cert.start(t, "serve", "--addr", "127.0.0.1:0", "--package", "../examples/authzen-certification", "--log", cert.Log)
	data, err := os.ReadFile("testdata/authzen/todo-decisions-1_0-02.json")
	if err != nil {
		t.Fatal(err)
	}
	var v todoVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	wrong := 0
	for _, vec := range v.Evaluation {
		r := cert.do("POST", "/access/v1/evaluation", "application/json", vec.Request)
		if !strings.Contains(string(r.Body), fmt.Sprintf(`"decision":%v`, vec.Expected)) {
			wrong++
		}
	}
	if wrong == 0 {
		t.Error("the todo vectors pass on the certification package")
	}
}
