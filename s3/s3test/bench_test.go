package s3test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	bks3 "github.com/moby/buildkit/cache/remotecache/s3"

	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/bkobject"
	s3store "github.com/buildcache/remotecache/s3"
)

// BenchmarkS3SideBySide measures the export of a cache to a Versity S3
// gateway (posix backend on a temp dir, 127.0.0.1) by this module
// (remotecache.NewExporter(s3.New(...)) in the config-only form) and by
// BuildKit v0.34.2's s3 cache exporter (ResolveCacheExporterFunc), each
// with its default concurrency (4 blob uploads at once) and the SDK's
// default retries.
//
// Two graphs, two sub-benchmarks. shared-blobs:
// cachegen.NewWithOptions(2, 800, {BlobSize: 1 MiB, MaxBlobs: 200}), as
// BenchmarkRegistrySideBySide (registry/regtest) has it: most blobs sit on
// several parent chains, so the config has several layers per blob, and
// BuildKit's exporter, which works per layer, checks and uploads such a
// blob once per layer. distinct-blobs: cachegen.NewWithOptions(2, 300,
// {BlobSize: 1 MiB, ReuseBlobFraction: -1}), one layer per blob, where both
// make the same requests. The blobs are first written into a containerd
// local store, which both sides read. One run of a side exports under a prefix of its own that is new
// ("first export"), then exports the same again there, where every blob is
// ("re-export"); each export replays the graph into a new exporter (not
// timed) and times Finalize. Runs alternate, ours, BuildKit, ours, …,
// after one untimed warm-up run of each side, straight to the gateway; a
// last run of each side goes through the counting proxy, untimed, for the
// requests and bytes. The medians and the ratios ours/BuildKit are printed
// as a markdown table. CPU is this process's (the exporter's) and the
// gateway's, apart.
//
// It runs only with -bench, once whatever b.N (use -benchtime 1x):
//
//	cd s3/s3test
//	go test -run '^$' -bench S3SideBySide -benchtime 1x
//
// S3BENCH_RUNS sets the timed runs per side (default 5).
func BenchmarkS3SideBySide(b *testing.B) {
	bkobject.RunGraphs(b, benchS3)
}

// benchS3 runs BenchmarkS3SideBySide for one graph.
func benchS3(b *testing.B, g *cachegen.Graph) {
	ctx := context.Background()
	e := newEnv(b)
	bkobject.Bench{
		Server:    "gateway",
		To:        "the gateway",
		Title:     "export to Versity S3 gateway v1.8.0, posix",
		RunsEnv:   "S3BENCH_RUNS",
		URL:       e.gw.URL,
		Proxy:     e.proxy,
		ServerCPU: e.gw.cpu,
		Settle:    benchSync,
		Store: func(endpoint, prefix string) (content.Ingester, error) {
			return s3store.New(ctx, e.bucket, s3store.WithEndpoint(endpoint), s3store.WithRegion(region),
				s3store.WithCredentials(accessKey, secretKey, ""), s3store.WithPrefix(prefix))
		},
		Resolve: bks3.ResolveCacheExporterFunc(),
		Attrs: func(endpoint, prefix string) map[string]string {
			attrs := bkAttrs(e, prefix, "buildkit")
			attrs["endpoint_url"] = endpoint
			return attrs
		},
		// Each run of a side exports under a prefix of its own.
		Place: func(side, run string) string { return side + "-" + run + "/" },
		// The prefix is a directory of the posix backend.
		Free:   func(prefix string) { os.RemoveAll(filepath.Join(e.gw.Dir, e.bucket, strings.TrimSuffix(prefix, "/"))) },
		Config: func(prefix string) []byte { return e.object(b, prefix+"manifests/buildkit") },
	}.Run(b, g)
}
