package serve

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/coulomb/flex-auth/examples"
)

// startWatching runs s's reload loop on file changes until the test ends.
func startWatching(t *testing.T, s *Server) {
	t.Helper()
	w, err := s.newWatcher()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.reloadLoop(ctx, nil, w)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		w.close()
	})
}

func servedDigest(s *Server) string { return s.checkState().snap.Digest }

func TestWatchFiles(t *testing.T) {
	src, _ := fileSource(t)
	s := newTestServer(t, src, &syncBuffer{})
	startWatching(t, s)
	_, fixtureDigest := builtinPair(t)
	alt := altRegistry(t, "ops-warden/ssh-signing")

	writeFile(t, src.Registry, alt.Canonical()) // atomic rename
	waitFor(t, "the renamed registry to be served", func() bool { return servedDigest(s) == alt.Digest })

	if err := os.WriteFile(src.Registry, fixture(t, examples.OpsWardenRegistry), 0o644); err != nil { // in place
		t.Fatal(err)
	}
	waitFor(t, "the rewritten registry to be served", func() bool { return servedDigest(s) == fixtureDigest })

	// A broken policy is refused; the last good pair keeps serving.
	writeFile(t, src.Policy, []byte("not a policy"))
	waitFor(t, "the broken policy to be reported", func() bool { return health(t, s).Status == "degraded" })
	if got := servedDigest(s); got != fixtureDigest {
		t.Errorf("served registry: got %s, want %s", got, fixtureDigest)
	}
	writeFile(t, src.Policy, fixture(t, examples.OpsWardenPolicy))
	waitFor(t, "the fixed policy to be served", func() bool { return health(t, s).Status == "ok" })
}

// TestWatchConfigMap swaps files the way a Kubernetes ConfigMap volume
// does: the files are symlinks through "..data", a symlink to a
// timestamped directory, which is replaced by a rename.
func TestWatchConfigMap(t *testing.T) {
	dir := t.TempDir()
	version := func(name string, registry []byte) {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "registry.json"), registry)
		writeFile(t, filepath.Join(d, "policy.md"), fixture(t, examples.OpsWardenPolicy))
	}
	symlink := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_06_23_1", fixture(t, examples.OpsWardenRegistry))
	symlink("..2026_06_23_1", "..data")
	symlink("..data/registry.json", "registry.json")
	symlink("..data/policy.md", "policy.md")

	src := Source{Registry: filepath.Join(dir, "registry.json"), Policy: filepath.Join(dir, "policy.md")}
	s := newTestServer(t, src, &syncBuffer{})
	startWatching(t, s)

	alt := altRegistry(t, "ops-warden/ssh-signing")
	version("..2026_06_23_2", alt.Canonical())
	symlink("..2026_06_23_2", "..data_tmp")
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_06_23_1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the swapped ConfigMap registry to be served", func() bool { return servedDigest(s) == alt.Digest })
}

func TestWatchRelevant(t *testing.T) {
	src, dir := fileSource(t)
	s := newTestServer(t, src, &syncBuffer{})
	w, err := s.newWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	tests := []struct {
		name string
		want bool
	}{
		{"registry.json", true},
		{"policy.md", true},
		{"..data", true},
		{"..data_tmp", true},
		{"..2026_06_23_1", true},
		{"registry.json.tmp", false},
		{"other.txt", false},
		{".registry.json.swp", false},
	}
	for _, tt := range tests {
		if got := len(w.relevant(filepath.Join(dir, tt.name))) > 0; got != tt.want {
			t.Errorf("relevant(%s): got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWatchBuiltin(t *testing.T) {
	s := newTestServer(t, Source{}, &syncBuffer{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Watch(ctx); err != nil {
		t.Errorf("Watch of the built-in example: got %v, want nil", err)
	}
}
