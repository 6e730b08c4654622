package remotecache_test

import (
	"testing"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
)

// The records stay in a topological order (order.go) through re-adds with
// new links, cycles dropped and merges: every link goes from a lower ord to
// a higher one, and no two records share an ord.
func TestTopologicalOrderKept(t *testing.T) {
	opts := cachegen.Options{AgainFraction: 0.3, ExtraLinkFraction: 0.7, MergeFraction: 0.08, RandomFraction: 0.02}
	for seed := range int64(40) {
		g := cachegen.NewWithOptions(seed, 50+int(seed)*13, opts)
		for k, order := range [][]int{g.InOrder(), g.Shuffle(seed), g.WalkOrder(seed)} {
			c := remotecache.NewCacheChains()
			// A replay may stop at a link from a record a merge dropped
			// (ErrFailedPrecondition): the order must hold all the same.
			_ = cachegen.Replay(c, g, order, nil)
			if err := remotecache.CheckOrderForTest(c); err != nil {
				t.Fatalf("seed %d order %d: %v", seed, k, err)
			}
		}
	}
}
