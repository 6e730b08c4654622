package remotecache

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"
)

// ExporterResponseManifestDesc is the key, in the map that Finalize returns,
// of the JSON of the manifest's descriptor: the descriptor Import reads the
// cache from. In the config-only form (FormatConfigOnly), which has no
// manifest, it is the cache config's descriptor.
const ExporterResponseManifestDesc = "cache.manifest"

// ResponseManifest decodes the descriptor that Finalize's response holds
// under ExporterResponseManifestDesc: the manifest's, or the config's in
// the config-only form. ok is false where the response has none (nothing
// was exported). A value that is not a descriptor's JSON, or whose digest
// is invalid or size negative, is an error of class
// errdefs.ErrInvalidArgument that names the key.
func ResponseManifest(resp map[string]string) (desc ocispec.Descriptor, ok bool, err error) {
	dt, ok := resp[ExporterResponseManifestDesc]
	if !ok {
		return ocispec.Descriptor{}, false, nil
	}
	if err := json.Unmarshal([]byte(dt), &desc); err != nil {
		return ocispec.Descriptor{}, true, invalidf(err, "Finalize's response %q: %q is not a descriptor's JSON", ExporterResponseManifestDesc, dt)
	}
	if err := desc.Digest.Validate(); err != nil {
		return ocispec.Descriptor{}, true, invalidf(err, "Finalize's response %q: %q: digest %q", ExporterResponseManifestDesc, dt, desc.Digest)
	}
	if desc.Size < 0 {
		return ocispec.Descriptor{}, true, errors.Wrapf(errdefs.ErrInvalidArgument, "Finalize's response %q: %q: size %d", ExporterResponseManifestDesc, dt, desc.Size)
	}
	return desc, true, nil
}

// maxConfigSize is the largest config BuildKit's importer accepts.
const maxConfigSize = 1 << 20

// Exporter collects a cache graph and writes it to a content store.
type Exporter interface {
	Target
	// Finalize writes every layer blob, then the cache config, then the
	// manifest, and returns the manifest's descriptor as JSON under
	// ExporterResponseManifestDesc. With no layers to export it writes
	// nothing and returns a map without that key. With WithCompression,
	// the layers are converted first, and what is written names the
	// converted blobs.
	Finalize(ctx context.Context) (map[string]string, error)
	// Chains returns the graph the exporter collects, for callers that
	// want to Marshal or inspect it.
	Chains() *CacheChains
}

// blobKind is what a blob is to the exporter: it names the blob's ingest
// ref and decides whether a write may be skipped.
type blobKind int

const (
	kindLayer blobKind = iota
	kindConfig
	kindManifest
)

// refPrefix is the part of the ingest ref that tells the kind.
func (k blobKind) refPrefix() string {
	switch k {
	case kindConfig:
		return "config-"
	case kindManifest:
		return "manifest-"
	default:
		return "layer-"
	}
}

// concurrency is how many layers Finalize copies at once (see
// ConcurrencyAdvisor).
func (e *exporter) concurrency(descs DescriptorProvider) int {
	if e.opts.concurrency > 0 {
		return e.opts.concurrency
	}
	n := DefaultConcurrency
	advise := func(x any) {
		if a, ok := x.(ConcurrencyAdvisor); ok {
			n = max(n, a.AdvisedConcurrency())
		}
	}
	advise(e.ingester)
	for d, pair := range descs {
		advise(leafProvider(pair, d))
	}
	return n
}

type exporter struct {
	*CacheChains
	ingester content.Ingester
	opts     exportOptions
}

// NewExporter returns an Exporter that writes into ingester. When the
// ingester also implements content.InfoProvider, blobs it already has are
// not written again; when it implements content.IngestManager, failed
// writes are aborted.
func NewExporter(ingester content.Ingester, opts ...ExportOption) (Exporter, error) {
	if ingester == nil {
		return nil, errors.Wrap(errdefs.ErrInvalidArgument, "new exporter: nil ingester")
	}
	o := exportOptions{format: FormatImageManifest, ref: "remotecache-", spoolDir: os.TempDir()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, errors.Wrap(err, "new exporter")
		}
	}
	return &exporter{CacheChains: NewCacheChains(), ingester: ingester, opts: o}, nil
}

// Finalize implements Exporter.
func (e *exporter) Finalize(ctx context.Context) (_ map[string]string, err error) {
	defer ensureClass(&err)
	pr := newProgress(e.opts.progress)
	res, err := e.finalize(ctx, pr)
	// Let the sink see the last events, but never wait past ctx for it.
	select {
	case <-pr.drained():
	case <-ctx.Done():
	}
	return res, err
}

func (e *exporter) finalize(ctx context.Context, pr *progress) (map[string]string, error) {
	var (
		config *CacheConfig
		descs  DescriptorProvider
		layers []ocispec.Descriptor
		// written are the layers in the store, copied or found there.
		written = map[digest.Digest]bool{}
		// gone are the blobs a provider said it does not have when they
		// were read, though Marshal found them available.
		gone []digest.Digest
	)
	prepared := e.prepare(ctx)
	for pass := 1; ; pass++ {
		var err error
		config, descs, err = e.Marshal(ctx)
		if err == nil && prepared != nil {
			err = <-prepared
			prepared = nil
		}
		if err != nil {
			return nil, err
		}
		for _, d := range gone {
			if _, ok := descs[d]; ok {
				// Its provider says both that it has it and that it has not:
				// the cache would name a blob the store lacks.
				return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "writing layer %s: its provider reports it available, but reading it found nothing", d)
			}
		}
		if len(config.Layers) == 0 {
			pr.start("skipping cache export for empty result", 0).skip()
			return map[string]string{}, nil
		}
		if e.opts.compression != nil {
			var cleanup func()
			config, descs, cleanup, err = e.convertLayers(ctx, pr, config, descs)
			if err != nil {
				return nil, err
			}
			defer cleanup()
		}
		layers, err = distinctLayers(config, descs)
		if err != nil {
			return nil, err
		}
		if e.opts.format == FormatConfigOnly {
			// Checked before anything is written: a layer without a diffID
			// would make a config that BuildKit's importer refuses.
			if err := annotateLayers(config, descs); err != nil {
				return nil, err
			}
		}
		missing, err := e.writeLayers(ctx, pr, layers, descs, written, "")
		if err != nil {
			return nil, err
		}
		if len(missing) == 0 {
			break
		}
		if pass == 2 {
			// Marshal's second pass names only blobs of its first.
			return nil, errors.Wrapf(errdefs.ErrInternal, "writing layer %s: not found when read, after the results that need the blobs found missing were dropped", missing[0])
		}
		// A blob the provider had said it had (a registry answers from the
		// manifest it read, without a request) is gone: Marshal again, which
		// asks the providers again and drops the results that need it, as
		// if it had been missing from the start.
		gone = missing
	}
	return e.writeConfigAndManifest(ctx, pr, config, descs, layers)
}

// prepare starts the ingester's PrepareExport, if it has one, and returns
// the channel its result comes on, or nil.
func (e *exporter) prepare(ctx context.Context) <-chan error {
	p, ok := e.ingester.(ExportPreparer)
	if !ok {
		return nil
	}
	ch := make(chan error, 1)
	go func() { ch <- errors.Wrap(p.PrepareExport(ctx), "preparing the export") }()
	return ch
}

// distinctLayers returns the descriptor of each blob of config once, in
// the order of the config's layers.
func distinctLayers(config *CacheConfig, descs DescriptorProvider) ([]ocispec.Descriptor, error) {
	layers := make([]ocispec.Descriptor, 0, len(descs))
	seen := make(map[digest.Digest]struct{}, len(descs))
	for _, l := range config.Layers {
		if _, ok := seen[l.Blob]; ok {
			continue
		}
		seen[l.Blob] = struct{}{}
		pair, ok := descs[l.Blob]
		if !ok {
			return nil, errors.Wrapf(errdefs.ErrInternal, "layer %s: no descriptor", l.Blob)
		}
		layers = append(layers, pair.Descriptor)
	}
	return layers, nil
}

// writeLayers copies the layers not yet written, concurrently, and marks
// them written. It returns the layers whose provider said, when they were
// read, that it does not have them: their steps complete as skipped, with
// a warning. Step ids end with suffix.
func (e *exporter) writeLayers(ctx context.Context, pr *progress, layers []ocispec.Descriptor, descs DescriptorProvider, written map[digest.Digest]bool, suffix string) ([]digest.Digest, error) {
	var (
		mu      sync.Mutex
		missing []digest.Digest
	)
	todo := make([]ocispec.Descriptor, 0, len(layers))
	for _, desc := range layers {
		if !written[desc.Digest] {
			todo = append(todo, desc)
		}
	}
	err := eachLimited(ctx, e.concurrency(descs), todo, func(ctx context.Context, desc ocispec.Descriptor) error {
		st := pr.start("writing layer "+desc.Digest.String()+suffix, desc.Size)
		err := e.writeBlob(ctx, st, kindLayer, desc, descs[desc.Digest])
		var sm *sourceMissingError
		if errors.As(err, &sm) {
			st.e.Skipped = true
			st.warn("not found in its source when read: the results that need it are dropped")
			st.done(nil)
			mu.Lock()
			missing = append(missing, desc.Digest)
			mu.Unlock()
			return nil
		}
		if err == nil {
			mu.Lock()
			written[desc.Digest] = true
			mu.Unlock()
		}
		return st.done(errors.Wrapf(err, "writing layer %s", desc.Digest))
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(missing)
	return missing, nil
}

// eachLimited runs do on each of items, at most limit at once, and starts
// none once one has failed. It returns the first error, else ctx's.
func eachLimited[T any](ctx context.Context, limit int, items []T, do func(ctx context.Context, item T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, it := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return do(gctx, it) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// writeConfigAndManifest writes the config, then the manifest, once every
// layer is in the store.
func (e *exporter) writeConfigAndManifest(ctx context.Context, pr *progress, config *CacheConfig, descs DescriptorProvider, layers []ocispec.Descriptor) (map[string]string, error) {
	configOnly := e.opts.format == FormatConfigOnly
	dt, err := json.Marshal(config)
	if err != nil {
		return nil, errors.Wrap(err, "encoding cache config")
	}
	configDesc := ocispec.Descriptor{
		MediaType: CacheConfigMediaTypeV0,
		Digest:    digest.FromBytes(dt),
		Size:      int64(len(dt)),
	}
	st := pr.start("writing config "+configDesc.Digest.String(), configDesc.Size)
	if len(dt) > maxConfigSize && !configOnly {
		st.warn(fmt.Sprintf("cache config is %d bytes; BuildKit's importer refuses configs over %d bytes", len(dt), maxConfigSize))
	}
	// In the config-only form the config is the last write, the one that
	// names the cache, as a manifest is in the others.
	kind := kindConfig
	if configOnly {
		kind = kindManifest
	}
	cp := configProvider{data: dt, source: leafProvider(descs[layers[0].Digest], layers[0].Digest)}
	if err := st.done(errors.Wrapf(e.writeBlob(ctx, st, kind, configDesc, cp), "writing config %s", configDesc.Digest)); err != nil {
		return nil, err
	}
	if configOnly {
		return descResponse(configDesc)
	}

	mdt, mediaType, err := e.opts.format.manifest(layers, configDesc)
	if err != nil {
		return nil, err
	}
	mdesc := ocispec.Descriptor{
		MediaType: mediaType,
		Digest:    digest.FromBytes(mdt),
		Size:      int64(len(mdt)),
	}
	st = pr.start("writing manifest "+mdesc.Digest.String(), mdesc.Size)
	err = e.writeBlob(ctx, st, kindManifest, mdesc, bytesProvider(mdt))
	if err != nil && ctx.Err() == nil {
		// The store may have lost a blob it said it had (a registry that
		// answered from the manifest at its tag, of which a blob was
		// deleted since, refuses the manifest for it): check every blob
		// again, write what is missing, and write the manifest once more.
		again, rerr := e.rewriteMissing(ctx, pr, layers, descs, configDesc, dt)
		switch {
		case rerr != nil:
			err = rerr
		case again:
			err = e.writeBlob(ctx, st, kindManifest, mdesc, bytesProvider(mdt))
		}
	}
	if err := st.done(errors.Wrapf(err, "writing manifest %s", mdesc.Digest)); err != nil {
		return nil, err
	}
	return descResponse(mdesc)
}

// descResponse is Finalize's response for the blob that names the cache.
func descResponse(desc ocispec.Descriptor) (map[string]string, error) {
	descJSON, err := json.Marshal(desc)
	if err != nil {
		return nil, errors.Wrap(err, "encoding manifest descriptor")
	}
	return map[string]string{ExporterResponseManifestDesc: string(descJSON)}, nil
}

// Chains implements Exporter.
func (e *exporter) Chains() *CacheChains { return e.CacheChains }

// movesTags tells whether writing a manifest to the ingester moves a tag
// (ManifestTagger).
func (e *exporter) movesTags() bool {
	mt, ok := e.ingester.(ManifestTagger)
	return ok && mt.TagsManifests()
}
