package remotecache_test

import (
	"testing"
	"time"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
)

// The goroutine that takes Add's results stops when it has taken them
// all, so a graph that is never marshalled leaves no goroutine behind.
func TestResultsGoroutineStopsWithoutMarshal(t *testing.T) {
	for _, n := range []int{1, 256} {
		c := remotecache.NewCacheChainsWithResultBatchForTest(n)
		if err := cachegen.Replay(c, cachegen.New(7, 3000), nil, nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for remotecache.TakingResultsForTest(c) {
			if time.Now().After(deadline) {
				t.Fatalf("batch %d: still taking results 30s after the last Add", n)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
