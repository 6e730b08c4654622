package cachegen

import (
	digest "github.com/opencontainers/go-digest"
)

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
