package remotecache

import (
	"math"
	"runtime"
	"sync/atomic"
)

// Marshal's descriptors: each blob gets the descriptor (and provider) of
// the first record in output order whose chain has it. The map of them is
// the slowest part of Marshal's second half (a read of a caller's
// descriptor and a map insert per blob, each mostly a cache miss), so two
// goroutines share it: the one that picks inserts, from the first blobs
// on, and the caller's, once build is done, reads the descriptors of the
// last blobs into chunks that the first inserts from when it gets there.

// descChunk is the number of blobs a goroutine takes at once.
const descChunk = 512

// Chunk states.
const (
	chunkFree     int32 = iota
	chunkInserter       // taken by the goroutine that inserts
	chunkHelper         // taken by the helper, being read
	chunkRead           // read by the helper: its pairs are in read
)

// descFill is the descriptors to put in m.descs: node, by blob in
// insertion order, the node picked and owner the record whose result
// gives its descriptor.
type descFill struct {
	ready chan struct{} // closed when node and owner are set
	node  []int32
	owner []int32
	state []atomic.Int32 // by chunk
	read  [][]DescriptorProviderPair
}

func newDescFill() *descFill { return &descFill{ready: make(chan struct{})} }

// pickDescriptors picks the descriptor of each blob: that of the first
// record in output order whose chain has it, at its first place in that
// chain (the least output index below each node, then the shallowest node
// of each blob with the least), and fills m.descs with f's help. It runs
// beside build.
func (m *marshaler) pickDescriptors(f *descFill) {
	c := m.c
	used := m.used
	minRank := make([]int32, c.nodes.len())
	for x := range minRank {
		minRank[x] = math.MaxInt32
	}
	for _, r := range m.recs {
		if t := m.top[r]; t >= 0 {
			minRank[t] = min(minRank[t], m.rank[r])
		}
	}
	for x := c.nodes.len() - 1; x >= 0; x-- { // a parent is older than its children
		if p := c.nodes.at(x).parent; used[x] && p >= 0 {
			minRank[p] = min(minRank[p], minRank[x])
		}
	}
	pick := make([]int32, c.blobs.len()) // node + 1
	nblobs := 0
	for x := range c.nodes.len() {
		if !used[x] {
			continue
		}
		b := c.nodes.at(x).blob
		p := pick[b] - 1
		if p < 0 {
			nblobs++
		}
		if p < 0 || minRank[x] < minRank[p] || (minRank[x] == minRank[p] && c.nodes.at(x).depth < c.nodes.at(p).depth) {
			pick[b] = int32(x) + 1
		}
	}
	// Read the descriptors record by record, in creation order, which
	// walks the results (and, mostly, the callers' descriptors) in order:
	// the picked nodes grouped by the record that owns them.
	start := make([]int32, c.recs.len()+1)
	for _, p := range pick {
		if p != 0 {
			start[m.order[minRank[p-1]]+1]++
		}
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	f.node = make([]int32, nblobs)
	f.owner = make([]int32, nblobs)
	for _, p := range pick {
		if p != 0 {
			o := m.order[minRank[p-1]]
			f.node[start[o]] = p - 1
			f.owner[start[o]] = o
			start[o]++
		}
	}
	nchunks := (nblobs + descChunk - 1) / descChunk
	f.state = make([]atomic.Int32, nchunks)
	f.read = make([][]DescriptorProviderPair, nchunks)
	m.descs = make(DescriptorProvider, nblobs)
	close(f.ready)
	for k := range nchunks {
		lo, hi := k*descChunk, min((k+1)*descChunk, nblobs)
		if f.state[k].CompareAndSwap(chunkFree, chunkInserter) {
			for i := lo; i < hi; i++ {
				p := m.descPair(f.owner[i], f.node[i])
				m.descs[p.Descriptor.Digest] = p
			}
			continue
		}
		for f.state[k].Load() != chunkRead {
			runtime.Gosched() // the helper is reading it: a chunk is short
		}
		for _, p := range f.read[k] {
			m.descs[p.Descriptor.Digest] = p
		}
		f.read[k] = nil
	}
}

// helpDescriptors reads descriptors for pickDescriptors, chunk by chunk
// from the last, until it meets the chunks pickDescriptors took.
func (m *marshaler) helpDescriptors(f *descFill) {
	<-f.ready
	for k := len(f.state) - 1; k >= 0; k-- {
		if !f.state[k].CompareAndSwap(chunkFree, chunkHelper) {
			return
		}
		lo, hi := k*descChunk, min((k+1)*descChunk, len(f.node))
		ps := make([]DescriptorProviderPair, hi-lo)
		for i := range ps {
			ps[i] = m.descPair(f.owner[lo+i], f.node[lo+i])
		}
		f.read[k] = ps
		f.state[k].Store(chunkRead)
	}
}

// descPair is the descriptor of node x's blob in the best result of its
// owner record o, its media type in OCI form, and that result's provider.
func (m *marshaler) descPair(o, x int32) DescriptorProviderPair {
	res := &m.c.best(o).res
	d := res.Remote.Descriptors[m.c.nodes.at(x).depth]
	if d.MediaType != "" {
		d.MediaType = convertLayerMediaType(d.MediaType, true)
	}
	return DescriptorProviderPair{Descriptor: d, Provider: res.Remote.Provider}
}
