package publication

import (
	"fmt"
	"strings"

	"oras.land/oras-go/v2/registry"

	"github.com/coulomb/flex-auth/internal/redact"
)

// Scheme is the prefix of a publication's reference.
const Scheme = "oci://"

// A Ref names a publication in an OCI registry:
// oci://HOST[:PORT]/REPOSITORY:TAG, or @sha256:... for one publication
// whatever the tag says.
type Ref struct {
	ref registry.Reference
}

// IsRef reports whether s is meant as an oci:// reference.
func IsRef(s string) bool { return strings.HasPrefix(strings.ToLower(s), Scheme) }

// ParseRef parses an oci:// reference. The tag or digest is required: a
// publication is always named explicitly, never by an implied "latest".
func ParseRef(s string) (Ref, error) {
	if !IsRef(s) {
		return Ref{}, fmt.Errorf("%q: want oci://HOST/REPOSITORY:TAG", redact.URL(s))
	}
	rest := s[len(Scheme):]
	if host, _, _ := strings.Cut(rest, "/"); strings.Contains(host, "@") {
		return Ref{}, fmt.Errorf("%q: credentials do not go in the reference; use a Docker config file ($DOCKER_CONFIG/config.json)", redact.URL(s))
	}
	ref, err := registry.ParseReference(rest)
	if err != nil {
		return Ref{}, fmt.Errorf("%q: %w", s, err)
	}
	if ref.Reference == "" {
		return Ref{}, fmt.Errorf("%q: no tag: want oci://HOST/REPOSITORY:TAG (or @sha256:...)", s)
	}
	return Ref{ref: ref}, nil
}

// String returns the reference as oci://HOST/REPOSITORY:TAG (or @DIGEST).
func (r Ref) String() string { return Scheme + r.ref.String() }

// Repository returns oci://HOST/REPOSITORY.
func (r Ref) Repository() string { return Scheme + r.ref.Registry + "/" + r.ref.Repository }

// Host returns the registry's HOST[:PORT].
func (r Ref) Host() string { return r.ref.Registry }

// Tag returns the tag, or "" when the reference is a digest.
func (r Ref) Tag() string {
	if r.IsDigest() {
		return ""
	}
	return r.ref.Reference
}

// IsDigest reports whether the reference names a manifest by digest.
func (r Ref) IsDigest() bool {
	_, err := r.ref.Digest()
	return err == nil
}

// At returns the reference of the manifest with digest in the same
// repository: oci://HOST/REPOSITORY@DIGEST.
func (r Ref) At(digest string) string { return r.Repository() + "@" + digest }
