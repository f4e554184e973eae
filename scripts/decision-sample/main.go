// Command decision-sample writes a realistic decision log for the
// ops-warden example: the sample that replay reads in CI to show a pull
// request's impact on recorded decisions, and the large logs that log
// verify and replay are measured with. Run it from the module root:
//
//	go run ./scripts/decision-sample                        # examples/ops-warden/decision_sample.jsonl, 1,000 decisions
//	go run ./scripts/decision-sample -n 1000000 -o /tmp/big.jsonl
//
// It serves the example registry and policy (or -registry and -policy)
// with flex-auth's own handler and decision log, in this process, and
// asks it the questions ops-warden's signers ask in a week: mostly the
// nightly backup, the bridge and the bootstrap agent asking for their own
// certificates, an administrator now and then, and the mistakes that get
// denied (a lifetime over the maximum, another actor's subject, a wrong
// principal, retired actors, an action other than signing, a lifetime
// missing or written as a string). The choices come from -seed, and the
// clock runs from -start over -span, so two runs differ only in their
// decision ids (random, as the server makes them) and the hashes that
// follow from them. The log is chained, as every log serve writes; with
// -sign-key it is signed too. Nothing in it is secret: no request header
// is ever logged, and the contexts hold principals and lifetimes.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/serve"
)

// A question is a kind of request, with its weight in the mix.
type question struct {
	weight int
	body   func(r *rand.Rand) string
}

func ask(subject, resource, action, context string) string {
	b := fmt.Sprintf(`{"subject":%q,"resource":%q`, subject, resource)
	if action != "" {
		b += fmt.Sprintf(`,"action":%q`, action)
	}
	if context != "" {
		b += `,"context":` + context
	}
	return b + "}"
}

// mix is a week of ops-warden's questions.
var mix = []question{
	// The nightly backup, by its IAM role, its default lifetime.
	{38, func(*rand.Rand) string {
		return ask("iam:atm-backup-daily", "atm-backup-daily", "", `{"principal":"atm-backup-daily","ttl_hours":8}`)
	}},
	// The bridge, by its IAM role, a day at most.
	{24, func(r *rand.Rand) string {
		return ask("iam:agt-state-hub-bridge", "agt-state-hub-bridge", "ssh.sign", fmt.Sprintf(`{"principal":"agt-task-bridge","ttl_hours":%d}`, []int{24, 24, 24, 12, 6}[r.IntN(5)]))
	}},
	// The bootstrap agent, two hours.
	{9, func(r *rand.Rand) string {
		return ask("agt-codex-interhub-bootstrap", "agt-codex-interhub-bootstrap", "", fmt.Sprintf(`{"ttl_hours":%d}`, 1+r.IntN(2)))
	}},
	// An administrator, for a working day or two.
	{5, func(r *rand.Rand) string {
		return ask("adm-example", "adm-example", "ssh.sign", fmt.Sprintf(`{"principal":"adm-full","ttl_hours":%d}`, []int{8, 12, 24, 48}[r.IntN(4)]))
	}},
	// Denied: a lifetime over the maximum.
	{5, func(r *rand.Rand) string {
		return ask("iam:agt-state-hub-bridge", "agt-state-hub-bridge", "", fmt.Sprintf(`{"principal":"agt-task-bridge","ttl_hours":%d}`, []int{36, 48, 168}[r.IntN(3)]))
	}},
	{3, func(*rand.Rand) string {
		return ask("agt-codex-interhub-bootstrap", "agt-codex-interhub-bootstrap", "", `{"ttl_hours":4}`)
	}},
	// Denied: one actor asking as another.
	{3, func(*rand.Rand) string {
		return ask("iam:agt-state-hub-bridge", "atm-backup-daily", "", `{"ttl_hours":8}`)
	}},
	// Denied: a principal the actor does not have.
	{3, func(r *rand.Rand) string {
		return ask("iam:agt-state-hub-bridge", "agt-state-hub-bridge", "", fmt.Sprintf(`{"principal":%q,"ttl_hours":12}`, []string{"root", "adm-full", "agt-task-runner"}[r.IntN(3)]))
	}},
	// Denied: actors retired from the inventory, or misspelt.
	{4, func(r *rand.Rand) string {
		a := []string{"atm-backup-weekly", "agt-state-hub-bridge-old", "agt-retired-runner", "adm-exmaple"}[r.IntN(4)]
		return ask("iam:"+a, a, "", `{"ttl_hours":8}`)
	}},
	// Denied: an action other than signing.
	{2, func(*rand.Rand) string {
		return ask("iam:atm-backup-daily", "atm-backup-daily", "ssh.exec", `{"ttl_hours":8}`)
	}},
	// Denied: no lifetime, or one written as a string or a fraction.
	{2, func(r *rand.Rand) string {
		return ask("iam:atm-backup-daily", "atm-backup-daily", "", []string{`{}`, `{"ttl_hours":"8"}`, `{"ttl_hours":7.5}`}[r.IntN(3)])
	}},
	// Allowed: the backup by its own name, without a principal, for
	// fewer hours.
	{2, func(*rand.Rand) string {
		return ask("atm-backup-daily", "atm-backup-daily", "", `{"ttl_hours":4}`)
	}},
}

// A clock that runs from start over span in n even steps with jitter,
// never backwards.
type clock struct {
	mu   sync.Mutex
	r    *rand.Rand
	now  time.Time
	step time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step/2 + time.Duration(c.r.Int64N(int64(c.step)+1)))
	return c.now
}

func main() {
	var (
		n             = flag.Int("n", 1000, "decisions to record")
		out           = flag.String("o", "examples/ops-warden/decision_sample.jsonl", "decision log to write (replaced)")
		seed          = flag.Uint64("seed", 1, "seed of the questions and the clock")
		start         = flag.String("start", "2026-06-17T00:00:00Z", "time of the first decision (RFC 3339)")
		span          = flag.Duration("span", 7*24*time.Hour, "time the decisions are spread over")
		registryFile  = flag.String("registry", "", "registry snapshot to serve (with -policy; default: the built-in example)")
		policyFile    = flag.String("policy", "", "policy package to serve (with -registry)")
		signKey       = flag.String("sign-key", "", "sign checkpoints with this OpenSSH private key")
		checkpointsAt = flag.Int("checkpoint-lines", serve.DefaultCheckpointLines, "with -sign-key, a checkpoint every this many records")
	)
	flag.Parse()
	if err := run(*n, *out, *seed, *start, *span, *registryFile, *policyFile, *signKey, *checkpointsAt); err != nil {
		fmt.Fprintln(os.Stderr, "decision-sample:", err)
		os.Exit(1)
	}
}

func run(n int, out string, seed uint64, startText string, span time.Duration, registryFile, policyFile, signKey string, checkpointLines int) error {
	t0, err := time.Parse(time.RFC3339, startText)
	if err != nil {
		return fmt.Errorf("-start: %w", err)
	}
	src := serve.Source{Registry: examples.OpsWardenRegistry, Policy: examples.OpsWardenPolicy, FS: examples.OpsWarden, Name: "the built-in ops-warden example"}
	switch {
	case registryFile != "" && policyFile != "":
		src = serve.Source{Registry: registryFile, Policy: policyFile}
	case registryFile != "" || policyFile != "":
		return fmt.Errorf("-registry and -policy go together")
	}
	var signer *decisionlog.Signer
	if signKey != "" {
		key, err := sshsig.LoadSigner(signKey, nil)
		if err != nil {
			return err
		}
		signer = decisionlog.NewSigner(key)
	}
	if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
		return err
	}
	f, err := serve.OpenLogFile(out)
	if err != nil {
		return err
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	clk := &clock{r: rand.New(rand.NewPCG(seed+1, seed)), now: t0, step: span / time.Duration(max(n, 1))}
	s, err := serve.New(serve.Options{Source: src, DecisionLog: f, Clock: clk.Now, LogSigner: signer, CheckpointLines: checkpointLines})
	if err != nil {
		return err
	}
	total := 0
	for _, q := range mix {
		total += q.weight
	}
	outcomes := map[string]int{}
	for range n {
		k := r.IntN(total)
		q := mix[0]
		for _, q = range mix {
			if k < q.weight {
				break
			}
			k -= q.weight
		}
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/check", strings.NewReader(q.body(r)))
		req.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			return fmt.Errorf("a question was answered %d: %s", w.Code, w.Body)
		}
		var d struct{ Effect, Reason string }
		if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
			return fmt.Errorf("the answer %s: %w", w.Body, err)
		}
		outcomes[d.Effect+" "+d.Reason]++
	}
	if err := s.Close(); err != nil {
		return err
	}
	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("%s: %d decisions from %s to %s\n", out, n, t0.Format(time.RFC3339), clk.now.UTC().Format(time.RFC3339))
	for _, k := range keys {
		fmt.Printf("  %-40s %d\n", k, outcomes[k])
	}
	return nil
}
