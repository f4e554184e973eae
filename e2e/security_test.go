package e2e

// Security: what never reaches the decision log or the server's own log
// (request headers, tokens, cookies, client certificate details); TLS and
// mutual TLS refuse clients without a valid certificate; no request reads
// another file; every error response is the contract's envelope and says
// nothing about internals; inventories and snapshots carrying key
// material are refused.

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/registry"
)

// startTLS starts s with args (which turn TLS on) and waits until it
// answers /healthz over HTTPS with hc.
func (s *server) startTLS(t *testing.T, hc *http.Client, args ...string) {
	t.Helper()
	s.launch(t, args...)
	m := s.waitStderr(listenRE)
	if m == nil {
		t.Fatalf("no %q line on stderr; stderr:\n%s", listenRE, s.stderr)
	}
	s.URL = "https://" + m[1]
	s.waitFor("GET /healthz answers 200 over TLS", func() bool {
		resp, err := hc.Get(s.URL + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

const allowBody = `{"subject": "iam:agt-state-hub-bridge", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 24}}`

// TestMutualTLS serves with --client-ca and tries clients with and
// without a valid certificate: only a certificate from the client CA,
// current and meant for client authentication, gets a decision; and no
// detail of any client certificate reaches the decision log or stderr.
func TestMutualTLS(t *testing.T) {
	skipShort(t)
	t.Parallel()
	ca := newPKI(t, "e2e-ca")
	other := newPKI(t, "e2e-other-ca")
	good := ca.client(t, "goodclientzq", true, x509.ExtKeyUsageClientAuth)
	s := newServer(t)
	s.startTLS(t, ca.httpClient(t, &good), s.serveArgs("--tls-cert", ca.ServerCert, "--tls-key", ca.ServerKey, "--client-ca", ca.CA)...)

	foreign := other.client(t, "foreignclientzq", true, x509.ExtKeyUsageClientAuth)
	expired := ca.client(t, "expiredclientzq", false, x509.ExtKeyUsageClientAuth)
	serverOnly := ca.client(t, "serverusagezq", true, x509.ExtKeyUsageServerAuth)
	tests := []struct {
		name string
		cert *clientCert
		ok   bool
	}{
		{"certificate from the client CA", &good, true},
		{"no certificate", nil, false},
		{"certificate from another CA", &foreign, false},
		{"expired certificate from the client CA", &expired, false},
		{"certificate for servers only", &serverOnly, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ca.httpClient(t, tt.cert).Post(s.URL+"/v1/check", "application/json", strings.NewReader(allowBody))
			if !tt.ok {
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					t.Fatalf("got %d %s, want the TLS handshake refused", resp.StatusCode, body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"effect":"allow"`) {
				t.Fatalf("got %d %s, want 200 allow", resp.StatusCode, body)
			}
		})
	}
	t.Run("plain HTTP", func(t *testing.T) {
		resp, err := http.Post("http://"+strings.TrimPrefix(s.URL, "https://")+"/v1/check", "application/json", strings.NewReader(allowBody))
		if err != nil {
			return // refused outright
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(body), "decision") {
			t.Errorf("plain HTTP to the mutual-TLS port: got %d %s, want no decision", resp.StatusCode, body)
		}
		checkNoInternals(t, "plain HTTP to the TLS port", string(body))
	})

	// The refused handshakes are logged, but say nothing of the
	// certificates.
	logged := string(readFile(t, s.Log)) + s.stderr.String()
	for _, c := range []clientCert{good, foreign, expired, serverOnly} {
		for _, d := range c.Details {
			if strings.Contains(strings.ToLower(logged), strings.ToLower(d)) {
				t.Errorf("decision log or stderr holds the client certificate detail %q", d)
			}
		}
	}
	if lines, _ := readLog(t, readFile(t, s.Log)); len(lines) != 1 {
		t.Errorf("decision log: got %d lines, want the one decision", len(lines))
	}
}

// TestTLS serves HTTPS without client certificates: a client that trusts
// the server's CA gets a decision, one that does not is refused by its own
// TLS, and plain HTTP gets no decision.
func TestTLS(t *testing.T) {
	skipShort(t)
	t.Parallel()
	ca := newPKI(t, "e2e-tls-ca")
	s := newServer(t)
	s.startTLS(t, ca.httpClient(t, nil), s.serveArgs("--tls-cert", ca.ServerCert, "--tls-key", ca.ServerKey)...)
	resp, err := ca.httpClient(t, nil).Post(s.URL+"/v1/check", "application/json", strings.NewReader(allowBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("trusting client: got %d, want 200", resp.StatusCode)
	}
	if resp, err := newPKI(t, "unrelated").httpClient(t, nil).Post(s.URL+"/v1/check", "application/json", strings.NewReader(allowBody)); err == nil {
		resp.Body.Close()
		t.Errorf("client that does not trust the server's CA: got %d, want a TLS failure", resp.StatusCode)
	}
	if resp, err := http.Post("http://"+strings.TrimPrefix(s.URL, "https://")+"/v1/check", "application/json", strings.NewReader(allowBody)); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(body), "decision") {
			t.Errorf("plain HTTP: got %d %s, want no decision", resp.StatusCode, body)
		}
	}
}

// TestCheckAndSmokeOverMutualTLS runs flex-auth check and smoke against a
// server that requires client certificates, with --ca-cert, --client-cert
// and --client-key; without a client certificate both fail closed.
func TestCheckAndSmokeOverMutualTLS(t *testing.T) {
	skipShort(t)
	t.Parallel()
	ca := newPKI(t, "e2e-cli-ca")
	cert := ca.client(t, "clitoolzq", true, x509.ExtKeyUsageClientAuth)
	s := newServer(t)
	s.startTLS(t, ca.httpClient(t, &cert), s.serveArgs("--tls-cert", ca.ServerCert, "--tls-key", ca.ServerKey, "--client-ca", ca.CA)...)
	tlsArgs := []string{"--ca-cert", ca.CA, "--client-cert", cert.Cert, "--client-key", cert.Key}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout, or stderr when the code is 2
	}{
		{"check with a client certificate", append([]string{"check", "--url", s.URL, "--actor", bridge}, tlsArgs...), 0, "effect:          allow"},
		{"check deny with a client certificate", append([]string{"check", "--url", s.URL, "--actor", bridge, "--ttl", "999"}, tlsArgs...), 1, "ttl_out_of_bounds"},
		{"check without a client certificate", []string{"check", "--url", s.URL, "--actor", bridge, "--ca-cert", ca.CA}, 2, "unreachable"},
		{"check without trusting the server", []string{"check", "--url", s.URL, "--actor", bridge, "--client-cert", cert.Cert, "--client-key", cert.Key}, 2, "unreachable"},
		{"check with a certificate but no key", []string{"check", "--url", s.URL, "--actor", bridge, "--ca-cert", ca.CA, "--client-cert", cert.Cert}, 2, "--client-cert and --client-key go together"},
		{"check with a CA file that is not PEM", []string{"check", "--url", s.URL, "--actor", bridge, "--ca-cert", cert.Key + ".missing"}, 2, "--ca-cert"},
		{"smoke with a client certificate", append([]string{"smoke", "--url", s.URL, "--actor", bridge}, tlsArgs...), 0, "smoke: all 5 steps passed"},
		{"smoke without a client certificate", []string{"smoke", "--url", s.URL, "--actor", bridge, "--ca-cert", ca.CA}, 1, "FAIL healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, cleanEnv, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit: got %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out, errOut)
			}
			where := out
			if code == 2 {
				where = errOut
			}
			if !strings.Contains(where, tt.wantOut) {
				t.Errorf("got stdout\n%s\nstderr\n%s\nwant %q", out, errOut, tt.wantOut)
			}
		})
	}
	// One check allowed, one denied, three smoke decisions.
	if lines, _ := readLog(t, readFile(t, s.Log)); len(lines) != 5 {
		t.Errorf("decision log: got %d lines, want 5", len(lines))
	}
}

// TestNoSecretsInLogs sends distinctive credentials in every place a
// client might put them (Authorization, Proxy-Authorization, Cookie,
// X-Vault-Token, a token in the query string, URL user info) with requests
// that are answered 200, 400, 404, 405, 413, 415 and 431: none reaches the
// decision log, stderr, /healthz or /metrics, in text or JSON log format.
func TestNoSecretsInLogs(t *testing.T) {
	skipShort(t)
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "--log-format", format)
			secrets := []string{"bearer-zq-7f3a9c", "cookie-zq-51d2e8", "vault-zq-hvs-0a1b", "proxy-zq-c0ffee", "query-zq-token", "userinfo-zq-pw"}
			headers := []string{
				"Authorization", "Bearer " + secrets[0],
				"Cookie", "session=" + secrets[1],
				"X-Vault-Token", secrets[2],
				"Proxy-Authorization", "Basic " + secrets[3],
			}
			requests := []struct{ method, path, ct, body string }{
				{"POST", "/v1/check", "application/json", allowBody},
				{"POST", "/v1/check?token=" + secrets[4], "application/json", allowBody},
				{"POST", "/v1/check", "application/json", `{"subject": `},
				{"POST", "/v1/check", "text/plain", allowBody},
				{"POST", "/v1/check", "application/json", `{"subject": "a", "resource": "b", "context": {"pad": "` + strings.Repeat("x", 70<<10) + `"}}`},
				{"GET", "/v1/check", "", ""},
				{"GET", "/v1/nothing?token=" + secrets[4], "", ""},
				{"GET", "/healthz", "", ""},
				{"GET", "/v1/registry", "", ""},
				{"GET", "/metrics", "", ""},
			}
			for _, r := range requests {
				s.do(r.method, r.path, r.ct, []byte(r.body), headers...)
			}
			// User info in the URL becomes an Authorization header.
			if resp, err := http.Post(strings.Replace(s.URL, "http://", "http://admin:"+secrets[5]+"@", 1)+"/v1/check", "application/json", strings.NewReader(allowBody)); err == nil {
				resp.Body.Close()
			}
			// Headers over the limit, with the secrets in them.
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /v1/check HTTP/1.1\r\nHost: e2e\r\nAuthorization: Bearer %s\r\nX-Pad: %s\r\n\r\n", secrets[0], strings.Repeat("p", 32<<10))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != 431 {
				t.Errorf("oversized headers: got %v %v, want 431", resp, err)
			}
			conn.Close()

			// Diagnostics too: /healthz and /metrics.
			diagnostics := string(s.do("GET", "/healthz", "", nil).Body) + string(s.do("GET", "/metrics", "", nil).Body)
			logged := string(readFile(t, s.Log)) + s.stderr.String() + s.stdout.String()
			for _, secret := range secrets {
				if strings.Contains(logged, secret) {
					t.Errorf("decision log or stderr holds %q", secret)
				}
				if strings.Contains(diagnostics, secret) {
					t.Errorf("/healthz or /metrics holds %q", secret)
				}
			}
			for _, name := range []string{"authorization", "cookie", "x-vault-token", "bearer"} {
				if strings.Contains(strings.ToLower(string(readFile(t, s.Log))), name) {
					t.Errorf("decision log mentions %q", name)
				}
			}
		})
	}
}

// TestNoFileIsRead asks for other files in every way a path can be spelled:
// the answer is a 404 envelope, never a file's contents, never a redirect.
func TestNoFileIsRead(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	secretFile := filepath.Join(s.Dir, "secret.txt")
	if err := os.WriteFile(secretFile, []byte("zq-file-contents-never-served\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel("/", secretFile)
	if err != nil {
		t.Fatal(err)
	}
	targets := []string{
		"/../../../../../../" + rel,
		"/v1/registry/../../../../../../" + rel,
		"/v1/registry/..%2f..%2f..%2f..%2f..%2f..%2f" + strings.ReplaceAll(rel, "/", "%2f"),
		"/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/" + rel,
		"/..%5c..%5c..%5c" + rel,
		"//" + rel,
		"/" + rel,
		"/v1/registry%00/../../" + rel,
		"/v1/registry/" + filepath.Base(s.Registry),
		"/v1/" + filepath.Base(s.Policy),
		"/" + filepath.Base(s.Log),
		"/etc/passwd",
		"/v1/registry/../../etc/passwd",
		"/%2e%2e/etc/passwd",
		"file://" + secretFile,
		"http://e2e/" + rel,
	}
	fileContents := [][]byte{[]byte("zq-file-contents-never-served"), []byte("root:"), []byte("# ops-warden"), []byte("\"decision_id\"")}
	check := func(what string, status int, header http.Header, body []byte) {
		t.Helper()
		for _, c := range fileContents {
			if bytes.Contains(body, c) {
				t.Errorf("%s: answer holds %q: %s", what, c, body)
			}
		}
		if status >= 300 && status < 400 {
			t.Errorf("%s: got a redirect %d to %s", what, status, header.Get("Location"))
		}
	}
	for _, target := range targets {
		for _, method := range []string{"GET", "POST"} {
			// Raw, so that no client cleans the path first.
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", method, target)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				conn.Close()
				t.Errorf("%s %s: %v", method, target, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			conn.Close()
			what := method + " " + target
			check(what, resp.StatusCode, resp.Header, body)
			if resp.StatusCode != 404 && resp.StatusCode != 400 {
				t.Errorf("%s: got %d %s, want 404 (or 400 for a request line net/http refuses)", what, resp.StatusCode, body)
			}
			if resp.StatusCode == 404 {
				wantEnvelope(t, what, &reply{Status: resp.StatusCode, Header: resp.Header, Body: body}, 404, "not_found", s)
			} else {
				checkNoInternals(t, what, string(body))
			}
		}
	}
	// Query parameters name no file either.
	for _, p := range []string{"/healthz?file=/etc/passwd", "/v1/registry?file=" + secretFile, "/metrics?path=/etc/passwd", "/readyz?f=../../etc/passwd"} {
		r := s.do("GET", p, "", nil)
		check("GET "+p, r.Status, r.Header, r.Body)
		if r.Status != 200 {
			t.Errorf("GET %s: got %d, want the endpoint's own answer", p, r.Status)
		}
	}
}

// TestErrorEnvelopes requests every error the handler can answer and
// checks each is exactly the contract's envelope, with a message that
// says nothing about the server's internals or files.
func TestErrorEnvelopes(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	tests := []struct {
		method, path, ct, body string
		status                 int
		code                   string
	}{
		{"POST", "/v1/check", "application/json", `{"subject": `, 400, "invalid_request"},
		{"POST", "/v1/check", "application/json", `{"subject": "a", "resource": 7}`, 400, "invalid_request"},
		{"POST", "/v1/check", "application/json", `{"subject": "a", "resource": "b"} {}`, 400, "invalid_request"},
		{"POST", "/v1/check", "application/json", `{"subject": "a", "resource": "b", "context": {"x": 1e999}}`, 400, "invalid_request"},
		{"POST", "/v1/check", "application/json", "{\"subject\": \"\xff\", \"resource\": \"b\"}", 400, "invalid_request"},
		{"POST", "/v1/check", "application/json", `{"subject": "a", "resource": "b", "context": ` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, 400, "invalid_request"},
		{"POST", "/v1/check", "application/json", `{"subject": "a", "resource": "b", "context": {"p": "` + strings.Repeat("x", 65<<10) + `"}}`, 413, "request_too_large"},
		{"POST", "/v1/check", "text/plain", allowBody, 415, "unsupported_media_type"},
		{"POST", "/v1/check", "", allowBody, 415, "unsupported_media_type"},
		{"GET", "/v1/check", "", "", 405, "method_not_allowed"},
		{"DELETE", "/healthz", "", "", 405, "method_not_allowed"},
		{"PUT", "/v1/registry", "application/json", "{}", 405, "method_not_allowed"},
		{"GET", "/v1/nothing", "", "", 404, "not_found"},
		{"GET", "/debug/pprof/", "", "", 404, "not_found"},
	}
	for _, tt := range tests {
		r := s.do(tt.method, tt.path, tt.ct, []byte(tt.body))
		wantEnvelope(t, fmt.Sprintf("%s %s %.40q", tt.method, tt.path, tt.body), r, tt.status, tt.code, s)
	}
	// 503 decision_log_unavailable is checked under each log fault
	// (TestDecisionLogFaults).
}

// TestKeyMaterialRefused gives generate, load-registry, serve and drift an
// inventory or snapshot carrying something that looks like key material:
// each refuses it with an error naming the key and where it is, and never
// prints the value.
func TestKeyMaterialRefused(t *testing.T) {
	skipShort(t)
	t.Parallel()
	dir := t.TempDir()
	const value = "zq-secret-value-1234"
	inventory := readFile(t, "../examples/ops-warden/inventory.yaml")
	fixture := loadFixture(t)
	sealed := func(data []byte) []byte {
		// Re-seal the digest, so that only the key material is wrong.
		s, err := registry.ParseUnverified(bytes.Replace(data, []byte(`  "vault_token": "`+value+`",`+"\n"), nil, 1))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Replace(data, []byte(fixture.Digest), []byte(s.ComputeDigest()), 1)
	}
	files := map[string][]byte{
		"private_key.yaml":       append(bytes.Clone(inventory), []byte("private_key: "+value+"\n")...),
		"actor_vault_token.yaml": bytes.Replace(inventory, []byte("\nactors:\n"), []byte("\nactors:\n  agt-leaky:\n    ttl_hours: 1\n    vault_token: "+value+"\n"), 1),
		"top.json":               sealed(bytes.Replace(fixture.Canonical(), []byte(`  "source"`), []byte(`  "vault_token": "`+value+`",`+"\n"+`  "source"`), 1)),
		"actor.json":             bytes.Replace(fixture.Canonical(), []byte(`"type": "agt",`), []byte(`"type": "agt", "private_key": "`+value+`",`), 1),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if bytes.Equal(files["actor_vault_token.yaml"], inventory) {
		t.Fatal("the example inventory has no actors: line to add to")
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	out := p("out.json")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // in stderr
	}{
		{"generate, top-level private_key", []string{"generate", p("private_key.yaml"), "-o", out}, 1, []string{"private_key.yaml:", `"private_key" looks like key material`}},
		{"generate, vault_token of an actor", []string{"generate", p("actor_vault_token.yaml"), "-o", out}, 1, []string{"actor_vault_token.yaml:", `"vault_token" looks like key material`}},
		{"load-registry, top-level vault_token", []string{"load-registry", "--file", p("top.json")}, 1, []string{"top.json", "vault_token", "looks like key material"}},
		{"load-registry, private_key of an actor", []string{"load-registry", "--file", p("actor.json")}, 1, []string{"actor.json", "private_key", "looks like key material"}},
		// serve's stderr, like /healthz, names where, not the member's
		// name: that is the file's, like its values.
		{"serve", []string{"serve", "--addr", "127.0.0.1:0", "--registry", p("actor.json"), "--policy", fixturePolicy, "--log", p("log.jsonl")}, 1, []string{"actor.json", "].<redacted>: unknown member that looks like key material"}},
		{"drift, inventory", []string{"drift", p("private_key.yaml"), fixtureRegistry}, 2, []string{"private_key.yaml:", "looks like key material"}},
		{"drift, snapshot", []string{"drift", "../examples/ops-warden/inventory.yaml", p("top.json")}, 2, []string{"top.json", "vault_token", "looks like key material"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, cleanEnv, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit: got %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr: got\n%s\nwant it to contain %q", stderr, w)
				}
			}
			if strings.Contains(stdout+stderr, value) {
				t.Errorf("the value of the key material was printed:\n%s%s", stdout, stderr)
			}
			if fileExists(out) {
				t.Errorf("generate wrote %s from an inventory with key material", out)
			}
		})
	}
}
