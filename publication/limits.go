package publication

import (
	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/sshsig"
)

// Size caps on what flex-auth fetches from a registry, an HTTP(S) URL or
// its cache: the largest of each part it reads. A part over its cap is
// refused before it is read (by its descriptor's size, or its
// Content-Length) or as soon as it passes the cap, never buffered whole.
// They are in this one place, with those of the files flex-auth reads
// (internal/readfile) for the parts that are files too; docs/operating.md
// lists them.
const (
	// MaxRegistryBytes caps a registry snapshot: readfile's cap, 64 MiB,
	// the same for a file, an answer and a layer.
	MaxRegistryBytes = readfile.MaxRegistryBytes
	// MaxPolicyBytes caps a policy package: readfile's cap, 4 MiB (the
	// ops-warden package is 5 KB).
	MaxPolicyBytes = readfile.MaxPolicyBytes
	// MaxManifestBytes caps a publication's OCI manifest: 64 KiB (one is
	// about 1.5 KB).
	MaxManifestBytes = 64 << 10
	// MaxStatementBytes caps a statement: 4 KiB (one is about 350 bytes).
	MaxStatementBytes = 4 << 10
	// MaxSignatureBytes caps an armored SSH signature: 16 KiB (an
	// RSA-16384 one is under 3 KB).
	MaxSignatureBytes = sshsig.MaxSignatureBytes
)

// maxLayerBytes returns the cap of a layer of mediaType, or 0 for a media
// type a publication does not have.
func maxLayerBytes(mediaType string) int64 {
	switch mediaType {
	case MediaTypeRegistry:
		return MaxRegistryBytes
	case MediaTypePolicy:
		return MaxPolicyBytes
	case MediaTypeStatement:
		return MaxStatementBytes
	case MediaTypeSignature:
		return MaxSignatureBytes
	}
	return 0
}
