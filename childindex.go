package remotecache

import (
	"hash/maphash"
	"slices"
)

// The children index is keyed by a 32-bit hash of the source, the slot,
// the selector and the hash of the target's digest, not by the four (a
// map of 32-bit keys takes half the memory): the records found under a key
// are checked in full, and a record is listed once per link, so that two
// links whose keys collide (a few in a graph of 100,000 links) come and go
// each with its own entry and cost only a check more.

// key returns the children index key of a link from src, in slot through
// a selector that hashes to sel, into a record whose digest hashes to
// dgst.
func (c *CacheChains) key(src int32, slot int, sel uint32, dgst uint64) uint32 {
	return uint32(dgst^mix(uint64(uint32(src))|uint64(sel)<<32)^mix(uint64(slot)^0x9e3779b97f4a7c15)) & c.mask
}

// hashMask keeps every bit of the 32-bit hashes; tests clear most to make
// hashes collide. A graph takes it when it is made (CacheChains.mask), so
// that a test that changes it races with no graph's goroutine.
var hashMask uint32 = 1<<32 - 1

// mix is splitmix64's finalizer: a bijection of 64-bit integers that
// spreads every bit over all of them.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hash32 is hash cut to the 32 bits of the indexes' keys.
func (c *CacheChains) hash32(s string) uint32 { return uint32(c.hash(s)) & c.mask }

func (c *CacheChains) hash(s string) uint64 {
	if s == "" {
		return 0
	}
	return maphash.String(c.seed, s)
}

// childAdd lists r under k.
func (c *CacheChains) childAdd(k uint32, r int32) {
	if f, _ := c.children.get(k); f == 0 {
		c.children.set(k, r+1)
		return
	}
	c.childMore[k] = append(c.childMore[k], r)
}

// childRemove takes one entry of r off k's list.
func (c *CacheChains) childRemove(k uint32, r int32) {
	more := c.childMore[k]
	if f, _ := c.children.get(k); f == r+1 {
		if len(more) == 0 {
			c.children.del(k)
			return
		}
		c.children.set(k, more[0]+1)
		more = more[1:]
	} else if i := slices.Index(more, r); i >= 0 {
		more = slices.Delete(more, i, i+1)
	}
	if len(more) == 0 {
		delete(c.childMore, k)
	} else {
		c.childMore[k] = more
	}
}

// indexNew records that r, whose digest hashes to dkey, has a new link
// from src in slot i through a selector that hashes to sel.
func (c *CacheChains) indexNew(src int32, i int, sel uint32, r int32, dkey uint64) {
	c.addKid(src, r)
	c.childAdd(c.key(src, i, sel, dkey), r)
}

// unindexLink removes what indexNew recorded in the index (not the
// children list).
func (c *CacheChains) unindexLink(src int32, i int, sel uint32, r int32) {
	c.childRemove(c.key(src, i, sel, c.dkey(r)), r)
}
