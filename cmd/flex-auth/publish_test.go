package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublishErrors checks publish's exit codes for what fails before
// anything is pushed: 1 for a pair that is not good, 2 for the rest.
func TestPublishErrors(t *testing.T) {
	dir := t.TempDir()
	registry := "../../examples/ops-warden/production_registry_snapshot.json"
	policy := "../../examples/ops-warden/policy_package.md"
	pol, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	failing := filepath.Join(dir, "failing.md")
	os.WriteFile(failing, bytes.Replace(pol, []byte("expect: {effect: allow, reason: signing_policy_matched}"), []byte("expect: {effect: deny, reason: ttl_out_of_bounds}"), 1), 0o644)
	notKey := filepath.Join(dir, "key")
	os.WriteFile(notKey, []byte("not a key"), 0o600)
	down := "oci://127.0.0.1:1/flex-auth/publication:production"
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no reference", []string{"--registry", registry, "--policy", policy}, 2, "want one oci://HOST/REPO:TAG, got 0 arguments"},
		{"not oci", []string{"--registry", registry, "--policy", policy, "https://127.0.0.1:1/x:y"}, 2, "want oci://HOST/REPOSITORY:TAG"},
		{"a digest", []string{"--registry", registry, "--policy", policy, "oci://127.0.0.1:1/x@sha256:" + strings.Repeat("a", 64)}, 2, "publish to a tag"},
		{"no policy", []string{"--registry", registry, down}, 2, "--registry and --policy are required"},
		{"unreadable registry", []string{"--registry", filepath.Join(dir, "none.json"), "--policy", policy, down}, 1, "read registry"},
		{"invalid policy", []string{"--registry", registry, "--policy", registry, down}, 1, "production_registry_snapshot.json:"},
		{"failing tests", []string{"--registry", registry, "--policy", failing, down}, 1, "1 of 44 tests fail against the registry; nothing was pushed"},
		{"bad key", []string{"--registry", registry, "--policy", policy, "--sign-key", notKey, down}, 2, "--sign-key: private key " + notKey},
		{"registry down", []string{"--registry", registry, "--policy", policy, "--plain-http", down}, 2, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"publish"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tt.code, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

// TestRemoteErrorsEscaped: what a registry says in an error reaches the
// terminal escaped, from publish and from serve --source.
func TestRemoteErrorsEscaped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			// A tag that exists, so that the manifest is asked for.
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Content-Length", "100")
			w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"errors":[{"code":"UNKNOWN","message":"\u001b[2J\u001b]0;pwned\u0007 storage down"}]}`))
	}))
	defer srv.Close()
	ref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/flex-auth/publication:production"
	for _, args := range [][]string{
		{"publish", "--registry", "../../examples/ops-warden/production_registry_snapshot.json", "--policy", "../../examples/ops-warden/policy_package.md", "--plain-http", ref},
		{"serve", "--addr", "127.0.0.1:0", "--source", ref, "--plain-http"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), "storage down") {
			t.Errorf("%s: exit %d, stderr %q; want a failure quoting the registry", args[0], code, stderr.String())
		}
		if strings.ContainsAny(stderr.String(), "\x1b\x07") {
			t.Errorf("%s: stderr %q holds control characters", args[0], stderr.String())
		}
	}
}
