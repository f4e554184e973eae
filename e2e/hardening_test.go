package e2e

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// TestEncodedSlashNotRouted checks that a path with an encoded slash names
// no endpoint: "/v1%2Fcheck" is one segment, not /v1/check. Other
// percent-encodings name what they decode to (RFC 3986, 6.2.2.2).
func TestEncodedSlashNotRouted(t *testing.T) {
	skipShort(t)
	t.Parallel()
	s := startServer(t)
	body := []byte(`{"subject": "iam:agt-state-hub-bridge", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 24}}`)
	for _, p := range []string{"/v1%2Fcheck", "/v1%2fcheck", "/v1/check%2F", "/v1%2F%2E%2E%2Fv1/check"} {
		r := s.do("POST", p, "application/json", body)
		wantEnvelope(t, "POST "+p, r, 404, "not_found", s)
	}
	for _, p := range []string{"/healthz%2F", "/v1%2Fregistry"} {
		wantEnvelope(t, "GET "+p, s.do("GET", p, "", nil), 404, "not_found", s)
	}
	if r := s.do("POST", "/v1/%63heck", "application/json", body); r.Status != 200 {
		t.Errorf("POST /v1/%%63heck (an encoded unreserved letter): got %d %s, want 200", r.Status, r.Body)
	}
	if lines, _ := readLog(t, readFile(t, s.Log)); len(lines) != 1 {
		t.Errorf("decision log: got %d lines, want only the decision of /v1/%%63heck", len(lines))
	}
}

// TestServerCertificateValidity starts the server with a certificate that
// has expired and with one not valid yet: both are start-up errors, one
// line naming the file and the dates, exit 1.
func TestServerCertificateValidity(t *testing.T) {
	skipShort(t)
	t.Parallel()
	ca := newPKI(t, "e2e-validity-ca")
	now := time.Now()
	tests := []struct {
		name      string
		from, to  time.Time
		wantWords string
	}{
		{"expired", now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), "has expired"},
		{"not yet valid", now.Add(24 * time.Hour), now.Add(48 * time.Hour), "is not valid yet"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ca.issue(t, strings.ReplaceAll(tt.name, " ", "-"), &x509.Certificate{
				SerialNumber: big.NewInt(int64(100 + i)), Subject: pkix.Name{CommonName: "flex-auth e2e " + tt.name},
				NotBefore: tt.from, NotAfter: tt.to,
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			})
			s := newServer(t)
			s.launch(t, s.serveArgs("--tls-cert", c.Cert, "--tls-key", c.Key)...)
			if code := s.wait(); code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, s.stderr)
			}
			stderr := strings.TrimSpace(s.stderr.String())
			if strings.Contains(stderr, "\n") || !strings.Contains(stderr, c.Cert) || !strings.Contains(stderr, tt.wantWords) ||
				!strings.Contains(stderr, tt.from.UTC().Format(time.RFC3339)) || !strings.Contains(stderr, tt.to.UTC().Format(time.RFC3339)) {
				t.Errorf("stderr %q: want one line naming %s, %q and the dates", stderr, c.Cert, tt.wantWords)
			}
		})
	}
}
