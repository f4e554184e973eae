// Package examples holds the example files that ship inside the flex-auth
// binary: the ops-warden inventory, its registry snapshot and the
// ops-warden policy package. `flex-auth serve` without --registry and
// --policy serves them.
package examples

import "embed"

// OpsWarden holds the ops-warden example under "ops-warden/": the files
// named by the OpsWarden* paths.
//
//go:embed ops-warden/inventory.yaml ops-warden/production_registry_snapshot.json ops-warden/policy_package.md
var OpsWarden embed.FS

// Paths of the ops-warden example files in OpsWarden.
const (
	OpsWardenInventory = "ops-warden/inventory.yaml"
	OpsWardenRegistry  = "ops-warden/production_registry_snapshot.json"
	OpsWardenPolicy    = "ops-warden/policy_package.md"
)
