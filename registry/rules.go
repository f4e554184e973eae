package registry

import (
	"strings"

	"github.com/coulomb/flex-auth/internal/redact"
)

// The checks' errors quote the value they refuse; their redacted form
// (redact.Message) does not.

// The limits of CONTRACT section 1. They are checked by hand-written loops
// rather than regular expressions: a 100,000-actor inventory checks every
// name, principal and subject, and regexp would dominate generate's time.
const (
	MaxNameLen    = 63
	MaxSubjectLen = 256
	MinTTLHours   = 1
	MaxTTLHours   = 8760

	// maxPackageLen bounds policy package and source names; the contract
	// leaves them open, and nobody needs more.
	maxPackageLen = 128
)

// Types lists the actor types in order: admins, agents, automations.
var Types = []string{"adm", "agt", "atm"}

// TypeOf returns the type prefix of an actor name ("agt" for
// "agt-state-hub-bridge"), or "" when the name has no known prefix.
func TypeOf(name string) string {
	for _, t := range Types {
		if len(name) > len(t) && name[len(t)] == '-' && name[:len(t)] == t {
			return t
		}
	}
	return ""
}

func isLowerDigit(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// CheckName reports whether name is a valid actor name:
// ^(adm|agt|atm)-[a-z0-9]+(-[a-z0-9]+)*$ and at most 63 bytes.
func CheckName(name string) error {
	if len(name) > MaxNameLen {
		return redact.Errorf("actor name %q is %d bytes long, at most %d allowed", redact.Value(name), len(name), MaxNameLen)
	}
	t := TypeOf(name)
	ok := t != ""
	if ok {
		rest := name[len(t)+1:]
		prevDash := true // the prefix's dash
		for i := 0; i < len(rest); i++ {
			c := rest[i]
			switch {
			case c == '-' && !prevDash:
				prevDash = true
			case isLowerDigit(c):
				prevDash = false
			default:
				ok = false
			}
		}
		ok = ok && !prevDash
	}
	if !ok {
		return redact.Errorf("invalid actor name %q: want adm-, agt- or atm- followed by dash-separated words of a-z and 0-9", redact.Value(name))
	}
	return nil
}

// CheckPrincipal reports whether p is a valid SSH principal:
// ^[a-z_][a-z0-9_-]{0,31}$.
func CheckPrincipal(p string) error {
	ok := len(p) >= 1 && len(p) <= 32 && (p[0] == '_' || 'a' <= p[0] && p[0] <= 'z')
	for i := 1; ok && i < len(p); i++ {
		c := p[i]
		ok = isLowerDigit(c) || c == '_' || c == '-'
	}
	if !ok {
		return redact.Errorf("invalid principal %q: want ^[a-z_][a-z0-9_-]{0,31}$", redact.Value(p))
	}
	return nil
}

// subjectByte marks the bytes a subject may contain: [A-Za-z0-9._:/@+=-].
var subjectByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "._:/@+=-" {
		t[c] = true
	}
	return t
}()

// CheckSubject reports whether s is a valid subject: 1 to 256 bytes of
// [A-Za-z0-9._:/@+=-].
func CheckSubject(s string) error {
	ok := len(s) >= 1 && len(s) <= MaxSubjectLen
	for i := 0; ok && i < len(s); i++ {
		ok = subjectByte[s[i]]
	}
	if !ok {
		return redact.Errorf("invalid subject %q: want 1 to %d bytes of [A-Za-z0-9._:/@+=-]", redact.Value(s), MaxSubjectLen)
	}
	return nil
}

// CheckTTL reports whether hours is an allowed TTL.
func CheckTTL(hours int64) error {
	if hours < MinTTLHours || hours > MaxTTLHours {
		return redact.Errorf("must be between %d and %d, got %d", MinTTLHours, MaxTTLHours, redact.Value(hours))
	}
	return nil
}

// CheckPackageName reports whether name is a valid policy package (or
// source) name: slash-separated segments of [a-z0-9._-], each starting with
// a letter or digit, at most 128 bytes; "ops-warden/ssh-signing" is one.
func CheckPackageName(name string) error {
	ok := len(name) >= 1 && len(name) <= maxPackageLen
	segStart := true
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		switch {
		case isLowerDigit(c):
			segStart = false
		case c == '/' && !segStart:
			segStart = true
		case (c == '.' || c == '_' || c == '-') && !segStart:
		default:
			ok = false
		}
	}
	if !ok || segStart {
		return redact.Errorf("invalid name %q: want slash-separated segments of [a-z0-9._-], each starting with a letter or digit, at most %d bytes", redact.Value(name), maxPackageLen)
	}
	return nil
}

// DefaultAction is the action of a check request that names none: signing
// an SSH certificate, the one action a registry's actors are bound for
// (CONTRACT section 6). The service, the policy evaluator and the client
// share this definition, so that a request decides the same over HTTP,
// in-process and in a policy package's tests.
const DefaultAction = "ssh.sign"

// IAMSubject returns the IAM subject form every actor is bound to.
func IAMSubject(name string) string { return "iam:" + name }

// secretWords are member names that carry credentials. A registry is a
// non-secret fixture: such a member is refused by name, so that nobody
// mistakes the refusal for a typo and renames the key to get it through.
var secretWords = []string{"private_key", "privatekey", "secret", "token", "password", "passwd", "credential", "api_key", "apikey"}

// LooksSecret reports whether a member name suggests key material or a
// credential (private_key, vault_token, client_secret, ...).
func LooksSecret(key string) bool {
	k := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
