package remotecache

import (
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"
)

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
		if !f.valid() {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "unknown manifest format %d", int(f))
		}
		o.format = f
		return nil
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
