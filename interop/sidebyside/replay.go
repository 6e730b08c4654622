// Package sidebyside holds what cmd/sidebyside needs to drive BuildKit's
// cache exporter with a generated graph, the way cachegen.Replayer drives
// ours. It is not a test file, so a main package can import it.
package sidebyside

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/solver"

	"github.com/buildcache/remotecache/internal/cachegen"
)

// BKReplayer replays one graph into BuildKit's CacheExporterTarget many
// times. Like cachegen.Replayer it builds the results once, so that a
// replay costs BuildKit's Add and little else.
type BKReplayer struct {
	g       *cachegen.Graph
	results [][]solver.CacheExportResult
	nlinks  int
	nslots  int
}

// NewBKReplayer prepares g for replaying with blobs from provider (nil:
// g.Provider()).
//
// BuildKit's CacheChains keeps the results slice it is given and sorts it
// in place when it picks a record's best result; each slice has its
// capacity cut to its length, so an append never writes into a neighbour.
func NewBKReplayer(g *cachegen.Graph, provider content.InfoReaderProvider) *BKReplayer {
	if provider == nil {
		provider = g.Provider()
	}
	rp := &BKReplayer{g: g, results: make([][]solver.CacheExportResult, len(g.Ops))}
	nres := 0
	for _, op := range g.Ops {
		nres += len(op.Results)
		rp.nslots += len(op.Deps)
		for _, slot := range op.Deps {
			rp.nlinks += len(slot)
		}
	}
	all := make([]solver.CacheExportResult, nres)
	remotes := make([]solver.Remote, nres)
	for i, op := range g.Ops {
		if len(op.Results) == 0 {
			continue
		}
		rs := all[:len(op.Results):len(op.Results)]
		all = all[len(op.Results):]
		for j, res := range op.Results {
			remotes[0] = solver.Remote{Descriptors: res.Layers, Provider: provider}
			rs[j] = solver.CacheExportResult{CreatedAt: res.CreatedAt, Result: &remotes[0]}
			remotes = remotes[1:]
		}
		rp.results[i] = rs
	}
	return rp
}

// Replay adds the ops to t in order (nil: g.InOrder()), as
// cachegen.Replayer.Replay does for our Target: links from ops t did not
// export are left out, and an op left with an empty slot is not added.
func (rp *BKReplayer) Replay(t solver.CacheExporterTarget, order []int) error {
	g := rp.g
	if order == nil {
		order = g.InOrder()
	}
	if len(order) != len(g.Ops) {
		return fmt.Errorf("sidebyside: order has %d ops, graph has %d", len(order), len(g.Ops))
	}
	recs := make([]solver.CacheExporterRecord, len(g.Ops))
	done := make([]bool, len(g.Ops))
	// One backing array for every Add's deps; no Add sees another's.
	links := make([]solver.CacheLink, 0, rp.nlinks)
	slots := make([][]solver.CacheLink, 0, rp.nslots)
	for _, i := range order {
		if i < 0 || i >= len(g.Ops) || done[i] {
			return fmt.Errorf("sidebyside: order: op %d is out of range or repeated", i)
		}
		done[i] = true
		op := g.Ops[i]
		var deps [][]solver.CacheLink
		if len(op.Deps) > 0 {
			slotStart := len(slots)
			for s, slot := range op.Deps {
				start := len(links)
				for _, d := range slot {
					if !done[d.Src] {
						return fmt.Errorf("sidebyside: op %d slot %d: dep %d is not added yet", i, s, d.Src)
					}
					if recs[d.Src] != nil {
						links = append(links, solver.CacheLink{Src: recs[d.Src], Selector: d.Selector})
					}
				}
				if len(links) == start {
					break
				}
				slots = append(slots, links[start:len(links):len(links)])
			}
			if len(slots)-slotStart < len(op.Deps) {
				continue // a slot has no exportable source
			}
			deps = slots[slotStart:len(slots):len(slots)]
		}
		rec, ok, err := t.Add(op.Digest, deps, rp.results[i])
		if err != nil {
			return fmt.Errorf("sidebyside: buildkit Add op %d (%s): %w", i, op.Name, err)
		}
		if !ok || rec == nil {
			if !strings.HasPrefix(string(op.Digest), "random:") {
				return fmt.Errorf("sidebyside: buildkit Add op %d (%s): record %s not exported", i, op.Name, op.Digest)
			}
			continue
		}
		recs[i] = rec
	}
	return nil
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
			return fmt.Errorf("sidebyside: writing blob %s: %w", dgst, err)
		}
	}
	return nil
}
