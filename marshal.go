package remotecache

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
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
// form. The blobs of every record's best result are checked before any
// result is picked, up to 16 Info calls at a time, on goroutines other
// than the caller's; with providers that disagree about a blob, the
// provider of the first record created with it decides.
func (c *CacheChains) Marshal(ctx context.Context) (*CacheConfig, DescriptorProvider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleResults()

	m := &marshaler{ctx: ctx, c: c}
	m.recs = make([]int32, 0, c.recs.len())
	for id := range c.recs.len() {
		if r := c.recs.at(id); r.merged == 0 && !r.dropped {
			m.recs = append(m.recs, int32(id))
		}
	}
	// Every link must come from a record in the graph; Add keeps it so,
	// and this check keeps a broken graph from becoming a wrong config.
	for _, r := range m.recs {
		for i := range int(c.recs.at(r).nslot) {
			for _, l := range c.slotLinks(r, i) {
				if src := c.recs.at(l.src); src.merged != 0 || src.dropped {
					return nil, nil, errors.Wrapf(errdefs.ErrInternal, "record %s: input %d: link from %s, which is no longer in the graph", c.dgst(r), i, c.dgst(l.src))
				}
			}
		}
	}
	// Two by two: the records' order and their inputs in the config
	// beside the results' checks and the layers, then the descriptors
	// beside the rest of the config.
	var wg sync.WaitGroup
	var layersErr error
	wg.Go(func() { layersErr = m.checkResults() })
	var cfg *CacheConfig
	sortErr := m.sortRecords()
	if sortErr == nil {
		cfg = m.buildRecords()
	}
	wg.Wait()
	if sortErr != nil {
		return nil, nil, sortErr
	}
	if layersErr != nil {
		return nil, nil, layersErr
	}
	f := newDescFill()
	wg.Go(func() { m.pickDescriptors(f) })
	m.buildResults(cfg)
	m.helpDescriptors(f)
	wg.Wait()
	return cfg, m.descs, nil
}

// marshaler holds the state of one Marshal call.
type marshaler struct {
	ctx  context.Context
	c    *CacheChains
	recs []int32 // live records, in creation order

	order []int32 // records in output order
	rank  []int32 // output index by record
	drank []int32 // by record: the rank of its digest among the distinct ones

	cmpLinks map[int32][]link // by slot: links in comparison order, lazily
	ids      *structuralIDs

	// What checkResults finds: by record, the node of the result written
	// (or -1); the nodes that are layers, how many, and by node the
	// output index of its layer; the layers in output order.
	top     []int32
	used    []bool
	nlayers int
	layerOf []int32
	layers  []outLayer
	descs   DescriptorProvider
}

// buildRecords writes the config's records, their digests and inputs,
// allocating in bulk; it needs only the records' order, so it runs beside
// checkResults. Records are read in creation order, which walks the
// graph's memory in order, and written to their places in output order,
// where their inputs are laid out in that order too, for the encoder.
func (m *marshaler) buildRecords() *CacheConfig {
	cfg := &CacheConfig{}
	if len(m.order) == 0 {
		return cfg
	}
	c := m.c
	n := len(m.order)
	// Where each record's slots and links go: counts by output index,
	// then their running sums.
	slotAt := make([]int32, n+1)
	linkAt := make([]int32, n+1)
	for _, r := range m.recs {
		i := m.rank[r]
		x := c.recs.at(r)
		slotAt[i+1] = x.nslot
		for s := range int(x.nslot) {
			linkAt[i+1] += c.slots.at(x.slot0 + int32(s)).n
		}
	}
	for i := range n {
		slotAt[i+1] += slotAt[i]
		linkAt[i+1] += linkAt[i]
	}
	slots := make([][]CacheInput, slotAt[n])
	links := make([]CacheInput, linkAt[n])
	cfg.Records = make([]CacheRecord, n)
	for _, r := range m.recs {
		i := m.rank[r]
		rec := &cfg.Records[i]
		rec.Digest = c.dgst(r)
		ns := int(c.recs.at(r).nslot)
		if ns == 0 {
			continue
		}
		at := slotAt[i]
		rec.Inputs = slots[at : int(at)+ns : int(at)+ns]
		off := linkAt[i]
		for s := range ns {
			slot := c.slotLinks(r, s)
			end := off + int32(len(slot))
			in := links[off:end:end]
			off = end
			for j, l := range slot {
				in[j] = CacheInput{Selector: c.selector(l), LinkIndex: int(m.rank[l.src])}
			}
			sortInputs(in)
			rec.Inputs[s] = in
		}
	}
	return cfg
}

// buildResults writes the config's layers and each record's result, which
// checkResults picked, laid out in output order.
func (m *marshaler) buildResults(cfg *CacheConfig) {
	if len(m.layers) > 0 {
		cfg.Layers = make([]CacheLayer, len(m.layers))
		for i, l := range m.layers {
			cfg.Layers[i] = CacheLayer{Blob: m.c.blobs.at(l.blob).dgst, ParentIndex: int(l.parent)}
		}
	}
	if len(m.order) == 0 {
		return
	}
	c := m.c
	// Where each record's result goes: counts by output index, then
	// their running sums; records read in creation order, as in
	// buildRecords.
	n := len(m.order)
	resAt := make([]int32, n+1)
	for _, r := range m.recs {
		if m.top[r] >= 0 {
			resAt[m.rank[r]+1] = 1
		}
	}
	for i := range n {
		resAt[i+1] += resAt[i]
	}
	results := make([]CacheResult, resAt[n])
	for _, r := range m.recs {
		if t := m.top[r]; t >= 0 {
			i := m.rank[r]
			k := resAt[i]
			results[k] = CacheResult{LayerIndex: int(m.layerOf[t]), CreatedAt: c.best(r).res.CreatedAt}
			cfg.Records[i].Results = results[k : k+1 : k+1]
		}
	}
}

// sortInputs sorts a slot's links by source index, then selector: by
// insertion for the few links a slot has, which beats a sort call.
func sortInputs(in []CacheInput) {
	if len(in) > 12 {
		slices.SortFunc(in, compareInputs)
		return
	}
	for i := 1; i < len(in); i++ {
		for j := i; j > 0 && compareInputs(in[j], in[j-1]) < 0; j-- {
			in[j], in[j-1] = in[j-1], in[j]
		}
	}
}

func compareInputs(x, y CacheInput) int {
	return cmp.Or(cmp.Compare(x.LinkIndex, y.LinkIndex), strings.Compare(x.Selector, y.Selector))
}
