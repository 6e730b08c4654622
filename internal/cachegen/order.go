package cachegen

import (
	"math/rand/v2"

	"github.com/pkg/errors"
)

// InOrder returns the order the ops were generated in: 0, 1, …, n-1.
func (g *Graph) InOrder() []int {
	order := make([]int, len(g.Ops))
	for i := range order {
		order[i] = i
	}
	return order
}

// Shuffle returns a random valid insertion order, seeded: a topological
// order of the ops picked uniformly among the ops whose deps are all in.
func (g *Graph) Shuffle(seed int64) []int {
	r := rand.New(rand.NewPCG(uint64(seed), 0x73687566666c6521))
	n := len(g.Ops)
	waiting := make([]int, n) // deps not yet placed, counting each distinct src once
	dependents := make([][]int, n)
	for i, op := range g.Ops {
		for _, src := range distinctSrcs(op) {
			waiting[i]++
			dependents[src] = append(dependents[src], i)
		}
	}
	ready := make([]int, 0, n)
	for i := range g.Ops {
		if waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	order := make([]int, 0, n)
	for len(ready) > 0 {
		k := r.IntN(len(ready))
		i := ready[k]
		ready[k] = ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		order = append(order, i)
		for _, d := range dependents[i] {
			waiting[d]--
			if waiting[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	return order
}

// WalkOrder returns the valid insertion order a build engine makes when it
// walks the graph from its outputs, deps first, depth first: ops are
// visited in a random order and each op's deps in a random order.
func (g *Graph) WalkOrder(seed int64) []int {
	r := rand.New(rand.NewPCG(uint64(seed), 0x77616c6b6f726465))
	n := len(g.Ops)
	done := make([]bool, n)
	order := make([]int, 0, n)
	type frame struct {
		op   int
		deps []int
	}
	var stack []frame
	for _, start := range r.Perm(n) {
		if done[start] {
			continue
		}
		done[start] = true // marked when pushed; deps are always earlier ops, so no cycles
		stack = append(stack, frame{start, shuffled(r, distinctSrcs(g.Ops[start]))})
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if len(top.deps) == 0 {
				order = append(order, top.op)
				stack = stack[:len(stack)-1]
				continue
			}
			d := top.deps[0]
			top.deps = top.deps[1:]
			if !done[d] {
				done[d] = true
				stack = append(stack, frame{d, shuffled(r, distinctSrcs(g.Ops[d]))})
			}
		}
	}
	return order
}

func shuffled(r *rand.Rand, xs []int) []int {
	r.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	return xs
}

// distinctSrcs returns the ops op links from, each once, in a new slice.
func distinctSrcs(op Op) []int {
	var srcs []int
	for _, slot := range op.Deps {
	next:
		for _, d := range slot {
			for _, s := range srcs {
				if s == d.Src {
					continue next
				}
			}
			srcs = append(srcs, d.Src)
		}
	}
	return srcs
}

// CheckOrder returns an error unless order is a permutation of the ops in
// which every op comes after all its deps.
func (g *Graph) CheckOrder(order []int) error {
	if len(order) != len(g.Ops) {
		return errors.Errorf("order has %d ops, graph has %d", len(order), len(g.Ops))
	}
	pos := make([]int, len(g.Ops))
	for i := range pos {
		pos[i] = -1
	}
	for k, i := range order {
		if i < 0 || i >= len(g.Ops) {
			return errors.Errorf("order[%d] = %d: out of range", k, i)
		}
		if pos[i] >= 0 {
			return errors.Errorf("order[%d] = %d: already at %d", k, i, pos[i])
		}
		pos[i] = k
	}
	for i, op := range g.Ops {
		for s, slot := range op.Deps {
			for _, d := range slot {
				if pos[d.Src] > pos[i] {
					return errors.Errorf("op %d (at %d) slot %d: dep %d comes later (at %d)", i, pos[i], s, d.Src, pos[d.Src])
				}
			}
		}
	}
	return nil
}
