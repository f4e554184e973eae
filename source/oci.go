package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/publication"
)

// OCIConfig configures an OCI source.
type OCIConfig struct {
	// Ref names the publication: a tag, which is followed, or a digest.
	Ref     publication.Ref
	Options publication.Options
	// Keys, when set, must have signed every publication served, from
	// the registry or the cache.
	Keys *sshsig.Keys
	// Cache, when set, keeps the last publication served, so that a
	// restart while the registry is down serves it.
	Cache *publication.Cache
	// AllowSerialRollback lets the first publication served after start-up
	// have a lower serial than the cached one. Without it, a replica never
	// serves a publication with a lower serial than the one it served
	// last, across restarts when it has a cache.
	AllowSerialRollback bool
	Logger              *slog.Logger
	// Clock is the time signing keys' validity is checked at; nil is
	// time.Now.
	Clock func() time.Time
}

// An OCI is a Remote that follows a publication in an OCI registry.
type OCI struct {
	cfg  OCIConfig
	repo *publication.Repository
	log  *slog.Logger

	mu sync.Mutex
	// served is the manifest digest and serial of the publication served;
	// serving is false until one is.
	serving      bool
	servedDigest string
	servedSerial uint64
	// refused is the last publication refused and why.
	refusedDigest string
	refusedErr    error
	// cached is the publication the cache held at start-up, its
	// statement verified (Cache.Peek), until the source has given one.
	// Its registry is read only to be served.
	cached *publication.Publication
}

// NewOCI returns a Remote for cfg.Ref. It reads and verifies the cache,
// if any; a cache that does not verify is not used, and logged.
func NewOCI(ctx context.Context, cfg OCIConfig) *OCI {
	o := &OCI{cfg: cfg, repo: publication.NewRepository(cfg.Ref, cfg.Options), log: cfg.Logger}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Cache != nil {
		p, err := cfg.Cache.Peek(ctx, cfg.Ref.String(), o.verifyOptions(nil))
		switch {
		case errors.Is(err, publication.ErrCacheEmpty):
		case err != nil:
			o.log.Warn("the cached publication is not used", "err", err)
		default:
			o.cached = p
		}
	}
	return o
}

// fromCache reads and verifies the whole cached publication, to serve it
// in place of the source's, with warning; err when it cannot be.
func (o *OCI) fromCache(ctx context.Context, warning, err error) (*Update, error) {
	p, cerr := o.cfg.Cache.Load(ctx, o.cfg.Ref.String(), o.verifyOptions(nil))
	if cerr != nil {
		o.log.Warn("the cached publication is not used", "err", cerr)
		return nil, err
	}
	return o.update(p, true, warning), nil
}

// Kind returns "oci".
func (o *OCI) Kind() string { return "oci" }

func (o *OCI) String() string { return o.cfg.Ref.String() }

func (o *OCI) verifyOptions(accept func(*publication.Statement) error) publication.VerifyOptions {
	return publication.VerifyOptions{Keys: o.cfg.Keys, Accept: accept, Now: o.cfg.Clock}
}

// Fetch asks the registry which manifest the tag points to (one HEAD
// request) and, when that is not the publication served or the last one
// refused, pulls and verifies it. At start-up, before anything is
// served, a registry that cannot be reached or offers nothing that can
// be served makes it return the cached publication, with a Warning.
func (o *OCI) Fetch(ctx context.Context, force bool) (*Update, error) {
	o.mu.Lock()
	serving, servedDigest, refusedDigest, refusedErr, cached := o.serving, o.servedDigest, o.refusedDigest, o.refusedErr, o.cached
	o.mu.Unlock()

	desc, err := o.repo.Resolve(ctx)
	if err != nil {
		return o.orCached(ctx, serving, cached, err)
	}
	d := string(desc.Digest)
	switch {
	case serving && d == servedDigest:
		return nil, nil
	case d == refusedDigest && !force:
		return o.orCached(ctx, serving, cached, refusedErr)
	case !serving && cached != nil && d == cached.ManifestDigest:
		// What the registry has is on disk already.
		if u, err := o.fromCache(ctx, nil, nil); u != nil || err != nil {
			return u, err
		}
	}
	// Collect first: the pull holds the new registry next to the one
	// served, and the heap should not start from garbage.
	runtime.GC()
	p, err := o.repo.Pull(ctx, desc, o.verifyOptions(o.accept))
	if err != nil {
		if IsRefused(err) {
			o.refuse(d, err)
		}
		return o.orCached(ctx, serving, cached, err)
	}
	return o.update(p, false, nil), nil
}

// orCached returns err, or at start-up, when the cache holds a
// publication, that publication with err as its Warning.
func (o *OCI) orCached(ctx context.Context, serving bool, cached *publication.Publication, err error) (*Update, error) {
	if serving || cached == nil {
		return nil, err
	}
	return o.fromCache(ctx, fmt.Errorf("serving the cached publication (%s, serial %d): %w", cached.ManifestDigest, cached.Statement.Serial, err), err)
}

func (o *OCI) refuse(digest string, err error) {
	o.mu.Lock()
	o.refusedDigest, o.refusedErr = digest, err
	o.mu.Unlock()
}

// accept refuses a statement whose serial is lower than the one served,
// or, at start-up, than the cached one's (unless AllowSerialRollback).
func (o *OCI) accept(st *publication.Statement) error {
	o.mu.Lock()
	floor, what := o.servedSerial, "the publication served"
	if !o.serving {
		floor, what = 0, ""
		if o.cached != nil && !o.cfg.AllowSerialRollback {
			floor, what = o.cached.Statement.Serial, "the cached publication (restart with --allow-serial-rollback to go back)"
		}
	}
	o.mu.Unlock()
	if st.Serial < floor {
		return &RefusedError{Err: fmt.Errorf("serial %d is lower than %d, the serial of %s: a replica never goes back to an older publication; to roll back, publish the old pair again, with a higher serial", st.Serial, floor, what)}
	}
	return nil
}

// PublicationInfo describes a publication served, for /healthz.
type PublicationInfo struct {
	Ref            string    `json:"ref"`
	ManifestDigest string    `json:"manifest_digest"`
	Serial         uint64    `json:"serial"`
	Revision       string    `json:"revision,omitempty"`
	Created        time.Time `json:"created,omitzero"`
	// SignedBy is the fingerprint of the trusted key that signed it;
	// "" when no key was required.
	SignedBy string `json:"signed_by,omitempty"`
	// FromCache says it was read from --cache-dir, not the registry.
	FromCache bool `json:"from_cache"`
}

// LogValue logs the publication as its reference and serial.
func (p PublicationInfo) LogValue() slog.Value {
	return slog.GroupValue(slog.String("ref", p.Ref), slog.Uint64("serial", p.Serial), slog.Bool("from_cache", p.FromCache))
}

func (o *OCI) update(p *publication.Publication, fromCache bool, warning error) *Update {
	info := PublicationInfo{Ref: o.cfg.Ref.At(p.ManifestDigest), ManifestDigest: p.ManifestDigest, Serial: p.Statement.Serial,
		Revision: p.Revision, Created: p.Created, SignedBy: fingerprint(p.SignedBy), FromCache: fromCache}
	return &Update{
		Snapshot: p.Snapshot, Package: p.Package,
		RegistryName: info.Ref + " " + publication.FileRegistry, PolicyName: info.Ref + " " + publication.FilePolicy,
		Publication: info, Warning: warning,
		Served: func() {
			o.mu.Lock()
			o.serving, o.servedDigest, o.servedSerial = true, p.ManifestDigest, p.Statement.Serial
			if !fromCache {
				o.cached = nil
			}
			o.mu.Unlock()
			if !fromCache && o.cfg.Cache != nil {
				if err := o.cfg.Cache.Save(o.cfg.Ref.String(), p); err != nil {
					o.log.Error("could not cache the publication served; a restart while the registry is down will not serve it", "err", err)
				}
			}
		},
		Refused: func(err error) { o.refuse(p.ManifestDigest, err) },
	}
}

func fingerprint(k ssh.PublicKey) string {
	if k == nil {
		return ""
	}
	return ssh.FingerprintSHA256(k)
}
