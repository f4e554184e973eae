// Command chaos runs flex-auth through faults under load and checks that
// no decision a client received is missing from the decision log. Run it
// from the module root:
//
//	go run ./scripts/chaos                 # 30 seconds
//	go run ./scripts/chaos -duration 5s    # CI-sized
//
// It builds flex-auth (or takes -bin), serves a copy of the ops-warden
// example with --watch, sends load from -workers workers, and cycles
// through a reload storm, registry changes and corruptions (truncated,
// invalid, empty, deleted, swapped by symlink), a restore, a decision log
// that cannot be written, and SIGKILL with a restart; then it stops the
// server and verifies the log against what the clients received, and its
// hash chain (as flex-auth log verify does). It prints a line per phase
// and a summary ending in "hash chain: intact (...)", "lost: N" and
// "unlogged allows: N", and exits 1 unless the chain is intact, both are
// 0, no request failed outside a fault that allows it, and the server
// shut down cleanly. The work lives in e2e/chaos.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coulomb/flex-auth/e2e/chaos"
)

func main() {
	var cfg chaos.Config
	flag.StringVar(&cfg.Binary, "bin", "", "flex-auth binary to test (default: build ./cmd/flex-auth)")
	flag.DurationVar(&cfg.Duration, "duration", 30*time.Second, "keep cycling through the faults this long")
	flag.IntVar(&cfg.Workers, "workers", 4, "concurrent clients")
	flag.StringVar(&cfg.Dir, "dir", "", "directory for the registry, policy and decision log (default: a temporary one)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the temporary directory, for a look at the decision log")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, cfg))
}

func run(ctx context.Context, cfg chaos.Config) int {
	if cfg.Binary == "" {
		dir, err := os.MkdirTemp("", "flex-auth-chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		defer os.RemoveAll(dir)
		cfg.Binary = filepath.Join(dir, "flex-auth")
		build := exec.Command("go", "build", "-o", cfg.Binary, "github.com/coulomb/flex-auth/cmd/flex-auth")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: go build ./cmd/flex-auth:", err)
			return 2
		}
	}
	cfg.Out = os.Stdout
	sum, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println()
	if err := sum.Write(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if cfg.Keep {
		fmt.Println("files kept in", sum.Dir)
	}
	if !sum.OK() {
		return 1
	}
	return 0
}
