package remotecache

import (
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// resEntry is a result of a record, in the record's list of results.
type resEntry struct {
	res  Result
	node int32 // the top of its layer chain (blobs.go), or -1 for none
	next int32 // next result of the record, or 0
}

// recResult is what a record has of the results side (resultqueue.go):
// its first result in results and its best one, each plus 1 (0: none),
// and the first source of its first input slot plus 1, for chainHint.
type recResult struct {
	res, best, src int32
}

// recResults returns r's entry in recRes, which grows to have one.
func (c *CacheChains) recResults(r int32) *recResult {
	for c.recRes.len() <= r {
		c.recRes.add(recResult{})
	}
	return c.recRes.at(r)
}

// addResults adds each result that is not there yet: one with the same
// CreatedAt and the same blobs is the same result.
func (c *CacheChains) addResults(r int32, results []Result) {
	if len(results) == 0 {
		return
	}
	var hint *resEntry
	hinted := false
	for _, res := range results {
		if c.hasSameResult(r, res) {
			continue
		}
		if !hinted {
			hint, hinted = c.chainHint(r), true
		}
		node := c.internChain(res.Remote, hint)
		if c.hasResult(r, res, node) {
			continue
		}
		c.results.add(resEntry{res: res, node: node})
		c.appendResult(r, int32(c.results.len()))
	}
}

// moveResults adds o's results to main's, as addResults would, and leaves
// o without any.
func (c *CacheChains) moveResults(main, o int32) {
	for e := c.recResults(o).res; e != 0; {
		next := c.results.at(e - 1).next
		c.results.at(e - 1).next = 0
		if x := c.results.at(e - 1); !c.hasResult(main, x.res, x.node) {
			c.appendResult(main, e)
		}
		e = next
	}
	x := c.recResults(o)
	x.res, x.best = 0, 0
}

// appendResult appends entry e, which is in no list, to r's results. The
// best result is the newest; ties go to the one added first. (Records
// have few results: the walk to the last is as short as hasResult's.)
func (c *CacheChains) appendResult(r int32, e int32) {
	x := c.recResults(r)
	if x.res == 0 {
		x.res = e
	} else {
		last := x.res
		for c.results.at(last-1).next != 0 {
			last = c.results.at(last - 1).next
		}
		c.results.at(last - 1).next = e
	}
	if x.best == 0 || c.results.at(e-1).res.CreatedAt.After(c.results.at(x.best-1).res.CreatedAt) {
		x.best = e
	}
}

// hasSameResult tells whether r has res already, by its CreatedAt and
// its very descriptors (the same array: a record added again often comes
// with the results it came with), before its chain is interned. A false
// is no answer: hasResult decides.
func (c *CacheChains) hasSameResult(r int32, res Result) bool {
	ds := remoteDescs(res.Remote)
	if len(ds) == 0 {
		return false
	}
	for e := c.recResults(r).res; e != 0; e = c.results.at(e - 1).next {
		x := c.results.at(e - 1)
		if xs := remoteDescs(x.res.Remote); len(xs) == len(ds) && &xs[0] == &ds[0] && x.res.CreatedAt.Equal(res.CreatedAt) {
			return true
		}
	}
	return false
}

func (c *CacheChains) hasResult(r int32, res Result, node int32) bool {
	for e := c.recResults(r).res; e != 0; e = c.results.at(e - 1).next {
		x := c.results.at(e - 1)
		if x.node == node && x.res.CreatedAt.Equal(res.CreatedAt) {
			return true
		}
	}
	return false
}

// best returns r's best result, or nil.
func (c *CacheChains) best(r int32) *resEntry {
	if r >= c.recRes.len() {
		return nil
	}
	if b := c.recRes.at(r).best; b != 0 {
		return c.results.at(b - 1)
	}
	return nil
}

func compareResults(a, b *Result) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return -1
		default:
			return 1
		}
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	da, db := remoteDescs(a.Remote), remoteDescs(b.Remote)
	return slices.CompareFunc(da, db, func(x, y ocispec.Descriptor) int {
		return strings.Compare(string(x.Digest), string(y.Digest))
	})
}

func remoteDescs(r *Remote) []ocispec.Descriptor {
	if r == nil {
		return nil
	}
	return r.Descriptors
}
