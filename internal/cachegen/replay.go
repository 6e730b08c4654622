package cachegen

import (
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/content"

	remotecache "github.com/buildcache/remotecache"
)

// Replay adds g's ops to t in the given order (nil: InOrder), with results
// whose blobs are read from provider (nil: g.Provider()).
//
// An op whose digest starts with "random:" is added, and t returns no
// record for it; links from such ops are left out, and an op left with an
// empty slot is not added at all (it cannot be reached), like its
// dependents.
func Replay(t remotecache.Target, g *Graph, order []int, provider content.Provider) error {
	_, err := NewReplayer(g, provider).Replay(t, order)
	return err
}

// Replayer replays one graph many times; it builds the results once.
type Replayer struct {
	g       *Graph
	results [][]remotecache.Result
	nlinks  int
	nslots  int
}

// NewReplayer prepares g for replaying with blobs from provider (nil:
// g.Provider()).
func NewReplayer(g *Graph, provider content.Provider) *Replayer {
	if provider == nil {
		provider = g.Provider()
	}
	rp := &Replayer{g: g, results: make([][]remotecache.Result, len(g.Ops))}
	nres := 0
	for _, op := range g.Ops {
		nres += len(op.Results)
		rp.nslots += len(op.Deps)
		for _, slot := range op.Deps {
			rp.nlinks += len(slot)
		}
	}
	all := make([]remotecache.Result, nres)
	remotes := make([]remotecache.Remote, nres)
	for i, op := range g.Ops {
		if len(op.Results) == 0 {
			continue
		}
		rs := all[:len(op.Results):len(op.Results)]
		all = all[len(op.Results):]
		for j, res := range op.Results {
			remotes[0] = remotecache.Remote{Descriptors: res.Layers, Provider: provider}
			rs[j] = remotecache.Result{CreatedAt: res.CreatedAt, Remote: &remotes[0]}
			remotes = remotes[1:]
		}
		rp.results[i] = rs
	}
	return rp
}

// Replay adds the ops to t in order (nil: InOrder) and returns the record
// of each op (nil for ops t did not export).
func (rp *Replayer) Replay(t remotecache.Target, order []int) ([]remotecache.Record, error) {
	g := rp.g
	if order == nil {
		order = g.InOrder()
	}
	if len(order) != len(g.Ops) {
		return nil, fmt.Errorf("cachegen: order has %d ops, graph has %d", len(order), len(g.Ops))
	}
	const (
		pending = iota
		added
		skipped
	)
	state := make([]uint8, len(g.Ops))
	recs := make([]remotecache.Record, len(g.Ops))
	// One backing array for every Add's deps; no Add sees another's.
	links := make([]remotecache.Link, 0, rp.nlinks)
	slots := make([][]remotecache.Link, 0, rp.nslots)
	for _, i := range order {
		if i < 0 || i >= len(g.Ops) || state[i] != pending {
			return nil, fmt.Errorf("cachegen: order: op %d is out of range or repeated", i)
		}
		op := g.Ops[i]
		var deps [][]remotecache.Link
		if len(op.Deps) > 0 {
			slotStart := len(slots)
			for s, slot := range op.Deps {
				start := len(links)
				for _, d := range slot {
					switch state[d.Src] {
					case pending:
						return nil, fmt.Errorf("cachegen: op %d slot %d: dep %d is not added yet", i, s, d.Src)
					case added:
						links = append(links, remotecache.Link{Src: recs[d.Src], Selector: d.Selector})
					}
				}
				if len(links) == start {
					break
				}
				slots = append(slots, links[start:len(links):len(links)])
			}
			if len(slots)-slotStart < len(op.Deps) {
				state[i] = skipped // a slot has no exportable source
				continue
			}
			deps = slots[slotStart:len(slots):len(slots)]
		}
		rec, ok, err := t.Add(op.Digest, deps, rp.results[i])
		if err != nil {
			return nil, fmt.Errorf("cachegen: op %d (%s): %w", i, op.Name, err)
		}
		if !ok || rec == nil {
			if !strings.HasPrefix(string(op.Digest), "random:") {
				return nil, fmt.Errorf("cachegen: op %d (%s): record %s not exported", i, op.Name, op.Digest)
			}
			state[i] = skipped
			continue
		}
		state[i] = added
		recs[i] = rec
	}
	return recs, nil
}
