package remotecache_test

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

const czSource = "containerd.io/distribution.source.docker.io"

// czPayload is n bytes that compress like a layer's tar: lines of words
// with some random bytes, from a seed.
func czPayload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 14))
	words := []string{"usr", "lib", "bin", "share", "golang", "tar", "layer", "cache", "buildkit", "zstd", "\x00\x00\x00\x00"}
	var b bytes.Buffer
	for b.Len() < n {
		switch r.IntN(16) {
		case 0:
			b.WriteByte('\n')
		case 1:
			var x [8]byte
			for i := range x {
				x[i] = byte(r.Uint32())
			}
			b.Write(x[:])
		default:
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// czEncode compresses data as c: gzip with the standard library at its
// default level (as BuildKit does), zstd with klauspost's default.
func czEncode(t testing.TB, c remotecache.Compression, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	switch c {
	case remotecache.CompressionGzip:
		w := stdgzip.NewWriter(&b)
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case remotecache.CompressionZstd:
		w, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		b.Write(data)
	}
	return b.Bytes()
}

// czDecode decompresses a blob of media type mt: gzip with the standard
// library, so that klauspost's encoder is checked by another decoder.
func czDecode(t testing.TB, mt string, blob []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(blob)
	switch mt {
	case ocispec.MediaTypeImageLayerGzip, images.MediaTypeDockerSchema2LayerGzip:
		zr, err := stdgzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case ocispec.MediaTypeImageLayerZstd, images.MediaTypeDockerSchema2LayerZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	dt, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompressing %s: %v", mt, err)
	}
	return dt
}

var czMediaType = map[remotecache.Compression]string{
	remotecache.CompressionUncompressed: ocispec.MediaTypeImageLayer,
	remotecache.CompressionGzip:         ocispec.MediaTypeImageLayerGzip,
	remotecache.CompressionZstd:         ocispec.MediaTypeImageLayerZstd,
}

// czLayer writes data, compressed as c, into store as a layer with the
// annotations BuildKit gives layers (diffID, creation time) and a
// distribution source, and returns its descriptor.
func czLayer(t testing.TB, store content.Ingester, c remotecache.Compression, data []byte) ocispec.Descriptor {
	t.Helper()
	blob := czEncode(t, c, data)
	desc := ocispec.Descriptor{
		MediaType: czMediaType[c],
		Digest:    digest.FromBytes(blob),
		Size:      int64(len(blob)),
		Annotations: map[string]string{
			remotecache.AnnotationUncompressed: digest.FromBytes(data).String(),
			remotecache.AnnotationCreatedAt:    "2026-01-02T03:04:05.123456789Z",
			czSource:                           "library/busybox",
		},
	}
	if err := content.WriteBlob(context.Background(), store, "cz-"+desc.Digest.String(), bytes.NewReader(blob), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

// czPayloads are the uncompressed bytes of the four layers of czAdd's
// graph.
var czPayloads = [][]byte{czPayload(180_000, 1), czPayload(60_000, 2), czPayload(5_000, 3), czPayload(90_000, 4)}

// czLayers writes the four layers, compressed as cs (cycled).
func czLayers(t testing.TB, store content.Ingester, cs ...remotecache.Compression) []ocispec.Descriptor {
	t.Helper()
	var ls []ocispec.Descriptor
	for i, p := range czPayloads {
		ls = append(ls, czLayer(t, store, cs[i%len(cs)], p))
	}
	return ls
}

// czAdd adds a graph on the layers l (from p) into tg: an image, two steps
// on it, one of them with a second input, and a record without a result.
func czAdd(t testing.TB, tg remotecache.Target, p content.Provider, l []ocispec.Descriptor) {
	t.Helper()
	img := tcAdd(t, tg, tcDigest("image"), nil, tcResult(p, 1, l[0]))
	ctxr := tcAdd(t, tg, tcDigest("context"), nil)
	a := tcAdd(t, tg, tcDigest("run a"), tcLinks(tcSlot(img)), tcResult(p, 2, l[0], l[1]))
	tcAdd(t, tg, tcDigest("run b"), tcLinks(tcSlot(a)), tcResult(p, 3, l[0], l[1], l[2]))
	tcAdd(t, tg, tcDigest("copy"), tcLinks(tcSlot(a), tcSlot(img, ctxr)), tcResult(p, 4, l[0], l[3]))
}

// czExport adds czAdd's graph on l into a new exporter writing into dst
// with opts and finalizes it.
func czExport(t testing.TB, dst content.Ingester, p content.Provider, l []ocispec.Descriptor, opts ...remotecache.ExportOption) (ocispec.Descriptor, error) {
	t.Helper()
	exp, err := remotecache.NewExporter(dst, opts...)
	if err != nil {
		t.Fatal(err)
	}
	czAdd(t, exp, p, l)
	res, err := exp.Finalize(context.Background())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return cachetest.ManifestDesc(t, res), nil
}

// czMustExport is czExport that fails t if Finalize fails.
func czMustExport(t testing.TB, dst content.Ingester, p content.Provider, l []ocispec.Descriptor, opts ...remotecache.ExportOption) ocispec.Descriptor {
	t.Helper()
	desc, err := czExport(t, dst, p, l, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

// czCache reads the cache at desc in p: its form, config and layer
// descriptors, and checks it verifies.
func czCache(t testing.TB, p content.Provider, desc ocispec.Descriptor) (*remotecache.Manifest, *remotecache.CacheConfig) {
	t.Helper()
	m, cfg := tcRead(t, p, desc)
	probs, err := remotecache.Verify(context.Background(), p, desc)
	if err != nil || len(probs) > 0 {
		t.Fatalf("Verify: %v %v", probs, err)
	}
	return m, cfg
}

// czCheckConverted checks a cache converted from the layers src: every
// layer blob is of media type mt, decompresses to the bytes of the source
// layer of its diffID, and was made when the source was. It returns the converted descriptors in the order
// of src.
func czCheckConverted(t testing.TB, p content.Provider, m *remotecache.Manifest, src []ocispec.Descriptor, mt string) []ocispec.Descriptor {
	t.Helper()
	byDiff := map[string]ocispec.Descriptor{}
	for _, l := range m.Layers {
		if l.MediaType != mt {
			t.Errorf("layer %s: media type %s, want %s", l.Digest, l.MediaType, mt)
		}
		diffID := l.Annotations[remotecache.AnnotationUncompressed]
		blob, err := content.ReadBlob(context.Background(), p, l)
		if err != nil {
			t.Fatal(err)
		}
		if got := digest.FromBytes(czDecode(t, l.MediaType, blob)).String(); got != diffID {
			t.Errorf("layer %s decompresses to %s, its diffID annotation says %s", l.Digest, got, diffID)
		}
		byDiff[diffID] = l
	}
	out := make([]ocispec.Descriptor, len(src))
	for i, s := range src {
		diffID := s.Annotations[remotecache.AnnotationUncompressed]
		l, ok := byDiff[diffID]
		if !ok {
			t.Fatalf("no layer with the diffID %s of source layer %d", diffID, i)
		}
		if got, want := l.Annotations[remotecache.AnnotationCreatedAt], s.Annotations[remotecache.AnnotationCreatedAt]; got != want {
			t.Errorf("layer %s: created at %q, want %q", l.Digest, got, want)
		}
		out[i] = l
	}
	return out
}

// TestCompressionRoundTrips converts layers between each pair of
// compressions, and recompresses at another level with Force. Each
// converted cache verifies, its blobs decompress to the source's diffIDs,
// it is byte for byte the cache an engine would export had its results had
// the converted blobs, and it imports back to the same config.
func TestCompressionRoundTrips(t *testing.T) {
	u, g, z := remotecache.CompressionUncompressed, remotecache.CompressionGzip, remotecache.CompressionZstd
	for _, tc := range []struct {
		name string
		from []remotecache.Compression
		to   remotecache.CompressionConfig
	}{
		{"uncompressed to gzip", []remotecache.Compression{u}, remotecache.CompressionConfig{Type: g}},
		{"uncompressed to zstd", []remotecache.Compression{u}, remotecache.CompressionConfig{Type: z}},
		{"gzip to zstd", []remotecache.Compression{g}, remotecache.CompressionConfig{Type: z}},
		{"zstd to gzip", []remotecache.Compression{z}, remotecache.CompressionConfig{Type: g}},
		{"gzip to uncompressed", []remotecache.Compression{g}, remotecache.CompressionConfig{Type: u}},
		{"zstd to uncompressed", []remotecache.Compression{z}, remotecache.CompressionConfig{Type: u}},
		{"gzip forced to gzip level 9", []remotecache.Compression{g}, remotecache.CompressionConfig{Type: g, Level: new(9), Force: true}},
		{"zstd forced to zstd level 19", []remotecache.Compression{z}, remotecache.CompressionConfig{Type: z, Level: new(19), Force: true}},
		{"mixed to zstd level 1", []remotecache.Compression{g, z, u}, remotecache.CompressionConfig{Type: z, Level: new(1)}},
		{"mixed to gzip level 1", []remotecache.Compression{g, z, u}, remotecache.CompressionConfig{Type: g, Level: new(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			src, dst := tcStore(t), tcStore(t)
			ls := czLayers(t, src, tc.from...)
			desc := czMustExport(t, dst, src, ls, remotecache.WithCompression(tc.to))
			m, cfg := czCache(t, dst, desc)
			conv := czCheckConverted(t, dst, m, ls, czMediaType[tc.to.Type])
			for i, l := range ls {
				from := tc.from[i%len(tc.from)]
				converted := from != tc.to.Type || tc.to.Force
				_, keptSource := conv[i].Annotations[czSource]
				if converted == (l.Digest == conv[i].Digest) || converted == keptSource {
					t.Errorf("layer %d, %s: converted %v, but it is %s (was %s), distribution source kept %v", i, from, converted, conv[i].Digest, l.Digest, keptSource)
				}
			}

			// The cache an engine would write had its results had the
			// converted blobs: same manifest, byte for byte.
			want := czMustExport(t, tcStore(t), dst, conv)
			if desc.Digest != want.Digest {
				t.Errorf("manifest %s, an engine with the converted blobs writes %s", desc.Digest, want.Digest)
			}

			// Imported back, it marshals to the same config.
			chains := remotecache.NewCacheChains()
			if err := remotecache.Import(ctx, dst, desc, chains); err != nil {
				t.Fatal(err)
			}
			back, _ := tcMarshal(t, chains)
			if a, b := tcJSON(t, back), tcJSON(t, cfg); !bytes.Equal(a, b) {
				t.Errorf("imported config\n%s\nwant\n%s", a, b)
			}
		})
	}
}

// TestCompressionEachForm converts gzip to zstd in each form: the
// manifest list gives zstd layers their Docker type, the config-only form
// carries the converted blobs' annotations.
func TestCompressionEachForm(t *testing.T) {
	src := tcStore(t)
	ls := czLayers(t, src, remotecache.CompressionGzip)
	for _, f := range []remotecache.ManifestFormat{remotecache.FormatImageManifest, remotecache.FormatOCIIndex, remotecache.FormatManifestList, remotecache.FormatConfigOnly} {
		t.Run(f.String(), func(t *testing.T) {
			dst := tcStore(t)
			desc := czMustExport(t, dst, src, ls, remotecache.WithManifestFormat(f), remotecache.WithCompression(remotecache.CompressionConfig{Type: remotecache.CompressionZstd}))
			m, cfg := czCache(t, dst, desc)
			if m.Format != f {
				t.Errorf("form %v, want %v", m.Format, f)
			}
			mt := ocispec.MediaTypeImageLayerZstd
			if f == remotecache.FormatManifestList {
				mt = images.MediaTypeDockerSchema2LayerZstd
			}
			conv := czCheckConverted(t, dst, m, ls, mt)
			if f == remotecache.FormatConfigOnly {
				for _, l := range cfg.Layers {
					if l.Annotations == nil || l.Annotations.MediaType != ocispec.MediaTypeImageLayerZstd || l.Annotations.DiffID == "" {
						t.Errorf("layer %s: annotations %+v", l.Blob, l.Annotations)
					}
				}
			}
			want := czMustExport(t, tcStore(t), dst, conv, remotecache.WithManifestFormat(f))
			if desc.Digest != want.Digest {
				t.Errorf("%s, an engine with the converted blobs writes %s", desc.Digest, want.Digest)
			}
		})
	}
}

// TestCompressionLeavesSomeLayers: layers already of the compression (no
// Force), uncompressed ones under a forced "uncompressed", and
// non-distributable ones are copied as they are, descriptor and all.
func TestCompressionLeavesSomeLayers(t *testing.T) {
	src := tcStore(t)
	for _, tc := range []struct {
		name string
		from remotecache.Compression
		c    remotecache.CompressionConfig
		mt   string
	}{
		{"zstd to zstd", remotecache.CompressionZstd, remotecache.CompressionConfig{Type: remotecache.CompressionZstd, Level: new(19)}, ""},
		{"gzip to gzip", remotecache.CompressionGzip, remotecache.CompressionConfig{Type: remotecache.CompressionGzip}, ""},
		{"uncompressed forced", remotecache.CompressionUncompressed, remotecache.CompressionConfig{Type: remotecache.CompressionUncompressed, Force: true}, ""},
		{"non-distributable", remotecache.CompressionGzip, remotecache.CompressionConfig{Type: remotecache.CompressionZstd, Force: true}, images.MediaTypeDockerSchema2LayerForeignGzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := czLayers(t, src, tc.from)
			if tc.mt != "" {
				for i := range ls {
					ls[i].MediaType = tc.mt
				}
			}
			dst := tcStore(t)
			desc := czMustExport(t, dst, src, ls, remotecache.WithCompression(tc.c))
			want := czMustExport(t, tcStore(t), src, ls)
			if desc.Digest != want.Digest {
				t.Errorf("manifest %s, want %s (the layers as they are)", desc.Digest, want.Digest)
			}
		})
	}
}

// TestCompressionComputesDiffIDs: a source layer without a diffID
// annotation gets the one computed, so that even the config-only form,
// which needs diffIDs, can be written.
func TestCompressionComputesDiffIDs(t *testing.T) {
	src := tcStore(t)
	ls := czLayers(t, src, remotecache.CompressionGzip)
	for i := range ls {
		ls[i].Annotations = nil
	}
	cfgOnly := remotecache.WithManifestFormat(remotecache.FormatConfigOnly)
	if _, err := czExport(t, tcStore(t), src, ls, cfgOnly); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("config-only without diffIDs: %v, want a failed precondition", err)
	}
	dst := tcStore(t)
	desc := czMustExport(t, dst, src, ls, cfgOnly, remotecache.WithCompression(remotecache.CompressionConfig{Type: remotecache.CompressionZstd}))
	m, _ := czCache(t, dst, desc)
	for i, l := range m.Layers {
		if len(l.Annotations) != 1 || l.Annotations[remotecache.AnnotationUncompressed] == "" {
			t.Errorf("layer %d: annotations %v, want the diffID alone", i, l.Annotations)
		}
	}
	for i := range ls {
		ls[i].Annotations = map[string]string{remotecache.AnnotationUncompressed: digest.FromBytes(czPayloads[i]).String()}
	}
	czCheckConverted(t, dst, m, ls, ocispec.MediaTypeImageLayerZstd)
}

// TestCompressionConfig: ParseCompression and String agree, and
// WithCompression refuses what it does not take, in one place.
func TestCompressionConfig(t *testing.T) {
	for _, c := range []remotecache.Compression{remotecache.CompressionUncompressed, remotecache.CompressionGzip, remotecache.CompressionZstd} {
		got, err := remotecache.ParseCompression(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCompression(%q) = %v, %v", c, got, err)
		}
	}
	if _, err := remotecache.ParseCompression("estargz"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ParseCompression(estargz): %v", err)
	}
	if got := (remotecache.CompressionConfig{Type: remotecache.CompressionZstd, Level: new(9), Force: true}).String(); got != "zstd,level=9,force" {
		t.Errorf("String() = %q", got)
	}
	for _, tc := range []struct {
		c  remotecache.CompressionConfig
		ok bool
	}{
		{remotecache.CompressionConfig{}, false},
		{remotecache.CompressionConfig{Type: 7}, false},
		{remotecache.CompressionConfig{Type: remotecache.CompressionGzip, Level: new(-2)}, true},
		{remotecache.CompressionConfig{Type: remotecache.CompressionGzip, Level: new(9)}, true},
		{remotecache.CompressionConfig{Type: remotecache.CompressionGzip, Level: new(-3)}, false},
		{remotecache.CompressionConfig{Type: remotecache.CompressionGzip, Level: new(10)}, false},
		{remotecache.CompressionConfig{Type: remotecache.CompressionZstd, Level: new(1)}, true},
		{remotecache.CompressionConfig{Type: remotecache.CompressionZstd, Level: new(22)}, true},
		{remotecache.CompressionConfig{Type: remotecache.CompressionZstd, Level: new(0)}, false},
		{remotecache.CompressionConfig{Type: remotecache.CompressionZstd, Level: new(23)}, false},
		{remotecache.CompressionConfig{Type: remotecache.CompressionUncompressed, Level: new(1)}, false},
		{remotecache.CompressionConfig{Type: remotecache.CompressionUncompressed, Force: true}, true},
	} {
		_, err := remotecache.NewExporter(tcStore(t), remotecache.WithCompression(tc.c))
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, errdefs.ErrInvalidArgument)) {
			t.Errorf("WithCompression(%+v): %v", tc.c, err)
		}
	}
	if _, err := remotecache.NewExporter(tcStore(t), remotecache.WithSpoolDir("")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("WithSpoolDir(\"\"): %v", err)
	}
}

// czEmpty checks that a store and a spool directory hold nothing: no blob,
// no ingest, no file.
func czEmpty(t testing.TB, dst content.Store, spool string) {
	t.Helper()
	ctx := context.Background()
	n := 0
	// containerd's store makes blobs/ at its first blob.
	if err := dst.Walk(ctx, func(content.Info) error { n++; return nil }); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	st, err := dst.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 || len(st) != 0 {
		t.Errorf("destination has %d blobs and %d ingests, want none", n, len(st))
	}
	if ents, err := os.ReadDir(spool); err != nil || len(ents) != 0 {
		t.Errorf("spool directory has %d files (%v), want none", len(ents), err)
	}
}
