package remotecache

import (
	digest "github.com/opencontainers/go-digest"
)

// Add interns what Marshal needs of every result's layer chain, so that
// Marshal hashes no string: each distinct blob digest gets an id (blobs),
// and each distinct chain a node of a trie (nodes), a blob on top of its
// parent chain. Two results have the same blobs when they have the same
// node; Marshal's layers are the nodes that written results reach.

// blob is a distinct blob digest.
type blob struct {
	dgst   digest.Digest
	k0     uint64 // hexKey of dgst
	node   int32  // its first node + 1 (internNode)
	hexKey bool
}

// node is a layer chain: blob on top of the chain parent (-1: none).
type node struct {
	parent int32
	blob   int32
	depth  int32 // index of blob in the chain
}

// internChain returns the node of r's chain of blobs, or -1 if it has
// none. hint, if not nil, is a result whose chain is likely to start
// r's: as many of r's first blobs as are the hint's are not looked up.
func (c *CacheChains) internChain(r *Remote, hint *resEntry) int32 {
	if r == nil {
		return -1
	}
	ds := r.Descriptors
	n, k := int32(-1), 0
	if hint != nil {
		hs := hint.res.Remote.Descriptors
		if len(ds) > 0 && &ds[0] == &hs[0] {
			k = min(len(ds), len(hs)) // one array (as Parse makes them)
		}
		for k < len(ds) && k < len(hs) && ds[k].Digest == hs[k].Digest {
			k++
		}
		// The hint's chain cut to its first k blobs.
		n = hint.node
		for range len(hs) - k {
			n = c.nodes.at(n).parent
		}
	}
	for i := k; i < len(ds); i++ {
		n = c.internNode(n, c.internBlob(ds[i].Digest))
	}
	return n
}

// chainHint returns a result whose chain probably starts the chains of
// r's results: a build step adds layers on top of its first input's
// result, or of that one's first input's, up to a few steps back (as Add
// saw the first inputs). Nil if there is none.
func (c *CacheChains) chainHint(r int32) *resEntry {
	for range 4 {
		if r >= c.recRes.len() {
			return nil
		}
		src := c.recRes.at(r).src
		if src == 0 {
			return nil
		}
		r = src - 1
		if e := c.best(r); e != nil && e.node >= 0 {
			return e
		}
	}
	return nil
}

func (c *CacheChains) internBlob(d digest.Digest) int32 {
	return c.blobIDs.intern(c.hash32(string(d)), string(d),
		func(id int32) string { return string(c.blobs.at(id).dgst) },
		func() int32 {
			k0, hex := hexKey(d)
			return c.blobs.add(blob{dgst: d, k0: k0, hexKey: hex})
		})
}

// hashIndex finds the ids of interned strings by a 32-bit hash of them:
// a table the garbage collector does not scan (u32table.go), and that
// grows without hashing strings again. A string whose hash an earlier one
// has (a few in 100,000) is found by the string itself, in more.
type hashIndex struct {
	byHash u32Table
	more   map[string]int32
}

// intern returns the id of s, whose hash is h, after making it with mk if
// s is not there; str gives the string of an id.
func (x *hashIndex) intern(h uint32, s string, str func(int32) string, mk func() int32) int32 {
	id, ok, taken := x.find(h, s, str)
	if !ok {
		id = mk()
		x.add(h, s, id, taken)
	}
	return id
}

// find returns the id of s, whose hash is h; str gives the string of an
// id. When s is not there, taken tells whether another string has h.
func (x *hashIndex) find(h uint32, s string, str func(int32) string) (id int32, ok, taken bool) {
	id, taken = x.byHash.get(h)
	if !taken {
		return 0, false, false
	}
	if str(id) == s {
		return id, true, true
	}
	id, ok = x.more[s]
	return id, ok, true
}

// add indexes the new string s, of hash h, as id; taken is what find
// said.
func (x *hashIndex) add(h uint32, s string, id int32, taken bool) {
	if !taken {
		x.byHash.set(h, id)
		return
	}
	if x.more == nil {
		x.more = map[string]int32{}
	}
	x.more[s] = id
}

// internNode returns the node of blob b on top of chain parent. A blob's
// first node is found through the blob; only the others, of blobs on top
// of several chains, are in nodeIDs.
func (c *CacheChains) internNode(parent, b int32) int32 {
	bl := c.blobs.at(b)
	if bl.node == 0 {
		id := c.newNode(parent, b)
		c.blobs.at(b).node = id + 1
		return id
	}
	if first := bl.node - 1; c.nodes.at(first).parent == parent {
		return first
	}
	k := uint64(uint32(parent+1))<<32 | uint64(uint32(b))
	id, ok := c.nodeIDs[k]
	if !ok {
		id = c.newNode(parent, b)
		c.nodeIDs[k] = id
	}
	return id
}

func (c *CacheChains) newNode(parent, b int32) int32 {
	depth := int32(0)
	if parent >= 0 {
		depth = c.nodes.at(parent).depth + 1
	}
	return c.nodes.add(node{parent: parent, blob: b, depth: depth})
}

// hexKey returns the first 16 hex digits of a sha256 digest as an
// integer, which orders such digests as their strings do up to there; ok
// is false for a digest that does not start with "sha256:" and 16 lower
// case hex digits.
func hexKey(d digest.Digest) (k uint64, ok bool) {
	s := string(d)
	if len(s) < len("sha256:")+16 || s[:7] != "sha256:" {
		return 0, false
	}
	// By table, without a branch per digit (which digits are letters is
	// as random as the digest).
	var bad uint8
	for _, c := range []byte(s[7 : 7+16]) {
		v := hexDigit[c]
		bad |= v
		k = k<<4 | uint64(v&0xf)
	}
	return k, bad&0x80 == 0
}

// hexDigit is the value of each lower case hex digit, 0x80 for any other
// byte.
var hexDigit = func() (t [256]uint8) {
	for i := range t {
		t[i] = 0x80
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = uint8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = uint8(c - 'a' + 10)
	}
	return t
}()
