package serve

import (
	"net/http"
	"strings"
	"testing"
)

// azLoop posts body to path b.N times, as checkLoop does.
func azLoop(b *testing.B, s *Server, path string, body []byte) {
	rb := &benchBody{}
	r, err := http.NewRequest(http.MethodPost, path, rb)
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = int64(len(body))
	w := &benchWriter{h: http.Header{}}
	for b.Loop() {
		rb.Reset(body)
		clear(w.h)
		w.status = 0
		s.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

const azAllowBody = `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"action":{"name":"ssh.sign"},` +
	`"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"principal":"agt-task-bridge","ttl_hours":24}}`

// BenchmarkAuthZENEvaluation is BenchmarkCheckHandler's allow as an
// AuthZEN evaluation of the ops-warden package.
func BenchmarkAuthZENEvaluation(b *testing.B) {
	s := newBenchServer(b, false)
	b.ReportAllocs()
	azLoop(b, s, "/access/v1/evaluation", []byte(azAllowBody))
}

// BenchmarkAuthZENBatch100 is a batch of 100 such evaluations; ns/op is
// per batch.
func BenchmarkAuthZENBatch100(b *testing.B) {
	s := newBenchServer(b, false)
	item := `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":24}}`
	body := `{"action":{"name":"ssh.sign"},"evaluations":[` + strings.TrimSuffix(strings.Repeat(item+",", 100), ",") + `]}`
	b.ReportAllocs()
	azLoop(b, s, "/access/v1/evaluations", []byte(body))
}
