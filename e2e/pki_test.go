package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A pki is a throwaway certificate authority with a server certificate for
// 127.0.0.1 and client certificates, good and bad, written as PEM files in
// a test's directory. No key is ever checked in.
type pki struct {
	dir        string
	CA         string // the CA certificate file
	ServerCert string
	ServerKey  string
	pool       *x509.CertPool
	caCert     *x509.Certificate
	caKey      *ecdsa.PrivateKey
}

// A clientCert is a client certificate and key file, and the details of
// it that must never reach a log.
type clientCert struct {
	Cert, Key string
	Details   []string // CN, serial, e-mail and URI SANs, O and OU
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), pool: x509.NewCertPool()}
	p.caKey = newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.pool.AddCert(p.caCert)
	p.CA = p.write(t, name+"-ca.pem", "CERTIFICATE", der)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "flex-auth e2e server"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	c := p.issue(t, "server", srv)
	p.ServerCert, p.ServerKey = c.Cert, c.Key
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue signs tmpl with the CA (or itself, when tmpl is the parent too).
func (p *pki) issue(t *testing.T, name string, tmpl *x509.Certificate) clientCert {
	t.Helper()
	k := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return clientCert{Cert: p.write(t, name+".pem", "CERTIFICATE", der), Key: p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)}
}

// client issues a client certificate whose every detail is distinctive:
// tag is in its CN, O, OU, e-mail and URI, and its serial is unusual.
// valid shifts its validity into the past when false; usage is its
// extended key usage.
func (p *pki) client(t *testing.T, tag string, current bool, usage x509.ExtKeyUsage) clientCert {
	t.Helper()
	now := time.Now()
	serial := big.NewInt(0).SetBytes([]byte(tag))
	u, _ := url.Parse("spiffe://e2e/" + tag + "-uri")
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: tag + "-cn", Organization: []string{tag + "-org"}, OrganizationalUnit: []string{tag + "-ou"}},
		NotBefore:    now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		EmailAddresses: []string{tag + "@e2e.invalid"}, URIs: []*url.URL{u},
	}
	if !current {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	}
	c := p.issue(t, tag, tmpl)
	c.Details = []string{tag + "-cn", tag + "-org", tag + "-ou", tag + "@e2e.invalid", tag + "-uri", serial.String(), serial.Text(16)}
	return c
}

// httpClient returns a client that trusts p's CA and presents cert, when
// it is not nil.
func (p *pki) httpClient(t *testing.T, cert *clientCert) *http.Client {
	t.Helper()
	conf := &tls.Config{RootCAs: p.pool}
	if cert != nil {
		c, err := tls.LoadX509KeyPair(cert.Cert, cert.Key)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 10 * time.Second}
}
