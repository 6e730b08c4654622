// Package cachegen generates random but reproducible cache graphs that look
// like the cache of multi-stage Dockerfile builds, for property tests and
// benchmarks.
//
// A Graph is a list of operations, each one a call a build engine would make
// to Target.Add: a cache key digest, input slots of links to earlier
// operations (with optional selectors) and results (layer chains, base
// first). The graph, its descriptors and its blob bytes are a pure function
// of the seed and the Options. Nothing here depends on the remotecache types
// except Replay (replay.go), so the same graph can be fed to BuildKit too.
//
// What a generated graph contains:
//   - base images: records without inputs whose result is a chain of 1–4
//     layers, shared by many stages (a few bases are very popular);
//   - build contexts: records without inputs and without results;
//   - builds of 1–5 stages, each FROM a base image or an earlier stage, with
//     1–8 steps: RUN (one input slot), COPY from the context and COPY --from
//     an earlier stage (two input slots, the second linked through a
//     "sha256:…" content selector, sometimes with a second link);
//   - common RUN commands and stage templates, so that one digest is reached
//     from different parents (records told apart only by their links, at any
//     depth), and identical steps on the same base (one record, several
//     results);
//   - layers: every step adds one layer to its stage's chain; about 10% of
//     new layers reuse an existing blob, so one blob sits on top of different
//     parent chains (and sometimes twice in one chain);
//   - about 60% of records with a result, CreatedAt timestamps with
//     nanoseconds, some equal to each other;
//   - optionally: operations added again (same digest and links, with the
//     same, a newer or no result), operations that merge two records,
//     extra links, "random:" digests, blobs the Provider does not have.
//
// A record's results never share a CreatedAt unless they have the same
// blobs, so its best result does not depend on the insertion order.
package cachegen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/images"
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

// generator state while making one graph.
type generator struct {
	g    *Graph
	n    int
	opts Options
	rng  *rand.Rand

	now time.Time // the build clock

	bases     []int             // op index of each base image, -1 until used
	baseChain [][]digest.Digest // layers of each base image
	commons   []string          // common RUN commands
	templates [][]string        // stage templates: sequences of common commands

	byDigest    map[digest.Digest][]int           // ops by digest, with MergeFraction
	digestEdges map[digest.Digest][]digest.Digest // digest links, with MergeFraction
	multi       []digest.Digest                   // digests of several ops, with MergeFraction

	times  map[digest.Digest][]resultTime // CreatedAt of the results per digest
	blobAt map[digest.Digest]time.Time    // when each blob was made
	blobN  int                            // blobs made, for keys
	build  int
	uniq   int
}

type resultTime struct {
	t     time.Time
	blobs []digest.Digest
}

// stage is the state a stage's next step builds on.
type stage struct {
	op    int             // the op of the last step
	chain []digest.Digest // its layer chain
}

func (gen *generator) full() bool { return len(gen.g.Ops) >= gen.n }

func (gen *generator) run() {
	r := gen.rng
	// A fixed date plus a seeded offset, so timestamps differ across seeds.
	gen.now = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(30 * 24 * time.Hour))))

	nbases := min(2+gen.n/150, 300)
	gen.bases = make([]int, nbases)
	gen.baseChain = make([][]digest.Digest, nbases)
	for i := range gen.bases {
		gen.bases[i] = -1
	}
	ncommon := min(8+gen.n/100, 200)
	for i := range ncommon {
		gen.commons = append(gen.commons, commonCommand(i))
	}
	ntemplates := min(2+gen.n/400, 50)
	for range ntemplates {
		t := make([]string, 2+r.IntN(4))
		for j := range t {
			t[j] = gen.commons[r.IntN(len(gen.commons))]
		}
		gen.templates = append(gen.templates, t)
	}

	for !gen.full() {
		gen.genBuild()
	}
	gen.g.Ops = gen.g.Ops[:gen.n]
	gen.finishBlobs()
}

func commonCommand(i int) string {
	cmds := []string{
		"apt-get update", "apt-get install -y ca-certificates", "apk add --no-cache git",
		"go mod download", "npm ci", "pip install -r requirements.txt",
		"make", "cargo fetch", "useradd -m app", "mkdir -p /app",
	}
	if i < len(cmds) {
		return cmds[i]
	}
	return cmds[i%len(cmds)] + " # variant " + strconv.Itoa(i/len(cmds))
}

// tick advances the build clock: usually by up to 5s, sometimes not at all,
// so some CreatedAt values are equal.
func (gen *generator) tick() time.Time {
	if gen.rng.Float64() < 0.85 {
		gen.now = gen.now.Add(time.Duration(1 + gen.rng.Int64N(int64(5*time.Second))))
	}
	return gen.now
}

func (gen *generator) genBuild() {
	r := gen.rng
	gen.build++
	ctx := -1 // the build context op, made when first used
	context := func() int {
		if ctx < 0 {
			ctx = gen.addOp(Op{
				Digest: digest.FromString("local://context/build-" + strconv.Itoa(gen.build) + "/" + strconv.FormatUint(r.Uint64(), 16)),
				Name:   "local context of build " + strconv.Itoa(gen.build),
				Again:  -1,
			})
		}
		return ctx
	}
	nstages := 1 + r.IntN(5)
	var stages []stage
	for range nstages {
		if gen.full() {
			return
		}
		var st stage
		if len(stages) > 0 && r.Float64() < 0.3 {
			st = stages[r.IntN(len(stages))] // FROM an earlier stage
		} else {
			st = gen.base()
		}
		if gen.full() {
			return
		}
		var steps []string // commands of a template, if any
		if r.Float64() < 0.2 {
			steps = gen.templates[r.IntN(len(gen.templates))]
		}
		nsteps := len(steps)
		if nsteps == 0 {
			nsteps = 1 + min(r.IntN(8), r.IntN(8)) // 1–8, mostly short
		}
		for i := range nsteps {
			if gen.full() {
				return
			}
			var cmd string
			if steps != nil {
				cmd = steps[i]
			}
			st = gen.step(st, cmd, stages, context)
			gen.maybeAgain()
		}
		stages = append(stages, st)
	}
}

// base returns the stage state of a base image, adding its op when it is
// first used. Popular bases are picked more often.
func (gen *generator) base() stage {
	r := gen.rng
	u := r.Float64()
	i := int(float64(len(gen.bases)) * u * u)
	if gen.bases[i] < 0 {
		name := "docker.io/library/base-" + strconv.Itoa(i) + ":" + strconv.Itoa(1+r.IntN(20))
		op := Op{
			Digest: digest.FromString("docker-image://" + name + "@" + digest.FromString(name+strconv.FormatUint(r.Uint64(), 16)).String()),
			Name:   "FROM " + name,
			Again:  -1,
		}
		nl := 1 + r.IntN(4)
		chain := make([]digest.Digest, nl)
		// Base images were built long ago, mostly pushed as Docker layers.
		made := gen.now.Add(-time.Duration(1+r.Int64N(365*24)) * time.Hour).Add(time.Duration(r.Int64N(int64(time.Hour))))
		docker := r.Float64() < 0.5
		for j := range chain {
			chain[j] = gen.newBlob(made, docker)
			made = made.Add(time.Duration(1 + r.Int64N(int64(time.Minute))))
		}
		gen.baseChain[i] = chain
		if r.Float64() < 0.9 {
			op.Results = []Result{gen.result(op.Digest, made, chain)}
		}
		gen.bases[i] = gen.addOp(op)
	}
	return stage{op: gen.bases[i], chain: gen.baseChain[i]}
}

func (gen *generator) unique(prefix string) string {
	gen.uniq++
	return prefix + " #" + strconv.Itoa(gen.uniq) + "/" + strconv.FormatUint(gen.rng.Uint64(), 36)
}

// step adds one RUN or COPY on top of st.
func (gen *generator) step(st stage, cmd string, stages []stage, context func() int) stage {
	r := gen.rng
	op := Op{Again: -1}
	k := r.Float64()
	switch {
	case cmd != "":
		op.Name = "RUN " + cmd
		op.Digest = digest.FromString("exec:" + cmd)
		op.Deps = [][]Dep{{{Src: st.op}}}
	case k < 0.55 || (k >= 0.8 && len(stages) == 0):
		common := r.Float64() < 0.2
		if common {
			cmd = gen.commons[r.IntN(len(gen.commons))]
		} else {
			cmd = gen.unique("run")
		}
		op.Name = "RUN " + cmd
		op.Digest = digest.FromString("exec:" + cmd)
		op.Deps = [][]Dep{{{Src: st.op}}}
		if !common && r.Float64() < 0.05 && len(stages) > 0 {
			// A record reached from two sources in one slot (a digest of
			// its own: records merge only with MergeFraction).
			other := stages[r.IntN(len(stages))].op
			if other != st.op {
				op.Deps[0] = append(op.Deps[0], Dep{Src: other})
			}
		}
	case k < 0.8:
		files := gen.unique("copy")
		op.Name = "COPY " + files + " /app/"
		op.Digest = digest.FromString("file:" + files)
		slot := []Dep{{Src: context(), Selector: selector(files)}}
		if r.Float64() < 0.3 {
			slot = append(slot, Dep{Src: context()})
		}
		op.Deps = [][]Dep{{{Src: st.op}}, slot}
	default:
		from := stages[r.IntN(len(stages))]
		files := gen.unique("copy-from")
		op.Name = "COPY --from=stage " + files + " /out/"
		op.Digest = digest.FromString("file:" + files)
		slot := []Dep{{Src: from.op, Selector: selector(files)}}
		if r.Float64() < 0.4 {
			extra := stages[r.IntN(len(stages))].op
			if extra != from.op {
				slot = append(slot, Dep{Src: extra})
			} else {
				slot = append(slot, Dep{Src: context(), Selector: selector(files + "/ctx")})
			}
		}
		op.Deps = [][]Dep{{{Src: st.op}}, slot}
	}
	if gen.opts.RandomFraction > 0 && r.Float64() < gen.opts.RandomFraction {
		op.Digest = digest.Digest("random:" + digest.FromString(gen.unique("random")).Encoded())
	}

	// Every step adds a layer to the stage's chain; the record keeps it as a
	// result or not.
	t := gen.tick()
	chain := make([]digest.Digest, len(st.chain)+1)
	copy(chain, st.chain)
	chain[len(st.chain)] = gen.layer(t)
	if r.Float64() < gen.opts.ResultFraction {
		op.Results = []Result{gen.result(op.Digest, t, chain)}
	}
	return stage{op: gen.addOp(op), chain: chain}
}

// selector is a content selector as BuildKit makes them for COPY sources.
func selector(files string) string {
	return digest.FromString("checksum:" + files).String()
}

// maybeAgain repeats a random earlier op, as a build engine that reaches a
// record twice does: same digest and links, with the same result, a newer
// one or none, and sometimes an extra link. Or it merges two records.
func (gen *generator) maybeAgain() {
	r := gen.rng
	if gen.full() {
		return
	}
	if gen.opts.MergeFraction > 0 && r.Float64() < gen.opts.MergeFraction {
		gen.merge()
		return
	}
	if gen.opts.AgainFraction <= 0 || r.Float64() >= gen.opts.AgainFraction {
		return
	}
	i := r.IntN(len(gen.g.Ops))
	prev := gen.g.Ops[i]
	op := Op{Digest: prev.Digest, Name: baseName(prev.Name) + " (again)", Again: i, Deps: copyDeps(prev.Deps)}
	if len(op.Deps) > 0 && r.Float64() < gen.opts.ExtraLinkFraction {
		s := r.IntN(len(op.Deps))
		src := r.IntN(len(gen.g.Ops))
		if !hasDep(op.Deps[s], src, "") {
			op.Deps[s] = append(op.Deps[s], Dep{Src: src})
		}
	}
	op.Results = gen.againResults(prev)
	gen.addOp(op)
}

// againResults returns the results of an op that reaches prev's record
// again: the same result, a newer one or none.
func (gen *generator) againResults(prev Op) []Result {
	switch k := gen.rng.Float64(); {
	case k < 0.5 && len(prev.Results) > 0:
		return []Result{prev.Results[0]}
	case k < 0.8:
		// A newer result: the same parent chain with a new top layer.
		var parent []digest.Digest
		if len(prev.Results) > 0 {
			ls := prev.Results[0].Layers
			for _, d := range ls[:len(ls)-1] {
				parent = append(parent, d.Digest)
			}
		}
		t := gen.tick()
		return []Result{gen.result(prev.Digest, t, append(parent, gen.layer(t)))}
	}
	return nil
}

// merge adds an op that is linked like two earlier ops with the same digest
// and slot count, so that their records become one. Only records that are
// not one above the other are merged: the digest must not be reachable from
// itself.
func (gen *generator) merge() {
	r := gen.rng
	if len(gen.multi) == 0 {
		return
	}
	ops := gen.byDigest[gen.multi[r.IntN(len(gen.multi))]]
	i := ops[r.IntN(len(ops))]
	x := gen.g.Ops[i]
	if len(x.Deps) == 0 || isRandom(x.Digest) {
		return
	}
	var others []int
	for _, j := range gen.byDigest[x.Digest] {
		if j != i && len(gen.g.Ops[j].Deps) == len(x.Deps) {
			others = append(others, j)
		}
	}
	if len(others) == 0 || gen.onCycle(x.Digest) {
		return
	}
	y := gen.g.Ops[others[r.IntN(len(others))]]
	deps := copyDeps(x.Deps)
	for s, slot := range y.Deps {
		for _, d := range slot {
			if !hasDep(deps[s], d.Src, d.Selector) {
				deps[s] = append(deps[s], d)
			}
		}
	}
	gen.addOp(Op{
		Digest:  x.Digest,
		Name:    baseName(x.Name) + " (merged)",
		Again:   i,
		Deps:    deps,
		Results: gen.againResults(x),
	})
}

// onCycle tells whether the digest d can be reached from itself through
// links: then two records of d may be one above the other.
func (gen *generator) onCycle(d digest.Digest) bool {
	seen := map[digest.Digest]bool{}
	stack := append([]digest.Digest(nil), gen.digestEdges[d]...)
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if x == d {
			return true
		}
		if !seen[x] {
			seen[x] = true
			stack = append(stack, gen.digestEdges[x]...)
		}
	}
	return false
}

func copyDeps(deps [][]Dep) [][]Dep {
	if deps == nil {
		return nil
	}
	out := make([][]Dep, len(deps))
	for s, slot := range deps {
		out[s] = append([]Dep(nil), slot...)
	}
	return out
}

func baseName(name string) string {
	for _, suf := range []string{" (again)", " (merged)"} {
		if strings.HasSuffix(name, suf) {
			return name[:len(name)-len(suf)]
		}
	}
	return name
}

func isRandom(d digest.Digest) bool { return strings.HasPrefix(string(d), "random:") }

func hasDep(slot []Dep, src int, sel string) bool {
	for _, d := range slot {
		if d.Src == src && d.Selector == sel {
			return true
		}
	}
	return false
}

// layer returns the blob of a new layer made at t: a new blob or, now and
// then, an existing one.
func (gen *generator) layer(t time.Time) digest.Digest {
	r := gen.rng
	if n := len(gen.g.BlobOrder); n > 0 && r.Float64() < gen.opts.ReuseBlobFraction {
		return gen.g.BlobOrder[r.IntN(n)]
	}
	return gen.newBlob(t, r.Float64() < 0.15)
}

// result makes a result of the record dgst, created at t (moved by a few
// nanoseconds if another result of dgst with other blobs has that time).
func (gen *generator) result(dgst digest.Digest, t time.Time, chain []digest.Digest) Result {
	for {
		clash := false
		for _, x := range gen.times[dgst] {
			if x.t.Equal(t) && !sameDigests(x.blobs, chain) {
				clash = true
				break
			}
		}
		if !clash {
			break
		}
		t = t.Add(1)
	}
	gen.times[dgst] = append(gen.times[dgst], resultTime{t, chain})
	res := Result{CreatedAt: t, Layers: make([]ocispec.Descriptor, len(chain))}
	for i, d := range chain {
		// Descriptors are filled in by finishBlobs, once digests are known;
		// until then Digest holds the blob's provisional name.
		res.Layers[i] = ocispec.Descriptor{Digest: d}
	}
	return res
}

func sameDigests(a, b []digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// newBlob makes a blob, or reuses one once there are MaxBlobs. Its real
// digest is computed in finishBlobs; until then it is named by a
// provisional digest.
func (gen *generator) newBlob(t time.Time, docker bool) digest.Digest {
	r := gen.rng
	if n := len(gen.g.BlobOrder); gen.opts.MaxBlobs > 0 && n >= gen.opts.MaxBlobs {
		return gen.g.BlobOrder[r.IntN(n)]
	}
	gen.blobN++
	size := gen.opts.BlobSize
	if size <= 0 {
		size = 16 + r.Int64N(49)
	}
	mt := ocispec.MediaTypeImageLayerGzip
	if docker {
		mt = images.MediaTypeDockerSchema2LayerGzip
	}
	key := r.Uint64()
	name := digest.Digest("provisional:" + strconv.Itoa(gen.blobN))
	b := Blob{
		Key:     key,
		Missing: gen.opts.MissingFraction > 0 && r.Float64() < gen.opts.MissingFraction,
		Descriptor: ocispec.Descriptor{
			MediaType: mt,
			Size:      size,
			Annotations: map[string]string{
				AnnotationUncompressed: digest.FromString("diff:" + strconv.FormatUint(key, 16)).String(),
				AnnotationCreatedAt:    t.UTC().Format(time.RFC3339Nano),
			},
		},
	}
	gen.g.Blobs[name] = b
	gen.g.BlobOrder = append(gen.g.BlobOrder, name)
	return name
}

// finishBlobs computes the digests of the blobs and fills in the
// descriptors of every result.
func (gen *generator) finishBlobs() {
	g := gen.g
	real := make(map[digest.Digest]digest.Digest, len(g.Blobs))
	blobs := make(map[digest.Digest]Blob, len(g.Blobs))
	for i, name := range g.BlobOrder {
		b := g.Blobs[name]
		b.Descriptor.Digest = b.computeDigest()
		if _, dup := blobs[b.Descriptor.Digest]; dup {
			// Two keys with the same bytes: only possible with a broken
			// generator, as keys are 64 random bits and sizes >= 1.
			panic(fmt.Sprintf("cachegen: blob %d has the digest of another blob", i))
		}
		real[name] = b.Descriptor.Digest
		blobs[b.Descriptor.Digest] = b
		g.BlobOrder[i] = b.Descriptor.Digest
	}
	g.Blobs = blobs
	// Fill in the descriptors. Repeated ops share their Layers with the op
	// they repeat: those are filled in already.
	for i := range g.Ops {
		for j := range g.Ops[i].Results {
			ls := g.Ops[i].Results[j].Layers
			for k := range ls {
				if d, ok := real[ls[k].Digest]; ok {
					ls[k] = g.Blobs[d].Descriptor
				}
			}
		}
	}
	// Drop the blobs no op uses (possible when ops were cut at n).
	used := make(map[digest.Digest]bool, len(blobs))
	for j := range g.Ops {
		for _, res := range g.Ops[j].Results {
			for _, l := range res.Layers {
				used[l.Digest] = true
			}
		}
	}
	kept := g.BlobOrder[:0]
	for _, d := range g.BlobOrder {
		if used[d] {
			kept = append(kept, d)
		} else {
			delete(g.Blobs, d)
		}
	}
	g.BlobOrder = kept
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

// addOp appends op and returns its index.
func (gen *generator) addOp(op Op) int {
	i := len(gen.g.Ops)
	gen.g.Ops = append(gen.g.Ops, op)
	if gen.opts.MergeFraction > 0 {
		gen.byDigest[op.Digest] = append(gen.byDigest[op.Digest], i)
		if len(gen.byDigest[op.Digest]) == 2 {
			gen.multi = append(gen.multi, op.Digest)
		}
		for _, src := range distinctSrcs(op) {
			sd := gen.g.Ops[src].Digest
			gen.digestEdges[sd] = append(gen.digestEdges[sd], op.Digest)
		}
	}
	return i
}
