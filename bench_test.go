package remotecache_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// Generated graphs are cached across benchmark runs: a 100k-record graph
// takes seconds to make.
var (
	graphsMu sync.Mutex
	graphs   = map[string]*cachegen.Graph{}
)

func cachedGraph(key string, mk func() *cachegen.Graph) *cachegen.Graph {
	graphsMu.Lock()
	defer graphsMu.Unlock()
	g, ok := graphs[key]
	if !ok {
		g = mk()
		graphs[key] = g
	}
	return g
}

// BenchmarkMarshal: each iteration adds every record of a generated graph
// (in its generation order, deps first) to a fresh CacheChains, then
// marshals it. ns/record and allocs/record are per record added.
func BenchmarkMarshal(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		name := strconv.Itoa(n/1000) + "k"
		b.Run(name, func(b *testing.B) {
			g := cachedGraph("marshal/"+name, func() *cachegen.Graph { return cachegen.New(1, n) })
			cachegen.BenchMarshal(b, g, n)
		})
	}
}

// countingStore is a content store that counts the writers it opens.
type countingStore struct {
	content.Store
	writers atomic.Int64
}

func (s *countingStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	s.writers.Add(1)
	return s.Store.Writer(ctx, opts...)
}

// finalizeGraph is the graph BenchmarkFinalize exports: about 1,500
// records over 200 blobs of 64 KiB.
func finalizeGraph() *cachegen.Graph {
	return cachedGraph("finalize", func() *cachegen.Graph {
		return cachegen.NewWithOptions(2, 1500, cachegen.Options{BlobSize: 64 << 10, MaxBlobs: 200})
	})
}

func usedBlobBytes(g *cachegen.Graph) (blobs int, size int64) {
	seen := map[string]bool{}
	for _, op := range g.Ops {
		for _, r := range op.Results {
			for _, l := range r.Layers {
				if !seen[l.Digest.String()] {
					seen[l.Digest.String()] = true
					size += l.Size
				}
			}
		}
	}
	return len(seen), size
}

// BenchmarkFinalize exports a graph with real blob bytes into a containerd
// local store: "fresh", a new empty store each iteration; "unchanged", a
// store that already holds everything, where Finalize must write nothing.
func BenchmarkFinalize(b *testing.B) {
	g := finalizeGraph()
	nblobs, size := usedBlobBytes(g)

	b.Run("fresh", func(b *testing.B) {
		root := b.TempDir()
		b.SetBytes(size)
		b.ReportAllocs()
		var writes int64
		for i := range b.N {
			dir := filepath.Join(root, strconv.Itoa(i))
			st, err := local.NewStore(dir)
			if err != nil {
				b.Fatal(err)
			}
			cs := &countingStore{Store: st}
			cachetest.Export(b, cs, g, nil, nil)
			writes += cs.writers.Load()
			b.StopTimer()
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		// Every layer blob once, the config and the manifest.
		if want := int64(b.N) * int64(nblobs+2); writes > want {
			b.Fatalf("%d ingester writers for %d exports of %d blobs, want at most %d", writes, b.N, nblobs, want)
		}
		b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
	})

	b.Run("unchanged", func(b *testing.B) {
		st, err := local.NewStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		first := cachetest.Export(b, st, g, nil, nil)
		b.ReportAllocs()
		b.ResetTimer()
		var writes int64
		for range b.N {
			cs := &countingStore{Store: st}
			res := cachetest.Export(b, cs, g, nil, nil)
			writes += cs.writers.Load()
			if res.Digest != first.Digest {
				b.Fatalf("re-export gives manifest %s, first export %s", res.Digest, first.Digest)
			}
		}
		b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
		if writes != 0 {
			b.Fatalf("re-export of an unchanged cache opened %d ingester writers, want 0", writes)
		}
	})
}

// Re-exporting an unchanged cache, even with its records added in another
// order, writes nothing: every blob, the config and the manifest are in the
// store already, with the same bytes. No blob is read and every step is
// reported skipped.
func TestReexportUnchangedMakesNoWrites(t *testing.T) {
	g := cachegen.NewWithOptions(3, 300, cachegen.Options{BlobSize: 4 << 10, MaxBlobs: 50, AgainFraction: 0.05})
	nblobs, _ := usedBlobBytes(g)
	for _, format := range []remotecache.ManifestFormat{remotecache.FormatImageManifest, remotecache.FormatOCIIndex, remotecache.FormatManifestList} {
		t.Run(format.String(), func(t *testing.T) {
			st, err := local.NewStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			cs := &countingStore{Store: st}
			first := cachetest.Export(t, cs, g, nil, nil, remotecache.WithManifestFormat(format))
			if w := cs.writers.Load(); w != int64(nblobs+2) {
				t.Fatalf("first export opened %d writers, want %d (%d blobs, config, manifest)", w, nblobs+2, nblobs)
			}

			for k, order := range [][]int{g.InOrder(), g.Shuffle(7), g.WalkOrder(7)} {
				cs := &countingStore{Store: st}
				p := g.Provider()
				var (
					mu     sync.Mutex
					events []remotecache.Event
				)
				sink := remotecache.ProgressFunc(func(e remotecache.Event) {
					mu.Lock()
					events = append(events, e)
					mu.Unlock()
				})
				res := cachetest.Export(t, cs, g, order, p, remotecache.WithManifestFormat(format), remotecache.WithProgress(sink))
				if w := cs.writers.Load(); w != 0 {
					t.Errorf("order %d: re-export of an unchanged cache opened %d ingester writers, want 0", k, w)
				}
				if n := p.ReaderAtCalls(); n != 0 {
					t.Errorf("order %d: re-export read %d blobs, want 0", k, n)
				}
				if res.Digest != first.Digest {
					t.Errorf("order %d: manifest %s, first export %s", k, res.Digest, first.Digest)
				}
				mu.Lock()
				completed := 0
				for _, e := range events {
					if e.Completed.IsZero() {
						continue
					}
					completed++
					if !e.Skipped || e.Err != nil {
						t.Errorf("order %d: step %q completed without being skipped (err %v)", k, e.ID, e.Err)
					}
				}
				mu.Unlock()
				if completed != nblobs+2 {
					t.Errorf("order %d: %d steps completed, want %d", k, completed, nblobs+2)
				}
			}
		})
	}
}
