// Package validate checks the Kubernetes manifests in deploy/ offline:
// every kustomization renders, every object decodes strictly into the
// Kubernetes API's own types, every pod meets the "restricted" Pod
// Security Standard, and the Deployment's command line works with the
// ConfigMap's files, or, in the oci-source overlay, with a publication
// pushed to a real registry (internal/testregistry's). It is a module of its own so that the flex-auth
// module does not depend on Kubernetes; .ci/run runs its tests.
package validate

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// deployDir is deploy/, seen from this package.
const deployDir = ".."

// newObject returns an empty object of the API type of gvk, or nil for a
// kind the manifests are not expected to hold.
func newObject(gvk schema.GroupVersionKind) any {
	switch gvk {
	case corev1.SchemeGroupVersion.WithKind("Namespace"):
		return &corev1.Namespace{}
	case corev1.SchemeGroupVersion.WithKind("ServiceAccount"):
		return &corev1.ServiceAccount{}
	case corev1.SchemeGroupVersion.WithKind("ConfigMap"):
		return &corev1.ConfigMap{}
	case corev1.SchemeGroupVersion.WithKind("Service"):
		return &corev1.Service{}
	case corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim"):
		return &corev1.PersistentVolumeClaim{}
	case appsv1.SchemeGroupVersion.WithKind("Deployment"):
		return &appsv1.Deployment{}
	case policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"):
		return &policyv1.PodDisruptionBudget{}
	case networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"):
		return &networkingv1.NetworkPolicy{}
	case monitoringv1.SchemeGroupVersion.WithKind("ServiceMonitor"):
		return &monitoringv1.ServiceMonitor{}
	}
	return nil
}

// decodeStrict decodes one object's JSON into the API type of its kind
// the way the API server's strict field validation does: field names are
// case-sensitive, and an unknown or duplicate field is an error.
func decodeStrict(data []byte) (any, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &meta); err != nil {
		return nil, err
	}
	gv, err := schema.ParseGroupVersion(meta.APIVersion)
	if err != nil {
		return nil, err
	}
	obj := newObject(gv.WithKind(meta.Kind))
	if obj == nil {
		return nil, fmt.Errorf("unexpected kind %s %s", meta.APIVersion, meta.Kind)
	}
	if data, err = yaml.YAMLToJSONStrict(data); err != nil {
		return nil, err
	}
	strict, err := kjson.UnmarshalStrict(data, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, err
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s: %v", meta.Kind, strict)
	}
	return obj, nil
}

// A rendering is what one kustomization renders to: the objects, typed.
type rendering struct {
	dir     string // relative to deploy/, or what else it is
	objects []any
}

// find returns the objects of type T, by name.
func find[T interface{ GetName() string }](r *rendering) map[string]T {
	out := map[string]T{}
	for _, o := range r.objects {
		if t, ok := o.(T); ok {
			out[t.GetName()] = t
		}
	}
	return out
}

// one returns the object of type T named name, failing the test when
// there is none.
func one[T interface{ GetName() string }](t *testing.T, r *rendering, name string) T {
	t.Helper()
	o, ok := find[T](r)[name]
	if !ok {
		var zero T
		t.Fatalf("%s: no %T named %s", r.dir, zero, name)
	}
	return o
}

var renderOnce = sync.OnceValues(renderAll)

// renderings renders every kustomization under deploy/ (the base and the
// overlays; components are rendered through the overlays that use them).
func renderings(t *testing.T) []*rendering {
	t.Helper()
	rs, err := renderOnce()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func renderAll() ([]*rendering, error) {
	dirs, err := kustomizations("Kustomization")
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("no kustomization under %s", deployDir)
	}
	var out []*rendering
	for _, dir := range dirs {
		r, err := render(filepath.Join(deployDir, dir), dir)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	doc, err := renderDocOverlay()
	if err != nil {
		return nil, err
	}
	return append(out, doc), nil
}

// renderDocOverlay renders the overlay docs/operating.md tells operators
// to write, with its remote bases pointed at this checkout and the two
// files it names beside it (the example's, the policy with a line more,
// so that the replaced ConfigMap can be told from the base's).
func renderDocOverlay() (*rendering, error) {
	const docFile = "../../docs/operating.md"
	doc, err := os.ReadFile(docFile)
	if err != nil {
		return nil, err
	}
	_, block, ok := strings.Cut(string(doc), "<!-- operator-overlay -->\n```yaml\n")
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok {
		return nil, fmt.Errorf("%s: no yaml block after <!-- operator-overlay -->", docFile)
	}
	dir, err := os.MkdirTemp("", "flex-auth-doc-overlay-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	abs, err := filepath.Abs(deployDir)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		return nil, err
	}
	remote := regexp.MustCompile(`https://github\.com/coulomb/flex-auth//deploy/([a-z/-]+)\?ref=v[0-9.]+`)
	if !remote.MatchString(block) {
		return nil, fmt.Errorf("%s: the overlay names no base in this repository", docFile)
	}
	block = remote.ReplaceAllString(block, filepath.ToSlash(rel)+"/$1")
	files := map[string][]byte{"kustomization.yaml": []byte(block)}
	for name, extra := range map[string]string{"production_registry_snapshot.json": "", "policy_package.md": docOverlayPolicyLine} {
		data, err := os.ReadFile(filepath.Join("../../examples/ops-warden", name))
		if err != nil {
			return nil, err
		}
		files[name] = append(data, extra...)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	r, err := render(dir, "docs/operating.md overlay")
	if err != nil {
		return nil, err
	}
	return r, nil
}

// docOverlayPolicyLine ends the policy package of the documented overlay.
const docOverlayPolicyLine = "\n<!-- the operator's copy -->\n"

// render renders the kustomization in path, named name in errors and
// reports, and decodes every object strictly.
func render(path, name string) (*rendering, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), path)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", name, err)
	}
	r := &rendering{dir: name}
	for _, res := range m.Resources() {
		data, err := res.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, res.CurId(), err)
		}
		obj, err := decodeStrict(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, res.CurId(), err)
		}
		r.objects = append(r.objects, obj)
	}
	return r, nil
}

// kustomizations returns the directories under deploy/ whose
// kustomization.yaml is of kind (Kustomization or Component), sorted.
func kustomizations(kind string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var k struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if k.Kind == kind {
			rel, _ := filepath.Rel(deployDir, filepath.Dir(path))
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(dirs)
	return dirs, err
}

// TestRender renders every kustomization and decodes every object
// strictly; renderAll fails on the first that does not.
func TestRender(t *testing.T) {
	rs := renderings(t)
	var names []string
	for _, r := range rs {
		names = append(names, r.dir)
		t.Logf("deploy/%s: %d objects", r.dir, len(r.objects))
	}
	if !slices.Contains(names, "base") {
		t.Errorf("rendered %v, want deploy/base among them", names)
	}
}

// TestComponentsUsed checks that every component is rendered by at least
// one overlay, so that none goes unchecked.
func TestComponentsUsed(t *testing.T) {
	components, err := kustomizations("Component")
	if err != nil {
		t.Fatal(err)
	}
	overlays, err := kustomizations("Kustomization")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, dir := range overlays {
		data, err := os.ReadFile(filepath.Join(deployDir, dir, "kustomization.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var k struct {
			Components []string `json:"components"`
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			t.Fatal(err)
		}
		for _, c := range k.Components {
			used[filepath.ToSlash(filepath.Join(dir, c))] = true
		}
	}
	if len(components) == 0 {
		t.Fatal("no components found")
	}
	for _, c := range components {
		if !used[c] {
			t.Errorf("component deploy/%s is used by no overlay, so nothing checks it", c)
		}
	}
}

// TestDecodeStrictRejects shows that the decoding catches what the API
// server's strict field validation would.
func TestDecodeStrictRejects(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 3}\n", `unknown field "spec.replica"`},
		{"field in the wrong case", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {Ports: []}\n", `unknown field "spec.Ports"`},
		{"duplicate field", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nautomountServiceAccountToken: false\nautomountServiceAccountToken: true\n", "already set"},
		{"wrong type", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {selector: 2}\n", "cannot unmarshal"},
		{"unexpected kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "unexpected kind v1 Pod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestDocOverlay checks what the overlay docs/operating.md gives
// operators changes: their image, their files in the ConfigMap, the
// ServiceMonitor; the other tests check the rest of its rendering.
func TestDocOverlay(t *testing.T) {
	var doc *rendering
	for _, r := range renderings(t) {
		if r.dir == "docs/operating.md overlay" {
			doc = r
		}
	}
	if doc == nil {
		t.Fatal("the documented overlay was not rendered")
	}
	d := one[*appsv1.Deployment](t, doc, "flex-auth")
	if got := d.Spec.Template.Spec.Containers[0].Image; got != "REGISTRY/flex-auth:v1.2.3" {
		t.Errorf("image %s, want REGISTRY/flex-auth:v1.2.3", got)
	}
	cm := one[*corev1.ConfigMap](t, doc, "flex-auth-registry")
	if !strings.HasSuffix(cm.Data["policy_package.md"], docOverlayPolicyLine) || len(cm.Data) != 2 {
		t.Errorf("the ConfigMap holds %v, want the overlay's two files", keys(cm.Data))
	}
	one[*monitoringv1.ServiceMonitor](t, doc, "flex-auth")
}
