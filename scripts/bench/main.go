// Command bench measures flex-auth's decision path over HTTP against the
// ceiling of this machine, a bare Go handler, and checks the targets in
// BENCHMARKS.md. Run it from the module root:
//
//	go run ./scripts/bench
//
// It builds flex-auth (or takes -bin), then, in interleaved rounds, runs a
// closed-loop keep-alive load against
//
//	a  flex-auth serve on the built-in example, decision log to a file
//	b  the same with --log-sync
//	c  a bare net/http handler that decodes the request JSON and answers a
//	   fixed decision (this binary, re-executed as a separate process)
//
// and prints each run, the medians, and the ratios a/c and b/c. It then
// measures a's latency in an open loop at half of a's median maximum rate.
// With -large it also serves a generated 100,000-actor registry under
// load, records the server's resident memory, and reloads the registry
// with SIGHUP mid-run. With -publication it publishes such a registry to
// an OCI registry on this machine and serves it with --source.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/coulomb/flex-auth/registry"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == bareCommand {
		if err := serveBare(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command-line settings.
type options struct {
	bin         string
	conns       int
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	scenarios   string
	halfLoad    bool
	large       bool
	largeActors int
	largeRounds int
	publication bool
	pubRounds   int
	policy      string
	logDir      string
	out         string
	keep        bool
	target      string
	profile     string
	cpuprofile  string
	xbin        string
	rate        float64
	rateConns   int
}

// outs returns the -out files.
func (o *options) outs() []string {
	if o.out == "" {
		return nil
	}
	return strings.Split(o.out, ",")
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bin, "bin", "", "flex-auth binary to measure (default: go build ./cmd/flex-auth into a temporary directory)")
	fs.IntVar(&o.conns, "conns", 32, "concurrent keep-alive connections")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured time of each run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each run's measurement")
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds of the scenarios; medians are reported")
	fs.StringVar(&o.scenarios, "scenarios", "abc", "scenarios to run, any of a, b, c (and x, with -xbin)")
	fs.BoolVar(&o.halfLoad, "half-load", true, "measure a's latency in an open loop at 50% of a's median maximum rate (needs a)")
	fs.Float64Var(&o.rate, "rate", 0, "open-loop rate of the half-load runs in requests per second (default: 50% of a's median maximum in this run)")
	fs.IntVar(&o.rateConns, "rate-conns", 0, "connections of the half-load runs (default: -conns)")
	fs.BoolVar(&o.large, "large", false, "also run the large-registry mode")
	fs.IntVar(&o.largeActors, "large-actors", 100000, "actors in the generated registry of the large mode")
	fs.IntVar(&o.largeRounds, "large-rounds", 1, "runs of the large mode")
	fs.BoolVar(&o.publication, "publication", false, "also run the publication mode: publish a -large-actors registry to a CNCF distribution registry on this machine, pull it with serve --source, serve it under load, publish another, restart from the cache")
	fs.IntVar(&o.pubRounds, "publication-rounds", 1, "runs of the publication mode")
	fs.StringVar(&o.policy, "policy", "examples/ops-warden/policy_package.md", "policy package served with the large registry")
	fs.StringVar(&o.logDir, "logdir", "", "directory for decision logs and generated files (default: a new temporary directory)")
	fs.StringVar(&o.out, "out", "", "also write the results to these `files` (comma-separated): .json for everything, .md for the Markdown tables")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	fs.StringVar(&o.profile, "profile", "", "instead of measuring, profile flex-auth (CPU and allocations) under the load of each of the scenarios a and b, into this `directory`")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write the load generator's own CPU profile to this `file` (to check that it is not the bottleneck)")
	fs.StringVar(&o.xbin, "xbin", "", "a second flex-auth `binary` (say, before a change) measured like a as scenario x, interleaved with the others; add x to -scenarios")
	fs.StringVar(&o.target, "target", "", "only load the flex-auth server already running at this `host:port` for -duration (for profiling it)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.conns < 1 || o.rounds < 1 || o.duration <= 0 || o.warmup < 0 {
		return nil, errors.New("-conns and -rounds must be at least 1, -duration positive, -warmup not negative")
	}
	for _, c := range o.scenarios {
		if !strings.ContainsRune("abcx", c) {
			return nil, fmt.Errorf("-scenarios %q: unknown scenario %q; want a, b, c or x", o.scenarios, c)
		}
		if c == 'x' && o.xbin == "" {
			return nil, errors.New("scenario x needs -xbin")
		}
	}
	for _, out := range o.outs() {
		if !strings.HasSuffix(out, ".json") && !strings.HasSuffix(out, ".md") {
			return nil, fmt.Errorf("-out %s: want a .json or .md file", out)
		}
	}
	return o, nil
}

// A bench is one invocation's state.
type bench struct {
	*options
	self string // this binary, re-executed for the bare handler
	dir  string
	w    io.Writer
	mix  []request // the example's request mix, built once
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	b := &bench{options: o, w: stdout}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if o.logDir == "" {
		if b.dir, err = os.MkdirTemp("", "flex-auth-bench-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(b.dir)
		}
	} else {
		b.dir = o.logDir
		if err := os.MkdirAll(b.dir, 0o755); err != nil {
			return err
		}
	}
	if o.target != "" {
		return b.loadTarget(ctx)
	}
	needsFlexAuth := o.large || o.publication || strings.ContainsAny(o.scenarios, "ab")
	if o.bin == "" && needsFlexAuth {
		if o.bin, err = buildFlexAuth(ctx, b.dir); err != nil {
			return err
		}
	}
	rep := &report{Machine: describeMachine(b.dir), Command: "go run ./scripts/bench " + strings.Join(args, " ")}
	fmt.Fprintf(b.w, "flex-auth: %s\nlogs and files: %s\n", o.bin, b.dir)

	if o.profile != "" {
		return b.profileRuns(ctx)
	}
	if o.scenarios != "" {
		if err := b.interleaved(ctx, rep); err != nil {
			return err
		}
	}
	if o.large {
		for i := range o.largeRounds {
			l, err := b.largeRun(ctx, i+1)
			if err != nil {
				return err
			}
			rep.Large = append(rep.Large, *l)
		}
	}
	if o.publication {
		for i := range o.pubRounds {
			p, err := b.publicationRun(ctx, i+1)
			if err != nil {
				return err
			}
			rep.Publication = append(rep.Publication, *p)
		}
	}
	rep.writeText(b.w)
	for _, out := range o.outs() {
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
// directory into dir.
func buildFlexAuth(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "flex-auth")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/flex-auth")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/flex-auth (run bench from the module root, or pass -bin): %w", err)
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
}

// argv returns the command line of a scenario's server.
func (b *bench) argv(scenario string) []string {
	logFile := filepath.Join(b.dir, "decisions-"+scenario+".log")
	switch scenario {
	case "a":
		return []string{b.bin, "serve", "--addr", "{addr}", "--log", logFile}
	case "b":
		return []string{b.bin, "serve", "--addr", "{addr}", "--log", logFile, "--log-sync"}
	case "x":
		return []string{b.xbin, "serve", "--addr", "{addr}", "--log", logFile}
	}
	return []string{b.self, bareCommand, "{addr}"}
}

func (b *bench) logFile(scenario string) string {
	if scenario == "c" {
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
	sc := []byte(b.scenarios)
	byScenario := map[string][]runResult{}
	for round := 1; round <= b.rounds; round++ {
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
	for _, s := range "abcx" {
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
	}
	if b.halfLoad && len(byScenario["a"]) > 0 {
		rate := med("a") / 2
		if b.rate > 0 {
			rate = b.rate
		}
		// The bare handler at the same rate tells what of a's tail is
		// flex-auth's and what is this machine's (two processes and their
		// wake-ups sharing two cores).
		half := []string{"a"}
		if len(byScenario["c"]) > 0 {
			half = append(half, "c")
		}
		runs := map[string][]runResult{}
		for round := 1; round <= b.rounds; round++ {
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
	status, body, err := get(b.target, "/v1/registry")
	if err != nil || status != 200 {
		return fmt.Errorf("GET %s/v1/registry: status %d, %v: %.200s", b.target, status, err, body)
	}
	snap, err := registry.Parse(body)
	if err != nil {
		return fmt.Errorf("GET %s/v1/registry: %w", b.target, err)
	}
	mix, err := buildMix(snap, "127.0.0.1", largeMixActors)
	if err != nil {
		return err
	}
	self0 := selfCPU()
	l := &load{addr: b.target, requests: mix, conns: b.conns, warmup: b.warmup, duration: b.duration, check: true}
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
	if b.bin == "" {
		var err error
		if snap, err = registry.Load(exampleRegistry); err != nil {
			return err
		}
	} else {
		srv, err := startServer(ctx, "flex-auth", []string{b.bin, "serve", "--addr", "{addr}"}, nil)
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
	b.mix, err = buildMix(snap, "127.0.0.1", 0)
	if err != nil {
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
	conns := b.conns
	if rate > 0 && b.rateConns > 0 {
		conns = b.rateConns
	}
	l := &load{
		addr: srv.addr, requests: b.mix, conns: conns,
		warmup: b.warmup, duration: b.duration, rate: rate,
		check: scenario != "c",
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
	if scenario != "c" {
		if status, body, err := get(srv.addr, "/metrics"); err == nil && status == 200 {
			handler, haveHandler = parseCheckHistogram(body)
		}
	}
	if err := srv.stop(); err != nil {
		return nil, err
	}
	r := newRunResult(scenario, round, l, res)
	if haveHandler {
		r.HandlerP50, r.HandlerP99 = handler.quantile(0.50), handler.quantile(0.99)
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
		if r.LogLines < r.Answered {
			return nil, fmt.Errorf("%s round %d: %d decisions answered but only %d lines in %s: the decision log lost answered decisions",
				scenario, round, r.Answered, r.LogLines, logFile)
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

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
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
