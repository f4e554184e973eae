package main

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/coulomb/flex-auth/prcomment"
	"github.com/coulomb/flex-auth/prcomment/prcommenttest"
)

// The credentials the tests put in URLs; none of them may show anywhere.
const (
	secretUser  = "u5er-n4me"
	secretPass  = "s3cr3t-pw"
	secretQuery = "t0ken-in-query"
)

// withCredentials returns srvURL with user information and a query that
// carries a token.
func withCredentials(t *testing.T, srvURL, user, pass string) string {
	t.Helper()
	u, err := url.Parse(srvURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	u.RawQuery = "access_token=" + secretQuery
	return u.String()
}

// checkNoSecret fails the test if what holds any of the credentials.
func checkNoSecret(t *testing.T, where, what string) {
	t.Helper()
	for _, s := range []string{secretUser, secretPass, secretQuery, "other-pw"} {
		if strings.Contains(what, s) {
			t.Errorf("%s shows the credential %q:\n%s", where, s, what)
		}
	}
}

// authServer serves body as the registry to requests that present the
// credentials, and 401 to others.
func authServer(t *testing.T, body []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != secretUser || (p != secretPass && p != "other-pw") {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestDriftRedactsCredentials: a URL's user name, password and query
// never show in what drift prints or posts, in any format, in the step
// summary, the pull-request comment and its marker, or an error; and the
// credentials are still used. The comment's marker stays the same when
// the password changes.
func TestDriftRedactsCredentials(t *testing.T) {
	bin := flexAuthBinary(t)
	dir := t.TempDir()
	drifted, err := os.ReadFile(driftCases + "actor-removed/actual.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := authServer(t, drifted)
	secretURL := withCredentials(t, srv.URL, secretUser, secretPass)
	redacted := strings.Replace(srv.URL, "http://", "http://xxxxx@", 1) + "?xxxxx"

	t.Run("reports", func(t *testing.T) {
		summary := filepath.Join(dir, "summary.md")
		for _, f := range []string{"text", "json", "markdown", "github"} {
			for _, args := range [][]string{{driftFixture, secretURL}, {secretURL, driftFixture}} {
				os.WriteFile(summary, nil, 0o644)
				r := runDrift(t, bin, []string{"GITHUB_STEP_SUMMARY=" + summary}, append([]string{"drift", "--format", f}, args...)...)
				if r.code != 1 {
					t.Fatalf("%s %v: got exit %d, want 1 (drift; were the credentials sent?)\n%s%s", f, args, r.code, r.stdout, r.stderr)
				}
				checkNoSecret(t, f+" stdout", r.stdout)
				checkNoSecret(t, f+" stderr", r.stderr)
				if !strings.Contains(r.stdout, redacted) && !strings.Contains(r.stdout, strings.ReplaceAll(redacted, ":", "%3A")) {
					t.Errorf("%s: stdout does not name the service as %s:\n%s", f, redacted, r.stdout)
				}
				data, _ := os.ReadFile(summary)
				checkNoSecret(t, f+" step summary", string(data))
			}
		}
	})

	t.Run("comment", func(t *testing.T) {
		gh := prcommenttest.NewServer("coulomb", "flex-auth", 7, "ghs_test")
		defer gh.Close()
		event := filepath.Join(dir, "event.json")
		os.WriteFile(event, []byte(`{"pull_request": {"number": 7}}`), 0o644)
		env := []string{"GITHUB_TOKEN=ghs_test", "GITHUB_REPOSITORY=coulomb/flex-auth", "GITHUB_EVENT_PATH=" + event, "GITHUB_API_URL=" + gh.URL}
		r := runDrift(t, bin, env, "drift", driftFixture, secretURL, "--github-comment")
		if r.code != 1 || !strings.Contains(r.stderr, "pull request comment created") {
			t.Fatalf("got exit %d, stderr %q; want 1 and a comment created", r.code, r.stderr)
		}
		// The password changes: the same comment, found by the same marker.
		otherURL := withCredentials(t, srv.URL, secretUser, "other-pw")
		r = runDrift(t, bin, env, "drift", driftFixture, otherURL, "--github-comment")
		if r.code != 1 || !strings.Contains(r.stderr, "pull request comment unchanged") {
			t.Errorf("new password: got exit %d, stderr %q; want 1 and the comment unchanged", r.code, r.stderr)
		}
		cs := gh.Comments()
		if len(cs) != 1 || !strings.HasPrefix(cs[0].Body, prcomment.Marker(redacted)+"\n") {
			t.Fatalf("got comments %+v, want one, marked %s", cs, prcomment.Marker(redacted))
		}
		for _, req := range gh.Requests() {
			checkNoSecret(t, "a request to GitHub", req.Path+"?"+req.Query+"\n"+req.Body)
		}
	})

	t.Run("errors", func(t *testing.T) {
		closed := httptest.NewServer(http.NotFoundHandler())
		closedURL := withCredentials(t, closed.URL, secretUser, secretPass)
		closed.Close()
		failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error": {"code": "unavailable", "message": "shutting down"}}`, http.StatusServiceUnavailable)
		}))
		defer failing.Close()
		invalid := authServer(t, []byte(`{"schema": "flex-auth.registry/v1", "actors": [{"name": "nobody"}]}`))
		host := strings.TrimPrefix(srv.URL, "http://")
		tests := []struct {
			name     string
			args     []string
			inStderr string
		}{
			{"unreachable", []string{driftFixture, closedURL}, "is flex-auth running there?"},
			{"server error", []string{driftFixture, withCredentials(t, failing.URL, secretUser, secretPass)}, "503 Service Unavailable: shutting down"},
			{"invalid snapshot", []string{withCredentials(t, invalid.URL, secretUser, secretPass), driftFixture}, "invalid snapshot"},
			{"wrong password", []string{driftFixture, withCredentials(t, srv.URL, secretUser, "other-pw"+"x")}, "401 Unauthorized"},
			{"URL that does not parse", []string{driftFixture, "http://" + secretUser + ":" + secretPass + "%zz@" + host + "/"}, "invalid URL http://xxxxx@"},
			{"--write to a URL", []string{driftFixture, secretURL, "--write"}, "is not a snapshot file"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := runDrift(t, bin, nil, append([]string{"drift"}, tt.args...)...)
				if r.code != 2 || !strings.Contains(r.stderr, tt.inStderr) {
					t.Errorf("got exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tt.inStderr)
				}
				checkNoSecret(t, "stderr", r.stderr)
				checkNoSecret(t, "stdout", r.stdout)
			})
		}
	})
}

// checkTerminalSafe fails the test if out holds a character that a
// terminal or a log viewer acts on, other than newlines and tabs.
func checkTerminalSafe(t *testing.T, where, out string) {
	t.Helper()
	if got := termsafe.Text(out); got != out {
		t.Errorf("%s holds control characters:\n%q", where, out)
	}
}

// rawServer answers every connection with response, as it is: a server
// that sends what net/http's server would not.
func rawServer(t *testing.T, response string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				c.Write([]byte(response))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestDriftEscapesControlCharacters: what a remote answer or a file says
// reaches the terminal and the CI log with its control characters
// escaped: ESC sequences, BEL and CR in an error answer's message, body
// and status line, and in the header naming the policy served (which
// drift refuses), a CR in a snapshot file's line endings, an ESC in a
// file's name.
func TestDriftEscapesControlCharacters(t *testing.T) {
	bin := flexAuthBinary(t)
	dir := t.TempDir()
	const evil = "\x1b[2J\x1b]0;owned\a\u009b31mgone\rhidden\u202etxt"
	serve := func(status int, contentType, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	jsonMessage := `{"error": {"code": "x", "message": "` + strings.NewReplacer("\x1b", `\u001b`, "\a", `\u0007`, "\r", `\r`).Replace(evil) + `"}}`
	errorAnswers := []struct{ name, url string }{
		{"error message", serve(503, "application/json", jsonMessage)},
		{"error body", serve(500, "text/plain", "oops "+evil)},
		{"status line", rawServer(t, "HTTP/1.1 503 "+strings.NewReplacer("\r", "", "\n", "").Replace(evil)+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")},
	}
	// A registry served with a policy header that is not a package name.
	registry, err := os.ReadFile(driftFixture)
	if err != nil {
		t.Fatal(err)
	}
	withPackage := func(pkg string) string {
		return rawServer(t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"+
			"X-Flex-Auth-Package: "+pkg+"\r\nX-Flex-Auth-Policy-Digest: sha256:"+strings.Repeat("0", 64)+"\r\n"+
			"Content-Length: "+strconv.Itoa(len(registry))+"\r\nConnection: close\r\n\r\n"+string(registry))
	}
	errorAnswers = append(errorAnswers,
		struct{ name, url string }{"policy header", withPackage(strings.NewReplacer("\r", "", "\n", "").Replace(evil))},
		// What HTTP lets through, to be refused by drift itself.
		struct{ name, url string }{"policy header, bidi", withPackage("ops-warden/\u202egpj.exe\u009b31m")})
	for _, tt := range errorAnswers {
		t.Run(tt.name, func(t *testing.T) {
			r := runDrift(t, bin, nil, "drift", driftFixture, tt.url, "--policy", examplePolicyFile)
			if r.code != 2 {
				t.Fatalf("got exit %d, want 2\n%s", r.code, r.stderr)
			}
			checkTerminalSafe(t, "stderr", r.stderr)
			if strings.HasPrefix(tt.name, "policy header, ") && !strings.Contains(r.stderr, "malformed answer: header X-Flex-Auth-Package: invalid name") {
				t.Errorf("stderr %q: want the header refused by name", r.stderr)
			}
		})
	}

	// A snapshot with CRLF line endings, as a checkout with autocrlf
	// makes it, under a name with an ESC in it.
	fixture, err := os.ReadFile(driftCases + "member-changed/actual.json")
	if err != nil {
		t.Fatal(err)
	}
	crlf := filepath.Join(dir, "crlf\x1b[2J.json")
	if err := os.WriteFile(crlf, bytes.ReplaceAll(fixture, []byte("\n"), []byte("\r\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	summary := filepath.Join(dir, "summary.md")
	for _, f := range []string{"text", "json", "markdown", "github"} {
		t.Run("CRLF file, "+f, func(t *testing.T) {
			os.WriteFile(summary, nil, 0o644)
			r := runDrift(t, bin, []string{"GITHUB_STEP_SUMMARY=" + summary}, "drift", driftCases+"member-changed/expected.yaml", crlf, "--format", f)
			if r.code != 1 {
				t.Fatalf("got exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
			}
			checkTerminalSafe(t, "stdout", r.stdout)
			checkTerminalSafe(t, "stderr", r.stderr)
			data, _ := os.ReadFile(summary)
			checkTerminalSafe(t, "step summary", string(data))
			if f != "json" && !strings.Contains(r.stdout, `\r`) {
				t.Errorf("the CRs do not show in the diff:\n%s", r.stdout)
			}
		})
	}
}

// TestDriftRefusesRedirects: drift reads the registry at the URL it is
// given and nowhere else; a redirect is an error that names it, and the
// target is never asked.
func TestDriftRefusesRedirects(t *testing.T) {
	bin := flexAuthBinary(t)
	fixture, err := os.ReadFile(driftFixture)
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Write(fixture)
	}))
	defer elsewhere.Close()
	target := withCredentials(t, elsewhere.URL+"/v1/registry", secretUser, secretPass)
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			redirecting := httptest.NewServer(http.RedirectHandler(target, status))
			defer redirecting.Close()
			r := runDrift(t, bin, nil, "drift", driftFixture, redirecting.URL)
			if r.code != 2 {
				t.Fatalf("got exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
			}
			for _, want := range []string{http.StatusText(status), "a redirect to " + strings.Replace(elsewhere.URL, "http://", "http://xxxxx@", 1) + "/v1/registry?xxxxx", "does not follow redirects"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr %q does not say %q", r.stderr, want)
				}
			}
			checkNoSecret(t, "stderr", r.stderr)
		})
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the redirect target was asked %d times, want never", n)
	}
}
