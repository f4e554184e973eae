package drift

import (
	"errors"
	"fmt"

	"github.com/coulomb/flex-auth/generate"
)

// ErrNotWritable reports a --write whose ACTUAL is not a snapshot file.
var ErrNotWritable = errors.New("only a snapshot file (.json) can be rewritten")

// Write rewrites the ACTUAL snapshot file with EXPECTED's canonical form,
// atomically, with generate.WriteFile (a temporary file in the same
// directory, synced, renamed over it, keeping the file's permissions). It
// refuses an ACTUAL that is not a snapshot file, and an EXPECTED file
// edited by hand, whose content nobody generated. It reports whether the
// file changed: not when its registry is in sync, whatever the policies.
func (r *Report) Write() (bool, error) {
	a := r.Actual
	if a.Kind != File {
		return false, fmt.Errorf("write %s: ACTUAL is %s: %w", a.Source, article(a.Kind), ErrNotWritable)
	}
	if !r.Expected.DigestMatches() {
		return false, fmt.Errorf("write %s: EXPECTED %s was edited by hand (its digest does not match its content); regenerate it first", a.Source, r.Expected.Source)
	}
	// A policy finding here is about EXPECTED: a file says no policy.
	if r.registryInSync() {
		return false, nil
	}
	if err := generate.WriteFile(a.Source, r.want); err != nil {
		return false, err
	}
	return true, nil
}

func article(k Kind) string {
	switch k {
	case Inventory:
		return "an inventory"
	case Runtime:
		return "a running service"
	}
	return "a " + k.String()
}
