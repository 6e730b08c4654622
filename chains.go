package remotecache

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Target receives the records of a cache graph, dependencies first. Both
// CacheChains (and so every Exporter) and test spies implement it; Parse and
// Import write into any Target.
type Target interface {
	// Add adds the record dgst, reached from the records in deps (one
	// slice per input slot, each with at least one link), with results.
	// It returns the record's handle, to be used as a Link's Src, and
	// false when the record cannot be exported (a "random:" digest).
	Add(dgst digest.Digest, deps [][]Link, results []Result) (Record, bool, error)
}

// Record is an opaque handle to a record added to a Target.
type Record interface {
	// Digest is the record's cache key digest.
	Digest() digest.Digest
}

// Link is one way to reach a record: from the record Src, through an
// optional Selector.
type Link struct {
	Src      Record
	Selector string
}

// Result is one result of a record: layer blobs and when they were made.
type Result struct {
	CreatedAt time.Time
	Remote    *Remote
}

// Remote is a chain of layer blobs, base layer first, and where to read
// them. The Provider may also implement content.InfoProvider; Marshal then
// drops results whose blobs it does not have.
type Remote struct {
	Descriptors []ocispec.Descriptor
	Provider    content.Provider
}

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

var _ Target = (*CacheChains)(nil)

type childKey struct {
	src  int32 // seq of the source record
	slot int32
	sel  uint64 // hash of the selector
	dgst uint64 // hash of the child's digest
}

func (c *CacheChains) hash(s string) uint64 {
	if s == "" {
		return 0
	}
	return maphash.String(c.seed, s)
}

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

// key returns the children index key of a link from src.
func key(src *record, slot int, sel, dgst uint64) childKey {
	return childKey{src: int32(src.seq), slot: int32(slot), sel: sel, dgst: dgst}
}

// childEach calls fn for each record indexed under k.
func (c *CacheChains) childEach(k childKey, fn func(*record)) {
	if f := c.children[k]; f != 0 {
		fn(c.records[f-1])
	}
	for _, seq := range c.childMore[k] {
		fn(c.records[seq])
	}
}

func (c *CacheChains) childHas(k childKey, r *record) bool {
	if c.children[k] == int32(r.seq)+1 {
		return true
	}
	return slices.Contains(c.childMore[k], int32(r.seq))
}

func (c *CacheChains) childAdd(k childKey, r *record) {
	if c.childHas(k, r) {
		return
	}
	if c.children[k] == 0 {
		c.children[k] = int32(r.seq) + 1
		return
	}
	c.childMore[k] = append(c.childMore[k], int32(r.seq))
}

func (c *CacheChains) childRemove(k childKey, r *record) {
	seq := int32(r.seq)
	more := slices.DeleteFunc(c.childMore[k], func(x int32) bool { return x == seq })
	if c.children[k] == seq+1 {
		if len(more) > 0 {
			c.children[k] = more[0] + 1
			more = more[1:]
		} else {
			delete(c.children, k)
		}
	}
	if len(more) == 0 {
		delete(c.childMore, k)
	} else {
		c.childMore[k] = more
	}
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
	results  []Result

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
func (c *CacheChains) Add(dgst digest.Digest, deps [][]Link, results []Result) (Record, bool, error) {
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

// indexLink records that r has a link from src in slot i with selector.
func (c *CacheChains) indexLink(src *record, i int, sel uint64, r *record) {
	k := key(src, i, sel, r.dkey)
	if c.childHas(k, r) {
		return
	}
	// src.children may list a child more than once (linked from src in
	// several slots or with several selectors); every user of it copes.
	// Scanning it for r would make popular bases quadratic.
	if n := len(src.children); n == 0 || src.children[n-1] != r {
		src.children = append(src.children, r)
	}
	c.childAdd(k, r)
}

// unindexLink removes what indexLink recorded.
func (c *CacheChains) unindexLink(src *record, i int, sel uint64, r *record) {
	c.childRemove(key(src, i, sel, r.dkey), r)
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

// merge folds record o into main: its links, its children and its
// results. Links that would close a cycle are dropped, as in Add. Children
// of o and of main that thereby become linked alike are merged too.
func (c *CacheChains) merge(main, o *record) {
	type childLink struct {
		ch       *record
		slot     int
		selector string
		sel      uint64
	}
	// Detach o from its children and from its sources.
	var kids []childLink
	for _, ch := range o.children {
		for i, slot := range ch.slots {
			kept := slot[:0]
			for _, l := range slot {
				if l.src == o {
					c.unindexLink(o, i, l.sel, ch)
					kids = append(kids, childLink{ch, i, l.selector, l.sel})
					continue
				}
				kept = append(kept, l)
			}
			ch.slots[i] = kept
		}
	}
	parents := o.slots
	for i, slot := range parents {
		for _, l := range slot {
			c.unindexLink(l.src, i, l.sel, o)
			l.src.children = removeRecord(l.src.children, o)
		}
	}
	o.slots, o.children = nil, nil
	o.mergedInto = main
	main.addResults(o.results)
	o.results = nil

	// o's children become main's, unless they lead to main.
	var anc map[*record]struct{}
	for _, k := range kids {
		if k.ch == main {
			continue
		}
		if anc == nil {
			anc = main.ancestors()
		}
		if _, ok := anc[k.ch]; ok {
			if len(k.ch.slots[k.slot]) == 0 {
				c.drop(k.ch) // its only way in would close a cycle
			}
			continue
		}
		c.addLink(k.ch, k.slot, link{src: main, selector: k.selector, sel: k.sel})
	}
	// Links into o become links into main, unless they come from below it.
	desc := main.descendants()
	for i, slot := range parents {
		for _, l := range slot {
			if _, ok := desc[l.src]; ok {
				continue
			}
			c.addLink(main, i, l)
		}
	}
	// Records now linked alike from main are one record.
	for _, k := range kids {
		if !k.ch.dropped {
			c.mergeTwins(main.live(), k.slot, k.sel, k.ch.live())
		}
	}
}

// drop takes r out of the graph, with every record left with an empty
// input slot by that: such records cannot be written or reached.
func (c *CacheChains) drop(r *record) {
	work := []*record{r}
	for len(work) > 0 {
		x := work[len(work)-1]
		work = work[:len(work)-1]
		if x.dropped {
			continue
		}
		x.dropped = true
		for i, slot := range x.slots {
			for _, l := range slot {
				c.unindexLink(l.src, i, l.sel, x)
				l.src.children = removeRecord(l.src.children, x)
			}
		}
		for _, ch := range x.children {
			for i, slot := range ch.slots {
				kept := slot[:0]
				for _, l := range slot {
					if l.src == x {
						c.unindexLink(x, i, l.sel, ch)
						continue
					}
					kept = append(kept, l)
				}
				ch.slots[i] = kept
				if len(kept) == 0 {
					work = append(work, ch)
				}
			}
		}
		x.slots, x.children, x.results = nil, nil, nil
	}
}

// mergeTwins merges ch with every other record of its digest that is
// linked from src in the same slot with the same selector and that shares
// a link with it in every slot: Add would have made them one.
func (c *CacheChains) mergeTwins(src *record, slot int, sel uint64, ch *record) {
	for {
		var twin *record
		c.childEach(key(src, slot, sel, ch.dkey), func(r *record) {
			if twin == nil && r != ch && r.dgst == ch.dgst && linkedAlike(r, ch) {
				twin = r
			}
		})
		if twin == nil {
			return
		}
		if twin.seq < ch.seq {
			ch, twin = twin, ch
		}
		c.merge(ch, twin)
		ch = ch.live()
		src = src.live()
	}
}

// linkedAlike tells whether a and b have as many slots and share a link in
// each.
func linkedAlike(a, b *record) bool {
	if len(a.slots) != len(b.slots) {
		return false
	}
	for i := range a.slots {
		shared := false
		for _, l := range a.slots[i] {
			if containsLink(b.slots[i], l) {
				shared = true
				break
			}
		}
		if !shared {
			return false
		}
	}
	return true
}

// removeRecord removes every r from rs.
func removeRecord(rs []*record, r *record) []*record {
	return slices.DeleteFunc(rs, func(x *record) bool { return x == r })
}

// descendants returns r and every record reachable from it through links.
func (r *record) descendants() map[*record]struct{} {
	seen := map[*record]struct{}{r: {}}
	stack := []*record{r}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, ch := range x.children {
			if _, ok := seen[ch]; !ok {
				seen[ch] = struct{}{}
				stack = append(stack, ch)
			}
		}
	}
	return seen
}

// ancestors returns r and every record r is reached from through links.
func (r *record) ancestors() map[*record]struct{} {
	seen := map[*record]struct{}{r: {}}
	stack := []*record{r}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, slot := range x.slots {
			for _, l := range slot {
				if _, ok := seen[l.src]; !ok {
					seen[l.src] = struct{}{}
					stack = append(stack, l.src)
				}
			}
		}
	}
	return seen
}

// addResults adds each result that is not there yet: one with the same
// CreatedAt and the same blobs is the same result.
func (r *record) addResults(results []Result) {
	for _, res := range results {
		if !r.hasResult(res) {
			r.results = append(r.results, res)
		}
	}
}

func (r *record) hasResult(res Result) bool {
	for _, x := range r.results {
		if x.CreatedAt.Equal(res.CreatedAt) && sameBlobs(x.Remote, res.Remote) {
			return true
		}
	}
	return false
}

func sameBlobs(a, b *Remote) bool {
	var da, db []ocispec.Descriptor
	if a != nil {
		da = a.Descriptors
	}
	if b != nil {
		db = b.Descriptors
	}
	if len(da) != len(db) {
		return false
	}
	for i := range da {
		if da[i].Digest != db[i].Digest {
			return false
		}
	}
	return true
}

// best returns the newest result; ties go to the one added first.
func (r *record) best() *Result {
	var b *Result
	for i := range r.results {
		if b == nil || r.results[i].CreatedAt.After(b.CreatedAt) {
			b = &r.results[i]
		}
	}
	return b
}
