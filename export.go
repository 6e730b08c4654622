package remotecache

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
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
	// nothing and returns a map without that key.
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

// ConcurrencyAdvisor is implemented by stores that are best written to or
// read from with more blobs in flight than DefaultConcurrency: a registry,
// where each blob costs round trips that only concurrency hides. Unless
// WithConcurrency says how many, Finalize copies as many layers at once as
// the largest of DefaultConcurrency and the advice of its ingester and of
// the providers of the blobs it copies.
type ConcurrencyAdvisor interface {
	AdvisedConcurrency() int
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
	o := exportOptions{format: FormatImageManifest, ref: "remotecache-"}
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
	for pass := 1; ; pass++ {
		var err error
		config, descs, err = e.Marshal(ctx)
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
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.concurrency(descs))
	for _, desc := range todo {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			st := pr.start("writing layer "+desc.Digest.String()+suffix, desc.Size)
			err := e.writeBlob(gctx, st, kindLayer, desc, descs[desc.Digest])
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
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(missing)
	return missing, nil
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

// rewriteMissing asks the ingester, if it can say, for every blob the
// manifest names, and writes again those it no longer has. It tells
// whether it wrote any; a check that fails is no answer.
func (e *exporter) rewriteMissing(ctx context.Context, pr *progress, layers []ocispec.Descriptor, descs DescriptorProvider, configDesc ocispec.Descriptor, configJSON []byte) (bool, error) {
	ip, ok := e.ingester.(content.InfoProvider)
	if !ok {
		return false, nil
	}
	all := append(slices.Clone(layers), configDesc)
	gone := make([]bool, len(all))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.concurrency(descs))
	for i, d := range all {
		g.Go(func() error {
			if _, err := ip.Info(gctx, d.Digest); errdefs.IsNotFound(err) {
				gone[i] = true
			}
			return nil
		})
	}
	g.Wait()
	var missingLayers []ocispec.Descriptor
	configGone := false
	for i, d := range all {
		switch {
		case !gone[i]:
		case i == len(all)-1:
			configGone = true
		default:
			missingLayers = append(missingLayers, d)
		}
	}
	if len(missingLayers) == 0 && !configGone {
		return false, nil
	}
	missing, err := e.writeLayers(ctx, pr, missingLayers, descs, map[digest.Digest]bool{}, " again")
	if err != nil {
		return false, err
	}
	if len(missing) > 0 {
		return false, errors.Wrapf(errdefs.ErrNotFound, "writing layer %s again: not found in its source", missing[0])
	}
	if configGone {
		st := pr.start("writing config "+configDesc.Digest.String()+" again", configDesc.Size)
		if err := st.done(errors.Wrapf(e.writeBlob(ctx, st, kindConfig, configDesc, bytesProvider(configJSON)), "writing config %s again", configDesc.Digest)); err != nil {
			return false, err
		}
	}
	return true, nil
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
	w, err := content.OpenWriter(ctx, e.ingester, content.WithRef(ref), content.WithDescriptor(withSources(ctx, desc, provider)))
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			st.e.Skipped = true
			var sd SkipDetailer
			if errors.As(err, &sd) {
				st.e.Detail = sd.SkipDetail()
			}
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
		if errdefs.IsNotFound(err) {
			return &sourceMissingError{err: err}
		}
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

// sourceMissingError is the failure of a copy whose provider said, when
// the blob was read, that it does not have it.
type sourceMissingError struct{ err error }

func (e *sourceMissingError) Error() string { return e.err.Error() }
func (e *sourceMissingError) Unwrap() error { return e.err }

// SkipDetailer is implemented by the errors of class
// errdefs.ErrAlreadyExists with which an ingester's Writer says how the
// store came by a blob without it being sent: a registry.Remote that
// mounted it from another repository of its registry says "mounted from
// HOST/REPO". Finalize reports it as the skipped step's Event.Detail.
type SkipDetailer interface {
	SkipDetail() string
}

// distributionSource begins the key of the label (of content stores) and
// annotation (of descriptors) that names the repositories of a registry a
// blob is in: containerd.io/distribution.source.<host> = REPO[,REPO…], as
// containerd labels the blobs it pulls and BuildKit annotates the layers of
// lazily pulled images.
const distributionSource = "containerd.io/distribution.source."

// withSources returns desc with the distribution source labels that its
// provider's Info gives added to its annotations, for the ingester's
// Writer only (the manifest keeps desc as it is): a registry ingester
// mounts a blob that another repository of the same registry has instead
// of having it uploaded. A provider that cannot say adds nothing.
func withSources(ctx context.Context, desc ocispec.Descriptor, provider content.Provider) ocispec.Descriptor {
	ip, ok := provider.(content.InfoProvider)
	if !ok {
		return desc
	}
	info, err := ip.Info(ctx, desc.Digest)
	if err != nil {
		return desc
	}
	var added map[string]string
	for k, v := range info.Labels {
		if !strings.HasPrefix(k, distributionSource) || v == "" {
			continue
		}
		if added == nil {
			added = make(map[string]string, len(desc.Annotations)+1)
			for ak, av := range desc.Annotations {
				added[ak] = av
			}
		}
		added[k] = joinRepos(added[k], v)
	}
	if added != nil {
		desc.Annotations = added
	}
	return desc
}

// joinRepos joins two comma-separated lists of repositories, each once.
func joinRepos(a, b string) string {
	if a == "" {
		return b
	}
	repos := strings.Split(a, ",")
	for _, r := range strings.Split(b, ",") {
		if !slices.Contains(repos, r) {
			repos = append(repos, r)
		}
	}
	return strings.Join(repos, ",")
}

// configProvider serves the config from memory. Its Info is the Info of
// the provider of the first layer, which has the same config when the
// export is a copy: its distribution source labels let a registry
// ingester mount the config too (see withSources).
type configProvider struct {
	data   []byte
	source content.Provider
}

func (p configProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	return bytesProvider(p.data).ReaderAt(ctx, desc)
}

func (p configProvider) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if ip, ok := p.source.(content.InfoProvider); ok {
		return ip.Info(ctx, dgst)
	}
	return content.Info{}, errors.Wrapf(errdefs.ErrNotImplemented, "blob %s", dgst)
}

// leafProvider returns the provider that p, a DescriptorProvider or
// DescriptorProviderPair (as Marshal and Import give), reads dgst from.
func leafProvider(p content.Provider, dgst digest.Digest) content.Provider {
	for range 8 { // each step goes one wrapper in; none nests deeper
		switch v := p.(type) {
		case DescriptorProvider:
			pair, ok := v[dgst]
			if !ok {
				return p
			}
			p = pair.Provider
		case DescriptorProviderPair:
			p = v.Provider
		default:
			return p
		}
	}
	return p
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
