package e2e

// A decision log, or a reload, that blocks for good: a FIFO whose reader
// stopped reading, a file system that stopped answering (a FUSE file
// system the test serves and hangs, as a network mount hangs), a log path
// swapped for a FIFO before SIGHUP, a SIGHUP while the log's file system
// hangs. No request waits longer than
// --log-timeout, none gets an allow, goroutines and memory stay bounded
// under a flood, later reloads are not held up, SIGTERM ends the process
// within --shutdown-timeout, and all recovers when the file does.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/e2e/chaos"
)

// logTimeout is the --log-timeout of these tests.
const logTimeout = time.Second

// margin is how much later than a configured timeout the tests accept
// what the timeout ends: process scheduling, not waiting. Measured on a
// loaded 2-core machine running the other packages' race-built tests,
// the stuck write and the stuck reload end 1ms to 0.2s after their
// timeout; the margin leaves room for a machine busier than that. What
// the bounds guard against is a request, a reload or a shutdown that
// waits for what is stuck, which never ends, and fails at the margin or
// at waitTimeout, whichever comes first; the tests also check that the
// timeout, not something earlier, ended it.
const margin = 5 * time.Second

var allowRequest = checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 24}}

// A stuckLog makes the decision log's writes block for good, and lets
// them go on again.
type stuckLog struct {
	name string
	// prepare runs before the server starts: it points s.Log at the
	// file to hang.
	prepare func(t *testing.T, s *server)
	// stick makes writes block from now on; unstick lets them go on.
	stick, unstick func(t *testing.T)
	// logged returns what the server wrote, once it holds want.
	logged func(t *testing.T, want string) []byte
}

// hungFSLog is a log file on a file system that stops answering: the
// write(2) blocks in the kernel, holding a thread.
func hungFSLog() stuckLog {
	var f *hungFile
	return stuckLog{
		name: "file on a hung file system",
		prepare: func(t *testing.T, s *server) {
			h := mountHungFS(t, map[string][]byte{"decisions.jsonl": nil})
			f, s.Log = h.File("decisions.jsonl"), h.Path("decisions.jsonl")
		},
		stick:   func(t *testing.T) { f.hang() },
		unstick: func(t *testing.T) { f.release() },
		logged: func(t *testing.T, want string) []byte {
			waitData(t, f.Data, want)
			return f.Data()
		},
	}
}

// fifoLog is a FIFO whose reader stops reading: once the pipe is full,
// the write waits in Go's poller.
func fifoLog() stuckLog {
	var r *pausableReader
	return stuckLog{
		name: "FIFO whose reader stopped reading",
		prepare: func(t *testing.T, s *server) {
			s.Log = filepath.Join(s.Dir, "decisions.pipe")
			r = openPausableReader(t, s.Log)
		},
		stick:   func(t *testing.T) { r.pause() },
		unstick: func(t *testing.T) { r.resume() },
		logged: func(t *testing.T, want string) []byte {
			waitData(t, r.data, want)
			return r.data()
		},
	}
}

// stdoutPipeLog is --log - with the server's standard output a pipe to a
// log shipper that stops reading: the descriptor is a blocking one, so
// the write(2) blocks in the kernel, holding a thread.
func stdoutPipeLog() stuckLog {
	var r *pausableReader
	return stuckLog{
		name: "stdout piped to a log shipper that stopped reading",
		prepare: func(t *testing.T, s *server) {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pw.Close() })
			s.Log, s.Stdout = "-", pw
			r = newPausableReader(t, pr)
		},
		stick:   func(t *testing.T) { r.pause() },
		unstick: func(t *testing.T) { r.resume() },
		logged: func(t *testing.T, want string) []byte {
			waitData(t, r.data, want)
			return r.data()
		},
	}
}

// waitData waits until data() holds want.
func waitData(t *testing.T, data func() []byte, want string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(string(data()), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the decision log does not hold %q within %s; it holds:\n%s", want, waitTimeout, data())
		}
		time.Sleep(5 * time.Millisecond) // polling a copy in progress, with a deadline
	}
}

// A pausableReader reads a FIFO the way a log shipper does, until it is
// paused: then the pipe, shrunk to one page, fills after a dozen lines.
type pausableReader struct {
	mu     sync.Mutex
	buf    []byte
	paused chan struct{} // non-nil while paused; closed to resume
	f      *os.File
}

func openPausableReader(t *testing.T, fifo string) *pausableReader {
	t.Helper()
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR: the server's open finds a reader, and reads never see end
	// of file. Nonblocking: Close wakes a read in progress.
	fd, err := syscall.Open(fifo, syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return newPausableReader(t, os.NewFile(uintptr(fd), fifo))
}

// newPausableReader reads the pipe f, shrunk to one page.
func newPausableReader(t *testing.T, f *os.File) *pausableReader {
	t.Helper()
	const fSetPipeSz = 1031
	rc, err := f.SyscallConn() // not Fd, which would make reads blocking
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) {
		if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, 4096); e != 0 {
			t.Logf("F_SETPIPE_SZ: %v; the pipe keeps its size", e)
		}
	})
	r := &pausableReader{f: f}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			r.mu.Lock()
			paused := r.paused
			r.mu.Unlock()
			if paused != nil {
				<-paused
			}
			n, err := r.f.Read(buf)
			r.mu.Lock()
			r.buf = append(r.buf, buf[:n]...)
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		r.resume()
		r.f.Close()
		<-done
	})
	return r
}

func (r *pausableReader) pause() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.paused == nil {
		r.paused = make(chan struct{})
	}
}

func (r *pausableReader) resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.paused != nil {
		close(r.paused)
		r.paused = nil
	}
}

func (r *pausableReader) data() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.buf...)
}

// timedCheck sends the allow request and returns the answer and how long
// it took.
func (s *server) timedCheck() (*reply, time.Duration) {
	start := time.Now()
	r := s.check(allowRequest)
	return r, time.Since(start)
}

// received decodes a 200 answer into what the log check needs.
func received(t *testing.T, r *reply) chaos.Received {
	t.Helper()
	var d client.Decision
	if err := json.Unmarshal(r.Body, &d); err != nil {
		t.Fatalf("decision %s: %v", r.Body, err)
	}
	if d.Effect != "allow" {
		t.Fatalf("got %s %s, want an allow", d.Effect, d.Reason)
	}
	return chaos.Received{ID: d.ID, Effect: d.Effect, Reason: d.Reason, Policy: d.Policy, PolicyDigest: d.PolicyDigest, RegistryDigest: d.RegistryDigest}
}

// metricValue returns the value of a gauge or counter without labels.
func metricValue(t *testing.T, s *server, name string) float64 {
	t.Helper()
	f, ok := metricFamilies(t, s.do("GET", "/metrics", "", nil).Body)[name]
	if !ok || len(f.GetMetric()) != 1 {
		t.Fatalf("/metrics has no %s", name)
	}
	m := f.GetMetric()[0]
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// stuckClients is how many clients flood a stuck log; FLEXAUTH_E2E_CLIENTS
// changes it.
func stuckClients(t *testing.T) int {
	if v := os.Getenv("FLEXAUTH_E2E_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("FLEXAUTH_E2E_CLIENTS=%q: want a positive number", v)
		}
		return n
	}
	return 1000
}

// flood has clients, each on a keep-alive connection of its own, send
// allow requests for d, and returns the most goroutines and resident
// memory the server had meanwhile, and the slowest answer. Every answer
// must be 503 decision_log_unavailable.
//
// How fast answers come is not what the flood checks (the requests
// before it measure that): a thousand clients that each send again as
// soon as they are answered queue at the server, and each waits for as
// many answers as there are clients before it. On a loaded 2-core
// machine the server answers a few hundred a second, so the average
// answer takes seconds. A request still unanswered after waitTimeout is
// one waiting for the stuck write, and fails the test.
func flood(t *testing.T, s *server, clients int, d time.Duration) (requests int64, goroutines float64, rss int64, slowest time.Duration) {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: waitTimeout}
	body, _ := json.Marshal(allowRequest)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var sent, failed atomic.Int64
	var bad atomic.Pointer[string]
	var mu sync.Mutex // guards slowest
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var mine time.Duration
			defer func() {
				mu.Lock()
				slowest = max(slowest, mine)
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				start := time.Now()
				resp, err := hc.Post(s.URL+"/v1/check", "application/json", strings.NewReader(string(body)))
				if err != nil {
					msg := err.Error()
					bad.Store(&msg)
					failed.Add(1)
					return
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mine = max(mine, time.Since(start))
				sent.Add(1)
				if resp.StatusCode != 503 || !strings.Contains(string(data), "decision_log_unavailable") {
					msg := fmt.Sprintf("%d %s", resp.StatusCode, data)
					bad.Store(&msg)
					failed.Add(1)
				}
			}
		})
	}
	for ctx.Err() == nil {
		goroutines = max(goroutines, metricValue(t, s, "go_goroutines"))
		r, _ := memory(t, s)
		rss = max(rss, r)
		time.Sleep(50 * time.Millisecond) // sampling while the flood runs
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("flood of a stuck log: %d of %d answers were not 503 decision_log_unavailable, for example: %s", n, sent.Load(), *bad.Load())
	}
	return sent.Load(), goroutines, rss, slowest
}

// TestStuckDecisionLog makes decision log writes block for good: the
// request whose write blocks is answered 503 within --log-timeout, later
// ones at once; /healthz is degraded and says why; a flood of clients
// keeps the server's goroutines and memory bounded and gets no allow; when
// the write returns, decisions are given again, and every decision in the
// log that no client was given is named by a not_given record.
func TestStuckDecisionLog(t *testing.T) {
	skipShort(t)
	t.Parallel()
	for _, l := range []stuckLog{hungFSLog(), fifoLog(), stdoutPipeLog()} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			runStuckLog(t, l)
		})
	}
}

func runStuckLog(t *testing.T, l stuckLog) {
	s := newServer(t)
	l.prepare(t, s)
	s.start(t, s.serveArgs("--log-timeout", logTimeout.String())...)
	var got []chaos.Received
	for range 5 {
		r := s.check(allowRequest)
		if r.Status != 200 {
			t.Fatalf("before the log is stuck: got %d %s", r.Status, r.Body)
		}
		got = append(got, received(t, r))
	}

	l.stick(t)
	// Decisions until the log is stuck (a FIFO takes a dozen lines before
	// its pipe is full): the first 503 is a request whose own handler is
	// blocked writing the log.
	var first time.Duration
	for i := 0; first == 0; i++ {
		if i == 1000 {
			t.Fatal("no 503 after 1000 requests to a stuck log")
		}
		r, took := s.timedCheck()
		if r.Status == 200 {
			got = append(got, received(t, r))
			continue
		}
		wantEnvelope(t, "the request whose log write is stuck", r, 503, "decision_log_unavailable", s)
		first = took
	}
	if first < logTimeout || first > logTimeout+margin {
		t.Errorf("the request whose log write is stuck was answered after %s, want after --log-timeout %s (and within %s more)", first, logTimeout, margin)
	}
	// Stuck: refused at once.
	var took []time.Duration
	for range 21 {
		r, d := s.timedCheck()
		wantEnvelope(t, "a request to a stuck log", r, 503, "decision_log_unavailable", s)
		took = append(took, d)
	}
	slices.Sort(took)
	if median := took[len(took)/2]; median >= logTimeout/2 {
		t.Errorf("requests to a stuck log: answered after %s (median), want at once, not after --log-timeout %s", median, logTimeout)
	}
	slowest := took[len(took)-1]
	h := s.health()
	if str(h, "status") != "degraded" || !strings.Contains(str(h, "decision_log.last_error"), "has not returned") {
		t.Errorf("/healthz while the log is stuck: got %v, want degraded with the stuck write", h)
	}
	if v := metricValue(t, s, "flexauth_decision_log_stuck"); v != 1 {
		t.Errorf("flexauth_decision_log_stuck while stuck: got %v, want 1", v)
	}

	clients := stuckClients(t)
	_, rssBefore := memory(t, s)
	requests, goroutines, rss, floodSlowest := flood(t, s, clients, 3*time.Second)
	// net/http runs a connection's requests on one goroutine, and reads
	// ahead on a second while a request is in its handler.
	if goroutines > float64(2*clients+100) {
		t.Errorf("server goroutines under %d clients against a stuck log: %v, want at most two a connection and a few more", clients, goroutines)
	}
	if rss > 512<<20 {
		t.Errorf("server resident memory under %d clients against a stuck log: %d MiB, want bounded", clients, rss>>20)
	}
	t.Logf("%s: first 503 after %s (--log-timeout %s), then at most %s; %d clients sent %d requests in 3s, all 503, the slowest after %s: server goroutines at most %v, RSS at most %d MiB (peak before %d MiB)",
		l.name, first.Round(time.Millisecond), logTimeout, slowest.Round(time.Millisecond), clients, requests, floodSlowest.Round(time.Millisecond), goroutines, rss>>20, rssBefore>>20)

	l.unstick(t)
	s.waitFor("decisions given again", func() bool {
		r := s.check(allowRequest)
		if r.Status == 200 {
			got = append(got, received(t, r))
			return true
		}
		return false
	})
	for range 5 {
		r := s.check(allowRequest)
		if r.Status != 200 {
			t.Fatalf("after the log recovered: got %d %s", r.Status, r.Body)
		}
		got = append(got, received(t, r))
	}
	if h := s.health(); str(h, "status") != "ok" || path(h, "decision_log.last_error") != nil {
		t.Errorf("/healthz after the log recovered: got %v, want ok", h)
	}
	if v := metricValue(t, s, "flexauth_decision_log_stuck"); v != 0 {
		t.Errorf("flexauth_decision_log_stuck after recovery: got %v, want 0", v)
	}

	log := chaos.ReadLog(s.Log, l.logged(t, got[len(got)-1].ID))
	v := log.Verify(got)
	if !v.OK() || v.Extra != 0 || v.Withdrawn == 0 || len(log.Torn) != 0 {
		t.Errorf("decision log against the answers: %s; torn lines %v; want every decision received logged, and the one written late marked not given", v, log.Torn)
	}
}

// TestShutdownWithStuckLog sends SIGTERM while a decision log write is
// stuck: the process ends within --shutdown-timeout, saying the log did
// not flush.
func TestShutdownWithStuckLog(t *testing.T) {
	skipShort(t)
	t.Parallel()
	l := fifoLog()
	s := newServer(t)
	l.prepare(t, s)
	const shutdown = 2 * time.Second
	s.start(t, s.serveArgs("--log-timeout", logTimeout.String(), "--shutdown-timeout", shutdown.String())...)
	l.stick(t)
	s.waitFor("the log to be stuck", func() bool { return s.check(allowRequest).Status == 503 })
	start := time.Now()
	s.signal(sigterm)
	code := s.wait()
	took := time.Since(start)
	if took > shutdown+margin {
		t.Errorf("SIGTERM with a stuck decision log: exited after %s, want within --shutdown-timeout %s", took, shutdown)
	}
	if code != 1 || !strings.Contains(s.stderr.String(), "stuck") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 saying the log is stuck", code, s.stderr)
	}
	t.Logf("SIGTERM to exit with a stuck decision log: %s (--shutdown-timeout %s)", took.Round(time.Millisecond), shutdown)
}

// TestReopenLogSwappedForFIFO swaps the decision log for a FIFO that no
// process reads, then sends SIGHUP: reopening does not wait for a reader
// (open(2) would block), the reload completes, /healthz says the log was
// not reopened, decisions go on to the file opened before; and a regular
// file put back is reopened on the next SIGHUP.
func TestReopenLogSwappedForFIFO(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	before := received(t, s.check(allowRequest))
	old := s.Log + ".old"
	if err := os.Link(s.Log, old); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(s.Dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fifo, s.Log); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	s.signal(sighup)
	h := s.waitReloaded(since, "degraded")
	if path(h, "reload.last_error") != nil || !strings.Contains(str(h, "decision_log.last_error"), "reopen") {
		t.Errorf("/healthz after SIGHUP with the log swapped for a FIFO: got %v, want the reload done and the reopen failure", h)
	}
	during := received(t, s.check(allowRequest))

	if err := os.Remove(s.Log); err != nil {
		t.Fatal(err)
	}
	since = time.Now()
	s.signal(sighup)
	if h := s.waitReloaded(since, "ok"); path(h, "decision_log.last_error") != nil {
		t.Errorf("/healthz after the log file is back: got %v, want ok", h)
	}
	after := received(t, s.check(allowRequest))
	if v := chaos.ReadLog(old, readFile(t, old)).Verify([]chaos.Received{before, during}); !v.OK() {
		t.Errorf("the file opened first: %s", v)
	}
	if v := chaos.ReadLog(s.Log, readFile(t, s.Log)).Verify([]chaos.Received{after}); !v.OK() {
		t.Errorf("the file reopened: %s", v)
	}
}

// TestStuckReload hangs the registry's file system during a reload: the
// reload fails after --reload-timeout (degraded, the last good pair still
// serving), a later SIGHUP starts a reload at once rather than queue
// behind the stuck one, what the stuck reads return at last is discarded,
// a reload after that works, and SIGTERM with a reload stuck ends the
// process within --shutdown-timeout.
func TestStuckReload(t *testing.T) {
	skipShort(t)
	t.Parallel()
	h := mountHungFS(t, map[string][]byte{"registry.json": readFile(t, fixtureRegistry)})
	reg := h.File("registry.json")
	s := newServer(t)
	s.Registry = h.Path("registry.json")
	const reloadTimeout, shutdown = time.Second, 2 * time.Second
	s.start(t, s.serveArgs("--reload-timeout", reloadTimeout.String(), "--shutdown-timeout", shutdown.String())...)
	digest := str(s.health(), "registry.digest")

	entered := reg.hang()
	since := time.Now()
	s.signal(sighup)
	waitClosed(t, entered, "the reload to block reading the registry")
	hz := s.waitReloaded(since, "degraded")
	failedAfter := time.Since(since)
	if e := str(hz, "reload.last_error"); !strings.Contains(e, "reload timeout") {
		t.Errorf("reload.last_error: got %q, want it to say the reload did not finish within the reload timeout", e)
	}
	if failedAfter < reloadTimeout || failedAfter > reloadTimeout+margin {
		t.Errorf("the stuck reload was reported after %s, want after --reload-timeout %s (and within %s more)", failedAfter, reloadTimeout, margin)
	}
	if r := received(t, s.check(allowRequest)); r.RegistryDigest != digest {
		t.Errorf("decision during the stuck reload from registry %s, want the last good %s", r.RegistryDigest, digest)
	}

	// A later SIGHUP is not queued behind the stuck reload: it runs (and
	// fails the same way while the file system hangs).
	since = time.Now()
	s.signal(sighup)
	s.waitReloaded(since, "degraded")

	// The stuck reads return, with a registry nobody asked to load any
	// more: what they read is discarded.
	alt := withBridgeTTL(t, loadFixture(t), 12)
	reg.SetData(alt.Canonical())
	reg.release()
	if s.waitStderr(regexp.MustCompile(`(?s)discarded.*discarded`)) == nil {
		t.Fatalf("no log line saying the two stuck reloads' reads were discarded; stderr:\n%s", s.stderr)
	}
	if d := str(s.health(), "registry.digest"); d != digest {
		t.Errorf("after the stuck reloads returned: serving %s, want still %s", d, digest)
	}
	since = time.Now()
	s.signal(sighup)
	if d := str(s.waitReloaded(since, "ok"), "registry.digest"); d != alt.Digest {
		t.Errorf("a reload after the file system recovered: serving %s, want %s", d, alt.Digest)
	}

	took := sigtermWhileHung(t, s, reg, "the reload blocks reading the registry", shutdown)
	t.Logf("stuck reload reported after %s (--reload-timeout %s); SIGTERM to exit with a reload stuck: %s (--shutdown-timeout %s)",
		failedAfter.Round(time.Millisecond), reloadTimeout, took.Round(time.Millisecond), shutdown)
}

// TestReopenLogOnHungFileSystem sends SIGHUP while the decision log's file
// system has stopped answering, so that reopening the log blocks in
// open(2) (as logrotate's SIGHUP does when a network mount hangs): the
// reload still serves the new registry within --reload-timeout, /healthz
// says the log was not reopened, a later SIGHUP is not held up behind the
// stuck open, and once the file system answers decisions are given and
// logged and the next SIGHUP reopens the log. SIGTERM with a reopen stuck
// ends the process within --shutdown-timeout.
func TestReopenLogOnHungFileSystem(t *testing.T) {
	skipShort(t)
	t.Parallel()
	h := mountHungFS(t, map[string][]byte{"decisions.jsonl": nil})
	logFile := h.File("decisions.jsonl")
	s := newServer(t)
	s.Log = h.Path("decisions.jsonl")
	const reloadTimeout, shutdown = 2 * time.Second, 2 * time.Second
	s.start(t, s.serveArgs("--log-timeout", logTimeout.String(), "--reload-timeout", reloadTimeout.String(), "--shutdown-timeout", shutdown.String())...)
	got := []chaos.Received{received(t, s.check(allowRequest))}

	fixture := loadFixture(t)
	alt := withBridgeTTL(t, fixture, 12)
	entered := logFile.hang()
	writeFile(t, s.Registry, alt.Canonical())
	since := time.Now()
	s.signal(sighup)
	waitClosed(t, entered, "the reopen to block opening the log")
	// The new registry is served without waiting for the reopen; the
	// reopen is reported failed once --reload-timeout has passed.
	hz := s.waitReloaded(since, "degraded")
	first := time.Since(since)
	if first < reloadTimeout || first > reloadTimeout+margin {
		t.Errorf("a reload whose log reopen is stuck was reported after %s, want after --reload-timeout %s (and within %s more)", first, reloadTimeout, margin)
	}
	if d := str(hz, "registry.digest"); d != alt.Digest || path(hz, "reload.last_error") != nil {
		t.Errorf("/healthz after SIGHUP with the log's file system hung: got %v, want the new registry %s served and no reload error", hz, alt.Digest)
	}
	if e := str(hz, "decision_log.last_error"); !strings.Contains(e, "reopen") || !strings.Contains(e, "reload timeout") {
		t.Errorf("decision_log.last_error: got %q, want it to say the reopen did not finish within the reload timeout", e)
	}
	stderr := s.stderr.String()
	swapped, failed := strings.Index(stderr, "msg=\"reloaded "), strings.Index(stderr, "reopen decision log failed")
	if swapped < 0 || failed < 0 || swapped > failed {
		t.Errorf("the new registry must be served before the stuck reopen is given up on; stderr:\n%s", stderr)
	}

	// A later SIGHUP starts at once, beside the open still stuck.
	writeFile(t, s.Registry, fixture.Canonical())
	since = time.Now()
	s.signal(sighup)
	if d := str(s.waitReloaded(since, "degraded"), "registry.digest"); d != fixture.Digest {
		t.Errorf("a second SIGHUP while the first reopen is stuck: serving %s, want %s", d, fixture.Digest)
	}

	// The file system answers again: the opens that return late are not
	// switched to, decisions go on in the file in use, and the next
	// SIGHUP reopens the log.
	logFile.release()
	got = append(got, received(t, s.check(allowRequest)))
	since = time.Now()
	s.signal(sighup)
	if hz := s.waitReloaded(since, "ok"); path(hz, "decision_log.last_error") != nil {
		t.Errorf("/healthz after the file system recovered and SIGHUP: got %v, want ok", hz)
	}
	got = append(got, received(t, s.check(allowRequest)))
	if v := chaos.ReadLog(s.Log, logFile.Data()).Verify(got); !v.OK() || v.Extra != 0 {
		t.Errorf("decision log against the answers: %s", v)
	}

	took := sigtermWhileHung(t, s, logFile, "the reopen blocks opening the log", shutdown)
	t.Logf("a reload whose log reopen is stuck reported after %s (--reload-timeout %s); SIGTERM to exit with a reopen stuck: %s (--shutdown-timeout %s)",
		first.Round(time.Millisecond), reloadTimeout, took.Round(time.Millisecond), shutdown)
}

// sigtermWhileHung hangs f and sends SIGHUP, so that the reload blocks on
// f as what says, then SIGTERM: the process must exit 0 within shutdown
// (and scheduling). It returns how long the exit took.
func sigtermWhileHung(t *testing.T, s *server, f *hungFile, what string, shutdown time.Duration) time.Duration {
	t.Helper()
	entered := f.hang()
	s.signal(sighup)
	waitClosed(t, entered, what)
	start := time.Now()
	s.signal(sigterm)
	code := s.wait()
	took := time.Since(start)
	if code != 0 || took > shutdown+margin {
		t.Errorf("SIGTERM while %s: exit %d after %s, want 0 within --shutdown-timeout %s", what, code, took, shutdown)
	}
	return took
}

// waitClosed waits for c to be closed.
func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(waitTimeout):
		t.Fatalf("waiting for %s: not within %s", what, waitTimeout)
	}
}
