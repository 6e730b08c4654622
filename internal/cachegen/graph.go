package cachegen

import (
	"math"
	"math/rand/v2"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotation keys BuildKit puts on layer descriptors.
const (
	AnnotationUncompressed = "containerd.io/uncompressed"
	AnnotationCreatedAt    = "buildkit/createdat"
)

// Graph is a generated cache graph: operations in a valid insertion order
// (every dependency before its dependents) and the blobs they name. A graph
// is read-only once made: descriptors of one blob share their annotations
// map, and repeated ops share their results' Layers with the op they repeat.
type Graph struct {
	Seed    int64
	Options Options
	// Ops are the Add calls, in a valid order: each Dep.Src < its op's
	// index. Other valid orders come from Shuffle and WalkOrder.
	Ops []Op
	// Blobs are the layer blobs by digest.
	Blobs map[digest.Digest]Blob
	// BlobOrder lists the blob digests in creation order.
	BlobOrder []digest.Digest
}

// Op is one call to Target.Add.
type Op struct {
	Digest digest.Digest
	// Deps are the input slots; each slot has at least one link.
	Deps [][]Dep
	// Results are the record's results, each a layer chain.
	Results []Result
	// Name says what the op stands for ("RUN …", "COPY …", "FROM …"),
	// for humans; it plays no part in the cache.
	Name string
	// Again is the index of an earlier op that this op repeats (same digest
	// and links, maybe more links or other results) or merges with another
	// op of that digest, or -1.
	Again int
}

// Dep is one link of an input slot.
type Dep struct {
	// Src is the index of an earlier op in Graph.Ops.
	Src      int
	Selector string
}

// Result is a result of an op: a layer chain, base first.
type Result struct {
	CreatedAt time.Time
	Layers    []ocispec.Descriptor
}

// Blob is a generated layer blob. Its bytes are made on demand from Key
// (see Bytes and ReadAt); the descriptor's digest is their real sha256.
type Blob struct {
	Descriptor ocispec.Descriptor
	// Key seeds the bytes.
	Key uint64
	// Missing blobs are reported as not found by the Provider.
	Missing bool
}

// Options tune the generator. The zero value of a field means its default.
type Options struct {
	// BlobSize, when > 0, is the size of every blob. Default: sizes vary
	// between 16 and 64 bytes.
	BlobSize int64
	// MaxBlobs, when > 0, caps the number of distinct blobs; once reached,
	// new layers reuse existing blobs.
	MaxBlobs int
	// ResultFraction is the share of steps (RUN/COPY records) with a
	// result. Default 0.62, which makes about 60% of all records.
	ResultFraction float64
	// ReuseBlobFraction is the share of new layers that reuse an existing
	// blob. Default 0.1; a negative value means 0.
	ReuseBlobFraction float64
	// AgainFraction is the share of ops that repeat an earlier op (same
	// digest and links) with the same, a newer or no result. Default 0.
	AgainFraction float64
	// MergeFraction is the share of ops that make two records with the
	// same digest one: an op linked, in every slot, from the sources of
	// both. Only records of which neither is above the other are merged.
	// Costs O(ops) per merge. Default 0.
	MergeFraction float64
	// ExtraLinkFraction is the share of repeated ops (AgainFraction) that
	// also get an extra link from any earlier op in one slot: it may be a
	// descendant of the record (a cycle Add must drop), or make records
	// merge, one above the other. With such graphs the docs/design.md §4 rules give
	// results that depend on the insertion order: for bug hunting, not for
	// determinism tests. Default 0.
	ExtraLinkFraction float64
	// RandomFraction is the share of steps whose digest starts with
	// "random:" (not exportable). Default 0.
	RandomFraction float64
	// MissingFraction is the share of blobs the Provider does not have.
	// Default 0.
	MissingFraction float64
}

func (o Options) withDefaults() Options {
	if o.ResultFraction == 0 {
		o.ResultFraction = 0.62
	}
	if o.ReuseBlobFraction == 0 {
		o.ReuseBlobFraction = 0.1
	} else if o.ReuseBlobFraction < 0 {
		o.ReuseBlobFraction = 0
	}
	return o
}

// New generates a graph of the given number of ops with default options.
func New(seed int64, records int) *Graph {
	return NewWithOptions(seed, records, Options{})
}

// NewWithOptions generates a graph of exactly records ops (at least 1).
func NewWithOptions(seed int64, records int, opts Options) *Graph {
	records = max(records, 1)
	g := &Graph{
		Seed:    seed,
		Options: opts,
		Ops:     make([]Op, 0, records),
		Blobs:   make(map[digest.Digest]Blob),
	}
	gen := &generator{
		g:           g,
		n:           records,
		opts:        opts.withDefaults(),
		rng:         rand.New(rand.NewPCG(uint64(seed), 0x6361636865676e31)),
		times:       make(map[digest.Digest][]resultTime),
		byDigest:    make(map[digest.Digest][]int),
		digestEdges: make(map[digest.Digest][]digest.Digest),
		blobAt:      make(map[digest.Digest]time.Time),
	}
	gen.run()
	return g
}

// Records returns the number of ops (records added, counting repeats).
func (g *Graph) Records() int { return len(g.Ops) }

// Stats summarises a graph, for logs.
type Stats struct {
	Ops, Roots, WithResults, MultiSlot, MultiLink, Selectors, Again, Merges, Random int
	Blobs, Layers                                                                   int
	MeanChain                                                                       float64
	DistinctDigests                                                                 int
}

// Stats counts what the graph contains.
func (g *Graph) Stats() Stats {
	var s Stats
	s.Ops = len(g.Ops)
	s.Blobs = len(g.Blobs)
	digests := map[digest.Digest]bool{}
	for _, op := range g.Ops {
		digests[op.Digest] = true
		if len(op.Deps) == 0 {
			s.Roots++
		}
		if len(op.Results) > 0 {
			s.WithResults++
		}
		if len(op.Deps) > 1 {
			s.MultiSlot++
		}
		if op.Again >= 0 {
			if strings.HasSuffix(op.Name, " (merged)") {
				s.Merges++
			} else {
				s.Again++
			}
		}
		if isRandom(op.Digest) {
			s.Random++
		}
		for _, slot := range op.Deps {
			if len(slot) > 1 {
				s.MultiLink++
			}
			for _, d := range slot {
				if d.Selector != "" {
					s.Selectors++
				}
			}
		}
		for _, res := range op.Results {
			s.Layers += len(res.Layers)
		}
	}
	s.DistinctDigests = len(digests)
	if s.WithResults > 0 {
		s.MeanChain = math.Round(float64(s.Layers)/float64(s.WithResults)*100) / 100
	}
	return s
}
