package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestUsageErrors: a bad flag or argument, whatever the command, exits
// with the command's usage exit code (2 where exit 1 is a result: drift
// found, a deny, a tampered log, decisions that would change) and says
// where to read its usage; nothing reaches standard output.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args     []string
		cmd      string // the command whose usage is meant
		wantCode int
		wantErr  string
	}{
		{[]string{"bogus"}, "", 1, `unknown command "bogus"`},
		{[]string{"genrate"}, "", 1, `unknown command "genrate" (did you mean "generate"?)`},
		{[]string{"--bogus"}, "", 1, "unknown flag: --bogus"},
		{[]string{"generate"}, "generate", 1, "want INVENTORY, got 0 arguments"},
		{[]string{"generate", "a.yaml", "b.yaml"}, "generate", 1, "want INVENTORY, got 2 arguments"},
		{[]string{"generate", "--bogus", "a.yaml"}, "generate", 1, "unknown flag: --bogus"},
		{[]string{"load-registry", "x.json"}, "load-registry", 1, `unexpected argument "x.json"`},
		{[]string{"drift", "a.yaml"}, "drift", 2, "want EXPECTED and ACTUAL, got 1 argument\n"},
		{[]string{"drift", "a.yaml", "b.json", "c.json"}, "drift", 2, "want EXPECTED and ACTUAL, got 3 arguments"},
		{[]string{"drift", "--bogus", "a.yaml", "b.json"}, "drift", 2, "unknown flag: --bogus"},
		{[]string{"drift", "--format", "xml", "a.yaml", "b.json"}, "drift", 2, `unknown format "xml"`},
		{[]string{"check", "agt-x"}, "check", 2, `unexpected argument "agt-x"`},
		{[]string{"check", "--bogus"}, "check", 2, "unknown flag: --bogus"},
		{[]string{"publish"}, "publish", 2, "want one oci://HOST/REPO:TAG, got 0 arguments"},
		{[]string{"publish", "--bogus", "oci://localhost/r:t"}, "publish", 2, "unknown flag: --bogus"},
		{[]string{"drift", "--decisions", "d.jsonl", "a.yaml", "b.json"}, "drift", 2, "--decisions needs --policy"},
		{[]string{"log", "verfy", "d.jsonl"}, "log", 2, `unknown command "verfy" (did you mean "verify"?)`},
		{[]string{"log", "verify"}, "log verify", 2, "want one or more decision log files"},
		{[]string{"log", "verify", "--bogus", "d.jsonl"}, "log verify", 2, "unknown flag: --bogus"},
		{[]string{"log", "verify", "--head", "12", "d.jsonl"}, "log verify", 2, "--head 12: want SEQ:sha256:HASH"},
		{[]string{"replay", "x"}, "replay", 2, `unexpected argument "x"`},
		{[]string{"replay", "--bogus"}, "replay", 2, "unknown flag: --bogus"},
		{[]string{"replay", "--log", "d.jsonl", "--package", "p", "--format", "yaml"}, "replay", 2, `unknown format "yaml"`},
		{[]string{"replay", "--log", "d.jsonl", "--registry", "r.json"}, "replay", 2, "--registry and --policy go together"},
		{[]string{"replay", "--log", "d.jsonl"}, "replay", 2, "want what to decide with"},
		{[]string{"smoke", "agt-x"}, "smoke", 1, `unexpected argument "agt-x"`},
		{[]string{"policy", "tset"}, "policy", 1, `unknown command "tset" (did you mean "test"?)`},
		{[]string{"policy", "test", "x"}, "policy test", 1, `unexpected argument "x"`},
		{[]string{"serve", "x"}, "serve", 1, `unexpected argument "x"`},
		{[]string{"version", "x"}, "version", 1, `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			hint := "\nRun '" + strings.TrimSpace("flex-auth "+tt.cmd) + " --help' for usage.\n"
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) || !strings.HasSuffix(stderr.String(), hint) || stdout.Len() > 0 {
				t.Errorf("got exit %d, stderr %q, stdout %q; want exit %d, stderr with %q and ending %q", code, stderr.String(), stdout.String(), tt.wantCode, tt.wantErr, hint)
			}
		})
	}
	for _, args := range [][]string{nil, {"policy"}, {"log"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Available Commands:") {
			t.Errorf("%q: got exit %d, stdout %q; want 0 and the help", args, code, stdout.String())
		}
	}
}
