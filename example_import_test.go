package remotecache_test

import (
	"context"
	"fmt"
	"log"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/ocilayout"
)

// Read back a cache that BuildKit wrote (buildctl --export-cache
// type=local,dest=DIR) into a graph, and look at it.
func ExampleImport() {
	ctx := context.Background()
	store, err := ocilayout.Open("testdata/buildkit-local-cache", ocilayout.WithReadOnly())
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	desc, err := store.Resolve(ctx, "latest")
	if err != nil {
		log.Fatal(err)
	}
	chains := remotecache.NewCacheChains()
	if err := remotecache.Import(ctx, store, desc, chains); err != nil {
		log.Fatal(err)
	}
	config, _, err := chains.Marshal(ctx)
	if err != nil {
		log.Fatal(err)
	}
	withResult := 0
	for _, r := range config.Records {
		if len(r.Results) > 0 {
			withResult++
		}
	}
	fmt.Printf("%d records, %d with a result, %d layers\n", len(config.Records), withResult, len(config.Layers))
	// Output:
	// 11 records, 8 with a result, 8 layers
}
