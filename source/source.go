// Package source fetches registry and policy pairs that change on their
// own, for serve to poll: an OCI publication (oci://HOST/REPO:TAG, see
// package publication) or HTTP(S) URLs (a file server, an object store,
// another flex-auth's GET /v1/registry).
//
// A Remote is asked again and again; when nothing changed it answers
// with one conditional request (a manifest HEAD, an If-None-Match GET)
// and no Update. When something changed it fetches, checks and parses the
// new pair and returns it as an Update, which serve binds and swaps in
// exactly as it does a reloaded pair, then tells the Remote whether it
// is served or refused.
package source

import (
	"context"
	"errors"

	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/publication"
	"github.com/coulomb/flex-auth/registry"
)

// A Remote is a source of registry and policy pairs that is polled.
// Fetch calls are never concurrent with each other or with an Update's
// callbacks, except for a Fetch given up on, whose context is then done.
type Remote interface {
	// Fetch returns the pair the source has now, or nil and no error when
	// it is the pair served. A pair the source still offers that was
	// refused is refused again, with the same error, without fetching it
	// again, unless force is set (SIGHUP: the operator asks to try again).
	Fetch(ctx context.Context, force bool) (*Update, error)
	// Kind is "oci" or "http".
	Kind() string
	// String says where the pairs come from, without credentials.
	String() string
}

// An Update is a new pair from a Remote.
type Update struct {
	Snapshot *registry.Snapshot
	Package  *policy.Package
	// RegistryName and PolicyName name the two in messages.
	RegistryName, PolicyName string
	// Publication describes where the pair came from, for /healthz: a
	// value encoding/json can encode.
	Publication any
	// Warning, when set, says the pair is served in place of what the
	// source has, which could not be fetched or was refused: a
	// publication from the cache while the registry is down.
	Warning error
	// Served is called once the pair is served, and Refused when it is
	// not (it does not belong together), with the reason; either may be
	// nil.
	Served  func()
	Refused func(error)
}

// A RefusedError is a pair the source offers that is not served as it is:
// invalid, not signed by a trusted key, older than the one served.
// Fetching it again soon will not help, so polls do not back off.
type RefusedError struct {
	Err error
}

func (e *RefusedError) Error() string { return e.Err.Error() }

func (e *RefusedError) Unwrap() error { return e.Err }

// IsRefused reports whether err is a pair the source offers that is
// refused, rather than a source that could not be reached.
func IsRefused(err error) bool {
	var re *RefusedError
	return errors.As(err, &re) || publication.IsInvalid(err)
}

// parseRegistry parses a snapshot read from name.
func parseRegistry(name string, data []byte) (*registry.Snapshot, error) {
	s, err := registry.Parse(data)
	if err != nil {
		var es registry.Errors
		if errors.As(err, &es) {
			err = &registry.FileError{File: name, Errs: es}
		}
		return nil, &RefusedError{Err: err}
	}
	return s, nil
}

// parsePolicy parses a policy package read from name.
func parsePolicy(name string, data []byte) (*policy.Package, error) {
	p, err := policy.Parse(name, data)
	if err != nil {
		return nil, &RefusedError{Err: err}
	}
	return p, nil
}
