package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	bkremotecache "github.com/moby/buildkit/cache/remotecache"
	cacheimport "github.com/moby/buildkit/cache/remotecache/v1"
	"github.com/moby/buildkit/util/compression"
	"github.com/moby/buildkit/util/imageutil"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
)

func TestMain(m *testing.M) { cachetest.Main(m) }

func newStore(t testing.TB, dir string) content.Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := local.NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bkImport reads the cache at desc the way BuildKit's content cache
// importer does (remotecache.NewImporter(...).Resolve, without the worker
// it needs only after parsing): detect the manifest form, collect the layer
// descriptors and the config, and run v1.Parse into a new CacheChains.
func bkImport(t testing.TB, p content.Provider, desc ocispec.Descriptor) *cacheimport.CacheChains {
	t.Helper()
	ctx := context.Background()
	dt, err := content.ReadBlob(ctx, p, desc)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := imageutil.DetectManifestBlobMediaType(dt)
	if err != nil {
		t.Fatal(err)
	}
	layers := cacheimport.DescriptorProvider{}
	var config ocispec.Descriptor
	switch mt {
	case images.MediaTypeDockerSchema2ManifestList, ocispec.MediaTypeImageIndex:
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			t.Fatal(err)
		}
		for _, m := range idx.Manifests {
			if m.MediaType == remotecache.CacheConfigMediaTypeV0 {
				config = m
				continue
			}
			layers[m.Digest] = cacheimport.DescriptorProviderPair{Descriptor: m, Provider: p}
		}
	case ocispec.MediaTypeImageManifest:
		var mf ocispec.Manifest
		if err := json.Unmarshal(dt, &mf); err != nil {
			t.Fatal(err)
		}
		config = mf.Config
		for _, m := range mf.Layers {
			layers[m.Digest] = cacheimport.DescriptorProviderPair{Descriptor: m, Provider: p}
		}
	default:
		t.Fatalf("BuildKit detects manifest type %q", mt)
	}
	if config.MediaType != remotecache.CacheConfigMediaTypeV0 {
		t.Fatalf("no cache config in manifest (%s)", dt)
	}
	cfg, err := content.ReadBlob(ctx, p, config)
	if err != nil {
		t.Fatal(err)
	}
	cc := cacheimport.NewCacheChains()
	if err := cacheimport.Parse(cfg, layers, cc); err != nil {
		t.Fatalf("BuildKit's Parse: %v", err)
	}
	return cc
}

var forms = []struct {
	ours                   remotecache.ManifestFormat
	bkOCI, bkImageManifest bool
}{
	{remotecache.FormatImageManifest, true, true},
	{remotecache.FormatOCIIndex, true, false},
	{remotecache.FormatManifestList, false, false},
}

// readConfig returns the cache config bytes the manifest at desc names.
func readConfig(t testing.TB, p content.Provider, desc ocispec.Descriptor) []byte {
	t.Helper()
	ctx := context.Background()
	dt, err := content.ReadBlob(ctx, p, desc)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Config    ocispec.Descriptor   `json:"config"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(dt, &m); err != nil {
		t.Fatal(err)
	}
	cd := m.Config
	for _, d := range m.Manifests {
		if d.MediaType == remotecache.CacheConfigMediaTypeV0 {
			cd = d
		}
	}
	cfg, err := content.ReadBlob(ctx, p, cd)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func graphsForReads(t *testing.T) []*cachegen.Graph {
	n := 12
	if testing.Short() {
		n = 4
	}
	var gs []*cachegen.Graph
	for seed := range n {
		opts := cachegen.Options{BlobSize: 64 + int64(seed)}
		if seed%2 == 1 {
			opts.ReuseBlobFraction = -1
		}
		gs = append(gs, cachegen.NewWithOptions(int64(1000+seed), 10+seed*8, opts))
	}
	return gs
}

// TestBuildKitReadsOurs exports with our Exporter in each form and has
// BuildKit's reading path rebuild the graph: its Marshal equals our config.
func TestBuildKitReadsOurs(t *testing.T) {
	for gi, g := range graphsForReads(t) {
		for _, f := range forms {
			name := fmt.Sprintf("graph %d %s", gi, f.ours)
			t.Run(name, func(t *testing.T) {
				store := newStore(t, "")
				desc := cachetest.Export(t, store, g, nil, nil, remotecache.WithManifestFormat(f.ours))
				ours := readConfig(t, store, desc)
				bk := bkImport(t, store, desc)
				compareConfigs(t, name, ours, func() []byte { return cachetest.ConfigJSON(t, bk) })
			})
		}
	}
}

// TestWeReadBuildKit exports with BuildKit's exporter in each form, imports
// with ours: our Marshal equals the config BuildKit wrote.
func TestWeReadBuildKit(t *testing.T) {
	for gi, g := range graphsForReads(t) {
		for _, f := range forms {
			name := fmt.Sprintf("graph %d %s", gi, f.ours)
			store := newStore(t, "")
			bke := bkremotecache.NewExporter(store, "bk", f.bkOCI, f.bkImageManifest, compression.Config{})
			bkReplay(t, bke, g, nil, g.Provider())
			res, err := bke.Finalize(context.Background())
			if err != nil {
				t.Fatalf("%s: BuildKit Finalize: %v", name, err)
			}
			desc := cachetest.ManifestDesc(t, res)
			theirs := readConfig(t, store, desc)
			ours := remotecache.NewCacheChains()
			if err := remotecache.Import(context.Background(), store, desc, ours); err != nil {
				t.Fatalf("%s: Import: %v", name, err)
			}
			got := cachetest.ConfigJSON(t, ours)
			compareConfigs(t, name, got, func() []byte { return theirs })
		}
	}
}

// TestRealBuildKitCache works on the cache a real buildkitd wrote
// (testdata/buildkit-local-cache): we and BuildKit read it to the same
// graph; then we export it in each form and BuildKit reads that back.
func TestRealBuildKitCache(t *testing.T) {
	dir := cachetest.Fixture(t)
	store := newStore(t, dir)
	desc := cachetest.LayoutIndex(t, dir).Manifests[0]
	fixture := readConfig(t, store, desc)

	ours := remotecache.NewCacheChains()
	if err := remotecache.Import(context.Background(), store, desc, ours); err != nil {
		t.Fatal(err)
	}
	got := cachetest.ConfigJSON(t, ours)
	bk := bkImport(t, store, desc)
	compareConfigs(t, "fixture, BuildKit's Marshal", got, func() []byte { return cachetest.ConfigJSON(t, bk) })
	compareConfigs(t, "fixture, as buildkitd wrote it", got, func() []byte { return fixture })

	for _, f := range forms {
		dst := newStore(t, "")
		e, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(f.ours))
		if err != nil {
			t.Fatal(err)
		}
		if err := remotecache.Import(context.Background(), store, desc, e); err != nil {
			t.Fatal(err)
		}
		res, err := e.Finalize(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		md := cachetest.ManifestDesc(t, res)
		back := bkImport(t, dst, md)
		compareConfigs(t, "fixture re-exported as "+f.ours.String(), readConfig(t, dst, md), func() []byte { return cachetest.ConfigJSON(t, back) })
	}
}
