package remotecache

import (
	"cmp"
	"slices"
)

// The records are kept in a topological order (Pearce and Kelly's dynamic
// topological sort): every link goes from a record of a lower ord to one of
// a higher ord, and no two records share an ord. A new record gets an ord
// above all others, as its sources are all older. A link added later from
// a record of a higher ord than its target either closes a cycle (reaches
// says so, and the link is dropped) or moves the few records between the
// two (order). So the cycle check never walks more than the records whose
// ord lies between the link's two ends, and most links need no walk at
// all: a source of a lower ord cannot be a descendant.

// reaches tells whether to is from or a descendant of it: a link from to
// into from would close a cycle. Only records of ords between the two are
// visited.
func (c *CacheChains) reaches(from, to int32) bool {
	if from == to {
		return true
	}
	limit := c.recs.at(to).ord
	if limit < c.recs.at(from).ord {
		return false
	}
	gen := c.nextGen()
	stack := append(c.stack[:0], from)
	c.recs.at(from).mark = gen
	found := false
	for len(stack) > 0 && !found {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for k := c.recs.at(x).kidHead; k != 0; k = c.kids.at(k - 1).next {
			ch := c.kids.at(k - 1).child
			if ch == to {
				found = true
				break
			}
			if r := c.recs.at(ch); r.mark != gen && r.ord < limit {
				r.mark = gen
				stack = append(stack, ch)
			}
		}
	}
	c.stack = stack[:0]
	return found
}

// order makes room for a link from src into r, which must not close a
// cycle: when src's ord is above r's, the records reached from r below
// src's ord and the records src is reached from above r's ord swap their
// ords, so that the first come after the second, in their own orders.
func (c *CacheChains) order(src, r int32) {
	lb, ub := c.recs.at(r).ord, c.recs.at(src).ord
	if ub < lb {
		return
	}
	gen := c.nextGen()
	// Forward from r, below src's ord.
	fwd := []int32{r}
	c.recs.at(r).mark = gen
	for i := 0; i < len(fwd); i++ {
		for k := c.recs.at(fwd[i]).kidHead; k != 0; k = c.kids.at(k - 1).next {
			ch := c.kids.at(k - 1).child
			if x := c.recs.at(ch); x.mark != gen && x.ord < ub {
				x.mark = gen
				fwd = append(fwd, ch)
			}
		}
	}
	// Backward from src, above r's ord.
	back := []int32{src}
	c.recs.at(src).mark = gen
	for i := 0; i < len(back); i++ {
		x := c.recs.at(back[i])
		for s := range int(x.nslot) {
			for _, l := range c.slotLinks(back[i], s) {
				if p := c.recs.at(l.src); p.mark != gen && p.ord > lb {
					p.mark = gen
					back = append(back, l.src)
				}
			}
		}
	}
	byOrd := func(a, b int32) int { return cmp.Compare(c.recs.at(a).ord, c.recs.at(b).ord) }
	slices.SortFunc(fwd, byOrd)
	slices.SortFunc(back, byOrd)
	ords := make([]int32, 0, len(fwd)+len(back))
	for _, x := range back {
		ords = append(ords, c.recs.at(x).ord)
	}
	for _, x := range fwd {
		ords = append(ords, c.recs.at(x).ord)
	}
	slices.Sort(ords)
	for i, x := range back {
		c.recs.at(x).ord = ords[i]
	}
	for i, x := range fwd {
		c.recs.at(x).ord = ords[len(back)+i]
	}
}

// nextGen returns a mark that no record has.
func (c *CacheChains) nextGen() uint32 {
	c.gen++
	if c.gen == 0 {
		for i := range c.recs.len() {
			c.recs.at(i).mark = 0
		}
		c.gen = 1
	}
	return c.gen
}
