package refchains

import (
	"cmp"
	remotecache "github.com/buildcache/remotecache"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache/internal/availability"
)

// blobState is what Marshal knows of one distinct blob.
type blobState struct {
	dgst  digest.Digest
	avail int8 // 0 unknown, 1 available, 2 not, -1 being asked
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
	m.recResult = make([]*remotecache.Result, n)
	if err := m.checkBlobs(); err != nil {
		return err
	}
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
		if !m.available(res.Remote, ids) {
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
	m.descs = make(remotecache.DescriptorProvider, kept)
	for _, b := range m.blobs {
		if b.desc == nil {
			continue
		}
		d := *b.desc
		if d.MediaType != "" {
			d.MediaType = convertLayerMediaType(d.MediaType, true)
		}
		m.descs[d.Digest] = remotecache.DescriptorProviderPair{Descriptor: d, Provider: b.provider}
	}
	m.sortLayers()
	return nil
}

// checkBlobs asks, before the results are picked, whether the blobs of
// every record's best result are available (internal/availability):
// concurrently, each blob once, of the provider of the first result that
// has it and can answer Info. The collector before issue 15 asked one
// blob at a time; the oracle asks as CacheChains does, so that the Info
// calls of both still compare.
func (m *marshaler) checkBlobs() error {
	var checks []availability.Check
	var ids []int
	for _, r := range m.recs {
		res := r.best()
		if res == nil || res.Remote == nil {
			continue
		}
		ip, ok := res.Remote.Provider.(content.InfoProvider)
		if !ok {
			continue
		}
		for _, d := range res.Remote.Descriptors {
			id, ok := m.blobIDs[d.Digest]
			if !ok {
				id = len(m.blobs)
				m.blobIDs[d.Digest] = id
				m.blobs = append(m.blobs, blobState{dgst: d.Digest, rank: -1})
			}
			if b := &m.blobs[id]; b.avail == 0 {
				b.avail = -1 // asked
				checks = append(checks, availability.Check{Digest: d.Digest, Provider: ip})
				ids = append(ids, id)
			}
		}
	}
	avail, err := availability.Run(m.ctx, checks)
	if err != nil {
		return err
	}
	for i, id := range ids {
		m.blobs[id].avail = 2
		if avail[i] {
			m.blobs[id].avail = 1
		}
	}
	return nil
}

// available tells whether every blob of r (ids: their blob ids) can be
// read, as checkBlobs found. A provider that cannot answer Info is
// trusted.
func (m *marshaler) available(r *remotecache.Remote, ids []int) bool {
	if _, ok := r.Provider.(content.InfoProvider); !ok {
		return true
	}
	for _, id := range ids {
		if m.blobs[id].avail == 2 {
			return false
		}
	}
	return true
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
