package serve

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

const syncDoc = "../docs/ops-warden-registry-sync.md"

// docBlock returns the fenced block after marker in the Serving section of
// the operator runbook.
func docBlock(t *testing.T, marker string) string {
	t.Helper()
	doc, err := os.ReadFile(syncDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Serving\n")
	if !ok {
		t.Fatalf("%s has no Serving section", syncDoc)
	}
	_, rest, ok := strings.Cut(section, marker)
	if !ok {
		t.Fatalf("%s: no %q in the Serving section", syncDoc, marker)
	}
	_, rest, _ = strings.Cut(rest, "```")
	_, rest, _ = strings.Cut(rest, "\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("%s: unterminated block after %q", syncDoc, marker)
	}
	return block
}

// keys returns the member names of a JSON object in document order.
func keys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []string
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", data)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestDocServingExamples checks the runbook's request, response and
// decision log examples against what the service does with that request.
func TestDocServingExamples(t *testing.T) {
	log := &syncBuffer{}
	s := newTestServer(t, Source{}, log)
	w := post(s, docBlock(t, "<!-- serve-request -->"))
	got := decodeCheck(t, w)

	docResp := []byte(docBlock(t, "<!-- serve-response -->"))
	var want checkResponse
	if err := json.Unmarshal(docResp, &want); err != nil {
		t.Fatalf("documented response: %v", err)
	}
	if g, d := strings.Join(keys(t, w.Body.Bytes()), ","), strings.Join(keys(t, docResp), ","); g != d {
		t.Errorf("response members: got %s, documented %s", g, d)
	}
	if got.Effect != want.Effect || got.Reason != want.Reason || got.Policy != want.Policy ||
		got.Grant == nil || want.Grant == nil || *got.Grant != *want.Grant {
		t.Errorf("decision: got %+v, documented %+v", got, want)
	}
	digest := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	if !decisionIDPattern.MatchString(want.DecisionID) || !digest.MatchString(want.PolicyDigest) || !digest.MatchString(want.RegistryDigest) {
		t.Errorf("documented ids and digests are malformed: %+v", want)
	}

	docLine := []byte(strings.TrimSpace(docBlock(t, "<!-- serve-log-line -->")))
	line := []byte(strings.TrimSpace(log.String()))
	if g, d := strings.Join(keys(t, line), ","), strings.Join(keys(t, docLine), ","); g != d {
		t.Errorf("log line members: got %s, documented %s", g, d)
	}
	var gotLine, docFields map[string]any
	json.Unmarshal(line, &gotLine)
	json.Unmarshal(docLine, &docFields)
	for _, k := range []string{"subject", "action", "resource", "effect", "reason", "policy"} {
		if gotLine[k] != docFields[k] {
			t.Errorf("log line %s: got %v, documented %v", k, gotLine[k], docFields[k])
		}
	}
	if _, err := json.Marshal(gotLine["context"]); err != nil || !strings.Contains(string(line), `"context":{"principal":"agt-task-bridge","ttl_hours":24}`) {
		t.Errorf("log line context: got %s", line)
	}
}
