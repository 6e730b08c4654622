package cachegen_test

import (
	"context"
	"runtime"
	"strconv"
	"testing"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cputime"
)

// BenchmarkShapes adds every op of each shape's graph, in generation order,
// to a fresh CacheChains and marshals it, at each of cachegen.ShapeSizes.
// Per-record figures are per distinct record (a graph fed twice has twice
// as many Add calls):
//
//	go test -run '^$' -bench Shapes -benchtime 1x ./internal/cachegen/
//	go test -run '^$' -bench 'Shapes/newlink' ./internal/cachegen/
func BenchmarkShapes(b *testing.B) {
	ctx := context.Background()
	for _, sh := range cachegen.Shapes {
		for _, n := range cachegen.ShapeSizes {
			b.Run(sh.Name+"/"+strconv.Itoa(n/1000)+"k", func(b *testing.B) {
				g := sh.New(1, n)
				rp := cachegen.NewReplayer(g, g.Provider())
				order := g.InOrder()
				b.ReportAllocs()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				cpu0 := cputime.Process()
				b.ResetTimer()
				for range b.N {
					cc := remotecache.NewCacheChains()
					if _, err := rp.Replay(cc, order); err != nil {
						b.Fatal(err)
					}
					if _, _, err := cc.Marshal(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				cpu := cputime.Process() - cpu0
				runtime.ReadMemStats(&after)
				total := float64(b.N) * float64(n)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/record")
				b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/record")
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/record")
			})
		}
	}
}
