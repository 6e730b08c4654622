package remotecache

import (
	"cmp"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/content"

	"github.com/buildcache/remotecache/internal/availability"
)

// outLayer is a layer of the config: a blob on top of a parent layer (its
// output index, or -1).
type outLayer struct {
	blob, parent int32
}

// Availability of a blob, and of a chain (a node: every blob of it).
const (
	unknown uint8 = iota
	available
	unavailable
)

// checkResults picks each record's result, if every blob of it is
// available, and builds the layers, one per distinct (blob, parent
// chain): the chain nodes (blobs.go) that written results reach. It needs
// nothing of the records' order, so it runs beside sortRecords.
func (m *marshaler) checkResults() error {
	c := m.c
	nodeState := make([]uint8, c.nodes.len())
	blobState := make([]uint8, c.blobs.len())
	m.used = make([]bool, c.nodes.len())
	m.top = make([]int32, c.recs.len())
	if err := m.checkBlobs(blobState); err != nil {
		return err
	}
	for _, r := range m.recs {
		m.top[r] = -1
		e := c.best(r)
		if e == nil || e.node < 0 {
			continue
		}
		if !m.available(e.res.Remote, e.node, nodeState, blobState) {
			continue
		}
		m.top[r] = e.node
		for x := e.node; x >= 0 && !m.used[x]; x = c.nodes.at(x).parent {
			m.used[x] = true
			m.nlayers++
		}
	}
	m.sortLayers()
	return nil
}

// checkBlobs asks, before any result is picked, whether the blobs of
// every record's best result are available: concurrently and bounded
// (internal/availability), each blob once, of the provider of the first
// record in creation order whose best result has it and can answer Info
// (with providers that disagree, that one decides). Only "not found" makes
// a blob unavailable: any other error (a registry's 503, a timeout, a
// refused credential) fails Marshal, naming the blob, so that a flaky
// source never turns into a smaller cache. What it finds is in blobState.
func (m *marshaler) checkBlobs(blobState []uint8) error {
	c := m.c
	seen := make([]bool, c.nodes.len()) // chains whose blobs are in checks
	asked := make([]bool, c.blobs.len())
	var checks []availability.Check
	var ids []int32
	for _, r := range m.recs {
		e := c.best(r)
		if e == nil || e.node < 0 {
			continue
		}
		ip, ok := e.res.Remote.Provider.(content.InfoProvider)
		if !ok {
			continue
		}
		for x := e.node; x >= 0 && !seen[x]; x = c.nodes.at(x).parent {
			seen[x] = true
			if b := c.nodes.at(x).blob; !asked[b] {
				asked[b] = true
				if checks == nil {
					// At most one check per blob: room for them all
					// at once, not append's doubling copies (which
					// the garbage collector counts).
					checks = make([]availability.Check, 0, c.blobs.len())
					ids = make([]int32, 0, c.blobs.len())
				}
				checks = append(checks, availability.Check{Digest: c.blobs.at(b).dgst, Provider: ip})
				ids = append(ids, b)
			}
		}
	}
	avail, err := availability.Run(m.ctx, checks)
	if err != nil {
		return err
	}
	for i, b := range ids {
		blobState[b] = unavailable
		if avail[i] {
			blobState[b] = available
		}
	}
	return nil
}

// available tells whether every blob of the chain node can be read, as
// checkBlobs found; what is known of chains is kept in nodeState. A
// provider that cannot answer Info is trusted.
func (m *marshaler) available(r *Remote, n int32, nodeState, blobState []uint8) bool {
	if _, ok := r.Provider.(content.InfoProvider); !ok {
		return true
	}
	c := m.c
	// The chains from n down to the first whose state is known.
	var path []int32
	x := n
	for x >= 0 && nodeState[x] == unknown {
		path = append(path, x)
		x = c.nodes.at(x).parent
	}
	if x >= 0 && nodeState[x] == unavailable {
		for _, p := range path {
			nodeState[p] = unavailable
		}
		return false
	}
	for k := len(path) - 1; k >= 0; k-- {
		if blobState[c.nodes.at(path[k]).blob] == unavailable {
			for _, p := range path[:k+1] {
				nodeState[p] = unavailable
			}
			return false
		}
		nodeState[path[k]] = available
	}
	return true
}

// sortLayers orders the used nodes as layers: by blob, then by parent
// chain (no parent first, then parent chains compared base first, blob by
// blob), and sets m.layers and m.layerOf.
func (m *marshaler) sortLayers() {
	c := m.c
	used, n := m.used, m.nlayers
	// Layers by node id: idx maps a node to its layer.
	ls := make([]int32, 0, n)
	idx := make([]int32, c.nodes.len())
	for x := range c.nodes.len() {
		if used[x] {
			idx[x] = int32(len(ls))
			ls = append(ls, int32(x))
		}
	}
	parentOf := func(l int32) int32 {
		if p := c.nodes.at(ls[l]).parent; p >= 0 {
			return idx[p]
		}
		return -1
	}
	blobRank, nblobs := m.rankBlobs(ls)
	// Layers by blob rank (ranks are dense: a counting sort), each rank's
	// in layer order; rankOf[l] is the blob rank of layer l.
	rankOf := make([]int32, n)
	at := make([]int32, nblobs+1)
	for l, x := range ls {
		rankOf[l] = blobRank[c.nodes.at(x).blob]
		at[rankOf[l]+1]++
	}
	for i := 1; i <= nblobs; i++ {
		at[i] += at[i-1]
	}
	byBlob := make([]int32, n)
	for l := range ls {
		byBlob[at[rankOf[l]]] = int32(l)
		at[rankOf[l]]++
	}
	// Children of each layer (and of the virtual root, index n), as CSR,
	// each list in blob order.
	start := make([]int32, n+2)
	for l := range ls {
		p := parentOf(int32(l))
		if p < 0 {
			p = int32(n)
		}
		start[p+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	kids := make([]int32, n)
	fill := slices.Clone(start[:n+1])
	for _, l := range byBlob {
		p := parentOf(l)
		if p < 0 {
			p = int32(n)
		}
		kids[fill[p]] = l
		fill[p]++
	}
	// Preorder of the trie of chains: the rank of each chain read base first.
	pre := make([]int32, n)
	stack := []int32{int32(n)}
	next := int32(0)
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if int(x) < n {
			pre[x] = next
			next++
		}
		ks := kids[start[x]:start[x+1]]
		for i := len(ks) - 1; i >= 0; i-- {
			stack = append(stack, ks[i])
		}
	}
	// By blob, then by parent chain (no parent first).
	parentPre := func(l int32) int32 {
		if p := parentOf(l); p >= 0 {
			return pre[p]
		}
		return -1
	}
	order := byBlob
	for i := 0; i < n; {
		j := i + 1
		for j < n && rankOf[order[j]] == rankOf[order[i]] {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(order[i:j], func(x, y int32) int { return cmp.Compare(parentPre(x), parentPre(y)) })
		}
		i = j
	}
	rank := make([]int32, n)
	for i, l := range order {
		rank[l] = int32(i)
	}
	m.layers = make([]outLayer, n)
	for i, l := range order {
		p := parentOf(l)
		if p >= 0 {
			p = rank[p]
		}
		m.layers[i] = outLayer{blob: c.nodes.at(ls[l]).blob, parent: p}
	}
	for x := range c.nodes.len() {
		if used[x] {
			idx[x] = rank[idx[x]]
		}
	}
	m.layerOf = idx
}

// rankBlobs returns the rank in digest order of the blob of each node in
// ls, by blob id (other blobs get no rank), and how many there are.
func (m *marshaler) rankBlobs(ls []int32) ([]int32, int) {
	c := m.c
	seen := make([]bool, c.blobs.len())
	ks := make([]sortKey, 0, len(ls))
	hex := true
	for _, x := range ls {
		b := c.nodes.at(x).blob
		if seen[b] {
			continue
		}
		seen[b] = true
		bl := c.blobs.at(b)
		ks = append(ks, sortKey{bl.k0, b})
		hex = hex && bl.hexKey
	}
	byDigest := func(x, y sortKey) int {
		return strings.Compare(string(c.blobs.at(x.i).dgst), string(c.blobs.at(y.i).dgst))
	}
	if hex {
		sortKeys(ks)
		forEqualKeys(ks, func(run []sortKey) { slices.SortFunc(run, byDigest) })
	} else {
		slices.SortFunc(ks, byDigest)
	}
	rank := make([]int32, c.blobs.len())
	for r, k := range ks {
		rank[k.i] = int32(r)
	}
	return rank, len(ks)
}
