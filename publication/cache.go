package publication

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/go-json-experiment/json"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/coulomb/flex-auth/internal/atomicfile"
	"github.com/coulomb/flex-auth/internal/readfile"
)

// A Cache keeps the last verified publication in a directory, as an OCI
// image layout (oci-layout, index.json, blobs/sha256/...), so that a
// replica that restarts while its source is down can serve it, and
// operators can read it with OCI tools (`oras pull --oci-layout DIR:current`).
//
// Every file is written atomically, blobs first and index.json last: a
// crash leaves the previous publication, or the new one, never a mix.
// Load verifies everything again, exactly as a pull does: the cache is a
// copy, not a trusted store.
type Cache struct {
	dir string
}

// cacheTag is the name the current publication has in the layout.
const cacheTag = "current"

// annotationSource records, in index.json, the reference the cached
// publication was pulled from.
const annotationSource = annotationPrefix + "source"

// ErrCacheEmpty reports a cache that holds no publication yet.
var ErrCacheEmpty = errors.New("no publication cached")

// OpenCache returns the cache in dir, creating the directory when it does
// not exist, and checks that it can be written.
func OpenCache(dir string) (*Cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-test*")
	if err != nil {
		return nil, fmt.Errorf("cache directory %s cannot be written: %w", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return &Cache{dir: dir}, nil
}

// Dir returns the cache's directory.
func (c *Cache) Dir() string { return c.dir }

func (c *Cache) blobPath(d digest.Digest) string {
	return filepath.Join(c.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// Save makes p, pulled from source, the cached publication, and removes
// the blobs of the one it replaces.
func (c *Cache) Save(source string, p *Publication) error {
	if p.Manifest == nil {
		return errors.New("cache: only a pulled publication can be cached")
	}
	_, l, err := parseManifest(p.Manifest)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	md := digest.Digest(p.ManifestDigest)
	blobs := []blob{
		{desc: ocispec.DescriptorEmptyJSON, data: ocispec.DescriptorEmptyJSON.Data},
		{desc: l.registry, data: p.Registry},
		{desc: l.policy, data: p.Policy},
		{desc: l.statement, data: p.StatementText},
		{desc: ocispec.Descriptor{Digest: md}, data: p.Manifest},
	}
	if l.signature != nil {
		blobs = append(blobs, blob{desc: *l.signature, data: p.Signature})
	}
	keep := map[string]bool{}
	for _, b := range blobs {
		path := c.blobPath(b.desc.Digest)
		keep[filepath.Base(path)] = true
		if _, err := os.Stat(path); err == nil {
			continue // content-addressed: what is there is this
		}
		if err := atomicfile.WriteFile(path, b.data, 0o644); err != nil {
			return fmt.Errorf("cache: write %s: %w", path, err)
		}
	}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType: ocispec.MediaTypeImageManifest, ArtifactType: ArtifactType, Digest: md, Size: int64(len(p.Manifest)),
			Annotations: map[string]string{ocispec.AnnotationRefName: cacheTag, annotationSource: source},
		}},
	}
	data, err := json.Marshal(index, json.Deterministic(true))
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(c.dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(c.dir, ocispec.ImageIndexFile), data, 0o644); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	// What the previous publication had and this one has not.
	entries, _ := os.ReadDir(filepath.Join(c.dir, "blobs", "sha256"))
	for _, e := range entries {
		if !keep[e.Name()] {
			os.Remove(filepath.Join(c.dir, "blobs", "sha256", e.Name()))
		}
	}
	return nil
}

// Load reads the cached publication and verifies it as a pull does. It
// must have been pulled from source: a cache left by another source is
// not used. A cache without a publication is ErrCacheEmpty.
func (c *Cache) Load(ctx context.Context, source string, opts VerifyOptions) (*Publication, error) {
	return c.load(ctx, source, opts)
}

// Peek reads and verifies the cached publication's manifest, statement
// and signature only, as Load does, and returns it without its policy
// and registry: what a replica needs to know of its cache while the
// registry answers.
func (c *Cache) Peek(ctx context.Context, source string, opts VerifyOptions) (*Publication, error) {
	opts.statementOnly = true
	return c.load(ctx, source, opts)
}

func (c *Cache) load(ctx context.Context, source string, opts VerifyOptions) (*Publication, error) {
	data, err := readfile.Read(filepath.Join(c.dir, ocispec.ImageIndexFile), readfile.Kind{Name: "OCI image index", Max: MaxManifestBytes})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrCacheEmpty
	}
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", c.dir, err)
	}
	var index ocispec.Index
	// Read strictly, as parseManifest reads a manifest.
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("cache %s: index.json: %w", c.dir, err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations[ocispec.AnnotationRefName] != cacheTag {
		return nil, fmt.Errorf("cache %s: index.json does not name one %q manifest", c.dir, cacheTag)
	}
	desc := index.Manifests[0]
	if from := desc.Annotations[annotationSource]; from != source {
		return nil, fmt.Errorf("cache %s holds a publication of %s, not of %s", c.dir, from, source)
	}
	if desc.Size > MaxManifestBytes {
		return nil, fmt.Errorf("cache %s: manifest of %d bytes; the limit is %d", c.dir, desc.Size, MaxManifestBytes)
	}
	manifest, err := c.get(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", c.dir, err)
	}
	p, err := open(ctx, string(desc.Digest), manifest, c.get, opts)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", c.dir, err)
	}
	return p, nil
}

// get reads a blob of the layout, checked against desc's size and digest.
func (c *Cache) get(_ context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, err
	}
	path := c.blobPath(desc.Digest)
	data, err := readfile.Read(path, readfile.Kind{Name: "cached blob", Max: desc.Size})
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != desc.Size || digest.FromBytes(data) != desc.Digest {
		return nil, fmt.Errorf("%s: not the blob %s of %d bytes: the file was changed", path, desc.Digest, desc.Size)
	}
	return data, nil
}
