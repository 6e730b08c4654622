package cachegen

import (
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"

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

// Target is what a ReplayerOf adds records to: anything with the Add of
// remotecache.Target, whose records, links and results are R, L and Res.
// BuildKit's solver.CacheExporterTarget has it too.
type Target[R, L, Res any] interface {
	Add(dgst digest.Digest, deps [][]L, results []Res) (R, bool, error)
}

// Replayer replays one graph into our Targets.
type Replayer = ReplayerOf[remotecache.Record, remotecache.Link, remotecache.Result]

// NewReplayer prepares g for replaying into our Targets with blobs from
// provider (nil: g.Provider()).
func NewReplayer(g *Graph, provider content.Provider) *Replayer {
	if provider == nil {
		provider = g.Provider()
	}
	return NewReplayerOf(g,
		func(src remotecache.Record, selector string) remotecache.Link {
			return remotecache.Link{Src: src, Selector: selector}
		},
		func(r Result) remotecache.Result {
			return remotecache.Result{CreatedAt: r.CreatedAt, Remote: &remotecache.Remote{Descriptors: r.Layers, Provider: provider}}
		})
}

// ReplayerOf replays one graph many times into Targets whose records,
// links and results are R, L and Res. It builds the results once, so that
// a replay costs the target's Add and little else.
type ReplayerOf[R comparable, L, Res any] struct {
	g       *Graph
	link    func(src R, selector string) L
	results [][]Res
	nlinks  int
	nslots  int
}

// NewReplayerOf prepares g for replaying into Targets whose links link
// makes and whose results result makes from the ops' results.
//
// Each op's results slice has its capacity cut to its length, so that a
// target that keeps the slice and appends to it never writes into a
// neighbour (BuildKit's CacheChains keeps it, and sorts it in place).
func NewReplayerOf[R comparable, L, Res any](g *Graph, link func(src R, selector string) L, result func(Result) Res) *ReplayerOf[R, L, Res] {
	rp := &ReplayerOf[R, L, Res]{g: g, link: link, results: make([][]Res, len(g.Ops))}
	nres := 0
	for _, op := range g.Ops {
		nres += len(op.Results)
		rp.nslots += len(op.Deps)
		for _, slot := range op.Deps {
			rp.nlinks += len(slot)
		}
	}
	all := make([]Res, nres)
	for i, op := range g.Ops {
		if len(op.Results) == 0 {
			continue
		}
		rs := all[:len(op.Results):len(op.Results)]
		all = all[len(op.Results):]
		for j, res := range op.Results {
			rs[j] = result(res)
		}
		rp.results[i] = rs
	}
	return rp
}

// Replay adds the ops to t in order (nil: InOrder) and returns the record
// of each op (the zero R for ops t did not export). Links from ops t did
// not export are left out, and an op left with an empty slot is not
// added.
func (rp *ReplayerOf[R, L, Res]) Replay(t Target[R, L, Res], order []int) ([]R, error) {
	g := rp.g
	if order == nil {
		order = g.InOrder()
	}
	if len(order) != len(g.Ops) {
		return nil, errors.Errorf("cachegen: order has %d ops, graph has %d", len(order), len(g.Ops))
	}
	const (
		pending = iota
		added
		skipped
	)
	var none R
	state := make([]uint8, len(g.Ops))
	recs := make([]R, len(g.Ops))
	// One backing array for every Add's deps; no Add sees another's.
	links := make([]L, 0, rp.nlinks)
	slots := make([][]L, 0, rp.nslots)
	for _, i := range order {
		if i < 0 || i >= len(g.Ops) || state[i] != pending {
			return nil, errors.Errorf("cachegen: order: op %d is out of range or repeated", i)
		}
		op := g.Ops[i]
		var deps [][]L
		if len(op.Deps) > 0 {
			slotStart := len(slots)
			for s, slot := range op.Deps {
				start := len(links)
				for _, d := range slot {
					switch state[d.Src] {
					case pending:
						return nil, errors.Errorf("cachegen: op %d slot %d: dep %d is not added yet", i, s, d.Src)
					case added:
						links = append(links, rp.link(recs[d.Src], d.Selector))
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
			return nil, errors.Wrapf(err, "cachegen: op %d (%s)", i, op.Name)
		}
		if !ok || rec == none {
			if !strings.HasPrefix(string(op.Digest), "random:") {
				return nil, errors.Errorf("cachegen: op %d (%s): record %s not exported", i, op.Name, op.Digest)
			}
			state[i] = skipped
			continue
		}
		state[i] = added
		recs[i] = rec
	}
	return recs, nil
}
