package remotecache

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"
)

// sortRecords orders the records by digest, then by the shape of their
// inputs (slot count, links per slot, selectors and source digests), with
// remaining ties broken by structure, never by insertion order.
//
// In two passes: by digest alone, which gives each record the rank of its
// digest among the distinct digests (m.drank); then each run of records of
// one digest by the rest, where a source's digest is compared by its rank.
func (m *marshaler) sortRecords() error {
	c := m.c
	ks := make([]sortKey, len(m.recs))
	hex := true
	for i, r := range m.recs {
		x := c.recs.at(r)
		ks[i] = sortKey{x.k0, r}
		hex = hex && x.hexKey
	}
	byDigest := func(x, y sortKey) int { return strings.Compare(string(c.dgst(x.i)), string(c.dgst(y.i))) }
	m.drank = make([]int32, c.recs.len())
	if !hex {
		slices.SortFunc(ks, byDigest)
		m.rankDigests(ks, 0)
	} else {
		// The keys order the digests up to their 16th hex digit; only
		// records whose keys are equal need comparing in full, and those
		// are mostly records of one digest, which need no sort.
		sortKeys(ks)
		rank := int32(0)
		for i := 0; i < len(ks); {
			j := i + 1
			for j < len(ks) && ks[j].k0 == ks[i].k0 {
				j++
			}
			if run := ks[i:j]; len(run) == 1 || m.oneDigest(run) {
				for _, k := range run {
					m.drank[k.i] = rank
				}
				rank++
			} else {
				slices.SortFunc(run, byDigest)
				rank = m.rankDigests(run, rank)
			}
			i = j
		}
	}
	for i := 0; i < len(ks); {
		j := i + 1
		for j < len(ks) && m.drank[ks[j].i] == m.drank[ks[i].i] {
			j++
		}
		if j-i > 1 {
			m.sortGroup(ks[i:j])
		}
		i = j
	}
	m.order = make([]int32, len(ks))
	m.rank = make([]int32, c.recs.len())
	for i, k := range ks {
		m.order[i] = k.i
		m.rank[k.i] = int32(i)
	}
	return m.ctx.Err()
}

// rankDigests gives the records of ks, sorted by digest, the ranks of
// their digests from first on, and returns the rank after the last.
func (m *marshaler) rankDigests(ks []sortKey, first int32) int32 {
	if len(ks) == 0 {
		return first
	}
	rank := first
	m.drank[ks[0].i] = rank
	for i := 1; i < len(ks); i++ {
		if m.c.dgst(ks[i-1].i) != m.c.dgst(ks[i].i) {
			rank++
		}
		m.drank[ks[i].i] = rank
	}
	return rank + 1
}

// oneDigest tells whether the records of ks, two or more, all have one
// digest.
func (m *marshaler) oneDigest(ks []sortKey) bool {
	d := m.c.dgst(ks[0].i)
	for _, k := range ks[1:] {
		if m.c.dgst(k.i) != d {
			return false
		}
	}
	return true
}

// groupEntry is a record of a group of one digest, as sortGroup compares
// it: a record of one slot of one link (most of them) by that link's
// selector and its source's digest rank.
type groupEntry struct {
	id      int32
	srcRank int32
	sel     string
	simple  bool
}

// sortGroup sorts records of one digest as compareRecords would, comparing
// records of one link by that link without walking to it each time. When
// all are, they are sorted by selector and source first, and only the runs
// that tie by structure: the order compareRecords gives, as it compares
// in that order.
func (m *marshaler) sortGroup(ks []sortKey) {
	c := m.c
	es := make([]groupEntry, len(ks))
	all := true
	for i, k := range ks {
		es[i].id = k.i
		if x := c.recs.at(k.i); x.nslot == 1 {
			if ls := c.slotLinks(k.i, 0); len(ls) == 1 {
				es[i].simple, es[i].sel, es[i].srcRank = true, c.selector(ls[0]), m.drank[ls[0].src]
			}
		}
		all = all && es[i].simple
	}
	byLink := func(x, y groupEntry) int {
		if d := strings.Compare(x.sel, y.sel); d != 0 {
			return d
		}
		return cmp.Compare(x.srcRank, y.srcRank)
	}
	byStructure := func(x, y groupEntry) int { return m.compareStructure(x.id, y.id) }
	if all {
		slices.SortFunc(es, byLink)
		for i := 0; i < len(es); {
			j := i + 1
			for j < len(es) && byLink(es[i], es[j]) == 0 {
				j++
			}
			if j-i > 1 {
				slices.SortFunc(es[i:j], byStructure)
			}
			i = j
		}
	} else {
		slices.SortFunc(es, func(x, y groupEntry) int {
			if !x.simple || !y.simple {
				return m.compareRecords(x.id, y.id)
			}
			if d := byLink(x, y); d != 0 {
				return d
			}
			return byStructure(x, y)
		})
	}
	for i, e := range es {
		ks[i].i = e.id
	}
}

func (m *marshaler) compareRecords(a, b int32) int {
	c := m.c
	if x := m.compareDigests(a, b); x != 0 || a == b {
		return x
	}
	na, nb := int(c.recs.at(a).nslot), int(c.recs.at(b).nslot)
	if x := cmp.Compare(na, nb); x != 0 {
		return x
	}
	for i := range na {
		if x := cmp.Compare(len(c.slotLinks(a, i)), len(c.slotLinks(b, i))); x != 0 {
			return x
		}
	}
	for i := range na {
		la, lb := m.linksForCompare(a, i), m.linksForCompare(b, i)
		for j := range la {
			x, y := la[j], lb[j]
			if d := strings.Compare(c.selector(x), c.selector(y)); d != 0 {
				return d
			}
			if d := m.compareDigests(x.src, y.src); d != 0 {
				return d
			}
		}
	}
	return m.compareStructure(a, b)
}

// compareStructure compares records alike up to their sources' digests:
// by structural id, then by result, then by id.
func (m *marshaler) compareStructure(a, b int32) int {
	if a == b {
		return 0
	}
	if x := slices.Compare(m.structuralID(a), m.structuralID(b)); x != 0 {
		return x
	}
	// Structurally equal records are not made by Add; order them by their
	// results so that the output still does not depend on insertion order.
	if x := compareResults(m.bestResult(a), m.bestResult(b)); x != 0 {
		return x
	}
	return cmp.Compare(a, b)
}

// compareDigests compares the digests of records a and b, by their ranks.
func (m *marshaler) compareDigests(a, b int32) int {
	return cmp.Compare(m.drank[a], m.drank[b])
}

func (m *marshaler) bestResult(r int32) *Result {
	if e := m.c.best(r); e != nil {
		return &e.res
	}
	return nil
}

// linksForCompare returns the links of slot i of r sorted by selector,
// source digest and source structure. Sorted copies of slots of several
// links are kept, by slot.
func (m *marshaler) linksForCompare(r int32, i int) []link {
	c := m.c
	ls := c.slotLinks(r, i)
	if len(ls) < 2 {
		return ls
	}
	k := c.recs.at(r).slot0 + int32(i)
	if s, ok := m.cmpLinks[k]; ok {
		return s
	}
	s := slices.Clone(ls)
	slices.SortFunc(s, func(x, y link) int {
		if d := strings.Compare(c.selector(x), c.selector(y)); d != 0 {
			return d
		}
		if d := m.compareDigests(x.src, y.src); d != 0 {
			return d
		}
		return slices.Compare(m.structuralID(x.src), m.structuralID(y.src))
	})
	if m.cmpLinks == nil {
		m.cmpLinks = map[int32][]link{}
	}
	m.cmpLinks[k] = s
	return s
}

// structuralID is a digest of r's digest and, recursively, of its inputs:
// equal for records that look the same from the roots up.
func (m *marshaler) structuralID(r int32) []byte {
	if m.ids == nil {
		m.ids = newStructuralIDs(int(m.c.recs.len()))
	}
	return m.ids.of(m.c, r)
}

// sortKey is a digest's hexKey and an index.
type sortKey struct {
	k0 uint64
	i  int32
}

func (x sortKey) compare(y sortKey) int {
	return cmp.Compare(x.k0, y.k0)
}

// sortKeys sorts ks by key (not by index). Digests are uniformly spread,
// so a pass that puts each key in a bucket by its top bits leaves buckets
// of a few keys to sort; keys that are not spread cost a comparison
// sort within their bucket, never more.
func sortKeys(ks []sortKey) {
	if len(ks) < 64 {
		slices.SortFunc(ks, sortKey.compare)
		return
	}
	shift := 64 - (bits.Len(uint(len(ks))) - 2)
	nb := 1 << (64 - shift) // between a quarter and half of len(ks)
	start := make([]int32, nb+1)
	for _, k := range ks {
		start[(k.k0>>shift)+1]++
	}
	for i := 1; i <= nb; i++ {
		start[i] += start[i-1]
	}
	out := make([]sortKey, len(ks))
	fill := slices.Clone(start[:nb])
	for _, k := range ks {
		b := k.k0 >> shift
		out[fill[b]] = k
		fill[b]++
	}
	for b := range nb {
		if run := out[start[b]:start[b+1]]; len(run) > 1 {
			slices.SortFunc(run, sortKey.compare)
		}
	}
	copy(ks, out)
}

// forEqualKeys calls f for every run of two or more keys of sorted ks that
// are equal.
func forEqualKeys(ks []sortKey, f func([]sortKey)) {
	for i := 0; i < len(ks); {
		j := i + 1
		for j < len(ks) && ks[j].k0 == ks[i].k0 {
			j++
		}
		if j-i > 1 {
			f(ks[i:j])
		}
		i = j
	}
}
