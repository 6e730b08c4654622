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
func (m *marshaler) sortRecords() error {
	c := m.c
	ks := make([]sortKey, len(m.recs))
	hex := true
	for i, r := range m.recs {
		x := c.recs.at(r)
		ks[i] = sortKey{x.k0, r}
		hex = hex && x.hexKey
	}
	byRecord := func(x, y sortKey) int { return m.compareRecords(x.i, y.i) }
	if hex {
		// The keys order the digests up to their 16th hex digit; only
		// records whose keys are equal need comparing in full.
		sortKeys(ks)
		forEqualKeys(ks, func(run []sortKey) { slices.SortFunc(run, byRecord) })
	} else {
		slices.SortFunc(ks, byRecord)
	}
	m.order = make([]int32, len(ks))
	m.rank = make([]int32, c.recs.len())
	for i, k := range ks {
		m.order[i] = k.i
		m.rank[k.i] = int32(i)
	}
	return m.ctx.Err()
}

func (m *marshaler) compareRecords(a, b int32) int {
	c := m.c
	if x := strings.Compare(string(c.dgst(a)), string(c.dgst(b))); x != 0 || a == b {
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
	la, lb := m.linksForCompare(a), m.linksForCompare(b)
	for i := range la {
		for j := range la[i] {
			x, y := la[i][j], lb[i][j]
			if d := strings.Compare(c.sels[x.sel], c.sels[y.sel]); d != 0 {
				return d
			}
			if d := strings.Compare(string(c.dgst(x.src)), string(c.dgst(y.src))); d != 0 {
				return d
			}
		}
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

func (m *marshaler) bestResult(r int32) *Result {
	if e := m.c.best(r); e != nil {
		return &e.res
	}
	return nil
}

// linksForCompare returns r's links, each slot sorted by selector, source
// digest and source structure.
func (m *marshaler) linksForCompare(r int32) [][]link {
	c := m.c
	if m.cmpLinks == nil {
		m.cmpLinks = make([][][]link, c.recs.len())
	}
	if ls := m.cmpLinks[r]; ls != nil {
		return ls
	}
	ls := make([][]link, c.recs.at(r).nslot)
	for i := range ls {
		ls[i] = slices.Clone(c.slotLinks(r, i))
		slices.SortFunc(ls[i], func(x, y link) int {
			if d := strings.Compare(c.sels[x.sel], c.sels[y.sel]); d != 0 {
				return d
			}
			if d := strings.Compare(string(c.dgst(x.src)), string(c.dgst(y.src))); d != 0 {
				return d
			}
			return slices.Compare(m.structuralID(x.src), m.structuralID(y.src))
		})
	}
	m.cmpLinks[r] = ls
	return ls
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
// of about one key to sort; keys that are not spread cost a comparison
// sort within their bucket, never more.
func sortKeys(ks []sortKey) {
	if len(ks) < 64 {
		slices.SortFunc(ks, sortKey.compare)
		return
	}
	shift := 64 - bits.Len(uint(len(ks)))
	nb := 1 << (64 - shift) // between len(ks) and twice that
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
