package publication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// Options say how to reach a registry.
type Options struct {
	// PlainHTTP talks HTTP instead of HTTPS (a registry on localhost, in
	// a test).
	PlainHTTP bool
	// Transport carries the requests; nil is a transport with the
	// timeouts below, HTTPS with the system's roots ($SSL_CERT_FILE),
	// and the proxy of the environment.
	Transport http.RoundTripper
	// UserAgent is sent with every request.
	UserAgent string
}

// NewTransport returns the transport Options default to: connections
// set up within 10 seconds, an answer's headers within 30, and idle
// connections kept for the next poll.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       5 * time.Minute,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}
}

// A Repository is a registry's repository of publications, reached with
// oras-go. Credentials come from the Docker config file
// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json, with its
// credential helpers), as `docker login` and `oras login` write it.
type Repository struct {
	ref  Ref
	repo *remote.Repository
}

// NewRepository returns a client for ref's repository.
func NewRepository(ref Ref, opts Options) *Repository {
	tr := opts.Transport
	if tr == nil {
		tr = NewTransport()
	}
	client := &auth.Client{
		Client: &http.Client{Transport: tr},
		Cache:  auth.NewCache(),
		Header: http.Header{},
	}
	if opts.UserAgent != "" {
		client.Header.Set("User-Agent", opts.UserAgent)
	}
	// A missing or unreadable config is no credentials: anonymous pulls
	// still work, and a registry that wants credentials says so.
	if store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{}); err == nil {
		client.Credential = credentials.Credential(store)
	}
	repo := &remote.Repository{Client: client, Reference: ref.ref, PlainHTTP: opts.PlainHTTP, MaxMetadataBytes: MaxManifestBytes}
	return &Repository{ref: ref, repo: repo}
}

// Ref returns the reference the repository was made for.
func (r *Repository) Ref() Ref { return r.ref }

// ErrNoTag reports a tag that does not exist.
var ErrNoTag = errors.New("no such tag")

// Resolve returns the descriptor of the manifest the reference names,
// with one HEAD request (a digest reference is not asked for).
func (r *Repository) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	desc, err := r.repo.Resolve(ctx, r.ref.ref.Reference)
	if errors.Is(err, errdef.ErrNotFound) {
		return desc, fmt.Errorf("%s: %w", r.ref, ErrNoTag)
	}
	if err != nil {
		return desc, fmt.Errorf("%s: %w", r.ref, err)
	}
	return desc, nil
}

// Pull fetches the publication of the manifest desc describes, verifying
// each part as it comes (see VerifyOptions): the manifest and each blob
// against their digests and caps, the statement against the layers and
// the keys, the policy and registry against the statement.
func (r *Repository) Pull(ctx context.Context, desc ocispec.Descriptor, opts VerifyOptions) (*Publication, error) {
	at := r.ref.At(string(desc.Digest))
	data, err := r.manifest(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	p, err := open(ctx, string(desc.Digest), data, r.get, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	return p, nil
}

// manifest fetches the manifest desc describes, within its cap.
func (r *Repository) manifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > MaxManifestBytes || desc.Size < 0 {
		return nil, invalid("manifest: %d bytes; the limit is %d", desc.Size, MaxManifestBytes)
	}
	return r.get(ctx, desc)
}

// get fetches one blob or manifest, checked against desc's size and
// digest: a truncated, padded or altered answer is an error.
func (r *Repository) get(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := r.repo.Fetch(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	data, err := content.ReadAll(rc, desc)
	if err != nil {
		return nil, fmt.Errorf("fetch %s (%d bytes): %w", desc.Digest, desc.Size, err)
	}
	return data, nil
}

// Current returns the statement of the publication the tag points to,
// and its manifest digest; nil, "" when the tag does not exist. A tag
// that points to something else than a publication is an error wrapping
// ErrNotPublication.
func (r *Repository) Current(ctx context.Context) (*Statement, string, error) {
	desc, err := r.Resolve(ctx)
	if errors.Is(err, ErrNoTag) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	at := r.ref.At(string(desc.Digest))
	data, err := r.manifest(ctx, desc)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", at, err)
	}
	_, l, err := parseManifest(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", at, err)
	}
	text, err := r.get(ctx, l.statement)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", at, err)
	}
	st, err := ParseStatement(text)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", at, &InvalidError{Err: err})
	}
	return st, string(desc.Digest), nil
}

// Push uploads p's blobs (those the repository does not have yet) and its
// manifest, tagged with the reference's tag, and returns the manifest's
// descriptor.
func (r *Repository) Push(ctx context.Context, p *Publication) (ocispec.Descriptor, error) {
	tag := r.ref.Tag()
	if tag == "" {
		return ocispec.Descriptor{}, fmt.Errorf("%s: publish to a tag, not a digest", r.ref)
	}
	manifest, blobs, err := p.pack()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, b := range blobs {
		ok, err := r.repo.Exists(ctx, b.desc)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: check blob %s: %w", r.ref.Repository(), b.desc.Digest, err)
		}
		if ok {
			continue
		}
		if err := r.repo.Push(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: push %s: %w", r.ref.Repository(), titleOf(b.desc), err)
		}
	}
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, manifest)
	desc.ArtifactType = ArtifactType
	if err := r.repo.PushReference(ctx, desc, bytes.NewReader(manifest), tag); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: push manifest: %w", r.ref, err)
	}
	return desc, nil
}

// A blob is one blob of a publication, with its descriptor.
type blob struct {
	desc ocispec.Descriptor
	data []byte
}

func titleOf(d ocispec.Descriptor) string {
	if t := d.Annotations[ocispec.AnnotationTitle]; t != "" {
		return t
	}
	return string(d.Digest)
}

// pack returns p's manifest and blobs, the empty config first.
func (p *Publication) pack() ([]byte, []blob, error) {
	blobs := []blob{{desc: ocispec.DescriptorEmptyJSON, data: ocispec.DescriptorEmptyJSON.Data}}
	add := func(mediaType, title string, data []byte) {
		d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data)),
			Annotations: map[string]string{ocispec.AnnotationTitle: title}}
		blobs = append(blobs, blob{desc: d, data: data})
	}
	add(MediaTypeRegistry, FileRegistry, p.Registry)
	add(MediaTypePolicy, FilePolicy, p.Policy)
	add(MediaTypeStatement, FileStatement, p.StatementText)
	if p.Signature != nil {
		add(MediaTypeSignature, FileSignature, p.Signature)
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       ocispec.DescriptorEmptyJSON,
		Annotations:  p.annotations(),
	}
	m.Config.Data = nil // the registry has it; a manifest need not embed it
	for _, b := range blobs[1:] {
		m.Layers = append(m.Layers, b.desc)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encode manifest: %w", err)
	}
	return data, blobs, nil
}
