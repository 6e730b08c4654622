package azbtest

import (
	"context"
	"testing"

	bkazblob "github.com/moby/buildkit/cache/remotecache/azblob"
	digest "github.com/opencontainers/go-digest"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/objstoretest"
	"github.com/buildcache/remotecache/interop/bkobject"
)

// bkAttrs are the attributes of BuildKit's type=azblob cache for the
// env's container, through the proxy, as SERVERS.md gives them: the
// account name too, which BuildKit would take from an IP address's first
// number.
func bkAttrs(e *env, prefix, name string) map[string]string {
	return map[string]string{
		"account_url":       e.proxy.URL + "/" + account,
		"account_name":      account,
		"secret_access_key": accountKey,
		"container":         e.container,
		"prefix":            prefix,
		"name":              name,
	}
}

// bkExporter returns BuildKit's azblob cache exporter with g added to it,
// the way a build adds its cache records, and blobs from g's provider.
func bkExporter(ctx context.Context, attrs map[string]string, g *cachegen.Graph) (func() error, error) {
	return bkobject.Exporter(ctx, bkazblob.ResolveCacheExporterFunc(), attrs, g)
}

// bkExport exports g with BuildKit's azblob exporter under prefix and
// name, failing the test if it fails.
func bkExport(t testing.TB, e *env, g *cachegen.Graph, prefix, name string) {
	t.Helper()
	fin, err := bkExporter(context.Background(), bkAttrs(e, prefix, name), g)
	if err != nil {
		t.Fatal(err)
	}
	if err := fin(); err != nil {
		t.Fatalf("BuildKit's azblob export: %v", err)
	}
}

// The same graph exported by BuildKit's azblob exporter and by ours gives
// the same config bytes and the same blob names; our store reads
// BuildKit's cache (Resolve, Import, Verify), in the container BuildKit
// made, and imports it to the same config.
func TestWeReadBuildKit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true) // BuildKit creates the container
	g := bkobject.DeterministicGraph(41, 150)
	bkExport(t, e, g, "bk", "main")
	if n := e.proxy.Count("CREATE"); n != 1 {
		t.Errorf("BuildKit created the container %d times", n)
	}
	theirs := e.store(t, azbstore.WithPrefix("bk"), azbstore.WithNames("main"), azbstore.WithReadOnly())
	ours := e.store(t, azbstore.WithPrefix("ours/"), azbstore.WithNames("main"))
	bkobject.WeReadBuildKit(t, suiteEnv{e}, g, theirs, ours)
}

// BuildKit's azblob importer reads what we export as it reads what its own
// exporter writes: the same graph exported by both, each read by the
// importer (ResolveCacheImporterFunc, then Resolve: the cache manager a
// build gets), answers the solver's questions alike. Every op is looked up
// by its vertex digest through its inputs, as the solver does, its records
// listed and a result loaded, which reads the result's blobs through the
// importer's own azblob reader.
func TestBuildKitReadsOurs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g, vertex := bkobject.BuildGraph(42, 150)
	objstoretest.Export(t, e.store(t, azbstore.WithPrefix("ours"), azbstore.WithNames("a", "b")), g)
	bkExport(t, e, g, "bk", "main")

	ours, oursRead := bkWalk(t, e, "ours", "b", g, vertex)
	theirs, _ := bkWalk(t, e, "bk", "main", g, vertex)
	bkobject.CompareWalks(t, g, ours, theirs, oursRead)
	// BuildKit's azblob importer reads every name ("a;b") and merges
	// the caches: both of ours.
	both, _ := bkWalk(t, e, "ours", "a;b", g, vertex)
	for i := range g.Ops {
		if both[i].Keys == 0 || both[i].Loaded != ours[i].Loaded {
			t.Errorf("op %d (%s): BuildKit reading a;b: %+v; reading b: %+v", i, g.Ops[i].Name, both[i], ours[i])
		}
	}
}

// bkWalk walks the cache at prefix and name with BuildKit's importer
// (bkobject.Walk).
func bkWalk(t *testing.T, e *env, prefix, name string, g *cachegen.Graph, vertex []digest.Digest) ([]bkobject.Outcome, map[digest.Digest]digest.Digest) {
	t.Helper()
	return bkobject.WalkStore(t, bkazblob.ResolveCacheImporterFunc(), bkAttrs(e, prefix, name), "azbtest-"+prefix, prefix+name, g, vertex)
}

// BuildKit's parse of our config (v1.ParseConfig, with the descriptors its
// azblob importer makes from the layer annotations) marshals back to our
// config, annotations aside, and its descriptors are the graph's.
func TestBuildKitParsesOurConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := bkobject.DeterministicGraph(43, 150)
	objstoretest.Export(t, e.store(t), g)
	ours := e.blob(t, "manifests/buildkit")
	bkobject.CheckParse(t, ours, g)
}
