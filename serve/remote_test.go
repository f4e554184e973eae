package serve

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
	"github.com/coulomb/flex-auth/source"
)

// fakeRemote answers Fetch with what the test queued: an update, an
// error, or nothing new when the queue is empty. It records what serve
// told it.
type fakeRemote struct {
	mu      sync.Mutex
	answers []fakeAnswer
	fetches int
	forced  int
	served  []string
	refused []error
	// block, when set, holds Fetch until it is closed or ctx ends.
	block chan struct{}
}

type fakeAnswer struct {
	upd *source.Update
	err error
}

func (f *fakeRemote) Kind() string   { return "oci" }
func (f *fakeRemote) String() string { return "oci://127.0.0.1:5000/fake:prod" }

func (f *fakeRemote) Fetch(ctx context.Context, force bool) (*source.Update, error) {
	f.mu.Lock()
	f.fetches++
	if force {
		f.forced++
	}
	block := f.block
	var a fakeAnswer
	if len(f.answers) > 0 {
		a, f.answers = f.answers[0], f.answers[1:]
	}
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return a.upd, a.err
}

func (f *fakeRemote) queue(a ...fakeAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = append(f.answers, a...)
}

// update returns an update of snap with the example policy, tagged name
// (its "publication"), that reports back to f.
func (f *fakeRemote) update(t *testing.T, snap *registry.Snapshot, name string) *source.Update {
	t.Helper()
	pkg, err := policy.Parse("policy_package.md", fixture(t, examples.OpsWardenPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return &source.Update{Snapshot: snap, Package: pkg, RegistryName: name + " registry.json", PolicyName: name + " policy_package.md",
		Publication: source.PublicationInfo{Ref: name, Serial: 1},
		Served: func() {
			f.mu.Lock()
			f.served = append(f.served, name)
			f.mu.Unlock()
		},
		Refused: func(err error) {
			f.mu.Lock()
			f.refused = append(f.refused, err)
			f.mu.Unlock()
		}}
}

func fixtureSnapshot(t *testing.T) *registry.Snapshot {
	t.Helper()
	s, err := registry.Parse(fixture(t, examples.OpsWardenRegistry))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newRemoteServer serves from f with a reload timeout: a minute, where
// the test is not about it, so that a refresh is never cut short on a
// busy machine.
func newRemoteServer(t *testing.T, f *fakeRemote, timeout time.Duration) *Server {
	t.Helper()
	s, err := New(Options{Source: Source{Remote: f}, DecisionLog: &syncBuffer{}, Clock: fixedClock, ReloadTimeout: timeout, LogTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRemoteRefresh walks a remote source through what a poll can find:
// nothing new, a new pair, a pair that does not bind, a source that
// fails, and a cached pair served with a warning.
func TestRemoteRefresh(t *testing.T) {
	f := &fakeRemote{}
	first := fixtureSnapshot(t)
	f.queue(fakeAnswer{upd: f.update(t, first, "first")})
	s := newRemoteServer(t, f, time.Minute)
	ctx := context.Background()
	h := health(t, s)
	if h.Status != "ok" || h.Registry.Digest != first.Digest || h.Source.Kind != "oci" || h.Source.Location != f.String() ||
		h.Source.Poll != DefaultPoll.String() || h.Source.LastCheckAt == nil || h.Source.Publication.(map[string]any)["ref"] != "first" {
		t.Fatalf("after start-up: %+v", h)
	}

	// Nothing new: no swap, healthy.
	if err := s.refresh(ctx, false, false); err != nil {
		t.Fatal(err)
	}
	// A new pair.
	alt := altRegistry(t, "ops-warden/ssh-signing")
	f.queue(fakeAnswer{upd: f.update(t, alt, "second")})
	if err := s.refresh(ctx, false, false); err != nil {
		t.Fatal(err)
	}
	if got := decodeCheck(t, post(s, allowBody)); got.RegistryDigest != alt.Digest {
		t.Errorf("after the new pair: serving %s, want %s", got.RegistryDigest, alt.Digest)
	}
	// A pair that does not bind: refused, reported back, the last good
	// pair keeps serving.
	f.queue(fakeAnswer{upd: f.update(t, altRegistry(t, "someone/else"), "third")})
	err := s.refresh(ctx, false, false)
	if !source.IsRefused(err) || !errors.Is(err, policy.ErrPackageMismatch) {
		t.Errorf("a pair that does not bind: got %v", err)
	}
	h = health(t, s)
	if h.Status != "degraded" || h.Registry.Digest != alt.Digest || h.Reload.LastError == nil || !strings.Contains(*h.Reload.LastError, "is for another policy package than policy") || strings.Contains(*h.Reload.LastError, "someone/else") {
		t.Errorf("after the refusal: %+v", h)
	}
	// A source that cannot be reached.
	f.queue(fakeAnswer{err: errors.New("dial tcp 127.0.0.1:5000: connect: connection refused")})
	if err := s.refresh(ctx, false, false); err == nil || source.IsRefused(err) {
		t.Errorf("source down: got %v", err)
	}
	if h := health(t, s); h.Status != "degraded" || !strings.Contains(*h.Reload.LastError, "connection refused") {
		t.Errorf("source down: %+v", h)
	}
	// Back, with what is served: healthy again.
	if err := s.refresh(ctx, false, false); err != nil {
		t.Fatal(err)
	}
	if h := health(t, s); h.Status != "ok" || h.Registry.Digest != alt.Digest {
		t.Errorf("source back: %+v", h)
	}
	// SIGHUP forces.
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Join(f.served, ",") != "first,second" || len(f.refused) != 1 || f.forced != 2 {
		t.Errorf("served %v, refused %v, forced %d; want first and second served, third refused, two forced fetches (start-up and SIGHUP)", f.served, f.refused, f.forced)
	}
}

// TestRemoteStartUp: a source that fails at start-up is a start-up
// failure; one that gives a pair with a warning (the cache) starts
// degraded, saying why.
func TestRemoteStartUp(t *testing.T) {
	f := &fakeRemote{}
	f.queue(fakeAnswer{err: errors.New("connection refused")})
	if _, err := New(Options{Source: Source{Remote: f}, DecisionLog: &syncBuffer{}}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("source down at start-up: got %v", err)
	}
	upd := f.update(t, fixtureSnapshot(t), "cached")
	upd.Warning = errors.New("serving the cached publication: connection refused")
	f.queue(fakeAnswer{upd: upd})
	s := newRemoteServer(t, f, time.Minute)
	if h := health(t, s); h.Status != "degraded" || h.Reload.LastError == nil || !strings.Contains(*h.Reload.LastError, "serving the cached publication") {
		t.Errorf("started from the cache: %+v", h)
	}
	if got := decodeCheck(t, post(s, allowBody)); got.Effect != "allow" {
		t.Errorf("started from the cache: %+v, want an allow", got)
	}
	// The source is back with the same pair: healthy.
	if err := s.refresh(context.Background(), false, false); err != nil {
		t.Fatal(err)
	}
	if h := health(t, s); h.Status != "ok" {
		t.Errorf("source back: %+v", h)
	}
}

// TestRemoteStuck: a fetch that does not return within the reload timeout
// fails that poll, and does not hold the next one.
func TestRemoteStuck(t *testing.T) {
	f := &fakeRemote{}
	f.queue(fakeAnswer{upd: f.update(t, fixtureSnapshot(t), "first")})
	s := newRemoteServer(t, f, 50*time.Millisecond)
	f.mu.Lock()
	f.block = make(chan struct{})
	f.mu.Unlock()
	start := time.Now()
	err := s.refresh(context.Background(), false, false)
	if err == nil || !strings.Contains(err.Error(), "fetching from oci://127.0.0.1:5000/fake:prod: did not finish within the reload timeout (50ms)") {
		t.Errorf("stuck fetch: got %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the stuck poll took %s", took)
	}
	if got := decodeCheck(t, post(s, allowBody)); got.Effect != "allow" {
		t.Errorf("during a stuck poll: %+v", got)
	}
	f.mu.Lock()
	close(f.block)
	f.block = nil
	f.mu.Unlock()
	// The next poll is not about the timeout: 50ms is too little for a
	// refresh under -race on a busy machine. The stuck fetch reads the
	// timeout when it returns: change it once that has finished.
	waitFor(t, "the stuck fetch to finish", func() bool { return s.stuckJobs.Load() == 0 })
	s.reloadTimeout = time.Minute
	if err := s.refresh(context.Background(), false, false); err != nil {
		t.Errorf("the next poll: %v", err)
	}
}

// TestNextPoll: waits are at most one interval and at least four fifths
// of it while the source answers, back off while it fails (not while it
// refuses), and are spread.
func TestNextPoll(t *testing.T) {
	s := &Server{poll: 10 * time.Second}
	seen := map[time.Duration]bool{}
	for range 100 {
		d := s.nextPoll(nil)
		if d > 10*time.Second || d < 8*time.Second {
			t.Fatalf("wait %s, want 8s to 10s", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("%d different waits of 100, want them spread", len(seen))
	}
	if d := s.nextPoll(&source.RefusedError{Err: errors.New("bad")}); d > 10*time.Second {
		t.Errorf("after a refusal: %s, want no back-off", d)
	}
	down := errors.New("down")
	want := []time.Duration{20, 40, 80, 80, 80}
	for i, w := range want {
		d := s.nextPoll(down)
		if w *= time.Second; d > w || d < w*4/5 {
			t.Errorf("failure %d: wait %s, want %s less at most a fifth", i+1, d, w)
		}
	}
	if d := s.nextPoll(nil); d > 10*time.Second {
		t.Errorf("after recovering: %s", d)
	}
	long := &Server{poll: 10 * time.Minute}
	if d := long.nextPoll(down); d > 10*time.Minute {
		t.Errorf("a 10-minute interval failing: %s, want no more than the interval", d)
	}
	mid := &Server{poll: time.Minute}
	for range 5 {
		if d := mid.nextPoll(down); d > maxPollBackoff {
			t.Errorf("a 1-minute interval failing: %s, want at most %s", d, maxPollBackoff)
		}
	}
}
