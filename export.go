package remotecache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
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

// ManifestTagger is implemented by ingesters for which writing a manifest
// is what points a tag at it (a registry repository with a tag). Finalize
// then always writes the manifest, even when Info finds it already there,
// and leaves it to the ingester to answer errdefs.ErrAlreadyExists when
// the tag already points at it.
type ManifestTagger interface {
	TagsManifests() bool
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
	o := exportOptions{format: FormatImageManifest, concurrency: 4, ref: "remotecache-", spoolDir: os.TempDir()}
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
	config, descs, err := e.Marshal(ctx)
	if err != nil {
		return nil, err
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

	// Each blob once, in the order of the config's layers.
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
	configOnly := e.opts.format == FormatConfigOnly
	if configOnly {
		// Checked before anything is written: a layer without a diffID
		// would make a config that BuildKit's importer refuses.
		if err := annotateLayers(config, descs); err != nil {
			return nil, err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.concurrency)
	for _, desc := range layers {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			st := pr.start("writing layer "+desc.Digest.String(), desc.Size)
			err := e.writeBlob(gctx, st, kindLayer, desc, descs[desc.Digest])
			return st.done(errors.Wrapf(err, "writing layer %s", desc.Digest))
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

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
	if err := st.done(errors.Wrapf(e.writeBlob(ctx, st, kind, configDesc, bytesProvider(dt)), "writing config %s", configDesc.Digest)); err != nil {
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
	if err := st.done(errors.Wrapf(e.writeBlob(ctx, st, kindManifest, mdesc, bytesProvider(mdt)), "writing manifest %s", mdesc.Digest)); err != nil {
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

// writeBlob copies desc from provider into the ingester, verifying size and
// digest on the way. A blob the store has is skipped, but for a manifest
// written to a ManifestTagger: that write is what moves the tag. On any
// failure the ingest is aborted so no partial blob is left behind.
func (e *exporter) writeBlob(ctx context.Context, st *step, kind blobKind, desc ocispec.Descriptor, provider content.Provider) error {
	if err := desc.Digest.Validate(); err != nil {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "digest %q: %v", desc.Digest, err)
	}
	ip, ok := e.ingester.(content.InfoProvider)
	if kind == kindManifest && e.movesTags() {
		ok = false
	}
	if ok {
		if info, err := ip.Info(ctx, desc.Digest); err == nil && info.Size == desc.Size {
			st.e.Skipped = true
			return nil
		}
	}
	ref := e.opts.ref + kind.refPrefix() + desc.Digest.String()
	w, err := content.OpenWriter(ctx, e.ingester, content.WithRef(ref), content.WithDescriptor(desc))
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			st.e.Skipped = true
			return nil
		}
		return err
	}
	// On any failure, copy or commit, the writer is closed and the ingest
	// aborted, so no partial blob and no open file is left behind.
	fail := func(err error) error {
		w.Close()
		if m, ok := e.ingester.(content.IngestManager); ok {
			m.Abort(context.WithoutCancel(ctx), ref)
		}
		return err
	}
	if err := e.copyBlob(ctx, st, w, desc, provider); err != nil {
		return fail(err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		if errdefs.IsAlreadyExists(err) {
			return nil
		}
		return fail(err)
	}
	return nil
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// copyBlob writes the bytes of desc into w, checking the context between
// chunks and the digest and size at the end, before anything is committed.
func (e *exporter) copyBlob(ctx context.Context, st *step, w content.Writer, desc ocispec.Descriptor, provider content.Provider) error {
	if provider == nil {
		return errors.Wrap(errdefs.ErrNotFound, "no provider")
	}
	if ws, err := w.Status(); err == nil && ws.Offset > 0 {
		// Start over rather than trust bytes an earlier attempt left.
		if err := w.Truncate(0); err != nil {
			return errors.Wrap(err, "truncating earlier ingest")
		}
	}
	ra, err := provider.ReaderAt(ctx, desc)
	if err != nil {
		return err
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "provider has %d bytes, descriptor says %d", ra.Size(), desc.Size)
	}
	// A writer that keeps a running digest (containerd's local store does:
	// before the first byte it gives the digest of nothing) is checked
	// through it; others get a digest of our own. Every byte is hashed
	// once, not twice.
	var verifier digest.Verifier
	if alg := desc.Digest.Algorithm(); !alg.Available() || runningDigest(w) != alg.FromBytes(nil) {
		verifier = desc.Digest.Verifier()
	}
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	buf := *bufp
	var off int64
	for off < desc.Size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(buf)), desc.Size-off)
		got, err := ra.ReadAt(buf[:n], off)
		if int64(got) < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return errors.Wrapf(err, "reading at offset %d", off+int64(got))
		}
		if verifier != nil {
			verifier.Write(buf[:n])
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		off += n
		st.update(off)
	}
	verified := false
	if verifier != nil {
		verified = verifier.Verified()
	} else {
		verified = runningDigest(w) == desc.Digest
	}
	if !verified {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "provider returned bytes that do not match digest %s", desc.Digest)
	}
	return nil
}

// runningDigest returns the digest of what w has been given so far, or ""
// if w does not keep one: content.Writer allows Digest to return "" or to
// panic before Commit.
func runningDigest(w content.Writer) (d digest.Digest) {
	defer func() {
		if recover() != nil {
			d = ""
		}
	}()
	return w.Digest()
}

// bytesProvider serves one in-memory blob.
type bytesProvider []byte

func (b bytesProvider) ReaderAt(context.Context, ocispec.Descriptor) (content.ReaderAt, error) {
	return nopCloserReaderAt{bytes.NewReader(b)}, nil
}

type nopCloserReaderAt struct{ *bytes.Reader }

func (nopCloserReaderAt) Close() error { return nil }

// Chains implements Exporter.
func (e *exporter) Chains() *CacheChains { return e.CacheChains }

// movesTags tells whether writing a manifest to the ingester moves a tag
// (ManifestTagger).
func (e *exporter) movesTags() bool {
	mt, ok := e.ingester.(ManifestTagger)
	return ok && mt.TagsManifests()
}
