package remotecache

import (
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"
)

// CheckConfig returns every structural problem of cfg that makes Parse
// refuse it, in the order Parse would meet them: an invalid digest, a
// parent, link, result or chain index out of range, an empty input slot, a
// loop among layers or among records. Each is of class
// errdefs.ErrInvalidArgument and says where ("record 3: input 0 link 1:
// loop through record 5"). A config without problems gives nil.
//
// It checks what Parse checks, with the same code, but goes on past the
// first problem; Verify and the command line's inspect use it so that a
// cache they call sound is one Import accepts.
func CheckConfig(cfg *CacheConfig) []error {
	if cfg == nil {
		return []error{errors.Wrap(errdefs.ErrInvalidArgument, "nil cache config")}
	}
	var problems []error
	checkConfig(cfg, func(err error) bool {
		problems = append(problems, err)
		return true
	})
	return problems
}

// structure is what checking a config gives Parse to rebuild the graph
// with: orders in which every layer comes after its parent and every
// record after the records it links from, and totals to allocate in bulk.
type structure struct {
	// layerOrder lists the layers, each after its parent: for each layer
	// in turn, its chain of parents not yet listed, base first.
	layerOrder []int32
	// recordOrder lists the records, each after every record it links
	// from: the post-order of a depth-first walk from each record in turn,
	// inputs in order, which is the order BuildKit adds them in.
	recordOrder []int32

	nslots, nlinks, nresults int
}

// Visit states of records and layers.
const (
	unvisited uint8 = iota
	onPath
	visited
)

// checkConfig checks cfg's structure, giving each problem to report, which
// says whether to go on. It returns false if report stopped it. When
// problems were reported and checking went on, the orders leave out what
// the problems touch (links out of range, the link that closes a loop).
func checkConfig(cfg *CacheConfig, report func(error) bool) (structure, bool) {
	var s structure
	ok := checkLayers(cfg, report) &&
		s.checkRecords(cfg, report) &&
		s.orderLayers(cfg, report) &&
		s.orderRecords(cfg, report)
	return s, ok
}

// checkLayers checks each layer's blob digest and parent index.
func checkLayers(cfg *CacheConfig, report func(error) bool) bool {
	n := len(cfg.Layers)
	for i, l := range cfg.Layers {
		if err := validateDigest(l.Blob); err != nil {
			if !report(invalidf(err, "layer %d: blob %q", i, l.Blob)) {
				return false
			}
		}
		if l.ParentIndex < -1 || l.ParentIndex >= n {
			if !report(errors.Wrapf(errdefs.ErrInvalidArgument, "layer %d: parent index %d out of range", i, l.ParentIndex)) {
				return false
			}
		}
	}
	return true
}

// checkRecords checks everything about each record but loops, and counts
// the slots, links and results.
func (s *structure) checkRecords(cfg *CacheConfig, report func(error) bool) bool {
	nrec, nlayers := len(cfg.Records), len(cfg.Layers)
	for i := range cfg.Records {
		r := &cfg.Records[i]
		if err := validateDigest(r.Digest); err != nil {
			if !report(invalidf(err, "record %d: digest %q", i, r.Digest)) {
				return false
			}
		}
		for j, slot := range r.Inputs {
			if len(slot) == 0 {
				if !report(errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: input %d is empty", i, j)) {
					return false
				}
			}
			for k, in := range slot {
				if in.LinkIndex < 0 || in.LinkIndex >= nrec {
					if !report(errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: input %d link %d: record index %d out of range", i, j, k, in.LinkIndex)) {
						return false
					}
				}
			}
			s.nlinks += len(slot)
		}
		s.nslots += len(r.Inputs)
		for j, res := range r.Results {
			if res.LayerIndex < 0 || res.LayerIndex >= nlayers {
				if !report(errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: result %d: layer index %d out of range", i, j, res.LayerIndex)) {
					return false
				}
			}
		}
		for j, res := range r.ChainedResults {
			for k, l := range res.LayerIndexes {
				if l < 0 || l >= nlayers {
					if !report(errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: chain %d: layer %d: layer index %d out of range", i, j, k, l)) {
						return false
					}
				}
			}
		}
		s.nresults += len(r.Results) + len(r.ChainedResults)
	}
	return true
}

// orderLayers lists the layers parents first and reports loops among
// parents, walking up without recursion. A parent index out of range
// (reported already) is taken as no parent.
func (s *structure) orderLayers(cfg *CacheConfig, report func(error) bool) bool {
	layers := cfg.Layers
	n := len(layers)
	s.layerOrder = make([]int32, 0, n)
	state := make([]uint8, n)
	parent := func(j int) int {
		if p := layers[j].ParentIndex; p >= 0 && p < n {
			return p
		}
		return -1
	}
	var path []int
	for i := range layers {
		if state[i] != unvisited {
			continue
		}
		path = path[:0]
		j := i
		for j >= 0 && state[j] == unvisited {
			state[j] = onPath
			path = append(path, j)
			j = parent(j)
		}
		if j >= 0 && state[j] == onPath {
			if !report(errors.Wrapf(errdefs.ErrInvalidArgument, "layer %d: loop among parents at layer %d", i, j)) {
				return false
			}
			// Going on: the layers of the loop stay out of the order.
			for _, l := range path {
				state[l] = visited
			}
			continue
		}
		for k := len(path) - 1; k >= 0; k-- {
			state[path[k]] = visited
			s.layerOrder = append(s.layerOrder, int32(path[k]))
		}
	}
	return true
}

// orderRecords lists the records, each after the records it links from,
// and reports loops among records, with an explicit stack. Links out of
// range (reported already) are skipped.
func (s *structure) orderRecords(cfg *CacheConfig, report func(error) bool) bool {
	recs := cfg.Records
	s.recordOrder = make([]int32, 0, len(recs))
	state := make([]uint8, len(recs))
	type frame struct{ rec, slot, link int }
	var stack []frame
	for i := range recs {
		if state[i] != unvisited {
			continue
		}
		state[i] = onPath
		stack = append(stack[:0], frame{rec: i})
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			inputs := recs[f.rec].Inputs
			next := -1
			for next < 0 && f.slot < len(inputs) {
				if f.link == len(inputs[f.slot]) {
					f.slot++
					f.link = 0
					continue
				}
				src := inputs[f.slot][f.link].LinkIndex
				if src >= 0 && src < len(recs) {
					switch state[src] {
					case onPath:
						if !report(errors.Wrapf(errdefs.ErrInvalidArgument, "record %d: input %d link %d: loop through record %d", f.rec, f.slot, f.link, src)) {
							return false
						}
					case unvisited:
						next = src
					}
				}
				f.link++
			}
			if next >= 0 {
				state[next] = onPath
				stack = append(stack, frame{rec: next})
				continue
			}
			state[f.rec] = visited
			s.recordOrder = append(s.recordOrder, int32(f.rec))
			stack = stack[:len(stack)-1]
		}
	}
	return true
}
