package remotecache

import "fmt"

// CheckOrderForTest is checkOrder, for the external tests.
var CheckOrderForTest = (*CacheChains).checkOrder

// checkOrder returns an error unless every link of the graph goes from a
// record of a lower ord to one of a higher ord and the ords are distinct.
func (c *CacheChains) checkOrder() error {
	seen := map[int]*record{}
	for _, r := range c.records {
		if r.mergedInto != nil || r.dropped {
			continue
		}
		if o, ok := seen[r.ord]; ok {
			return fmt.Errorf("records %d and %d share ord %d", o.seq, r.seq, r.ord)
		}
		seen[r.ord] = r
		for i, slot := range r.slots {
			for _, l := range slot {
				if l.src.ord >= r.ord {
					return fmt.Errorf("record %d (ord %d) slot %d: link from record %d of ord %d", r.seq, r.ord, i, l.src.seq, l.src.ord)
				}
			}
		}
	}
	return nil
}
