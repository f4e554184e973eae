package serve

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// packageHealth returns the /healthz entry of package name.
func packageHealth(t testing.TB, s *Server, name string) PackageHealth {
	t.Helper()
	for _, p := range health(t, s).Packages {
		if p.Package == name {
			return p
		}
	}
	t.Fatalf("/healthz has no package %s", name)
	return PackageHealth{}
}

// TestPackagesReload: each package reloads on its own. One that fails to
// load keeps its last good state, is degraded on /healthz, and does not
// hold back the others; a package may not change its name or kind of
// data, nor take another's resource type, while served.
func TestPackagesReload(t *testing.T) {
	dir := t.TempDir()
	cert, todo := copyPackage(t, certPackage, dir, "cert"), copyPackage(t, todoPackage, dir, "todo")
	s := newPackagesServer(t, &syncBuffer{}, Options{}, cert, todo)
	certDigest := packageHealth(t, s, "authzen/certification").Data.Digest
	todoDigest := packageHealth(t, s, "authzen/todo").Data.Digest
	decide := func(body string) string { return decodeJSON[decision](t, az(s, evalPath, body)).Context.Reason }
	carol := evalBody(`{"type":"user","id":"carol"}`, read, record1)
	todos := evalBody(`{"type":"user","id":"`+morty+`"}`, `{"name":"can_read_todos"}`, `{"type":"todo","id":"t"}`)

	rewrite(t, todo+"/entities.yaml", "schema: flex-auth.entities/v1", "schema: flex-auth.entities/v9")
	rewrite(t, cert+"/entities.yaml", "    bob: {role: admin}\n", "    bob: {role: admin}\n    carol: {}\n")
	err := s.Reload()
	if err == nil || !strings.Contains(err.Error(), "package authzen/todo: ") || !strings.Contains(err.Error(), "entities.yaml:5:9: schema") {
		t.Errorf("Reload: got %v, want the todo package's error", err)
	}
	h := health(t, s)
	if h.Status != "degraded" || h.Reload.LastError == nil || !strings.HasPrefix(*h.Reload.LastError, "package authzen/todo: ") {
		t.Errorf("healthz: got %s, %v", h.Status, h.Reload.LastError)
	}
	if p := packageHealth(t, s, "authzen/todo"); p.Status != "degraded" || p.Data.Digest != todoDigest || p.Reload.LastError == nil {
		t.Errorf("todo: got %+v, want degraded on its last good data", p)
	} else if e := *p.Reload.LastError; !strings.Contains(e, `entities.yaml:5:9: schema: want "flex-auth.entities/v1", got <redacted>`) || strings.Contains(e, "v9") {
		t.Errorf("todo: last_error %q, want the place and the rule, not the value", e)
	}
	if p := packageHealth(t, s, "authzen/certification"); p.Status != "ok" || p.Data.Digest == certDigest || *p.Data.Entities != 5 {
		t.Errorf("cert: got %+v, want ok on its new data", p)
	}
	if got := decide(carol); got != "record_read" {
		t.Errorf("carol, in the new data: got %s", got)
	}
	if got := decide(todos); got != "todos_readable" {
		t.Errorf("todo, on its last good data: got %s", got)
	}

	// A rename, a change of data kind, a resource type another package
	// has: each refused, the package keeps serving.
	for _, change := range []struct{ file, old, new, want string }{
		{"/policy_package.md", "package: authzen/certification", "package: authzen/records", "a package keeps its name while served"},
		{"/policy_package.md", "resource_types: [record]", "resource_types: [record, todo]", `both decide resources of type "todo"`},
	} {
		rewrite(t, cert+change.file, change.old, change.new)
		rename := change.old == "package: authzen/certification"
		if rename {
			rewrite(t, cert+"/entities.yaml", "policy_package: authzen/certification", "policy_package: authzen/records")
		}
		if err := s.Reload(); err == nil || !strings.Contains(err.Error(), change.want) {
			t.Errorf("%s: got %v, want %q", change.new, err, change.want)
		}
		if p := packageHealth(t, s, "authzen/certification"); p.Status != "degraded" || decide(carol) != "record_read" {
			t.Errorf("%s: got %+v, want degraded and still serving", change.new, p)
		}
		rewrite(t, cert+change.file, change.new, change.old)
		if rename {
			rewrite(t, cert+"/entities.yaml", "policy_package: authzen/records", "policy_package: authzen/certification")
		}
	}
	// The certification package turned into a registry package.
	opsSrc, err := os.ReadFile(opsPackage + "/policy_package.md")
	if err != nil {
		t.Fatal(err)
	}
	certSrc, err := os.ReadFile(cert + "/policy_package.md")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cert+"/policy_package.md", bytes.Replace(opsSrc, []byte("package: ops-warden/ssh-signing"), []byte("package: authzen/certification"), 1))
	snap := altRegistry(t, "authzen/certification")
	writeFile(t, cert+"/production_registry_snapshot.json", snap.Canonical())
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "the package's data is now a registry, was an entities document") {
		t.Errorf("a change of data kind: got %v", err)
	}
	writeFile(t, cert+"/policy_package.md", certSrc)

	rewrite(t, todo+"/entities.yaml", "schema: flex-auth.entities/v9", "schema: flex-auth.entities/v1")
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if h := health(t, s); h.Status != "ok" || h.Reload.LastError != nil {
		t.Errorf("healthz after the fix: %+v", h)
	}
}

// TestPackagesWatch: a change to one package's directory reloads that
// package, not the others.
func TestPackagesWatch(t *testing.T) {
	dir := t.TempDir()
	cert, todo := copyPackage(t, certPackage, dir, "cert"), copyPackage(t, todoPackage, dir, "todo")
	s := newPackagesServer(t, &syncBuffer{}, Options{Clock: time.Now}, cert, todo)
	s.clock = time.Now
	startWatching(t, s)
	todoAt := packageHealth(t, s, "authzen/todo").Reload.LastAttemptAt
	rewrite(t, cert+"/entities.yaml", "    bob: {role: admin}\n", "    bob: {role: admin}\n    carol: {}\n")
	waitFor(t, "the certification package to reload", func() bool {
		return *packageHealth(t, s, "authzen/certification").Data.Entities == 5
	})
	if got := packageHealth(t, s, "authzen/todo").Reload.LastAttemptAt; !got.Equal(todoAt) {
		t.Errorf("the todo package reloaded too (at %v, was %v)", got, todoAt)
	}
	// A bad change: the package is degraded, and still serves.
	rewrite(t, cert+"/policy_package.md", "version: 1", "version: 7")
	waitFor(t, "the broken package to be reported", func() bool {
		return packageHealth(t, s, "authzen/certification").Status == "degraded"
	})
	if p := packageHealth(t, s, "authzen/todo"); p.Status != "ok" {
		t.Errorf("todo: %+v", p)
	}
}
