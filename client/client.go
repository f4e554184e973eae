// Package client talks to a running flex-auth decision service (CONTRACT
// section 6) and fails closed: an answer is accepted only when it is
// exactly what the contract promises, and anything else is an error, never
// a decision.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/registry"
)

// DefaultTimeout bounds each call, connection to last byte, unless
// WithTimeout says otherwise.
const DefaultTimeout = 5 * time.Second

// Effects of a decision.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Limits on answer sizes: a decision or health answer is a few hundred
// bytes; a registry snapshot has the cap of one wherever it comes from.
const (
	maxAnswerBytes   = 64 << 10
	maxRegistryBytes = readfile.MaxRegistryBytes
)

// A Client asks one flex-auth service for decisions. It is safe for
// concurrent use.
type Client struct {
	base    *url.URL
	hc      *http.Client
	timeout time.Duration
}

// An Option configures a Client.
type Option func(*Client)

// WithTimeout sets how long one call may take, connection to last byte.
// Zero or less means no limit other than the caller's context.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithTransport makes the client send its requests through rt, for TLS
// settings, proxies or connection pooling. Whatever the transport, the
// client follows no redirects.
func WithTransport(rt http.RoundTripper) Option { return func(c *Client) { c.hc.Transport = rt } }

// New returns a client for the service at baseURL, an http or https URL
// whose path, if any, is the prefix the API is mounted under.
func New(baseURL string, opts ...Option) (*Client, error) {
	// Errors name the URL without what may be a credential (redact.URL).
	shown := redact.URL(baseURL)
	u, err := url.Parse(baseURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return nil, fmt.Errorf("service url %q: want an http:// or https:// url: %w", shown, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("service url %q: want an http:// or https:// url", shown)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("service url %q: no host", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("service url %q: want a base url without query or fragment", shown)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{
		base: u,
		hc: &http.Client{
			// A policy endpoint that redirects is misconfigured; following
			// it silently could send the question somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: DefaultTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// URL returns the service's base URL with its user information masked
// (redact.URL), fit for evidence and logs.
func (c *Client) URL() string { return redact.URL(c.base.String()) }

// A Request asks whether Subject may perform Action on Resource.
type Request struct {
	Subject  string         `json:"subject"`
	Action   string         `json:"action,omitempty"`
	Resource string         `json:"resource"`
	Context  map[string]any `json:"context,omitempty"`
}

// A Decision is the service's answer to a Request. A deny is a decision
// too; only an allow carries a Grant.
type Decision struct {
	ID             string `json:"decision_id"`
	Effect         string `json:"effect"`
	Reason         string `json:"reason"`
	Policy         string `json:"policy"`
	PolicyDigest   string `json:"policy_digest"`
	RegistryDigest string `json:"registry_digest"`
	Grant          *Grant `json:"grant,omitempty"`
}

// Allowed reports whether the decision is an allow.
func (d *Decision) Allowed() bool { return d.Effect == Allow }

// A Grant is what an allow permits: a certificate for Principal valid for
// TTLHours.
type Grant struct {
	Principal string `json:"principal"`
	TTLHours  int    `json:"ttl_hours"`
}

// Health is the answer of GET /healthz.
type Health struct {
	Status   string         `json:"status"`
	Registry RegistryStatus `json:"registry"`
	Policy   PolicyStatus   `json:"policy"`
	Reload   ReloadStatus   `json:"reload"`
}

// OK reports whether the service serves what it last loaded: status "ok"
// rather than "degraded".
func (h *Health) OK() bool { return h.Status == "ok" }

// RegistryStatus describes the registry a service serves.
type RegistryStatus struct {
	Digest   string    `json:"digest"`
	Actors   int       `json:"actors"`
	LoadedAt time.Time `json:"loaded_at"`
}

// PolicyStatus describes the policy package a service evaluates.
type PolicyStatus struct {
	Package string `json:"package"`
	Digest  string `json:"digest"`
}

// ReloadStatus describes the last reload attempt; both fields are nil
// before the first.
type ReloadStatus struct {
	LastError     *string    `json:"last_error"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
}

// Check asks for one decision. It returns a decision only when the service
// answered 200 with a complete, well-formed envelope; otherwise the error
// is an *UnreachableError, a *StatusError or a *ProtocolError.
func (c *Client) Check(ctx context.Context, req Request) (*Decision, error) {
	if req.Subject == "" || req.Resource == "" {
		return nil, errors.New("check: subject and resource are required")
	}
	body, err := json.Marshal(req, json.Deterministic(true))
	if err != nil {
		return nil, fmt.Errorf("check: encode request: %w", err)
	}
	data, _, err := c.do(ctx, http.MethodPost, "/v1/check", body, maxAnswerBytes)
	if err != nil {
		return nil, err
	}
	d, err := parseDecision(data)
	if err != nil {
		return nil, &ProtocolError{Op: "POST " + c.endpoint("/v1/check"), Err: err}
	}
	return d, nil
}

// Health fetches GET /healthz. A degraded service is not an error: the
// caller decides what degraded means to it (see Health.OK).
func (c *Client) Health(ctx context.Context) (*Health, error) {
	data, _, err := c.do(ctx, http.MethodGet, "/healthz", nil, maxAnswerBytes)
	if err != nil {
		return nil, err
	}
	h, err := parseHealth(data)
	if err != nil {
		return nil, &ProtocolError{Op: "GET " + c.endpoint("/healthz"), Err: err}
	}
	return h, nil
}

// Registry fetches GET /v1/registry: the snapshot the service serves,
// validated and digest-checked like a file.
func (c *Client) Registry(ctx context.Context) (*registry.Snapshot, error) {
	data, _, err := c.do(ctx, http.MethodGet, "/v1/registry", nil, maxRegistryBytes)
	if err != nil {
		return nil, err
	}
	s, err := registry.Parse(data)
	if err != nil {
		return nil, &ProtocolError{Op: "GET " + c.endpoint("/v1/registry"), Err: err}
	}
	return s, nil
}

// The headers of GET /v1/registry that name the policy package the
// registry is served for, and that package's digest: the snapshot itself
// names the package (policy_package), not the policy served.
const (
	HeaderPackage      = "X-Flex-Auth-Package"
	HeaderPolicyDigest = "X-Flex-Auth-Policy-Digest"
)

// A ServedRegistry is the answer of GET /v1/registry: the snapshot as the
// service sent it, and the policy package the service serves it with.
type ServedRegistry struct {
	// JSON is the snapshot as sent, within the registry size limit, not
	// validated, for a caller that reads it as it reads a file (drift
	// reports a digest that does not match as drift, not as an error).
	JSON []byte
	// Policy is the package and its digest the headers HeaderPackage and
	// HeaderPolicyDigest name; nil when the service sends neither (a
	// flex-auth from before they were added, or a proxy that drops them).
	Policy *PolicyStatus
}

// RegistryWithPolicy fetches GET /v1/registry, as Registry does but
// without validating the snapshot, and the policy package the service
// serves the registry with. The headers are optional, but when sent they
// must be well formed: both of them, once each, a package name and a
// "sha256:" digest; anything else is a *ProtocolError, never a policy.
func (c *Client) RegistryWithPolicy(ctx context.Context) (*ServedRegistry, error) {
	data, h, err := c.do(ctx, http.MethodGet, "/v1/registry", nil, maxRegistryBytes)
	if err != nil {
		return nil, err
	}
	p, err := servedPolicy(h)
	if err != nil {
		return nil, &ProtocolError{Op: "GET " + c.endpoint("/v1/registry"), Err: err}
	}
	return &ServedRegistry{JSON: data, Policy: p}, nil
}

// servedPolicy reads the policy headers of a registry answer: nil when
// neither is sent.
func servedPolicy(h http.Header) (*PolicyStatus, error) {
	pkg, digest := h.Values(HeaderPackage), h.Values(HeaderPolicyDigest)
	if len(pkg) == 0 && len(digest) == 0 {
		return nil, nil
	}
	one := func(name string, values []string, check func(string) error) (string, error) {
		switch {
		case len(values) == 0:
			return "", fmt.Errorf("header %s is missing, though %s is sent", name, otherHeader(name))
		case len(values) > 1:
			return "", fmt.Errorf("header %s is sent %d times, want once", name, len(values))
		case len(values[0]) > maxExcerpt:
			return "", fmt.Errorf("header %s: %d bytes, too long", name, len(values[0]))
		}
		if err := check(values[0]); err != nil {
			return "", fmt.Errorf("header %s: %w", name, err)
		}
		return values[0], nil
	}
	var (
		p   PolicyStatus
		err error
	)
	if p.Package, err = one(HeaderPackage, pkg, registry.CheckPackageName); err != nil {
		return nil, err
	}
	if p.Digest, err = one(HeaderPolicyDigest, digest, checkDigest); err != nil {
		return nil, err
	}
	return &p, nil
}

func otherHeader(name string) string {
	if name == HeaderPackage {
		return HeaderPolicyDigest
	}
	return HeaderPackage
}

// endpoint returns the URL of an API path of the service, fit for
// messages like URL.
func (c *Client) endpoint(path string) string {
	u := *c.base
	u.Path += path
	return redact.URL(u.String())
}

// do sends one request and returns the body and headers of a 200 JSON
// answer.
func (c *Client) do(ctx context.Context, method, path string, body []byte, limit int64) ([]byte, http.Header, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := *c.base
	u.Path += path
	op := method + " " + c.endpoint(path)
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, &UnreachableError{Op: op, Timeout: c.timeout, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, &UnreachableError{Op: op, Timeout: c.timeout, Err: fmt.Errorf("reading the answer: %w", unwrapURLError(err))}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, newStatusError(op, resp, data)
	}
	if int64(len(data)) > limit {
		return nil, nil, &ProtocolError{Op: op, Err: fmt.Errorf("answer larger than %d bytes", limit)}
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, nil, &ProtocolError{Op: op, Err: fmt.Errorf("answer has Content-Type %q, want application/json", resp.Header.Get("Content-Type"))}
	}
	return data, resp.Header, nil
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the
// method and URL that the error's Op already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
