package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coulomb/flex-auth/inventory/inventorytest"
)

const (
	exampleInventory = "../../examples/ops-warden/inventory.yaml"
	exampleSnapshot  = "../../examples/ops-warden/production_registry_snapshot.json"
)

// runGenerate runs flex-auth with args in-process.
func runGenerate(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestGenerateCommand(t *testing.T) {
	fixture := readFile(t, exampleSnapshot)
	inventory := readFile(t, exampleInventory)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nactors:\n  agt-x:\n    ttl_hour: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"example to stdout", []string{"generate", exampleInventory}, "", 0, fixture, ""},
		{"stdin", []string{"generate", "-"}, inventory, 0, fixture, ""},
		{"output dash is stdout", []string{"generate", exampleInventory, "-o", "-"}, "", 0, fixture, ""},
		{"policy package", []string{"generate", exampleInventory, "--policy-package", "ops-warden/ssh-signing-v2"}, "", 0,
			"", ""}, // checked below
		{"invalid inventory", []string{"generate", bad}, "", 1, "",
			bad + `:3:3: actor "agt-x": no ttl_hours; set it here or in defaults.agt` + "\n" +
				bad + `:4:5: actor "agt-x": unknown key "ttl_hour" (did you mean "ttl_hours"?)` + "\n"},
		{"one error has no prefix", []string{"generate", "-"}, "version: 2\nactors: {agt-x: {ttl_hours: 1}}\n", 1, "",
			"<stdin>:1:10: unsupported version 2; this flex-auth understands version 1\n"},
		{"missing file", []string{"generate", filepath.Join(dir, "nope.yaml")}, "", 1, "",
			"flex-auth: read inventory: open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory\n"},
		{"bad policy package", []string{"generate", exampleInventory, "--policy-package", "Bad Name"}, "", 1, "",
			`flex-auth: policy package: invalid name "Bad Name": want slash-separated segments of [a-z0-9._-], each starting with a letter or digit, at most 128 bytes` + "\n"},
		{"empty policy package", []string{"generate", exampleInventory, "--policy-package", ""}, "", 1, "",
			`flex-auth: policy package: invalid name "": want slash-separated segments of [a-z0-9._-], each starting with a letter or digit, at most 128 bytes` + "\n"},
		{"no inventory", []string{"generate"}, "", 1, "",
			"want INVENTORY, got 0 arguments\nRun 'flex-auth generate --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runGenerate(t, tt.stdin, tt.args...)
			if code != tt.wantCode {
				t.Errorf("got exit %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if tt.name == "policy package" {
				if !strings.Contains(stdout, `"policy_package": "ops-warden/ssh-signing-v2"`) || stdout == fixture {
					t.Errorf("got\n%s\nwant the example with policy package ops-warden/ssh-signing-v2", stdout)
				}
				return
			}
			if stdout != tt.wantStdout {
				t.Errorf("got stdout\n%s\nwant\n%s", stdout, tt.wantStdout)
			}
			if stderr != tt.wantStderr {
				t.Errorf("got stderr\n%s\nwant\n%s", stderr, tt.wantStderr)
			}
		})
	}
}

func TestGenerateOutputFile(t *testing.T) {
	fixture := readFile(t, exampleSnapshot)
	dir := t.TempDir()

	t.Run("new file", func(t *testing.T) {
		out := filepath.Join(dir, "new.json")
		if code, _, stderr := runGenerate(t, "", "generate", exampleInventory, "-o", out); code != 0 {
			t.Fatalf("got exit %d: %s", code, stderr)
		}
		if got := readFile(t, out); got != fixture {
			t.Errorf("got\n%s\nwant the fixture", got)
		}
		if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o644 {
			t.Errorf("got mode %v, want 0644", fi.Mode().Perm())
		}
	})

	t.Run("replace keeps mode", func(t *testing.T) {
		out := filepath.Join(dir, "old.json")
		if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runGenerate(t, "", "generate", "--output", out, exampleInventory); code != 0 {
			t.Fatalf("got exit %d: %s", code, stderr)
		}
		if got := readFile(t, out); got != fixture {
			t.Errorf("got\n%s\nwant the fixture", got)
		}
		if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
			t.Errorf("got mode %v, want 0600 kept", fi.Mode().Perm())
		}
	})

	t.Run("failed run leaves the old file", func(t *testing.T) {
		out := filepath.Join(dir, "keep.json")
		if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, _ := runGenerate(t, "version: 1\nactors: {}\n", "generate", "-", "-o", out)
		if code != 1 {
			t.Errorf("got exit %d, want 1", code)
		}
		if got := readFile(t, out); got != "old" {
			t.Errorf("got %q, want the old file untouched", got)
		}
	})

	t.Run("symlink target is replaced", func(t *testing.T) {
		target := filepath.Join(dir, "target.json")
		link := filepath.Join(dir, "link.json")
		if err := os.WriteFile(target, []byte("old"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("target.json", link); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runGenerate(t, "", "generate", exampleInventory, "-o", link); code != 0 {
			t.Fatalf("got exit %d: %s", code, stderr)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link was replaced by a file, want it kept")
		}
		if got := readFile(t, target); got != fixture {
			t.Errorf("target: got %q, want the fixture", got)
		}
	})

	t.Run("unwritable place", func(t *testing.T) {
		out := filepath.Join(dir, "no-such-dir", "out.json")
		code, _, stderr := runGenerate(t, "", "generate", exampleInventory, "-o", out)
		if code != 1 || !strings.HasPrefix(stderr, "flex-auth: write snapshot "+out+": ") {
			t.Errorf("got exit %d, stderr %q; want 1 and a write error", code, stderr)
		}
	})

	t.Run("output is a directory", func(t *testing.T) {
		code, _, stderr := runGenerate(t, "", "generate", exampleInventory, "-o", dir)
		if code != 1 || !strings.Contains(stderr, "not a regular file") {
			t.Errorf("got exit %d, stderr %q; want 1 and not a regular file", code, stderr)
		}
	})

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestBuildFlexAuthRegistryScript runs scripts/build_flex_auth_registry,
// the old script's interface, on top of a built flex-auth.
func TestBuildFlexAuthRegistryScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	bin := flexAuthBinary(t)
	dir := t.TempDir()
	script, err := filepath.Abs("../../scripts/build_flex_auth_registry")
	if err != nil {
		t.Fatal(err)
	}
	inventory, _ := filepath.Abs(exampleInventory)
	fixture := readFile(t, exampleSnapshot)

	// PATH holds only the built flex-auth's directory and the basics.
	pathDir := filepath.Join(dir, "bin")
	if err := os.Mkdir(pathDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(pathDir, "flex-auth")); err != nil {
		t.Fatal(err)
	}
	// The basic PATH holds only the tools the script needs besides bash,
	// so that neither flex-auth nor go is found unless a case adds it.
	basePath := filepath.Join(dir, "tools")
	if err := os.Mkdir(basePath, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"cat", "dirname", "mktemp", "rm"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s", tool)
		}
		if err := os.Symlink(p, filepath.Join(basePath, tool)); err != nil {
			t.Fatal(err)
		}
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on PATH")
	}
	goPath := filepath.Dir(goTool) + ":" + basePath

	tests := []struct {
		name       string
		args       []string
		env        []string
		stdin      string
		wantCode   int
		wantOut    string // file the snapshot must be in ("" for stdout)
		wantStdout string
		wantStderr string // substring
	}{
		{"FLEX_AUTH and -o", []string{inventory, "-o", "a.json"}, []string{"FLEX_AUTH=" + bin, "PATH=" + basePath}, "", 0, "a.json", "", ""},
		{"PATH and --output", []string{inventory, "--output", "b.json"}, []string{"PATH=" + pathDir + ":" + basePath}, "", 0, "b.json", "", ""},
		{"--output=", []string{"--output=c.json", inventory}, []string{"FLEX_AUTH=" + bin}, "", 0, "c.json", "", ""},
		{"stdout and stdin", []string{"-"}, []string{"FLEX_AUTH=" + bin}, readFile(t, exampleInventory), 0, "", fixture, ""},
		{"policy package", []string{inventory, "-o", "d.json", "--policy-package", "ops-warden/ssh-signing"}, []string{"FLEX_AUTH=" + bin}, "", 0, "d.json", "", ""},
		{"invalid inventory", []string{"-", "-o", "e.json"}, []string{"FLEX_AUTH=" + bin}, "version: 1\nactors: {agt-x: {ttl_hours: 0}}\n", 1, "", "",
			`<stdin>:2:29: actor "agt-x": ttl_hours: must be between 1 and 8760, got 0`},
		{"missing inventory", []string{"-o", "f.json"}, []string{"FLEX_AUTH=" + bin}, "", 2, "", "", "missing INVENTORY"},
		{"unknown option", []string{inventory, "--verbose"}, []string{"FLEX_AUTH=" + bin}, "", 2, "", "", "unknown option --verbose"},
		{"-o without value", []string{inventory, "-o"}, []string{"FLEX_AUTH=" + bin}, "", 2, "", "", "-o needs a value"},
		{"help", []string{"--help"}, []string{"FLEX_AUTH=" + bin}, "", 0, "", "", ""},
		{"built with go", []string{inventory, "-o", "g.json"}, []string{"PATH=" + goPath}, "", 0, "g.json", "", ""},
		{"no flex-auth and no go", []string{inventory, "-o", "h.json"}, nil, "", 1, "", "", "flex-auth is not on PATH and building it from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bash, append([]string{script}, tt.args...)...)
			cmd.Dir = dir
			// The outer environment (for go's caches), without flex-auth.
			cmd.Env = append(os.Environ(), "FLEX_AUTH=", "PATH="+basePath)
			cmd.Env = append(cmd.Env, tt.env...)
			cmd.Stdin = strings.NewReader(tt.stdin)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("got exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if tt.wantOut != "" {
				if got := readFile(t, filepath.Join(dir, tt.wantOut)); got != fixture {
					t.Errorf("%s: got\n%s\nwant the fixture", tt.wantOut, got)
				}
			}
			if tt.wantStdout != "" && stdout.String() != tt.wantStdout {
				t.Errorf("got stdout\n%s\nwant\n%s", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("got stderr\n%s\nwant it to contain %q", stderr.String(), tt.wantStderr)
			}
			if tt.name == "help" && !strings.Contains(stdout.String(), "usage: build_flex_auth_registry INVENTORY -o OUT") {
				t.Errorf("got help\n%s", stdout.String())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "e.json")); !os.IsNotExist(err) {
		t.Error("an invalid inventory left an output file")
	}
}

// TestGenerateConfigMapWarning checks that generate warns, on stderr and
// with exit 0, when the snapshot is too large for a ConfigMap, whether it
// goes to stdout or to a file.
func TestGenerateConfigMapWarning(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		actors int
		want   string // on stderr, after "flex-auth: warning: "; "" for none
	}{
		{"fits", 800, ""},
		{"too large for client-side apply", 1400, "client-side `kubectl apply` cannot apply a ConfigMap holding it; use `kubectl apply --server-side`"},
		{"too large for a ConfigMap", 5000, "more than a Kubernetes ConfigMap can hold (1024 KiB)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := string(inventorytest.Large(tt.actors))
			for _, args := range [][]string{{"generate", "-"}, {"generate", "-", "-o", filepath.Join(dir, "out.json")}} {
				code, stdout, stderr := runGenerate(t, inv, args...)
				if code != 0 {
					t.Fatalf("%v: got exit %d, want 0; stderr %s", args, code, stderr)
				}
				if len(args) == 2 && !strings.HasSuffix(stdout, "\n}\n") {
					t.Errorf("%v: stdout is not the snapshot: ...%s", args, stdout[max(0, len(stdout)-40):])
				}
				if tt.want == "" {
					if stderr != "" {
						t.Errorf("%v: got stderr %q, want none", args, stderr)
					}
					continue
				}
				if !strings.HasPrefix(stderr, "flex-auth: warning: the snapshot is ") || !strings.Contains(stderr, tt.want) ||
					strings.Count(stderr, "\n") != 1 {
					t.Errorf("%v: got stderr %q, want one warning line with %q", args, stderr, tt.want)
				}
			}
		})
	}
}
