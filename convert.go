package remotecache

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Annotations that mark a layer as one that conversion leaves alone, or
// that describe a compressed blob and so are dropped from a converted one.
const (
	// annotationStargzTOC marks an eStargz layer: a gzip stream with a
	// table of contents that a plain gzip reader would take for a file of
	// the layer. Such layers are copied as they are.
	annotationStargzTOC = "containerd.io/snapshot/stargz/toc.digest"
	// annotationDistributionSource names repositories that have the blob
	// (containerd.io/distribution.source.<registry>): they have the old
	// blob, not the converted one.
	annotationDistributionSource = "containerd.io/distribution.source."
)

// chunkSize is the size of the writes into an encoder. Fixed, so that the
// output is a function of the uncompressed bytes alone, whatever the source
// compression and its reader's read sizes (klauspost's gzip at level 0
// depends on write sizes).
const chunkSize = 1 << 20

// zstdMaxWindow is the largest window a zstd source may ask for: the zstd
// tool's default limit (--memory=128MB), far above what BuildKit writes.
const zstdMaxWindow = 1 << 27

// conversion is one layer blob converted into a spool file.
type conversion struct {
	src  ocispec.Descriptor
	desc ocispec.Descriptor // the converted blob
	path string             // its spool file
}

// spoolBlob serves a converted blob from its spool file.
type spoolBlob struct {
	path string
	size int64
}

// ReaderAt implements content.Provider.
func (s spoolBlob) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "blob %s: spool file: %v", desc.Digest, err)
	}
	return fileReaderAt{File: f, size: s.size}, nil
}

type fileReaderAt struct {
	*os.File
	size int64
}

func (f fileReaderAt) Size() int64 { return f.size }

// readerOnly hides a provider's Info: the graph rebuilt from converted
// blobs asks nothing again of a source Marshal has asked already.
type readerOnly struct{ p content.Provider }

func (r readerOnly) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if r.p == nil {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "blob %s: no provider", desc.Digest)
	}
	return r.p.ReaderAt(ctx, desc)
}

// needsConversion tells whether the layer d is converted under c: a layer
// (not a non-distributable one, not eStargz) of another compression, or of
// the same with Force (but an uncompressed one, which has nothing to
// recompress).
func (c CompressionConfig) needsConversion(d ocispec.Descriptor) (Compression, bool) {
	from, ok := layerCompression(d.MediaType)
	if !ok {
		return 0, false
	}
	if _, ok := d.Annotations[annotationStargzTOC]; ok {
		return 0, false
	}
	if from == c.Type && (!c.Force || from == CompressionUncompressed) {
		return 0, false
	}
	return from, true
}

// convertLayers converts every distinct layer blob of cfg that needs it
// (CompressionConfig.needsConversion) into a spool file, at most the
// export's concurrency at once, before anything is written; then it
// rebuilds the graph on the new blobs and marshals it again, so the config
// is the one the graph would give had its results had those blobs. It
// returns the new config and descriptors, and a function that removes the
// spool files, to be called once they have been written. On failure
// nothing is left behind.
func (e *exporter) convertLayers(ctx context.Context, pr *progress, cfg *CacheConfig, descs DescriptorProvider) (*CacheConfig, DescriptorProvider, func(), error) {
	c := *e.opts.compression
	var (
		todo []ocispec.Descriptor
		from = map[digest.Digest]Compression{}
	)
	for _, l := range cfg.Layers {
		if _, ok := from[l.Blob]; ok {
			continue
		}
		pair, ok := descs[l.Blob]
		if !ok {
			return nil, nil, nil, errors.Wrapf(errdefs.ErrInternal, "layer %s: no descriptor", l.Blob)
		}
		f, ok := c.needsConversion(pair.Descriptor)
		from[l.Blob] = f
		if ok {
			todo = append(todo, pair.Descriptor)
		}
	}
	if len(todo) == 0 {
		return cfg, descs, func() {}, nil
	}

	var (
		mu    sync.Mutex
		convs = make(map[digest.Digest]*conversion, len(todo))
	)
	cleanup := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, cv := range convs {
			os.Remove(cv.path)
		}
	}
	err := eachLimited(ctx, e.concurrency(descs), todo, func(ctx context.Context, d ocispec.Descriptor) error {
		st := pr.start("converting layer "+d.Digest.String(), d.Size)
		cv, err := e.convertBlob(ctx, st, c, from[d.Digest], d, descs[d.Digest])
		if err != nil {
			return st.done(errors.Wrapf(err, "converting layer %s", d.Digest))
		}
		mu.Lock()
		convs[d.Digest] = cv
		mu.Unlock()
		return st.done(nil)
	})
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	ncfg, ndescs, err := rebuild(ctx, cfg, descs, convs)
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	return ncfg, ndescs, cleanup, nil
}

// rebuild maps cfg's layers to the converted blobs and gives the config and
// descriptors that Marshal makes of that graph: layers and records sorted
// by the new digests, as they would be had the engine made those blobs.
// Each blob keeps the descriptor of its first layer in cfg's order (two
// sources can convert to one blob). Blobs not converted are read from
// their source, which is not asked for Info again.
func rebuild(ctx context.Context, cfg *CacheConfig, descs DescriptorProvider, convs map[digest.Digest]*conversion) (*CacheConfig, DescriptorProvider, error) {
	ncfg := &CacheConfig{Layers: make([]CacheLayer, len(cfg.Layers)), Records: cfg.Records}
	ndp := make(DescriptorProvider, len(descs))
	for i, l := range cfg.Layers {
		var pair DescriptorProviderPair
		if cv, ok := convs[l.Blob]; ok {
			pair = DescriptorProviderPair{Descriptor: cv.desc, Provider: spoolBlob{path: cv.path, size: cv.desc.Size}}
		} else {
			src := descs[l.Blob]
			pair = DescriptorProviderPair{Descriptor: src.Descriptor, Provider: readerOnly{src.Provider}}
		}
		l.Blob = pair.Descriptor.Digest
		l.Annotations = nil
		ncfg.Layers[i] = l
		if _, ok := ndp[l.Blob]; !ok {
			ndp[l.Blob] = pair
		}
	}
	chains := NewCacheChains()
	if err := ParseConfig(ncfg, ndp, chains); err != nil {
		return nil, nil, errors.Wrap(err, "rebuilding the graph on converted layers")
	}
	return chains.Marshal(ctx)
}

// convertBlob converts the layer src, of compression from, to c as a
// stream: its bytes are checked against its digest, decompressed, hashed
// (the diffID, checked against src's containerd.io/uncompressed annotation
// when it has one), compressed again and hashed into a spool file. Any
// failure removes the spool file.
func (e *exporter) convertBlob(ctx context.Context, st *step, c CompressionConfig, from Compression, src ocispec.Descriptor, p content.Provider) (_ *conversion, err error) {
	if err := src.Digest.Validate(); err != nil {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "digest %q: %v", src.Digest, err)
	}
	var wantDiffID digest.Digest
	diffAlg := digest.Canonical
	if v, ok := src.Annotations[AnnotationUncompressed]; ok {
		d, err := digest.Parse(v)
		if err != nil {
			return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "%s annotation %q: %v", AnnotationUncompressed, v, err)
		}
		wantDiffID, diffAlg = d, d.Algorithm()
	}

	if p == nil {
		return nil, errors.Wrap(errdefs.ErrNotFound, "no provider")
	}
	ra, err := p.ReaderAt(ctx, src)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	if ra.Size() != src.Size {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "provider has %d bytes, descriptor says %d", ra.Size(), src.Size)
	}

	f, err := os.CreateTemp(e.opts.spoolDir, "remotecache-convert-*")
	if err != nil {
		return nil, errors.Wrap(err, "spool file")
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()

	srcVerifier := src.Digest.Verifier()
	in := &countingReader{ctx: ctx, r: io.NewSectionReader(ra, 0, src.Size), st: st}
	br := bufio.NewReaderSize(io.TeeReader(in, srcVerifier), chunkSize)
	dec, err := newDecoder(from, br)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, corrupt(err, from)
	}
	defer dec.Close()

	out := digest.Canonical.Digester()
	bw := bufio.NewWriterSize(io.MultiWriter(f, out.Hash()), chunkSize)
	cw := &countingWriter{w: bw}
	enc, err := newEncoder(c, cw)
	if err != nil {
		return nil, err
	}
	diff := diffAlg.Digester()

	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	buf := (*bufp)[:chunkSize]
	for done := false; !done; {
		n, rerr := readChunk(dec, buf)
		if rerr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, corrupt(rerr, from)
		}
		done = n < len(buf)
		diff.Hash().Write(buf[:n])
		if _, err := enc.Write(buf[:n]); err != nil {
			return nil, errors.Wrap(err, "compressing")
		}
	}
	if err := enc.Close(); err != nil {
		return nil, errors.Wrap(err, "compressing")
	}
	// Bytes after the end of the compressed stream: read them, so that
	// the digest check covers the whole blob, and refuse them.
	rest, err := io.Copy(io.Discard, br)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errors.Wrap(err, "reading")
	}
	if in.n != src.Size || !srcVerifier.Verified() {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "provider returned bytes that do not match digest %s", src.Digest)
	}
	if rest > 0 {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "not a valid %s stream: %d bytes after its end", from, rest)
	}
	diffID := diff.Digest()
	if wantDiffID != "" && diffID != wantDiffID {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "uncompressed bytes have diffID %s, but the %s annotation says %s", diffID, AnnotationUncompressed, wantDiffID)
	}
	if err := bw.Flush(); err != nil {
		return nil, errors.Wrap(err, "spool file")
	}
	if err := f.Close(); err != nil {
		return nil, errors.Wrap(err, "spool file")
	}
	return &conversion{src: src, desc: convertedDescriptor(src, c.Type, out.Digest(), cw.n, diffID), path: f.Name()}, nil
}

// readChunk fills buf from r, short only at the end of r. Unlike
// io.ReadFull, it tells a truncated stream (a decoder's
// io.ErrUnexpectedEOF) from its end.
func readChunk(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// convertedDescriptor is the descriptor of src converted to compression to:
// the new media type, digest and size, src's annotations but those that
// describe the old blob, and the diffID. URLs are dropped: they serve the
// old blob.
func convertedDescriptor(src ocispec.Descriptor, to Compression, dgst digest.Digest, size int64, diffID digest.Digest) ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: to.mediaType(), Digest: dgst, Size: size, Annotations: map[string]string{}}
	for k, v := range src.Annotations {
		if !strings.HasPrefix(k, annotationDistributionSource) {
			d.Annotations[k] = v
		}
	}
	d.Annotations[AnnotationUncompressed] = diffID.String()
	return d
}

// corrupt gives a decoder's error a class: the blob is not what its media
// type says.
func corrupt(err error, from Compression) error {
	return errors.Wrapf(errdefs.ErrFailedPrecondition, "not a valid %s stream: %v", from, err)
}

// newDecoder returns a reader of the uncompressed bytes of r, a stream of
// compression c.
func newDecoder(c Compression, r io.Reader) (io.ReadCloser, error) {
	switch c {
	case CompressionGzip:
		return gzip.NewReader(r)
	case CompressionZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	default:
		return io.NopCloser(r), nil
	}
}

// newEncoder returns a writer that compresses into w as c says. Its output
// is a function of the bytes written and c: gzip headers carry no name and
// no time, and zstd runs one encoder goroutine per blob (blobs are
// converted in parallel instead).
func newEncoder(c CompressionConfig, w io.Writer) (io.WriteCloser, error) {
	switch c.Type {
	case CompressionGzip:
		return gzip.NewWriterLevel(w, c.level())
	case CompressionZstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstdLevel(c.level())), zstd.WithEncoderConcurrency(1))
	default:
		return nopWriteCloser{w}, nil
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// countingReader reads r, checking ctx and reporting the bytes read on st.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	st  *step
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.st.update(c.n)
	return n, err
}

// countingWriter counts the bytes written to w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
