package s3_test

import (
	"context"
	"log"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/s3"
)

// Export a cache to a bucket in BuildKit's s3 layout, then read it back.
// (It needs a bucket, so it is compiled, not run.)
func ExampleNew() {
	ctx := context.Background()
	store, err := s3.New(ctx, "my-bucket", s3.WithPrefix("ci/"), s3.WithNames("main", "pr-42"))
	if err != nil {
		log.Fatal(err)
	}
	e, err := remotecache.NewExporter(store, remotecache.WithManifestFormat(remotecache.FormatConfigOnly))
	if err != nil {
		log.Fatal(err)
	}
	// e.Add(...) for each cache record, dependencies first; then the
	// blobs, and last the config under ci/manifests/main and
	// ci/manifests/pr-42:
	if _, err := e.Finalize(ctx); err != nil {
		log.Fatal(err)
	}

	desc, err := store.Resolve(ctx) // ci/manifests/main
	if err != nil {
		log.Fatal(err)
	}
	chains := remotecache.NewCacheChains()
	if err := remotecache.Import(ctx, store, desc, chains); err != nil {
		log.Fatal(err)
	}
}
