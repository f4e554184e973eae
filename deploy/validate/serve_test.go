package validate

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// flexAuth builds the flex-auth binary of this repository once.
var flexAuth = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "flex-auth-validate-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "flex-auth")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/flex-auth")
	cmd.Dir = filepath.Join(deployDir, "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/flex-auth: %v\n%s", err, out)
	}
	return bin, nil
})

// TestServeArgs runs the real flex-auth with each rendering's container
// arguments, its volumes laid out in temporary directories the way the
// kubelet lays them out (the ConfigMap behind a ..data symlink, a
// certificate in the TLS Secret), and checks that it serves the
// ConfigMap's registry and logs decisions where the manifests say. Only
// the address (a free loopback port) and the drain delay (none) are
// changed.
func TestServeArgs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs flex-auth")
	}
	bin, err := flexAuth()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range renderings(t) {
		t.Run(r.dir, func(t *testing.T) {
			t.Parallel()
			runServe(t, r, bin)
		})
	}
}

func runServe(t *testing.T, r *rendering, bin string) {
	d := one[*appsv1.Deployment](t, r, "flex-auth")
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	// The pair: from the ConfigMap, or from a publication pushed to a
	// registry started for the test, with the trusted keys replaced by
	// the test's.
	var cm *corev1.ConfigMap
	var pub *published
	if _, oci := flagValue(c.Args, "source"); oci {
		pub = publishExample(t, bin)
	} else {
		cm = one[*corev1.ConfigMap](t, r, "flex-auth-registry")
	}

	// The volumes, by mount path.
	var pki *testPKI
	mounts := map[string]string{}
	logDir := ""
	for _, m := range c.VolumeMounts {
		dir := t.TempDir()
		mounts[m.MountPath] = dir
		for _, v := range spec.Volumes {
			switch {
			case v.Name != m.Name:
			case v.ConfigMap != nil && cm != nil:
				atomicWriter(t, dir, cm.Data)
			case v.ConfigMap != nil && pub != nil:
				keysCM := one[*corev1.ConfigMap](t, r, v.ConfigMap.Name)
				files := map[string]string{}
				for name := range keysCM.Data {
					files[name] = pub.allowedSigners
				}
				atomicWriter(t, dir, files)
			case v.EmptyDir != nil:
			case v.Secret != nil && v.Secret.Optional != nil && *v.Secret.Optional:
				// An optional Secret that does not exist: an empty volume.
			case v.Secret != nil && v.Secret.SecretName == "flex-auth-tls":
				pki = newTestPKI(t)
				atomicWriter(t, dir, map[string]string{"tls.crt": pki.certPEM, "tls.key": pki.keyPEM, "ca.crt": pki.caPEM})
			case v.PersistentVolumeClaim != nil:
				logDir = dir
			default:
				t.Fatalf("volume %s: a kind this test does not lay out", v.Name)
			}
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = "flex-auth-7d9c5b-x2x4q"
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		default:
			t.Fatalf("env %s: a source this test does not know", e.Name)
		}
	}
	var args []string
	for _, a := range c.Args {
		for name, v := range env {
			a = strings.ReplaceAll(a, "$("+name+")", v)
		}
		for path, dir := range mounts {
			a = strings.ReplaceAll(a, "="+path+"/", "="+dir+"/")
		}
		if strings.HasPrefix(a, "--source=") {
			a = "--source=" + pub.ref
		}
		args = append(args, a)
	}
	args = append(args, "--addr=127.0.0.1:0", "--drain-delay=0s")
	if pub != nil {
		args = append(args, "--plain-http")
	}

	cmd := exec.Command(bin, args...)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("flex-auth %s\nstderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	}()
	addr := waitListening(t, &stderr, exited)

	scheme, hc := "http", &http.Client{Timeout: 10 * time.Second}
	if pki != nil {
		scheme = "https"
		conf := &tls.Config{RootCAs: pki.pool, ServerName: "flex-auth.flex-auth.svc"}
		if _, mtls := flagValue(c.Args, "client-ca"); mtls {
			conf.Certificates = []tls.Certificate{pki.client}
		}
		hc.Transport = &http.Transport{TLSClientConfig: conf}
	}
	base := scheme + "://" + addr

	var health struct {
		Status   string
		Registry struct{ Digest string }
	}
	getJSON(t, hc, base+"/healthz", &health)
	var snapshot struct{ Digest string }
	if pub != nil {
		snapshot.Digest = pub.registryDigest
	} else {
		regFlag, _ := flagValue(c.Args, "registry")
		if err := json.Unmarshal([]byte(cm.Data[filepath.Base(regFlag)]), &snapshot); err != nil {
			t.Fatal(err)
		}
	}
	if health.Status != "ok" || health.Registry.Digest != snapshot.Digest {
		t.Errorf("/healthz: status %q, registry %s; want ok and the ConfigMap's %s", health.Status, health.Registry.Digest, snapshot.Digest)
	}
	var decision struct {
		DecisionID string `json:"decision_id"`
	}
	post(t, hc, base+"/v1/check", `{"subject": "iam:agt-state-hub-bridge", "resource": "agt-state-hub-bridge", "context": {"ttl_hours": 24}}`, &decision)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}

	// The decision log: stdout, or a file per pod on the volume.
	logged := stdout.String()
	if logDir != "" {
		files, _ := filepath.Glob(filepath.Join(logDir, "*.jsonl"))
		if len(files) != 1 || !strings.Contains(files[0], env["POD_NAME"]) {
			t.Fatalf("decision log files %v, want one named after the pod", files)
		}
		data, _ := os.ReadFile(files[0])
		if logged != "" {
			t.Errorf("stdout %q, want nothing when the log is a file", logged)
		}
		logged = string(data)
	}
	if decision.DecisionID == "" || !strings.Contains(logged, `"decision_id":"`+decision.DecisionID+`"`) {
		t.Errorf("decision %q is not in the decision log:\n%s", decision.DecisionID, logged)
	}
	if strings.Contains(stderr.String(), decision.DecisionID) {
		t.Errorf("the decision is on stderr")
	}
	if pub != nil {
		cacheDir, _ := flagValue(args, "cache-dir")
		if _, err := os.Stat(filepath.Join(cacheDir, "index.json")); err != nil {
			t.Errorf("the publication served is not cached in --cache-dir: %v", err)
		}
	}
}

// A published is the example pair, published to a registry started for
// the test, and the allowed_signers line trusting its key.
type published struct {
	ref, allowedSigners, registryDigest string
}

// registryBinary is the CNCF distribution registry the flex-auth module's
// tests run, built once (internal/testregistry).
var registryBinary = sync.OnceValues(func() (string, error) {
	cmd := exec.Command("go", "run", "./internal/testregistry/cmd/testregistry")
	cmd.Dir = filepath.Join(deployDir, "..")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return "", fmt.Errorf("%v: %s", err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
})

// publishExample starts a registry on 127.0.0.1 and publishes the
// ops-warden example to it with flex-auth publish, signed with a new key.
func publishExample(t *testing.T, bin string) *published {
	t.Helper()
	reg, err := registryBinary()
	if err != nil {
		t.Skipf("the CNCF distribution registry could not be built, so the OCI source cannot be run: %v", err)
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	config := filepath.Join(dir, "config.yml")
	conf := "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: " +
		filepath.Join(dir, "storage") + "\nhttp:\n  addr: " + addr + "\n"
	if err := os.WriteFile(config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(reg, "serve", config)
	var regErr syncBuffer
	cmd.Stdout, cmd.Stderr = &regErr, &regErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry does not answer: %v\n%s", err, regErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	key := filepath.Join(dir, "publisher")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pubKey, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(deployDir, "..", "examples", "ops-warden")
	ref := "oci://" + addr + "/flex-auth/publication:production"
	out, err := exec.Command(bin, "publish", "--registry", filepath.Join(example, "production_registry_snapshot.json"),
		"--policy", filepath.Join(example, "policy_package.md"), "--sign-key", key, "--plain-http", ref).CombinedOutput()
	if err != nil {
		t.Fatalf("flex-auth publish: %v\n%s", err, out)
	}
	var snapshot struct{ Digest string }
	data, err := os.ReadFile(filepath.Join(example, "production_registry_snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &snapshot); err != nil {
		t.Fatal(err)
	}
	return &published{ref: ref, allowedSigners: `flex-auth namespaces="flex-auth" ` + string(pubKey), registryDigest: snapshot.Digest}
}

// atomicWriter lays out files in dir as the kubelet does for a ConfigMap
// or Secret volume: a timestamped directory, ..data pointing at it, and
// each key a symlink through ..data.
func atomicWriter(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	gen := "..2026_06_24_09_12_03.000000001"
	if err := os.Mkdir(filepath.Join(dir, gen), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, gen, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(gen, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

var listening = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

// waitListening waits for flex-auth's "listening on" log line and returns
// the address.
func waitListening(t *testing.T, stderr *syncBuffer, exited <-chan error) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		// Ask for the next write before reading what is there, so that a
		// write between the two is not missed.
		wrote := stderr.wrote()
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-exited:
			t.Fatalf("flex-auth exited before listening: %v", err)
		case <-ctx.Done():
			t.Fatal("flex-auth did not listen within 30s")
		case <-wrote:
		}
	}
}

func getJSON(t *testing.T, hc *http.Client, url string, v any) {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	decodeAnswer(t, resp, v)
}

func post(t *testing.T, hc *http.Client, url, body string, v any) {
	t.Helper()
	resp, err := hc.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	decodeAnswer(t, resp, v)
}

func decodeAnswer(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s %v", resp.Request.URL, resp.StatusCode, data, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v: %s", resp.Request.URL, err, data)
	}
}

// syncBuffer is a buffer that a process writes to while the test reads,
// with a channel that says when it was written.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wrote returns a channel closed at the next write.
func (b *syncBuffer) wrote() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.changed
}

// testPKI is a CA, a server certificate for the Service's names and a
// client certificate, as cert-manager would issue them.
type testPKI struct {
	caPEM, certPEM, keyPEM string
	pool                   *x509.CertPool
	client                 tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flex-auth test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, dns ...string) ([]byte, *ecdsa.PrivateKey) {
		key := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "flex-auth"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: dns,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	keyPEM := func(k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemOf("EC PRIVATE KEY", der)
	}
	serverDER, serverKey := issue(2, x509.ExtKeyUsageServerAuth, "flex-auth.flex-auth.svc", "flex-auth.flex-auth.svc.cluster.local")
	clientDER, clientKey := issue(3, x509.ExtKeyUsageClientAuth)
	client, err := tls.X509KeyPair([]byte(pemOf("CERTIFICATE", clientDER)), []byte(keyPEM(clientKey)))
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{caPEM: pemOf("CERTIFICATE", caDER), certPEM: pemOf("CERTIFICATE", serverDER), keyPEM: keyPEM(serverKey),
		pool: x509.NewCertPool(), client: client}
	p.pool.AddCert(ca)
	return p
}
