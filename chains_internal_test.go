package remotecache

import (
	"math/rand/v2"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Result deduplication is not visible through Marshal, which writes only
// the best result, so it is checked on the record itself.
func TestAddDoesNotDuplicateResults(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res := func(blobs ...string) Result {
		var ds []ocispec.Descriptor
		for _, b := range blobs {
			ds = append(ds, ocispec.Descriptor{Digest: digest.FromString(b)})
		}
		return Result{CreatedAt: at, Remote: &Remote{Descriptors: ds}}
	}
	c := NewCacheChains()
	r, _, err := c.Add(digest.FromString("r"), nil, []Result{res("a", "b"), res("a", "b")})
	if err != nil {
		t.Fatal(err)
	}
	// The same instant in another zone is the same CreatedAt.
	again := res("a", "b")
	again.CreatedAt = at.In(time.FixedZone("x", 3600))
	if _, _, err := c.Add(digest.FromString("r"), nil, []Result{again}); err != nil {
		t.Fatal(err)
	}
	if n := r.(*record).cc.countResults(r.(*record).id); n != 1 {
		t.Fatalf("%d results after adding one result three times, want 1", n)
	}
	// Same time, same number of blobs, other blobs: a different result
	// (BuildKit's addResult takes it for a duplicate).
	if _, _, err := c.Add(digest.FromString("r"), nil, []Result{res("a", "c")}); err != nil {
		t.Fatal(err)
	}
	if n := r.(*record).cc.countResults(r.(*record).id); n != 2 {
		t.Fatalf("%d results, want 2", n)
	}
}

func (c *CacheChains) countResults(r int32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settleResults()
	n := 0
	for e := c.recResults(r).res; e != 0; e = c.results.at(e - 1).next {
		n++
	}
	return n
}

// Strings whose hashes collide are told apart: blobs are interned by hash,
// and by the string itself when the hash is taken; links compare their
// selectors' hashes, then the selectors.
func TestHashIndexCollisions(t *testing.T) {
	c := NewCacheChains()
	a, b := digest.FromString("a"), digest.FromString("b")
	ia := c.internBlob(a)
	// Make b's hash find a's entry, as a collision would.
	c.blobIDs.byHash.set(uint32(c.hash(string(b)))&c.mask, ia)
	ib := c.internBlob(b)
	if ib == ia || c.internBlob(b) != ib || c.internBlob(a) != ia || c.blobs.at(ib).dgst != b {
		t.Fatalf("ids %d, %d: a colliding digest is not told apart", ia, ib)
	}
	// Links through selectors whose hashes collide are told apart.
	x, y := c.newLink(0, "x"), c.newLink(0, "y")
	y.sh = x.sh
	if c.sameLink(x, y) || !c.sameLink(x, c.newLink(0, "x")) || c.selector(y) != "y" {
		t.Fatal("a colliding selector is not told apart")
	}
}

func TestHexKey(t *testing.T) {
	for _, tc := range []struct {
		d  digest.Digest
		k  uint64
		ok bool
	}{
		{"sha256:0123456789abcdef0000", 0x0123456789abcdef, true},
		{"sha256:ffffffffffffffff", 0xffffffffffffffff, true},
		{"sha256:0123456789abcdeF", 0, false},
		{"sha256:0123456789abcde", 0, false},
		{"sha512:0123456789abcdef", 0, false},
		{"sha256:g123456789abcdef", 0, false},
	} {
		k, ok := hexKey(tc.d)
		if ok != tc.ok || (ok && k != tc.k) {
			t.Errorf("hexKey(%s) = %x, %v; want %x, %v", tc.d, k, ok, tc.k, tc.ok)
		}
	}
}

// The children and blob indexes' table (u32table.go) against a map,
// through growth, overwrites and deletes; with few keys, or keys that are
// alike in their low bits, the table is dense and its runs long.
func TestU32Table(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, keyBits := range []uint{4, 12, 32} {
		var tab u32Table
		want := map[uint32]int32{}
		for op := range 200_000 {
			k := uint32(rng.Uint64()) >> (32 - keyBits)
			if keyBits < 32 {
				k *= 0x10001
			}
			switch rng.IntN(3) {
			case 0, 1:
				v := int32(rng.IntN(1 << 30))
				tab.set(k, v)
				want[k] = v
			default:
				tab.del(k)
				delete(want, k)
			}
			if op%1000 == 0 || op == 199_999 {
				if tab.n != len(want) {
					t.Fatalf("key bits %d, op %d: %d entries, want %d", keyBits, op, tab.n, len(want))
				}
				for k, v := range want {
					if got, ok := tab.get(k); !ok || got != v {
						t.Fatalf("key bits %d, op %d: get(%#x) = %d, %v; want %d", keyBits, op, k, got, ok, v)
					}
				}
			}
			if _, ok := want[k]; !ok {
				if _, found := tab.get(k); found {
					t.Fatalf("key bits %d, op %d: deleted key %#x found", keyBits, op, k)
				}
			}
		}
	}
}
