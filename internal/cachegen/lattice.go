package cachegen

import (
	"math/rand/v2"
	"strconv"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// LatticeOptions tune Lattice. The zero value is the deep lattice fed once,
// with chains of at most 8 layers.
type LatticeOptions struct {
	// Chain is the length every result's layer chain grows to: a record's
	// result is one new blob on top of its parent's chain, and a parent
	// chain of Chain layers is cut to its first Chain-1 first. Default 8.
	Chain int
	// Twice feeds every op a second time, after all of them, as an export
	// of several refs (or platforms) walks a shared graph once per ref:
	// same digest, same links (to the records of the second pass), same
	// result.
	Twice bool
	// NewLink, with Twice, gives each op of the second pass that has
	// inputs one link more in slot 0, from one of the 8 records before it.
	NewLink bool
}

// latticeWindow is how far back a lattice record's links reach.
const latticeWindow = 8

// Lattice generates the deep lattice of records: each record but the first
// two (roots) has 2 input slots of 2 links each, drawn from the 8 records
// before it, the first link of slot 0 always from the record just before
// (its parent), so the graph is about as deep as it has records. Half the
// links have a selector. Every record has one result, one new blob on top
// of its parent's chain (see LatticeOptions.Chain). records is the number
// of distinct records; with Twice the graph has twice as many ops.
func Lattice(seed int64, records int, opts LatticeOptions) *Graph {
	records = max(records, 1)
	if opts.Chain <= 0 {
		opts.Chain = 8
	}
	nops := records
	if opts.Twice {
		nops *= 2
	}
	g := &Graph{
		Seed:  seed,
		Ops:   make([]Op, 0, nops),
		Blobs: make(map[digest.Digest]Blob, records),
	}
	gen := &generator{
		g:      g,
		n:      nops,
		opts:   Options{}.withDefaults(),
		rng:    rand.New(rand.NewPCG(uint64(seed), 0x6c617474696365)),
		times:  make(map[digest.Digest][]resultTime, records),
		blobAt: make(map[digest.Digest]time.Time),
	}
	r := gen.rng
	gen.now = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(30 * 24 * time.Hour))))
	prefix := "lattice/" + strconv.FormatInt(seed, 10) + "/"
	chains := make([][]digest.Digest, records)
	for i := range records {
		op := Op{
			Digest: digest.FromString(prefix + strconv.Itoa(i)),
			Name:   "lattice record " + strconv.Itoa(i),
			Again:  -1,
		}
		var parent []digest.Digest
		if i >= 2 {
			lo := max(0, i-latticeWindow)
			slot0 := []Dep{{Src: i - 1, Selector: latticeSelector(r, prefix, i, 0, 0)}}
			slot0 = append(slot0, Dep{Src: latticeOther(r, lo, i, slot0), Selector: latticeSelector(r, prefix, i, 0, 1)})
			a := lo + r.IntN(i-lo)
			slot1 := []Dep{{Src: a, Selector: latticeSelector(r, prefix, i, 1, 0)}}
			slot1 = append(slot1, Dep{Src: latticeOther(r, lo, i, slot1), Selector: latticeSelector(r, prefix, i, 1, 1)})
			op.Deps = [][]Dep{slot0, slot1}
			parent = chains[i-1]
			if len(parent) >= opts.Chain {
				parent = parent[:opts.Chain-1]
			}
		}
		t := gen.tick()
		chain := make([]digest.Digest, len(parent)+1)
		copy(chain, parent)
		chain[len(parent)] = gen.newBlob(t, false)
		chains[i] = chain
		op.Results = []Result{gen.result(op.Digest, t, chain)}
		g.Ops = append(g.Ops, op)
	}
	if opts.Twice {
		for i := range records {
			prev := g.Ops[i]
			op := Op{Digest: prev.Digest, Name: prev.Name + " (again)", Again: i, Results: prev.Results}
			if len(prev.Deps) > 0 {
				op.Deps = copyDeps(prev.Deps)
				for _, slot := range op.Deps {
					for k := range slot {
						slot[k].Src += records
					}
				}
				if opts.NewLink {
					lo := max(0, i-latticeWindow)
					src := records + lo + r.IntN(i-lo)
					sel := latticeSelector(r, prefix+"new/", i, 0, 0)
					if hasDep(op.Deps[0], src, sel) {
						sel = digest.FromString("checksum:" + prefix + "new/" + strconv.Itoa(i)).String()
					}
					op.Deps[0] = append(op.Deps[0], Dep{Src: src, Selector: sel})
				}
			}
			g.Ops = append(g.Ops, op)
		}
	}
	gen.finishBlobs()
	return g
}

// latticeOther returns a source in [lo, hi) that slot does not link from
// yet, or the first one's source again when there is none.
func latticeOther(r *rand.Rand, lo, hi int, slot []Dep) int {
	if hi-lo <= len(slot) {
		return slot[0].Src
	}
	for {
		s := lo + r.IntN(hi-lo)
		if !hasDep(slot, s, slot[0].Selector) && s != slot[0].Src {
			return s
		}
	}
}

// latticeSelector returns a content selector for link k of slot s of
// record i, or none, one time in two.
func latticeSelector(r *rand.Rand, prefix string, i, s, k int) string {
	if r.IntN(2) == 0 {
		return ""
	}
	return digest.FromString("checksum:" + prefix + strconv.Itoa(i) + "/" + strconv.Itoa(s) + "/" + strconv.Itoa(k)).String()
}
