package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/sshsig"
)

// A notFile is something a path can name that is not a file flex-auth
// may read: what open(2) and read(2) on it would do is to block for good
// (a FIFO without a writer), never end (/dev/zero), or fail late (a
// directory), or a file over its kind's cap.
type notFile struct {
	name string
	// make creates it at path; max is the cap of the kind of file
	// expected there.
	make func(t *testing.T, path string, max int64)
	// says is what the error says of it.
	says func(max int64) string
}

var notFiles = []notFile{
	{"a FIFO", func(t *testing.T, p string, _ int64) {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}, func(int64) string { return "a named pipe (FIFO), not a regular file" }},
	{"a link to /dev/zero", func(t *testing.T, p string, _ int64) {
		if err := os.Symlink("/dev/zero", p); err != nil {
			t.Fatal(err)
		}
	}, func(int64) string { return "a character device, not a regular file" }},
	{"a directory", func(t *testing.T, p string, _ int64) {
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}, func(int64) string { return "a directory, not a regular file" }},
	{"a file over the cap", func(t *testing.T, p string, max int64) {
		// Sparse: refused by its size, it costs no disk.
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(max + 1); err != nil {
			t.Fatal(err)
		}
	}, func(max int64) string {
		if max%(1<<20) != 0 {
			return fmt.Sprintf("larger than %d KiB, the ", max>>10)
		}
		return fmt.Sprintf("larger than %d MiB, the ", max>>20)
	}},
}

// TestCommandsReadOnlyFiles gives every command, in every place where it
// reads a file, a FIFO that nobody writes, a link to /dev/zero, a
// directory, and a file over the cap of its kind: each is refused at
// once with one line that names the path and what it is.
func TestCommandsReadOnlyFiles(t *testing.T) {
	skipShort(t)
	t.Parallel()
	good := t.TempDir()
	pki := newPKI(t, "files")
	log := filepath.Join(good, "decisions.jsonl")
	event := filepath.Join(good, "event.json")
	writeFile(t, event, []byte(`{"pull_request": {"number": 1}}`))
	// Each slot is a command line with X where the file goes.
	slots := []struct {
		name string
		ext  string // the file name's ending, which some commands go by
		max  int64
		code int
		env  []string
		args []string
	}{
		{"load-registry", ".json", readfile.MaxRegistryBytes, 1, nil, []string{"load-registry", "--file", "X"}},
		{"policy test, the policy", ".md", readfile.MaxPolicyBytes, 1, nil, []string{"policy", "test", "--policy", "X", "--registry", fixtureRegistry}},
		{"policy test, the registry", ".json", readfile.MaxRegistryBytes, 1, nil, []string{"policy", "test", "--policy", fixturePolicy, "--registry", "X"}},
		{"generate", ".yaml", readfile.MaxInventoryBytes, 1, nil, []string{"generate", "X"}},
		{"drift, an inventory", ".yaml", readfile.MaxInventoryBytes, 2, nil, []string{"drift", "X", fixtureRegistry}},
		{"drift, a snapshot", ".json", readfile.MaxRegistryBytes, 2, nil, []string{"drift", "../examples/ops-warden/inventory.yaml", "X"}},
		{"drift, the GitHub event", ".json", readfile.MaxGitHubEventBytes, 2,
			[]string{"GITHUB_TOKEN=t", "GITHUB_REPOSITORY=o/r", "GITHUB_EVENT_PATH=X", "GITHUB_API_URL=" + closedURL(t)},
			[]string{"drift", "../examples/ops-warden/inventory.yaml", fixtureRegistry, "--github-comment"}},
		{"drift, the policy", ".md", readfile.MaxPolicyBytes, 2, nil, []string{"drift", "../examples/ops-warden/inventory.yaml", fixtureRegistry, "--policy", "X"}},
		{"serve, the registry", ".json", readfile.MaxRegistryBytes, 1, nil, []string{"serve", "--addr", "127.0.0.1:0", "--log", log, "--registry", "X", "--policy", fixturePolicy}},
		{"serve, the policy", ".md", readfile.MaxPolicyBytes, 1, nil, []string{"serve", "--addr", "127.0.0.1:0", "--log", log, "--registry", fixtureRegistry, "--policy", "X"}},
		{"serve, the TLS certificate", ".pem", readfile.MaxPEMBytes, 1, nil, []string{"serve", "--addr", "127.0.0.1:0", "--log", log, "--tls-cert", "X", "--tls-key", pki.ServerKey}},
		{"serve, the TLS key", ".pem", readfile.MaxPEMBytes, 1, nil, []string{"serve", "--addr", "127.0.0.1:0", "--log", log, "--tls-cert", pki.ServerCert, "--tls-key", "X"}},
		{"serve, the client CA", ".pem", readfile.MaxPEMBytes, 1, nil, []string{"serve", "--addr", "127.0.0.1:0", "--log", log, "--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey, "--client-ca", "X"}},
		{"publish, the registry", ".json", readfile.MaxRegistryBytes, 1, nil, []string{"publish", "--registry", "X", "--policy", fixturePolicy, "oci://127.0.0.1:1/r:t"}},
		{"publish, the policy", ".md", readfile.MaxPolicyBytes, 1, nil, []string{"publish", "--registry", fixtureRegistry, "--policy", "X", "oci://127.0.0.1:1/r:t"}},
		{"publish, the signing key", ".key", sshsig.MaxPrivateKeyBytes, 2, nil, []string{"publish", "--registry", fixtureRegistry, "--policy", fixturePolicy, "--sign-key", "X", "oci://127.0.0.1:1/r:t"}},
		{"serve, the trusted keys", ".pub", sshsig.MaxKeysFileBytes, 1, nil, []string{"serve", "--addr", "127.0.0.1:0", "--log", log, "--source", "oci://127.0.0.1:1/r:t", "--verify-key", "X"}},
		{"check, the CA", ".pem", readfile.MaxPEMBytes, 2, nil, []string{"check", "--url", "https://127.0.0.1:1", "--actor", bridge, "--ca-cert", "X"}},
		{"check, the client key", ".pem", readfile.MaxPEMBytes, 2, nil, []string{"check", "--url", "https://127.0.0.1:1", "--actor", bridge, "--client-cert", pki.ServerCert, "--client-key", "X"}},
		{"check, the client certificate", ".pem", readfile.MaxPEMBytes, 2, nil, []string{"check", "--url", "https://127.0.0.1:1", "--actor", bridge, "--client-cert", "X", "--client-key", pki.ServerKey}},
		{"smoke, the CA", ".pem", readfile.MaxPEMBytes, 1, nil, []string{"smoke", "--url", "https://127.0.0.1:1", "--actor", bridge, "--ca-cert", "X"}},
	}
	for _, nf := range notFiles {
		for _, sl := range slots {
			t.Run(nf.name+"/"+sl.name, func(t *testing.T) {
				t.Parallel()
				p := filepath.Join(t.TempDir(), "input"+sl.ext)
				nf.make(t, p, sl.max)
				subst := func(in []string) []string {
					out := make([]string, len(in))
					for i, a := range in {
						switch {
						case a == "X":
							a = p
						case strings.HasSuffix(a, "=X"):
							a = strings.TrimSuffix(a, "X") + p
						}
						out[i] = a
					}
					return out
				}
				code, _, stderr := runCLI(t, append(subst(sl.env), cleanEnv...), subst(sl.args)...)
				if code != sl.code {
					t.Errorf("exit: got %d, want %d; stderr:\n%s", code, sl.code, stderr)
				}
				if !strings.Contains(stderr, p+": "+nf.says(sl.max)) {
					t.Errorf("stderr: got\n%s\nwant it to name %s and say %q", stderr, p, nf.says(sl.max))
				}
				if strings.Count(stderr, "\n") != 1 {
					t.Errorf("stderr: got\n%s\nwant one line", stderr)
				}
			})
		}
	}
}

// swapIn makes path what nf makes, by a rename, as a deploy tool replaces
// a file; whatever path was (a directory too) is replaced.
func swapIn(t *testing.T, path string, nf notFile, max int64) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".swap-"+filepath.Base(path))
	nf.make(t, tmp, max)
	replaceWith(t, path, tmp)
}

// replaceWith renames from to path, removing path first when one of them
// is a directory, which rename(2) does not replace with a file or the
// other way round.
func replaceWith(t *testing.T, path, from string) {
	t.Helper()
	fi, err := os.Lstat(from)
	if err != nil {
		t.Fatal(err)
	}
	if old, err := os.Lstat(path); err == nil && (old.IsDir() || fi.IsDir()) {
		if err := os.RemoveAll(path); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(from, path); err != nil {
		t.Fatal(err)
	}
}

// TestReloadReadsOnlyFiles swaps the served registry, and the policy, for
// a FIFO that nobody writes, a link to /dev/zero, a directory and a file
// over the cap, picked up by SIGHUP and by --watch: each is a failed
// reload at once (degraded, naming the file and what it is), the last
// good pair answers every request meanwhile, and the next good file is
// served.
func TestReloadReadsOnlyFiles(t *testing.T) {
	skipShort(t)
	t.Parallel()
	fixture := loadFixture(t)
	goods := []struct {
		digest string
		data   []byte
	}{{fixture.Digest, fixture.Canonical()}}
	alt := withBridgeTTL(t, fixture, 12)
	goods = append(goods, struct {
		digest string
		data   []byte
	}{alt.Digest, alt.Canonical()})
	for _, trigger := range []string{"sighup", "watch"} {
		t.Run(trigger, func(t *testing.T) {
			t.Parallel()
			s, reload := startReloading(t, trigger)
			// waitHealth waits until /healthz satisfies cond.
			waitHealth := func(what string, cond func(h map[string]any) bool) map[string]any {
				var h map[string]any
				s.waitFor(what, func() bool {
					h = s.health()
					return cond(h)
				})
				return h
			}
			serving := fixture.Digest
			n := 0
			type target struct {
				file string
				max  int64
				good []byte
			}
			policy := readFile(t, s.Policy)
			for _, tg := range []target{{s.Registry, readfile.MaxRegistryBytes, nil}, {s.Policy, readfile.MaxPolicyBytes, policy}} {
				for _, nf := range notFiles {
					what := fmt.Sprintf("%s swapped for %s", filepath.Base(tg.file), nf.name)
					since := time.Now()
					swapIn(t, tg.file, nf, tg.max)
					reload()
					says := tg.file + ": " + nf.says(tg.max)
					h := waitHealth(what+" is a failed reload", func(h map[string]any) bool {
						at, err := time.Parse(time.RFC3339Nano, str(h, "reload.last_attempt_at"))
						return err == nil && !at.Before(since) && str(h, "status") == "degraded" && strings.Contains(str(h, "reload.last_error"), says)
					})
					if got := str(h, "registry.digest"); got != serving {
						t.Errorf("%s: serving registry %s, want the last good %s", what, got, serving)
					}
					for i := 0; i < 3; i++ {
						r := s.check(checkRequest{"iam:" + bridge, "ssh.sign", bridge, map[string]any{"ttl_hours": 12}})
						if d := r.JSON(t); r.Status != 200 || str(d, "registry_digest") != serving || str(d, "effect") != "allow" {
							t.Errorf("%s: got %d %s, want an allow from the last good registry %s", what, r.Status, r.Body, serving)
						}
					}

					// The next good file is served: for the registry,
					// the other good one, for the policy, the same.
					data := tg.good
					if data == nil {
						n++
						data, serving = goods[n%2].data, goods[n%2].digest
					}
					tmp := filepath.Join(s.Dir, ".good")
					if err := os.WriteFile(tmp, data, 0o644); err != nil {
						t.Fatal(err)
					}
					replaceWith(t, tg.file, tmp)
					reload()
					waitHealth(what+", then a good file, is served", func(h map[string]any) bool {
						return str(h, "status") == "ok" && str(h, "registry.digest") == serving
					})
				}
			}
		})
	}
}
