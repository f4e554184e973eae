// Package generate turns an ops-warden inventory into a registry snapshot:
// the step between inventory and registry in the flow
// inventory -> generate -> registry.
package generate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/coulomb/flex-auth/inventory"
	"github.com/coulomb/flex-auth/registry"
)

// MaxInventorySize bounds how much an inventory may hold. 100,000 actors
// take about 5 MB; anything near this is a mistake, not an inventory.
const MaxInventorySize = 64 << 20

// Snapshot returns the sealed registry snapshot of inv's enabled actors for
// policyPackage ("" means registry.DefaultPolicyPackage), with source
// "ops-warden". inv is not modified.
func Snapshot(inv *inventory.Inventory, policyPackage string) *registry.Snapshot {
	if policyPackage == "" {
		policyPackage = registry.DefaultPolicyPackage
	}
	n := 0
	for i := range inv.Actors {
		n += len(inv.Actors[i].Subjects)
	}
	// registry.New owns the subject slices it is given; copy them into one
	// array so that inv stays the caller's.
	subjects := make([]string, 0, n)
	actors := make([]registry.Actor, len(inv.Actors))
	for i := range inv.Actors {
		a := &inv.Actors[i]
		start := len(subjects)
		subjects = append(subjects, a.Subjects...)
		actors[i] = registry.Actor{
			Name:            a.Name,
			Type:            a.Type,
			Principal:       a.Principal,
			DefaultTTLHours: a.TTLHours,
			MaxTTLHours:     a.MaxTTLHours,
			Subjects:        subjects[start:len(subjects):len(subjects)],
		}
	}
	return registry.New(registry.DefaultSource, policyPackage, actors)
}

// File reads the inventory at path and returns its snapshot for
// policyPackage ("" means registry.DefaultPolicyPackage). Problems in the
// inventory come back as inventory.Errors, each naming FILE:LINE:COL.
// Standard input is the caller's to pass to Read.
func File(path, policyPackage string) (*registry.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return read(path, f, size, policyPackage)
}

// Read reads an inventory from r, named name in errors, and returns its
// snapshot for policyPackage ("" means registry.DefaultPolicyPackage).
func Read(name string, r io.Reader, policyPackage string) (*registry.Snapshot, error) {
	return read(name, r, 0, policyPackage)
}

// read is Read with the expected size of the input, when known, so that a
// large inventory is read into one buffer of the right size.
func read(name string, r io.Reader, size int64, policyPackage string) (*registry.Snapshot, error) {
	if policyPackage != "" {
		if err := registry.CheckPackageName(policyPackage); err != nil {
			return nil, fmt.Errorf("policy package: %w", err)
		}
	}
	if size > MaxInventorySize {
		return nil, fmt.Errorf("read inventory %s: %w", name, errTooLarge)
	}
	var buf bytes.Buffer
	buf.Grow(int(size) + 512) // + 512 to see EOF without growing
	_, err := buf.ReadFrom(io.LimitReader(r, MaxInventorySize+1))
	data := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("read inventory %s: %w", name, err)
	}
	if len(data) > MaxInventorySize {
		return nil, fmt.Errorf("read inventory %s: %w", name, errTooLarge)
	}
	inv, err := inventory.Parse(name, data)
	if err != nil {
		return nil, err
	}
	return Snapshot(inv, policyPackage), nil
}

var errTooLarge = errors.New("larger than 64 MiB; an inventory that size is a mistake")
