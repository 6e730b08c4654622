package refchains

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

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
