package remotecache

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// CacheChains collects a cache graph through Add and turns it into a cache
// config with Marshal. It is safe for concurrent use. Add hands the
// results it is given to a goroutine of its own, which keeps them in the
// order of the Adds and ends once it has taken them all; Marshal waits for
// it.
type CacheChains struct {
	mu sync.Mutex
	// roots are the records without inputs, by digest (blobs.go's
	// hashIndex, on the digest's hash).
	roots hashIndex

	// The graph (links.go): records, their slots and links, children.
	recs  chunks[rec]
	slots runs[slot]
	links runs[link]
	kids  chunks[kid]
	// handles are the Record handles, by id, in chunks of handleChunk
	// that never move.
	handles [][]record
	// sels are the selectors of the links, by index; 0 is "". They are
	// not interned: a link keeps its selector's hash to compare and index
	// it by.
	sels chunks[string]

	// children indexes the links (childindex.go): for a source record, an
	// input slot, a selector and a target digest, the records linked that
	// way. Its keys and values hold no pointers, so the garbage collector
	// does not scan it; a key's second and later records, rare, are in
	// childMore.
	children  u32Table // first record + 1
	childMore map[uint32][]int32
	seed      maphash.Seed
	mask      uint32 // of the 32-bit hashes (hashMask)

	// Results and what they are made of (results.go, blobs.go), by
	// record in recRes: the results side, which Add hands its results to
	// through rq (resultqueue.go).
	rq      resultQueue
	recRes  chunks[recResult]
	results chunks[resEntry]
	blobs   chunks[blob]
	blobIDs hashIndex
	nodes   chunks[node]
	nodeIDs map[uint64]int32

	// Scratch of Add and of the cycle check (order.go).
	addLinks []link
	addSlots []int32  // end of each slot's links in addLinks
	addFree  []bool   // by link of slot 0: no record is under its key
	addKeys  []uint32 // by link of slot 0: its key
	cands    []int32
	gen      uint32
	stack    []int32
}

// handleChunk is the number of handles allocated at once.
const handleChunk = 1024

// NewCacheChains returns an empty graph.
func NewCacheChains() *CacheChains {
	c := &CacheChains{
		childMore: map[uint32][]int32{},
		nodeIDs:   map[uint64]int32{},
		seed:      maphash.MakeSeed(),
		mask:      hashMask,
	}
	c.rq.idle.L = &c.rq.mu
	c.rq.size = resultBatch
	return c
}

var _ Target = (*CacheChains)(nil)

// record is the CacheChains implementation of Record: a handle to record
// id of cc.
type record struct {
	cc   *CacheChains
	dgst digest.Digest
	id   int32
}

// Digest implements Record.
func (r *record) Digest() digest.Digest { return r.dgst }

func (c *CacheChains) handle(id int32) *record {
	return &c.handles[id/handleChunk][id%handleChunk]
}

// dgst returns the digest of record id.
func (c *CacheChains) dgst(id int32) digest.Digest {
	return c.handles[id/handleChunk][id%handleChunk].dgst
}

func (c *CacheChains) newRecord(dgst digest.Digest) int32 {
	id := int32(c.recs.len())
	if id%handleChunk == 0 {
		c.handles = append(c.handles, make([]record, handleChunk))
	}
	*c.handle(id) = record{cc: c, dgst: dgst, id: id}
	k0, ok := hexKey(dgst)
	// Its ord is above every other: its sources are all older.
	c.recs.add(rec{k0: k0, hexKey: ok, ord: id})
	return id
}

// dkey returns the hash of r's digest, as the children index keys it.
func (c *CacheChains) dkey(r int32) uint64 {
	return c.hash(string(c.dgst(r)))
}

// newLink returns the link from src through selector s, keeping s.
func (c *CacheChains) newLink(src int32, s string) link {
	if s == "" {
		return link{src: src}
	}
	if c.sels.len() == 0 {
		c.sels.add("")
	}
	return link{src: src, sel: c.sels.add(s), sh: c.hash32(s)}
}

// Add implements Target. See docs/design.md §4 for the rules: records are matched
// by digest and by their links, results are merged, and links that would
// make a cycle are dropped.
func (c *CacheChains) Add(dgst digest.Digest, deps [][]Link, results []Result) (Record, bool, error) {
	if strings.HasPrefix(string(dgst), "random:") {
		return nil, false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()

	if len(deps) == 0 {
		r := c.roots.intern(c.hash32(string(dgst)), string(dgst),
			func(id int32) string { return string(c.dgst(id)) },
			func() int32 { return c.newRecord(dgst) })
		if len(results) > 0 {
			c.queueResults(r, -1, results)
		}
		return c.handle(r), true, nil
	}

	// Resolve and check every link before changing anything.
	for i, slot := range deps {
		if len(slot) == 0 {
			return nil, false, errors.Wrapf(errdefs.ErrInvalidArgument, "record %s: input %d is empty", dgst, i)
		}
		for j, l := range slot {
			src, ok := l.Src.(*record)
			if !ok || src == nil {
				return nil, false, errors.Wrapf(errdefs.ErrInvalidArgument, "record %s: input %d link %d: source %T is not a record of this graph", dgst, i, j, l.Src)
			}
			if src.cc != c {
				return nil, false, errors.Wrapf(errdefs.ErrInvalidArgument, "record %s: input %d link %d: source %s belongs to another graph", dgst, i, j, src.dgst)
			}
			if c.recs.at(c.live(src.id)).dropped {
				return nil, false, errors.Wrapf(errdefs.ErrFailedPrecondition, "record %s: input %d link %d: source %s was dropped from the graph: a merge left it only links that close a cycle", dgst, i, j, src.dgst)
			}
		}
	}
	c.addLinks, c.addSlots = c.addLinks[:0], c.addSlots[:0]
	for _, slot := range deps {
		start := len(c.addLinks)
		for _, l := range slot {
			nl := c.newLink(c.live(l.Src.(*record).id), l.Selector)
			if !c.containsLink(c.addLinks[start:], nl) {
				c.addLinks = append(c.addLinks, nl)
			}
		}
		c.addSlots = append(c.addSlots, int32(len(c.addLinks)))
	}

	dkey := c.hash(string(dgst))
	r, ok := c.match(dgst, dkey)
	if !ok {
		r = c.newRecord(dgst)
		c.addNewLinks(r, dkey)
		// Even without results: chainHint walks through records that
		// have none to the first input that has one.
		c.queueResults(r, c.addLinks[0].src, results)
		return c.handle(r), true, nil
	}
	// A merge may have folded one of the sources into another record.
	for i := range c.addLinks {
		c.addLinks[i].src = c.live(c.addLinks[i].src)
	}
	if len(results) > 0 {
		c.queueResults(r, c.firstSource(r), results)
	}
	start := 0
	for i, end := range c.addSlots {
		for _, l := range c.addLinks[start:end] {
			if c.recs.at(l.src).dropped || c.slotHas(r, i, l) {
				continue // dropped by a merge of this Add, or there already
			}
			if c.reaches(r, l.src) {
				continue // a link from a descendant would make a cycle
			}
			c.addLinkKey(r, i, l, dkey)
		}
		start = int(end)
	}
	return c.handle(r), true, nil
}

// firstSource returns the source of the first link of r's first slot, or
// -1 if it has none.
func (c *CacheChains) firstSource(r int32) int32 {
	if ls := c.slotLinks(r, 0); len(ls) > 0 {
		return ls[0].src
	}
	return -1
}

// addNewLinks gives the new record r, of digest hash dkey, the slots and
// links of this Add and indexes them.
func (c *CacheChains) addNewLinks(r int32, dkey uint64) {
	x := c.recs.at(r)
	ns := int32(len(c.addSlots))
	x.slot0, x.nslot = c.slots.alloc(ns), ns
	off := c.links.alloc(int32(len(c.addLinks)))
	copy(c.links.span(off, int32(len(c.addLinks))), c.addLinks)
	start := int32(0)
	for i, end := range c.addSlots {
		n := end - start
		*c.slots.at(x.slot0 + int32(i)) = slot{off: off + start, n: n, cap: n}
		for j, l := range c.addLinks[start:end] {
			if i == 0 && c.addFree[j] {
				// match found the key free: the first entry, no lookup.
				c.addKid(l.src, r)
				c.children.set(c.key(l.src, 0, l.sh, dkey), r+1)
				continue
			}
			c.indexNew(l.src, i, l.sh, r, dkey)
		}
		start = end
	}
}

// match finds the record dgst that is already linked, in every slot, from
// one of the slot's sources (of this Add) with the same selector. Several
// matches are merged into the oldest.
func (c *CacheChains) match(dgst digest.Digest, dkey uint64) (int32, bool) {
	cands := c.cands[:0]
	add := func(r int32, l link) {
		if c.dgst(r) != dgst || !c.slotHas(r, 0, l) {
			return // a hash collision
		}
		for _, x := range cands {
			if x == r {
				return
			}
		}
		cands = append(cands, r)
	}
	c.addFree, c.addKeys = c.addFree[:0], c.addKeys[:0]
	for _, l := range c.addLinks[:c.addSlots[0]] {
		k := c.key(l.src, 0, l.sh, dkey)
		f, _ := c.children.get(k)
		// Free, unless another link of the slot has the key too.
		c.addFree = append(c.addFree, f == 0 && !slices.Contains(c.addKeys, k))
		c.addKeys = append(c.addKeys, k)
		if f != 0 {
			add(f-1, l)
			for _, r := range c.childMore[k] {
				add(r, l)
			}
		}
	}
	for i := 1; i < len(c.addSlots) && len(cands) > 0; i++ {
		kept := cands[:0]
		for _, r := range cands {
			for _, l := range c.addLinks[c.addSlots[i-1]:c.addSlots[i]] {
				if c.slotHas(r, i, l) {
					kept = append(kept, r)
					break
				}
			}
		}
		cands = kept
	}
	c.cands = cands[:0]
	if len(cands) == 0 {
		return 0, false
	}
	main := cands[0]
	for _, r := range cands[1:] {
		if r < main {
			main = r
		}
	}
	if len(cands) > 1 {
		for _, r := range cands {
			if r = c.live(r); r != c.live(main) && !c.recs.at(r).dropped {
				c.merge(c.live(main), r)
			}
		}
	}
	return c.live(main), true
}

// addLink adds l to slot i of r unless it is there. The link must not
// close a cycle (see reaches).
func (c *CacheChains) addLink(r int32, i int, l link) {
	c.addLinkKey(r, i, l, c.dkey(r))
}

// addLinkKey is addLink for r whose digest hashes to dkey.
func (c *CacheChains) addLinkKey(r int32, i int, l link, dkey uint64) {
	c.growSlots(r, i+1)
	if c.slotHas(r, i, l) {
		return
	}
	c.order(l.src, r)
	c.appendLink(r, i, l)
	c.indexNew(l.src, i, l.sh, r, dkey)
}
