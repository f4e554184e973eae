package serve

import (
	"strings"
	"testing"
)

const azAllowBody = `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"action":{"name":"ssh.sign"},` +
	`"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"principal":"agt-task-bridge","ttl_hours":24}}`

// BenchmarkAuthZENEvaluation is BenchmarkCheckHandler's allow as an
// AuthZEN evaluation of the ops-warden package.
func BenchmarkAuthZENEvaluation(b *testing.B) {
	s := newBenchServer(b, false)
	b.ReportAllocs()
	postLoop(b, s, "/access/v1/evaluation", []byte(azAllowBody), b.Loop)
}

// BenchmarkAuthZENBatch100 is a batch of 100 such evaluations; ns/op is
// per batch.
func BenchmarkAuthZENBatch100(b *testing.B) {
	s := newBenchServer(b, false)
	item := `{"subject":{"type":"iam","id":"iam:agt-state-hub-bridge"},"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":24}}`
	body := `{"action":{"name":"ssh.sign"},"evaluations":[` + strings.TrimSuffix(strings.Repeat(item+",", 100), ",") + `]}`
	b.ReportAllocs()
	postLoop(b, s, "/access/v1/evaluations", []byte(body), b.Loop)
}

// BenchmarkAuthZENSearch is a subject search of the ops-warden package:
// who may sign for the actor BenchmarkCheckHandler signs for. The
// subjects bound to the actor are the candidates, each decided; the two
// allowed are answered and logged, as one batch.
func BenchmarkAuthZENSearch(b *testing.B) {
	s := newBenchServer(b, false)
	body := `{"subject":{"type":"iam"},"action":{"name":"ssh.sign"},"resource":{"type":"actor","id":"agt-state-hub-bridge"},"context":{"ttl_hours":1}}`
	b.ReportAllocs()
	postLoop(b, s, "/access/v1/search/subject", []byte(body), b.Loop)
}
