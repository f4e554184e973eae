package serve

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
	"github.com/coulomb/flex-auth/source"
)

// A Source says where the registry snapshot and the policy package come
// from. Both are read again, and validated, at start-up and on every reload.
type Source struct {
	// Registry and Policy are the paths of the two files.
	Registry, Policy string
	// FS, when set, holds the files (the examples built into the binary);
	// nil means the operating system's file system. Files in an FS never
	// change, so there is nothing to watch.
	FS fs.FS
	// Name describes an FS source in logs and messages ("built-in
	// example ops-warden").
	Name string
	// Remote, when set, is where the pairs come from instead of files:
	// an OCI publication or HTTP(S) URLs, polled every Options.Poll and
	// on SIGHUP. Registry, Policy and FS are then not used.
	Remote source.Remote
}

// Files returns the files to watch for changes.
func (s Source) Files() []string {
	if s.FS != nil || s.Remote != nil {
		return nil
	}
	return []string{s.Registry, s.Policy}
}

// String describes the source for logs.
func (s Source) String() string {
	if s.Remote != nil {
		return s.Remote.String()
	}
	if s.FS != nil {
		return s.Name
	}
	return "registry " + s.Registry + ", policy " + s.Policy
}

// names returns the file names to use in messages.
func (s Source) names() (registryName, policyName string) {
	if s.FS != nil {
		return s.Name + ": " + s.Registry, s.Name + ": " + s.Policy
	}
	return s.Registry, s.Policy
}

// read reads one of the source's files, of kind k: from the operating
// system's file system, only a regular file (never a FIFO, a device or a
// directory swapped in for it) of at most k.Max bytes.
func (s Source) read(path string, k readfile.Kind) ([]byte, error) {
	if s.FS != nil {
		return fs.ReadFile(s.FS, path)
	}
	return readfile.Read(path, k)
}

// load reads and validates both files. Errors name the file at fault; their
// redacted form (redact.Message) does not quote the files.
func (s Source) load() (*registry.Snapshot, *policy.Package, error) {
	regName, polName := s.names()
	data, err := s.read(s.Registry, readfile.Registry)
	if err != nil {
		return nil, nil, redact.Errorf("load registry: %w", err)
	}
	snap, err := registry.Parse(data)
	if err != nil {
		return nil, nil, redact.Errorf("load registry: %w", &registry.FileError{File: regName, Errs: err.(registry.Errors)})
	}
	src, err := s.read(s.Policy, readfile.Policy)
	if err != nil {
		return nil, nil, redact.Errorf("load policy package: %w", err)
	}
	pkg, err := policy.Parse(polName, src)
	if err != nil {
		// Every problem in the list starts with polName.
		return nil, nil, redact.Errorf("load policy: %w", err)
	}
	return snap, pkg, nil
}

// state is one registry and policy pair as served, with everything the hot
// path needs computed once. A request loads the current state once and uses
// it from start to end, so the digests in its answer are a pair that was
// really served together.
type state struct {
	eval     *policy.Evaluator
	snap     *registry.Snapshot
	pkg      *policy.Package
	loadedAt time.Time

	// canonicalLen is the size of the canonical snapshot, which GET
	// /v1/registry streams rather than keep a copy (25 MB for 100,000
	// actors).
	canonicalLen int64
	etag         string // `"sha256:..."`

	// tail is `,"policy":...,"policy_digest":...,"registry_digest":...`,
	// shared by every response and decision log line.
	tail []byte

	// publication describes where a remote source's pair came from, for
	// /healthz; nil for files.
	publication any
}

// newState validates the pair (the registry must be meant for the policy
// package) and precomputes what requests use.
func newState(snap *registry.Snapshot, pkg *policy.Package, loadedAt time.Time, registryName, policyName string) (*state, error) {
	eval, err := policy.NewEvaluator(pkg, snap)
	if err != nil {
		if errors.Is(err, policy.ErrPackageMismatch) {
			// The names are the files': the redacted form leaves them out.
			what := "registry " + registryName + " is for another policy package than policy " + policyName
			return nil, redact.Error(fmt.Errorf("%s: its policy_package is %q, the policy is package %q; regenerate the registry with --policy-package %s or serve the matching policy: %w",
				what, snap.PolicyPackage, pkg.Name(), pkg.Name(), policy.ErrPackageMismatch),
				what+"; regenerate the registry with --policy-package or serve the matching policy")
		}
		return nil, redact.Errorf("bind policy %s to registry %s: %w", policyName, registryName, err)
	}
	st := &state{
		eval:     eval,
		snap:     snap,
		pkg:      pkg,
		loadedAt: loadedAt,
		etag:     strconv.Quote(snap.Digest),
	}
	st.canonicalLen, _ = snap.WriteCanonical(io.Discard)
	t := append([]byte(nil), `,"policy":`...)
	t = appendString(t, pkg.Name())
	t = append(t, `,"policy_digest":`...)
	t = appendString(t, pkg.Digest())
	t = append(t, `,"registry_digest":`...)
	t = appendString(t, snap.Digest)
	st.tail = t
	return st, nil
}

// maxMessage bounds a message about a file in /healthz, a start-up
// failure and the operational log.
const maxMessage = 512

// oneLine says what err is for /healthz, a start-up failure and log
// lines, which people and probes read who may not read the files: its
// redacted form (the file, the JSON path or line, and the rule broken,
// never what the file holds, redact.Message), shortened from a list of
// problems, one per line, to its first problem and a count of the others,
// and to at most maxMessage bytes.
func oneLine(err error) string {
	msg := strings.TrimSpace(redact.Message(err))
	first, rest, found := strings.Cut(msg, "\n")
	if found {
		n := strings.Count(rest, "\n") + 1
		more := " (and " + strconv.Itoa(n) + " more problems)"
		if n == 1 {
			more = " (and 1 more problem)"
		}
		return shorten(first, maxMessage-len(more)) + more
	}
	return shorten(msg, maxMessage)
}

// shorten cuts s to at most n bytes, at a character, ending it with "..."
// when it was cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}
