package cachegen

import (
	"context"
	"runtime"
	"testing"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cputime"
)

// BenchMarshal is the body of the Marshal benchmarks: each iteration adds
// every op of g, in InOrder, to a fresh CacheChains, then marshals it. It
// reports ns/record, cpu-ns/record (the process's CPU time, GC included:
// on a loaded machine a steadier figure than elapsed time) and
// allocs/record, per one of the graph's records (the n it was made
// with).
func BenchMarshal(b *testing.B, g *Graph, records int) {
	rp := NewReplayer(g, g.Provider())
	order := g.InOrder()
	ctx := context.Background()
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
	total := float64(b.N) * float64(records)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/record")
	b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/record")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/record")
}
