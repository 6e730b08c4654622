package remotecache

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

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
	wdesc := desc
	if m, ok := e.ingester.(BlobMounter); ok && m.MountsBlobs() {
		wdesc = withSources(ctx, desc, provider)
	}
	w, err := content.OpenWriter(ctx, e.ingester, content.WithRef(ref), content.WithDescriptor(wdesc))
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

// distributionSource begins the key of the label (of content stores) and
// annotation (of descriptors) that names the repositories of a registry a
// blob is in: containerd.io/distribution.source.<host> = REPO[,REPO…], as
// containerd labels the blobs it pulls and BuildKit annotates the layers of
// lazily pulled images.
const distributionSource = "containerd.io/distribution.source."

// withSources returns desc with the distribution source labels that its
// provider's Info gives added to its annotations, for the Writer of an
// ingester that mounts (BlobMounter) only (the manifest keeps desc as it
// is): a registry ingester mounts a blob that another repository of the
// same registry has instead of having it uploaded. A provider that cannot
// say adds nothing.
func withSources(ctx context.Context, desc ocispec.Descriptor, provider content.Provider) ocispec.Descriptor {
	info, ok := content.Info{}, false
	if kp, isKnower := provider.(KnownInfoProvider); isKnower {
		info, ok = kp.KnownInfo(desc.Digest)
	}
	if !ok {
		ip, isInfo := provider.(content.InfoProvider)
		if !isInfo {
			return desc
		}
		var err error
		if info, err = ip.Info(ctx, desc.Digest); err != nil {
			return desc
		}
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
