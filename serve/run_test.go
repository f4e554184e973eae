package serve

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/examples"
)

// running is a Run in a goroutine.
type running struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

var listeningRE = regexp.MustCompile(`listening on (\S+?)"`)

// startRun starts Run(c) and waits until it listens. c.Addr defaults to a
// free loopback port.
func startRun(t *testing.T, c RunConfig) *running {
	t.Helper()
	r := &running{done: make(chan error, 1), logs: &syncBuffer{}}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	c.Logger = slog.New(slog.NewTextHandler(r.logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- Run(ctx, c) }()
	waitFor(t, "Run to listen", func() bool {
		select {
		case err := <-r.done:
			t.Fatalf("Run returned before listening: %v\nlogs:\n%s", err, r.logs)
		default:
		}
		m := listeningRE.FindStringSubmatch(r.logs.String())
		if m != nil {
			r.addr = m[1]
		}
		return m != nil
	})
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
		return nil
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	src, dir := fileSource(t)
	logPath := filepath.Join(dir, "decisions.jsonl")
	hangup := make(chan os.Signal, 1)
	r := startRun(t, RunConfig{Source: src, LogPath: logPath, LogSync: true, Hangup: hangup})
	if !strings.Contains(r.logs.String(), "listening on 127.0.0.1:") {
		t.Errorf("logs: want a line 'listening on 127.0.0.1:PORT', got\n%s", r.logs)
	}
	base := "http://" + r.addr

	resp, err := http.Post(base+"/v1/check", "application/json", strings.NewReader(allowBody))
	if err != nil {
		t.Fatal(err)
	}
	var cr checkResponse
	json.NewDecoder(resp.Body).Decode(&cr)
	resp.Body.Close()
	if resp.StatusCode != 200 || cr.Effect != "allow" {
		t.Fatalf("check: got %d %s, want 200 allow", resp.StatusCode, cr.Effect)
	}

	// SIGHUP reloads.
	alt := altRegistry(t, "ops-warden/ssh-signing")
	writeFile(t, src.Registry, alt.Canonical())
	hangup <- syscall.SIGHUP
	waitFor(t, "the SIGHUP reload", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var h Health
		json.NewDecoder(resp.Body).Decode(&h)
		return h.Registry.Digest == alt.Digest
	})

	// A request in flight when shutdown begins still gets its answer.
	// "Expect: 100-continue" makes the server say when its handler
	// starts reading the body: from then on the request is in flight.
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(allowBody))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	br.ReadString('\n') // the blank line after it
	r.cancel()
	waitFor(t, "shutdown to begin", func() bool { return strings.Contains(r.logs.String(), "shutting down") })
	io.WriteString(conn, allowBody)
	answer, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	body, _ := io.ReadAll(answer.Body)
	if answer.StatusCode != 200 || !strings.Contains(string(body), `"registry_digest":"`+alt.Digest) {
		t.Errorf("in-flight request: got %d %s, want 200 from the reloaded registry", answer.StatusCode, body)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run after shutdown: got %v, want nil", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Errorf("server still answers after shutdown")
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Errorf("decision log: got %d lines, want 2:\n%s", n, data)
	}
}

func TestRunStartupFailures(t *testing.T) {
	src, dir := fileSource(t)
	edited := filepath.Join(dir, "edited.json")
	writeFile(t, edited, []byte(strings.Replace(string(fixture(t, examples.OpsWardenRegistry)), `"max_ttl_hours": 24`, `"max_ttl_hours": 25`, 1)))
	manyErrors := filepath.Join(dir, "many.json")
	writeFile(t, manyErrors, []byte(strings.ReplaceAll(string(fixture(t, examples.OpsWardenRegistry)), `"max_ttl_hours": `, `"max_ttl_hours": -`)))
	other := filepath.Join(dir, "other.json")
	writeFile(t, other, altRegistry(t, "other/package").Canonical())
	garbage := filepath.Join(dir, "garbage.pem")
	writeFile(t, garbage, []byte("not PEM"))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	certs := newTestPKI(t, t.TempDir())
	fifo := filepath.Join(dir, "nobody.pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		c      RunConfig
		errHas []string
	}{
		{"registry missing", RunConfig{Source: Source{Registry: filepath.Join(dir, "nope.json"), Policy: src.Policy}}, []string{"nope.json", "no such file"}},
		{"registry edited by hand", RunConfig{Source: Source{Registry: edited, Policy: src.Policy}}, []string{"edited.json", "digest"}},
		{"registry with many problems", RunConfig{Source: Source{Registry: manyErrors, Policy: src.Policy}}, []string{"many.json", "more problems"}},
		{"policy missing", RunConfig{Source: Source{Registry: src.Registry, Policy: filepath.Join(dir, "nope.md")}}, []string{"nope.md", "no such file"}},
		{"policy invalid", RunConfig{Source: Source{Registry: src.Registry, Policy: garbage}}, []string{"garbage.pem"}},
		{"package mismatch", RunConfig{Source: Source{Registry: other, Policy: src.Policy}}, []string{"other.json", "is for another policy package than policy", "policy.md"}},
		{"port in use", RunConfig{Source: src, Addr: busy.Addr().String()}, []string{busy.Addr().String(), "address already in use"}},
		{"bad address", RunConfig{Source: src, Addr: "127.0.0.1:http-nope"}, []string{"127.0.0.1:http-nope"}},
		{"TLS key missing", RunConfig{Source: src, TLSCert: certs.serverCert}, []string{"--tls-key"}},
		{"TLS cert unreadable", RunConfig{Source: src, TLSCert: filepath.Join(dir, "nope.pem"), TLSKey: certs.serverKey}, []string{"nope.pem", "no such file"}},
		{"TLS cert not PEM", RunConfig{Source: src, TLSCert: garbage, TLSKey: certs.serverKey}, []string{"garbage.pem"}},
		{"client CA not PEM", RunConfig{Source: src, TLSCert: certs.serverCert, TLSKey: certs.serverKey, ClientCA: garbage}, []string{"garbage.pem", "no PEM certificates"}},
		{"client CA without TLS", RunConfig{Source: src, ClientCA: certs.ca}, []string{"--tls-cert"}},
		{"decision log directory missing", RunConfig{Source: src, LogPath: filepath.Join(dir, "no", "dir", "log.jsonl")}, []string{"log.jsonl", "no such file"}},
		{"decision log a FIFO nobody reads", RunConfig{Source: src, LogPath: fifo}, []string{"nobody.pipe", "no process reads"}},
		{"log timeout not below the write timeout", RunConfig{Source: src, LogTimeout: 10 * time.Second, WriteTimeout: 5 * time.Second}, []string{"log timeout (10s)", "write timeout (5s)"}},
		{"server certificate expired", RunConfig{Source: src, TLSCert: certs.serverCert, TLSKey: certs.serverKey, Clock: func() time.Time { return time.Now().Add(48 * time.Hour) }},
			[]string{certs.serverCert, "has expired"}},
		{"server certificate not valid yet", RunConfig{Source: src, TLSCert: certs.serverCert, TLSKey: certs.serverKey, Clock: func() time.Time { return time.Now().Add(-48 * time.Hour) }},
			[]string{certs.serverCert, "is not valid yet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			c := tt.c
			if c.Addr == "" {
				c.Addr = "127.0.0.1:0"
			}
			if c.LogPath == "" {
				c.LogPath = filepath.Join(t.TempDir(), "decisions.jsonl")
			}
			c.Logger = slog.New(slog.NewTextHandler(logs, nil))
			err := Run(context.Background(), c)
			if err == nil {
				t.Fatal("Run: got nil, want a start-up error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, want := range tt.errHas {
				if !strings.Contains(msg, want) {
					t.Errorf("error: got %q, want it to contain %q", msg, want)
				}
			}
			if strings.Contains(logs.String(), "listening on") {
				t.Errorf("Run listened before failing:\n%s", logs)
			}
		})
	}
}

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate, generated per test; no key is ever checked in.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	pool                                             *x509.CertPool
}

func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flex-auth test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &testPKI{ca: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	leaf := func(serial int64, usage x509.ExtKeyUsage, name string) (cert, key string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf(2, x509.ExtKeyUsageServerAuth, "server")
	p.clientCert, p.clientKey = leaf(3, x509.ExtKeyUsageClientAuth, "ops-warden")
	return p
}

func (p *testPKI) client(t *testing.T, withCert bool, maxVersion uint16) *http.Client {
	t.Helper()
	conf := &tls.Config{RootCAs: p.pool, MaxVersion: maxVersion}
	if withCert {
		c, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 10 * time.Second}
}

func TestRunTLS(t *testing.T) {
	pki := newTestPKI(t, t.TempDir())
	src, _ := fileSource(t)
	tests := []struct {
		name       string
		clientCA   bool
		clientCert bool
		maxVersion uint16
		ok         bool
	}{
		{"TLS", false, false, 0, true},
		{"TLS 1.2 client", false, false, tls.VersionTLS12, true},
		{"TLS 1.1 client is refused", false, false, tls.VersionTLS11, false},
		{"mutual TLS with a client certificate", true, true, 0, true},
		{"mutual TLS without a client certificate is refused", true, false, 0, false},
		{"mutual TLS 1.2 without a client certificate is refused", true, false, tls.VersionTLS12, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := RunConfig{Source: src, LogPath: filepath.Join(t.TempDir(), "log.jsonl"), TLSCert: pki.serverCert, TLSKey: pki.serverKey}
			if tt.clientCA {
				c.ClientCA = pki.ca
			}
			r := startRun(t, c)
			client := pki.client(t, tt.clientCert, tt.maxVersion)
			resp, err := client.Post("https://"+r.addr+"/v1/check", "application/json", strings.NewReader(allowBody))
			if !tt.ok {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request: got %d, want a TLS failure", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			defer resp.Body.Close()
			var cr checkResponse
			if err := json.NewDecoder(resp.Body).Decode(&cr); err != nil || resp.StatusCode != 200 || cr.Effect != "allow" {
				t.Errorf("check over TLS: got %d %s (%v), want 200 allow", resp.StatusCode, cr.Effect, err)
			}
			// Plain HTTP to a TLS port gets no decision.
			if resp, err := http.Post("http://"+r.addr+"/v1/check", "application/json", strings.NewReader(allowBody)); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(body), "decision_id") {
					t.Errorf("plain HTTP to the TLS port got a decision: %s", body)
				}
			}
		})
	}
}

func TestRunBuiltinAndStdout(t *testing.T) {
	out := &syncBuffer{}
	r := startRun(t, RunConfig{Source: builtin, LogPath: "-", Stdout: out, LogSync: true, Watch: true})
	resp, err := http.Post("http://"+r.addr+"/v1/check", "application/json", strings.NewReader(allowBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("check: got %d, want 200 (--log-sync must not fsync stdout)", resp.StatusCode)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := len(out.lines(t)); n != 1 {
		t.Errorf("stdout decision log: got %d lines, want 1", n)
	}
}

func TestRunDrainDelay(t *testing.T) {
	// The two requests below must be answered while the drain lasts,
	// from when the test sees it begin: a few milliseconds on a quiet
	// machine, and room for a busy one's scheduling.
	const drain = 5 * time.Second
	r := startRun(t, RunConfig{Source: builtin, LogPath: filepath.Join(t.TempDir(), "log.jsonl"), DrainDelay: drain})
	base := "http://" + r.addr
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) int {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// closes reports whether an answer on a keep-alive connection says
	// Connection: close.
	keepAlive := &http.Transport{}
	defer keepAlive.CloseIdleConnections()
	closes := func() bool {
		resp, err := (&http.Client{Transport: keepAlive}).Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Close
	}
	if got := get("/readyz"); got != 200 {
		t.Fatalf("readyz: got %d, want 200", got)
	}
	if closes() {
		t.Errorf("an answer before the drain closes its keep-alive connection, want it kept")
	}
	cancelled := time.Now()
	r.cancel()
	waitFor(t, "the drain to begin", func() bool { return strings.Contains(r.logs.String(), "/readyz now answers 503") })
	if got := get("/readyz"); got != 503 {
		t.Errorf("readyz while draining: got %d, want 503", got)
	}
	if got := get("/healthz"); got != 200 {
		t.Errorf("healthz while draining: got %d, want 200 (still serving)", got)
	}
	if !closes() {
		t.Errorf("an answer during the drain keeps its keep-alive connection, want Connection: close")
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
	if took := time.Since(cancelled); took < drain {
		t.Errorf("Run returned %s after its context was cancelled, want after the drain delay %s", took, drain)
	}
}

// TestRunShutdownUnreadRequest sends a request, part of its body and all,
// before shutdown begins, on a connection whose request the server may not
// have read yet: http.Server.Shutdown alone would drop it with an EOF.
func TestRunShutdownUnreadRequest(t *testing.T) {
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := startRun(t, RunConfig{Source: builtin, LogPath: filepath.Join(t.TempDir(), "log.jsonl")})
			conn, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(allowBody), allowBody[:10])
			// The server accepts in order: once a later connection is
			// answered, this one has been accepted.
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + r.addr + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			r.cancel()
			waitFor(t, "shutdown to begin", func() bool { return strings.Contains(r.logs.String(), "no longer accepting") })
			io.WriteString(conn, allowBody[10:])
			answer, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("request sent before shutdown: %v", err)
			}
			answer.Body.Close()
			if answer.StatusCode != 200 {
				t.Errorf("status: got %d, want 200", answer.StatusCode)
			}
			if err := r.stop(t); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

func TestConnTracker(t *testing.T) {
	tr := newConnTracker()
	tr.waitNoneNew(context.Background()) // none: returns at once

	c1, c2, c3 := &net.TCPConn{}, &net.TCPConn{}, &net.TCPConn{}
	tr.track(c1, http.StateNew)
	tr.track(c2, http.StateNew)
	tr.track(c3, http.StateNew)
	tr.track(c3, http.StateActive)
	tr.track(c3, http.StateIdle) // served a request
	done := make(chan struct{})
	go func() {
		tr.waitNoneNew(context.Background())
		close(done)
	}()
	tr.track(c1, http.StateActive)
	tr.track(c2, http.StateClosed)
	select {
	case <-done:
		t.Fatal("waitNoneNew returned while c1's request, read, had not reached the handler")
	default:
	}
	handler := tr.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	handler.ServeHTTP(httptest.NewRecorder(), r.WithContext(tr.connContext(r.Context(), c1)))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("waitNoneNew did not return once every connection had its request handled")
	}

	tr.track(c1, http.StateNew)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tr.waitNoneNew(ctx) // a done context ends the wait
}
