package remotecache

// merge folds record o into main: its links, its children and its
// results. Links that would close a cycle are dropped, as in Add. Children
// of o and of main that thereby become linked alike are merged too.
func (c *CacheChains) merge(main, o int32) {
	c.settleResults()
	type childLink struct {
		ch   int32
		slot int
		l    link // from o
	}
	// Detach o from its children and from its sources.
	var kids []childLink
	for _, ch := range c.kidsOf(o, nil) {
		for i := range int(c.recs.at(ch).nslot) {
			c.filterSlot(ch, i, func(l link) bool {
				if l.src == o {
					c.unindexLink(o, i, l.sh, ch)
					kids = append(kids, childLink{ch, i, l})
					return false
				}
				return true
			})
		}
	}
	x := c.recs.at(o)
	var parents [][]link
	for i := range int(x.nslot) {
		slot := c.slotLinks(o, i)
		parents = append(parents, append([]link(nil), slot...))
		for _, l := range slot {
			c.unindexLink(l.src, i, l.sh, o)
			c.removeKid(l.src, o)
		}
	}
	x = c.recs.at(o)
	x.nslot, x.kidHead, x.kidTail = 0, 0, 0
	x.merged = main + 1
	c.moveResults(main, o)

	// o's children become main's, unless they lead to main. Which do is
	// decided before any link moves: a drop below could cut a way to main.
	toMain := make([]bool, len(kids))
	for i, k := range kids {
		toMain[i] = k.ch != main && c.reaches(k.ch, main)
	}
	for i, k := range kids {
		if k.ch == main {
			continue
		}
		if toMain[i] {
			// Its only way in would close a cycle. (A record a drop
			// of this loop took already has no slots.)
			if ls := c.slotLinks(k.ch, k.slot); len(ls) == 0 && !c.recs.at(k.ch).dropped {
				c.drop(k.ch)
			}
			continue
		}
		c.addLink(k.ch, k.slot, link{src: main, sel: k.l.sel, sh: k.l.sh})
	}
	// Links into o become links into main, unless they come from below it.
	for i, slot := range parents {
		for _, l := range slot {
			if c.reaches(main, l.src) {
				continue
			}
			c.addLink(main, i, l)
		}
	}
	// Records now linked alike from main are one record.
	for _, k := range kids {
		if !c.recs.at(k.ch).dropped {
			c.mergeTwins(c.live(main), k.slot, k.l, c.live(k.ch))
		}
	}
}

// drop takes r out of the graph, with every record left with an empty
// input slot by that: such records cannot be written or reached.
func (c *CacheChains) drop(r int32) {
	c.settleResults()
	work := []int32{r}
	var kids []int32
	for len(work) > 0 {
		x := work[len(work)-1]
		work = work[:len(work)-1]
		if c.recs.at(x).dropped {
			continue
		}
		c.recs.at(x).dropped = true
		for i := range int(c.recs.at(x).nslot) {
			for _, l := range c.slotLinks(x, i) {
				c.unindexLink(l.src, i, l.sh, x)
				c.removeKid(l.src, x)
			}
		}
		kids = c.kidsOf(x, kids[:0])
		for _, ch := range kids {
			for i := range int(c.recs.at(ch).nslot) {
				n := c.filterSlot(ch, i, func(l link) bool {
					if l.src == x {
						c.unindexLink(x, i, l.sh, ch)
						return false
					}
					return true
				})
				if n == 0 {
					work = append(work, ch)
				}
			}
		}
		d := c.recs.at(x)
		d.nslot, d.kidHead, d.kidTail = 0, 0, 0
		rr := c.recResults(x)
		rr.res, rr.best = 0, 0
	}
}

// mergeTwins merges ch with every other record of its digest that is
// linked from src in the same slot with the same selector (l's) and that
// shares a link with it in every slot: Add would have made them one.
func (c *CacheChains) mergeTwins(src int32, slot int, l link, ch int32) {
	for {
		twin := int32(-1)
		k := c.key(src, slot, l.sh, c.dkey(ch))
		from := link{src: src, sel: l.sel, sh: l.sh}
		check := func(r int32) {
			if twin < 0 && r != ch && c.dgst(r) == c.dgst(ch) && c.slotHas(r, slot, from) && c.linkedAlike(r, ch) {
				twin = r
			}
		}
		if f, _ := c.children.get(k); f != 0 {
			check(f - 1)
			for _, r := range c.childMore[k] {
				check(r)
			}
		}
		if twin < 0 {
			return
		}
		if twin < ch {
			ch, twin = twin, ch
		}
		c.merge(ch, twin)
		ch = c.live(ch)
		src = c.live(src)
	}
}

// linkedAlike tells whether a and b have as many slots and share a link in
// each.
func (c *CacheChains) linkedAlike(a, b int32) bool {
	n := int(c.recs.at(a).nslot)
	if n != int(c.recs.at(b).nslot) {
		return false
	}
	for i := range n {
		shared := false
		bl := c.slotLinks(b, i)
		for _, l := range c.slotLinks(a, i) {
			if c.containsLink(bl, l) {
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
