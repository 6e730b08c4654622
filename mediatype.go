package remotecache

import (
	"github.com/containerd/containerd/v2/core/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer media types and their twins, as BuildKit converts them: to OCI for
// OCI manifests and indexes, to Docker for Docker manifest lists. A type
// with no twin is kept as it is.
var (
	toOCILayerType = map[string]string{
		ocispec.MediaTypeImageLayer:                     ocispec.MediaTypeImageLayer,
		ocispec.MediaTypeImageLayerGzip:                 ocispec.MediaTypeImageLayerGzip,
		ocispec.MediaTypeImageLayerZstd:                 ocispec.MediaTypeImageLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributable:     ocispec.MediaTypeImageLayerNonDistributable,     //nolint:staticcheck // still read and written by BuildKit
		ocispec.MediaTypeImageLayerNonDistributableGzip: ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck
		ocispec.MediaTypeImageLayerNonDistributableZstd: ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		images.MediaTypeDockerSchema2Layer:              ocispec.MediaTypeImageLayer,
		images.MediaTypeDockerSchema2LayerGzip:          ocispec.MediaTypeImageLayerGzip,
		images.MediaTypeDockerSchema2LayerZstd:          ocispec.MediaTypeImageLayerZstd,
		images.MediaTypeDockerSchema2LayerForeign:       ocispec.MediaTypeImageLayerNonDistributable,     //nolint:staticcheck
		images.MediaTypeDockerSchema2LayerForeignGzip:   ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck
	}
	toDockerLayerType = map[string]string{
		ocispec.MediaTypeImageLayer:                     images.MediaTypeDockerSchema2Layer,
		ocispec.MediaTypeImageLayerGzip:                 images.MediaTypeDockerSchema2LayerGzip,
		ocispec.MediaTypeImageLayerZstd:                 images.MediaTypeDockerSchema2LayerZstd,
		ocispec.MediaTypeImageLayerNonDistributable:     images.MediaTypeDockerSchema2LayerForeign,     //nolint:staticcheck
		ocispec.MediaTypeImageLayerNonDistributableGzip: images.MediaTypeDockerSchema2LayerForeignGzip, //nolint:staticcheck
		images.MediaTypeDockerSchema2Layer:              images.MediaTypeDockerSchema2Layer,
		images.MediaTypeDockerSchema2LayerGzip:          images.MediaTypeDockerSchema2LayerGzip,
		images.MediaTypeDockerSchema2LayerZstd:          images.MediaTypeDockerSchema2LayerZstd,
		images.MediaTypeDockerSchema2LayerForeign:       images.MediaTypeDockerSchema2LayerForeign,
		images.MediaTypeDockerSchema2LayerForeignGzip:   images.MediaTypeDockerSchema2LayerForeignGzip,
	}
)

// convertLayerMediaType returns the twin of a layer media type in OCI form
// (oci) or Docker form, or mt itself when it has none.
func convertLayerMediaType(mt string, oci bool) string {
	table := toDockerLayerType
	if oci {
		table = toOCILayerType
	}
	if t, ok := table[mt]; ok {
		return t
	}
	return mt
}
