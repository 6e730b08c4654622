package cachegen

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

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
