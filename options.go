package remotecache

import (
	"math"

	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/option"
)

type exportOptions struct {
	format      ManifestFormat
	concurrency int
	progress    ProgressSink
	ref         string
	compression *CompressionConfig
	spoolDir    string
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

// DefaultConcurrency is how many layer blobs Finalize copies at once when
// neither WithConcurrency nor its stores say otherwise (see
// ConcurrencyAdvisor).
const DefaultConcurrency = 4

// WithConcurrency sets how many layer blobs are copied at once. Default:
// the largest of DefaultConcurrency (4) and what the ingester and the
// providers of the blobs advise (ConcurrencyAdvisor); n must be at least 1.
func WithConcurrency(n int) ExportOption {
	return option.InRange(n, 1, math.MaxInt, "concurrency", "at least 1", func(o *exportOptions, n int) { o.concurrency = n })
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

// WithCompression converts layer blobs to c's compression as they are
// exported, as BuildKit's compression, compression-level and
// force-compression attributes do. Default: none, blobs are copied as they
// are. c is checked here (CompressionConfig says what it takes).
//
// A layer of another compression is converted; with c.Force, one of the
// same compression is recompressed at c's level. Non-distributable
// (foreign) layers, eStargz layers and blobs of types that are not layers
// are copied as they are. Each distinct blob is converted once,
// decompressed and compressed again as a stream, at most WithConcurrency
// blobs at once, into a spool file (WithSpoolDir), and every conversion is
// done before the first write: a blob whose bytes do not match its digest,
// whose stream is corrupt or whose uncompressed bytes do not have the
// diffID of its containerd.io/uncompressed annotation fails Finalize,
// naming the blob (class errdefs.ErrFailedPrecondition), and nothing is
// written. A blob without that annotation gets the diffID computed.
//
// The converted blob gets its digest, size, the OCI media type of c's
// compression (the manifest list form writes the Docker twin) and the
// diffID annotation; the source's other annotations are kept but the
// containerd.io/distribution.source ones, which name repositories that
// have the old blob. The results of the graph then name the new blobs,
// and the config and manifest are what the graph would give had its
// results had them. The same blob, compression and level always give the
// same bytes, so exporting a converted cache again writes nothing new.
func WithCompression(c CompressionConfig) ExportOption {
	return func(o *exportOptions) error {
		if err := c.validate(); err != nil {
			return err
		}
		if c.Level != nil {
			l := *c.Level
			c.Level = &l
		}
		o.compression = &c
		return nil
	}
}

// WithSpoolDir sets the directory where WithCompression keeps converted
// blobs, one file per blob, from their conversion until Finalize has
// written them; Finalize removes them before it returns. It needs room for
// every converted blob at once. Default: os.TempDir().
func WithSpoolDir(dir string) ExportOption {
	return func(o *exportOptions) error {
		if dir == "" {
			return errors.Wrap(errdefs.ErrInvalidArgument, "spool directory: empty path")
		}
		o.spoolDir = dir
		return nil
	}
}
