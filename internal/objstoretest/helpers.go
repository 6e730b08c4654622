package objstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// Resolver is a store whose cache Reimport and Verify read: the first
// name's config, and the blobs it names.
type Resolver interface {
	content.Provider
	Resolve(ctx context.Context) (ocispec.Descriptor, error)
}

// Graph makes a reproducible cache graph of n records whose blobs are
// size bytes each (0: 16 to 64 bytes).
func Graph(seed int64, n int, size int64) *cachegen.Graph {
	return cachegen.NewWithOptions(seed, n, cachegen.Options{BlobSize: size})
}

// Export writes g into dst in the config-only form and returns the
// config's descriptor (Finalize's response).
func Export(t testing.TB, dst content.Ingester, g *cachegen.Graph, opts ...remotecache.ExportOption) ocispec.Descriptor {
	t.Helper()
	desc, err := TryExport(context.Background(), dst, g, opts...)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return desc
}

// ExportReadBack exports g into store (Export) and checks that the cache
// read back from it (Reimport) is the one exported.
func ExportReadBack(t testing.TB, store interface {
	content.Ingester
	Resolver
}, g *cachegen.Graph) {
	t.Helper()
	Export(t, store, g)
	if again := Reimport(t, store); !bytes.Equal(again, MarshalConfigOnly(t, g)) {
		t.Errorf("seed %d: the cache read back is not the one exported", g.Seed)
	}
}

// TryExport is Export that returns the error.
func TryExport(ctx context.Context, dst content.Ingester, g *cachegen.Graph, opts ...remotecache.ExportOption) (ocispec.Descriptor, error) {
	e, err := remotecache.NewExporter(dst, append([]remotecache.ExportOption{remotecache.WithManifestFormat(remotecache.FormatConfigOnly)}, opts...)...)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := cachegen.Replay(e, g, nil, nil); err != nil {
		return ocispec.Descriptor{}, err
	}
	return cachetest.Finalize(ctx, e)
}

// MarshalConfigOnly returns the config our exporter writes for g in the
// config-only form, into a local store.
func MarshalConfigOnly(t testing.TB, g *cachegen.Graph) []byte {
	t.Helper()
	return ConfigOf(t, func(tg remotecache.Target) {
		if err := cachegen.Replay(tg, g, nil, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// ConfigOf exports what add adds into a local content store, in the
// config-only form, and returns the config's bytes.
func ConfigOf(t testing.TB, add func(remotecache.Target)) []byte {
	t.Helper()
	m, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := remotecache.NewExporter(m, remotecache.WithManifestFormat(remotecache.FormatConfigOnly))
	if err != nil {
		t.Fatal(err)
	}
	add(e)
	desc, err := cachetest.Finalize(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := content.ReadBlob(context.Background(), m, desc)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

// Reimport imports the cache at store's first name and returns the
// config our exporter writes for what it imported.
func Reimport(t testing.TB, store Resolver) []byte {
	t.Helper()
	ctx := context.Background()
	desc, err := store.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ConfigOf(t, func(tg remotecache.Target) {
		if err := remotecache.Import(ctx, store, desc, tg); err != nil {
			t.Fatal(err)
		}
	})
}

// ConfigBlobs returns the distinct blobs a config's layers name, sorted.
func ConfigBlobs(t testing.TB, config []byte) []digest.Digest {
	t.Helper()
	var cfg remotecache.CacheConfig
	if err := json.Unmarshal(config, &cfg); err != nil {
		t.Fatal(err)
	}
	var ds []digest.Digest
	for _, l := range cfg.Layers {
		if !slices.Contains(ds, l.Blob) {
			ds = append(ds, l.Blob)
		}
	}
	slices.Sort(ds)
	return ds
}

// Verify reads every blob of the cache at store's first name and checks
// it.
func Verify(t testing.TB, store Resolver) {
	t.Helper()
	ctx := context.Background()
	desc, err := store.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := remotecache.Verify(ctx, store, desc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("verify: %s", p)
	}
}

// BlobBytes returns the bytes of blob d of one of the graphs.
func BlobBytes(t testing.TB, d digest.Digest, gs ...*cachegen.Graph) []byte {
	t.Helper()
	for _, g := range gs {
		if b, ok := g.Blobs[d]; ok {
			return b.Bytes()
		}
	}
	t.Fatalf("no blob %s", d)
	return nil
}

// ReadAtRandom reads every blob of g that is not missing back from
// store, 20 times each at a random offset (from seed) and length up to
// 1 MiB, and checks the bytes, the counts and io.EOF at the end.
func ReadAtRandom(t testing.TB, store content.Provider, g *cachegen.Graph, seed uint64) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed))
	for d, b := range g.Blobs {
		if b.Missing {
			continue
		}
		want := b.Bytes()
		ra, err := store.ReaderAt(ctx, ocispec.Descriptor{Digest: d})
		if err != nil {
			t.Fatal(err)
		}
		if ra.Size() != int64(len(want)) {
			t.Fatalf("ReaderAt size %d, want %d", ra.Size(), len(want))
		}
		for range 20 {
			off := rng.Int64N(int64(len(want)))
			p := make([]byte, rng.IntN(1<<20)+1)
			n, err := ra.ReadAt(p, off)
			wantN := min(len(p), len(want)-int(off))
			if n != wantN || (n < len(p) && err != io.EOF) || (n == len(p) && err != nil) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d", len(p), off, n, err, wantN)
			}
			if !bytes.Equal(p[:n], want[off:int(off)+n]) {
				t.Fatalf("ReadAt at %d: wrong bytes", off)
			}
		}
		ra.Close()
	}
}

// CopyOut imports the cache at store's first name into an exporter that
// writes a local store, as a copy out of store does, and returns
// Finalize's error: Finalize asks store for every blob.
func CopyOut(t testing.TB, store Resolver) error {
	t.Helper()
	ctx := context.Background()
	desc, err := store.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	exp, err := remotecache.NewExporter(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := remotecache.Import(ctx, store, desc, exp); err != nil {
		t.Fatal(err)
	}
	_, err = exp.Finalize(ctx)
	return err
}
