package cachegen

import (
	"math/rand/v2"
	"strconv"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Changed returns a copy of g in which a fraction (0 to 1) of its blobs,
// picked at random from seed, are new: other bytes of the same size and
// media type, another diffID, so another digest. It is the cache of a
// later build that changed some layers and kept the rest. The records and
// their links are g's; every result that had a replaced blob names the new
// one instead. At least one blob is replaced when fraction > 0.
func (g *Graph) Changed(seed int64, fraction float64) *Graph {
	r := rand.New(rand.NewPCG(uint64(seed), 0x6368616e676564))
	n := int(float64(len(g.BlobOrder))*fraction + 0.5)
	if fraction > 0 {
		n = max(n, 1)
	}
	n = min(n, len(g.BlobOrder))
	replaced := make(map[digest.Digest]ocispec.Descriptor, n)
	c := &Graph{
		Seed:      g.Seed,
		Options:   g.Options,
		Ops:       make([]Op, len(g.Ops)),
		Blobs:     make(map[digest.Digest]Blob, len(g.Blobs)),
		BlobOrder: make([]digest.Digest, len(g.BlobOrder)),
	}
	pick := r.Perm(len(g.BlobOrder))[:n]
	chosen := make(map[int]bool, n)
	for _, i := range pick {
		chosen[i] = true
	}
	for i, d := range g.BlobOrder {
		b := g.Blobs[d]
		if chosen[i] {
			key := r.Uint64()
			nb := Blob{Key: key, Missing: b.Missing, Descriptor: b.Descriptor}
			nb.Descriptor.Annotations = make(map[string]string, len(b.Descriptor.Annotations))
			for k, v := range b.Descriptor.Annotations {
				nb.Descriptor.Annotations[k] = v
			}
			nb.Descriptor.Annotations[AnnotationUncompressed] = digest.FromString("diff:" + strconv.FormatUint(key, 16)).String()
			nb.Descriptor.Digest = nb.computeDigest()
			replaced[d] = nb.Descriptor
			b = nb
		}
		c.Blobs[b.Descriptor.Digest] = b
		c.BlobOrder[i] = b.Descriptor.Digest
	}
	for i, op := range g.Ops {
		op.Deps = copyDeps(op.Deps)
		if len(op.Results) > 0 {
			res := make([]Result, len(op.Results))
			for j, rs := range op.Results {
				layers := make([]ocispec.Descriptor, len(rs.Layers))
				for k, l := range rs.Layers {
					if nd, ok := replaced[l.Digest]; ok {
						l = nd
					}
					layers[k] = l
				}
				res[j] = Result{CreatedAt: rs.CreatedAt, Layers: layers}
			}
			op.Results = res
		}
		c.Ops[i] = op
	}
	return c
}
