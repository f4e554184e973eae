package publication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/internal/sshsig/sshsigtest"
	"github.com/coulomb/flex-auth/internal/testregistry"
	"github.com/coulomb/flex-auth/registry"
)

func example(t *testing.T) (reg, pol []byte) {
	t.Helper()
	reg, err := fs.ReadFile(examples.OpsWarden, examples.OpsWardenRegistry)
	if err != nil {
		t.Fatal(err)
	}
	pol, err = fs.ReadFile(examples.OpsWarden, examples.OpsWardenPolicy)
	if err != nil {
		t.Fatal(err)
	}
	return reg, pol
}

func prepared(t *testing.T) *Content {
	t.Helper()
	reg, pol := example(t)
	c, err := Prepare("registry.json", reg, "policy_package.md", pol)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func seal(t *testing.T, c *Content, serial uint64, signer ssh.Signer) *Publication {
	t.Helper()
	p, err := c.Seal(SealOptions{Serial: serial, Signer: signer, Revision: "0123abc", Created: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPrepare refuses a pair serve would refuse, and one whose package's
// tests fail.
func TestPrepare(t *testing.T) {
	reg, pol := example(t)
	snap, err := registry.Parse(reg)
	if err != nil {
		t.Fatal(err)
	}
	other := registry.New(snap.Source, "someone/else", snap.Actors)
	failing := bytes.Replace(pol, []byte("expect: {effect: allow, reason: signing_policy_matched}"), []byte("expect: {effect: deny, reason: ttl_out_of_bounds}"), 1)
	if bytes.Equal(failing, pol) {
		t.Fatal("the example policy has no allow test to break")
	}
	tests := []struct {
		name     string
		reg, pol []byte
		want     string
	}{
		{"hand-edited registry", bytes.Replace(reg, []byte(`"max_ttl_hours": 48`), []byte(`"max_ttl_hours": 49`), 1), pol, "registry.json: digest: digest does not match the content"},
		{"invalid policy", reg, []byte("not a package"), "policy_package.md"},
		{"registry for another package", other.Canonical(), pol, `has policy_package "someone/else"`},
		{"failing tests", reg, failing, "tests fail against the registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Prepare("registry.json", tt.reg, "policy_package.md", tt.pol)
			if !IsInvalid(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an InvalidError containing %q", err, tt.want)
			}
		})
	}
	var tf *TestsFailedError
	if _, err := Prepare("r", reg, "p", failing); !errors.As(err, &tf) || tf.Failed != 1 {
		t.Errorf("failing tests: got %v, want a TestsFailedError with one failure", err)
	}
	// A registry that is not in canonical form is published canonical.
	pretty := bytes.ReplaceAll(reg, []byte("\n  "), []byte("\n    "))
	c, err := Prepare("r", pretty, "p", pol)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Registry, snap.Canonical()) {
		t.Error("the prepared registry is not the canonical form")
	}
}

func newRepo(t *testing.T, r *testregistry.Registry, name string) *Repository {
	t.Helper()
	ref, err := ParseRef("oci://" + r.Addr + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return NewRepository(ref, Options{PlainHTTP: true, UserAgent: "flex-auth-test"})
}

// TestPushPull publishes a signed pair to a real registry and pulls it
// back, verified.
func TestPushPull(t *testing.T) {
	reg := testregistry.Start(t)
	ctx := context.Background()
	repo := newRepo(t, reg, "flex-auth/publication:production")
	signer, keys := sshsigtest.Key(t, 1)
	c := prepared(t)

	if st, _, err := repo.Current(ctx); err != nil || st != nil {
		t.Fatalf("Current before the first push: %v, %v; want nothing", st, err)
	}
	p := seal(t, c, 7, signer)
	desc, err := repo.Push(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if desc.ArtifactType != ArtifactType {
		t.Errorf("artifact type %q", desc.ArtifactType)
	}
	got, err := repo.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != desc.Digest {
		t.Fatalf("the tag resolves to %s, want the pushed %s", got.Digest, desc.Digest)
	}
	pulled, err := repo.Pull(ctx, got, VerifyOptions{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Statement.Serial != 7 || pulled.Snapshot.Digest != c.Snapshot.Digest || pulled.Package.Digest() != c.Package.Digest() {
		t.Errorf("pulled serial %d, registry %s, policy %s", pulled.Statement.Serial, pulled.Snapshot.Digest, pulled.Package.Digest())
	}
	if pulled.SignedBy == nil || !bytes.Equal(pulled.SignedBy.Marshal(), signer.PublicKey().Marshal()) {
		t.Error("pulled: not verified with the signing key")
	}
	if pulled.Revision != "0123abc" || !pulled.Created.Equal(p.Created) || pulled.ManifestDigest != string(desc.Digest) {
		t.Errorf("pulled revision %q, created %s, manifest %s", pulled.Revision, pulled.Created, pulled.ManifestDigest)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(pulled.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{AnnotationRegistryDigest: c.Snapshot.Digest, AnnotationPolicyDigest: c.Package.Digest(),
		AnnotationSerial: "7", AnnotationPackage: "ops-warden/ssh-signing", "org.opencontainers.image.revision": "0123abc",
		AnnotationSignedBy: ssh.FingerprintSHA256(signer.PublicKey())} {
		if m.Annotations[k] != want {
			t.Errorf("annotation %s = %q, want %q", k, m.Annotations[k], want)
		}
	}
	if st, d, err := repo.Current(ctx); err != nil || st.Serial != 7 || d != string(desc.Digest) {
		t.Errorf("Current: %v %s %v", st, d, err)
	}
	// Without keys the signature is not checked, and SignedBy is unset.
	if pulled, err := repo.Pull(ctx, got, VerifyOptions{}); err != nil || pulled.SignedBy != nil {
		t.Errorf("pull without keys: %v, signed by %v", err, pulled.SignedBy)
	}
	// Pushing the same publication again uploads no blob.
	if _, err := repo.Push(ctx, p); err != nil {
		t.Errorf("push again: %v", err)
	}
}

// pushRaw pushes blobs and a manifest made of them, tagged, bypassing
// Push's packing, to make publications Push would never make.
func pushRaw(t *testing.T, repo *Repository, m ocispec.Manifest, blobs map[digest.Digest][]byte) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	for d, data := range blobs {
		desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(data))}
		if ok, _ := repo.repo.Exists(ctx, desc); ok {
			continue
		}
		if err := repo.repo.Push(ctx, desc, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := repo.repo.PushReference(ctx, desc, bytes.NewReader(data), repo.ref.Tag()); err != nil {
		t.Fatal(err)
	}
	return desc
}

// variant returns p's manifest and blobs after change has altered them.
func variant(t *testing.T, p *Publication, change func(m *ocispec.Manifest, blobs map[digest.Digest][]byte)) (ocispec.Manifest, map[digest.Digest][]byte) {
	t.Helper()
	data, bs, err := p.pack()
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	blobs := map[digest.Digest][]byte{}
	for _, b := range bs {
		blobs[b.desc.Digest] = b.data
	}
	if change != nil {
		change(&m, blobs)
	}
	return m, blobs
}

// replaceLayer replaces the layer of mediaType with data.
func replaceLayer(m *ocispec.Manifest, blobs map[digest.Digest][]byte, mediaType string, data []byte) {
	for i, l := range m.Layers {
		if l.MediaType == mediaType {
			d := digest.FromBytes(data)
			blobs[d] = data
			m.Layers[i].Digest, m.Layers[i].Size = d, int64(len(data))
		}
	}
}

// TestPullRefuses pushes publications that are wrong in each way a
// replica must refuse, and checks that Pull says why, as an InvalidError
// (a problem fetching again will not fix) or not (one it may).
func TestPullRefuses(t *testing.T) {
	reg := testregistry.Start(t)
	ctx := context.Background()
	signer, keys := sshsigtest.Key(t, 1)
	otherSigner, _ := sshsigtest.Key(t, 2)
	c := prepared(t)
	good := seal(t, c, 5, signer)
	unsigned := seal(t, c, 5, nil)
	byOther := seal(t, c, 5, otherSigner)
	otherPol := append(bytes.Clone(c.Policy), "\n<!-- another -->\n"...)
	otherStatement := (&Statement{Package: good.Statement.Package, Serial: 5, RegistryDigest: good.Statement.RegistryDigest,
		RegistryFile: good.Statement.RegistryFile, PolicyDigest: sha256Digest(otherPol)}).Marshal()

	type refusal struct {
		name    string
		m       ocispec.Manifest
		blobs   map[digest.Digest][]byte
		opts    VerifyOptions
		invalid bool
		want    string
	}
	empty := []byte("{}")
	tests := []refusal{{name: "an image", invalid: true,
		want: `not a flex-auth publication (media type "application/vnd.oci.image.manifest.v1+json", config media type "application/vnd.oci.image.config.v1+json"`,
		m: ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(empty), Size: 2}},
		blobs: map[digest.Digest][]byte{digest.FromBytes(empty): empty}}}
	add := func(name string, p *Publication, opts VerifyOptions, invalid bool, want string, change func(m *ocispec.Manifest, blobs map[digest.Digest][]byte)) {
		m, blobs := variant(t, p, change)
		tests = append(tests, refusal{name, m, blobs, opts, invalid, want})
	}
	add("another artifact type", good, VerifyOptions{}, true, `artifact type "application/vnd.example.thing"`, func(m *ocispec.Manifest, _ map[digest.Digest][]byte) {
		m.ArtifactType = "application/vnd.example.thing"
	})
	withKeys := VerifyOptions{Keys: keys}
	add("unsigned, a key required", unsigned, withKeys, true, "not signed: --verify-key trusted.pub requires a signature", nil)
	add("signed by an unknown key", byOther, withKeys, true, "signed by a key that is not trusted: SHA256:", nil)
	add("a serial refused", good, VerifyOptions{Keys: keys, Accept: func(st *Statement) error {
		return &InvalidError{Err: errors.New("serial 5 is lower than 9")}
	}}, true, "serial 5 is lower than 9", nil)
	add("a policy that is not the statement's", good, withKeys, true, "the layers are not the ones the statement names", func(m *ocispec.Manifest, blobs map[digest.Digest][]byte) {
		replaceLayer(m, blobs, MediaTypePolicy, otherPol)
	})
	add("a statement that is not the signed one", good, withKeys, true, "signature does not verify", func(m *ocispec.Manifest, blobs map[digest.Digest][]byte) {
		replaceLayer(m, blobs, MediaTypePolicy, otherPol)
		replaceLayer(m, blobs, MediaTypeStatement, otherStatement)
	})
	add("no statement", good, VerifyOptions{}, true, `no layer of media type "application/vnd.coulomb.flex-auth.statement.v1"`, func(m *ocispec.Manifest, _ map[digest.Digest][]byte) {
		m.Layers = m.Layers[:2]
	})
	add("an extra layer", good, VerifyOptions{}, true, `media type "text/plain", which a publication does not have`, func(m *ocispec.Manifest, blobs map[digest.Digest][]byte) {
		blobs[digest.FromBytes([]byte("x"))] = []byte("x")
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: "text/plain", Digest: digest.FromBytes([]byte("x")), Size: 1})
	})
	add("a registry layer over the cap", good, VerifyOptions{}, true, "the limit is 67108864", func(m *ocispec.Manifest, _ map[digest.Digest][]byte) {
		m.Layers[0].Size = MaxRegistryBytes + 1
	})

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := newRepo(t, reg, "refuse:"+strings.Repeat("x", i+1))
			pushRaw(t, repo, tt.m, tt.blobs)
			desc, err := repo.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = repo.Pull(ctx, desc, tt.opts)
			switch {
			case err == nil:
				t.Fatalf("pulled it; want an error containing %q", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			case IsInvalid(err) != tt.invalid:
				t.Errorf("IsInvalid(%v) = %v, want %v", err, IsInvalid(err), tt.invalid)
			}
			if !strings.Contains(err.Error(), "oci://"+reg.Addr+"/refuse@sha256:") {
				t.Errorf("%v does not name the manifest", err)
			}
		})
	}
}

// TestParseManifestStrict: a manifest is read as flex-auth's own JSON is,
// not as encoding/json reads it: a duplicate name and invalid UTF-8 are
// refused, and a name in other letters ("Layers") is not "layers".
func TestParseManifestStrict(t *testing.T) {
	good, _, err := seal(t, prepared(t), 5, nil).pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := parseManifest(good); err != nil {
		t.Fatalf("the manifest publish writes: %v", err)
	}
	text := string(good)
	if !strings.HasPrefix(text, "{") || !strings.HasSuffix(text, "}") || !strings.Contains(text, `"org.opencontainers.image.title":"`) {
		t.Fatalf("unexpected manifest: %s", text)
	}
	refused := []struct{ name, data, want string }{
		{"a duplicate name", `{"layers":[],` + text[1:], "duplicate object member name"},
		{"invalid UTF-8", strings.Replace(text, `"org.opencontainers.image.title":"`, `"org.opencontainers.image.title":"`+"\xff", 1), "invalid UTF-8"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseManifest([]byte(tt.data))
			if err == nil || !IsInvalid(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an invalid publication: %s", err, tt.want)
			}
		})
	}
	t.Run("a name in other letters", func(t *testing.T) {
		_, l, err := parseManifest([]byte(text[:len(text)-1] + `,"Layers":[]}`))
		if err != nil || l.registry.MediaType != MediaTypeRegistry {
			t.Errorf("got layers %+v, %v; want the manifest's own layers, \"Layers\" being another name", l, err)
		}
	})
}

// TestPullStoredFaults alters what the registry stores: a blob changed on
// its disk, and a blob deleted. Both fail the pull, and neither is taken
// for an invalid publication: the registry may be repaired.
func TestPullStoredFaults(t *testing.T) {
	reg := testregistry.Start(t)
	ctx := context.Background()
	for _, fault := range []string{"tampered", "missing"} {
		t.Run(fault, func(t *testing.T) {
			repo := newRepo(t, reg, "stored-"+fault+":v1")
			// A policy of its own, so that no other subtest shares the blob.
			regData, pol := example(t)
			c, err := Prepare("r", regData, "p", append(pol, "\n<!-- "+fault+" -->\n"...))
			if err != nil {
				t.Fatal(err)
			}
			p := seal(t, c, 1, nil)
			if _, err := repo.Push(ctx, p); err != nil {
				t.Fatal(err)
			}
			d := digest.FromBytes(p.Policy)
			switch fault {
			case "tampered":
				path := reg.BlobPath(string(d))
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				data[len(data)-1] ^= 1
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			case "missing":
				req, _ := http.NewRequest(http.MethodDelete, "http://"+reg.Addr+"/v2/stored-missing/blobs/"+string(d), nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusAccepted {
					t.Fatalf("delete the blob: %v %v", resp, err)
				}
				resp.Body.Close()
			}
			desc, err := repo.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = repo.Pull(ctx, desc, VerifyOptions{})
			if err == nil || IsInvalid(err) || !strings.Contains(err.Error(), FilePolicy) {
				t.Errorf("got %v, want a fetch error naming %s", err, FilePolicy)
			}
			t.Logf("%s: %v", fault, err)
		})
	}
}

// TestCache saves a pulled publication and loads it back, verified, and
// refuses a cache that was altered or that holds another source's.
func TestCache(t *testing.T) {
	reg := testregistry.Start(t)
	ctx := context.Background()
	repo := newRepo(t, reg, "cached:v1")
	signer, keys := sshsigtest.Key(t, 1)
	c := prepared(t)
	source := repo.Ref().String()
	pull := func(serial uint64) *Publication {
		t.Helper()
		if _, err := repo.Push(ctx, seal(t, c, serial, signer)); err != nil {
			t.Fatal(err)
		}
		desc, err := repo.Resolve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := repo.Pull(ctx, desc, VerifyOptions{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	dir := filepath.Join(t.TempDir(), "cache")
	cache, err := OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Load(ctx, source, VerifyOptions{}); !errors.Is(err, ErrCacheEmpty) {
		t.Fatalf("empty cache: got %v, want ErrCacheEmpty", err)
	}
	first := pull(1)
	if err := cache.Save(source, first); err != nil {
		t.Fatal(err)
	}
	second := pull(2)
	if err := cache.Save(source, second); err != nil {
		t.Fatal(err)
	}
	got, err := cache.Load(ctx, source, VerifyOptions{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if got.ManifestDigest != second.ManifestDigest || got.Statement.Serial != 2 || got.SignedBy == nil {
		t.Errorf("loaded %s serial %d, want the second save", got.ManifestDigest, got.Statement.Serial)
	}
	peek, err := cache.Peek(ctx, source, VerifyOptions{Keys: keys})
	if err != nil || peek.ManifestDigest != second.ManifestDigest || peek.Statement.Serial != 2 || peek.SignedBy == nil || peek.Registry != nil || peek.Snapshot != nil {
		t.Errorf("Peek: %v, %+v; want the statement, verified, without the registry", err, peek)
	}
	// The first publication's own blobs (manifest, statement, signature)
	// are gone; the shared ones stay.
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", digest.Digest(first.ManifestDigest).Encoded())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the replaced manifest is still cached: %v", err)
	}
	if _, err := cache.Load(ctx, "oci://elsewhere.invalid/x:y", VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "not of oci://elsewhere.invalid/x:y") {
		t.Errorf("another source: got %v", err)
	}
	_, otherKeys := sshsigtest.Key(t, 2)
	if _, err := cache.Load(ctx, source, VerifyOptions{Keys: otherKeys}); !IsInvalid(err) {
		t.Errorf("another key: got %v, want an InvalidError", err)
	}
	// Alter a cached blob: the load fails, naming the file.
	path := filepath.Join(dir, "blobs", "sha256", digest.FromBytes(second.Registry).Encoded())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[10] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Load(ctx, source, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "the file was changed") {
		t.Errorf("altered blob: got %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"manifests": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Load(ctx, source, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "index.json") {
		t.Errorf("torn index.json: got %v", err)
	}
}

// TestSealedStatement checks what Seal signs.
func TestSealedStatement(t *testing.T) {
	c := prepared(t)
	signer, keys := sshsigtest.Key(t, 1)
	p := seal(t, c, 42, signer)
	want := "flex-auth publication v1\npackage: ops-warden/ssh-signing\nserial: 42\nregistry: " + c.Snapshot.Digest +
		"\nregistry-file: " + string(digest.FromBytes(c.Registry)) + "\npolicy: " + c.Package.Digest() + "\n"
	if string(p.StatementText) != want {
		t.Errorf("statement:\n%s\nwant:\n%s", p.StatementText, want)
	}
	if _, err := keys.Verify(Namespace, p.StatementText, p.Signature, time.Now()); err != nil {
		t.Errorf("the signature does not verify: %v", err)
	}
	if _, err := c.Seal(SealOptions{}); err == nil {
		t.Error("sealed with serial 0")
	}
}
