package remotecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

var tcUpdateGolden = flag.Bool("update-golden", false, "rewrite the golden files in testdata/golden")

// tcGoldenGraph adds the hand-made graph of the golden files: a shared
// base, two stages, a COPY --from with a selector, a blob on top of two
// parents, Docker and zstd layers, equal CreatedAt and a record without
// results.
func tcGoldenGraph(t testing.TB, tg remotecache.Target, src content.Store) {
	t.Helper()
	tcGoldenGraphAnnotated(t, tg, src, false)
}

// tcGoldenGraphAnnotated is tcGoldenGraph; with createdAt, two of its
// layers carry BuildKit's buildkit/createdat annotation, as layers that
// BuildKit made do.
func tcGoldenGraphAnnotated(t testing.TB, tg remotecache.Target, src content.Store, createdAt bool) {
	t.Helper()
	base := tcBlob(t, src, []byte("golden base layer"))
	tools := tcBlob(t, src, []byte("golden tools layer"))
	tools.MediaType = images.MediaTypeDockerSchema2LayerGzip
	app := tcBlob(t, src, []byte("golden app layer"))
	app.MediaType = ocispec.MediaTypeImageLayerZstd
	cfgFile := tcBlob(t, src, []byte("golden config file layer"))
	if createdAt {
		base.Annotations[remotecache.AnnotationCreatedAt] = "2025-12-24T10:11:12.123456789+01:00"
		app.Annotations[remotecache.AnnotationCreatedAt] = "2026-01-02T03:04:05Z"
	}

	from := tcAdd(t, tg, tcDigest("FROM busybox"), nil, tcResult(src, 0, base))
	mkdir := tcAdd(t, tg, tcDigest("RUN mkdir /work"), tcLinks(tcSlot(from)), tcResult(src, 10, base, tools))
	build := tcAdd(t, tg, tcDigest("RUN make"), tcLinks(tcSlot(mkdir)), tcResult(src, 20, base, tools, app))
	local := tcAdd(t, tg, tcDigest("local context"), nil)
	final := tcAdd(t, tg, tcDigest("FROM busybox AS final"), tcLinks(tcSlot(from)))
	tcAdd(t, tg, tcDigest("COPY --from=build /app /app"), [][]remotecache.Link{
		{{Src: final}},
		{{Src: build, Selector: "sha256:" + tcDigest("/app").Encoded()}},
	}, tcResult(src, 30, base, app))
	tcAdd(t, tg, tcDigest("COPY config /etc/config"), [][]remotecache.Link{
		{{Src: final}},
		{{Src: local, Selector: "/config"}, {Src: local, Selector: "/etc"}},
	}, tcResult(src, 30, base, cfgFile))
	tcAdd(t, tg, tcDigest("RUN true"), tcLinks(tcSlot(mkdir)))
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		format remotecache.ManifestFormat
		file   string
	}{
		{remotecache.FormatImageManifest, "manifest-image-manifest.json"},
		{remotecache.FormatOCIIndex, "manifest-oci-index.json"},
		{remotecache.FormatManifestList, "manifest-list.json"},
	} {
		t.Run(tc.format.String(), func(t *testing.T) {
			src, dst := tcStore(t), tcStore(t)
			e, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(tc.format))
			if err != nil {
				t.Fatal(err)
			}
			tcGoldenGraph(t, e, src)
			res, err := e.Finalize(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			mdesc := cachetest.ManifestDesc(t, res)
			manifest, err := content.ReadBlob(context.Background(), dst, mdesc)
			if err != nil {
				t.Fatal(err)
			}
			_, cdesc := tcManifestBlobs(t, dst, mdesc)
			config, err := content.ReadBlob(context.Background(), dst, cdesc)
			if err != nil {
				t.Fatal(err)
			}
			tcCheckGolden(t, "config.json", config)
			tcCheckGolden(t, tc.file, manifest)
		})
	}
}

// The config-only form: the config with layer annotations, and no
// manifest; Finalize's response names the config.
func TestGoldenConfigOnly(t *testing.T) {
	ctx := context.Background()
	src, dst := tcStore(t), tcStore(t)
	e, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(remotecache.FormatConfigOnly))
	if err != nil {
		t.Fatal(err)
	}
	tcGoldenGraphAnnotated(t, e, src, true)
	res, err := e.Finalize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	desc := cachetest.ManifestDesc(t, res)
	if desc.MediaType != remotecache.CacheConfigMediaTypeV0 {
		t.Fatalf("response names a %s, want the cache config", desc.MediaType)
	}
	config, err := content.ReadBlob(ctx, dst, desc)
	if err != nil {
		t.Fatal(err)
	}
	tcCheckGolden(t, "config-only.json", config)
	// Nothing but the layers and the config: no manifest.
	n := 0
	if err := dst.Walk(ctx, func(content.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("%d blobs in the store, want 4 layers and the config", n)
	}
}

// tcCheckGolden compares got with testdata/golden/name; the file holds the
// exact bytes, indented only for reading when it is JSON would change them,
// so it holds them as written.
func tcCheckGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *tcUpdateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update-golden to write it)", err)
	}
	if !bytes.Equal(got, want) {
		var g, w bytes.Buffer
		json.Indent(&g, got, "", "  ")
		json.Indent(&w, want, "", "  ")
		t.Fatalf("%s differs\ngot:\n%s\nwant:\n%s", path, g.String(), w.String())
	}
}
