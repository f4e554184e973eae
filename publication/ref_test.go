package publication

import (
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		in, want, tag string
		digest        bool
	}{
		{"oci://127.0.0.1:5000/flex-auth/publication:production", "oci://127.0.0.1:5000/flex-auth/publication:production", "production", false},
		{"OCI://localhost/x:y", "oci://localhost/x:y", "y", false},
		{"oci://localhost/x@" + digest, "oci://localhost/x@" + digest, "", true},
	}
	for _, tt := range tests {
		r, err := ParseRef(tt.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tt.in, err)
			continue
		}
		if r.String() != tt.want || r.Tag() != tt.tag || r.IsDigest() != tt.digest || r.At(digest) != "oci://"+r.Host()+"/"+r.ref.Repository+"@"+digest {
			t.Errorf("ParseRef(%q) = %s, tag %q, digest %v", tt.in, r, r.Tag(), r.IsDigest())
		}
	}
	for in, want := range map[string]string{
		"https://localhost/x:y":                  "want oci://HOST/REPOSITORY:TAG",
		"oci://localhost/x":                      "no tag",
		"oci://user:s3cret@localhost/x:y":        "credentials do not go in the reference",
		"oci://localhost/UPPER:y":                "invalid reference",
		"https://user:s3cret@localhost/x:y?t=s3": "want oci://",
	} {
		_, err := ParseRef(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRef(%q): got %v, want an error containing %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseRef(%q): %v shows the password", in, err)
		}
	}
}
