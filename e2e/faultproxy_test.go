package e2e

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A faultProxy stands between replicas and a registry: it forwards every
// request, counts them, and on demand answers as a registry in trouble
// does: not at all (down), 500, slowly, with a body cut short, or holds
// requests until released while the test changes the registry.
type faultProxy struct {
	t      *testing.T
	target string // host:port of the registry
	Addr   string

	mu    sync.Mutex
	srv   *http.Server
	fault string        // "", "500", "slow", "truncate"
	hold  chan struct{} // while set, requests wait for it to close
	delay time.Duration // of "slow"

	requests atomic.Int64
	heads    atomic.Int64 // manifest HEADs: polls
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	p := &faultProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *faultProxy) serve(ln net.Listener) {
	srv := &http.Server{Handler: p}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener and every connection: connections are refused
// until up.
func (p *faultProxy) down() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same address.
func (p *faultProxy) up() {
	p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ln, err := net.Listen("tcp", p.Addr)
		if err == nil {
			p.serve(ln)
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("listen again on %s: %v", p.Addr, err)
		}
		time.Sleep(10 * time.Millisecond) // the port is being released
	}
}

// setFault makes the proxy answer every request with fault ("" to
// forward again); "slow" answers after delay.
func (p *faultProxy) setFault(fault string, delay time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.delay = fault, delay
}

// holdRequests makes requests wait until the returned func is called.
func (p *faultProxy) holdRequests() (release func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hold := make(chan struct{})
	p.hold = hold
	return func() {
		p.mu.Lock()
		p.hold = nil
		p.mu.Unlock()
		close(hold)
	}
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
		p.heads.Add(1)
	}
	p.mu.Lock()
	fault, delay, hold := p.fault, p.delay, p.hold
	p.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	switch fault {
	case "500":
		http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"the storage backend is down"}]}`, http.StatusInternalServerError)
		return
	case "slow":
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.RequestURI = "http", p.target, ""
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if fault == "truncate" && r.Method == http.MethodGet && resp.ContentLength > 1 {
		// Half the body that Content-Length promises, then the
		// connection is cut.
		io.CopyN(w, resp.Body, resp.ContentLength/2)
		panic(http.ErrAbortHandler)
	}
	io.Copy(w, resp.Body)
}
