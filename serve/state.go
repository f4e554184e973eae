package serve

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coulomb/flex-auth/entities"
	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
	"github.com/coulomb/flex-auth/source"
)

// A Source says where one policy package and its data come from: a
// package directory (Package), or a registry snapshot and a policy package
// named apart (Registry and Policy). Both are read again, and validated,
// at start-up and on every reload.
type Source struct {
	// Package is a package directory: its policy_package.md and the data
	// file its front matter names (policy.LoadDir). When set, Registry and
	// Policy are not used.
	Package string
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
	// on SIGHUP. Package, Registry, Policy and FS are then not used.
	Remote source.Remote
}

// Files returns the files to watch for changes; for a package directory,
// the directory itself, every change in which may change the package.
func (s Source) Files() []string {
	switch {
	case s.FS != nil || s.Remote != nil:
		return nil
	case s.Package != "":
		return []string{s.Package}
	}
	return []string{s.Registry, s.Policy}
}

// String describes the source for logs.
func (s Source) String() string {
	switch {
	case s.Remote != nil:
		return s.Remote.String()
	case s.FS != nil:
		return s.Name
	case s.Package != "":
		return "package " + s.Package
	}
	return "registry " + s.Registry + ", policy " + s.Policy
}

// name returns the file name of path to use in messages.
func (s Source) name(path string) string {
	if s.FS != nil {
		return s.Name + ": " + path
	}
	return path
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

// join joins a package directory and a file name in it, for the source's
// file system.
func (s Source) join(dir, file string) string {
	if s.FS != nil {
		return path.Join(dir, file)
	}
	return filepath.Join(dir, file)
}

// load reads and validates the package and its data, and binds them.
// Errors name the file at fault; their redacted form (redact.Message)
// does not quote the files.
func (s Source) load() (*policy.Evaluator, error) {
	if s.Package != "" {
		return s.loadPackage()
	}
	regName, polName := s.name(s.Registry), s.name(s.Policy)
	data, err := s.read(s.Registry, readfile.Registry)
	if err != nil {
		return nil, redact.Errorf("load registry: %w", err)
	}
	snap, err := registry.Parse(data)
	if err != nil {
		return nil, redact.Errorf("load registry: %w", &registry.FileError{File: regName, Errs: err.(registry.Errors)})
	}
	src, err := s.read(s.Policy, readfile.Policy)
	if err != nil {
		return nil, redact.Errorf("load policy package: %w", err)
	}
	pkg, err := policy.Parse(polName, src)
	if err != nil {
		// Every problem in the list starts with polName.
		return nil, redact.Errorf("load policy: %w", err)
	}
	return bindPair(snap, pkg, regName, polName)
}

// bindPair binds a policy package to a registry named apart; the names
// are the files' (or URLs'), for messages.
func bindPair(snap *registry.Snapshot, pkg *policy.Package, regName, polName string) (*policy.Evaluator, error) {
	eval, err := policy.NewEvaluator(pkg, snap)
	if err != nil {
		if errors.Is(err, policy.ErrPackageMismatch) {
			// The names are the files': the redacted form leaves them out.
			what := "registry " + regName + " is for another policy package than policy " + polName
			return nil, redact.Error(fmt.Errorf("%s: its policy_package is %q, the policy is package %q; regenerate the registry with --policy-package %s or serve the matching policy: %w",
				what, snap.PolicyPackage, pkg.Name(), pkg.Name(), policy.ErrPackageMismatch),
				what+"; regenerate the registry with --policy-package or serve the matching policy")
		}
		return nil, redact.Errorf("bind policy %s to registry %s: %w", polName, regName, err)
	}
	return eval, nil
}

// loadPackage loads a package directory: its policy_package.md, then the
// data file its front matter names.
func (s Source) loadPackage() (*policy.Evaluator, error) {
	file := s.join(s.Package, policy.PackageFile)
	src, err := s.read(file, readfile.Policy)
	if err != nil {
		return nil, redact.Errorf("load package %s: %w", s.Package, err)
	}
	pkg, err := policy.Parse(s.name(file), src)
	if err != nil {
		return nil, redact.Errorf("load policy: %w", err)
	}
	ref := pkg.Data()
	if ref.Kind == "" {
		return nil, redact.Errorf("load package %s: %s: %w", s.Package, pkg.File(), policy.ErrNoData)
	}
	dataFile := s.join(s.Package, ref.File)
	data, err := s.read(dataFile, policy.DataKind(ref.Kind))
	if err != nil {
		return nil, redact.Errorf("load package %s: %w", s.Package, err)
	}
	return policy.BindData(pkg, s.name(dataFile), data)
}

// state is one package as served, with its data, and everything the hot
// path needs computed once. A request loads the current set of states once
// and uses it from start to end, so the digests in its answer are of a
// package and data that were really served together.
type state struct {
	eval     *policy.Evaluator
	snap     *registry.Snapshot // a registry model package's data; else nil
	doc      *entities.Document // an AuthZEN model package's data; else nil
	pkg      *policy.Package
	loadedAt time.Time

	// canonicalLen is the size of the canonical snapshot, which GET
	// /v1/registry streams rather than keep a copy (25 MB for 100,000
	// actors).
	canonicalLen int64
	etag         string // `"sha256:..."`

	// tail is `,"policy":...,"policy_digest":...,"registry_digest":...`
	// (`"data_digest"` for an entities document), shared by every
	// response and decision log line.
	tail []byte

	// publication describes where a remote source's pair came from, for
	// /healthz; nil for files.
	publication any
}

// newState precomputes what requests use of a bound package.
func newState(eval *policy.Evaluator, loadedAt time.Time) *state {
	pkg := eval.Package()
	st := &state{
		eval:     eval,
		snap:     eval.Registry(),
		doc:      eval.Entities(),
		pkg:      pkg,
		loadedAt: loadedAt,
	}
	t := append([]byte(nil), `,"policy":`...)
	t = appendString(t, pkg.Name())
	t = append(t, `,"policy_digest":`...)
	t = appendString(t, pkg.Digest())
	if st.snap != nil {
		st.etag = strconv.Quote(st.snap.Digest)
		st.canonicalLen, _ = st.snap.WriteCanonical(io.Discard)
		t = append(t, `,"registry_digest":`...)
	} else {
		t = append(t, `,"data_digest":`...)
	}
	t = appendString(t, eval.DataDigest())
	st.tail = t
	return st
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
