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
	ids   [][sha256.Size]byte // by record
	state []uint8             // by record: 0 not yet, 1 sources pending, 2 done
	h     hash.Hash
	buf   []byte
	keys  [][]byte
	stack []int32
}

func newStructuralIDs(n int) *structuralIDs {
	return &structuralIDs{ids: make([][sha256.Size]byte, n), state: make([]uint8, n), h: sha256.New()}
}

// of returns r's structural id.
func (s *structuralIDs) of(c *CacheChains, r int32) []byte {
	if s.state[r] == 2 {
		return s.ids[r][:]
	}
	s.stack = append(s.stack[:0], r)
	for len(s.stack) > 0 {
		x := s.stack[len(s.stack)-1]
		switch s.state[x] {
		case 2:
			s.stack = s.stack[:len(s.stack)-1]
		case 1:
			s.compute(c, x)
			s.state[x] = 2
			s.stack = s.stack[:len(s.stack)-1]
		default:
			s.state[x] = 1
			for i := range int(c.recs.at(x).nslot) {
				for _, l := range c.slotLinks(x, i) {
					if s.state[l.src] == 0 {
						s.stack = append(s.stack, l.src)
					}
				}
			}
		}
	}
	return s.ids[r][:]
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
			s.buf = append(s.buf, s.ids[l.src][:]...)
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
	h.Sum(s.ids[x][:0])
}
