package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/coulomb/flex-auth/registry"
)

// largeMixActors is how many of the large registry's actors the request
// mix covers, spread evenly from first to last (five requests each).
const largeMixActors = 2000

// largeRun serves a generated registry of b.LargeActors actors under the
// closed-loop load, and halfway through the measured window replaces the
// registry file (atomically, with one actor added, so that no decision of
// the mix changes) and sends SIGHUP. It records how long the new digest
// took to show on /healthz, the requests that failed, and the server's
// resident memory.
func (b *bench) largeRun(ctx context.Context, round int) (*largeResult, error) {
	pkg, err := policyPackageName(b.Policy)
	if err != nil {
		return nil, err
	}
	regFile := filepath.Join(b.dir, "large-registry.json")
	logFile := filepath.Join(b.dir, "decisions-large.log")
	os.Remove(logFile)
	base := largeSnapshot(b.LargeActors, pkg, "")
	canon := base.Canonical()
	if err := writeFileAtomic(regFile, canon); err != nil {
		return nil, err
	}
	next := largeSnapshot(b.LargeActors, pkg, fmt.Sprintf("agt-bench-reload-%d", round))
	nextCanon := next.Canonical()
	mix, err := buildMix(base, "127.0.0.1", largeMixActors)
	if err != nil {
		return nil, err
	}

	t0 := time.Now()
	srv, err := startServer(ctx, "flex-auth (large)", []string{
		b.Bin, "serve", "--addr", "{addr}", "--registry", regFile, "--policy", b.Policy, "--log", logFile,
	}, nil)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	res := &largeResult{
		Actors: b.LargeActors, SnapshotBytes: int64(len(canon)),
		StartupMS: float64(time.Since(t0)) / float64(time.Millisecond),
		Conns:     b.Conns,
	}
	if _, res.PeakAtStart, err = memStatus(srv.pid()); err != nil {
		return nil, err
	}
	if d, err := healthzDigest(srv.addr); err != nil || d != base.Digest {
		return nil, fmt.Errorf("large: /healthz digest %q (%v), want %s", d, err, base.Digest)
	}

	duration := max(b.Duration, 4*time.Second)
	var sigAt, seenAt time.Time
	onMeasure, reloadErr := atWindowStart(func() error {
		waitUntil(ctx, time.Now().Add(duration/2))
		rss, peak, err := memStatus(srv.pid())
		if err != nil {
			return err
		}
		res.RSSBeforeReload, res.PeakBeforeReload = rss, peak
		if err := writeFileAtomic(regFile, nextCanon); err != nil {
			return err
		}
		sigAt = time.Now()
		if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return err
		}
		seenAt, err = waitDigest(ctx, srv.addr, next.Digest, 10*time.Second, time.Millisecond)
		return err
	})
	l := &load{
		addr: srv.addr, requests: mix, conns: b.Conns,
		warmup: b.Warmup, duration: duration, check: true,
		onMeasure: onMeasure,
	}
	lr, err := l.run(ctx)
	if err != nil {
		return nil, err
	}
	if err := <-reloadErr; err != nil {
		return nil, fmt.Errorf("large: reload: %w", err)
	}
	_, peak, err := memStatus(srv.pid())
	if err != nil {
		return nil, err
	}
	if err := srv.stop(); err != nil {
		return nil, err
	}
	res.PeakRSS = peak
	res.Seconds = lr.window.Seconds()
	res.RPS = lr.rps()
	res.P50 = us(lr.latency.percentile(0.50))
	res.P99 = us(lr.latency.percentile(0.99))
	res.Max = us(time.Duration(lr.latency.max))
	res.ReloadMS = float64(seenAt.Sub(sigAt)) / float64(time.Millisecond)
	res.Errors = lr.errsTotal
	if len(lr.errKinds) > 0 {
		res.ErrorKinds = lr.errKinds
	}
	for _, e := range lr.events {
		if !e.at.Before(sigAt) && !e.at.After(seenAt.Add(time.Second)) {
			res.ReloadErrors++
		}
	}
	res.Answered, res.FirstError = lr.okTotal, lr.firstError()
	if res.LogLines, err = countLines(logFile); err != nil {
		return nil, err
	}
	if res.LogLines < res.Answered {
		return nil, fmt.Errorf("large: %d decisions answered but only %d lines in %s", res.Answered, res.LogLines, logFile)
	}
	os.Remove(logFile)
	return res, nil
}

// healthzDigest returns the registry digest /healthz reports.
func healthzDigest(addr string) (string, error) {
	status, body, err := get(addr, "/healthz")
	if err != nil {
		return "", err
	}
	return parseHealthz(status, body)
}

// parseHealthz returns the registry digest of a /healthz answer.
func parseHealthz(status int, body []byte) (string, error) {
	if status != 200 {
		return "", fmt.Errorf("GET /healthz: status %d", status)
	}
	var h struct {
		Registry struct {
			Digest string `json:"digest"`
		} `json:"registry"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return "", fmt.Errorf("GET /healthz: %w", err)
	}
	return h.Registry.Digest, nil
}

// waitDigest polls /healthz on one keep-alive connection, every
// interval, until it reports digest, and returns when it first did.
func waitDigest(ctx context.Context, addr, digest string, timeout, every time.Duration) (time.Time, error) {
	c, err := dial(addr)
	if err != nil {
		return time.Time{}, err
	}
	defer c.close()
	probe := encodeRequest("GET", addr, "/healthz", "", nil)
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		status, body, err := c.roundTrip(probe)
		now := time.Now()
		if err != nil {
			c.redial()
		} else if d, err := parseHealthz(status, body); err == nil && d == digest {
			return now, nil
		}
		if now.After(deadline) {
			return time.Time{}, fmt.Errorf("/healthz did not report %s within %v", digest, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// policyPackageName returns the package name in a policy package's front
// matter, so that the generated registry names the policy it is served
// with.
func policyPackageName(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("policy for the large mode: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan() && line < 50; line++ {
		if v, ok := strings.CutPrefix(sc.Text(), "package:"); ok {
			name := strings.Trim(strings.TrimSpace(v), `"'`)
			if err := registry.CheckPackageName(name); err != nil {
				return "", fmt.Errorf("%s:%d: %w", path, line+1, err)
			}
			return name, nil
		}
	}
	return "", fmt.Errorf("%s: no \"package:\" line in the front matter", path)
}
