package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/registry"
)

// Config says how to run the chaos check.
type Config struct {
	// Binary is the flex-auth to run (required).
	Binary string
	// Dir holds the registry, policy and decision log; "" is a temporary
	// directory, removed at the end unless Keep is set.
	Dir  string
	Keep bool
	// Duration is how long to keep cycling through the faults; one cycle
	// always runs whole.
	Duration time.Duration
	// Workers send requests all the while; 0 means 4.
	Workers int
	// Out receives a line per step; nil discards them.
	Out io.Writer
}

// A Summary is the outcome of Run.
type Summary struct {
	Elapsed   time.Duration
	Cycles    int
	Workers   int
	Phases    []*PhaseStats
	Requests  int
	Decisions int
	Allows    int
	Failures  map[string]int // by kind, all phases
	// Unexpected are failures outside a fault that permits them: a 503
	// outside the decision log fault, a connection failure outside the
	// kill, any failure during reloads and corrupted registries.
	Unexpected []string
	Verdict    *Verdict
	Torn       []TornLine
	// Faults are the steps that ran; Skipped those this platform cannot
	// run, with why.
	Faults  []string
	Skipped []string
	// Exit is the exit code of the last server after SIGTERM.
	Exit int
	Dir  string
}

// OK reports whether nothing was lost, no allow went unlogged, no
// request failed where none may, and the server shut down cleanly.
func (s *Summary) OK() bool {
	return s.Verdict != nil && s.Verdict.OK() && len(s.Unexpected) == 0 && s.Exit == 0
}

// Write prints the summary: a line per phase, then the totals.
func (s *Summary) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "phase (when answered)\trequests\tdecisions\tallows\tfailures\n")
	for _, p := range s.Phases {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", p.Phase, p.Requests, p.Decisions, p.Allows, FailureCounts(p.Failures))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	v := s.Verdict
	lost, unlogged, logged, tornHeld, chain := -1, -1, -1, -1, "not verified"
	if v != nil {
		lost, unlogged, logged, tornHeld, chain = len(v.Lost)+len(v.TornWithReceived), v.UnloggedAllows, v.Logged, len(v.TornWithReceived), v.ChainState()
	}
	fmt.Fprintf(w, "\nchaos: %s, %d workers, %d cycles of %d faults (%s)\n", s.Elapsed.Round(time.Millisecond), s.Workers, s.Cycles, len(s.Faults), strings.Join(s.Faults, ", "))
	for _, sk := range s.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", sk)
	}
	fmt.Fprintf(w, "requests: %d\ndecisions received: %d (%d allows)\ndecisions logged: %d\nfailures: %s\nunexpected failures: %d\ntorn log lines: %d, holding a received decision: %d\nserver exit after SIGTERM: %d\nhash chain: %s\nlost: %d\nunlogged allows: %d\n",
		s.Requests, s.Decisions, s.Allows, logged, FailureCounts(s.Failures), len(s.Unexpected), len(s.Torn), tornHeld, s.Exit, chain, lost, unlogged)
	for i, u := range s.Unexpected {
		if i == 10 {
			fmt.Fprintf(w, "  ... %d more\n", len(s.Unexpected)-10)
			break
		}
		fmt.Fprintf(w, "  unexpected: %s\n", u)
	}
	if v != nil {
		for i, id := range v.Lost {
			if i == 10 {
				break
			}
			fmt.Fprintf(w, "  lost: %s\n", id)
		}
		for _, t := range v.TornWithReceived {
			fmt.Fprintf(w, "  torn line with a received decision: %s\n", t)
		}
	}
	verdict := "PASS"
	if !s.OK() {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintf(w, "chaos: %s\n", verdict)
	return err
}

// A window is a stretch of time during which a kind of failure is the
// expected answer.
type window struct {
	kinds    []string
	from, to time.Time
}

// run is one chaos run's state.
type run struct {
	cfg                   Config
	dir                   string
	reg, pol, log, broken string
	good, good12          []byte
	goodDigest            string
	good12Digest          string
	srv                   *proc
	c                     *client.Client
	load                  *Load
	mu                    sync.Mutex
	windows               []window
	sum                   *Summary
}

// A step is one fault (or the calm between them).
type step struct {
	name string
	do   func(ctx context.Context, r *run) error
	// ownPhase: do sets the phase itself, once the fault is in place.
	ownPhase bool
}

// dwell is how long each step keeps the load going, at least.
const dwell = 250 * time.Millisecond

// minAnswers is how many answers each step waits for, at least.
const minAnswers = 40

// Run starts flex-auth serve --watch on a copy of the ops-warden example,
// sends load from cfg.Workers workers, and cycles through the faults for
// cfg.Duration: a reload storm, a changed registry, a truncated, an
// invalid, an empty and a deleted registry, a broken registry swapped in
// by symlink, a restored registry, a decision log that cannot be written
// (Linux), and SIGKILL with a restart on the same log. It then stops the
// server with SIGTERM and verifies the log against every decision the
// clients received.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Binary == "" {
		return nil, errors.New("chaos: no flex-auth binary")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	r := &run{cfg: cfg, sum: &Summary{Workers: cfg.Workers, Failures: map[string]int{}}}
	if err := r.setup(); err != nil {
		return nil, err
	}
	if !cfg.Keep && cfg.Dir == "" {
		defer os.RemoveAll(r.dir)
	}
	r.sum.Dir = r.dir
	start := time.Now()
	if err := r.startServer(ctx, "127.0.0.1:0"); err != nil {
		return nil, err
	}
	defer r.srv.kill()
	var err error
	r.c, err = client.New(r.srv.url, client.WithTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	r.load, err = StartLoad(LoadConfig{URL: r.srv.url, Workers: cfg.Workers, Requests: Probes, Timeout: 10 * time.Second, Phase: "steady", PerWorker: 10_000_000})
	if err != nil {
		return nil, err
	}
	defer r.load.Stop()

	steps := r.steps()
	for cycle := 0; cycle == 0 || time.Since(start) < cfg.Duration; cycle++ {
		r.sum.Cycles++
		for _, st := range steps {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if cycle == 0 {
				r.sum.Faults = append(r.sum.Faults, st.name)
			}
			if !st.ownPhase {
				r.load.SetPhase(st.name)
			}
			t0 := time.Now()
			if err := st.do(ctx, r); err != nil {
				if errors.Is(err, errors.ErrUnsupported) {
					if cycle == 0 {
						r.sum.Faults = r.sum.Faults[:len(r.sum.Faults)-1]
						r.sum.Skipped = append(r.sum.Skipped, st.name+": not on this platform")
					}
					continue
				}
				return nil, fmt.Errorf("chaos: %s: %w", st.name, err)
			}
			if err := r.settle(ctx, st.name, t0); err != nil {
				return nil, fmt.Errorf("chaos: %s: %w", st.name, err)
			}
			fmt.Fprintf(cfg.Out, "cycle %d: %-46s %6d requests\n", cycle+1, st.name, r.load.Answered(st.name))
		}
	}
	answers := r.load.Stop()
	r.sum.Exit = r.srv.stop()
	r.sum.Elapsed = time.Since(start)
	r.finish(answers)
	return r.sum, nil
}

// settle keeps the load going in the step's phase for dwell and at least
// minAnswers answers.
func (r *run) settle(ctx context.Context, phase string, t0 time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !r.load.WaitAnswered(ctx, phase, minAnswers) {
		return fmt.Errorf("%d answers in 30s, want %d", r.load.Answered(phase), minAnswers)
	}
	if d := dwell - time.Since(t0); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *run) setup() error {
	r.dir = r.cfg.Dir
	if r.dir == "" {
		d, err := os.MkdirTemp("", "flex-auth-chaos-")
		if err != nil {
			return err
		}
		r.dir = d
	} else if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	reg, err := examples.OpsWarden.ReadFile(examples.OpsWardenRegistry)
	if err != nil {
		return err
	}
	pol, err := examples.OpsWarden.ReadFile(examples.OpsWardenPolicy)
	if err != nil {
		return err
	}
	snap, err := registry.Parse(reg)
	if err != nil {
		return err
	}
	r.good, r.goodDigest = snap.Canonical(), snap.Digest
	alt := BridgeTTL(snap, 12)
	r.good12, r.good12Digest = alt.Canonical(), alt.Digest
	r.reg = filepath.Join(r.dir, "registry.json")
	r.pol = filepath.Join(r.dir, "policy_package.md")
	r.log = filepath.Join(r.dir, "decisions.jsonl")
	r.broken = filepath.Join(r.dir, "broken-registry.json")
	for _, f := range []struct {
		path string
		data []byte
	}{{r.reg, r.good}, {r.pol, pol}, {r.broken, r.good[:len(r.good)/3]}} {
		if err := replace(f.path, f.data); err != nil {
			return err
		}
	}
	return nil
}

// Probes are the requests of the load: with the example registry, an
// allow for 24 hours, an allow for 12, a deny above the maximum TTL, and
// an unknown actor. Under BridgeTTL(12) the first is a deny.
var Probes = []client.Request{
	{Subject: "iam:agt-state-hub-bridge", Action: registry.DefaultAction, Resource: "agt-state-hub-bridge", Context: map[string]any{"ttl_hours": 24}},
	{Subject: "agt-state-hub-bridge", Resource: "agt-state-hub-bridge", Context: map[string]any{"ttl_hours": 12}},
	{Subject: "agt-state-hub-bridge", Resource: "agt-state-hub-bridge", Context: map[string]any{"ttl_hours": 999}},
	{Subject: "iam:agt-nobody", Resource: "agt-nobody"},
}

// BridgeTTL returns a sealed copy of s in which agt-state-hub-bridge's
// default and maximum TTL are hours.
func BridgeTTL(s *registry.Snapshot, hours int) *registry.Snapshot {
	actors := make([]registry.Actor, len(s.Actors))
	copy(actors, s.Actors)
	for i := range actors {
		actors[i].Subjects = append([]string(nil), actors[i].Subjects...)
		if actors[i].Name == "agt-state-hub-bridge" {
			actors[i].DefaultTTLHours, actors[i].MaxTTLHours = hours, hours
		}
	}
	return registry.New(s.Source, s.PolicyPackage, actors)
}

// replace writes path atomically: a temporary file in the same directory,
// renamed over it.
func replace(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".chaos-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (r *run) steps() []step {
	// corrupt returns a step that breaks the registry and waits until the
	// server reports degraded.
	corrupt := func(name string, breakIt func() error) step {
		return step{name: name, do: func(ctx context.Context, r *run) error {
			since := time.Now()
			if err := breakIt(); err != nil {
				return err
			}
			return r.waitReload(ctx, since, "degraded", "")
		}}
	}
	return []step{
		{name: "steady", do: func(context.Context, *run) error { return nil }},
		{name: "reload storm (SIGHUP every 4ms)", do: func(ctx context.Context, r *run) error {
			for i := range 60 {
				if i%10 == 0 {
					data := r.good
					if i%20 == 0 {
						data = r.good12
					}
					if err := replace(r.reg, data); err != nil {
						return err
					}
				}
				if err := r.srv.signal(syscall.SIGHUP); err != nil {
					return err
				}
				time.Sleep(4 * time.Millisecond) // the storm's pace
			}
			since := time.Now()
			if err := replace(r.reg, r.good12); err != nil {
				return err
			}
			if err := r.srv.signal(syscall.SIGHUP); err != nil {
				return err
			}
			return r.waitReload(ctx, since, "ok", r.good12Digest)
		}},
		{name: "registry changed (--watch)", do: func(ctx context.Context, r *run) error {
			since := time.Now()
			if err := replace(r.reg, r.good); err != nil {
				return err
			}
			return r.waitReload(ctx, since, "ok", r.goodDigest)
		}},
		corrupt("registry truncated in place", func() error { return os.WriteFile(r.reg, r.good[:len(r.good)/2], 0o644) }),
		corrupt("registry invalid", func() error {
			return replace(r.reg, []byte("{\"schema\": \"flex-auth.registry/v1\", \"actors\": 7}\n"))
		}),
		corrupt("registry empty", func() error { return os.Truncate(r.reg, 0) }),
		corrupt("registry deleted", func() error { return os.Remove(r.reg) }),
		corrupt("registry swapped by symlink to a broken file", func() error {
			tmp := r.reg + ".link"
			os.Remove(tmp)
			if err := os.Symlink(filepath.Base(r.broken), tmp); err != nil {
				return err
			}
			return os.Rename(tmp, r.reg)
		}),
		{name: "registry restored", do: func(ctx context.Context, r *run) error {
			since := time.Now()
			if err := replace(r.reg, r.good); err != nil {
				return err
			}
			return r.waitReload(ctx, since, "ok", r.goodDigest)
		}},
		{name: "decision log unwritable (file size limit)", do: func(ctx context.Context, r *run) error {
			fi, err := os.Stat(r.log)
			if err != nil {
				return err
			}
			from := time.Now()
			if err := setFileSizeLimit(r.srv.pid(), uint64(fi.Size())+37); err != nil {
				return err
			}
			const phase = "decision log unwritable (file size limit)"
			r.load.SetPhase(phase)
			if err := r.settle(ctx, phase, from); err != nil {
				return err
			}
			err = setFileSizeLimit(r.srv.pid(), ^uint64(0))
			r.expect(from, time.Now(), "503 decision_log_unavailable")
			return err
		}, ownPhase: true},
		{name: "decision log writable again", do: func(context.Context, *run) error { return nil }},
		{name: "SIGKILL and restart", do: func(ctx context.Context, r *run) error {
			from := time.Now()
			r.srv.kill()
			if err := r.startServer(ctx, r.srv.addr); err != nil {
				return err
			}
			r.expect(from, time.Now(), "unreachable")
			return nil
		}},
	}
}

// expect records that failures of kinds are expected between from and to.
func (r *run) expect(from, to time.Time, kinds ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.windows = append(r.windows, window{kinds, from, to})
}

// waitReload waits until a reload that started at or after since reports
// status, serving digest when it is set.
func (r *run) waitReload(ctx context.Context, since time.Time, status, digest string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var last string
	for {
		h, err := r.c.Health(ctx)
		if err == nil {
			at := h.Reload.LastAttemptAt
			if at != nil && !at.Before(since) && h.Status == status && (digest == "" || h.Registry.Digest == digest) {
				return nil
			}
			last = fmt.Sprintf("status %s, registry %s", h.Status, h.Registry.Digest)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no reload to %s within 15s (last: %s)", status, last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// finish tallies the answers and verifies the decision log.
func (r *run) finish(answers []Answer) {
	s := r.sum
	s.Phases = Tally(answers)
	for _, a := range answers {
		s.Requests++
		if a.Decision != nil {
			s.Decisions++
			if a.Decision.Allowed() {
				s.Allows++
			}
			if d := a.Decision; d.RegistryDigest != r.goodDigest && d.RegistryDigest != r.good12Digest {
				s.Unexpected = append(s.Unexpected, fmt.Sprintf("%s: decision %s from registry %s, which was never good", a.Phase, d.ID, d.RegistryDigest))
			}
			continue
		}
		s.Failures[a.Failure]++
		if !r.expected(a) {
			s.Unexpected = append(s.Unexpected, fmt.Sprintf("%s: %s: %v", a.Phase, a.Failure, a.Err))
		}
	}
	data, err := os.ReadFile(r.log)
	if err != nil {
		s.Unexpected = append(s.Unexpected, fmt.Sprintf("read the decision log: %v", err))
		s.Verdict = &Verdict{}
		return
	}
	log := ReadLog(filepath.Base(r.log), data)
	s.Verdict = log.Verify(ReceivedOf(answers))
	s.Torn = log.Torn
}

// expected reports whether a failed answer overlaps a window that expects
// its kind of failure.
func (r *run) expected(a Answer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.windows {
		if a.Done.Before(w.from) || a.Sent.After(w.to) {
			continue
		}
		for _, k := range w.kinds {
			if a.Failure == k {
				return true
			}
		}
	}
	return false
}

// startServer starts flex-auth serve --watch on addr and waits until it
// answers /healthz.
func (r *run) startServer(ctx context.Context, addr string) error {
	p := &proc{exited: make(chan struct{})}
	p.cmd = exec.Command(r.cfg.Binary, "serve", "--addr", addr, "--registry", r.reg, "--policy", r.pol,
		"--log", r.log, "--watch", "--shutdown-timeout", "5s")
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.cfg.Binary, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	r.srv = p
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := listenRE.FindStringSubmatch(p.stderr.String()); m != nil {
			p.addr = m[1]
			p.url = "http://" + m[1]
			break
		}
		select {
		case <-p.exited:
			return fmt.Errorf("flex-auth serve exited at start-up: %v\n%s", p.waitErr, p.stderr.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("flex-auth serve did not listen within 15s:\n%s", p.stderr.String())
		}
	}
	c, err := client.New(p.url, client.WithTimeout(time.Second))
	if err != nil {
		return err
	}
	for {
		if _, err := c.Health(ctx); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("flex-auth serve did not answer /healthz within 15s:\n%s", p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond) // polling start-up, with a deadline
	}
}

var listenRE = regexp.MustCompile(`listening on (\S+?:\d+)`)

// A proc is one flex-auth serve process.
type proc struct {
	cmd     *exec.Cmd
	stderr  syncBuffer
	exited  chan struct{}
	waitErr error
	addr    string
	url     string
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// kill sends SIGKILL, if the process still runs, and waits for it.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// stop sends SIGTERM and returns the exit code; -1 when it had to be
// killed.
func (p *proc) stop() int {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.kill()
		return -1
	}
	var ee *exec.ExitError
	switch {
	case p.waitErr == nil:
		return 0
	case errors.As(p.waitErr, &ee):
		return ee.ExitCode()
	}
	return -1
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
