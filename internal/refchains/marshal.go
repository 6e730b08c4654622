package refchains

import (
	"cmp"
	"context"
	remotecache "github.com/buildcache/remotecache"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// Marshal turns the graph into a cache config and the descriptors of the
// blobs it names. The config is a pure function of the graph: nothing in
// it depends on the order in which records were added, only on what Add
// made of them (see the package documentation for the one case where the
// order of Add calls changes the graph, and docs/design.md §4).
//
// Each record keeps only its best result, and only if every blob of it is
// available: a provider that implements content.InfoProvider is asked once
// per distinct blob. A blob is unavailable only when its provider says
// errdefs.ErrNotFound; any other Info error (but "not implemented") fails
// Marshal and names the blob. Layer media types are given in their OCI
// form.
func (c *CacheChains) Marshal(ctx context.Context) (*remotecache.CacheConfig, remotecache.DescriptorProvider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()

	m := &marshaler{ctx: ctx}
	m.recs = make([]*record, 0, len(c.records))
	for _, r := range c.records {
		if r.mergedInto == nil && !r.dropped {
			r.tmp = len(m.recs)
			m.recs = append(m.recs, r)
		}
	}
	// Every link must come from a record in the graph; Add keeps it so,
	// and this check keeps a broken graph from becoming a wrong config.
	for _, r := range m.recs {
		for i, slot := range r.slots {
			for _, l := range slot {
				if l.src.mergedInto != nil || l.src.dropped {
					return nil, nil, errors.Wrapf(errdefs.ErrInternal, "record %s: input %d: link from %s, which is no longer in the graph", r.dgst, i, l.src.dgst)
				}
			}
		}
	}
	if err := m.sortRecords(); err != nil {
		return nil, nil, err
	}
	if err := m.collectLayers(); err != nil {
		return nil, nil, err
	}
	return m.build(), m.descs, nil
}

// layerKey is a layer: a blob (its id) on top of a parent layer (its
// creation index, or -1).
type layerKey struct {
	blob   int
	parent int
}

// marshaler holds the state of one Marshal call.
type marshaler struct {
	ctx  context.Context
	recs []*record // live records; rec.tmp is the index here

	order []*record // records in output order
	rank  []int     // output index by tmp index

	cmpLinks [][][]link // per tmp index: links in comparison order, lazily
	ids      [][]byte   // per tmp index: structural id, lazily

	blobIDs    map[digest.Digest]int
	blobs      []blobState // by blob id
	layerIdx   map[uint64]int
	layers     []layerKey            // in creation order; parent is a creation index
	recLayer   []int                 // per output index: top layer (creation index), or -1
	recResult  []*remotecache.Result // per output index: the result written
	descs      remotecache.DescriptorProvider
	layerOrder []int // creation index by output index
	layerRank  []int // output index by creation index
}

// build writes the config, allocating in bulk.
func (m *marshaler) build() *remotecache.CacheConfig {
	cfg := &remotecache.CacheConfig{}
	if len(m.layerOrder) > 0 {
		cfg.Layers = make([]remotecache.CacheLayer, len(m.layerOrder))
		for i, l := range m.layerOrder {
			k := m.layers[l]
			parent := -1
			if k.parent >= 0 {
				parent = m.layerRank[k.parent]
			}
			cfg.Layers[i] = remotecache.CacheLayer{Blob: m.blobs[k.blob].dgst, ParentIndex: parent}
		}
	}
	if len(m.order) == 0 {
		return cfg
	}
	nslots, nlinks, nres := 0, 0, 0
	for i, r := range m.order {
		nslots += len(r.slots)
		for _, s := range r.slots {
			nlinks += len(s)
		}
		if m.recLayer[i] >= 0 {
			nres++
		}
	}
	slots := make([][]remotecache.CacheInput, nslots)
	links := make([]remotecache.CacheInput, nlinks)
	results := make([]remotecache.CacheResult, nres)
	cfg.Records = make([]remotecache.CacheRecord, len(m.order))
	for i, r := range m.order {
		rec := &cfg.Records[i]
		rec.Digest = r.dgst
		if l := m.recLayer[i]; l >= 0 {
			results[0] = remotecache.CacheResult{LayerIndex: m.layerRank[l], CreatedAt: m.recResult[i].CreatedAt}
			rec.Results = results[:1:1]
			results = results[1:]
		}
		if len(r.slots) == 0 {
			continue
		}
		rec.Inputs = slots[:len(r.slots):len(r.slots)]
		slots = slots[len(r.slots):]
		for s, slot := range r.slots {
			in := links[:len(slot):len(slot)]
			links = links[len(slot):]
			for j, l := range slot {
				in[j] = remotecache.CacheInput{Selector: l.selector, LinkIndex: m.rank[l.src.tmp]}
			}
			slices.SortFunc(in, func(x, y remotecache.CacheInput) int {
				return cmp.Or(cmp.Compare(x.LinkIndex, y.LinkIndex), strings.Compare(x.Selector, y.Selector))
			})
			rec.Inputs[s] = in
		}
	}
	return cfg
}
