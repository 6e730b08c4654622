package remotecache

import (
	"fmt"

	"github.com/containerd/errdefs"
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
)

// String returns the name the command line uses for f.
func (f ManifestFormat) String() string {
	switch f {
	case FormatImageManifest:
		return "image-manifest"
	case FormatOCIIndex:
		return "oci-index"
	case FormatManifestList:
		return "manifest-list"
	default:
		return fmt.Sprintf("ManifestFormat(%d)", int(f))
	}
}

// ParseManifestFormat parses the name String returns.
func ParseManifestFormat(s string) (ManifestFormat, error) {
	for _, f := range []ManifestFormat{FormatImageManifest, FormatOCIIndex, FormatManifestList} {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, errors.Wrapf(errdefs.ErrInvalidArgument, "unknown manifest format %q (want image-manifest, oci-index or manifest-list)", s)
}

type exportOptions struct {
	format      ManifestFormat
	concurrency int
	progress    ProgressSink
	ref         string
}

// ExportOption configures NewExporter.
type ExportOption func(*exportOptions) error

// WithManifestFormat sets the manifest form. Default: FormatImageManifest.
func WithManifestFormat(f ManifestFormat) ExportOption {
	return func(o *exportOptions) error {
		switch f {
		case FormatImageManifest, FormatOCIIndex, FormatManifestList:
			o.format = f
			return nil
		}
		return errors.Wrapf(errdefs.ErrInvalidArgument, "unknown manifest format %d", int(f))
	}
}

// WithConcurrency sets how many layer blobs are copied at once. Default: 4;
// n must be at least 1.
func WithConcurrency(n int) ExportOption {
	return func(o *exportOptions) error {
		if n < 1 {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "concurrency %d: must be at least 1", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithProgress sets the sink that receives progress events. Default: none.
// The sink never slows the copy down (see ProgressSink); Finalize returns
// once the sink has been given the last event, or when its context is done.
func WithProgress(sink ProgressSink) ExportOption {
	return func(o *exportOptions) error {
		o.progress = sink
		return nil
	}
}

// WithRef sets the prefix of the ingest refs the exporter writes under, so
// that concurrent exports into one store keep apart. Default: "remotecache-".
func WithRef(prefix string) ExportOption {
	return func(o *exportOptions) error {
		o.ref = prefix
		return nil
	}
}
