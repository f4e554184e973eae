package redact

import "testing"

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://flex-auth.example/base/", "https://flex-auth.example/base/"},
		{"HTTP://Host.Example", "HTTP://Host.Example"}, // untouched: no secret
		{"https://user:s3cret@host/", "https://xxxxx@host/"},
		{"https://ghp_token@host:8443/v1/registry", "https://xxxxx@host:8443/v1/registry"},
		{"https://user:@host", "https://xxxxx@host"},
		{"https://:pw@host", "https://xxxxx@host"},
		{"https://host/?access_token=abc&x=1", "https://host/?xxxxx"},
		{"https://host/#token=abc", "https://host/#xxxxx"},
		{"https://u:p@host/path?q=1#f", "https://xxxxx@host/path?xxxxx#xxxxx"},
		{"https://u:p%zz@host/", "https://xxxxx@host/"},              // does not parse
		{"https://u:pa ss@ho st/?t=1", "https://xxxxx@ho st/?xxxxx"}, // does not parse
		{"https://u:p/ss@host/", "https://xxxxx@host/"},              // does not parse: "p/ss" is no port
		{"examples/registry.json", "examples/registry.json"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
