package azbtest

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	bkazblob "github.com/moby/buildkit/cache/remotecache/azblob"

	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/bkobject"
)

// BenchmarkAzblobSideBySide measures the export of a cache to Azurite
// (its blob service on 127.0.0.1, --location on a temp dir) by this
// module (remotecache.NewExporter(azblob.New(...)) in the config-only
// form, 4 blobs at once) and by BuildKit v0.34.2's azblob cache exporter
// (ResolveCacheExporterFunc, which checks and uploads one layer after
// another), each with the SDK's default client options and retries, and
// the same shared key.
//
// Two graphs, two sub-benchmarks, as BenchmarkS3SideBySide (s3/s3test)
// has them. shared-blobs: cachegen.NewWithOptions(2, 800, {BlobSize:
// 1 MiB, MaxBlobs: 200}): most blobs sit on several parent chains, so the
// config has several layers per blob, and BuildKit's exporter, which works
// per layer, checks such a blob once per layer. distinct-blobs:
// cachegen.NewWithOptions(2, 300, {BlobSize: 1 MiB, ReuseBlobFraction:
// -1}), one layer per blob. The blobs are first written into a containerd
// local store, which both sides read. One run of a side exports into a
// new container ("first export"; the container is made before, untimed),
// then exports the same again there, where every blob is ("re-export");
// each export replays the graph into a new exporter (not timed) and times
// Finalize. Runs alternate, ours, BuildKit, ours, …, after one untimed
// warm-up run of each side, straight to Azurite; a last run of each side
// goes through the counting proxy, untimed, for the requests and bytes.
// The medians and the ratios ours/BuildKit are printed as a markdown
// table. CPU is this process's (the exporter's) and Azurite's, apart.
//
// It runs only with -bench, once whatever b.N (use -benchtime 1x):
//
//	cd azblob/azbtest
//	go test -run '^$' -bench AzblobSideBySide -benchtime 1x
//
// AZBENCH_RUNS sets the timed runs per side (default 5).
func BenchmarkAzblobSideBySide(b *testing.B) {
	bkobject.RunGraphs(b, benchAzblob)
}

// benchAzblob runs BenchmarkAzblobSideBySide for one graph.
func benchAzblob(b *testing.B, g *cachegen.Graph) {
	ctx := context.Background()
	az := startAzurite(b)
	admin := client(b, az.URL).ServiceClient()
	bkobject.Bench{
		Server:    "Azurite",
		To:        "Azurite",
		Title:     "export to Azurite " + azuriteVersion,
		RunsEnv:   "AZBENCH_RUNS",
		URL:       az.URL,
		Proxy:     startProxy(b, az.URL).Proxy,
		ServerCPU: az.cpu,
		Store: func(service, container string) (content.Ingester, error) {
			return azbstore.New(ctx, container, azbstore.WithAccountURL(service+"/"+account), azbstore.WithSharedKey(account, accountKey))
		},
		Resolve: bkazblob.ResolveCacheExporterFunc(),
		Attrs: func(service, container string) map[string]string {
			return map[string]string{
				"account_url":       service + "/" + account,
				"account_name":      account,
				"secret_access_key": accountKey,
				"container":         container,
			}
		},
		// Each run of a side exports into a new container, made before,
		// untimed.
		Place: func(side, run string) string {
			name := "bench-" + side + "-" + run
			if _, err := admin.NewContainerClient(name).Create(ctx, nil); err != nil {
				b.Fatalf("creating container %s: %v", name, err)
			}
			return name
		},
		Free: func(name string) {
			if _, err := admin.NewContainerClient(name).Delete(ctx, nil); err != nil {
				b.Fatalf("deleting container %s: %v", name, err)
			}
		},
		Config: func(name string) []byte {
			e := &env{az: az, container: name, admin: admin.NewContainerClient(name)}
			return e.blob(b, "manifests/buildkit")
		},
	}.Run(b, g)
}
