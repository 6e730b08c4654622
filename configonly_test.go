package remotecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// tcExportConfigOnly exports what add adds into dst in the config-only
// form and returns the config's descriptor and bytes.
func tcExportConfigOnly(t *testing.T, dst content.Ingester, add func(remotecache.Target)) (ocispec.Descriptor, []byte) {
	t.Helper()
	e, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(remotecache.FormatConfigOnly))
	if err != nil {
		t.Fatal(err)
	}
	add(e)
	res, err := e.Finalize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	desc := cachetest.ManifestDesc(t, res)
	dt, err := content.ReadBlob(context.Background(), dst.(content.Provider), desc)
	if err != nil {
		t.Fatal(err)
	}
	return desc, dt
}

// Export in the config-only form, import (from the config's descriptor,
// or from the blob alone), export again: the same bytes, and descriptors
// rebuilt with their media type, size, diffID and createdAt.
func TestConfigOnlyRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, dst := tcStore(t), tcStore(t)
	desc, first := tcExportConfigOnly(t, dst, func(tg remotecache.Target) { tcGoldenGraphAnnotated(t, tg, src, true) })

	for _, d := range []ocispec.Descriptor{desc, {Digest: desc.Digest, Size: desc.Size}} {
		t.Run(fmt.Sprintf("mediaType=%q", d.MediaType), func(t *testing.T) {
			again := tcStore(t)
			_, second := tcExportConfigOnly(t, again, func(tg remotecache.Target) {
				if err := remotecache.Import(ctx, dst, d, tg); err != nil {
					t.Fatal(err)
				}
			})
			if !bytes.Equal(first, second) {
				t.Fatalf("round trip changed the config:\n%s\n%s", first, second)
			}
			m, err := remotecache.ReadManifest(ctx, dst, d)
			if err != nil {
				t.Fatal(err)
			}
			if m.Format != remotecache.FormatConfigOnly || m.Config.Digest != desc.Digest || len(m.Layers) != 4 {
				t.Fatalf("ReadManifest = %+v", m)
			}
			var cfg remotecache.CacheConfig
			if err := json.Unmarshal(first, &cfg); err != nil {
				t.Fatal(err)
			}
			for _, l := range m.Layers {
				var la *remotecache.LayerAnnotations
				for _, cl := range cfg.Layers {
					if cl.Blob == l.Digest {
						la = cl.Annotations
					}
				}
				if la == nil || l.MediaType != la.MediaType || l.Size != la.Size || l.Annotations[remotecache.AnnotationUncompressed] != la.DiffID.String() {
					t.Errorf("descriptor %+v does not match annotations %+v", l, la)
				}
				if ts := l.Annotations[remotecache.AnnotationCreatedAt]; (ts == "") != la.CreatedAt.IsZero() {
					t.Errorf("descriptor %s: createdAt %q, annotations %v", l.Digest, ts, la.CreatedAt)
				}
			}
			if problems, err := remotecache.Verify(ctx, dst, d); err != nil || len(problems) != 0 {
				t.Fatalf("Verify = %v, %v", problems, err)
			}
		})
	}
}

// Random graphs through the config-only form keep their bytes too.
func TestConfigOnlyRoundTripRandom(t *testing.T) {
	ctx := context.Background()
	for seed := range int64(20) {
		g := cachegen.NewWithOptions(seed, 40+int(seed)*7, cachegen.Options{AgainFraction: 0.1})
		p := g.Provider()
		dst := tcStore(t)
		desc, first := tcExportConfigOnly(t, dst, func(tg remotecache.Target) {
			if err := cachegen.Replay(tg, g, g.InOrder(), p); err != nil {
				t.Fatal(err)
			}
		})
		_, second := tcExportConfigOnly(t, tcStore(t), func(tg remotecache.Target) {
			if err := remotecache.Import(ctx, dst, desc, tg); err != nil {
				t.Fatal(err)
			}
		})
		if !bytes.Equal(first, second) {
			t.Fatalf("seed %d: round trip changed the config", seed)
		}
	}
}

// The config-only form needs every layer's diffID: without one, the export
// fails before anything is written, naming the blob.
func TestConfigOnlyNeedsDiffIDs(t *testing.T) {
	ctx := context.Background()
	src, dst := tcStore(t), tcStore(t)
	ok := tcBlob(t, src, []byte("with diffID"))
	bad := tcBlob(t, src, []byte("without diffID"))
	delete(bad.Annotations, remotecache.AnnotationUncompressed)
	e, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(remotecache.FormatConfigOnly))
	if err != nil {
		t.Fatal(err)
	}
	tcAdd(t, e, tcDigest("r"), nil, tcResult(src, 1, ok, bad))
	_, err = e.Finalize(ctx)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), bad.Digest.String()) || !strings.Contains(err.Error(), "diffID") {
		t.Fatalf("Finalize = %v, want a failed precondition naming %s", err, bad.Digest)
	}
	for _, d := range []ocispec.Descriptor{ok, bad} {
		if _, err := dst.Info(ctx, d.Digest); !errdefs.IsNotFound(err) {
			t.Errorf("blob %s written by a failed export", d.Digest)
		}
	}
}

// A config-only cache whose layer lacks what BuildKit's importer needs is
// refused, naming the layer.
func TestConfigOnlyImportErrors(t *testing.T) {
	ctx := context.Background()
	store := tcStore(t)
	l := tcBlob(t, store, []byte("layer"))
	rec := fmt.Sprintf(`"records":[{"digest":%q,"layers":[{"layer":0,"createdAt":"2026-01-02T03:04:05Z"}]}]`, tcDigest("r"))
	for _, tc := range []struct {
		name, layer, want string
	}{
		{"no annotations", fmt.Sprintf(`{"blob":%q,"parent":-1}`, l.Digest), "layer 0 (" + l.Digest.String() + "): no annotations"},
		{"no diffID", fmt.Sprintf(`{"blob":%q,"parent":-1,"annotations":{"mediaType":"x","size":5,"createdAt":"0001-01-01T00:00:00Z"}}`, l.Digest), "layer 0 (" + l.Digest.String() + "): diffID"},
		{"bad diffID", fmt.Sprintf(`{"blob":%q,"parent":-1,"annotations":{"diffID":"sha256:zz","size":5,"createdAt":"0001-01-01T00:00:00Z"}}`, l.Digest), "diffID \"sha256:zz\""},
		{"negative size", fmt.Sprintf(`{"blob":%q,"parent":-1,"annotations":{"diffID":%q,"size":-1,"createdAt":"0001-01-01T00:00:00Z"}}`, l.Digest, digest.FromString("d")), "negative size"},
		{"bad blob", `{"blob":"sha256:nope","parent":-1}`, `layer 0: blob "sha256:nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := []byte(`{"layers":[` + tc.layer + `],` + rec + `}`)
			desc := ocispec.Descriptor{MediaType: remotecache.CacheConfigMediaTypeV0, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
			if err := content.WriteBlob(ctx, store, desc.Digest.String(), bytes.NewReader(cfg), desc); err != nil {
				t.Fatal(err)
			}
			err := remotecache.Import(ctx, store, desc, remotecache.NewCacheChains())
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import = %v, want %q", err, tc.want)
			}
			if problems, err := remotecache.Verify(ctx, store, desc); err != nil || len(problems) == 0 {
				t.Fatalf("Verify = %v, %v; want a problem", problems, err)
			}
		})
	}
}

// Verify reads a config-only cache's one blob once, and reports that blob
// with other bytes (its digest's not theirs) as the one problem, of class
// failed precondition; ReadCache fails on it as ReadManifest does.
func TestConfigOnlyVerify(t *testing.T) {
	ctx := context.Background()
	src, dst := tcStore(t), tcStore(t)
	desc, dt := tcExportConfigOnly(t, dst, func(tg remotecache.Target) { tcGoldenGraphAnnotated(t, tg, src, true) })
	p := &tcCountingProvider{Provider: dst}
	if problems, err := remotecache.Verify(ctx, p, desc); err != nil || len(problems) != 0 {
		t.Fatalf("Verify = %v, %v", problems, err)
	}
	if n := p.reads.Get(desc.Digest); n != 1 {
		t.Errorf("Verify read the config %d times, want 1", n)
	}

	bad := bytes.Clone(dt)
	bad[len(bad)/2] ^= 1
	blobs := itMem{desc.Digest: bad}
	problems, err := remotecache.Verify(ctx, blobs, desc)
	if err != nil || len(problems) != 1 || problems[0].Descriptor.Digest != desc.Digest || !errdefs.IsFailedPrecondition(problems[0].Err) {
		t.Fatalf("Verify of a changed config = %v, %v; want one failed precondition on %s", problems, err, desc.Digest)
	}
	_, want := remotecache.ReadManifest(ctx, blobs, desc)
	if _, _, err := remotecache.ReadCache(ctx, blobs, desc); err == nil || want == nil || err.Error() != want.Error() {
		t.Errorf("ReadCache of a changed config = %v, want ReadManifest's %v", err, want)
	}
}
