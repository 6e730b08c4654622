// Package refchains is the collector of the root package (CacheChains, Add,
// Marshal) as it was at commit fc06627, before issue 15 changed its design:
// records linked by pointers, and a link that would close a cycle found by
// walking every descendant of the record (quadratic on some graphs).
//
// It is frozen, the oracle of TestSameGraphsAsReference (reference_test.go
// at the root), which checks that the collector makes exactly the graphs
// this one makes, byte for byte. Change it only to follow changes of the
// root package's API.
package refchains

import (
	"github.com/containerd/containerd/v2/core/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// toOCILayerType is the root package's table of layer media types to their
// OCI twins.
var toOCILayerType = map[string]string{
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

func convertLayerMediaType(mt string, _ bool) string {
	if t, ok := toOCILayerType[mt]; ok {
		return t
	}
	return mt
}
