package registry

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/coulomb/flex-auth/internal/redact"
)

// swapQZ swaps the letters q and z, which are in no member name, keyword,
// type or schema a snapshot's structure depends on (nor in the words that
// make a member name look like key material): the swapped file breaks the
// same rules at the same places as data, with other values.
func swapQZ(data []byte) []byte {
	out := bytes.Clone(data)
	for i, c := range out {
		switch c {
		case 'q':
			out[i] = 'z'
		case 'z':
			out[i] = 'q'
		}
	}
	return out
}

// FuzzParse checks the snapshot loader on arbitrary bytes: it never panics,
// it accepts nothing that is not JSON, what it accepts re-encodes to a
// canonical file that loads again with the same digest and content, and
// what it refuses has a redacted form that depends on where and which
// rules the file breaks, not on the values it holds.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(fixture); err == nil {
		f.Add(data)
	}
	f.Add(largeSnapshot(3).Canonical())
	f.Add([]byte(`{"schema": "flex-auth.registry/v1", "actors": [{"name": "agt-\u0061", "subjects": ["a\"b"]}]}`))
	f.Add([]byte(`{"schema": "\ud83d\ude00\ud800", "digest": 1.5e3, "actors": [{"name": "adm-\u00e9"}]}`))
	// Values with q and z wherever a rule can break, so that the
	// redacted form is compared on every kind of problem.
	f.Add([]byte(`{"schema": "qz", "digest": "qz", "source": "Qz", "policy_package": "z q", "actors": [` +
		`{"name": "agt-qz-", "type": "qz", "principal": "Qz", "default_ttl_hours": "qz", "max_ttl_hours": 1.5, "subjects": ["q z", "q z"], "qz_token": 1, "qz": 2},` +
		`{"name": "adm-q", "type": "atm", "principal": "z", "default_ttl_hours": 9000, "max_ttl_hours": 2, "subjects": ["iam:adm-z", "adm-q", "adm-q"]},` +
		`{"name": "adm-q", "type": "adm", "principal": "z", "default_ttl_hours": 1, "max_ttl_hours": 2, "subjects": []}]}`))
	f.Add([]byte(`{"schema": "flex-auth.registry/v1", "source": "\uqzqz"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseUnverified(data)
		if err != nil {
			// The same file with other values breaks the same rules
			// at the same places: its redacted form is the same.
			_, err2 := ParseUnverified(swapQZ(data))
			if err2 == nil {
				t.Fatalf("swapping q and z made the file good: %q", data)
			}
			if a, b := redact.Message(err), redact.Message(err2); a != b {
				t.Fatalf("the redacted form depends on the values:\n%s\n%s", a, b)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON: %q", data)
		}
		canon := s.Canonical()
		again, err := ParseUnverified(canon)
		if err != nil {
			t.Fatalf("canonical form does not load: %v\n%s", err, canon)
		}
		if !again.Equal(s) || again.ComputeDigest() != s.ComputeDigest() {
			t.Fatalf("canonical form changed the content:\n%s", canon)
		}
		if !bytes.Equal(again.Canonical(), canon) {
			t.Fatal("canonical form is not stable")
		}
		if s.Verify() == nil {
			if _, err := Parse(canon); err != nil {
				t.Fatalf("verified snapshot's canonical form fails: %v", err)
			}
		}
	})
}
