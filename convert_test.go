package remotecache_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

var czZstd = remotecache.WithCompression(remotecache.CompressionConfig{Type: remotecache.CompressionZstd})

// TestCompressionFailuresWriteNothing: a layer whose uncompressed bytes do
// not have its annotation's diffID, whose stream is corrupt, or whose
// bytes are not its digest's fails the export before anything is written,
// naming the blob (and for a diffID both digests), with class
// errdefs.ErrFailedPrecondition; no blob, ingest or spool file is left.
func TestCompressionFailuresWriteNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, src content.Store, l *ocispec.Descriptor) []string
	}{
		{"wrong diffID", func(t *testing.T, _ content.Store, l *ocispec.Descriptor) []string {
			l.Annotations[remotecache.AnnotationUncompressed] = digest.FromString("another layer").String()
			return []string{digest.FromString("another layer").String(), digest.FromBytes(czPayloads[2]).String()}
		}},
		{"truncated gzip", func(t *testing.T, src content.Store, l *ocispec.Descriptor) []string {
			blob := czEncode(t, remotecache.CompressionGzip, czPayloads[2])
			*l = czWrite(t, src, blob[:len(blob)/2], *l)
			return []string{"not a valid gzip stream"}
		}},
		{"zstd bytes, gzip type", func(t *testing.T, src content.Store, l *ocispec.Descriptor) []string {
			*l = czWrite(t, src, czEncode(t, remotecache.CompressionZstd, czPayloads[2]), *l)
			return []string{"not a valid gzip stream"}
		}},
		{"gzip bytes, zstd type", func(t *testing.T, src content.Store, l *ocispec.Descriptor) []string {
			*l = czWrite(t, src, czEncode(t, remotecache.CompressionGzip, czPayloads[2]), *l)
			l.MediaType = ocispec.MediaTypeImageLayerZstd
			return []string{"not a valid zstd stream"}
		}},
		{"bytes after the stream", func(t *testing.T, src content.Store, l *ocispec.Descriptor) []string {
			blob := czEncode(t, remotecache.CompressionGzip, czPayloads[2])
			*l = czWrite(t, src, append(blob, 0, 0, 0, 0), *l)
			return []string{"not a valid gzip stream"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst, spool := tcStore(t), tcStore(t), t.TempDir()
			ls := czLayers(t, src, remotecache.CompressionGzip)
			want := tc.spoil(t, src, &ls[2])
			c := remotecache.WithCompression(remotecache.CompressionConfig{Type: remotecache.CompressionUncompressed})
			_, err := czExport(t, dst, src, ls, c, remotecache.WithSpoolDir(spool))
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("Finalize: %v, want a failed precondition", err)
			}
			for _, w := range append(want, ls[2].Digest.String()) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			czEmpty(t, dst, spool)
		})
	}

	t.Run("bytes not the digest's", func(t *testing.T) {
		src, dst, spool := tcStore(t), tcStore(t), t.TempDir()
		ls := czLayers(t, src, remotecache.CompressionUncompressed)
		bad := &czFlipProvider{Provider: src, flip: ls[1].Digest}
		_, err := czExport(t, dst, bad, ls, czZstd, remotecache.WithSpoolDir(spool))
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "do not match digest "+ls[1].Digest.String()) {
			t.Fatalf("Finalize: %v", err)
		}
		czEmpty(t, dst, spool)
	})
}

// czWrite writes blob into store as d's layer, with d's media type and
// annotations.
func czWrite(t testing.TB, store content.Ingester, blob []byte, d ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	d.Digest, d.Size = digest.FromBytes(blob), int64(len(blob))
	if err := content.WriteBlob(context.Background(), store, "cz-"+d.Digest.String(), bytes.NewReader(blob), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// czFlipProvider serves the blob flip with its last byte changed.
type czFlipProvider struct {
	content.Provider
	flip digest.Digest
}

func (p *czFlipProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := p.Provider.ReaderAt(ctx, desc)
	if err != nil || desc.Digest != p.flip {
		return ra, err
	}
	return czFlipped{ra}, nil
}

type czFlipped struct{ content.ReaderAt }

func (f czFlipped) ReadAt(b []byte, off int64) (int, error) {
	n, err := f.ReaderAt.ReadAt(b, off)
	if last := f.Size() - 1 - off; last >= 0 && last < int64(n) {
		b[last] ^= 0xff
	}
	return n, err
}

// TestCompressionCancelled: cancelling in the middle of a conversion
// fails Finalize with the context's error and leaves nothing behind.
func TestCompressionCancelled(t *testing.T) {
	src, dst, spool := tcStore(t), tcStore(t), t.TempDir()
	big := czLayer(t, src, remotecache.CompressionUncompressed, czPayload(3<<20, 9))
	ctx, cancel := context.WithCancel(context.Background())
	p := &czCancelProvider{Provider: src, cancel: cancel}
	exp, err := remotecache.NewExporter(dst, czZstd, remotecache.WithSpoolDir(spool))
	if err != nil {
		t.Fatal(err)
	}
	tcAdd(t, exp, tcDigest("big"), nil, tcResult(p, 1, big))
	if _, err := exp.Finalize(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Finalize: %v, want context.Canceled", err)
	}
	if !p.cancelled {
		t.Fatal("the conversion ended before it was cancelled")
	}
	czEmpty(t, dst, spool)
}

// czCancelProvider cancels the export once a second chunk of a blob is
// read.
type czCancelProvider struct {
	content.Provider
	cancel    func()
	mu        sync.Mutex
	cancelled bool
}

func (p *czCancelProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := p.Provider.ReaderAt(ctx, desc)
	return czCancelReader{ra, p}, err
}

type czCancelReader struct {
	content.ReaderAt
	p *czCancelProvider
}

func (r czCancelReader) ReadAt(b []byte, off int64) (int, error) {
	if off > 0 {
		r.p.mu.Lock()
		r.p.cancelled = true
		r.p.mu.Unlock()
		r.p.cancel()
	}
	return r.ReaderAt.ReadAt(b, off)
}

// TestCompressionReconvertWritesNothing: converting the same source again,
// at another concurrency, gives the same bytes, and converting the
// converted cache again (as it is, or forced at the same level) gives it
// back: the destination already has every blob, so nothing is written.
// Each source blob is read once, however many results use it.
func TestCompressionReconvertWritesNothing(t *testing.T) {
	src, store := tcStore(t), tcStore(t)
	ls := czLayers(t, src, remotecache.CompressionGzip, remotecache.CompressionUncompressed)
	counted := &tcCountingProvider{Provider: src}
	desc := czMustExport(t, store, counted, ls, czZstd, remotecache.WithConcurrency(1))
	for _, l := range ls {
		if n := counted.reads.Get(l.Digest); n != 1 {
			t.Errorf("blob %s read %d times, want once", l.Digest, n)
		}
	}

	spy := &tcSpyIngester{Store: store}
	again := czMustExport(t, spy, src, ls, czZstd, remotecache.WithConcurrency(4))
	if again.Digest != desc.Digest || spy.writers != 0 {
		t.Errorf("converting again: %s and %d writers, want %s and none", again.Digest, spy.writers, desc.Digest)
	}

	for _, c := range []remotecache.CompressionConfig{
		{Type: remotecache.CompressionZstd},
		{Type: remotecache.CompressionZstd, Force: true},
		{Type: remotecache.CompressionZstd, Level: new(4), Force: true}, // the same encoder level
	} {
		spy := &tcSpyIngester{Store: store}
		if got := cachetest.Copy(t, store, desc, spy, remotecache.WithCompression(c)); got.Digest != desc.Digest || spy.writers != 0 {
			t.Errorf("%v of the converted cache: %s and %d writers, want %s and none", c, got.Digest, spy.writers, desc.Digest)
		}
	}
}

// TestCompressionProgress: each conversion is a step "converting layer
// <source digest>" with the source's bytes, before the step that writes
// the new blob.
func TestCompressionProgress(t *testing.T) {
	src := tcStore(t)
	ls := czLayers(t, src, remotecache.CompressionGzip)
	var ev tcEvents
	if _, err := czExport(t, tcStore(t), src, ls, czZstd, remotecache.WithProgress(&ev)); err != nil {
		t.Fatal(err)
	}
	last := ev.last()
	for _, l := range ls {
		e, ok := last["converting layer "+l.Digest.String()]
		if !ok || e.Completed.IsZero() || e.Err != nil || e.Current != l.Size || e.Total != l.Size {
			t.Errorf("converting %s: %+v", l.Digest, e)
		}
	}
}

// TestCompressionGolden pins the bytes of conversions of one layer: if
// they change (an upgrade of klauspost/compress can do that), converted
// caches get new digests and their next export writes every layer again.
// Say so in the release notes.
func TestCompressionGolden(t *testing.T) {
	src := tcStore(t)
	l := czLayer(t, src, remotecache.CompressionGzip, czPayloads[0])
	for _, tc := range []struct {
		c    remotecache.CompressionConfig
		want digest.Digest
	}{
		{remotecache.CompressionConfig{Type: remotecache.CompressionZstd}, "sha256:fe81d8fc3bddcd0629b56e1baead8f0923a25f49438b145ba7bbcb436720ad0d"},
		{remotecache.CompressionConfig{Type: remotecache.CompressionZstd, Level: new(19)}, "sha256:a57e4040073c5d58bd68517aff99f98b43acc618ee9e1828f5a2dfe73d0bd246"},
		{remotecache.CompressionConfig{Type: remotecache.CompressionGzip, Force: true}, "sha256:9c3dd354d27b881ba3fe7f898d225634863fae72eab0569e0ddee12bc8264799"},
		{remotecache.CompressionConfig{Type: remotecache.CompressionGzip, Level: new(9), Force: true}, "sha256:dc179ccc496e6d59d0e4c885a0826a1c9f63713c4bca1eedc01cdece0f8b5669"},
		{remotecache.CompressionConfig{Type: remotecache.CompressionUncompressed}, digest.FromBytes(czPayloads[0])},
	} {
		dst := tcStore(t)
		exp, err := remotecache.NewExporter(dst, remotecache.WithCompression(tc.c))
		if err != nil {
			t.Fatal(err)
		}
		tcAdd(t, exp, tcDigest("golden"), nil, tcResult(src, 1, l))
		res, err := exp.Finalize(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m, _ := czCache(t, dst, cachetest.ManifestDesc(t, res))
		if got := m.Layers[0].Digest; got != tc.want {
			t.Errorf("%v: %s, want %s", tc.c, got, tc.want)
		}
	}
}
