package refchains

import (
	"slices"
)

// merge folds record o into main: its links, its children and its
// results. Links that would close a cycle are dropped, as in Add. Children
// of o and of main that thereby become linked alike are merged too.
func (c *CacheChains) merge(main, o *record) {
	type childLink struct {
		ch       *record
		slot     int
		selector string
		sel      uint64
	}
	// Detach o from its children and from its sources.
	var kids []childLink
	for _, ch := range o.children {
		for i, slot := range ch.slots {
			kept := slot[:0]
			for _, l := range slot {
				if l.src == o {
					c.unindexLink(o, i, l.sel, ch)
					kids = append(kids, childLink{ch, i, l.selector, l.sel})
					continue
				}
				kept = append(kept, l)
			}
			ch.slots[i] = kept
		}
	}
	parents := o.slots
	for i, slot := range parents {
		for _, l := range slot {
			c.unindexLink(l.src, i, l.sel, o)
			l.src.children = removeRecord(l.src.children, o)
		}
	}
	o.slots, o.children = nil, nil
	o.mergedInto = main
	main.addResults(o.results)
	o.results = nil

	// o's children become main's, unless they lead to main.
	var anc map[*record]struct{}
	for _, k := range kids {
		if k.ch == main {
			continue
		}
		if anc == nil {
			anc = main.ancestors()
		}
		if _, ok := anc[k.ch]; ok {
			if len(k.ch.slots[k.slot]) == 0 {
				c.drop(k.ch) // its only way in would close a cycle
			}
			continue
		}
		c.addLink(k.ch, k.slot, link{src: main, selector: k.selector, sel: k.sel})
	}
	// Links into o become links into main, unless they come from below it.
	desc := main.descendants()
	for i, slot := range parents {
		for _, l := range slot {
			if _, ok := desc[l.src]; ok {
				continue
			}
			c.addLink(main, i, l)
		}
	}
	// Records now linked alike from main are one record.
	for _, k := range kids {
		if !k.ch.dropped {
			c.mergeTwins(main.live(), k.slot, k.sel, k.ch.live())
		}
	}
}

// drop takes r out of the graph, with every record left with an empty
// input slot by that: such records cannot be written or reached.
func (c *CacheChains) drop(r *record) {
	work := []*record{r}
	for len(work) > 0 {
		x := work[len(work)-1]
		work = work[:len(work)-1]
		if x.dropped {
			continue
		}
		x.dropped = true
		for i, slot := range x.slots {
			for _, l := range slot {
				c.unindexLink(l.src, i, l.sel, x)
				l.src.children = removeRecord(l.src.children, x)
			}
		}
		for _, ch := range x.children {
			for i, slot := range ch.slots {
				kept := slot[:0]
				for _, l := range slot {
					if l.src == x {
						c.unindexLink(x, i, l.sel, ch)
						continue
					}
					kept = append(kept, l)
				}
				ch.slots[i] = kept
				if len(kept) == 0 {
					work = append(work, ch)
				}
			}
		}
		x.slots, x.children, x.results = nil, nil, nil
	}
}

// mergeTwins merges ch with every other record of its digest that is
// linked from src in the same slot with the same selector and that shares
// a link with it in every slot: Add would have made them one.
func (c *CacheChains) mergeTwins(src *record, slot int, sel uint64, ch *record) {
	for {
		var twin *record
		c.childEach(key(src, slot, sel, ch.dkey), func(r *record) {
			if twin == nil && r != ch && r.dgst == ch.dgst && linkedAlike(r, ch) {
				twin = r
			}
		})
		if twin == nil {
			return
		}
		if twin.seq < ch.seq {
			ch, twin = twin, ch
		}
		c.merge(ch, twin)
		ch = ch.live()
		src = src.live()
	}
}

// linkedAlike tells whether a and b have as many slots and share a link in
// each.
func linkedAlike(a, b *record) bool {
	if len(a.slots) != len(b.slots) {
		return false
	}
	for i := range a.slots {
		shared := false
		for _, l := range a.slots[i] {
			if containsLink(b.slots[i], l) {
				shared = true
				break
			}
		}
		if !shared {
			return false
		}
	}
	return true
}

// removeRecord removes every r from rs.
func removeRecord(rs []*record, r *record) []*record {
	return slices.DeleteFunc(rs, func(x *record) bool { return x == r })
}

// descendants returns r and every record reachable from it through links.
func (r *record) descendants() map[*record]struct{} {
	seen := map[*record]struct{}{r: {}}
	stack := []*record{r}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, ch := range x.children {
			if _, ok := seen[ch]; !ok {
				seen[ch] = struct{}{}
				stack = append(stack, ch)
			}
		}
	}
	return seen
}

// ancestors returns r and every record r is reached from through links.
func (r *record) ancestors() map[*record]struct{} {
	seen := map[*record]struct{}{r: {}}
	stack := []*record{r}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, slot := range x.slots {
			for _, l := range slot {
				if _, ok := seen[l.src]; !ok {
					seen[l.src] = struct{}{}
					stack = append(stack, l.src)
				}
			}
		}
	}
	return seen
}
