package registry

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// FuzzParse checks the snapshot loader on arbitrary bytes: it never panics,
// it accepts nothing that is not JSON, and what it accepts re-encodes to a
// canonical file that loads again with the same digest and content.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(fixture); err == nil {
		f.Add(data)
	}
	f.Add(largeSnapshot(3).Canonical())
	f.Add([]byte(`{"schema": "flex-auth.registry/v1", "actors": [{"name": "agt-\u0061", "subjects": ["a\"b"]}]}`))
	f.Add([]byte(`{"schema": "\ud83d\ude00\ud800", "digest": 1.5e3, "actors": [{"name": "adm-\u00e9"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Decode(data)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON: %q", data)
		}
		canon := s.Canonical()
		again, err := Decode(canon)
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
