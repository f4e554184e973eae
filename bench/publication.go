package bench

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/internal/testregistry"
	"github.com/coulomb/flex-auth/registry"
)

// publicationResult is what the publication mode measured.
type publicationResult struct {
	Actors        int   `json:"actors"`
	SnapshotBytes int64 `json:"snapshot_bytes"`
	// PublishMS is flex-auth publish's wall time: reading, checking and
	// testing the pair, signing, pushing.
	PublishMS float64 `json:"publish_ms"`
	// FirstPullMS is from starting flex-auth serve --source (no cache)
	// until /readyz answers: the pull, its verification and parse.
	FirstPullMS float64 `json:"first_pull_ms"`
	// RSSAtStart and PeakAtStart are VmRSS and VmHWM once ready.
	RSSAtStart  int64 `json:"rss_at_start_bytes"`
	PeakAtStart int64 `json:"peak_rss_at_start_bytes"`
	// Under load: throughput, p99 and resident size.
	RPS          float64 `json:"rps"`
	P99          float64 `json:"p99_us"`
	RSSUnderLoad int64   `json:"rss_under_load_bytes"`
	// UpdateMS is from a second publish returning until /healthz shows
	// its registry, at a 1s poll; PeakRSS the high-water mark over the
	// run, the update included.
	UpdateMS float64 `json:"update_visible_ms"`
	PeakRSS  int64   `json:"peak_rss_bytes"`
	Errors   int64   `json:"errors"`
	// CacheStartMS is from starting flex-auth serve with the registry
	// down until /readyz answers, serving --cache-dir's publication.
	CacheStartMS float64 `json:"cache_start_ms"`
}

// publicationPoll is the poll interval of the measured replica.
const publicationPoll = time.Second

// publicationRun publishes a generated registry of b.LargeActors actors
// (with the example's four, so that the policy's tests pass) to a CNCF
// distribution registry on this machine, starts a replica that pulls it,
// serves it under load, publishes another mid-run, and finally starts a
// replica from the cache with the registry stopped.
func (b *bench) publicationRun(ctx context.Context, round int) (*publicationResult, error) {
	o, err := b.startOCI(ctx, fmt.Sprintf("publication-%d", round))
	if err != nil {
		return nil, err
	}
	defer o.close()
	snapshot := func(extra string) (*registry.Snapshot, string, error) {
		s := o.snapshot(b.LargeActors, extra)
		path := filepath.Join(o.dir, "registry-"+extra+".json")
		return s, path, writeFileAtomic(path, s.Canonical())
	}
	first, firstPath, err := snapshot(fmt.Sprintf("agt-bench-first-%d", round))
	if err != nil {
		return nil, err
	}
	ref := "oci://" + o.reg.addr + "/bench/publication:large"
	res := &publicationResult{Actors: len(first.Actors), SnapshotBytes: int64(len(first.Canonical()))}
	t0 := time.Now()
	if err := o.publish(ctx, b.Bin, firstPath, b.Policy, ref); err != nil {
		return nil, err
	}
	res.PublishMS = ms(time.Since(t0))

	cache := filepath.Join(o.dir, "cache")
	logFile := filepath.Join(o.dir, "decisions.log")
	argv := []string{b.Bin, "serve", "--addr", "{addr}", "--source", ref, "--plain-http", "--verify-key", o.allowed,
		"--cache-dir", cache, "--poll", publicationPoll.String(), "--log", logFile}
	t0 = time.Now()
	srv, err := startServer(ctx, "flex-auth (publication)", argv, nil)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	res.FirstPullMS = ms(time.Since(t0))
	if res.RSSAtStart, res.PeakAtStart, err = memStatus(srv.pid()); err != nil {
		return nil, err
	}
	if d, err := healthzDigest(srv.addr); err != nil || d != first.Digest {
		return nil, fmt.Errorf("publication: /healthz digest %q (%v), want %s", d, err, first.Digest)
	}

	second, secondPath, err := snapshot(fmt.Sprintf("agt-bench-second-%d", round))
	if err != nil {
		return nil, err
	}
	// The mix asks about the actors both publications have: its answers
	// are the same from either.
	mix, err := buildMix(o.snapshot(b.LargeActors, ""), "127.0.0.1", largeMixActors)
	if err != nil {
		return nil, err
	}
	duration := max(b.Duration, 6*time.Second)
	onMeasure, updateErr := atWindowStart(func() error {
		waitUntil(ctx, time.Now().Add(duration/3))
		rss, _, err := memStatus(srv.pid())
		if err != nil {
			return err
		}
		res.RSSUnderLoad = rss
		if err := o.publish(ctx, b.Bin, secondPath, b.Policy, ref); err != nil {
			return err
		}
		published := time.Now()
		seen, err := waitDigest(ctx, srv.addr, second.Digest, 10*publicationPoll, time.Millisecond)
		res.UpdateMS = ms(seen.Sub(published))
		return err
	})
	l := &load{addr: srv.addr, requests: mix, conns: b.Conns, warmup: b.Warmup, duration: duration, check: true, onMeasure: onMeasure}
	lr, err := l.run(ctx)
	if err != nil {
		return nil, err
	}
	if err := <-updateErr; err != nil {
		return nil, fmt.Errorf("publication: update: %w", err)
	}
	res.RPS, res.P99, res.Errors = lr.rps(), us(lr.latency.percentile(0.99)), lr.errsTotal
	if _, res.PeakRSS, err = memStatus(srv.pid()); err != nil {
		return nil, err
	}
	if err := srv.stop(); err != nil {
		return nil, err
	}

	// A restart with the registry down serves the cache.
	o.reg.kill()
	t0 = time.Now()
	cached, err := startServer(ctx, "flex-auth (from the cache)", argv, nil)
	if err != nil {
		return nil, err
	}
	defer cached.kill()
	res.CacheStartMS = ms(time.Since(t0))
	if d, err := healthzDigest(cached.addr); err != nil || d != second.Digest {
		return nil, fmt.Errorf("publication: from the cache, /healthz digest %q (%v), want %s", d, err, second.Digest)
	}
	return res, cached.stop()
}

// An ociBench is what the modes that publish share: a distribution
// registry on this machine, a publisher's key and the allowed_signers
// file that trusts it, all in dir, and what a published registry needs.
type ociBench struct {
	dir          string
	reg          *server
	key, allowed string
	// pkg is the policy package's name; example the example registry,
	// whose actors every published registry holds, so that the package's
	// tests pass (publish runs them).
	pkg     string
	example *registry.Snapshot
}

// startOCI starts a distribution registry with its storage in a new
// directory, name, below the bench's, and makes a publisher's key.
func (b *bench) startOCI(ctx context.Context, name string) (*ociBench, error) {
	regBin, err := testregistry.Binary()
	if err != nil {
		return nil, fmt.Errorf("%s: the distribution registry: %w", name, err)
	}
	o := &ociBench{dir: filepath.Join(b.dir, name)}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	if o.pkg, err = policyPackageName(b.Policy); err == nil {
		o.example, err = registry.Load(exampleRegistry)
	}
	if err == nil {
		o.key, o.allowed, err = writeSigningKey(o.dir)
	}
	if err == nil {
		o.reg, err = startRegistry(ctx, regBin, o.dir)
	}
	if err != nil {
		os.RemoveAll(o.dir)
		return nil, err
	}
	return o, nil
}

// close stops the registry and removes the directory.
func (o *ociBench) close() {
	o.reg.kill()
	os.RemoveAll(o.dir)
}

// snapshot returns a registry of n generated actors, the example's, and
// extra when not empty.
func (o *ociBench) snapshot(n int, extra string) *registry.Snapshot {
	big := largeSnapshot(n, o.pkg, extra)
	return registry.New(big.Source, o.pkg, append(big.Actors, o.example.Actors...))
}

var publishedRef = regexp.MustCompile(`^oci://\S+@sha256:[0-9a-f]{64}\n$`)

// publish runs bin's publish of the registry and policy package files
// to ref, signed with the publisher's key.
func (o *ociBench) publish(ctx context.Context, bin, registryFile, policyFile, ref string) error {
	out, err := exec.CommandContext(ctx, bin, "publish", "--registry", registryFile, "--policy", policyFile, "--sign-key", o.key, "--plain-http", ref).Output()
	if err != nil || !publishedRef.Match(out) {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return fmt.Errorf("flex-auth publish: %v: %s%s", err, out, stderr)
	}
	return nil
}

// startRegistry starts the distribution registry on a free loopback port
// with its storage in dir.
func startRegistry(ctx context.Context, bin, dir string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "registry.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "storage"), addr)
	if err := os.WriteFile(config, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	s := &server{name: "registry", addr: addr, out: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve", config)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, _, err := get(addr, "/v2/"); err == nil && status == 200 {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("the registry exited: %v\n%s", s.err, s.out.String())
		case <-ctx.Done():
			s.kill()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("the registry does not answer on %s", addr)
		}
	}
}

// writeSigningKey writes a new Ed25519 OpenSSH private key and an
// allowed_signers file trusting it into dir.
func writeSigningKey(dir string) (key, allowed string, err error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "bench")
	if err != nil {
		return "", "", err
	}
	key, allowed = filepath.Join(dir, "publisher"), filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", "", err
	}
	return key, allowed, os.WriteFile(allowed, append([]byte("flex-auth "), ssh.MarshalAuthorizedKey(sshPub)...), 0o644)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
