// Package generate turns an ops-warden inventory into a registry snapshot:
// the step between inventory and registry in the flow
// inventory -> generate -> registry.
package generate

import (
	"fmt"
	"io"

	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/inventory"
	"github.com/coulomb/flex-auth/registry"
)

// MaxInventorySize bounds how much an inventory may hold: 100,000 actors
// take about 5 MB; anything near this is a mistake, not an inventory.
const MaxInventorySize = readfile.MaxInventoryBytes

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

// File reads the inventory at path, a regular file of at most
// MaxInventorySize bytes, and returns its snapshot for policyPackage (""
// means registry.DefaultPolicyPackage). Problems in the inventory come
// back as inventory.Errors, each naming FILE:LINE:COL. Standard input is
// the caller's to pass to Read.
func File(path, policyPackage string) (*registry.Snapshot, error) {
	if err := checkPackage(policyPackage); err != nil {
		return nil, err
	}
	inv, err := InventoryFile(path)
	if err != nil {
		return nil, err
	}
	return Snapshot(inv, policyPackage), nil
}

// InventoryFile reads and parses the inventory at path, as File does, for
// a caller that needs the inventory beside its snapshot: drift points at
// an inventory's lines.
func InventoryFile(path string) (*inventory.Inventory, error) {
	data, err := readfile.Read(path, readfile.Inventory)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return inventory.Parse(path, data)
}

// Read reads an inventory of at most MaxInventorySize bytes from r, named
// name in errors, and returns its snapshot for policyPackage (""
// means registry.DefaultPolicyPackage).
func Read(name string, r io.Reader, policyPackage string) (*registry.Snapshot, error) {
	if err := checkPackage(policyPackage); err != nil {
		return nil, err
	}
	data, err := readfile.ReadAll(r, readfile.Inventory)
	if err != nil {
		return nil, fmt.Errorf("read inventory %s: %w", name, err)
	}
	return parse(name, data, policyPackage)
}

func parse(name string, data []byte, policyPackage string) (*registry.Snapshot, error) {
	inv, err := inventory.Parse(name, data)
	if err != nil {
		return nil, err
	}
	return Snapshot(inv, policyPackage), nil
}

func checkPackage(policyPackage string) error {
	if policyPackage == "" {
		return nil
	}
	if err := registry.CheckPackageName(policyPackage); err != nil {
		return fmt.Errorf("policy package: %w", err)
	}
	return nil
}
