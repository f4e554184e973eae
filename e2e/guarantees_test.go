package e2e

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

const guaranteesDoc = "../docs/guarantees.md"

// metricDocs are the pages that tell operators which metrics to watch.
var metricDocs = []string{guaranteesDoc, "../docs/operating.md", "../docs/promotion.md"}

// TestGuaranteesDoc checks the operators' pages against the binary: every
// metric the guarantees, operating and promotion pages tell operators to
// watch is served by /metrics, with the labels they name, from the start
// (an alert on a counter's increase misses the increase that creates
// it); and the marker the guarantees page says ends a torn line is the
// one the server writes (seen in the decision log after a write cut short
// by a file size limit, TestDecisionLogFaults; here, after a fragment
// left by a crash).
func TestGuaranteesDoc(t *testing.T) {
	skipShort(t)
	t.Parallel()
	doc := string(readFile(t, guaranteesDoc))
	s := newServer(t)
	// A fragment such as a crash leaves: the server ends it at start-up.
	writeFile(t, s.Log, []byte(`{"time":"2026-06-24T09:12:03.123456789Z","decision_id":"decision:`))
	s.start(t, s.serveArgs()...)
	s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}})
	s.check(checkRequest{bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 999}})
	s.do("GET", "/nothing", "", nil)
	fams := metricFamilies(t, s.do("GET", "/metrics", "", nil).Body)
	for _, file := range metricDocs {
		checkDocMetrics(t, file, fams)
	}

	lines := strings.Split(string(readFile(t, s.Log)), "\n")
	marker := regexp.MustCompile(`(?m)^    (".*)$`).FindStringSubmatch(doc)
	if marker == nil {
		t.Fatalf("%s shows no torn-line marker in an indented block", guaranteesDoc)
	}
	// The documented marker, with any hash in it standing for a hash.
	hash := regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	pattern := regexp.MustCompile(hash.ReplaceAllString(regexp.QuoteMeta(marker[1]), `sha256:[0-9a-f]{64}`) + "$")
	if len(lines) < 2 || !pattern.MatchString(lines[0]) {
		t.Errorf("torn line in the log: got %q, want it to end with the documented marker %q", lines[0], marker[1])
	}
}

// checkDocMetrics checks that every metric the page file names at the
// start of a code span is one /metrics serves (fams), with the first
// label it names in braces on every series.
func checkDocMetrics(t *testing.T, file string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	doc := string(readFile(t, file))
	names := regexp.MustCompile("`((?:flexauth|process|go)_[a-z_]+)").FindAllStringSubmatch(doc, -1)
	if len(names) < 2 {
		t.Fatalf("%s names %d metrics, want the flexauth ones at least", file, len(names))
	}
	for _, m := range names {
		if _, ok := fams[m[1]]; !ok {
			t.Errorf("%s names metric %s, which /metrics does not serve", file, m[1])
		}
	}
	for _, m := range regexp.MustCompile("`(flexauth_[a-z_]+)\\{([a-z]+)(?:=\"([a-z_]+)\")?").FindAllStringSubmatch(doc, -1) {
		f, ok := fams[m[1]]
		if !ok {
			continue // reported above
		}
		var values []string
		for _, metric := range f.GetMetric() {
			values = append(values, labels(metric)[m[2]])
		}
		if len(values) == 0 || slices.Contains(values, "") {
			t.Errorf("%s: %s has no label %s", file, m[1], m[2])
		}
	}
}
