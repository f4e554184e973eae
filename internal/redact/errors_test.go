package redact

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestErrorf(t *testing.T) {
	inner := Errorf("must be between %d and %d, got %d", 1, 8760, Value(0))
	outer := Errorf("load %s: actors[2]: %w", "registry.json", inner)
	tests := []struct {
		name           string
		err            error
		full, redacted string
	}{
		{"value", inner, "must be between 1 and 8760, got 0", "must be between 1 and 8760, got <redacted>"},
		{"wrapped", outer, "load registry.json: actors[2]: must be between 1 and 8760, got 0", "load registry.json: actors[2]: must be between 1 and 8760, got <redacted>"},
		{"quoted", Errorf("invalid principal %q: want ^[a-z_]", Value("s3cr3t")), `invalid principal "s3cr3t": want ^[a-z_]`, "invalid principal <redacted>: want ^[a-z_]"},
		{"text", Errorf("want a string, got %s", Pair(`"s3cr3t"`, "a string")), `want a string, got "s3cr3t"`, "want a string, got a string"},
		{"said another way", Error(errors.New("policy_package \"x\" is not \"y\""), "policy_package is not the package"), `policy_package "x" is not "y"`, "policy_package is not the package"},
		{"os error", Errorf("load: %w", &fs.PathError{Op: "open", Path: "/r.json", Err: fs.ErrNotExist}), "load: open /r.json: file does not exist", "load: open /r.json: file does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.full {
				t.Errorf("Error: got %q, want %q", got, tt.full)
			}
			if got := Message(tt.err); got != tt.redacted {
				t.Errorf("Message: got %q, want %q", got, tt.redacted)
			}
		})
	}
	if !errors.Is(outer, inner) {
		t.Error("errors.Is does not see the error Errorf wrapped")
	}
}

func TestErrorfWraps(t *testing.T) {
	err := Errorf("read: %w", fs.ErrPermission)
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("errors.Is does not see the wrapped error in %v", err)
	}
}

func TestMessage(t *testing.T) {
	secret := Errorf("got %q", Value("s3cr3t"))
	// A plain wrapper quotes the secret; Message falls back to the
	// redacted form inside it, without the wrapper's words.
	wrapped := fmt.Errorf("context: %w", secret)
	if got, want := Message(wrapped), "got <redacted>"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Message(errors.New("plain")), "plain"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestSprintf(t *testing.T) {
	full, redacted := Sprintf("%s: unknown key %q", "front matter", Value("s3cr3t"))
	if full != `front matter: unknown key "s3cr3t"` || redacted != "front matter: unknown key <redacted>" {
		t.Errorf("got %q and %q", full, redacted)
	}
}
