package remotecache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"slices"
)

// structuralIDs computes, and keeps, the structural ids of records: the
// sha256 of a record's digest and, for each input slot, its number of
// links and each link's selector and source id, sorted. Records whose ids
// are equal look the same from the roots up. Sources come first, without
// recursion (graphs can be 100,000 records deep), and one hasher and
// scratch buffers serve every record.
type structuralIDs struct {
	ids [][sha256.Size]byte // in the order they are made
	// at is, by record, 0 before its id is made, -1 while its sources'
	// are, then the index of its id in ids plus 1.
	at    []int32
	h     hash.Hash
	buf   []byte
	keys  [][]byte
	stack []int32
}

func newStructuralIDs(n int) *structuralIDs {
	return &structuralIDs{at: make([]int32, n), h: sha256.New()}
}

// of returns r's structural id.
func (s *structuralIDs) of(c *CacheChains, r int32) []byte {
	if k := s.at[r]; k > 0 {
		return s.ids[k-1][:]
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
	return s.ids[s.at[r]-1][:]
}

// compute computes the id of x, whose sources all have theirs.
func (s *structuralIDs) compute(c *CacheChains, x int32) {
	h := s.h
	h.Reset()
	s.buf = append(s.buf[:0], c.dgst(x)...)
	h.Write(s.buf)
	var n [8]byte
	for i := range int(c.recs.at(x).nslot) {
		slot := c.slotLinks(x, i)
		binary.LittleEndian.PutUint64(n[:], uint64(len(slot)))
		h.Write(n[:])
		// The keys: selector, a zero byte, the source's id.
		s.buf = s.buf[:0]
		for _, l := range slot {
			s.buf = append(s.buf, c.sels[l.sel]...)
			s.buf = append(s.buf, 0)
			s.buf = append(s.buf, s.ids[s.at[l.src]-1][:]...)
		}
		s.keys = s.keys[:0]
		off := 0
		for _, l := range slot {
			end := off + len(c.sels[l.sel]) + 1 + sha256.Size
			s.keys = append(s.keys, s.buf[off:end:end])
			off = end
		}
		slices.SortFunc(s.keys, bytes.Compare)
		for _, k := range s.keys {
			binary.LittleEndian.PutUint64(n[:], uint64(len(k)))
			h.Write(n[:])
			h.Write(k)
		}
	}
	s.ids = append(s.ids, [sha256.Size]byte{})
	h.Sum(s.ids[len(s.ids)-1][:0])
	s.at[x] = int32(len(s.ids))
}
