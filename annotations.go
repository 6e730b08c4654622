package remotecache

import (
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Annotations of layer descriptors that the config-only form carries in
// LayerAnnotations.
const (
	// AnnotationUncompressed is the diffID of a layer: the digest of its
	// uncompressed bytes.
	AnnotationUncompressed = "containerd.io/uncompressed"
	// AnnotationCreatedAt is when BuildKit made a layer, in RFC 3339 form.
	AnnotationCreatedAt = "buildkit/createdat"
)

// annotateLayers gives every layer of cfg the LayerAnnotations of its
// blob's descriptor in descs, as BuildKit's object store exporters do: the
// media type, the diffID, the size and, when the descriptor has one, the
// creation time (UTC). A descriptor without a valid diffID is an error of
// class errdefs.ErrFailedPrecondition naming the blob.
func annotateLayers(cfg *CacheConfig, descs DescriptorProvider) error {
	byBlob := make(map[digest.Digest]*LayerAnnotations, len(descs))
	for i := range cfg.Layers {
		l := &cfg.Layers[i]
		if la, ok := byBlob[l.Blob]; ok {
			l.Annotations = la
			continue
		}
		pair, ok := descs[l.Blob]
		if !ok {
			return errors.Wrapf(errdefs.ErrInternal, "layer %s: no descriptor", l.Blob)
		}
		la, err := layerAnnotations(pair.Descriptor)
		if err != nil {
			return errors.Wrapf(err, "layer %s", l.Blob)
		}
		byBlob[l.Blob] = la
		l.Annotations = la
	}
	return nil
}

func layerAnnotations(d ocispec.Descriptor) (*LayerAnnotations, error) {
	v, ok := d.Annotations[AnnotationUncompressed]
	if !ok {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "no %s (diffID) annotation, which the config-only form needs", AnnotationUncompressed)
	}
	diffID, err := digest.Parse(v)
	if err != nil {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "%s annotation %q: %v", AnnotationUncompressed, v, err)
	}
	la := &LayerAnnotations{MediaType: d.MediaType, DiffID: diffID, Size: d.Size}
	if v, ok := d.Annotations[AnnotationCreatedAt]; ok {
		var t time.Time
		if err := t.UnmarshalText([]byte(v)); err != nil {
			return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "%s annotation %q: %v", AnnotationCreatedAt, v, err)
		}
		la.CreatedAt = t.UTC()
	}
	return la, nil
}

// configDescriptors rebuilds the layer descriptors of a config-only cache
// from its layers' annotations, each served by provider, as BuildKit's
// object store importers do. A layer without annotations, or without a
// valid diffID, is an error of class errdefs.ErrInvalidArgument naming it.
func configDescriptors(cfg *CacheConfig, provider content.Provider) (DescriptorProvider, []ocispec.Descriptor, error) {
	dp := make(DescriptorProvider, len(cfg.Layers))
	var layers []ocispec.Descriptor
	for i, l := range cfg.Layers {
		if _, ok := dp[l.Blob]; ok {
			continue
		}
		if err := validateDigest(l.Blob); err != nil {
			return nil, nil, invalidf(err, "layer %d: blob %q", i, l.Blob)
		}
		la := l.Annotations
		if la == nil {
			return nil, nil, errors.Wrapf(errdefs.ErrInvalidArgument, "layer %d (%s): no annotations, which a config-only cache needs", i, l.Blob)
		}
		if err := la.DiffID.Validate(); err != nil {
			return nil, nil, invalidf(err, "layer %d (%s): diffID %q", i, l.Blob, la.DiffID)
		}
		if la.Size < 0 {
			return nil, nil, errors.Wrapf(errdefs.ErrInvalidArgument, "layer %d (%s): negative size %d", i, l.Blob, la.Size)
		}
		d := ocispec.Descriptor{
			MediaType:   la.MediaType,
			Digest:      l.Blob,
			Size:        la.Size,
			Annotations: map[string]string{AnnotationUncompressed: la.DiffID.String()},
		}
		if !la.CreatedAt.IsZero() {
			txt, err := la.CreatedAt.MarshalText()
			if err != nil {
				return nil, nil, invalidf(err, "layer %d (%s): createdAt", i, l.Blob)
			}
			d.Annotations[AnnotationCreatedAt] = string(txt)
		}
		dp[l.Blob] = DescriptorProviderPair{Descriptor: d, Provider: provider}
		layers = append(layers, d)
	}
	return dp, layers, nil
}
