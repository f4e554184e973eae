// Package registry defines the registry snapshot: the JSON document that
// lists the actors flex-auth may sign for, its canonical file form, its
// digest, and strict loading and validation (CONTRACT section 2).
package registry

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"slices"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// Schema is the only snapshot schema this version understands.
const Schema = "flex-auth.registry/v1"

// Defaults for generated snapshots.
const (
	DefaultSource        = "ops-warden"
	DefaultPolicyPackage = "ops-warden/ssh-signing"
)

// An Actor is one registry entry: who may be signed for, as which principal,
// for how long, and which subjects may ask.
type Actor struct {
	Name            string   `json:"name"`
	Type            string   `json:"type"`
	Principal       string   `json:"principal"`
	DefaultTTLHours int      `json:"default_ttl_hours"`
	MaxTTLHours     int      `json:"max_ttl_hours"`
	Subjects        []string `json:"subjects"`
}

// A Snapshot is a registry snapshot. Snapshots returned by this package are
// normalized: actors sorted by name, each actor's subjects sorted and unique.
type Snapshot struct {
	Schema        string  `json:"schema"`
	Digest        string  `json:"digest"`
	Source        string  `json:"source"`
	PolicyPackage string  `json:"policy_package"`
	Actors        []Actor `json:"actors"`

	// writtenDigest is the digest of a decoded document in the order it was
	// written, kept by ParseUnverified when that order was not the normalized one.
	writtenDigest string
}

// New returns a sealed snapshot of actors: normalized, with its digest set.
// It takes ownership of actors and their subject slices.
func New(source, policyPackage string, actors []Actor) *Snapshot {
	s := &Snapshot{Schema: Schema, Source: source, PolicyPackage: policyPackage, Actors: actors}
	s.normalize()
	s.Digest = s.ComputeDigest()
	return s
}

// normalize sorts actors by name and subjects in byte order, folding
// duplicate subjects.
func (s *Snapshot) normalize() {
	for i := range s.Actors {
		a := &s.Actors[i]
		if !slices.IsSorted(a.Subjects) {
			slices.Sort(a.Subjects)
		}
		a.Subjects = slices.Compact(a.Subjects)
	}
	if !slices.IsSortedFunc(s.Actors, compareActors) {
		slices.SortFunc(s.Actors, compareActors)
	}
}

// isNormalized reports whether actors are sorted by name and each actor's
// subjects sorted and unique.
func (s *Snapshot) isNormalized() bool {
	for i := range s.Actors {
		subs := s.Actors[i].Subjects
		for j := 1; j < len(subs); j++ {
			if subs[j-1] >= subs[j] {
				return false
			}
		}
	}
	return slices.IsSortedFunc(s.Actors, compareActors)
}

func compareActors(a, b Actor) int { return cmp.Compare(a.Name, b.Name) }

// Lookup returns the actor named name, or nil.
func (s *Snapshot) Lookup(name string) *Actor {
	i, ok := slices.BinarySearchFunc(s.Actors, name, func(a Actor, n string) int { return cmp.Compare(a.Name, n) })
	if !ok {
		return nil
	}
	return &s.Actors[i]
}

// ComputeDigest returns the digest of the snapshot's content: "sha256:" and
// the hex SHA-256 of the RFC 8785 serialization of the normalized document
// without its digest member. The stored Digest is not consulted.
func (s *Snapshot) ComputeDigest() string {
	h := sha256.New()
	// Hash in chunks rather than materialize the whole content: a
	// 100,000-actor registry would otherwise allocate tens of megabytes.
	buf := s.writeContent(make([]byte, 0, 64<<10), func(b []byte) { h.Write(b) })
	h.Write(buf)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// AppendContent appends the RFC 8785 (JCS) serialization of the snapshot
// without its digest member. Member names are written in the order JCS
// sorts them, so that hashing needs no general canonicalizer; the tests
// check that jsontext's Value.Canonicalize gives the same bytes.
func (s *Snapshot) AppendContent(dst []byte) []byte {
	return s.writeContent(dst, nil)
}

// writeContent appends the JCS content to dst; when flush is not nil, it
// hands over and resets the buffer whenever it grows past half its
// capacity.
func (s *Snapshot) writeContent(dst []byte, flush func([]byte)) []byte {
	dst = append(dst, `{"actors":[`...)
	for i := range s.Actors {
		a := &s.Actors[i]
		if flush != nil && len(dst) > cap(dst)/2 {
			flush(dst)
			dst = dst[:0]
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"default_ttl_hours":`...)
		dst = strconv.AppendInt(dst, int64(a.DefaultTTLHours), 10)
		dst = append(dst, `,"max_ttl_hours":`...)
		dst = strconv.AppendInt(dst, int64(a.MaxTTLHours), 10)
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, a.Name)
		dst = append(dst, `,"principal":`...)
		dst = appendString(dst, a.Principal)
		dst = append(dst, `,"subjects":[`...)
		for j, sub := range a.Subjects {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, sub)
		}
		dst = append(dst, `],"type":`...)
		dst = appendString(dst, a.Type)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"policy_package":`...)
	dst = appendString(dst, s.PolicyPackage)
	dst = append(dst, `,"schema":`...)
	dst = appendString(dst, s.Schema)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, s.Source)
	return append(dst, '}')
}

// appendString appends s as a JSON string in its RFC 8785 form, which is
// also the canonical file's: the shortest escapes, no HTML escaping.
// Snapshot strings are valid UTF-8 (ParseUnverified refuses anything else, and New
// gets checked names); invalid bytes would be written as U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst, _ = jsontext.AppendQuote(dst, s)
	return dst
}

// Canonical returns the canonical file form of the snapshot (CONTRACT
// section 2), byte for byte what generate writes.
func (s *Snapshot) Canonical() []byte {
	return s.AppendCanonical(make([]byte, 0, s.canonicalSize()))
}

// canonicalSize returns the size of the canonical form when no string
// needs escaping (validated snapshots have none), so that Canonical
// allocates once.
func (s *Snapshot) canonicalSize() int {
	n := 128 + len(s.Schema) + len(s.Digest) + len(s.Source) + len(s.PolicyPackage)
	for i := range s.Actors {
		a := &s.Actors[i]
		n += 160 + len(a.Name) + len(a.Type) + len(a.Principal) + 8
		for _, sub := range a.Subjects {
			n += 12 + len(sub)
		}
	}
	return n
}

// AppendCanonical appends the canonical file form of the snapshot.
func (s *Snapshot) AppendCanonical(dst []byte) []byte {
	dst, _ = s.appendCanonical(dst, nil)
	return dst
}

// WriteCanonical writes the canonical file form of the snapshot to w, in
// chunks of about 32 KiB, and returns the bytes written and the first
// write error, after which it stops. Serving a 100,000-actor registry
// this way needs no copy of its 25 MB canonical form.
func (s *Snapshot) WriteCanonical(w io.Writer) (int64, error) {
	var n int64
	flush := func(b []byte) error {
		k, err := w.Write(b)
		n += int64(k)
		return err
	}
	buf, err := s.appendCanonical(make([]byte, 0, 64<<10), flush)
	if err == nil {
		err = flush(buf)
	}
	return n, err
}

// appendCanonical appends the canonical form to dst. When flush is not
// nil, it hands the buffer over and reuses it whenever it grows past half
// its capacity, and stops at the first error flush returns.
func (s *Snapshot) appendCanonical(dst []byte, flush func([]byte) error) ([]byte, error) {
	str := appendString
	dst = append(dst, "{\n  \"schema\": "...)
	dst = str(dst, s.Schema)
	dst = append(dst, ",\n  \"digest\": "...)
	dst = str(dst, s.Digest)
	dst = append(dst, ",\n  \"source\": "...)
	dst = str(dst, s.Source)
	dst = append(dst, ",\n  \"policy_package\": "...)
	dst = str(dst, s.PolicyPackage)
	if len(s.Actors) == 0 {
		return append(dst, ",\n  \"actors\": []\n}\n"...), nil
	}
	dst = append(dst, ",\n  \"actors\": ["...)
	for i := range s.Actors {
		a := &s.Actors[i]
		if flush != nil && len(dst) > cap(dst)/2 {
			if err := flush(dst); err != nil {
				return dst[:0], err
			}
			dst = dst[:0]
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, "\n    {\n      \"name\": "...)
		dst = str(dst, a.Name)
		dst = append(dst, ",\n      \"type\": "...)
		dst = str(dst, a.Type)
		dst = append(dst, ",\n      \"principal\": "...)
		dst = str(dst, a.Principal)
		dst = append(dst, ",\n      \"default_ttl_hours\": "...)
		dst = strconv.AppendInt(dst, int64(a.DefaultTTLHours), 10)
		dst = append(dst, ",\n      \"max_ttl_hours\": "...)
		dst = strconv.AppendInt(dst, int64(a.MaxTTLHours), 10)
		if len(a.Subjects) == 0 {
			dst = append(dst, ",\n      \"subjects\": []"...)
		} else {
			dst = append(dst, ",\n      \"subjects\": ["...)
			for j, sub := range a.Subjects {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, "\n        "...)
				dst = str(dst, sub)
			}
			dst = append(dst, "\n      ]"...)
		}
		dst = append(dst, "\n    }"...)
	}
	return append(dst, "\n  ]\n}\n"...), nil
}

// Equal reports whether s and t have the same content, digests aside.
func (s *Snapshot) Equal(t *Snapshot) bool {
	return s.Schema == t.Schema && s.Source == t.Source && s.PolicyPackage == t.PolicyPackage &&
		slices.EqualFunc(s.Actors, t.Actors, func(a, b Actor) bool {
			return a.Name == b.Name && a.Type == b.Type && a.Principal == b.Principal &&
				a.DefaultTTLHours == b.DefaultTTLHours && a.MaxTTLHours == b.MaxTTLHours &&
				slices.Equal(a.Subjects, b.Subjects)
		})
}
