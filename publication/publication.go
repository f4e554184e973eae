// Package publication is the promoted registry as an OCI artifact: a
// registry snapshot, the policy package it is meant for, and a statement
// that names both by digest with a serial, signed with an SSH key
// (SSHSIG, namespace flex-auth) so that a replica, or an operator with
// ssh-keygen, can check who published it.
//
// The artifact is one OCI image manifest (image-spec 1.1) of artifact
// type ArtifactType with four layers, each titled with the file name an
// `oras pull` writes it to:
//
//	registry.json         MediaTypeRegistry   the snapshot, canonical form
//	policy_package.md     MediaTypePolicy     the policy package
//	statement.txt         MediaTypeStatement  see Statement
//	statement.txt.sig     MediaTypeSignature  the statement's SSH signature (when signed)
//
// The statement is the authority: a replica checks every layer against
// it, and the signature against its trusted keys, before it reads the
// snapshot. The manifest's annotations repeat the digests and the serial
// for people and tools; nothing trusts them.
//
// Prepare validates a pair as serve would, and runs the package's tests;
// Seal makes a Publication of it; a Repository pushes and pulls
// publications; a Cache keeps the last verified one on disk.
package publication

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
)

// Media types of the artifact and its layers.
const (
	ArtifactType       = "application/vnd.coulomb.flex-auth.publication.v1"
	MediaTypeRegistry  = "application/vnd.coulomb.flex-auth.registry.v1+json"
	MediaTypePolicy    = "application/vnd.coulomb.flex-auth.policy.v1+markdown"
	MediaTypeStatement = "application/vnd.coulomb.flex-auth.statement.v1"
	MediaTypeSignature = "application/vnd.coulomb.flex-auth.statement.sig.v1"
)

// File names of the layers (their org.opencontainers.image.title).
const (
	FileRegistry  = "registry.json"
	FilePolicy    = "policy_package.md"
	FileStatement = "statement.txt"
	FileSignature = "statement.txt.sig"
)

// Namespace is the SSHSIG namespace of a publication's signature: what
// `ssh-keygen -Y sign -n` and `-Y verify -n` are given.
const Namespace = "flex-auth"

// Manifest annotations. The OCI ones (created, revision) are set too.
const (
	annotationPrefix         = "com.github.coulomb.flex-auth."
	AnnotationPackage        = annotationPrefix + "policy.package"
	AnnotationPolicyDigest   = annotationPrefix + "policy.digest"
	AnnotationRegistryDigest = annotationPrefix + "registry.digest"
	AnnotationActors         = annotationPrefix + "registry.actors"
	AnnotationSerial         = annotationPrefix + "serial"
	AnnotationSignedBy       = annotationPrefix + "signed-by"
)

// Content is a registry snapshot and a policy package that belong
// together, as files and parsed.
type Content struct {
	// Registry is the snapshot in canonical form; Policy the package's
	// file as it was written.
	Registry, Policy []byte
	Snapshot         *registry.Snapshot
	Package          *policy.Package
}

// An InvalidError is a publication, or a pair to publish, that is not
// good: its content does not load, does not belong together, fails its
// tests, is not signed by a trusted key, or is not a flex-auth
// publication at all. Fetching it again gives the same answer; other
// errors (a registry that does not answer) may pass.
type InvalidError struct {
	Err error
}

func (e *InvalidError) Error() string { return e.Err.Error() }

func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(format string, args ...any) error {
	return &InvalidError{Err: fmt.Errorf(format, args...)}
}

// IsInvalid reports whether err says a publication is not good, rather
// than that it could not be fetched.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

// ErrNotPublication reports an artifact that is not a flex-auth
// publication (an image, another artifact type).
var ErrNotPublication = errors.New("not a flex-auth publication")

// ErrUnsigned reports a publication without a signature where one is
// required.
var ErrUnsigned = errors.New("not signed")

// A TestsFailedError is a pair whose policy package's tests do not all
// pass against its registry.
type TestsFailedError struct {
	Evaluator *policy.Evaluator
	Results   []policy.TestResult
	Failed    int
}

func (e *TestsFailedError) Error() string {
	return fmt.Sprintf("policy %s: %d of %d tests fail against the registry", e.Evaluator.Package().File(), e.Failed, len(e.Results))
}

// Prepare checks a pair exactly as serve checks one at start-up and on
// reload (the snapshot loads and its digest matches, the package parses
// and compiles, the snapshot's policy_package names the package), and
// runs the package's tests blocks against the snapshot: every one must
// pass. The errors are *InvalidError; a failing test is a
// *TestsFailedError inside one. registryName and policyName name the
// files in messages.
func Prepare(registryName string, registryData []byte, policyName string, policyData []byte) (*Content, error) {
	snap, err := registry.Parse(registryData)
	if err != nil {
		var es registry.Errors
		if errors.As(err, &es) {
			err = &registry.FileError{File: registryName, Errs: es}
		}
		return nil, &InvalidError{Err: err}
	}
	pkg, err := policy.Parse(policyName, policyData)
	if err != nil {
		return nil, &InvalidError{Err: err}
	}
	ev, err := policy.NewEvaluator(pkg, snap)
	if err != nil {
		if errors.Is(err, policy.ErrPackageMismatch) {
			return nil, invalid("registry %s has policy_package %q but policy %s is package %q: %w",
				registryName, snap.PolicyPackage, policyName, pkg.Name(), err)
		}
		return nil, invalid("bind policy %s to registry %s: %w", policyName, registryName, err)
	}
	results := ev.RunTests()
	failed := 0
	for _, r := range results {
		if !r.Passed() {
			failed++
		}
	}
	if failed > 0 {
		return nil, &InvalidError{Err: &TestsFailedError{Evaluator: ev, Results: results, Failed: failed}}
	}
	// The canonical form: the artifact's registry layer is a function of
	// the registry's content, whatever the file's formatting.
	return &Content{Registry: snap.Canonical(), Policy: policyData, Snapshot: snap, Package: pkg}, nil
}

// A Publication is a Content with its statement, signature and
// provenance: what is pushed, and what a pull returns once verified.
type Publication struct {
	Content
	Statement *Statement
	// StatementText is the statement as signed, and Signature its armored
	// SSH signature, nil when unsigned.
	StatementText, Signature []byte
	// Revision is the source revision (a commit) the pair was published
	// from, "" when unknown; Created when it was published. Both come
	// from the manifest's annotations and are not signed.
	Revision string
	Created  time.Time

	// Set by a pull or a cache load: the manifest's digest and bytes,
	// and the trusted key that signed the statement (nil when no key was
	// asked for).
	ManifestDigest string
	Manifest       []byte
	SignedBy       ssh.PublicKey
}

// SealOptions say how to seal a publication.
type SealOptions struct {
	// Serial orders publications: a replica never moves to a lower one.
	Serial uint64
	// Signer signs the statement; nil publishes unsigned.
	Signer ssh.Signer
	// Revision is the source revision, "" when unknown.
	Revision string
	// Created is the publication time; zero is now.
	Created time.Time
}

// Seal makes a publication of c: its statement, signed when opts.Signer
// is set.
func (c *Content) Seal(opts SealOptions) (*Publication, error) {
	if opts.Serial == 0 {
		return nil, errors.New("seal: the serial must be at least 1")
	}
	st := &Statement{
		Package:        c.Package.Name(),
		Serial:         opts.Serial,
		RegistryDigest: c.Snapshot.Digest,
		RegistryFile:   sha256Digest(c.Registry),
		PolicyDigest:   c.Package.Digest(),
	}
	p := &Publication{Content: *c, Statement: st, StatementText: st.Marshal(), Revision: opts.Revision, Created: opts.Created}
	if p.Created.IsZero() {
		p.Created = time.Now()
	}
	p.Created = p.Created.UTC().Truncate(time.Second)
	if opts.Signer != nil {
		sig, err := sshsig.Sign(opts.Signer, Namespace, p.StatementText)
		if err != nil {
			return nil, err
		}
		p.Signature = sig
		p.SignedBy = opts.Signer.PublicKey()
	}
	return p, nil
}

// annotations returns the manifest annotations of p.
func (p *Publication) annotations() map[string]string {
	a := map[string]string{
		"org.opencontainers.image.created": p.Created.Format(time.RFC3339),
		AnnotationPackage:                  p.Statement.Package,
		AnnotationPolicyDigest:             p.Statement.PolicyDigest,
		AnnotationRegistryDigest:           p.Statement.RegistryDigest,
		AnnotationActors:                   strconv.Itoa(len(p.Snapshot.Actors)),
		AnnotationSerial:                   strconv.FormatUint(p.Statement.Serial, 10),
	}
	if p.Revision != "" {
		a["org.opencontainers.image.revision"] = p.Revision
	}
	if p.SignedBy != nil {
		a[AnnotationSignedBy] = ssh.FingerprintSHA256(p.SignedBy)
	}
	return a
}
