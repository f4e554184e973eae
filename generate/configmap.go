package generate

import (
	"fmt"
	"io"

	"github.com/coulomb/flex-auth/registry"
)

// Limits a snapshot meets when it is deployed in a Kubernetes ConfigMap
// (deploy/ mounts one): the API server refuses a ConfigMap whose data is
// larger than ConfigMapLimit, and any object whose annotations together
// are larger than AnnotationsLimit. Client-side `kubectl apply` keeps the
// whole object, as JSON, in its kubectl.kubernetes.io/last-applied-configuration
// annotation, so a ConfigMap applied that way holds less.
const (
	ConfigMapLimit   = 1 << 20   // 1 MiB, corev1.MaxSecretSize, applied to ConfigMaps too
	AnnotationsLimit = 256 << 10 // 256 KiB, TotalAnnotationSizeLimitB
)

// A Size is how large a snapshot is where a ConfigMap holds it.
type Size struct {
	// Bytes is the length of the canonical file: what the ConfigMap's
	// data holds.
	Bytes int64
	// Quoted is its length as a JSON string, escapes and quotes
	// included: what the last-applied-configuration annotation holds.
	Quoted int64
}

// Measure returns the size of s's canonical form, without holding it.
func Measure(s *registry.Snapshot) Size {
	var c sizeCounter
	s.WriteCanonical(&c) // a sizeCounter never fails
	return c.Size
}

// A sizeCounter counts what is written to it, as a file and as a JSON
// string (the escapes are encoding/json's, which kubectl uses: quote,
// backslash and the control characters, and <, > and & as \u00XX; a
// snapshot holds no other character that encoding/json escapes).
type sizeCounter struct{ Size }

func (c *sizeCounter) Write(p []byte) (int, error) {
	if c.Quoted == 0 {
		c.Quoted = 2 // the quotes
	}
	c.Bytes += int64(len(p))
	n := len(p)
	for _, b := range p {
		n += int(escapeExtra[b])
	}
	c.Quoted += int64(n)
	return len(p), nil
}

// escapeExtra is how many bytes encoding/json adds to each byte of a
// string: \" \\ \n \r \t, and \u00XX for the other control characters
// and for <, > and &.
var escapeExtra = func() (t [256]byte) {
	for b := range 0x20 {
		t[b] = 5
	}
	for _, b := range []byte{'<', '>', '&'} {
		t[b] = 5
	}
	for _, b := range []byte{'"', '\\', '\n', '\r', '\t'} {
		t[b] = 1
	}
	return t
}()

var _ io.Writer = (*sizeCounter)(nil)

// ConfigMapWarning returns what an operator should know about deploying a
// snapshot of size z from a ConfigMap, or "" when it fits. A policy
// package shares the ConfigMap, so a snapshot just under a limit may
// still not fit with it.
func (z Size) ConfigMapWarning() string {
	switch {
	case z.Bytes > ConfigMapLimit:
		return fmt.Sprintf("the snapshot is %s, more than a Kubernetes ConfigMap can hold (%s): "+
			"serve it from a source that is not a ConfigMap (see docs/operating.md)", kib(z.Bytes), kib(ConfigMapLimit))
	case z.Quoted > AnnotationsLimit:
		return fmt.Sprintf("the snapshot is %s (%s as JSON in kubectl's last-applied-configuration annotation, limited to %s): "+
			"client-side `kubectl apply` cannot apply a ConfigMap holding it; use `kubectl apply --server-side`, "+
			"or a source that is not a ConfigMap (see docs/operating.md)", kib(z.Bytes), kib(z.Quoted), kib(AnnotationsLimit))
	}
	return ""
}

// kib formats n bytes in KiB, rounded up, so that a size just over a limit
// never reads as the limit itself.
func kib(n int64) string {
	return fmt.Sprintf("%d KiB", (n+1023)/1024)
}
