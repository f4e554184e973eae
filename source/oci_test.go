package source

import (
	"context"
	"crypto/ed25519"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/internal/testregistry"
	"github.com/coulomb/flex-auth/publication"
)

// counting is a transport that counts the requests it carries.
type counting struct {
	n atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// fixture is a registry, a repository in it, a signing key and the
// example pair, ready to publish.
type fixture struct {
	reg     *testregistry.Registry
	ref     publication.Ref
	repo    *publication.Repository
	signer  ssh.Signer
	keys    *sshsig.Keys
	content *publication.Content
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{reg: testregistry.Start(t)}
	var err error
	if f.ref, err = publication.ParseRef("oci://" + f.reg.Addr + "/flex-auth/publication:production"); err != nil {
		t.Fatal(err)
	}
	f.repo = publication.NewRepository(f.ref, publication.Options{PlainHTTP: true})
	_, priv, _ := ed25519.GenerateKey(nil)
	if f.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	if f.keys, err = sshsig.ParseKeys("trusted.pub", ssh.MarshalAuthorizedKey(f.signer.PublicKey())); err != nil {
		t.Fatal(err)
	}
	reg, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenRegistry)
	pol, _ := fs.ReadFile(examples.OpsWarden, examples.OpsWardenPolicy)
	if f.content, err = publication.Prepare("registry.json", reg, "policy_package.md", pol); err != nil {
		t.Fatal(err)
	}
	return f
}

// publish pushes the example with serial and returns its manifest
// digest.
func (f *fixture) publish(t *testing.T, serial uint64) string {
	t.Helper()
	p, err := f.content.Seal(publication.SealOptions{Serial: serial, Signer: f.signer})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := f.repo.Push(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return string(desc.Digest)
}

func (f *fixture) oci(t *testing.T, cfg OCIConfig) (*OCI, *counting) {
	t.Helper()
	c := &counting{}
	cfg.Ref = f.ref
	cfg.Options = publication.Options{PlainHTTP: true, Transport: c}
	if cfg.Keys == nil {
		cfg.Keys = f.keys
	}
	return NewOCI(context.Background(), cfg), c
}

func fetch(t *testing.T, r Remote, force bool) (*Update, error) {
	t.Helper()
	return r.Fetch(context.Background(), force)
}

func mustUpdate(t *testing.T, r Remote, force bool) *Update {
	t.Helper()
	u, err := fetch(t, r, force)
	if err != nil || u == nil {
		t.Fatalf("Fetch: got %v, %v; want an update", u, err)
	}
	return u
}

func serialOf(u *Update) uint64 { return u.Publication.(PublicationInfo).Serial }

// TestOCIFollowsTag serves what the tag points to, and asks the registry
// one HEAD request per poll while nothing changes.
func TestOCIFollowsTag(t *testing.T) {
	f := newFixture(t)
	first := f.publish(t, 1)
	o, c := f.oci(t, OCIConfig{})
	u := mustUpdate(t, o, true)
	info := u.Publication.(PublicationInfo)
	if info.ManifestDigest != first || info.Serial != 1 || info.SignedBy != ssh.FingerprintSHA256(f.signer.PublicKey()) || info.FromCache {
		t.Errorf("first update: %+v", info)
	}
	if u.Snapshot.Digest != f.content.Snapshot.Digest || !strings.HasSuffix(u.RegistryName, "@"+first+" registry.json") {
		t.Errorf("update: registry %s named %q", u.Snapshot.Digest, u.RegistryName)
	}
	u.Served()
	for i := 0; i < 3; i++ {
		before := c.n.Load()
		if u, err := fetch(t, o, false); u != nil || err != nil {
			t.Fatalf("poll %d: got %v, %v; want nothing new", i, u, err)
		}
		if n := c.n.Load() - before; n != 1 {
			t.Errorf("poll %d with nothing new sent %d requests, want 1 (a manifest HEAD)", i, n)
		}
	}
	second := f.publish(t, 2)
	u = mustUpdate(t, o, false)
	if info := u.Publication.(PublicationInfo); info.ManifestDigest != second || info.Serial != 2 {
		t.Errorf("second update: %+v", info)
	}
}

// TestOCIRefusesOlderSerial refuses a tag moved back to an older
// publication, and keeps refusing it with one request per poll.
func TestOCIRefusesOlderSerial(t *testing.T) {
	f := newFixture(t)
	f.publish(t, 3)
	f.publish(t, 5)
	o, c := f.oci(t, OCIConfig{})
	mustUpdate(t, o, false).Served()
	// Replay serial 3: push it again, with its own manifest.
	f.publish(t, 3)
	_, err := fetch(t, o, false)
	if !IsRefused(err) || !strings.Contains(err.Error(), "serial 3 is lower than 5") || !strings.Contains(err.Error(), "publish the old pair again, with a higher serial") {
		t.Fatalf("replayed serial 3: got %v, want a refusal naming both serials", err)
	}
	before := c.n.Load()
	if _, err2 := fetch(t, o, false); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("polled again: got %v, want the same refusal", err2)
	}
	if n := c.n.Load() - before; n != 1 {
		t.Errorf("a poll of a refused publication sent %d requests, want 1", n)
	}
	if _, err := fetch(t, o, true); !IsRefused(err) {
		t.Errorf("forced: got %v, want the refusal again", err)
	}
}

// TestOCIRefusedByServe remembers a pair serve refused.
func TestOCIRefusedByServe(t *testing.T) {
	f := newFixture(t)
	f.publish(t, 1)
	o, _ := f.oci(t, OCIConfig{})
	u := mustUpdate(t, o, false)
	refusal := &RefusedError{Err: errString("does not bind")}
	u.Refused(refusal)
	if _, err := fetch(t, o, false); err != refusal {
		t.Errorf("after Refused: got %v, want the refusal", err)
	}
	if u, err := fetch(t, o, true); err != nil || u == nil {
		t.Errorf("forced: got %v, %v; want the publication again", u, err)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestOCICache serves the cached publication at start-up when the
// registry is down, or offers an older one, and not when it was cached
// from elsewhere or is not signed by a trusted key.
func TestOCICache(t *testing.T) {
	f := newFixture(t)
	dir := filepath.Join(t.TempDir(), "cache")
	cache, err := publication.OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	served := f.publish(t, 10)
	o, _ := f.oci(t, OCIConfig{Cache: cache})
	mustUpdate(t, o, false).Served() // and cached

	t.Run("registry down", func(t *testing.T) {
		f.reg.Stop()
		defer f.reg.Restart()
		o, _ := f.oci(t, OCIConfig{Cache: cache})
		u := mustUpdate(t, o, false)
		info := u.Publication.(PublicationInfo)
		if !info.FromCache || info.ManifestDigest != served || u.Warning == nil || !strings.Contains(u.Warning.Error(), "serving the cached publication") ||
			!strings.Contains(u.Warning.Error(), "connection refused") {
			t.Fatalf("got %+v, warning %v; want the cached publication and why", info, u.Warning)
		}
		u.Served()
		f.reg.Restart()
		// The registry has what the cache had: nothing new, one request.
		if u, err := fetch(t, o, false); u != nil || err != nil {
			t.Errorf("registry back: got %v, %v; want nothing new", u, err)
		}
		f.reg.Stop()
	})
	t.Run("older publication", func(t *testing.T) {
		f.publish(t, 9)
		o, _ := f.oci(t, OCIConfig{Cache: cache})
		u := mustUpdate(t, o, false)
		if info := u.Publication.(PublicationInfo); !info.FromCache || info.Serial != 10 || u.Warning == nil || !strings.Contains(u.Warning.Error(), "serial 9 is lower than 10") {
			t.Fatalf("got %+v, warning %v; want the cached serial 10 and why", info, u.Warning)
		}
		o, _ = f.oci(t, OCIConfig{Cache: cache, AllowSerialRollback: true})
		if u := mustUpdate(t, o, false); serialOf(u) != 9 || u.Warning != nil {
			t.Errorf("with AllowSerialRollback: got serial %d, warning %v; want 9", serialOf(u), u.Warning)
		}
	})
	t.Run("another key", func(t *testing.T) {
		f.reg.Stop()
		defer f.reg.Restart()
		_, priv, _ := ed25519.GenerateKey(nil)
		other, _ := ssh.NewSignerFromKey(priv)
		keys, _ := sshsig.ParseKeys("other.pub", ssh.MarshalAuthorizedKey(other.PublicKey()))
		o, _ := f.oci(t, OCIConfig{Cache: cache, Keys: keys})
		if u, err := fetch(t, o, false); u != nil || err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("got %v, %v; want the registry's error and no cached publication", u, err)
		}
	})
}
