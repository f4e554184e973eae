package publication

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseManifest feeds parseManifest arbitrary manifests, as a
// registry may serve them: it never panics, and what it accepts has the
// three layers a publication needs, within their caps.
func FuzzParseManifest(f *testing.F) {
	d := "sha256:" + strings.Repeat("a", 64)
	layer := func(mt string, size int) string {
		return `{"mediaType":"` + mt + `","digest":"` + d + `","size":` + strconv.Itoa(size) + `}`
	}
	good := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"` + ArtifactType + `",` +
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + d + `","size":2},"layers":[` +
		layer(MediaTypeRegistry, 100) + "," + layer(MediaTypePolicy, 10) + "," + layer(MediaTypeStatement, 300) + "," + layer(MediaTypeSignature, 200) + `]}`
	f.Add([]byte(good))
	f.Add([]byte(strings.Replace(good, "100", "99999999999", 1)))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, l, err := parseManifest(data)
		if err != nil {
			if !IsInvalid(err) {
				t.Errorf("error %v is not an InvalidError", err)
			}
			return
		}
		if l.registry.Size > MaxRegistryBytes || l.policy.Size > MaxPolicyBytes || l.statement.Size > MaxStatementBytes ||
			l.registry.MediaType != MediaTypeRegistry || l.policy.MediaType != MediaTypePolicy || l.statement.MediaType != MediaTypeStatement {
			t.Errorf("accepted layers %+v", l)
		}
	})
}
