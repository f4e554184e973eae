package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/publication"
	"github.com/coulomb/flex-auth/registry"
)

// IsURL reports whether s is an http:// or https:// URL.
func IsURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// HTTPConfig configures an HTTP source.
type HTTPConfig struct {
	// Registry and Policy are each an http:// or https:// URL, or a file
	// (at least one is a URL).
	Registry, Policy string
	// Client fetches the URLs; nil is a client with
	// publication.NewTransport's timeouts that follows redirects, but
	// never from https to http.
	Client    *http.Client
	UserAgent string
}

// An HTTP is a Remote that polls a registry snapshot and a policy
// package at HTTP(S) URLs, each with one conditional request per poll
// (see document.get). One of the two may be a local file instead, read
// again when its size, time or inode changes.
type HTTP struct {
	cfg      HTTPConfig
	client   *http.Client
	reg, pol *document

	mu        sync.Mutex
	servedKey string
	// refusedKey and refusedErr remember the pair last refused.
	refusedKey string
	refusedErr error
}

// NewHTTP returns a Remote for cfg.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	if !IsURL(cfg.Registry) && !IsURL(cfg.Policy) {
		return nil, errors.New("source: neither the registry nor the policy is a URL")
	}
	c := cfg.Client
	if c == nil {
		c = &http.Client{Transport: publication.NewTransport(), CheckRedirect: noDowngrade}
	}
	h := &HTTP{cfg: cfg, client: c}
	h.reg = &document{loc: cfg.Registry, kind: readfile.Registry, parse: func(name string, data []byte) (any, error) {
		return parseRegistry(name, data)
	}}
	h.pol = &document{loc: cfg.Policy, kind: readfile.Policy, parse: func(name string, data []byte) (any, error) {
		return parsePolicy(name, data)
	}}
	return h, nil
}

// noDowngrade follows up to 10 redirects, never from https to http.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refused a redirect from https to %s", redact.URL(req.URL.String()))
	}
	return nil
}

// Kind returns "http".
func (h *HTTP) Kind() string { return "http" }

func (h *HTTP) String() string { return "registry " + h.reg.name() + ", policy " + h.pol.name() }

// DocumentInfo describes one of the two documents served, for /healthz.
type DocumentInfo struct {
	Location     string `json:"location"`
	SHA256       string `json:"sha256"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// HTTPInfo describes the pair served, for /healthz.
type HTTPInfo struct {
	Registry DocumentInfo `json:"registry"`
	Policy   DocumentInfo `json:"policy"`
}

// LogValue logs the pair as the digests of the two documents.
func (i HTTPInfo) LogValue() slog.Value {
	return slog.GroupValue(slog.String("registry_sha256", i.Registry.SHA256), slog.String("policy_sha256", i.Policy.SHA256))
}

// Fetch asks for each document with a conditional request and returns
// the pair when either changed.
func (h *HTTP) Fetch(ctx context.Context, force bool) (*Update, error) {
	regChanged, err := h.reg.fetch(ctx, h, force)
	if err != nil {
		return nil, err
	}
	polChanged, err := h.pol.fetch(ctx, h, force)
	if err != nil {
		return nil, err
	}
	if err := h.reg.err; err != nil {
		return nil, err
	}
	if err := h.pol.err; err != nil {
		return nil, err
	}
	key := h.reg.sum + " " + h.pol.sum
	h.mu.Lock()
	servedKey, refusedKey, refusedErr := h.servedKey, h.refusedKey, h.refusedErr
	h.mu.Unlock()
	switch {
	case key == servedKey:
		return nil, nil
	case key == refusedKey && !force && !regChanged && !polChanged:
		return nil, refusedErr
	}
	info := HTTPInfo{Registry: h.reg.info(), Policy: h.pol.info()}
	return &Update{
		Snapshot: h.reg.parsed.(*registry.Snapshot), Package: h.pol.parsed.(*policy.Package),
		RegistryName: h.reg.name(), PolicyName: h.pol.name(), Publication: info,
		Served: func() {
			h.mu.Lock()
			h.servedKey, h.refusedKey, h.refusedErr = key, "", nil
			h.mu.Unlock()
		},
		Refused: func(err error) {
			h.mu.Lock()
			h.refusedKey, h.refusedErr = key, err
			h.mu.Unlock()
		},
	}, nil
}

// A document is the registry or the policy of an HTTP source: a URL or a
// file, and what was last read from it.
type document struct {
	loc   string
	kind  readfile.Kind // its name for messages, and its size cap
	parse func(name string, data []byte) (any, error)

	// What was last read: its validators, its SHA-256, and what it
	// parses to, or why it does not.
	etag, lastModified string
	length             int64
	stamp              fileStamp
	sum                string
	parsed             any
	err                error
}

func (d *document) name() string {
	if IsURL(d.loc) {
		return redact.URL(d.loc)
	}
	return d.loc
}

func (d *document) info() DocumentInfo {
	return DocumentInfo{Location: d.name(), SHA256: d.sum, ETag: d.etag, LastModified: d.lastModified}
}

// fetch reads the document again when it may have changed, and reports
// whether it did. A document that was read but does not parse is
// remembered with its error, in d.err, until it changes.
func (d *document) fetch(ctx context.Context, h *HTTP, force bool) (bool, error) {
	var data []byte
	var etag, lastModified string
	var stamp fileStamp
	if IsURL(d.loc) {
		var err error
		var notModified bool
		data, etag, lastModified, notModified, err = d.get(ctx, h, force)
		if err != nil || notModified {
			return false, err
		}
	} else {
		var err error
		stamp, err = stampOf(d.loc)
		if err != nil {
			return false, fmt.Errorf("read %s: %w", d.loc, err)
		}
		if !force && d.sum != "" && stamp == d.stamp {
			return false, nil
		}
		if data, err = readfile.Read(d.loc, d.kind); err != nil {
			return false, fmt.Errorf("read %s: %w", d.loc, err)
		}
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	d.etag, d.lastModified, d.stamp, d.length = etag, lastModified, stamp, int64(len(data))
	if hexSum == d.sum {
		return false, nil
	}
	// A registry of 100,000 actors is parsed next to the one served:
	// collect first, as a reload does.
	runtime.GC()
	d.sum = hexSum
	d.parsed, d.err = d.parse(d.name(), data)
	return true, nil
}

// get fetches the document's URL and returns the body, or notModified
// when it has not changed since it was last fetched. Unless force, it
// asks with one conditional request: a GET with If-None-Match when the
// last answer had an ETag; else, when it had a Last-Modified, a HEAD
// whose Last-Modified and Content-Length must both be the same (a GET
// follows when either differs). If-Modified-Since is not used: a server
// answers it 304 for a new file whose time is not later than the old
// one's (a copy that kept its time), and such a change would go unseen.
func (d *document) get(ctx context.Context, h *HTTP, force bool) (data []byte, etag, lastModified string, notModified bool, err error) {
	if !force && d.sum != "" && d.etag == "" && d.lastModified != "" {
		resp, err := d.do(ctx, h, http.MethodHead, "")
		if err != nil {
			return nil, "", "", false, err
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && resp.ContentLength == d.length && strongLastModified(resp.Header) == d.lastModified {
			return nil, "", "", true, nil
		}
	}
	inm := ""
	if !force && d.sum != "" {
		inm = d.etag
	}
	resp, err := d.do(ctx, h, http.MethodGet, inm)
	if err != nil {
		return nil, "", "", false, err
	}
	defer resp.Body.Close()
	name := d.name()
	switch {
	case resp.StatusCode == http.StatusNotModified && inm != "":
		return nil, "", "", true, nil
	case resp.StatusCode != http.StatusOK:
		return nil, "", "", false, fmt.Errorf("GET %s: %d %s", name, resp.StatusCode, http.StatusText(resp.StatusCode))
	case resp.ContentLength > d.kind.Max:
		return nil, "", "", false, &RefusedError{Err: fmt.Errorf("GET %s: %d bytes; the limit is %d", name, resp.ContentLength, d.kind.Max)}
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, d.kind.Max+1))
	if err != nil {
		return nil, "", "", false, fmt.Errorf("GET %s: reading the answer: %w", name, urlError(err))
	}
	if int64(len(data)) > d.kind.Max {
		return nil, "", "", false, &RefusedError{Err: fmt.Errorf("GET %s: more than %d bytes; the limit is %d", name, d.kind.Max, d.kind.Max)}
	}
	return data, resp.Header.Get("ETag"), strongLastModified(resp.Header), false, nil
}

// do sends one request for the document's URL, with If-None-Match when
// inm is set.
func (d *document) do(ctx context.Context, h *HTTP, method, inm string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, d.loc, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, d.name(), urlError(err))
	}
	if h.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", h.cfg.UserAgent)
	}
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, d.name(), urlError(err))
	}
	return resp, nil
}

// strongLastModified returns the answer's Last-Modified when it can tell
// a later change (RFC 9110, 8.8.2.2): when it is at least a second before
// the answer's Date. A document changed again within the second it was
// fetched would have the same one; without it the next poll is a GET.
func strongLastModified(h http.Header) string {
	lm, err := http.ParseTime(h.Get("Last-Modified"))
	if err != nil {
		return ""
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil || date.Sub(lm) < time.Second {
		return ""
	}
	return h.Get("Last-Modified")
}

// urlError drops the URL a *url.Error quotes: it may hold credentials,
// and the caller names the redacted one.
func urlError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// A fileStamp tells whether a file may have changed: a different size,
// modification time or inode (a Kubernetes ConfigMap update, an atomic
// rename) is a change.
type fileStamp struct {
	size    int64
	modTime time.Time
	dev     uint64
	ino     uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	s := fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
	}
	return s, nil
}
