package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/sshsig"
)

// RunConfig is everything Run needs to serve decisions as a process: the
// settings of the Server it makes (as Options has them), and around it the
// listener, TLS, the decision log file, reload signals and the shutdown.
type RunConfig struct {
	// Addr is the TCP address to listen on; port 0 picks a free port,
	// logged as "listening on ADDR".
	Addr string
	// Source is where the registry and policy come from: the first
	// package; it may be zero when Packages are given.
	Source Source
	// Packages are more packages to serve (Options.Packages), and
	// DefaultPackage the one bare AuthZEN paths go to.
	Packages       []Source
	DefaultPackage string
	// PublicURL is Options.PublicURL. When it is empty and the server
	// listens on a loopback address, it is the listener's URL.
	PublicURL string
	// LogPath is the decision log file; "" or "-" writes to Stdout.
	LogPath string
	// Stdout receives the decision log when LogPath is "-".
	Stdout io.Writer
	// LogSync fsyncs the decision log file before answering. It applies
	// to files, not to Stdout.
	LogSync bool
	// LogTimeout is Options.LogTimeout: how long a decision waits for its
	// log line before it is answered 503.
	LogTimeout time.Duration
	// LogSignKey, when set, is an OpenSSH private key file that signs
	// checkpoints of the decision log's chain (Options.LogSigner), with
	// LogSignKeyPassphrase when it is protected by one.
	// CheckpointLines and CheckpointInterval are Options'.
	LogSignKey           string
	LogSignKeyPassphrase []byte
	CheckpointLines      int
	CheckpointInterval   time.Duration
	// ReloadTimeout is Options.ReloadTimeout.
	ReloadTimeout time.Duration
	// Poll is Options.Poll.
	Poll time.Duration
	// Watch reloads when the registry or policy file changes.
	Watch bool
	// Hangup delivers a value for each SIGHUP: reload and reopen the log.
	Hangup <-chan os.Signal
	// TLSCert and TLSKey, both or neither, serve HTTPS. ClientCA, which
	// needs them, requires every client to present a certificate signed
	// by one of its CAs (mutual TLS).
	TLSCert, TLSKey, ClientCA string

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// ShutdownTimeout bounds how long in-flight requests may take to
	// finish, and the decision log to flush, after the context is
	// cancelled (and DrainDelay has passed): Run returns by then, whatever
	// the log or a reload is doing.
	ShutdownTimeout time.Duration
	// DrainDelay keeps serving for this long after the context is
	// cancelled, with /readyz answering 503, before the listener closes:
	// time for load balancers (a Kubernetes readiness probe) to stop
	// sending new requests. Meanwhile every answer closes its connection
	// (HTTP/2: a GOAWAY), so that clients with keep-alive connections,
	// which a load balancer that routes connections keeps sending here,
	// connect again and are routed elsewhere. Zero closes at once.
	DrainDelay time.Duration

	Logger *slog.Logger
	Clock  func() time.Time
	// AfterLoad is Options.AfterLoad.
	AfterLoad func()
}

// Defaults for RunConfig's HTTP limits: enough for any honest client of a
// service whose requests are a few hundred bytes, short enough that slow
// clients cannot pin connections.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultShutdownTimeout   = 10 * time.Second
)

// Run serves decisions until ctx is cancelled, then shuts down gracefully:
// /readyz turns 503, new requests are still served for DrainDelay, then
// the listener closes and requests in flight finish and the decision log
// is flushed and closed, within ShutdownTimeout, and Run returns nil; or
// an error saying what did not finish in time.
//
// Everything that can fail at start-up (the registry, the policy, their
// pairing, the decision log file, TLS files, the listen address) is checked
// before anything is served; such an error is returned as one line that
// names the file or address and the problem. A start-up blocked on a file
// system that stopped answering still returns when ctx is cancelled.
func Run(ctx context.Context, c RunConfig) error {
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var stuck atomic.Int32 // start-up is abandoned at most once
	start := startJob(func() started { return startUp(c, logger) }, func(st started) { st.close() }, &stuck)
	st, ok := start.wait(ctx, &stuck)
	if !ok {
		return errors.New("interrupted during start-up, which was still reading its files")
	}
	if st.err != nil {
		return st.err
	}
	srv, tlsConf, watcher := st.srv, st.tls, st.watcher
	logClosed := false
	defer func() {
		if !logClosed {
			st.close()
		} else if watcher != nil {
			watcher.close()
		}
	}()

	tcpLn, err := net.Listen("tcp", c.Addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err // drop "listen tcp ADDR", said below
		}
		return fmt.Errorf("listen on %s: %w", c.Addr, err)
	}
	ln := &onceCloseListener{Listener: tcpLn}
	conns := newConnTracker()
	handler := &closingHandler{Handler: conns.wrap(srv)}
	hs := &http.Server{
		Handler:           handler,
		ConnContext:       conns.connContext,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: orDefault(c.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       orDefault(c.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      orDefault(c.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       orDefault(c.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnState:         conns.track,
	}
	if hs.MaxHeaderBytes <= 0 {
		hs.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	if srv.publicURL == "" {
		if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && ap.Addr().IsLoopback() {
			// Only the machine itself reaches a loopback listener, and
			// at this address.
			srv.publicURL = scheme + "://" + ln.Addr().String()
		}
	}
	srv.logServing()
	if watcher != nil {
		watcher.logStart()
	}
	logger.Info("listening on "+ln.Addr().String(), "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String(),
		"mutual_tls", tlsConf != nil && tlsConf.ClientCAs != nil, "public_url", srv.publicURL)

	served := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	loopCtx, stopLoops := context.WithCancel(ctx)
	loopsDone := make(chan struct{})
	go func() {
		defer close(loopsDone)
		srv.reloadLoop(loopCtx, c.Hangup, watcher)
	}()
	defer func() { stopLoops(); <-loopsDone }()

	select {
	case err := <-served:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	logClosed = true // by shutdown, or abandoned if it hangs
	handler.closing.Store(true)
	if err := srv.shutdown(hs, ln, conns, served, c, logger); err != nil {
		return err
	}
	if st.file != nil {
		st.file.Close() // the writer has returned
	}
	return nil
}

// started is what start-up opened and loaded.
type started struct {
	srv     *Server
	tls     *tls.Config
	file    *LogFile // nil when the log is Stdout
	watcher *watcher
	err     error
}

// close closes what start-up opened, after a start-up error or when
// shutdown did not run.
func (st started) close() {
	if st.watcher != nil {
		st.watcher.close()
	}
	if st.srv != nil {
		st.srv.Close()
	}
	if st.file != nil {
		st.file.Close()
	}
}

// startUp reads and checks everything Run needs before it serves: TLS
// files, the decision log, the registry and policy, the watches.
func startUp(c RunConfig, logger *slog.Logger) (st started) {
	defer func() {
		if st.err != nil {
			st.close()
			st = started{err: st.err}
		}
	}()
	if lt, wt := orDefault(c.LogTimeout, DefaultLogTimeout), orDefault(c.WriteTimeout, DefaultWriteTimeout); lt >= wt {
		st.err = fmt.Errorf("the log timeout (%s) must be shorter than the write timeout (%s): a decision answered later never reaches its client", lt, wt)
		return st
	}
	if c.TLSCert != "" || c.TLSKey != "" || c.ClientCA != "" {
		if st.tls, st.err = TLSConfig(c.TLSCert, c.TLSKey, c.ClientCA); st.err != nil {
			return st
		}
		if st.err = checkValidity(st.tls, c.TLSCert, clockNow(c.Clock)); st.err != nil {
			return st
		}
	}
	var signer *decisionlog.Signer
	if c.LogSignKey != "" {
		key, err := sshsig.LoadSigner(c.LogSignKey, c.LogSignKeyPassphrase)
		if err != nil {
			st.err = fmt.Errorf("--log-sign-key: %w", err)
			return st
		}
		signer = decisionlog.NewSigner(key)
	}
	var logW io.Writer
	if c.LogPath == "" || c.LogPath == "-" {
		// Hide Sync and Close: stdout is often a pipe, which cannot be
		// fsynced, and it is not ours to close.
		logW = struct{ io.Writer }{c.Stdout}
	} else {
		if st.file, st.err = OpenLogFile(c.LogPath); st.err != nil {
			st.err = fmt.Errorf("open decision log: %w", st.err)
			return st
		}
		logW = st.file
	}
	var err error
	st.srv, err = New(Options{Source: c.Source, Packages: c.Packages, DefaultPackage: c.DefaultPackage, PublicURL: c.PublicURL, DecisionLog: logW, LogSync: c.LogSync, LogTimeout: c.LogTimeout,
		LogSigner: signer, CheckpointLines: c.CheckpointLines, CheckpointInterval: c.CheckpointInterval,
		ReloadTimeout: c.ReloadTimeout, Poll: c.Poll, Logger: logger, Clock: c.Clock, AfterLoad: c.AfterLoad})
	if err != nil {
		st.err = errors.New(oneLine(err))
		return st
	}
	if c.Watch {
		st.watcher, st.err = st.srv.newWatcher()
	}
	return st
}

func clockNow(clock func() time.Time) time.Time {
	if clock == nil {
		return time.Now()
	}
	return clock()
}

// shutdown stops serving gracefully: readiness off, an optional drain
// delay, then the listener closes, connections already accepted get their
// request read, http.Server.Shutdown lets requests finish, and the
// decision log is flushed, all within ShutdownTimeout. A decision log
// write that is stuck is not waited for: the decisions it held were
// answered 503 already.
func (s *Server) shutdown(hs *http.Server, ln net.Listener, conns *connTracker, served <-chan error, c RunConfig, logger *slog.Logger) error {
	timeout := orDefault(c.ShutdownTimeout, DefaultShutdownTimeout)
	s.BeginShutdown()
	if c.DrainDelay > 0 {
		logger.Info("shutting down: /readyz now answers 503; still serving while load balancers notice", "drain_delay", c.DrainDelay.String())
		time.Sleep(c.DrainDelay)
	}
	logger.Info("shutting down: no longer accepting connections, finishing requests in flight", "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// http.Server.Shutdown drops a connection whose request it reads
	// after shutdown began, even when the client sent it before: a
	// request in flight to the client, an EOF to ops-warden. So stop
	// accepting first, and give the connections already accepted a
	// moment to have their request read; from then on Shutdown waits
	// for them.
	ln.Close()
	settle, cancelSettle := context.WithTimeout(sctx, settleTimeout)
	conns.waitNoneNew(settle)
	cancelSettle()
	if err := hs.Shutdown(sctx); err != nil {
		logger.Warn("shutdown timeout reached; closing remaining connections", "err", err)
		hs.Close()
	}
	<-served
	// Flush the decision log, but do not hang on a file that stopped
	// taking writes: that is not a clean shutdown.
	if err := s.log.close(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Info("stopped; decision log flushed")
	return nil
}

// closingHandler answers with "Connection: close" once closing is set,
// so that each connection closes after its answer: at shutdown, from the
// start of the drain delay. A keep-alive connection otherwise stays with
// this process until http.Server.Shutdown closes it as idle, and a
// request the client sends on it at that moment is lost (an EOF or a
// reset, which the client cannot tell from a request the server read):
// a load balancer that routes connections, as a Kubernetes Service does,
// never moves such a connection to a ready replica. Closed after an
// answer during the drain, the connection is made again by the client,
// to a replica the load balancer still routes to; only a connection
// idle for the whole drain is left for Shutdown to close.
type closingHandler struct {
	http.Handler
	closing atomic.Bool
}

func (h *closingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.closing.Load() {
		// net/http closes an HTTP/1 connection after this answer, and
		// sends an HTTP/2 client a GOAWAY instead of the header.
		w.Header().Set("Connection", "close")
	}
	h.Handler.ServeHTTP(w, r)
}

// settleTimeout bounds the wait for accepted connections to send their
// request at shutdown. A client that connects and says nothing is not
// waited for longer.
const settleTimeout = time.Second

// onceCloseListener lets shutdown close the listener before
// http.Server.Shutdown closes it again.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// connTracker knows which connections are accepted but have not had a
// request handed to the handler yet. Go's server drops a request it has
// read once Shutdown has begun, even one whose connection turned active
// just before (it checks after the ConnState hook): so a connection
// counts as fresh until its request reaches the handler (wrap), not
// merely until it turns active.
type connTracker struct {
	mu    sync.Mutex
	fresh map[net.Conn]struct{}
	empty chan struct{} // closed when fresh empties; nil when nobody waits
}

func newConnTracker() *connTracker {
	return &connTracker{fresh: make(map[net.Conn]struct{})}
}

// connKey carries a request's connection in its context (ConnContext).
type connKey struct{}

// connContext is the http.Server ConnContext hook: it puts the connection
// in its requests' context, for wrap.
func (t *connTracker) connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// wrap returns h, counting each request's connection out of the fresh
// ones when the request reaches it.
func (t *connTracker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
			t.out(c)
		}
		h.ServeHTTP(w, r)
	})
}

// track is the http.Server ConnState hook: a new connection is fresh; one
// that is idle (it served a request), closed or hijacked no longer is.
func (t *connTracker) track(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		t.mu.Lock()
		t.fresh[c] = struct{}{}
		t.mu.Unlock()
	case http.StateIdle, http.StateClosed, http.StateHijacked:
		t.out(c)
	}
}

// out counts c out of the fresh connections.
func (t *connTracker) out(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.fresh[c]; !ok {
		return
	}
	delete(t.fresh, c)
	if len(t.fresh) == 0 && t.empty != nil {
		close(t.empty)
		t.empty = nil
	}
}

// waitNoneNew returns when every accepted connection has had a request
// handed to the handler (or closed), or when ctx is done.
func (t *connTracker) waitNoneNew(ctx context.Context) {
	t.mu.Lock()
	if len(t.fresh) == 0 {
		t.mu.Unlock()
		return
	}
	if t.empty == nil {
		t.empty = make(chan struct{})
	}
	empty := t.empty
	t.mu.Unlock()
	select {
	case <-empty:
	case <-ctx.Done():
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// reloadLoop reloads on SIGHUP, when w is set on file changes, and polls
// a remote source.
func (s *Server) reloadLoop(ctx context.Context, hangup <-chan os.Signal, w *watcher) {
	var changed <-chan struct{}
	if w != nil {
		changed = w.changed
		go w.run(ctx)
	}
	poll, polled := s.pollTimer()
	if poll != nil {
		defer poll.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-polled:
			poll.Reset(s.nextPoll(s.refresh(ctx, false, false)))
		case _, ok := <-hangup:
			if !ok {
				hangup = nil
				continue
			}
			s.logger.Info("SIGHUP: reloading every package, reopening the decision log")
			s.reloadCtx(ctx)
		case <-changed:
			slots := w.take()
			if len(slots) == 0 {
				continue
			}
			var names []string
			for _, i := range slots {
				names = append(names, s.slots[i].source.String())
			}
			s.logger.Info("files changed: reloading " + strings.Join(names, "; "))
			s.reloadSlots(ctx, slots, true, true)
		}
	}
}

// checkValidity refuses a server certificate that is expired or not yet
// valid at now: clients would refuse every handshake, and a service that
// starts anyway looks healthy to its own probes while nobody can reach
// it. Failing at start-up names the file and the dates instead.
func checkValidity(conf *tls.Config, certFile string, now time.Time) error {
	cert := conf.Certificates[0]
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("load TLS certificate %s: %w", certFile, err)
		}
	}
	const layout = time.RFC3339
	valid := "valid from " + leaf.NotBefore.UTC().Format(layout) + " until " + leaf.NotAfter.UTC().Format(layout) + ", and it is " + now.UTC().Format(layout)
	switch {
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("TLS certificate %s is not valid yet: %s", certFile, valid)
	case now.After(leaf.NotAfter):
		return fmt.Errorf("TLS certificate %s has expired: %s", certFile, valid)
	}
	return nil
}

// TLSConfig returns a server TLS configuration (TLS 1.2 or later) with the
// certificate and key in certFile and keyFile. With clientCAFile, clients
// must present a certificate signed by one of the CAs in it. Each file
// must be a regular file of at most readfile.PEM.Max bytes.
func TLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
	}
	cert, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if clientCAFile != "" {
		pem, err := readfile.Read(clientCAFile, readfile.PEM)
		if err != nil {
			return nil, fmt.Errorf("load client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("load client CA %s: no PEM certificates in the file", clientCAFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// LoadKeyPair reads a PEM certificate (chain) and its private key, as
// tls.LoadX509KeyPair does, from regular files of at most
// readfile.PEM.Max bytes each.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := readfile.Read(certFile, readfile.PEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load TLS certificate: %w", err)
	}
	keyPEM, err := readfile.Read(keyFile, readfile.PEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load TLS key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}
