package remotecache

import (
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// ManifestFormat is the form of the manifest that points at the cache.
type ManifestFormat int

const (
	// FormatImageManifest is an OCI image manifest whose config is the cache
	// config and whose layers are the layer blobs. The default, and the only
	// form that ECR, GAR, Quay and Harbor accept.
	FormatImageManifest ManifestFormat = iota
	// FormatOCIIndex is an OCI image index listing the layers, then the
	// cache config.
	FormatOCIIndex
	// FormatManifestList is a Docker manifest list like FormatOCIIndex,
	// with layer media types in their Docker form.
	FormatManifestList
	// FormatConfigOnly writes no manifest: the cache config is the last
	// blob written, and each of its layers carries LayerAnnotations
	// (media type, diffID, size, createdAt) so that the layer descriptors
	// can be rebuilt from the config alone. It is the form of BuildKit's
	// object store caches (type=s3, type=azblob, type=gha), whose stores
	// keep no descriptor beside a blob. Every layer must have a diffID
	// (the containerd.io/uncompressed annotation).
	FormatConfigOnly
)

// formats lists every ManifestFormat.
var formats = []ManifestFormat{FormatImageManifest, FormatOCIIndex, FormatManifestList, FormatConfigOnly}

// valid tells whether f is one of the formats.
func (f ManifestFormat) valid() bool { return f >= FormatImageManifest && f <= FormatConfigOnly }

// String returns the name the command line uses for f.
func (f ManifestFormat) String() string {
	switch f {
	case FormatImageManifest:
		return "image-manifest"
	case FormatOCIIndex:
		return "oci-index"
	case FormatManifestList:
		return "manifest-list"
	case FormatConfigOnly:
		return "config-only"
	default:
		return fmt.Sprintf("ManifestFormat(%d)", int(f))
	}
}

// ParseManifestFormat parses the name String returns.
func ParseManifestFormat(s string) (ManifestFormat, error) {
	return parseName(formats, s, "manifest format", "image-manifest, oci-index, manifest-list or config-only")
}

// parseName returns the one of all whose String is s. Any other s is an
// errdefs.ErrInvalidArgument error that says what it is not and the names
// wanted.
func parseName[T fmt.Stringer](all []T, s, what, want string) (T, error) {
	for _, v := range all {
		if v.String() == s {
			return v, nil
		}
	}
	var zero T
	return zero, errors.Wrapf(errdefs.ErrInvalidArgument, "unknown %s %q (want %s)", what, s, want)
}

// Manifest is a cache manifest read from a store: its form, the cache
// config it names and the layer blobs it lists.
type Manifest struct {
	Descriptor ocispec.Descriptor
	Format     ManifestFormat
	Config     ocispec.Descriptor
	Layers     []ocispec.Descriptor
}

// BlobSizes returns the size of each layer blob that m lists: the sizes
// Trim and Diff take.
func (m *Manifest) BlobSizes() map[digest.Digest]int64 {
	sizes := make(map[digest.Digest]int64, len(m.Layers))
	for _, l := range m.Layers {
		sizes[l.Digest] = l.Size
	}
	return sizes
}

// Descriptors returns the layer descriptors that m lists, each read from
// provider: what Parse and ParseConfig take for the config m names, as
// Import builds it.
func (m *Manifest) Descriptors(provider content.Provider) DescriptorProvider {
	dp := make(DescriptorProvider, len(m.Layers))
	for _, l := range m.Layers {
		dp[l.Digest] = DescriptorProviderPair{Descriptor: l, Provider: provider}
	}
	return dp
}

// manifestBlob has the fields of all three manifest forms. Pointers tell an
// absent field from an empty one.
type manifestBlob struct {
	MediaType string                `json:"mediaType"`
	Config    *ocispec.Descriptor   `json:"config"`
	Layers    *[]ocispec.Descriptor `json:"layers"`
	Manifests *[]ocispec.Descriptor `json:"manifests"`
}

// looksLikeConfig tells whether dt is a cache config rather than a
// manifest: an object with no mediaType, config or manifests field, but
// records. (A manifest never has records; a config never has a mediaType.)
func looksLikeConfig(dt []byte) bool {
	var probe struct {
		MediaType *string         `json:"mediaType"`
		Config    json.RawMessage `json:"config"`
		Manifests json.RawMessage `json:"manifests"`
		Records   json.RawMessage `json:"records"`
	}
	if json.Unmarshal(dt, &probe) != nil {
		return false
	}
	return probe.MediaType == nil && probe.Config == nil && probe.Manifests == nil && probe.Records != nil
}

// parseManifest finds the form, the cache config and the layers of a
// manifest of any form. The form is told by the blob's mediaType field and
// checked against its shape; without a mediaType, the shape decides. The
// Manifest's Descriptor is left for the caller to fill in.
func parseManifest(dt []byte) (*Manifest, error) {
	var mb manifestBlob
	if err := json.Unmarshal(dt, &mb); err != nil {
		return nil, invalidf(err, "malformed JSON")
	}
	manifestShaped := mb.Config != nil || mb.Layers != nil
	indexShaped := mb.Manifests != nil
	if manifestShaped && indexShaped {
		return nil, errors.Wrap(errdefs.ErrInvalidArgument, "has both config or layers (of a manifest) and manifests (of an index)")
	}
	var isIndex bool
	switch mb.MediaType {
	case ocispec.MediaTypeImageManifest, images.MediaTypeDockerSchema2Manifest:
		if indexShaped {
			return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "media type %s, but manifests (of an index)", mb.MediaType)
		}
	case ocispec.MediaTypeImageIndex, images.MediaTypeDockerSchema2ManifestList:
		if manifestShaped {
			return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "media type %s, but config or layers (of a manifest)", mb.MediaType)
		}
		isIndex = true
	case "":
		if !manifestShaped && !indexShaped {
			return nil, errors.Wrap(errdefs.ErrInvalidArgument, "unknown manifest form: no mediaType, config, layers or manifests")
		}
		isIndex = indexShaped
	default:
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "unknown manifest media type %q", mb.MediaType)
	}

	var (
		config ocispec.Descriptor
		layers []ocispec.Descriptor
	)
	if isIndex {
		configAt := -1
		if mb.Manifests != nil {
			for i, d := range *mb.Manifests {
				if d.MediaType != CacheConfigMediaTypeV0 {
					continue
				}
				if configAt >= 0 {
					return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "manifests %d and %d are both cache configs", configAt, i)
				}
				configAt = i
			}
			if configAt >= 0 {
				ms := *mb.Manifests
				config = ms[configAt]
				layers = make([]ocispec.Descriptor, 0, len(ms)-1)
				layers = append(append(layers, ms[:configAt]...), ms[configAt+1:]...)
			}
		}
		if configAt < 0 {
			return nil, errors.Wrapf(errdefs.ErrNotFound, "no manifest of media type %s: missing cache config", CacheConfigMediaTypeV0)
		}
	} else {
		if mb.Config == nil || (mb.Config.Digest == "" && mb.Config.MediaType == "") {
			return nil, errors.Wrap(errdefs.ErrNotFound, "no config: missing cache config")
		}
		config = *mb.Config
		if config.MediaType != CacheConfigMediaTypeV0 {
			return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "config %s has media type %q, want %s", config.Digest, config.MediaType, CacheConfigMediaTypeV0)
		}
		if mb.Layers != nil {
			layers = *mb.Layers
		}
	}
	for i, l := range layers {
		if err := l.Digest.Validate(); err != nil {
			return nil, invalidf(err, "layer %d: digest %q", i, l.Digest)
		}
		if l.Size < 0 {
			return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "layer %d (%s): negative size %d", i, l.Digest, l.Size)
		}
	}
	m := &Manifest{Format: FormatImageManifest, Config: config, Layers: layers}
	switch {
	case mb.MediaType == images.MediaTypeDockerSchema2ManifestList:
		m.Format = FormatManifestList
	case isIndex:
		m.Format = FormatOCIIndex
	}
	return m, nil
}

// manifest encodes the manifest of the given form.
func (f ManifestFormat) manifest(layers []ocispec.Descriptor, config ocispec.Descriptor) ([]byte, string, error) {
	convert := func(oci bool) []ocispec.Descriptor {
		out := make([]ocispec.Descriptor, len(layers), len(layers)+1)
		for i, d := range layers {
			d.MediaType = convertLayerMediaType(d.MediaType, oci)
			out[i] = d
		}
		return out
	}
	var (
		v   any
		typ string
	)
	switch f {
	case FormatImageManifest:
		typ = ocispec.MediaTypeImageManifest
		v = ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: typ, Config: config, Layers: convert(true)}
	case FormatOCIIndex:
		typ = ocispec.MediaTypeImageIndex
		v = ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: typ, Manifests: append(convert(true), config)}
	case FormatManifestList:
		typ = images.MediaTypeDockerSchema2ManifestList
		v = ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: typ, Manifests: append(convert(false), config)}
	default:
		return nil, "", errors.Wrapf(errdefs.ErrInvalidArgument, "unknown manifest format %d", int(f))
	}
	dt, err := json.Marshal(v)
	if err != nil {
		return nil, "", errors.Wrap(err, "encoding manifest")
	}
	return dt, typ, nil
}
