// Package inventory parses ops-warden's inventory.yaml (CONTRACT section 1)
// into actors with every setting resolved: principal, TTLs and subjects.
//
// Parsing goes through yaml.v3's Node API so that every problem carries its
// FILE:LINE:COL, and it reports every problem in the file, not just the
// first. Decisions the contract leaves open:
//
//   - A disabled actor is checked like any other, and its name and iam:
//     form stay reserved: no other actor may claim them as subjects, so
//     re-enabling it can never collide, and nobody inherits a retired
//     identity.
//   - Keys that look like credentials (private_key, vault_token, ...) are
//     refused wherever they are, x- keys and their values included: an
//     inventory is committed to git and must never carry key material.
//   - Anchors and aliases are resolved. The nodes visited through them are
//     bounded by the size of the file, so an alias bomb is an error, not
//     an out-of-memory.
//   - Merge keys (<<) are a YAML 1.1 feature and are refused; defaults
//     share settings instead.
//   - An integer written with a leading zero (024) is refused: YAML 1.1
//     reads it as octal, YAML 1.2 as decimal.
//   - The file must be UTF-8 and hold exactly one YAML document.
//   - Scalars are read by YAML 1.2's core schema (keys.go), not by the
//     tags yaml.v3 gives them, which follow YAML 1.1 in places: 1_000 and
//     0b1 are strings, not integers, and so is 2001-12-14.
//   - Where yaml.v3 departs from YAML 1.2 (yaml12.go): a %YAML 1.2
//     directive is accepted and the escape "\'" refused; "\/" and a "?"
//     inside a plain scalar in a flow collection, valid YAML 1.2 that
//     yaml.v3 refuses, are refused with a hint.
//   - Every occurrence of a duplicated actor is checked; the later ones
//     are reported as duplicates of the first.
//   - Keys are compared as YAML 1.2 values, not as text (keys.go): true
//     and True are one key, 1 and "1" two. A key written as an alias is
//     reported where the alias is, not where its anchor is.
//
// A large inventory is cut at the lines where actors start and parsed in
// parts on every core; the result, errors included, is the same as parsing
// it as one document.
package inventory

// Version is the only inventory version this package understands.
const Version = 1

// An Inventory is a valid inventory with every setting resolved.
type Inventory struct {
	// File names the inventory in error messages ("<stdin>" for standard
	// input).
	File string
	// ActorsLine is the line of the actors key.
	ActorsLine int
	// Actors holds the enabled actors, sorted by name.
	Actors []Actor
	// Disabled holds the actors marked "disabled: true", sorted by name
	// and resolved like the others. They are left out of the snapshot.
	Disabled []Actor
}

// An Actor is one enabled actor with its settings resolved from the actor's
// own values and its type's defaults.
type Actor struct {
	Name string
	// Type is the name's prefix: "adm", "agt" or "atm".
	Type string
	// Principal is the default SSH principal: the actor's value, else its
	// type's default, else the actor name.
	Principal string
	// TTLHours is the default certificate lifetime used by warden sign.
	TTLHours int
	// MaxTTLHours is the longest lifetime the policy allows; at least
	// TTLHours.
	MaxTTLHours int
	// Subjects are the identities that may ask to sign as this actor:
	// Name, "iam:"+Name and the actor's extra subjects, sorted in byte
	// order and unique.
	Subjects []string
	// Line and Col give the position of the actor's name in the file.
	Line, Col int
	// KeyLines gives the lines of the keys in the actor's own settings.
	KeyLines KeyLines
}

// KeyLines are the lines of an actor's own setting keys, so that a report
// about a setting can point at the line that sets it. A setting the actor
// leaves to its type's defaults or to its name has line 0.
type KeyLines struct {
	Type, Principal, TTLHours, MaxTTLHours, Subjects int
}
