package sshsig

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	hsig "github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/internal/readfile"
)

// Keys is a list of trusted public keys, read from a file by LoadKeys or
// ParseKeys.
type Keys struct {
	file    string
	entries []entry
}

// An entry is one line of a keys file.
type entry struct {
	key  ssh.PublicKey
	line int
	// namespaces is the allowed_signers namespaces="..." pattern list;
	// "" allows every namespace.
	namespaces string
	// after and before bound when the key may be used (valid-after,
	// valid-before); zero is unbounded.
	after, before time.Time
}

// A LineError is a problem with one line of a keys file.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// LoadKeys reads the trusted keys in the file at path; see ParseKeys.
func LoadKeys(path string) (*Keys, error) {
	data, err := readfile.Read(path, readfile.Kind{Name: "trusted keys file", Max: MaxKeysFileBytes})
	if err != nil {
		return nil, fmt.Errorf("read trusted keys: %w", err)
	}
	return ParseKeys(path, data)
}

// ParseKeys reads a file of trusted public keys, named file in errors.
// Each line that is not empty or a # comment is either an OpenSSH public
// key ("ssh-ed25519 AAAA... comment", as in a .pub file or
// authorized_keys without options) or an ssh-keygen allowed_signers line
// ("principals [options] ssh-ed25519 AAAA... comment"). Of an
// allowed_signers line, the principals are not used (flex-auth verifies
// no identity; they are for `ssh-keygen -Y verify -I`), and the options
// namespaces, valid-after and valid-before restrict the key as ssh-keygen
// does; cert-authority is refused: certificates are not supported. A file
// without a key is an error.
func ParseKeys(file string, data []byte) (*Keys, error) {
	k := &Keys{file: file}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := parseLine(line)
		if err != nil {
			return nil, &LineError{File: file, Line: n + 1, Err: err}
		}
		e.line = n + 1
		k.entries = append(k.entries, e)
	}
	if len(k.entries) == 0 {
		return nil, fmt.Errorf("%s: no public key in the file", file)
	}
	return k, nil
}

// Len returns the number of keys.
func (k *Keys) Len() int { return len(k.entries) }

// File returns the name of the file the keys were read from.
func (k *Keys) File() string { return k.file }

func parseLine(line string) (entry, error) {
	first, _ := cutField(line)
	if isKeyType(first) {
		key, _, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return entry{}, fmt.Errorf("not an OpenSSH public key: %w", err)
		}
		if len(options) > 0 {
			return entry{}, errors.New("options without principals; write an allowed_signers line: PRINCIPALS OPTIONS KEY")
		}
		return entry{key: key}, checkKey(key)
	}
	// allowed_signers: principals [options] keytype base64 [comment]
	principals, rest, err := cutPrincipals(line)
	if err != nil {
		return entry{}, err
	}
	if strings.Contains(principals, "=") {
		// ssh-keygen would take it for principals and apply no option:
		// refuse what reads as a restriction and would not be one.
		return entry{}, fmt.Errorf("%q looks like options, not principals: an allowed_signers line is PRINCIPALS [OPTIONS] KEY", principals)
	}
	var e entry
	if next, _ := cutField(rest); !isKeyType(next) {
		opts, after := cutOptions(rest)
		if err := e.setOptions(opts); err != nil {
			return entry{}, err
		}
		rest = after
	}
	if next, _ := cutField(rest); !isKeyType(next) {
		return entry{}, fmt.Errorf("%q where an SSH key type should be (principals, options, key type, key)", next)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rest))
	if err != nil {
		return entry{}, fmt.Errorf("not an OpenSSH public key after the principals and options: %w", err)
	}
	e.key = key
	return e, checkKey(key)
}

// checkKey refuses certificates: their validity and principals would
// need checking against a CA, which this package does not do.
func checkKey(key ssh.PublicKey) error {
	if _, ok := key.(*ssh.Certificate); ok {
		return errors.New("an SSH certificate; list the key itself")
	}
	return nil
}

// isKeyType reports whether s names an SSH public key algorithm.
func isKeyType(s string) bool {
	switch s {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoRSA, ssh.KeyAlgoDSA, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return true
	}
	return strings.HasSuffix(s, "-cert-v01@openssh.com")
}

// cutField returns the first white-space separated field of s and what
// follows it, trimmed.
func cutField(s string) (field, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// cutPrincipals cuts the principals field, which may be quoted.
func cutPrincipals(line string) (principals, rest string, err error) {
	if line[0] != '"' {
		p, rest := cutField(line)
		return p, rest, nil
	}
	end := strings.IndexByte(line[1:], '"')
	if end < 0 {
		return "", "", errors.New("principals: missing closing quote")
	}
	return line[1 : end+1], strings.TrimLeft(line[end+2:], " \t"), nil
}

// cutOptions cuts the options field: up to white space outside quotes.
func cutOptions(s string) (options, rest string) {
	quoted := false
	for i, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return s[:i], strings.TrimLeft(s[i:], " \t")
		}
	}
	return s, ""
}

// setOptions applies an allowed_signers options field: comma-separated,
// keywords in any case, values in double quotes, as ssh-keygen reads them.
func (e *entry) setOptions(opts string) error {
	for opts != "" {
		var opt string
		opt, opts = cutOption(opts)
		name, value, hasValue := strings.Cut(opt, "=")
		name = strings.ToLower(name)
		if hasValue {
			if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
				return fmt.Errorf("option %s: the value must be in double quotes", name)
			}
			value = value[1 : len(value)-1]
		}
		var err error
		switch {
		case name == "cert-authority" && !hasValue:
			return errors.New("cert-authority: certificates are not supported; list the signing key itself")
		case name == "namespaces" && hasValue:
			e.namespaces = value
		case name == "valid-after" && hasValue:
			e.after, err = parseTimestamp(value)
		case name == "valid-before" && hasValue:
			e.before, err = parseTimestamp(value)
		default:
			return fmt.Errorf("unsupported option %q", opt)
		}
		if err != nil {
			return fmt.Errorf("option %s: %w", name, err)
		}
	}
	return nil
}

// cutOption cuts one option off a comma-separated list, respecting quotes.
func cutOption(s string) (opt, rest string) {
	quoted := false
	for i, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// parseTimestamp reads an allowed_signers time: YYYYMMDD or
// YYYYMMDDHHMM[SS], in the local time zone unless it ends in Z (UTC).
func parseTimestamp(s string) (time.Time, error) {
	loc := time.Local
	if strings.HasSuffix(s, "Z") {
		s, loc = s[:len(s)-1], time.UTC
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(s)]
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]", s)
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: %w", s, err)
	}
	return t, nil
}

// Verify checks that armored is a valid SSH signature of msg, made in
// namespace by one of the keys, allowed for that namespace at now; it
// returns the key. A signature by a key not in the list is ErrUnknownKey;
// one that does not verify, or was made for another namespace,
// ErrBadSignature.
func (k *Keys) Verify(namespace string, msg, armored []byte, now time.Time) (ssh.PublicKey, error) {
	sig, err := ParseSignature(armored)
	if err != nil {
		return nil, err
	}
	if sig.Namespace != namespace {
		return nil, fmt.Errorf("%w: made for namespace %q, not %q", ErrBadSignature, sig.Namespace, namespace)
	}
	signer := sig.PublicKey.Marshal()
	var refused []string
	for _, e := range k.entries {
		if !bytes.Equal(e.key.Marshal(), signer) {
			continue
		}
		if why := e.refuses(namespace, now); why != "" {
			refused = append(refused, fmt.Sprintf("%s:%d %s", k.file, e.line, why))
			continue
		}
		if err := hsig.Verify(bytes.NewReader(msg), sig, e.key, sig.HashAlgorithm, namespace); err != nil {
			return nil, fmt.Errorf("%w: by %s: %v", ErrBadSignature, Fingerprint(e.key), err)
		}
		return e.key, nil
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("%w: %s is in %s but not allowed here: %s", ErrUnknownKey, Fingerprint(sig.PublicKey), k.file, strings.Join(refused, "; "))
	}
	return nil, fmt.Errorf("%w: %s is not in %s", ErrUnknownKey, Fingerprint(sig.PublicKey), k.file)
}

// refuses says why e does not allow a signature in namespace at now, or
// returns "".
func (e *entry) refuses(namespace string, now time.Time) string {
	switch {
	case e.namespaces != "" && !matchList(namespace, e.namespaces):
		return fmt.Sprintf("allows the namespaces %q only", e.namespaces)
	case !e.after.IsZero() && now.Before(e.after):
		return "is valid after " + e.after.Format(time.RFC3339) + " only"
	case !e.before.IsZero() && now.After(e.before):
		return "was valid before " + e.before.Format(time.RFC3339) + " only"
	}
	return ""
}

// matchList reports whether s matches an OpenSSH pattern list: patterns
// separated by commas, with * and ? wildcards; a match of a pattern that
// starts with ! refuses s whatever else matches.
func matchList(s, list string) bool {
	matched := false
	for _, p := range strings.Split(list, ",") {
		negated := strings.HasPrefix(p, "!")
		if negated {
			p = p[1:]
		}
		if match(s, p) {
			if negated {
				return false
			}
			matched = true
		}
	}
	return matched
}

// match reports whether s matches pattern, in which * matches any run of
// characters and ? any one.
func match(s, pattern string) bool {
	for pattern != "" {
		switch pattern[0] {
		case '*':
			pattern = strings.TrimLeft(pattern, "*")
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if match(s[i:], pattern) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			s, pattern = s[1:], pattern[1:]
		default:
			if s == "" || s[0] != pattern[0] {
				return false
			}
			s, pattern = s[1:], pattern[1:]
		}
	}
	return s == ""
}
