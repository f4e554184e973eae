package publication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
)

// VerifyOptions say what a publication must satisfy to be opened.
type VerifyOptions struct {
	// Keys, when set, must include the key that signed the statement: an
	// unsigned publication, or one signed by another key, is refused.
	// Without Keys a signature is kept but not checked.
	Keys *sshsig.Keys
	// Accept, when set, is asked about the statement once it is read,
	// before the registry and policy are fetched; an error it returns
	// refuses the publication (a serial lower than the one served).
	Accept func(*Statement) error
	// Now is the time the keys' validity is checked at; nil is
	// time.Now.
	Now func() time.Time

	// statementOnly stops once the statement is verified: the policy
	// and registry are neither read nor parsed (Cache.Peek).
	statementOnly bool
}

// A getter returns the bytes of one blob, checked against the
// descriptor's digest and size.
type getter func(ctx context.Context, desc ocispec.Descriptor) ([]byte, error)

// layers are a publication manifest's layers by role.
type layers struct {
	registry, policy, statement ocispec.Descriptor
	signature                   *ocispec.Descriptor
}

// parseManifest checks that data is a publication's manifest: an OCI
// image manifest of ArtifactType with one registry, one policy, one
// statement layer and at most one signature, each within its cap. It is
// read as strictly as flex-auth's own JSON (go-json-experiment/json):
// names match exactly, as the OCI specification spells them, and a
// duplicate name or invalid UTF-8 is an error rather than a guess.
func parseManifest(data []byte) (*ocispec.Manifest, *layers, error) {
	if len(data) > MaxManifestBytes {
		return nil, nil, invalid("manifest: %d bytes, more than %d", len(data), MaxManifestBytes)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, nil, invalid("manifest: %w: %v", ErrNotPublication, err)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest || m.ArtifactType != ArtifactType {
		what := "media type " + quoteOrNone(m.MediaType)
		if m.ArtifactType != "" {
			what += ", artifact type " + quoteOrNone(m.ArtifactType)
		} else if m.Config.MediaType != "" {
			what += ", config media type " + quoteOrNone(m.Config.MediaType)
		}
		return nil, nil, invalid("%w (%s; a publication is an OCI image manifest of artifact type %q)", ErrNotPublication, what, ArtifactType)
	}
	var l layers
	seen := map[string]bool{}
	for i, d := range m.Layers {
		limit := maxLayerBytes(d.MediaType)
		switch {
		case limit == 0:
			return nil, nil, invalid("manifest: layer %d has media type %q, which a publication does not have", i, d.MediaType)
		case seen[d.MediaType]:
			return nil, nil, invalid("manifest: two layers of media type %q", d.MediaType)
		case d.Size < 0 || d.Size > limit:
			return nil, nil, invalid("manifest: the %s layer is %d bytes; the limit is %d", d.MediaType, d.Size, limit)
		}
		if err := d.Digest.Validate(); err != nil {
			return nil, nil, invalid("manifest: layer %d: digest %q: %v", i, d.Digest, err)
		}
		seen[d.MediaType] = true
		switch d.MediaType {
		case MediaTypeRegistry:
			l.registry = d
		case MediaTypePolicy:
			l.policy = d
		case MediaTypeStatement:
			l.statement = d
		case MediaTypeSignature:
			l.signature = &m.Layers[i]
		}
	}
	for _, mt := range []string{MediaTypeRegistry, MediaTypePolicy, MediaTypeStatement} {
		if !seen[mt] {
			return nil, nil, invalid("manifest: no layer of media type %q", mt)
		}
	}
	return &m, &l, nil
}

func quoteOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return fmt.Sprintf("%q", s)
}

// open reads and verifies the publication whose manifest is data, with
// get for its blobs: the manifest's shape, the statement against the
// layers, the signature against opts.Keys, opts.Accept, then the policy
// and the registry against the statement. The large registry layer is
// fetched last, only once everything else is known to be good.
func open(ctx context.Context, manifestDigest string, data []byte, get getter, opts VerifyOptions) (*Publication, error) {
	m, l, err := parseManifest(data)
	if err != nil {
		return nil, err
	}
	p := &Publication{ManifestDigest: manifestDigest, Manifest: data}
	p.Revision = m.Annotations["org.opencontainers.image.revision"]
	p.Created, _ = time.Parse(time.RFC3339, m.Annotations["org.opencontainers.image.created"])

	if p.StatementText, err = get(ctx, l.statement); err != nil {
		return nil, fmt.Errorf("%s: %w", FileStatement, err)
	}
	st, err := ParseStatement(p.StatementText)
	if err != nil {
		return nil, &InvalidError{Err: err}
	}
	p.Statement = st
	if string(l.registry.Digest) != st.RegistryFile || string(l.policy.Digest) != st.PolicyDigest {
		return nil, invalid("the layers are not the ones the statement names: registry.json %s (statement: %s), policy_package.md %s (statement: %s)",
			l.registry.Digest, st.RegistryFile, l.policy.Digest, st.PolicyDigest)
	}
	if l.signature != nil {
		if p.Signature, err = get(ctx, *l.signature); err != nil {
			return nil, fmt.Errorf("%s: %w", FileSignature, err)
		}
	}
	if opts.Keys != nil {
		if p.Signature == nil {
			return nil, invalid("%w: --verify-key %s requires a signature by one of its keys", ErrUnsigned, opts.Keys.File())
		}
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		if p.SignedBy, err = opts.Keys.Verify(Namespace, p.StatementText, p.Signature, now()); err != nil {
			return nil, invalid("signature: %w", err)
		}
	}
	if opts.Accept != nil {
		if err := opts.Accept(st); err != nil {
			return nil, err
		}
	}
	if opts.statementOnly {
		return p, nil
	}

	if p.Policy, err = get(ctx, l.policy); err != nil {
		return nil, fmt.Errorf("%s: %w", FilePolicy, err)
	}
	if p.Package, err = policy.Parse(FilePolicy, p.Policy); err != nil {
		return nil, &InvalidError{Err: err}
	}
	if p.Package.Name() != st.Package {
		return nil, invalid("%s is package %q; the statement says %q", FilePolicy, p.Package.Name(), st.Package)
	}
	if p.Registry, err = get(ctx, l.registry); err != nil {
		return nil, fmt.Errorf("%s: %w", FileRegistry, err)
	}
	if p.Snapshot, err = registry.Parse(p.Registry); err != nil {
		var es registry.Errors
		if errors.As(err, &es) {
			err = &registry.FileError{File: FileRegistry, Errs: es}
		}
		return nil, &InvalidError{Err: err}
	}
	switch {
	case p.Snapshot.Digest != st.RegistryDigest:
		return nil, invalid("%s has digest %s; the statement says %s", FileRegistry, p.Snapshot.Digest, st.RegistryDigest)
	case p.Snapshot.PolicyPackage != st.Package:
		return nil, invalid("%s has policy_package %q; the statement says %q", FileRegistry, p.Snapshot.PolicyPackage, st.Package)
	}
	return p, nil
}
