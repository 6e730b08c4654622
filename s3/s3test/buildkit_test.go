package s3test

import (
	"context"
	"testing"

	bks3 "github.com/moby/buildkit/cache/remotecache/s3"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/objstoretest"
	"github.com/buildcache/remotecache/interop/bkobject"
	s3store "github.com/buildcache/remotecache/s3"
)

// bkAttrs are the attributes of BuildKit's type=s3 cache for the env's
// bucket, through the proxy.
func bkAttrs(e *env, prefix, name string) map[string]string {
	return map[string]string{
		"bucket":            e.bucket,
		"region":            region,
		"endpoint_url":      e.proxy.URL,
		"use_path_style":    "true",
		"access_key_id":     accessKey,
		"secret_access_key": secretKey,
		"prefix":            prefix,
		"name":              name,
	}
}

// bkExporter returns BuildKit's s3 cache exporter with g added to it, the
// way a build adds its cache records, and blobs from g's provider.
func bkExporter(ctx context.Context, e *env, g *cachegen.Graph, prefix, name string) (func() error, error) {
	return bkobject.Exporter(ctx, bks3.ResolveCacheExporterFunc(), bkAttrs(e, prefix, name), g)
}

func bkExport(t testing.TB, e *env, g *cachegen.Graph, prefix, name string) {
	t.Helper()
	fin, err := bkExporter(context.Background(), e, g, prefix, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := fin(); err != nil {
		t.Fatalf("BuildKit's s3 export: %v", err)
	}
}

// The same graph exported by BuildKit's s3 exporter and by ours gives the
// same config bytes and the same blob keys; our store reads BuildKit's
// cache (Resolve, Import, Verify), and imports it to the same config.
func TestWeReadBuildKit(t *testing.T) {
	e := newEnv(t)
	g := bkobject.DeterministicGraph(41, 150)
	bkExport(t, e, g, "bk/", "main")
	theirs := e.store(t, s3store.WithPrefix("bk/"), s3store.WithNames("main"))
	ours := e.store(t, s3store.WithPrefix("ours/"), s3store.WithNames("main"))
	bkobject.WeReadBuildKit(t, suiteEnv{e}, g, theirs, ours)
}

// BuildKit's s3 importer reads what we export as it reads what its own
// exporter writes: the same graph exported by both, each read by the
// importer (ResolveCacheImporterFunc, then Resolve: the cache manager a
// build gets), answers the solver's questions alike. Every op is looked up
// by its vertex digest through its inputs, as the solver does, its records
// listed and a result loaded, which reads the result's blobs through the
// importer's own S3 reader.
func TestBuildKitReadsOurs(t *testing.T) {
	e := newEnv(t)
	g, vertex := bkobject.BuildGraph(42, 150)
	objstoretest.Export(t, e.store(t, s3store.WithPrefix("ours/"), s3store.WithNames("a", "b")), g)
	bkExport(t, e, g, "bk/", "main")

	// The importer reads the first name: "b;a" reads b.
	ours, oursRead := bkWalk(t, e, "ours/", "b;a", g, vertex)
	theirs, _ := bkWalk(t, e, "bk/", "main", g, vertex)
	bkobject.CompareWalks(t, g, ours, theirs, oursRead)
}

// bkWalk walks the cache at prefix and name with BuildKit's importer
// (bkobject.Walk).
func bkWalk(t *testing.T, e *env, prefix, name string, g *cachegen.Graph, vertex []digest.Digest) ([]bkobject.Outcome, map[digest.Digest]digest.Digest) {
	t.Helper()
	return bkobject.WalkStore(t, bks3.ResolveCacheImporterFunc(), bkAttrs(e, prefix, name), "s3test-"+prefix, prefix+name, g, vertex)
}

// BuildKit's parse of our config (v1.ParseConfig, with the descriptors its
// s3 importer makes from the layer annotations) marshals back to our
// config, annotations aside, and its descriptors are the graph's.
func TestBuildKitParsesOurConfig(t *testing.T) {
	e := newEnv(t)
	g := bkobject.DeterministicGraph(43, 150)
	objstoretest.Export(t, e.store(t), g)
	ours := e.object(t, "manifests/buildkit")
	bkobject.CheckParse(t, ours, g)
}
