package bkobject

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	bkremotecache "github.com/moby/buildkit/cache/remotecache"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/objstoretest"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

// Exporter returns the exporter that resolve (BuildKit's
// ResolveCacheExporterFunc of a store) makes from attrs, with g added to
// it the way a build adds its cache records and blobs from g's provider,
// and the func that finalizes it.
func Exporter(ctx context.Context, resolve bkremotecache.ResolveCacheExporterFunc, attrs map[string]string, g *cachegen.Graph) (func() error, error) {
	exp, err := resolve(ctx, nil, attrs)
	if err != nil {
		return nil, err
	}
	if _, err := sidebyside.NewBKReplayer(g, nil).Replay(exp, nil); err != nil {
		return nil, err
	}
	return func() error { _, err := exp.Finalize(ctx); return err }, nil
}

// WalkStore has resolve, BuildKit's ResolveCacheImporterFunc of a
// store, make the importer of the cache attrs name, and walks it (Walk).
func WalkStore(t testing.TB, resolve bkremotecache.ResolveCacheImporterFunc, attrs map[string]string, id, where string, g *cachegen.Graph, vertex []digest.Digest) ([]Outcome, map[digest.Digest]digest.Digest) {
	t.Helper()
	imp, _, err := resolve(context.Background(), nil, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return Walk(t, imp, id, where, g, vertex)
}

// CompareWalks checks the Walks of our cache and of BuildKit's of one
// graph g: BuildKit answers alike for every op reading either, finds
// every op and loads some result reading ours, and reads every blob of
// ours as the one asked for.
func CompareWalks(t testing.TB, g *cachegen.Graph, ours, theirs []Outcome, oursRead map[digest.Digest]digest.Digest) {
	t.Helper()
	found, loaded := 0, 0
	for i := range g.Ops {
		if ours[i] != theirs[i] {
			t.Errorf("op %d (%s): BuildKit reading ours: %+v; reading its own: %+v", i, g.Ops[i].Name, ours[i], theirs[i])
		}
		if ours[i].Keys > 0 {
			found++
		}
		if ours[i].Loaded {
			loaded++
		}
	}
	t.Logf("BuildKit found %d of %d ops and loaded %d results, reading %d blobs", found, len(g.Ops), loaded, len(oursRead))
	if found != len(g.Ops) || loaded == 0 {
		t.Errorf("BuildKit found %d of %d ops, loaded %d results", found, len(g.Ops), loaded)
	}
	for d, got := range oursRead {
		if got != d {
			t.Errorf("blob %s read by BuildKit as %s", d, got)
		}
	}
}

// SameKeys checks that the keys (object keys, blob names) under "bk/",
// where BuildKit exported a graph, are the keys under "ours/", where we
// exported it.
func SameKeys(t testing.TB, keys []string) {
	t.Helper()
	var bkKeys, ourKeys []string
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, "bk/"); ok {
			bkKeys = append(bkKeys, rest)
		} else if rest, ok := strings.CutPrefix(k, "ours/"); ok {
			ourKeys = append(ourKeys, rest)
		}
	}
	if strings.Join(bkKeys, "\n") != strings.Join(ourKeys, "\n") {
		t.Errorf("keys differ:\nBuildKit's %q\nours %q", bkKeys, ourKeys)
	}
}

// WeReadBuildKit checks our store against BuildKit's exporter, which has
// exported g under "bk/" with the name "main" into e: theirs, our store
// of that cache, imports it to the config BuildKit wrote (once links of a
// slot from one source are ordered) and verifies it; ours, our store
// writing under "ours/" with the name "main", writes that config for g,
// and the same keys as BuildKit.
func WeReadBuildKit(t testing.TB, e objstoretest.Env, g *cachegen.Graph, theirs objstoretest.Resolver, ours content.Ingester) {
	t.Helper()
	bkCfg := e.Object(t, "bk/manifests/main")
	want := SortSameSourceLinks(t, bkCfg)
	if got := objstoretest.Reimport(t, theirs); !bytes.Equal(got, want) {
		t.Errorf("BuildKit's cache imported and exported again is another config:\n%s\nBuildKit's:\n%s", got, bkCfg)
	}
	objstoretest.Verify(t, theirs)

	objstoretest.Export(t, ours, g)
	if ours := e.Object(t, "ours/manifests/main"); !bytes.Equal(ours, want) {
		t.Errorf("for the same graph our config differs from BuildKit's:\n%s\nBuildKit's:\n%s", ours, bkCfg)
	}
	SameKeys(t, e.Keys(t))
}
