package validate

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

const namespace = "flex-auth"

// restricted evaluates a pod against the latest "restricted" Pod Security
// Standard with the admission controller's own checks, and returns the
// reasons it is refused (none when it is allowed).
func restricted(t *testing.T, meta *metav1.ObjectMeta, spec *corev1.PodSpec) []string {
	t.Helper()
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	for _, r := range ev.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, meta, spec) {
		if !r.Allowed {
			refused = append(refused, r.ForbiddenReason+": "+r.ForbiddenDetail)
		}
	}
	return refused
}

// TestPodSecurityRestricted checks every pod template of every rendering
// against the restricted standard, which the namespace also enforces.
func TestPodSecurityRestricted(t *testing.T) {
	for _, r := range renderings(t) {
		deployments := find[*appsv1.Deployment](r)
		if len(deployments) == 0 {
			t.Errorf("deploy/%s: no Deployment", r.dir)
		}
		for name, d := range deployments {
			if refused := restricted(t, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec); len(refused) > 0 {
				t.Errorf("deploy/%s: Deployment %s breaks the restricted Pod Security Standard: %v", r.dir, name, refused)
			}
		}
		ns := one[*corev1.Namespace](t, r, namespace)
		if got := ns.Labels[psapi.EnforceLevelLabel]; got != string(psapi.LevelRestricted) {
			t.Errorf("deploy/%s: namespace %s enforces %q, want restricted", r.dir, namespace, got)
		}
	}
}

// TestPodSecurityRejects shows that the check refuses what each of the
// base's settings prevents.
func TestPodSecurityRejects(t *testing.T) {
	base := baseRendering(t)
	tests := []struct {
		name   string
		mutate func(*corev1.PodSpec)
	}{
		{"privilege escalation", func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.AllowPrivilegeEscalation = nil }},
		{"a capability kept", func(s *corev1.PodSpec) { s.Containers[0].SecurityContext.Capabilities.Drop = nil }},
		{"root allowed", func(s *corev1.PodSpec) {
			s.SecurityContext.RunAsNonRoot, s.Containers[0].SecurityContext.RunAsNonRoot = nil, nil
		}},
		{"no seccomp profile", func(s *corev1.PodSpec) { s.SecurityContext.SeccompProfile = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := one[*appsv1.Deployment](t, base, "flex-auth").DeepCopy()
			tt.mutate(&d.Spec.Template.Spec)
			if refused := restricted(t, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec); len(refused) == 0 {
				t.Errorf("the restricted check allows a pod with %s", tt.name)
			}
		})
	}
}

func baseRendering(t *testing.T) *rendering {
	t.Helper()
	for _, r := range renderings(t) {
		if r.dir == "base" {
			return r
		}
	}
	t.Fatal("no deploy/base")
	return nil
}

// flagValue returns the value of --name=V in args, the last one when it
// is given more than once (as the flag package takes it).
func flagValue(args []string, name string) (string, bool) {
	val, ok := "", false
	for _, a := range args {
		if v, found := strings.CutPrefix(a, "--"+name+"="); found {
			val, ok = v, true
		} else if a == "--"+name {
			val, ok = "true", true
		}
	}
	return val, ok
}

// TestDeployment checks, in every rendering, what the manifests promise
// operators: three replicas that never drop below two ready, spread over
// nodes, probed on /readyz and /healthz, draining for as long as the
// readiness probe needs to notice, the registry from the ConfigMap,
// watched, and a restricted security context.
func TestDeployment(t *testing.T) {
	for _, r := range renderings(t) {
		t.Run(r.dir, func(t *testing.T) {
			d := one[*appsv1.Deployment](t, r, "flex-auth")
			if d.Namespace != namespace {
				t.Errorf("namespace %q, want %s", d.Namespace, namespace)
			}
			replicas := *d.Spec.Replicas
			if replicas != 3 {
				t.Errorf("replicas %d, want 3", replicas)
			}
			ru := d.Spec.Strategy.RollingUpdate
			if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable == nil {
				t.Fatalf("strategy %+v, want a rolling update with maxUnavailable", d.Spec.Strategy)
			}
			unavailable, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, int(replicas), true)
			if err != nil || int(replicas)-unavailable < 2 {
				t.Errorf("maxUnavailable %s of %d replicas leaves %d ready, want at least 2 (%v)", ru.MaxUnavailable, replicas, int(replicas)-unavailable, err)
			}
			spread := false
			for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
				if c.TopologyKey == "kubernetes.io/hostname" && c.MaxSkew == 1 && c.LabelSelector != nil &&
					c.LabelSelector.MatchLabels["app.kubernetes.io/name"] == "flex-auth" {
					spread = true
				}
			}
			if !spread {
				t.Errorf("no topology spread constraint over kubernetes.io/hostname for the flex-auth pods")
			}
			spec := d.Spec.Template.Spec
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("the pod mounts a service account token")
			}
			sa := one[*corev1.ServiceAccount](t, r, spec.ServiceAccountName)
			if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				t.Errorf("ServiceAccount %s automounts its token", sa.Name)
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(spec.Containers))
			}
			c := spec.Containers[0]
			if len(c.Args) == 0 || c.Args[0] != "serve" {
				t.Fatalf("args %v, want serve ...", c.Args)
			}
			checkProbes(t, r.dir, c)
			checkDrain(t, d, c)
			if _, oci := flagValue(c.Args, "source"); oci {
				checkSource(t, r, spec, c)
			} else {
				checkRegistryVolume(t, r, spec, c)
			}
			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
				if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
					t.Errorf("%s: request %s, limit %s; want both, the request at most the limit", res, &req, &lim)
				}
			}
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("the root file system is writable")
			}
			if addr, _ := flagValue(c.Args, "addr"); addr != "0.0.0.0:8080" {
				t.Errorf("--addr %q, want 0.0.0.0:8080", addr)
			}
		})
	}
}

// checkProbes checks that the pod has a startup probe and that readiness
// and liveness ask /readyz and /healthz on the serving port, or, with
// mutual TLS (which the kubelet cannot speak), connect to it.
func checkProbes(t *testing.T, dir string, c corev1.Container) {
	t.Helper()
	_, mtls := flagValue(c.Args, "client-ca")
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		switch {
		case p.probe == nil:
			t.Errorf("no %s probe", p.name)
		case mtls && p.probe.TCPSocket != nil && p.probe.TCPSocket.Port.String() == "http":
		case mtls:
			t.Errorf("%s probe %+v: with mutual TLS, want a TCP probe of port http", p.name, p.probe.ProbeHandler)
		case p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http":
			t.Errorf("%s probe %+v, want GET %s on port http", p.name, p.probe.ProbeHandler, p.path)
		default:
			_, tls := flagValue(c.Args, "tls-cert")
			if want := map[bool]corev1.URIScheme{false: "", true: corev1.URISchemeHTTPS}[tls]; p.probe.HTTPGet.Scheme != want {
				t.Errorf("%s probe scheme %q, want %q", p.name, p.probe.HTTPGet.Scheme, want)
			}
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("ports %+v, want http on 8080", c.Ports)
	}
}

// checkDrain checks that --drain-delay covers the readiness probe's
// detection time (period x failure threshold, plus its timeout) and that
// the grace period covers the drain, the shutdown timeout and a flush.
func checkDrain(t *testing.T, d *appsv1.Deployment, c corev1.Container) {
	t.Helper()
	v, ok := flagValue(c.Args, "drain-delay")
	if !ok {
		t.Errorf("no --drain-delay")
		return
	}
	drain, err := time.ParseDuration(v)
	if err != nil {
		t.Errorf("--drain-delay=%s: %v", v, err)
		return
	}
	shutdown := 10 * time.Second // serve's default --shutdown-timeout
	if v, ok := flagValue(c.Args, "shutdown-timeout"); ok {
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Errorf("--shutdown-timeout=%s: %v", v, err)
		}
	}
	if p := c.ReadinessProbe; p != nil {
		detect := time.Duration(p.PeriodSeconds*p.FailureThreshold+p.TimeoutSeconds) * time.Second
		if drain < detect {
			t.Errorf("--drain-delay %s is shorter than the readiness probe takes to notice (%ds x %d + %ds = %s)",
				drain, p.PeriodSeconds, p.FailureThreshold, p.TimeoutSeconds, detect)
		}
	}
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace < drain+shutdown+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %s < drain %s + shutdown %s + 5s to flush", grace, drain, shutdown)
	}
}

// checkRegistryVolume checks that --registry and --policy are files of
// the ConfigMap flex-auth-registry, mounted whole (a subPath mount never
// sees an update) and read-only, and that --watch is on.
func checkRegistryVolume(t *testing.T, r *rendering, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	if _, ok := flagValue(c.Args, "watch"); !ok {
		t.Errorf("no --watch: a ConfigMap update would not be served")
	}
	cm := one[*corev1.ConfigMap](t, r, "flex-auth-registry")
	var mount *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
				mount = &c.VolumeMounts[i]
			}
		}
	}
	if mount == nil {
		t.Fatalf("ConfigMap %s is not mounted", cm.Name)
	}
	if mount.SubPath != "" || !mount.ReadOnly {
		t.Errorf("mount %+v: want the whole ConfigMap, read-only", mount)
	}
	for _, flag := range []string{"registry", "policy"} {
		v, _ := flagValue(c.Args, flag)
		key, ok := strings.CutPrefix(v, mount.MountPath+"/")
		if _, inMap := cm.Data[key]; !ok || !inMap {
			t.Errorf("--%s=%s is not a file of ConfigMap %s mounted at %s (keys %v)", flag, v, cm.Name, mount.MountPath, keys(cm.Data))
		}
	}
}

// checkSource checks a rendering that serves an OCI publication: no
// registry ConfigMap, no file flags, the trusted keys from a ConfigMap
// mounted whole, the cache on a volume of its own (the root file system
// is read-only), the base's drain and log flags kept, and a startup probe
// that waits for a first pull bounded by the reload timeout.
func checkSource(t *testing.T, r *rendering, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	for _, flag := range []string{"registry", "policy", "watch"} {
		if _, ok := flagValue(c.Args, flag); ok {
			t.Errorf("--%s with --source", flag)
		}
	}
	for _, flag := range []string{"addr", "drain-delay", "log-format", "poll", "verify-key", "cache-dir"} {
		if _, ok := flagValue(c.Args, flag); !ok {
			t.Errorf("no --%s", flag)
		}
	}
	if _, ok := find[*corev1.ConfigMap](r)["flex-auth-registry"]; ok {
		t.Errorf("ConfigMap flex-auth-registry is still in the rendering")
	}
	mountOf := func(flag string) (corev1.VolumeMount, corev1.Volume) {
		t.Helper()
		path, _ := flagValue(c.Args, flag)
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(path, m.MountPath+"/") {
				for _, v := range spec.Volumes {
					if v.Name == m.Name {
						return m, v
					}
				}
			}
		}
		t.Fatalf("--%s=%s is on no volume", flag, path)
		return corev1.VolumeMount{}, corev1.Volume{}
	}
	m, v := mountOf("verify-key")
	if v.ConfigMap == nil || !m.ReadOnly || m.SubPath != "" {
		t.Errorf("--verify-key: volume %+v mounted %+v, want a ConfigMap, whole and read-only", v, m)
	} else {
		cm, ok := find[*corev1.ConfigMap](r)[v.ConfigMap.Name]
		path, _ := flagValue(c.Args, "verify-key")
		if !ok {
			t.Errorf("--verify-key: ConfigMap %s is not in the rendering", v.ConfigMap.Name)
		} else if _, has := cm.Data[strings.TrimPrefix(path, m.MountPath+"/")]; !has {
			t.Errorf("--verify-key=%s is not a file of ConfigMap %s", path, v.ConfigMap.Name)
		}
	}
	if _, v := mountOf("cache-dir"); v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil {
		t.Errorf("--cache-dir: volume %+v, want an emptyDir with a size limit", v)
	}
	p := c.StartupProbe
	if p == nil || time.Duration(p.PeriodSeconds*p.FailureThreshold)*time.Second < 30*time.Second {
		t.Errorf("startup probe %+v: want at least the reload timeout (30s) for the first pull", p)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestService checks the runbook's URL,
// http://flex-auth.flex-auth.svc.cluster.local:8080: Service flex-auth in
// namespace flex-auth, port 8080, to the pods' serving port.
func TestService(t *testing.T) {
	for _, r := range renderings(t) {
		svc := one[*corev1.Service](t, r, "flex-auth")
		d := one[*appsv1.Deployment](t, r, "flex-auth")
		if svc.Namespace != namespace || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 ||
			svc.Spec.Ports[0].TargetPort.String() != d.Spec.Template.Spec.Containers[0].Ports[0].Name {
			t.Errorf("deploy/%s: Service %s/%s ports %+v, want 8080 to the container's port", r.dir, svc.Namespace, svc.Name, svc.Spec.Ports)
		}
		if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("deploy/%s: Service selector %v does not select the pods %v", r.dir, svc.Spec.Selector, d.Spec.Template.Labels)
		}
		pdb := one[*policyv1.PodDisruptionBudget](t, r, "flex-auth")
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 || !selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("deploy/%s: PodDisruptionBudget %+v, want minAvailable 2 of the flex-auth pods", r.dir, pdb.Spec)
		}
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestNetworkPolicy checks that every NetworkPolicy on the flex-auth pods
// admits ingress on 8080 only, and only from selected namespaces.
func TestNetworkPolicy(t *testing.T) {
	for _, r := range renderings(t) {
		d := one[*appsv1.Deployment](t, r, "flex-auth")
		one[*networkingv1.NetworkPolicy](t, r, "flex-auth")
		for name, np := range find[*networkingv1.NetworkPolicy](r) {
			if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("deploy/%s: NetworkPolicy %s does not select the flex-auth pods", r.dir, name)
			}
			if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
				t.Errorf("deploy/%s: NetworkPolicy %s policy types %v, want [Ingress]", r.dir, name, np.Spec.PolicyTypes)
			}
			for _, rule := range np.Spec.Ingress {
				if len(rule.Ports) != 1 || rule.Ports[0].Port == nil || rule.Ports[0].Port.IntValue() != 8080 {
					t.Errorf("deploy/%s: NetworkPolicy %s admits ports %+v, want 8080 only", r.dir, name, rule.Ports)
				}
				if len(rule.From) == 0 {
					t.Errorf("deploy/%s: NetworkPolicy %s admits every source", r.dir, name)
				}
				for _, from := range rule.From {
					if from.NamespaceSelector == nil || len(from.NamespaceSelector.MatchLabels) == 0 || from.IPBlock != nil {
						t.Errorf("deploy/%s: NetworkPolicy %s admits %+v, want namespaces a label selects", r.dir, name, from)
					}
				}
			}
		}
	}
}
