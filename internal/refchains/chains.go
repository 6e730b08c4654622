package refchains

import (
	remotecache "github.com/buildcache/remotecache"
	"hash/maphash"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// CacheChains collects a cache graph through Add and turns it into a cache
// config with Marshal. It is safe for concurrent use.
type CacheChains struct {
	mu      sync.Mutex
	roots   map[digest.Digest]*record
	records []*record // every record ever made, in creation order
	// children indexes the links: for a source record, an input slot, a
	// selector and a target digest, the records linked that way.
	// Its keys and values hold no pointers (records by creation index),
	// so the garbage collector does not scan it; a key's second and later
	// records, rare, are in childMore.
	children  map[childKey]int32 // first record's seq + 1
	childMore map[childKey][]int32
	// The children index is keyed by hashes of digests and selectors, not
	// the strings: candidates found through it are checked in full.
	seed maphash.Seed
	// Arenas for records and their links, to allocate in chunks.
	slab      []record
	linkArena []link
	slotArena [][]link
}

// NewCacheChains returns an empty graph.
func NewCacheChains() *CacheChains {
	return &CacheChains{
		roots:     map[digest.Digest]*record{},
		children:  map[childKey]int32{},
		childMore: map[childKey][]int32{},
		seed:      maphash.MakeSeed(),
	}
}

var _ remotecache.Target = (*CacheChains)(nil)

// allocLinks returns n links and m slots from the arenas; both are capped
// so that appends to them reallocate.
func (c *CacheChains) allocLinks(n, m int) ([]link, [][]link) {
	if len(c.linkArena) < n {
		c.linkArena = make([]link, max(n, 1024))
	}
	if len(c.slotArena) < m {
		c.slotArena = make([][]link, max(m, 512))
	}
	ls := c.linkArena[:0:n]
	c.linkArena = c.linkArena[n:]
	ss := c.slotArena[:m:m]
	c.slotArena = c.slotArena[m:]
	return ls, ss
}

// link is an input link of a record, stored on the target record.
type link struct {
	src      *record
	selector string
	sel      uint64 // hash of selector
}

// record is the CacheChains implementation of Record.
type record struct {
	cc   *CacheChains
	dgst digest.Digest
	dkey uint64 // hash of dgst
	seq  int    // creation order; merges keep the oldest record
	tmp  int    // scratch index, used by Marshal under the lock

	slots    [][]link  // input slots
	children []*record // records that have a link from this one
	results  []remotecache.Result

	// mergedInto is set when the record was merged into another one;
	// handles to it then stand for that record.
	mergedInto *record
	// dropped is set when a merge left the record with no way in that
	// would not close a cycle; it is no longer part of the graph.
	dropped bool
}

// Digest implements Record.
func (r *record) Digest() digest.Digest { return r.dgst }

// live follows merges to the record that r now stands for.
func (r *record) live() *record {
	for r.mergedInto != nil {
		r = r.mergedInto
	}
	return r
}

func (c *CacheChains) newRecord(dgst digest.Digest, dkey uint64) *record {
	if len(c.slab) == 0 {
		c.slab = make([]record, 256)
	}
	r := &c.slab[0]
	c.slab = c.slab[1:]
	r.cc = c
	r.dgst = dgst
	r.dkey = dkey
	r.seq = len(c.records)
	c.records = append(c.records, r)
	return r
}

// Add implements Target. See docs/design.md §4 for the rules: records are matched
// by digest and by their links, results are merged, and links that would
// make a cycle are dropped.
func (c *CacheChains) Add(dgst digest.Digest, deps [][]remotecache.Link, results []remotecache.Result) (remotecache.Record, bool, error) {
	if strings.HasPrefix(string(dgst), "random:") {
		return nil, false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()

	if len(deps) == 0 {
		r, ok := c.roots[dgst]
		if !ok {
			r = c.newRecord(dgst, 0)
			c.roots[dgst] = r
		}
		r.addResults(results)
		return r, true, nil
	}

	// Resolve and check every link before changing anything.
	nlinks := 0
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
			if src.live().dropped {
				return nil, false, errors.Wrapf(errdefs.ErrFailedPrecondition, "record %s: input %d link %d: source %s was dropped from the graph: a merge left it only links that close a cycle", dgst, i, j, src.dgst)
			}
		}
		nlinks += len(slot)
	}
	flat, slots := c.allocLinks(nlinks, len(deps))
	for i, slot := range deps {
		start := len(flat)
		for _, l := range slot {
			nl := link{src: l.Src.(*record).live(), selector: l.Selector, sel: c.hash(l.Selector)}
			if !containsLink(flat[start:], nl) {
				flat = append(flat, nl)
			}
		}
		slots[i] = flat[start:len(flat):len(flat)]
	}

	dkey := c.hash(string(dgst))
	r := c.match(dgst, dkey, slots)
	if r != nil {
		// A merge may have folded one of the sources into another record.
		for i := range flat {
			flat[i].src = flat[i].src.live()
		}
	} else {
		r = c.newRecord(dgst, dkey)
		r.slots = slots
		for i, slot := range slots {
			for _, l := range slot {
				c.indexLink(l.src, i, l.sel, r)
			}
		}
		r.addResults(results)
		return r, true, nil
	}

	r.addResults(results)
	var desc map[*record]struct{}
	for i, slot := range slots {
		for _, l := range slot {
			if l.src.dropped || (i < len(r.slots) && containsLink(r.slots[i], l)) {
				continue // dropped by a merge of this Add, or there already
			}
			if desc == nil {
				desc = r.descendants()
			}
			if _, ok := desc[l.src]; ok {
				continue // a link from a descendant would make a cycle
			}
			c.addLink(r, i, l)
		}
	}
	return r, true, nil
}

func containsLink(ls []link, l link) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// match finds the record dgst that is already linked, in every slot, from
// one of the slot's sources with the same selector. Several matches are
// merged into the oldest.
func (c *CacheChains) match(dgst digest.Digest, dkey uint64, slots [][]link) *record {
	var cands []*record
	for _, l := range slots[0] {
		c.childEach(key(l.src, 0, l.sel, dkey), func(r *record) {
			if r.dgst != dgst || !containsLink(r.slotOrNil(0), l) {
				return // a hash collision
			}
			for _, x := range cands {
				if x == r {
					return
				}
			}
			cands = append(cands, r)
		})
	}
	for i := 1; i < len(slots) && len(cands) > 0; i++ {
		kept := cands[:0]
		for _, r := range cands {
			for _, l := range slots[i] {
				if containsLink(r.slotOrNil(i), l) {
					kept = append(kept, r)
					break
				}
			}
		}
		cands = kept
	}
	if len(cands) == 0 {
		return nil
	}
	main := cands[0]
	for _, r := range cands[1:] {
		if r.seq < main.seq {
			main = r
		}
	}
	for _, r := range cands {
		if r = r.live(); r != main.live() && !r.dropped {
			c.merge(main.live(), r)
		}
	}
	return main.live()
}

func (r *record) slotOrNil(i int) []link {
	if i < len(r.slots) {
		return r.slots[i]
	}
	return nil
}

// addLink adds l to slot i of r unless it is there.
func (c *CacheChains) addLink(r *record, i int, l link) {
	for len(r.slots) <= i {
		r.slots = append(r.slots, nil)
	}
	if containsLink(r.slots[i], l) {
		return
	}
	r.slots[i] = append(r.slots[i], l)
	c.indexLink(l.src, i, l.sel, r)
}
