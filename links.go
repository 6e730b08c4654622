package remotecache

// The graph is kept in arrays addressed by index (arena.go), without
// pointers, so that the garbage collector has nothing to scan in it and a
// record costs no allocation of its own:
//
//   - recs[id] is record id (ids in creation order);
//   - a record's input slots are a run of slots, from rec.slot0;
//   - a slot's links are a run of links, from slot.off, with room for cap;
//   - a record's children (the records that link from it) are a list
//     threaded through kids, from rec.kidHead, in the order they came.
//
// References into kids and results are 1-based, so that 0 means none.

// rec is a record of the graph. Its results are on the results side
// (recRes, results.go), which another goroutine may be filling.
type rec struct {
	k0    uint64 // the digest's first 16 hex digits, for sorting (see hexKey)
	slot0 int32  // first of its input slots in slots
	nslot int32
	// kidHead and kidTail are its first and last child in kids.
	kidHead, kidTail int32
	ord              int32  // topological order (order.go)
	mark             uint32 // scratch of the cycle check
	// merged is the record it was merged into, plus 1: handles to it then
	// stand for that record.
	merged int32
	// hexKey is set when k0 orders the digest as its string does, up to
	// the 16th hex digit.
	hexKey bool
	// dropped is set when a merge left the record with no way in that
	// would not close a cycle; it is no longer part of the graph.
	dropped bool
}

// slot is an input slot: links[off : off+n], with room up to off+cap.
type slot struct {
	off, n, cap int32
}

// link is an input link of a record, stored on the target record.
type link struct {
	src int32  // source record
	sel int32  // selector (CacheChains.sels), 0 for none
	sh  uint32 // hash of the selector, 0 for none
}

// kid is an entry of a children list.
type kid struct {
	child int32
	next  int32 // next entry, or 0
}

// live follows merges to the record that id now stands for.
func (c *CacheChains) live(id int32) int32 {
	for c.recs.at(id).merged != 0 {
		id = c.recs.at(id).merged - 1
	}
	return id
}

// slotLinks returns the links of slot i of r, or nil if r has no slot i.
// The slice is valid until the next change of the graph.
func (c *CacheChains) slotLinks(r int32, i int) []link {
	x := c.recs.at(r)
	if i >= int(x.nslot) {
		return nil
	}
	s := c.slots.at(x.slot0 + int32(i))
	return c.links.span(s.off, s.n)
}

// slotHas tells whether slot i of r has the link l.
func (c *CacheChains) slotHas(r int32, i int, l link) bool {
	return c.containsLink(c.slotLinks(r, i), l)
}

// sameLink tells whether a and b come from one source through one
// selector.
func (c *CacheChains) sameLink(a, b link) bool {
	return a.src == b.src && a.sh == b.sh && (a.sel == b.sel || *c.sels.at(a.sel) == *c.sels.at(b.sel))
}

func (c *CacheChains) containsLink(ls []link, l link) bool {
	for _, x := range ls {
		if c.sameLink(x, l) {
			return true
		}
	}
	return false
}

// selector returns l's selector.
func (c *CacheChains) selector(l link) string {
	if l.sel == 0 {
		return ""
	}
	return *c.sels.at(l.sel)
}

// growSlots gives r at least n slots, moving its slots to a new run
// unless theirs can grow.
func (c *CacheChains) growSlots(r int32, n int) {
	x := c.recs.at(r)
	have := x.nslot
	if int(have) >= n {
		return
	}
	if !c.slots.grow(x.slot0, have, int32(n)) {
		start := c.slots.alloc(int32(n))
		copy(c.slots.span(start, int32(n)), c.slots.span(x.slot0, have))
		x.slot0 = start
	}
	x.nslot = int32(n)
}

// appendLink appends l to slot i of r, which must exist.
func (c *CacheChains) appendLink(r int32, i int, l link) {
	s := c.slots.at(c.recs.at(r).slot0 + int32(i))
	if s.n == s.cap {
		n := max(2*s.cap, 2)
		if !c.links.grow(s.off, s.cap, n) {
			off := c.links.alloc(n)
			copy(c.links.span(off, s.n), c.links.span(s.off, s.n))
			s.off = off
		}
		s.cap = n
	}
	*c.links.at(s.off + s.n) = l
	s.n++
}

// filterSlot keeps the links of slot i of r for which keep is true, in
// their order, and returns how many are left.
func (c *CacheChains) filterSlot(r int32, i int, keep func(link) bool) int {
	s := c.slots.at(c.recs.at(r).slot0 + int32(i))
	ls := c.links.span(s.off, s.n)
	n := 0
	for _, l := range ls {
		if keep(l) {
			ls[n] = l
			n++
		}
	}
	s.n = int32(n)
	return n
}

// addKid appends ch to the children of src, unless it is the last one
// already. A list may name a child more than once (linked from src in
// several slots or with several selectors); every user of it copes.
// Scanning it for ch would make popular bases quadratic.
func (c *CacheChains) addKid(src, ch int32) {
	x := c.recs.at(src)
	if x.kidTail != 0 && c.kids.at(x.kidTail-1).child == ch {
		return
	}
	k := c.kids.add(kid{child: ch}) + 1
	if x.kidTail == 0 {
		x.kidHead = k
	} else {
		c.kids.at(x.kidTail - 1).next = k
	}
	x.kidTail = k
}

// removeKid removes every entry of ch from the children of src.
func (c *CacheChains) removeKid(src, ch int32) {
	x := c.recs.at(src)
	var prev int32
	for k := x.kidHead; k != 0; {
		next := c.kids.at(k - 1).next
		if c.kids.at(k-1).child == ch {
			if prev == 0 {
				x.kidHead = next
			} else {
				c.kids.at(prev - 1).next = next
			}
			if x.kidTail == k {
				x.kidTail = prev
			}
		} else {
			prev = k
		}
		k = next
	}
}

// kidsOf returns the children of r, in their order, duplicates included,
// appended to buf.
func (c *CacheChains) kidsOf(r int32, buf []int32) []int32 {
	for k := c.recs.at(r).kidHead; k != 0; k = c.kids.at(k - 1).next {
		buf = append(buf, c.kids.at(k-1).child)
	}
	return buf
}
