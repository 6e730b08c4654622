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
func (c *CacheChains) reaches(from, to *record) bool {
	if from == to {
		return true
	}
	if to.ord < from.ord {
		return false
	}
	c.gen++
	gen := c.gen
	stack := append(c.stack[:0], from)
	from.mark = gen
	found := false
	for len(stack) > 0 && !found {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, ch := range x.children {
			if ch == to {
				found = true
				break
			}
			if ch.mark != gen && ch.ord < to.ord {
				ch.mark = gen
				stack = append(stack, ch)
			}
		}
	}
	clear(stack)
	c.stack = stack[:0]
	return found
}

// order makes room for a link from src into r, which must not close a
// cycle: when src's ord is above r's, the records reached from r below
// src's ord and the records src is reached from above r's ord swap their
// ords, so that the first come after the second, in their own orders.
func (c *CacheChains) order(src, r *record) {
	if src.ord < r.ord {
		return
	}
	lb, ub := r.ord, src.ord
	c.gen++
	gen := c.gen
	// Forward from r, below src's ord.
	fwd := []*record{r}
	r.mark = gen
	for i := 0; i < len(fwd); i++ {
		for _, ch := range fwd[i].children {
			if ch.mark != gen && ch.ord < ub {
				ch.mark = gen
				fwd = append(fwd, ch)
			}
		}
	}
	// Backward from src, above r's ord.
	back := []*record{src}
	src.mark = gen
	for i := 0; i < len(back); i++ {
		for _, slot := range back[i].slots {
			for _, l := range slot {
				if p := l.src; p.mark != gen && p.ord > lb {
					p.mark = gen
					back = append(back, p)
				}
			}
		}
	}
	byOrd := func(a, b *record) int { return cmp.Compare(a.ord, b.ord) }
	slices.SortFunc(fwd, byOrd)
	slices.SortFunc(back, byOrd)
	ords := make([]int, 0, len(fwd)+len(back))
	for _, x := range back {
		ords = append(ords, x.ord)
	}
	for _, x := range fwd {
		ords = append(ords, x.ord)
	}
	slices.Sort(ords)
	for i, x := range back {
		x.ord = ords[i]
	}
	for i, x := range fwd {
		x.ord = ords[len(back)+i]
	}
}
