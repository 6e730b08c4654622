package cachegen_test

import (
	"strconv"
	"testing"

	"github.com/buildcache/remotecache/internal/cachegen"
)

// BenchmarkShapes adds every op of each shape's graph, in generation order,
// to a fresh CacheChains and marshals it, at each of cachegen.ShapeSizes.
// Per-record figures are per distinct record (a graph fed twice has twice
// as many Add calls):
//
//	go test -run '^$' -bench Shapes -benchtime 1x ./internal/cachegen/
//	go test -run '^$' -bench 'Shapes/newlink' ./internal/cachegen/
func BenchmarkShapes(b *testing.B) {
	for _, sh := range cachegen.Shapes {
		for _, n := range cachegen.ShapeSizes {
			b.Run(sh.Name+"/"+strconv.Itoa(n/1000)+"k", func(b *testing.B) {
				cachegen.BenchMarshal(b, sh.New(1, n), n)
			})
		}
	}
}
