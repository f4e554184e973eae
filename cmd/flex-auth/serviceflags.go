package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/serve"
	"github.com/spf13/pflag"
)

// serviceFlags are the flags check and smoke share to reach a running
// flex-auth: where it is, which actor is asked about and by whom, how long
// to wait, and the client TLS.
type serviceFlags struct {
	url, actor, subject string
	timeout             time.Duration
	tls                 tlsFlags
}

func (f *serviceFlags) register(fs *pflag.FlagSet, actorUsage, timeoutUsage string) {
	fs.StringVar(&f.url, "url", "", "base url of the flex-auth service (default $FLEX_AUTH_URL)")
	fs.StringVar(&f.actor, "actor", "", actorUsage)
	fs.StringVar(&f.subject, "subject", "", "subject asking (default $WARDEN_POLICY_SUBJECT, then the actor)")
	fs.DurationVar(&f.timeout, "timeout", client.DefaultTimeout, timeoutUsage)
	f.tls.register(fs)
}

// client fills in the defaults from the environment ($FLEX_AUTH_URL,
// $WARDEN_POLICY_SUBJECT), checks that the service and the actor are
// named, and returns a client for the service.
func (f *serviceFlags) client() (*client.Client, error) {
	if f.url == "" {
		f.url = os.Getenv("FLEX_AUTH_URL")
	}
	if f.subject == "" {
		f.subject = os.Getenv("WARDEN_POLICY_SUBJECT")
	}
	switch {
	case f.url == "":
		return nil, errors.New("no service url: pass --url or set FLEX_AUTH_URL")
	case f.actor == "":
		return nil, errors.New("--actor is required")
	}
	opts, err := f.tls.options()
	if err != nil {
		return nil, err
	}
	return client.New(f.url, append(opts, client.WithTimeout(f.timeout))...)
}

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
	rt := &http.Transport{TLSClientConfig: conf, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	return []client.Option{client.WithTransport(rt)}, nil
}

func (f *tlsFlags) config() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caCert != "" {
		pem, err := readfile.Read(f.caCert, readfile.PEM)
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
		cert, err := serve.LoadKeyPair(f.clientCert, f.clientKey)
		if err != nil {
			return nil, fmt.Errorf("--client-cert and --client-key: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}
