package publication

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/coulomb/flex-auth/registry"
)

// A Statement is what a publication's signature covers: the policy
// package's name, the serial, and the three digests that pin the
// content. Its text form, six lines, is meant to be read by people and
// checked with ssh-keygen and sha256sum alone:
//
//	flex-auth publication v1
//	package: ops-warden/ssh-signing
//	serial: 1764489600
//	registry: sha256:...        the snapshot's digest, as in the file, /healthz and the decision log
//	registry-file: sha256:...   sha256sum of registry.json
//	policy: sha256:...          sha256sum of policy_package.md, the policy digest
type Statement struct {
	Package        string
	Serial         uint64
	RegistryDigest string
	RegistryFile   string
	PolicyDigest   string
}

const statementHeader = "flex-auth publication v1"

// Marshal returns the statement's text.
func (s *Statement) Marshal() []byte {
	var b strings.Builder
	b.WriteString(statementHeader + "\n")
	b.WriteString("package: " + s.Package + "\n")
	b.WriteString("serial: " + strconv.FormatUint(s.Serial, 10) + "\n")
	b.WriteString("registry: " + s.RegistryDigest + "\n")
	b.WriteString("registry-file: " + s.RegistryFile + "\n")
	b.WriteString("policy: " + s.PolicyDigest + "\n")
	return []byte(b.String())
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ParseStatement reads a statement's text. It accepts exactly what
// Marshal writes: the lines in order, each once, nothing else, so that
// one signed statement has one reading.
func ParseStatement(data []byte) (*Statement, error) {
	if len(data) > MaxStatementBytes {
		return nil, fmt.Errorf("statement: %d bytes, more than %d", len(data), MaxStatementBytes)
	}
	text := string(data)
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("statement: does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	keys := []string{"package", "serial", "registry", "registry-file", "policy"}
	if len(lines) != len(keys)+1 || lines[0] != statementHeader {
		return nil, fmt.Errorf("statement: want %q and the lines %s, one each, in that order", statementHeader, strings.Join(keys, ", "))
	}
	values := make([]string, len(keys))
	for i, key := range keys {
		v, ok := strings.CutPrefix(lines[i+1], key+": ")
		if !ok {
			return nil, fmt.Errorf("statement: line %d: want %q", i+2, key+": ...")
		}
		values[i] = v
	}
	s := &Statement{Package: values[0], RegistryDigest: values[2], RegistryFile: values[3], PolicyDigest: values[4]}
	if err := registry.CheckPackageName(s.Package); err != nil {
		return nil, fmt.Errorf("statement: package: %w", err)
	}
	serial, err := strconv.ParseUint(values[1], 10, 64)
	if err != nil || serial == 0 || values[1] != strconv.FormatUint(serial, 10) {
		return nil, fmt.Errorf("statement: serial %q is not a whole number from 1 to %d", values[1], uint64(1<<64-1))
	}
	s.Serial = serial
	for i, d := range []string{s.RegistryDigest, s.RegistryFile, s.PolicyDigest} {
		if !digestRE.MatchString(d) {
			return nil, fmt.Errorf("statement: %s %q is not sha256: and 64 lowercase hex digits", keys[i+2], d)
		}
	}
	return s, nil
}

// sha256Digest returns "sha256:" and the hex SHA-256 of data.
func sha256Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
