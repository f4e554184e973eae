package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profileRuns profiles flex-auth under the closed-loop load, once per
// flex-auth scenario: it builds the command with the benchprof tag (which
// serves net/http/pprof on FLEX_AUTH_PPROF_ADDR), and during the measured
// window takes a CPU profile and an allocation profile of the window. The
// profiles go to b.Profile and their top entries to the output. Profiling
// costs throughput, so these runs are separate from the measured ones.
func (b *bench) profileRuns(ctx context.Context) error {
	if err := os.MkdirAll(b.Profile, 0o755); err != nil {
		return err
	}
	bin, err := buildFlexAuth(ctx, b.dir, "flex-auth-benchprof", "benchprof")
	if err != nil {
		return err
	}
	if b.mix == nil {
		if err := b.prepareMix(ctx); err != nil {
			return err
		}
	}
	for _, s := range []string{"a", "b"} {
		if !strings.Contains(b.Scenarios, s) {
			continue
		}
		if err := b.profileOnce(ctx, bin, s); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) profileOnce(ctx context.Context, bin, scenario string) error {
	pprofAddr, err := freeAddr()
	if err != nil {
		return err
	}
	argv := b.argv(scenario)
	argv[0] = bin
	os.Remove(b.logFile(scenario))
	srv, err := startServer(ctx, scenario+" (profiled)", argv, []string{"FLEX_AUTH_PPROF_ADDR=" + pprofAddr})
	if err != nil {
		return err
	}
	defer srv.kill()
	secs := max(int(b.Duration/time.Second), 1)
	type got struct {
		kind string
		data []byte
		err  error
	}
	results := make(chan got, 2)
	l := &load{
		addr: srv.addr, requests: b.mix, conns: b.Conns,
		warmup: b.Warmup, duration: time.Duration(secs)*time.Second + 500*time.Millisecond, check: true,
		onMeasure: func(start bool) {
			if !start {
				return
			}
			for _, kind := range []string{"profile", "allocs"} {
				go func() {
					status, body, err := getTimeout(pprofAddr, fmt.Sprintf("/debug/pprof/%s?seconds=%d", kind, secs), time.Duration(secs+30)*time.Second)
					if err == nil && status != 200 {
						err = fmt.Errorf("status %d: %.200s", status, body)
					}
					results <- got{kind, body, err}
				}()
			}
		},
	}
	res, err := l.run(ctx)
	if err != nil {
		return err
	}
	for range 2 {
		g := <-results
		if g.err != nil {
			return fmt.Errorf("profile %s: /debug/pprof/%s: %w", scenario, g.kind, g.err)
		}
		name := filepath.Join(b.Profile, map[string]string{"profile": "cpu", "allocs": "allocs"}[g.kind]+"-"+scenario+".pprof")
		if err := writeFileAtomic(name, g.data); err != nil {
			return err
		}
		fmt.Fprintf(b.w, "\n%s profile of %s (%.0f req/s while profiled): %s\n", g.kind, labels[scenario], res.rps(), name)
		args := []string{"tool", "pprof", "-top", "-nodecount=35", name}
		if g.kind == "allocs" {
			args = []string{"tool", "pprof", "-top", "-sample_index=alloc_space", "-nodecount=20", name}
		}
		top := exec.CommandContext(ctx, "go", args...)
		var stderr bytes.Buffer
		top.Stdout, top.Stderr = b.w, &stderr
		if err := top.Run(); err != nil {
			return fmt.Errorf("go tool pprof %s: %w\n%s", name, err, stderr.Bytes())
		}
	}
	if err := srv.stop(); err != nil {
		return err
	}
	os.Remove(b.logFile(scenario))
	return nil
}

// getTimeout performs one GET with a longer I/O deadline than round trips
// of the load get, for endpoints that answer after a while.
func getTimeout(addr, path string, timeout time.Duration) (int, []byte, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, nil, err
	}
	defer c.close()
	c.conn.SetDeadline(time.Now().Add(timeout))
	c.deadline = time.Now().Add(timeout)
	status, body, err := c.roundTrip(encodeRequest("GET", addr, path, "", nil))
	return status, append([]byte(nil), body...), err
}
