package remotecache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// structuralIDs computes, and keeps, the structural ids of records: the
// sha256 of a record's digest and, for each input slot, its number of
// links and each link's selector and source id, sorted. Records whose ids
// are equal look the same from the roots up. Sources come first, without
// recursion (graphs can be 100,000 records deep), and the same scratch
// buffers serve every record.
type structuralIDs struct {
	ids chunks[[sha256.Size]byte] // in the order they are made (arena.go: no copies as it grows)
	// at is, by record, 0 before its id is made, -1 while its sources'
	// are, then the index of its id in ids plus 1.
	at    []int32
	out   []byte
	buf   []byte
	keys  [][]byte
	stack []int32
}

func newStructuralIDs(n int) *structuralIDs {
	return &structuralIDs{at: make([]int32, n)}
}

// of returns r's structural id.
func (s *structuralIDs) of(c *CacheChains, r int32) []byte {
	if k := s.at[r]; k > 0 {
		return s.ids.at(k - 1)[:]
	}
	s.stack = append(s.stack[:0], r)
	for len(s.stack) > 0 {
		x := s.stack[len(s.stack)-1]
		switch s.at[x] {
		case 0:
			s.at[x] = -1
			for i := range int(c.recs.at(x).nslot) {
				for _, l := range c.slotLinks(x, i) {
					if s.at[l.src] == 0 {
						s.stack = append(s.stack, l.src)
					}
				}
			}
		case -1:
			s.compute(c, x)
			s.stack = s.stack[:len(s.stack)-1]
		default:
			s.stack = s.stack[:len(s.stack)-1]
		}
	}
	return s.ids.at(s.at[r] - 1)[:]
}

// compute computes the id of x, whose sources all have theirs: the
// bytes hashed are put together in out, then hashed at once.
func (s *structuralIDs) compute(c *CacheChains, x int32) {
	s.out = append(s.out[:0], c.dgst(x)...)
	for i := range int(c.recs.at(x).nslot) {
		slot := c.slotLinks(x, i)
		s.out = binary.LittleEndian.AppendUint64(s.out, uint64(len(slot)))
		if len(slot) == 1 {
			l := slot[0]
			sel := c.selector(l)
			s.out = binary.LittleEndian.AppendUint64(s.out, uint64(len(sel)+1+sha256.Size))
			s.out = append(s.out, sel...)
			s.out = append(s.out, 0)
			s.out = append(s.out, s.ids.at(s.at[l.src] - 1)[:]...)
			continue
		}
		// The keys, sorted: selector, a zero byte, the source's id.
		s.buf = s.buf[:0]
		for _, l := range slot {
			s.buf = append(s.buf, c.selector(l)...)
			s.buf = append(s.buf, 0)
			s.buf = append(s.buf, s.ids.at(s.at[l.src] - 1)[:]...)
		}
		s.keys = s.keys[:0]
		off := 0
		for _, l := range slot {
			end := off + len(c.selector(l)) + 1 + sha256.Size
			s.keys = append(s.keys, s.buf[off:end:end])
			off = end
		}
		slices.SortFunc(s.keys, bytes.Compare)
		for _, k := range s.keys {
			s.out = binary.LittleEndian.AppendUint64(s.out, uint64(len(k)))
			s.out = append(s.out, k...)
		}
	}
	s.at[x] = s.ids.add(sha256.Sum256(s.out)) + 1
}
