package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/coulomb/flex-auth/client"
	"github.com/spf13/pflag"
)

// tlsFlags are the client TLS flags of check and smoke, for a service
// served with --tls-cert (and --client-ca: mutual TLS).
type tlsFlags struct {
	caCert, clientCert, clientKey string
}

func (f *tlsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.caCert, "ca-cert", "", "trust the service's certificate if a CA in this PEM `FILE` signed it (default: the system's roots)")
	fs.StringVar(&f.clientCert, "client-cert", "", "present this client certificate `FILE` (PEM, with --client-key) to a service that requires mutual TLS")
	fs.StringVar(&f.clientKey, "client-key", "", "private key `FILE` of --client-cert (PEM)")
}

// options returns the client options the flags ask for: none when no flag
// is set.
func (f *tlsFlags) options() ([]client.Option, error) {
	if f.caCert == "" && f.clientCert == "" && f.clientKey == "" {
		return nil, nil
	}
	conf, err := f.config()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{
		Transport: &http.Transport{TLSClientConfig: conf, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true},
		// As client.New's own: a policy endpoint that redirects is
		// misconfigured, and following it could send the question, and
		// the client certificate, somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return []client.Option{client.WithHTTPClient(hc)}, nil
}

func (f *tlsFlags) config() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caCert != "" {
		pem, err := os.ReadFile(f.caCert)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in the file", f.caCert)
		}
		conf.RootCAs = pool
	}
	switch {
	case f.clientCert == "" && f.clientKey == "":
	case f.clientCert == "" || f.clientKey == "":
		return nil, errors.New("--client-cert and --client-key go together: give both")
	default:
		cert, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
		if err != nil {
			return nil, fmt.Errorf("--client-cert %s and --client-key %s: %w", f.clientCert, f.clientKey, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
