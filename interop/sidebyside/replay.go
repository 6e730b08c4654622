// Package sidebyside holds what cmd/sidebyside and the side-by-side
// benchmarks (of registry/regtest, of bkobject for the object stores)
// need to drive BuildKit's cache exporter with a generated graph, the way
// cachegen.Replayer drives ours, and to sum up their timed runs (Median,
// Ms, EnvInt). It is not a test file, so a main package and other
// modules can import it.
package sidebyside

import (
	"context"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/solver"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/cachegen"
)

// BKReplayer replays one graph into BuildKit's CacheExporterTarget many
// times, as cachegen.Replayer does into ours.
type BKReplayer = cachegen.ReplayerOf[solver.CacheExporterRecord, solver.CacheLink, solver.CacheExportResult]

// NewBKReplayer prepares g for replaying into BuildKit's targets with
// blobs from provider (nil: g.Provider()).
func NewBKReplayer(g *cachegen.Graph, provider content.InfoReaderProvider) *BKReplayer {
	if provider == nil {
		provider = g.Provider()
	}
	return cachegen.NewReplayerOf(g,
		func(src solver.CacheExporterRecord, selector string) solver.CacheLink {
			return solver.CacheLink{Src: src, Selector: selector}
		},
		func(r cachegen.Result) solver.CacheExportResult {
			return solver.CacheExportResult{CreatedAt: r.CreatedAt, Result: &solver.Remote{Descriptors: r.Layers, Provider: provider}}
		})
}

// FillStore writes every blob of g that its provider has into store, so
// that exports can read them from a real content store instead of
// generating them.
func FillStore(ctx context.Context, store content.Ingester, g *cachegen.Graph) error {
	p := g.Provider()
	for _, dgst := range g.BlobOrder {
		b := g.Blobs[dgst]
		if b.Missing {
			continue
		}
		ra, err := p.ReaderAt(ctx, b.Descriptor)
		if err != nil {
			return err
		}
		r := io.NewSectionReader(ra, 0, ra.Size())
		err = content.WriteBlob(ctx, store, "fill-"+dgst.String(), r, b.Descriptor)
		ra.Close()
		if err != nil {
			return errors.Wrapf(err, "sidebyside: writing blob %s", dgst)
		}
	}
	return nil
}
