package remotecache

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// DescriptorProvider maps the blobs of a cache config to their descriptors
// and to where they can be read. It is itself a content.Provider and a
// content.InfoProvider for those blobs.
type DescriptorProvider map[digest.Digest]DescriptorProviderPair

// DescriptorProviderPair is a blob's descriptor and a provider that has it.
type DescriptorProviderPair struct {
	Descriptor ocispec.Descriptor
	Provider   content.Provider
}

// ReaderAt implements content.Provider.
func (p DescriptorProviderPair) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if p.Provider == nil {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "blob %s: no provider", desc.Digest)
	}
	return p.Provider.ReaderAt(ctx, desc)
}

// Info implements content.InfoProvider: it asks the provider when that can
// answer, else it answers from the descriptor.
func (p DescriptorProviderPair) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if ip, ok := p.Provider.(content.InfoProvider); ok {
		return ip.Info(ctx, dgst)
	}
	if dgst != p.Descriptor.Digest {
		return content.Info{}, errors.Wrapf(errdefs.ErrNotFound, "blob %s", dgst)
	}
	return content.Info{Digest: dgst, Size: p.Descriptor.Size}, nil
}

// ReaderAt implements content.Provider for the blobs in p.
func (p DescriptorProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	pair, ok := p[desc.Digest]
	if !ok {
		return nil, errors.Wrapf(errdefs.ErrNotFound, "blob %s", desc.Digest)
	}
	return pair.ReaderAt(ctx, desc)
}

// Info implements content.InfoProvider for the blobs in p.
func (p DescriptorProvider) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	pair, ok := p[dgst]
	if !ok {
		return content.Info{}, errors.Wrapf(errdefs.ErrNotFound, "blob %s", dgst)
	}
	return pair.Info(ctx, dgst)
}

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
func (c *CacheChains) Marshal(ctx context.Context) (*CacheConfig, DescriptorProvider, error) {
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
					return nil, nil, errors.Errorf("record %s: input %d: link from %s, which is no longer in the graph", r.dgst, i, l.src.dgst)
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
	layers     []layerKey // in creation order; parent is a creation index
	recLayer   []int      // per output index: top layer (creation index), or -1
	recResult  []*Result  // per output index: the result written
	descs      DescriptorProvider
	layerOrder []int // creation index by output index
	layerRank  []int // output index by creation index
}

// sortRecords orders the records by digest, then by the shape of their
// inputs (slot count, links per slot, selectors and source digests), with
// remaining ties broken by structure, never by insertion order.
func (m *marshaler) sortRecords() error {
	// Most comparisons are settled by the first bytes of the digests;
	// compare those as integers kept next to the record. Digests of other
	// algorithms than the usual one are ordered by the full string.
	ks := make([]prefixKey, len(m.recs))
	for i, r := range m.recs {
		ks[i] = newPrefixKey(r.dgst, i)
	}
	sameAlg := true
	for _, r := range m.recs {
		sameAlg = sameAlg && strings.HasPrefix(string(r.dgst), "sha256:")
	}
	slices.SortFunc(ks, func(x, y prefixKey) int {
		if sameAlg {
			if c := x.compare(y); c != 0 {
				return c
			}
		}
		return m.compareRecords(m.recs[x.i], m.recs[y.i])
	})
	m.order = make([]*record, len(ks))
	m.rank = make([]int, len(m.recs))
	for i, k := range ks {
		m.order[i] = m.recs[k.i]
		m.rank[k.i] = i
	}
	return m.ctx.Err()
}

func (m *marshaler) compareRecords(a, b *record) int {
	if c := strings.Compare(string(a.dgst), string(b.dgst)); c != 0 || a == b {
		return c
	}
	if c := cmp.Compare(len(a.slots), len(b.slots)); c != 0 {
		return c
	}
	for i := range a.slots {
		if c := cmp.Compare(len(a.slots[i]), len(b.slots[i])); c != 0 {
			return c
		}
	}
	la, lb := m.linksForCompare(a), m.linksForCompare(b)
	for i := range la {
		for j := range la[i] {
			x, y := la[i][j], lb[i][j]
			if c := strings.Compare(x.selector, y.selector); c != 0 {
				return c
			}
			if c := strings.Compare(string(x.src.dgst), string(y.src.dgst)); c != 0 {
				return c
			}
		}
	}
	if c := slices.Compare(m.structuralID(a), m.structuralID(b)); c != 0 {
		return c
	}
	// Structurally equal records are not made by Add; order them by their
	// results so that the output still does not depend on insertion order.
	if c := compareResults(a.best(), b.best()); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// linksForCompare returns r's links, each slot sorted by selector, source
// digest and source structure.
func (m *marshaler) linksForCompare(r *record) [][]link {
	if m.cmpLinks == nil {
		m.cmpLinks = make([][][]link, len(m.recs))
	}
	if ls := m.cmpLinks[r.tmp]; ls != nil {
		return ls
	}
	ls := make([][]link, len(r.slots))
	for i, slot := range r.slots {
		ls[i] = slices.Clone(slot)
		slices.SortFunc(ls[i], func(x, y link) int {
			if c := strings.Compare(x.selector, y.selector); c != 0 {
				return c
			}
			if c := strings.Compare(string(x.src.dgst), string(y.src.dgst)); c != 0 {
				return c
			}
			return slices.Compare(m.structuralID(x.src), m.structuralID(y.src))
		})
	}
	m.cmpLinks[r.tmp] = ls
	return ls
}

// structuralID is a digest of r's digest and, recursively, of its inputs:
// equal for records that look the same from the roots up.
func (m *marshaler) structuralID(r *record) []byte {
	if m.ids == nil {
		m.ids = make([][]byte, len(m.recs))
	}
	if id := m.ids[r.tmp]; id != nil {
		return id
	}
	h := sha256.New()
	h.Write([]byte(r.dgst))
	var buf [8]byte
	for _, slot := range r.slots {
		binary.LittleEndian.PutUint64(buf[:], uint64(len(slot)))
		h.Write(buf[:])
		keys := make([][]byte, len(slot))
		for j, l := range slot {
			k := append([]byte(l.selector), 0)
			keys[j] = append(k, m.structuralID(l.src)...)
		}
		slices.SortFunc(keys, func(x, y []byte) int { return slices.Compare(x, y) })
		for _, k := range keys {
			binary.LittleEndian.PutUint64(buf[:], uint64(len(k)))
			h.Write(buf[:])
			h.Write(k)
		}
	}
	id := h.Sum(nil)
	m.ids[r.tmp] = id
	return id
}

func compareResults(a, b *Result) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return -1
		default:
			return 1
		}
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	da, db := remoteDescs(a.Remote), remoteDescs(b.Remote)
	return slices.CompareFunc(da, db, func(x, y ocispec.Descriptor) int {
		return strings.Compare(string(x.Digest), string(y.Digest))
	})
}

func remoteDescs(r *Remote) []ocispec.Descriptor {
	if r == nil {
		return nil
	}
	return r.Descriptors
}

// blobState is what Marshal knows of one distinct blob.
type blobState struct {
	dgst  digest.Digest
	avail int8 // 0 unknown, 1 available, 2 not
	// rank is the output index of the record whose descriptor of the blob
	// is kept: the first record in output order that uses it.
	rank     int
	desc     *ocispec.Descriptor
	provider content.Provider
}

// collectLayers picks each record's result and builds the layer chains,
// one per distinct (blob, parent chain).
func (m *marshaler) collectLayers() error {
	n := len(m.recs)
	m.blobIDs = make(map[digest.Digest]int, n)
	m.blobs = make([]blobState, 0, n)
	m.layerIdx = make(map[uint64]int, n)
	m.layers = make([]layerKey, 0, n)
	m.recLayer = make([]int, n)
	m.recResult = make([]*Result, n)
	var ids []int
	// Creation order walks memory in order; nothing in the output
	// depends on it.
	for _, r := range m.recs {
		i := m.rank[r.tmp]
		m.recLayer[i] = -1
		res := r.best()
		if res == nil || res.Remote == nil || len(res.Remote.Descriptors) == 0 {
			continue
		}
		ids = ids[:0]
		for _, d := range res.Remote.Descriptors {
			id, ok := m.blobIDs[d.Digest]
			if !ok {
				id = len(m.blobs)
				m.blobIDs[d.Digest] = id
				m.blobs = append(m.blobs, blobState{dgst: d.Digest, rank: -1})
			}
			ids = append(ids, id)
		}
		ok, err := m.available(res.Remote, ids)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		parent := -1
		for j, id := range ids {
			k := uint64(id)<<32 | uint64(uint32(parent+1))
			idx, ok := m.layerIdx[k]
			if !ok {
				idx = len(m.layers)
				m.layerIdx[k] = idx
				m.layers = append(m.layers, layerKey{blob: id, parent: parent})
			}
			if b := &m.blobs[id]; b.rank < 0 || i < b.rank {
				b.rank, b.desc, b.provider = i, &res.Remote.Descriptors[j], res.Remote.Provider
			}
			parent = idx
		}
		m.recLayer[i] = parent
		m.recResult[i] = res
	}
	kept := 0
	for _, b := range m.blobs {
		if b.desc != nil {
			kept++
		}
	}
	m.descs = make(DescriptorProvider, kept)
	for _, b := range m.blobs {
		if b.desc == nil {
			continue
		}
		d := *b.desc
		if d.MediaType != "" {
			d.MediaType = convertLayerMediaType(d.MediaType, true)
		}
		m.descs[d.Digest] = DescriptorProviderPair{Descriptor: d, Provider: b.provider}
	}
	m.sortLayers()
	return nil
}

// available tells whether every blob of r (ids: their blob ids) can be
// read, asking the provider once per blob. A provider that cannot answer
// Info (or answers "not implemented") is trusted. Only "not found" makes a
// blob unavailable: any other error (a registry's 503, a timeout, a
// refused credential) fails Marshal, naming the blob, so that a flaky
// source never turns into a smaller cache.
func (m *marshaler) available(r *Remote, ids []int) (bool, error) {
	ip, ok := r.Provider.(content.InfoProvider)
	if !ok {
		return true, nil
	}
	for _, id := range ids {
		b := &m.blobs[id]
		if b.avail == 0 {
			if err := m.ctx.Err(); err != nil {
				return false, err
			}
			_, err := ip.Info(m.ctx, b.dgst)
			switch {
			case err == nil || errdefs.IsNotImplemented(err):
				b.avail = 1
			case errdefs.IsNotFound(err):
				b.avail = 2
			default:
				return false, errors.Wrapf(err, "checking blob %s", b.dgst)
			}
		}
		if b.avail == 2 {
			return false, nil
		}
	}
	return true, nil
}

// sortLayers orders layers by blob, then by parent chain: no parent first,
// then parent chains compared base first, blob by blob.
func (m *marshaler) sortLayers() {
	n := len(m.layers)
	blobRank := m.rankBlobs()
	// Layers by blob rank, as keys rank<<32 | layer.
	byBlob := make([]uint64, n)
	for i, l := range m.layers {
		byBlob[i] = uint64(blobRank[l.blob])<<32 | uint64(i)
	}
	slices.Sort(byBlob)
	// Children of each layer (and of the virtual root, index n), as CSR,
	// each list in blob order.
	start := make([]int, n+2)
	for _, l := range m.layers {
		p := l.parent
		if p < 0 {
			p = n
		}
		start[p+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	kids := make([]int, n)
	fill := slices.Clone(start[:n+1])
	for _, k := range byBlob {
		i := int(uint32(k))
		p := m.layers[i].parent
		if p < 0 {
			p = n
		}
		kids[fill[p]] = i
		fill[p]++
	}
	// Preorder of the trie of chains: the rank of each chain read base first.
	pre := make([]int, n)
	stack := []int{n}
	next := 0
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if x < n {
			pre[x] = next
			next++
		}
		ks := kids[start[x]:start[x+1]]
		for i := len(ks) - 1; i >= 0; i-- {
			stack = append(stack, ks[i])
		}
	}
	// By blob, then by parent chain (no parent first).
	parentPre := func(i int) int {
		if p := m.layers[i].parent; p >= 0 {
			return pre[p]
		}
		return -1
	}
	m.layerOrder = make([]int, n)
	for i, k := range byBlob {
		m.layerOrder[i] = int(uint32(k))
	}
	for i := 0; i < n; {
		j := i + 1
		for j < n && byBlob[j]>>32 == byBlob[i]>>32 {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(m.layerOrder[i:j], func(x, y int) int { return cmp.Compare(parentPre(x), parentPre(y)) })
		}
		i = j
	}
	m.layerRank = make([]int, n)
	for i, l := range m.layerOrder {
		m.layerRank[l] = i
	}
}

// rankBlobs returns the rank of each blob id in digest order.
func (m *marshaler) rankBlobs() []int {
	ks := make([]prefixKey, len(m.blobs))
	sameAlg := true
	for i, b := range m.blobs {
		ks[i] = newPrefixKey(b.dgst, i)
		sameAlg = sameAlg && strings.HasPrefix(string(b.dgst), "sha256:")
	}
	slices.SortFunc(ks, func(x, y prefixKey) int {
		if sameAlg {
			if c := x.compare(y); c != 0 {
				return c
			}
		}
		return strings.Compare(string(m.blobs[x.i].dgst), string(m.blobs[y.i].dgst))
	})
	rank := make([]int, len(m.blobs))
	for r, k := range ks {
		rank[k.i] = r
	}
	return rank
}

// prefixKey holds the first 16 bytes of a digest's encoded part as
// integers, which order like the digest strings up to there, and an index.
type prefixKey struct {
	k0, k1 uint64
	i      int
}

func newPrefixKey(d digest.Digest, i int) prefixKey {
	var b [16]byte
	s := string(d)
	if c := strings.IndexByte(s, ':'); c >= 0 {
		s = s[c+1:]
	}
	copy(b[:], s)
	return prefixKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), i}
}

func (x prefixKey) compare(y prefixKey) int {
	if x.k0 != y.k0 {
		return cmp.Compare(x.k0, y.k0)
	}
	return cmp.Compare(x.k1, y.k1)
}

// build writes the config, allocating in bulk.
func (m *marshaler) build() *CacheConfig {
	cfg := &CacheConfig{}
	if len(m.layerOrder) > 0 {
		cfg.Layers = make([]CacheLayer, len(m.layerOrder))
		for i, l := range m.layerOrder {
			k := m.layers[l]
			parent := -1
			if k.parent >= 0 {
				parent = m.layerRank[k.parent]
			}
			cfg.Layers[i] = CacheLayer{Blob: m.blobs[k.blob].dgst, ParentIndex: parent}
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
	slots := make([][]CacheInput, nslots)
	links := make([]CacheInput, nlinks)
	results := make([]CacheResult, nres)
	cfg.Records = make([]CacheRecord, len(m.order))
	for i, r := range m.order {
		rec := &cfg.Records[i]
		rec.Digest = r.dgst
		if l := m.recLayer[i]; l >= 0 {
			results[0] = CacheResult{LayerIndex: m.layerRank[l], CreatedAt: m.recResult[i].CreatedAt}
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
				in[j] = CacheInput{Selector: l.selector, LinkIndex: m.rank[l.src.tmp]}
			}
			slices.SortFunc(in, func(x, y CacheInput) int {
				return cmp.Or(cmp.Compare(x.LinkIndex, y.LinkIndex), strings.Compare(x.Selector, y.Selector))
			})
			rec.Inputs[s] = in
		}
	}
	return cfg
}
