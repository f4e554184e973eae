package drift

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/generate"
	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/coulomb/flex-auth/inventory"
	"github.com/coulomb/flex-auth/publication"
	"github.com/coulomb/flex-auth/registry"
)

// A Kind says what a side of the comparison is.
type Kind int

// The kinds of registry source.
const (
	Inventory   Kind = iota + 1 // an ops-warden inventory (.yaml, .yml), generated in memory
	File                        // a snapshot file (.json)
	Runtime                     // a running flex-auth, by its base URL
	Publication                 // an OCI publication (oci://), as flex-auth publish pushed it
)

func (k Kind) String() string {
	switch k {
	case Inventory:
		return "inventory"
	case File:
		return "snapshot"
	case Runtime:
		return "runtime"
	case Publication:
		return "publication"
	}
	return "unknown"
}

// A Side is one registry of a comparison, loaded.
type Side struct {
	// Source is what the user named: a path, or a base URL without its
	// credentials (redact.URL).
	Source string
	Kind   Kind
	// Snapshot is the registry content, normalized, with the digest as
	// stored in the file or served.
	Snapshot *registry.Snapshot
	// Text is what stands for this side in the diff: a snapshot file's
	// bytes as they are, else the canonical form.
	Text []byte
	// Canonical reports whether Text is exactly Snapshot.Canonical().
	Canonical bool
	// ContentDigest is the digest of the normalized content; it differs
	// from Snapshot.Digest when the file was edited by hand (or when another
	// producer hashed its actors in the order it wrote them).
	ContentDigest string
	// digestOK reports whether Snapshot.Digest is one that registry's
	// Verify accepts.
	digestOK bool
	// Policy is the policy package the side says goes with its registry:
	// the one a running flex-auth serves it with (the headers of its
	// answer), or the one a publication carries (its statement). Nil when
	// the side does not say: a file, or a flex-auth that sends no such
	// headers.
	Policy *Policy

	// inventory is an inventory side's inventory, with its lines.
	inventory *inventory.Inventory
}

// DigestMatches reports whether the stored digest matches the content.
func (s *Side) DigestMatches() bool { return s.digestOK }

// IsFile reports whether the side is a file in the work tree (an inventory
// or a snapshot), as opposed to a running service.
func (s *Side) IsFile() bool { return s.Kind == Inventory || s.Kind == File }

// DefaultTimeout bounds a request to a running flex-auth.
const DefaultTimeout = 10 * time.Second

// Options tune Load.
type Options struct {
	// PolicyPackage is the policy package inventories are generated for;
	// "" means registry.DefaultPolicyPackage.
	PolicyPackage string
	// Timeout bounds each fetch; 0 means DefaultTimeout.
	Timeout time.Duration
	// PlainHTTP talks HTTP, not HTTPS, to the registry of an oci://
	// side.
	PlainHTTP bool
	// Policy is the checked-in policy package that goes with EXPECTED
	// (CheckedIn), nil for none: Run compares the policy each side
	// serves with it (ComparePolicy).
	Policy *Policy
}

// KindOf tells from a source's name what it is: an http:// or https://
// URL is a running flex-auth, a .yaml or .yml file an inventory, a .json
// file a snapshot.
func KindOf(source string) (Kind, error) {
	lower := strings.ToLower(source)
	switch {
	case strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://"):
		return Runtime, nil
	case publication.IsRef(source):
		return Publication, nil
	}
	switch strings.ToLower(filepath.Ext(source)) {
	case ".yaml", ".yml":
		return Inventory, nil
	case ".json":
		return File, nil
	}
	if strings.Contains(source, "://") {
		source = redact.URL(source) // a URL of another scheme may hold credentials too
	}
	return 0, fmt.Errorf("%s: cannot tell what this is: want an inventory (.yaml, .yml), a snapshot (.json), a running flex-auth (http:// or https:// URL) or a publication (oci://HOST/REPO:TAG)", source)
}

// Label returns how reports and errors name a source: a path as it is, a
// URL without its credentials (redact.URL).
func Label(source string) string {
	if kind, err := KindOf(source); err == nil && kind == Runtime {
		return redact.URL(source)
	}
	return source
}

// Load loads one side of a comparison, whatever its kind. Unreadable
// files, invalid inventories and snapshots, and unreachable services are
// errors; a snapshot file whose digest does not match its content is not:
// Compare reports it as drift.
func Load(ctx context.Context, source string, opt Options) (*Side, error) {
	kind, err := KindOf(source)
	if err != nil {
		return nil, err
	}
	switch kind {
	case Inventory:
		pkg := opt.PolicyPackage
		if pkg == "" {
			pkg = registry.DefaultPolicyPackage
		}
		if err := registry.CheckPackageName(pkg); err != nil {
			return nil, fmt.Errorf("policy package: %w", err)
		}
		// The inventory, not only its snapshot: it knows its lines.
		inv, err := generate.InventoryFile(source)
		if err != nil {
			return nil, err
		}
		s := generate.Snapshot(inv, pkg)
		return &Side{Source: source, Kind: Inventory, Snapshot: s, Text: s.Canonical(), Canonical: true, ContentDigest: s.Digest, digestOK: true, inventory: inv}, nil
	case File:
		data, err := readfile.Read(source, readfile.Registry)
		if err != nil {
			return nil, fmt.Errorf("read snapshot: %w", err)
		}
		return ParseSnapshot(source, data)
	case Publication:
		return pull(ctx, source, opt)
	default:
		return fetch(ctx, source, opt)
	}
}

// ParseSnapshot makes a side of the snapshot file named source holding
// data.
func ParseSnapshot(source string, data []byte) (*Side, error) {
	return decode(source, File, data)
}

func decode(source string, kind Kind, data []byte) (*Side, error) {
	s, err := registry.ParseUnverified(data)
	if err != nil {
		var es registry.Errors
		if errors.As(err, &es) {
			return nil, &registry.FileError{File: source, Errs: es}
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	content := s.ComputeDigest()
	// Verify hashes again; it is only needed when the stored digest is not
	// the content's, to accept one of the document as it was written.
	side := &Side{Source: source, Kind: kind, Snapshot: s, ContentDigest: content, digestOK: s.Digest == content || s.Verify() == nil}
	if kind == File {
		side.Text, side.Canonical = data, isCanonical(s, data)
	} else {
		side.Text, side.Canonical = s.Canonical(), true
	}
	return side, nil
}

// isCanonical reports whether data is s's canonical form, comparing as
// the form is produced rather than building a second copy of a file that
// may be tens of megabytes.
func isCanonical(s *registry.Snapshot, data []byte) bool {
	c := &compareWriter{want: data}
	_, err := s.WriteCanonical(c)
	return err == nil && c.off == len(data)
}

// A compareWriter checks that what is written to it is want, failing at
// the first difference.
type compareWriter struct {
	want []byte
	off  int
}

var errDiffers = errors.New("differs")

func (c *compareWriter) Write(p []byte) (int, error) {
	if len(p) > len(c.want)-c.off || !bytes.Equal(p, c.want[c.off:c.off+len(p)]) {
		return 0, errDiffers
	}
	c.off += len(p)
	return len(p), nil
}

// serviceURL returns the base URL of the flex-auth that base names, and
// the label of its snapshot endpoint. A URL that already names the
// endpoint is taken as it is; a query or fragment is not sent.
func serviceURL(base string) (svc, endpoint string, err error) {
	u, err := url.Parse(base)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold credentials
		}
		if strings.Contains(base, "@") {
			err = errors.New("does not parse") // the reason may quote the credentials
		}
		return "", "", fmt.Errorf("invalid URL %s: %w", redact.URL(base), err)
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("invalid URL %s: no host", redact.URL(base))
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/v1/registry")
	u.RawPath = ""
	svc = u.String()
	return svc, redact.URL(svc + "/v1/registry"), nil
}

// fetch reads a running flex-auth's registry with client, its limits and
// its refusal of redirects: drift reads the URL it is given, and only
// that one, since a redirect to another replica or host would prove
// nothing about this one. The side's Source, and every error, name the
// URL without its credentials (redact.URL); what the server says in an
// error is escaped for the terminal (termsafe.Line).
func fetch(ctx context.Context, base string, opt Options) (*Side, error) {
	svc, endpoint, err := serviceURL(base)
	if err != nil {
		return nil, err
	}
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c, err := client.New(svc, client.WithTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("fetch registry %s: %w", endpoint, err)
	}
	answer, err := c.RegistryWithPolicy(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch registry %s: %s", endpoint, fetchFailure(err))
	}
	side, err := decode(endpoint, Runtime, answer.JSON)
	if err != nil {
		return nil, fmt.Errorf("fetch registry %s: invalid snapshot:\n%w", endpoint, err)
	}
	side.Source = Label(base)
	if p := answer.Policy; p != nil {
		side.Policy = &Policy{Package: p.Package, Digest: p.Digest}
	}
	return side, nil
}

// fetchFailure says why no registry came back, escaped for the terminal.
func fetchFailure(err error) string {
	var (
		ue *client.UnreachableError
		se *client.StatusError
		pe *client.ProtocolError
	)
	switch {
	case errors.As(err, &ue):
		why := termsafe.Line(ue.Err.Error())
		if ue.TimedOut() {
			why = fmt.Sprintf("no answer within %s", ue.Timeout)
		}
		return why + " (is flex-auth running there?)"
	case errors.As(err, &se):
		// The status text is the standard one, not the server's.
		status := fmt.Sprintf("%d %s", se.StatusCode, http.StatusText(se.StatusCode))
		if se.Location != "" {
			return fmt.Sprintf("server answered %s, a redirect to %s: drift does not follow redirects; give it the URL of the flex-auth itself", status, termsafe.Line(redact.URL(se.Location)))
		}
		return "server answered " + status + errorMessage(se)
	case errors.As(err, &pe):
		return "malformed answer: " + termsafe.Line(pe.Err.Error())
	}
	return termsafe.Line(err.Error())
}

// errorMessage is the reason an error answer gives: the contract's
// {"error": {"message": ...}}, else the start of the body, on one line
// and escaped for the terminal.
func errorMessage(se *client.StatusError) string {
	s := se.Message
	if s == "" {
		s = se.Body
	}
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return ""
	}
	return ": " + termsafe.Line(s)
}
