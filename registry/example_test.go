package registry_test

import (
	"context"
	"log"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/registry"
)

// Export a cache to a registry, then import it back. (Not run: it needs a
// registry at localhost:5000.)
func Example() {
	ctx := context.Background()
	r, err := registry.New("localhost:5000/team/cache:main")
	if err != nil {
		log.Fatal(err)
	}

	exp, err := remotecache.NewExporter(r)
	if err != nil {
		log.Fatal(err)
	}
	// … exp.Add(…) for each cache record, dependencies first …
	if _, err := exp.Finalize(ctx); err != nil {
		log.Fatal(err)
	}

	desc, err := r.Resolve(ctx)
	if err != nil {
		log.Fatal(err)
	}
	graph := remotecache.NewCacheChains()
	if err := remotecache.Import(ctx, r, desc, graph); err != nil {
		log.Fatal(err)
	}
}
