// Package bench measures flex-auth's decision path over HTTP against the
// ceiling of the machine, a bare Go handler, and checks the targets in
// BENCHMARKS.md; scripts/bench is its command line.
//
// Run builds flex-auth (or takes Config.Bin), then, in interleaved
// rounds, runs a closed-loop keep-alive load against
//
//	a  flex-auth serve on the built-in example, decision log to a file
//	b  the same with --log-sync
//	c  a bare net/http handler that decodes the request JSON and answers a
//	   fixed decision (Config.Self, run as a separate process)
//	x  a second flex-auth binary, Config.XBin, like a
//
// and reports each run, the medians, and the ratios a/c and b/c. It then
// measures a's latency in an open loop at half of a's median maximum
// rate. The large mode also serves a generated 100,000-actor registry
// under load, records the server's resident memory, and reloads the
// registry with SIGHUP mid-run; the publication mode publishes such a
// registry to an OCI registry on this machine and serves it with
// --source; the convergence mode runs ten such replicas of a small
// registry under load, publishes a new one, and times each until it
// serves it.
//
// The load generator speaks HTTP/1.1 over raw connections (wire.go): on
// a 2-core machine it shares the CPU with the server under test, and
// net/http's client would cost the server microseconds a request.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/coulomb/flex-auth/internal/atomicfile"
	"github.com/coulomb/flex-auth/registry"
)

// A Config says what to measure and how.
type Config struct {
	// Bin is the flex-auth binary to measure; "" builds ./cmd/flex-auth
	// of the module in the working directory.
	Bin string
	// XBin is a second flex-auth binary (say, before a change), measured
	// like a as scenario x, and like b as scenario y.
	XBin string
	// Self is the program that serves the bare handler when run with the
	// arguments BareCommand and an address: the program calling Run, which
	// then calls ServeBare.
	Self string
	// Conns is the number of concurrent keep-alive connections.
	Conns int
	// Duration is the measured time of each run, Warmup the unmeasured
	// load before it.
	Duration, Warmup time.Duration
	// Rounds is the number of interleaved rounds of the scenarios;
	// medians are reported.
	Rounds int
	// Scenarios lists the scenarios to run: any of a, b, c, e, f, g, x
	// and y.
	Scenarios string
	// HalfLoad measures a's latency in an open loop at 50% of a's median
	// maximum rate, or at Rate when it is positive, with RateConns
	// connections when positive (else Conns).
	HalfLoad  bool
	Rate      float64
	RateConns int
	// Large runs the large-registry mode LargeRounds times, with a
	// generated registry of LargeActors actors served with the policy
	// package file Policy.
	Large       bool
	LargeActors int
	LargeRounds int
	Policy      string
	// Publication runs the publication mode PublicationRounds times:
	// publish a LargeActors registry to an OCI registry on this machine,
	// pull it with serve --source, serve it under load, publish another,
	// restart from the cache.
	Publication       bool
	PublicationRounds int
	// Convergence runs the convergence mode ConvergenceRounds times:
	// ConvergenceReplicas replicas of serve --source polling one OCI
	// registry on this machine every ConvergencePoll; their requests to
	// it are counted for ConvergenceIdle (none when 0) with nothing new,
	// then a new pair is published under load spread over them, and each
	// is timed until it serves it. The registry holds ConvergenceActors
	// generated actors besides the example's.
	Convergence         bool
	ConvergenceRounds   int
	ConvergenceReplicas int
	ConvergenceActors   int
	ConvergencePoll     time.Duration
	ConvergenceIdle     time.Duration
	// Dir holds decision logs and generated files; "" is a new temporary
	// directory, removed at the end unless Keep is set.
	Dir  string
	Keep bool
	// Out lists files to write the results to: .json for everything,
	// .md for the Markdown tables.
	Out []string
	// Target, when set, only loads the flex-auth already running at this
	// host:port for Duration (for profiling it).
	Target string
	// Profile, when set, profiles flex-auth (CPU and allocations) under
	// the load of each of the scenarios a and b into this directory,
	// instead of measuring.
	Profile string
	// Command is the command line, for the report.
	Command string
}

// Check reports what is wrong with c.
func (c *Config) Check() error {
	if c.Conns < 1 || c.Rounds < 1 || c.Duration <= 0 || c.Warmup < 0 {
		return errors.New("-conns and -rounds must be at least 1, -duration positive, -warmup not negative")
	}
	for _, r := range c.Scenarios {
		if !strings.ContainsRune(allScenarios, r) {
			return fmt.Errorf("-scenarios %q: unknown scenario %q; want a, b, c, e, f, g, x or y", c.Scenarios, r)
		}
		if (r == 'x' || r == 'y') && c.XBin == "" {
			return fmt.Errorf("scenario %c needs -xbin", r)
		}
	}
	if c.Convergence && (c.ConvergenceRounds < 1 || c.ConvergenceReplicas < 1 || c.ConvergencePoll <= 0 || c.ConvergenceIdle < 0 || c.ConvergenceActors < 0) {
		return errors.New("-convergence-rounds and -convergence-replicas must be at least 1, -convergence-poll positive, -convergence-idle and -convergence-actors not negative")
	}
	for _, out := range c.Out {
		if !strings.HasSuffix(out, ".json") && !strings.HasSuffix(out, ".md") {
			return fmt.Errorf("-out %s: want a .json or .md file", out)
		}
	}
	return nil
}

// A bench is one invocation's state.
type bench struct {
	Config
	dir string
	w   io.Writer
	mix []request // the example's request mix, built once
	// azMix and batchMix are the same requests as AuthZEN evaluations,
	// one per request (e, f) and batchSize per request (g).
	azMix, batchMix []request
}

// allScenarios are the scenarios, in the order of the reports.
const allScenarios = "abcefgxy"

// mixFor returns the request mix of a scenario.
func (b *bench) mixFor(scenario string) []request {
	switch scenario {
	case "e", "f":
		return b.azMix
	case "g":
		return b.batchMix
	}
	return b.mix
}

// Run measures what cfg says and writes each run, then the report, to w.
func Run(ctx context.Context, cfg Config, w io.Writer) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	b := &bench{Config: cfg, w: w}
	if b.Dir == "" {
		var err error
		if b.dir, err = os.MkdirTemp("", "flex-auth-bench-"); err != nil {
			return err
		}
		if !b.Keep {
			defer os.RemoveAll(b.dir)
		}
	} else {
		b.dir = b.Dir
		if err := os.MkdirAll(b.dir, 0o755); err != nil {
			return err
		}
	}
	if b.Target != "" {
		return b.loadTarget(ctx)
	}
	needsFlexAuth := b.Large || b.Publication || b.Convergence || strings.ContainsAny(b.Scenarios, "abeg")
	if b.Bin == "" && needsFlexAuth {
		var err error
		if b.Bin, err = buildFlexAuth(ctx, b.dir, "flex-auth"); err != nil {
			return err
		}
	}
	rep := &report{Machine: describeMachine(b.dir), Command: b.Command}
	fmt.Fprintf(b.w, "flex-auth: %s\nlogs and files: %s\n", b.Bin, b.dir)

	if b.Profile != "" {
		return b.profileRuns(ctx)
	}
	if b.Scenarios != "" {
		if err := b.interleaved(ctx, rep); err != nil {
			return err
		}
	}
	if b.Large {
		for i := range b.LargeRounds {
			l, err := b.largeRun(ctx, i+1)
			if err != nil {
				return err
			}
			rep.Large = append(rep.Large, *l)
		}
		var err error
		if rep.Search, err = b.largeSearch(ctx); err != nil {
			return err
		}
	}
	if b.Publication {
		for i := range b.PublicationRounds {
			p, err := b.publicationRun(ctx, i+1)
			if err != nil {
				return err
			}
			rep.Publication = append(rep.Publication, *p)
		}
	}
	if b.Convergence {
		for i := range b.ConvergenceRounds {
			c, err := b.convergenceRun(ctx, i+1)
			if err != nil {
				return err
			}
			fmt.Fprintln(b.w, convergenceLine(*c))
			rep.Convergence = append(rep.Convergence, *c)
		}
	}
	rep.writeText(b.w)
	for _, out := range b.Out {
		var buf bytes.Buffer
		if strings.HasSuffix(out, ".json") {
			if err := rep.writeJSON(&buf); err != nil {
				return err
			}
		} else {
			rep.writeMarkdown(&buf)
		}
		if err := writeFileAtomic(out, buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// buildFlexAuth builds ./cmd/flex-auth of the module in the working
// directory into dir as name, with the build tags given.
func buildFlexAuth(ctx context.Context, dir, name string, tags ...string) (string, error) {
	bin := filepath.Join(dir, name)
	args := []string{"build"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, "-o", bin, "./cmd/flex-auth")
	if out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (run bench from the module root, or pass -bin): %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// scenario labels.
var labels = map[string]string{
	"a":  "flex-auth, log to file",
	"b":  "flex-auth, --log-sync",
	"c":  "bare net/http handler",
	"a½": "flex-auth, log, 50% load",
	"c½": "bare handler, same rate",
	"x":  "-xbin flex-auth, log to file",
	"y":  "-xbin flex-auth, --log-sync",
	"e":  "flex-auth, AuthZEN evaluation",
	"f":  "bare handler, AuthZEN body",
	"g":  "flex-auth, AuthZEN batch of 100",
}

// argv returns the command line of a scenario's server.
func (b *bench) argv(scenario string) []string {
	logFile := filepath.Join(b.dir, "decisions-"+scenario+".log")
	switch scenario {
	case "a", "e", "g":
		return []string{b.Bin, "serve", "--addr", "{addr}", "--log", logFile}
	case "b":
		return []string{b.Bin, "serve", "--addr", "{addr}", "--log", logFile, "--log-sync"}
	case "x":
		return []string{b.XBin, "serve", "--addr", "{addr}", "--log", logFile}
	case "y":
		return []string{b.XBin, "serve", "--addr", "{addr}", "--log", logFile, "--log-sync"}
	}
	return []string{b.Self, BareCommand, "{addr}"}
}

func (b *bench) logFile(scenario string) string {
	if scenario == "c" || scenario == "f" {
		return ""
	}
	return filepath.Join(b.dir, "decisions-"+scenario+".log")
}

// interleaved runs the rounds of the scenarios, rotating their order each
// round (abc, bca, cab, ...) so that no scenario always runs first after a
// pause or last when the machine is warm, then the half-load runs.
func (b *bench) interleaved(ctx context.Context, rep *report) error {
	if err := b.prepareMix(ctx); err != nil {
		return err
	}
	sc := []byte(b.Scenarios)
	byScenario := map[string][]runResult{}
	for round := 1; round <= b.Rounds; round++ {
		for i := range sc {
			s := string(sc[(i+round-1)%len(sc)])
			r, err := b.runOnce(ctx, s, round, 0)
			if err != nil {
				return err
			}
			fmt.Fprintln(b.w, runLine(*r))
			rep.Runs = append(rep.Runs, *r)
			byScenario[s] = append(byScenario[s], *r)
		}
	}
	for _, s := range allScenarios {
		if runs := byScenario[string(s)]; len(runs) > 0 {
			rep.Summaries = append(rep.Summaries, summarize(string(s), labels[string(s)], runs))
		}
	}
	med := func(s string) float64 { return summarize(s, "", byScenario[s]).RPS }
	if c := med("c"); c > 0 {
		rep.RatioA = med("a") / c
		rep.RatioB = med("b") / c
		rep.PairedRatioA = pairedRatio(byScenario["a"], byScenario["c"])
		rep.PairedRatioB = pairedRatio(byScenario["b"], byScenario["c"])
		if len(byScenario["x"]) > 0 {
			rep.RatioX = med("x") / c
			rep.PairedRatioX = pairedRatio(byScenario["x"], byScenario["c"])
		}
		if len(byScenario["y"]) > 0 {
			rep.RatioY = med("y") / c
			rep.PairedRatioY = pairedRatio(byScenario["y"], byScenario["c"])
		}
		if len(byScenario["e"]) > 0 {
			rep.RatioEC = med("e") / c
		}
	}
	if f := med("f"); f > 0 && len(byScenario["e"]) > 0 {
		rep.RatioE = med("e") / f
		rep.PairedRatioE = pairedRatio(byScenario["e"], byScenario["f"])
	}
	if e := med("e"); e > 0 && len(byScenario["g"]) > 0 {
		// Decisions per second: g answers batchSize in each request.
		rep.BatchGain = med("g") * batchSize / e
		rep.PairedBatchGain = pairedRatio(byScenario["g"], byScenario["e"]) * batchSize
	}
	if b.HalfLoad && len(byScenario["a"]) > 0 {
		rate := med("a") / 2
		if b.Rate > 0 {
			rate = b.Rate
		}
		// The bare handler at the same rate tells what of a's tail is
		// flex-auth's and what is this machine's (two processes and their
		// wake-ups sharing two cores).
		half := []string{"a"}
		if len(byScenario["c"]) > 0 {
			half = append(half, "c")
		}
		runs := map[string][]runResult{}
		for round := 1; round <= b.Rounds; round++ {
			for i := range half {
				s := half[(i+round-1)%len(half)]
				r, err := b.runOnce(ctx, s, round, rate)
				if err != nil {
					return err
				}
				r.Scenario = s + "½"
				fmt.Fprintln(b.w, runLine(*r))
				rep.Runs = append(rep.Runs, *r)
				runs[s] = append(runs[s], *r)
			}
		}
		sa := summarize("a½", labels["a½"], runs["a"])
		rep.HalfLoad, rep.HalfLoadRate = &sa, rate
		if len(runs["c"]) > 0 {
			sc := summarize("c½", labels["c½"], runs["c"])
			rep.HalfLoadBare = &sc
		}
	}
	return nil
}

// loadTarget runs one closed-loop load against a server that is already
// running, with the mix built from its registry.
func (b *bench) loadTarget(ctx context.Context) error {
	status, body, err := get(b.Target, "/v1/registry")
	if err != nil || status != 200 {
		return fmt.Errorf("GET %s/v1/registry: status %d, %v: %.200s", b.Target, status, err, body)
	}
	snap, err := registry.Parse(body)
	if err != nil {
		return fmt.Errorf("GET %s/v1/registry: %w", b.Target, err)
	}
	mix, err := buildMix(snap, "127.0.0.1", largeMixActors)
	if err != nil {
		return err
	}
	self0 := selfCPU()
	l := &load{addr: b.Target, requests: mix, conns: b.Conns, warmup: b.Warmup, duration: b.Duration, check: true}
	res, err := l.run(ctx)
	if err != nil {
		return err
	}
	r := newRunResult("target", 1, l, res)
	if res.ok > 0 {
		r.ClientCPU = us(selfCPU()-self0) / float64(res.okTotal)
	}
	fmt.Fprintln(b.w, runLine(r))
	return nil
}

// exampleRegistry is the fixture flex-auth serves by default, read from
// the working tree when only the bare handler is measured.
const exampleRegistry = "examples/ops-warden/production_registry_snapshot.json"

// prepareMix builds the request mix from the registry flex-auth serves by
// default, fetched with GET /v1/registry.
func (b *bench) prepareMix(ctx context.Context) error {
	var snap *registry.Snapshot
	if b.Bin == "" {
		var err error
		if snap, err = registry.Load(exampleRegistry); err != nil {
			return err
		}
	} else {
		srv, err := startServer(ctx, "flex-auth", []string{b.Bin, "serve", "--addr", "{addr}"}, nil)
		if err != nil {
			return err
		}
		status, body, err := get(srv.addr, "/v1/registry")
		srv.stop()
		if err != nil || status != 200 {
			return fmt.Errorf("GET /v1/registry: status %d, %v: %.200s", status, err, body)
		}
		if snap, err = registry.Parse(body); err != nil {
			return fmt.Errorf("GET /v1/registry: %w", err)
		}
	}
	var err error
	// The Host header is written into the encoded requests; servers do not
	// route on it, so one mix serves every run whatever its port.
	if b.mix, err = buildMix(snap, "127.0.0.1", 0); err != nil {
		return err
	}
	if b.azMix, err = buildAuthZENMix(snap, "127.0.0.1", 0); err != nil {
		return err
	}
	if b.batchMix, err = buildBatchMix(snap, "127.0.0.1", batchSize); err != nil {
		return err
	}
	fmt.Fprintf(b.w, "request mix: %d requests over %d actors (%s)\n", len(b.mix), len(snap.Actors), snap.Digest)
	return nil
}

// runOnce starts a fresh server for the scenario, loads it, stops it, and
// checks the decision log against the answers given. rate > 0 makes the
// run open-loop.
func (b *bench) runOnce(ctx context.Context, scenario string, round int, rate float64) (*runResult, error) {
	logFile := b.logFile(scenario)
	if logFile != "" {
		if err := os.Remove(logFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	srv, err := startServer(ctx, scenario, b.argv(scenario), nil)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	var cpu0, self0, cpu1, self1 time.Duration
	var load1 float64
	conns := b.Conns
	if rate > 0 && b.RateConns > 0 {
		conns = b.RateConns
	}
	l := &load{
		addr: srv.addr, requests: b.mixFor(scenario), conns: conns,
		warmup: b.Warmup, duration: b.Duration, rate: rate,
		check: scenario != "c" && scenario != "f",
		onMeasure: func(start bool) {
			cpu, _ := processCPU(srv.pid())
			self := selfCPU()
			if start {
				cpu0, self0 = cpu, self
				return
			}
			cpu1, self1 = cpu, self
			load1 = loadAverage()
		},
	}
	res, err := l.run(ctx)
	if err != nil {
		return nil, err
	}
	var handler checkHistogram
	var haveHandler bool
	var flush flushCounts
	if strings.ContainsAny(scenario, "abxy") {
		if status, body, err := get(srv.addr, "/metrics"); err == nil && status == 200 {
			handler, haveHandler = parseCheckHistogram(body)
			flush = parseFlushCounts(body)
		}
	}
	if err := srv.stop(); err != nil {
		return nil, err
	}
	r := newRunResult(scenario, round, l, res)
	if haveHandler {
		r.HandlerP50, r.HandlerP99 = handler.quantile(0.50), handler.quantile(0.99)
	}
	if flush.flushes > 0 {
		r.LinesPerFlush = flush.decisions / flush.flushes
	}
	r.Load1 = load1
	if res.ok > 0 {
		r.ServerCPU = us(cpu1-cpu0) / float64(res.ok)
		r.ClientCPU = us(self1-self0) / float64(res.ok)
	}
	if logFile != "" {
		if r.LogLines, err = countLines(logFile); err != nil {
			return nil, err
		}
		per := int64(1)
		if scenario == "g" {
			per = batchSize
		}
		if r.LogLines < r.Answered*per {
			return nil, fmt.Errorf("%s round %d: %d decisions answered but only %d lines in %s: the decision log lost answered decisions",
				scenario, round, r.Answered*per, r.LogLines, logFile)
		}
		os.Remove(logFile)
	}
	return &r, nil
}

// countLines counts the newline-terminated lines of a file.
func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 1<<20)
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// writeFileAtomic replaces path with data (atomicfile.WriteFile).
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// describeMachine reports the CPU count and model, Go version, kernel, and
// the file system that holds the decision logs (fsync on tmpfs is free).
func describeMachine(dir string) machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	m.LogFS = fsType(dir)
	return m
}

// fsType names the file system of dir from its statfs magic number.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case 0xEF53:
		return "ext4"
	case 0x01021994:
		return "tmpfs"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("fs type %#x", st.Type)
}
