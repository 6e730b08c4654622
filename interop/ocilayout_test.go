package interop

import (
	"context"
	"testing"

	"github.com/moby/buildkit/client/ociindex"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// BuildKit's `--import-cache type=local,src=DIR,tag=T` path: the client
// resolves the tag with client/ociindex, the daemon opens DIR as a
// containerd local store and reads the manifest by digest alone (its media
// type left empty). Both must work on a layout our ocilayout wrote.
func TestBuildKitReadsOurLayout(t *testing.T) {
	ctx := context.Background()
	for _, f := range forms {
		dir, s := cachetest.NewLayout(t)
		g := cachegen.NewWithOptions(7, 60, cachegen.Options{BlobSize: 256})
		desc := cachetest.Export(t, s, g, nil, nil, remotecache.WithManifestFormat(f.ours))
		if err := s.Tag(ctx, "buildcache", desc); err != nil {
			t.Fatal(err)
		}
		s.Close()

		got, err := ociindex.NewStoreIndex(dir).Get("buildcache")
		if err != nil || got == nil || got.Digest != desc.Digest {
			t.Fatalf("%s: BuildKit's ociindex resolves the tag to %v, %v; want %s", f.ours, got, err, desc.Digest)
		}
		byDigest := *got
		byDigest.MediaType = ""
		byDigest.Annotations = nil
		bk := bkImport(t, newStore(t, dir), byDigest)
		compareConfigs(t, "layout "+f.ours.String(), readConfig(t, newStore(t, dir), desc), func() []byte { return cachetest.ConfigJSON(t, bk) })
	}
}

// A tag BuildKit's ociindex wrote (as `--export-cache type=local` does)
// resolves with ours.
func TestWeReadBuildKitLayoutTags(t *testing.T) {
	ctx := context.Background()
	dir, s := cachetest.NewLayout(t)
	g := cachegen.NewWithOptions(8, 30, cachegen.Options{BlobSize: 128})
	desc := cachetest.Export(t, s, g, nil, nil)
	if err := ociindex.NewStoreIndex(dir).Put(desc, ociindex.Tag("bk-tag")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Resolve(ctx, "bk-tag")
	if err != nil || got.Digest != desc.Digest {
		t.Fatalf("Resolve(tag written by BuildKit) = %v, %v", got, err)
	}
	if err := remotecache.Import(ctx, s, got, remotecache.NewCacheChains()); err != nil {
		t.Fatal(err)
	}
}
