package refchains

import (
	"hash/maphash"
	"slices"
)

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
