package e2e

// Distribution: flex-auth publish pushes a signed publication to a real
// OCI registry (the CNCF distribution registry, internal/testregistry),
// replicas serve it with --source and follow its tag through every
// fault a registry can have, and an operator verifies one by hand.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/coulomb/flex-auth/internal/testregistry"
	"github.com/coulomb/flex-auth/publication"
	"github.com/coulomb/flex-auth/registry"
)

// An ociEnv is a registry with a fault proxy in front of it, a
// publisher's SSH key and the allowed_signers file that trusts it.
type ociEnv struct {
	reg      *testregistry.Registry
	proxy    *faultProxy
	dir      string
	key      string // the publisher's private key
	allowed  string // allowed_signers: "flex-auth KEY"
	repo     string
	tag      string
	policies int
}

func newOCIEnv(t *testing.T) *ociEnv {
	t.Helper()
	skipShort(t)
	reg := testregistry.Start(t)
	e := &ociEnv{reg: reg, proxy: newFaultProxy(t, reg.Addr), dir: t.TempDir(), repo: "flex-auth/publication", tag: "production"}
	e.key = sshKey(t, e.dir, "publisher")
	e.allowed = filepath.Join(e.dir, "allowed_signers")
	writeFile(t, e.allowed, append([]byte("flex-auth "), readFile(t, e.key+".pub")...))
	return e
}

// sshKey makes an Ed25519 key with ssh-keygen in dir and returns the
// private key's path.
func sshKey(t *testing.T, dir, name string) string {
	t.Helper()
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Fatal("ssh-keygen is not installed (Debian: apt-get install openssh-client)")
	}
	path := filepath.Join(dir, name)
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return path
}

// source is the reference replicas serve: through the proxy.
func (e *ociEnv) source() string { return "oci://" + e.proxy.Addr + "/" + e.repo + ":" + e.tag }

// direct is the same tag, on the registry itself: publishing there keeps
// the proxy's counts to the replicas' requests.
func (e *ociEnv) direct() string { return "oci://" + e.reg.Addr + "/" + e.repo + ":" + e.tag }

// A pair is a registry snapshot and a policy package on disk.
type pair struct {
	Registry, Policy             string
	RegistryDigest, PolicyDigest string
}

// served is how /healthz and decisions name a pair.
func (p pair) served() string { return p.PolicyDigest + " " + p.RegistryDigest }

// pair writes a new pair: the example registry with one more actor,
// atm-revision-N, and the example policy with a comment of its own, so
// that every pair has digests and blobs of its own and passes the
// package's tests.
func (e *ociEnv) pair(t *testing.T) pair {
	t.Helper()
	e.policies++
	n := e.policies
	snap := withActor(loadFixture(t), fmt.Sprintf("atm-revision-%d", n))
	pol := append(readFile(t, fixturePolicy), fmt.Sprintf("\n<!-- revision %d -->\n", n)...)
	p := pair{Registry: filepath.Join(e.dir, fmt.Sprintf("registry-%d.json", n)), Policy: filepath.Join(e.dir, fmt.Sprintf("policy-%d.md", n)),
		RegistryDigest: snap.Digest, PolicyDigest: digestOf(pol)}
	writeFile(t, p.Registry, snap.Canonical())
	writeFile(t, p.Policy, pol)
	return p
}

// withActor returns a sealed copy of s with one more actor, name, of type
// atm.
func withActor(s *registry.Snapshot, name string) *registry.Snapshot {
	actors := append(append([]registry.Actor(nil), s.Actors...), registry.Actor{Name: name, Type: "atm", Principal: name,
		DefaultTTLHours: 1, MaxTTLHours: 1, Subjects: []string{name, "iam:" + name}})
	return registry.New(s.Source, s.PolicyPackage, actors)
}

var publishedRE = regexp.MustCompile(`^oci://[^@]+@(sha256:[0-9a-f]{64})\n$`)

// publish publishes p to the tag, signed with the publisher's key unless
// extra says otherwise, and returns the manifest digest.
func (e *ociEnv) publish(t *testing.T, p pair, extra ...string) string {
	t.Helper()
	args := append([]string{"publish", "--registry", p.Registry, "--policy", p.Policy, "--plain-http"}, extra...)
	if !strings.Contains(strings.Join(extra, " "), "--sign-key") {
		args = append(args, "--sign-key", e.key)
	}
	code, stdout, stderr := runCLI(t, nil, append(args, e.direct())...)
	m := publishedRE.FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("flex-auth publish: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	return m[1]
}

// replica starts flex-auth serve --source with the trusted keys, polling
// every poll; extra flags are appended.
func (e *ociEnv) replica(t *testing.T, poll time.Duration, extra ...string) *server {
	t.Helper()
	s := newServer(t)
	s.start(t, e.replicaArgs(s, poll, extra...)...)
	return s
}

func (e *ociEnv) replicaArgs(s *server, poll time.Duration, extra ...string) []string {
	return append([]string{"serve", "--addr", "127.0.0.1:0", "--source", e.source(), "--plain-http", "--verify-key", e.allowed,
		"--poll", poll.String(), "--log", s.Log}, extra...)
}

// waitServing waits until s serves p, healthy.
func waitServing(s *server, p pair) {
	s.t.Helper()
	s.waitFor("serving "+p.served()+", status ok", func() bool {
		h := s.health()
		return h["status"] == "ok" && str(h, "policy.digest")+" "+str(h, "registry.digest") == p.served()
	})
}

// waitDegraded waits until s says degraded for a reason containing why,
// while it still serves p.
func waitDegraded(s *server, p pair, why string) {
	s.t.Helper()
	var last map[string]any
	deadline := time.Now().Add(waitTimeout)
	for {
		last = s.health()
		if last["status"] == "degraded" && strings.Contains(str(last, "reload.last_error"), why) {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("not degraded with %q within %s; /healthz: %v", why, waitTimeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := str(last, "policy.digest") + " " + str(last, "registry.digest"); got != p.served() {
		s.t.Errorf("degraded (%q) while serving %s, want the last good pair %s", why, got, p.served())
	}
}

// TestPublish checks publish's contract against a real registry: what it
// prints, what it pushes, and its exit codes.
func TestPublish(t *testing.T) {
	t.Parallel()
	e := newOCIEnv(t)
	p := e.pair(t)
	code, stdout, stderr := runCLI(t, []string{"GITHUB_SHA=0123456789abcdef0123456789abcdef01234567"}, "publish", "--registry", p.Registry,
		"--policy", p.Policy, "--sign-key", e.key, "--plain-http", "--serial", "41", e.direct())
	want := "oci://" + e.reg.Addr + "/" + e.repo + "@sha256:"
	if code != 0 || !strings.HasPrefix(stdout, want) || !publishedRE.MatchString(stdout) {
		t.Fatalf("publish: exit %d, stdout %q, want 0 and %s...\nstderr: %s", code, stdout, want, stderr)
	}
	if !strings.Contains(stderr, "serial 41, signed by SHA256:") || !strings.Contains(stderr, p.RegistryDigest) {
		t.Errorf("stderr %q does not say what was published", stderr)
	}
	digest := publishedRE.FindStringSubmatch(stdout)[1]
	m := fetchManifest(t, e.reg.Addr, e.repo, e.tag)
	if m.digest != digest || m.ArtifactType != publication.ArtifactType || m.Annotations["org.opencontainers.image.revision"] != "0123456789abcdef0123456789abcdef01234567" ||
		m.Annotations[publication.AnnotationSerial] != "41" || m.Annotations[publication.AnnotationRegistryDigest] != p.RegistryDigest ||
		m.Annotations[publication.AnnotationPolicyDigest] != p.PolicyDigest {
		t.Errorf("the tag's manifest %s: %+v", m.digest, m.Manifest)
	}

	// The default serial is the Unix time, or one more than the tag's.
	before := time.Now().Unix()
	e.publish(t, p)
	if s := fetchManifest(t, e.reg.Addr, e.repo, e.tag).Annotations[publication.AnnotationSerial]; s < fmt.Sprint(before) {
		t.Errorf("default serial %s, want at least the Unix time %d", s, before)
	}
	code, _, stderr = runCLI(t, nil, "publish", "--registry", p.Registry, "--policy", p.Policy, "--plain-http", "--serial", "40", e.direct())
	if code != 2 || !strings.Contains(stderr, "--serial 40 is lower than the serial") {
		t.Errorf("a lower --serial: exit %d, %s; want 2 and why", code, stderr)
	}

	// Exit 1: an invalid pair, nothing pushed.
	bad := filepath.Join(e.dir, "bad.json")
	writeFile(t, bad, bytes.Replace(readFile(t, p.Registry), []byte(`"max_ttl_hours": 48`), []byte(`"max_ttl_hours": 49`), 1))
	code, stdout, stderr = runCLI(t, nil, "publish", "--registry", bad, "--policy", p.Policy, "--plain-http", e.direct()+"-bad")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "bad.json: digest") {
		t.Errorf("invalid pair: exit %d, stdout %q, stderr %q; want 1, nothing, the file named", code, stdout, stderr)
	}
	if resp, err := http.Get("http://" + e.reg.Addr + "/v2/" + e.repo + "/manifests/" + e.tag + "-bad"); err != nil || resp.StatusCode != 404 {
		t.Errorf("the invalid pair was pushed: %v %v", resp, err)
	}
	// Exit 2: the registry cannot be reached, or the tag holds an image.
	e.proxy.down()
	code, _, stderr = runCLI(t, nil, "publish", "--registry", p.Registry, "--policy", p.Policy, "--plain-http", e.source())
	if code != 2 || !strings.Contains(stderr, "connection refused") {
		t.Errorf("registry down: exit %d, %s; want 2", code, stderr)
	}
	pushImage(t, e.reg.Addr, e.repo, "an-image")
	code, _, stderr = runCLI(t, nil, "publish", "--registry", p.Registry, "--policy", p.Policy, "--plain-http", "oci://"+e.reg.Addr+"/"+e.repo+":an-image")
	if code != 2 || !strings.Contains(stderr, "not a flex-auth publication") || !strings.Contains(stderr, "it is not overwritten") {
		t.Errorf("a tag holding an image: exit %d, %s; want 2 and why", code, stderr)
	}
}

// A manifest is a tag's manifest and its digest, as the registry serves
// it.
type manifest struct {
	ocispec.Manifest
	digest string
	raw    []byte
}

func fetchManifest(t *testing.T, addr, repo, ref string) manifest {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m manifest
	buf := new(bytes.Buffer)
	buf.ReadFrom(resp.Body)
	m.raw = buf.Bytes()
	if resp.StatusCode != 200 {
		t.Fatalf("GET manifest %s: %d %s", ref, resp.StatusCode, m.raw)
	}
	if err := json.Unmarshal(m.raw, &m.Manifest); err != nil {
		t.Fatal(err)
	}
	m.digest = resp.Header.Get("Docker-Content-Digest")
	return m
}

// pushImage pushes an ordinary image manifest (a config and a layer) to
// repo:tag.
func pushImage(t *testing.T, addr, repo, tag string) {
	t.Helper()
	ref, err := publication.ParseRef("oci://" + addr + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	r, err := remote.NewRepository(strings.TrimPrefix(ref.String(), publication.Scheme))
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	ctx := context.Background()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("not a publication")
	cdesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageConfig, config)
	ldesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageLayer, layer)
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{cdesc, config}, {ldesc, layer}} {
		if err := r.Push(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: cdesc, Layers: []ocispec.Descriptor{ldesc}})
	mdesc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, data)
	if err := r.PushReference(ctx, mdesc, bytes.NewReader(data), tag); err != nil {
		t.Fatal(err)
	}
}

// retag points the tag at the manifest with digest, as `oras tag` does.
func (e *ociEnv) retag(t *testing.T, digest string) {
	t.Helper()
	m := fetchManifest(t, e.reg.Addr, e.repo, digest)
	req, _ := http.NewRequest(http.MethodPut, "http://"+e.reg.Addr+"/v2/"+e.repo+"/manifests/"+e.tag, bytes.NewReader(m.raw))
	req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest %s as %s: %d", digest, e.tag, resp.StatusCode)
	}
}

// TestVerifyByHand runs docs/promotion.md's "Verify a publication by
// hand" block as it is written, with bash, curl, jq, sha256sum and
// ssh-keygen, against a publication on a registry on localhost (http for
// https, the registry's address for the placeholder): the signature
// verifies, the files are the statement's, and an altered statement does
// not verify.
func TestVerifyByHand(t *testing.T) {
	t.Parallel()
	e := newOCIEnv(t)
	p := e.pair(t)
	e.publish(t, p)
	doc := string(readFile(t, "../docs/promotion.md"))
	_, block, ok := strings.Cut(doc, "<!-- verify-by-hand -->\n```sh\n")
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok {
		t.Fatal("docs/promotion.md: no sh block after <!-- verify-by-hand -->")
	}
	block = strings.NewReplacer("registry.example.invalid", e.reg.Addr, "https://", "http://").Replace(block)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "allowed_signers"), readFile(t, e.allowed))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(flexAuth)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the documented block failed: %v\n%s", err, out)
	}
	for _, want := range []string{`Good "flex-auth" signature for flex-auth with ED25519 key SHA256:`, "registry.json and policy_package.md are the statement's",
		"registry: " + p.RegistryDigest, "digest:         " + p.RegistryDigest} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the block's output has no %q:\n%s", want, out)
		}
	}
	// The same check refuses a statement changed by one byte, and files
	// that are not the statement's.
	pubDir := filepath.Join(dir, "publication")
	statement := readFile(t, filepath.Join(pubDir, "statement.txt"))
	verify := exec.Command("ssh-keygen", "-Y", "verify", "-f", e.allowed, "-I", "flex-auth", "-n", "flex-auth", "-s", "statement.txt.sig")
	verify.Dir = pubDir
	verify.Stdin = bytes.NewReader(bytes.Replace(statement, []byte("serial: "), []byte("serial: 9"), 1))
	if out, err := verify.CombinedOutput(); err == nil {
		t.Errorf("ssh-keygen verified an altered statement:\n%s", out)
	}
	writeFile(t, filepath.Join(pubDir, "policy_package.md"), append(readFile(t, filepath.Join(pubDir, "policy_package.md")), '\n'))
	_, rest, _ := strings.Cut(block, "# 2.")
	check := exec.Command("bash", "-euo", "pipefail", "-c", "# 2."+strings.Split(rest, "# 3.")[0])
	check.Dir = pubDir
	if out, err := check.CombinedOutput(); err == nil {
		t.Errorf("step 2 accepted a policy_package.md that is not the statement's:\n%s", out)
	}
}
