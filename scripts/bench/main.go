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
//	e  a's server asked the same requests as AuthZEN evaluations
//	f  the bare handler decoding those AuthZEN bodies
//	g  a's server asked them in AuthZEN batches of 100 evaluations
//	x  -xbin's server (say, before a change), run like a
//	y  -xbin's server run like b
//
// and prints each run, the medians, the ratios a/c, b/c, x/c, y/c, e/f,
// the decisions per second of g over e's and, with --log-sync, the
// decisions each flush covered. It then measures a's latency in an
// open loop at half of a's median maximum rate. With -large it also serves
// a generated 100,000-actor registry under load, records the server's
// resident memory, and reloads the registry with SIGHUP mid-run; and times
// AuthZEN searches over that registry. With -publication it publishes such a registry to
// an OCI registry on this machine and serves it with --source. With
// -convergence it runs ten replicas polling such a registry, counts
// their requests to it while nothing changes, then publishes a new pair
// under load spread over them and times each until it serves it, against
// the target of a poll interval and a second. The work lives in package
// bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/coulomb/flex-auth/bench"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == bench.BareCommand {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		err := bench.ServeBare(ctx, os.Args[2])
		stop()
		if err != nil {
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

func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, cpuprofile, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.Self, err = os.Executable(); err != nil {
		return err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return bench.Run(ctx, cfg, stdout)
}

// parseFlags returns the configuration the command line asks for, and the
// file for the load generator's own CPU profile.
func parseFlags(args []string, stderr io.Writer) (cfg bench.Config, cpuprofile string, err error) {
	var out string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Bin, "bin", "", "flex-auth binary to measure (default: go build ./cmd/flex-auth into a temporary directory)")
	fs.IntVar(&cfg.Conns, "conns", 32, "concurrent keep-alive connections")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "measured time of each run")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "unmeasured load before each run's measurement")
	fs.IntVar(&cfg.Rounds, "rounds", 5, "interleaved rounds of the scenarios; medians are reported")
	fs.StringVar(&cfg.Scenarios, "scenarios", "abc", "scenarios to run, any of a, b, c, e, f, g (and x and y, with -xbin)")
	fs.BoolVar(&cfg.HalfLoad, "half-load", true, "measure a's latency in an open loop at 50% of a's median maximum rate (needs a)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open-loop rate of the half-load runs in requests per second (default: 50% of a's median maximum in this run)")
	fs.IntVar(&cfg.RateConns, "rate-conns", 0, "connections of the half-load runs (default: -conns)")
	fs.BoolVar(&cfg.Large, "large", false, "also run the large-registry mode")
	fs.IntVar(&cfg.LargeActors, "large-actors", 100000, "actors in the generated registry of the large mode")
	fs.IntVar(&cfg.LargeRounds, "large-rounds", 1, "runs of the large mode")
	fs.BoolVar(&cfg.Publication, "publication", false, "also run the publication mode: publish a -large-actors registry to a CNCF distribution registry on this machine, pull it with serve --source, serve it under load, publish another, restart from the cache")
	fs.IntVar(&cfg.PublicationRounds, "publication-rounds", 1, "runs of the publication mode")
	fs.BoolVar(&cfg.Convergence, "convergence", false, "also run the convergence mode: -convergence-replicas replicas of serve --source polling a CNCF distribution registry on this machine, their idle requests to it counted, then a new publication under load spread over them, timed until each serves it")
	fs.IntVar(&cfg.ConvergenceRounds, "convergence-rounds", 1, "runs of the convergence mode")
	fs.IntVar(&cfg.ConvergenceReplicas, "convergence-replicas", 10, "replicas of the convergence mode")
	fs.DurationVar(&cfg.ConvergencePoll, "convergence-poll", 2*time.Second, "the replicas' --poll in the convergence mode")
	fs.DurationVar(&cfg.ConvergenceIdle, "convergence-idle", time.Minute, "how long the convergence mode counts the registry's requests with nothing new published (0: not at all)")
	fs.IntVar(&cfg.ConvergenceActors, "convergence-actors", 0, "generated actors in the convergence mode's registry, besides the example's")
	fs.StringVar(&cfg.Policy, "policy", "examples/ops-warden/policy_package.md", "policy package served with the large registry")
	fs.StringVar(&cfg.Dir, "logdir", "", "directory for decision logs and generated files (default: a new temporary directory)")
	fs.StringVar(&out, "out", "", "also write the results to these `files` (comma-separated): .json for everything, .md for the Markdown tables")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the temporary directory")
	fs.StringVar(&cfg.Profile, "profile", "", "instead of measuring, profile flex-auth (CPU and allocations) under the load of each of the scenarios a and b, into this `directory`")
	fs.StringVar(&cpuprofile, "cpuprofile", "", "write the load generator's own CPU profile to this `file` (to check that it is not the bottleneck)")
	fs.StringVar(&cfg.XBin, "xbin", "", "a second flex-auth `binary` (say, before a change) measured like a as scenario x and like b as scenario y, interleaved with the others; add x or y to -scenarios")
	fs.StringVar(&cfg.Target, "target", "", "only load the flex-auth server already running at this `host:port` for -duration (for profiling it)")
	if err := fs.Parse(args); err != nil {
		return cfg, "", err
	}
	if fs.NArg() > 0 {
		return cfg, "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if out != "" {
		cfg.Out = strings.Split(out, ",")
	}
	cfg.Command = strings.TrimSpace("go run ./scripts/bench " + strings.Join(args, " "))
	return cfg, cpuprofile, cfg.Check()
}
