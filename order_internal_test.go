package remotecache

import "fmt"

// CheckOrderForTest is checkOrder, for the external tests.
var CheckOrderForTest = (*CacheChains).checkOrder

// SetHashMaskForTest keeps only the bits of mask of the 32-bit hashes
// that index children, blobs and selectors, so that many collide, and
// returns a func that restores them.
func SetHashMaskForTest(mask uint32) (restore func()) {
	old := hashMask
	hashMask = mask
	return func() { hashMask = old }
}

// checkOrder returns an error unless every link of the graph goes from a
// record of a lower ord to one of a higher ord and the ords are distinct.
func (c *CacheChains) checkOrder() error {
	seen := map[int32]int32{}
	for id := range c.recs.len() {
		r := c.recs.at(id)
		if r.merged != 0 || r.dropped {
			continue
		}
		if o, ok := seen[r.ord]; ok {
			return fmt.Errorf("records %d and %d share ord %d", o, id, r.ord)
		}
		seen[r.ord] = id
		for i := range int(r.nslot) {
			for _, l := range c.slotLinks(id, i) {
				if c.recs.at(l.src).ord >= r.ord {
					return fmt.Errorf("record %d (ord %d) slot %d: link from record %d of ord %d", id, r.ord, i, l.src, c.recs.at(l.src).ord)
				}
			}
		}
	}
	return nil
}
