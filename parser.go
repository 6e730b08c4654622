package remotecache

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// Parse rebuilds the graph of a config on two goroutines where the work
// allows: the layers' order and chains as soon as the layers are decoded,
// beside the decoding and checks of the records (and of the layers'
// digests and parents); then, beside the Adds, which must run one after
// the other, the records' digests, inputs and results copied out ahead of
// them in the order they are added. Neither changes what Parse does: the
// same problem is reported first, the same records are added in the same
// order with the same links and results.

// parseConfig is Parse of a decoded config.
func parseConfig(cfg *CacheConfig, provider DescriptorProvider, t Target) error {
	if t == nil {
		return errors.Wrap(errdefs.ErrInvalidArgument, "parse: nil target")
	}
	p := &parser{cfg: cfg, provider: provider, t: t}
	return p.run(p.startLayers(cfg.Layers))
}

// parseJSON is Parse of configJSON decoded into cfg: the layers' side
// starts when the layers are decoded (and again, from the start, if the
// config has another "layers" key).
func parseJSON(configJSON []byte, cfg *CacheConfig, provider DescriptorProvider, t Target) error {
	p := &parser{provider: provider, t: t}
	var ls *layerSide
	err := decodeConfigWatched(configJSON, cfg, func(decoded bool) {
		if ls != nil {
			ls.wg.Wait()
			ls = nil
		}
		if decoded {
			ls = p.startLayers(cfg.Layers)
		}
	})
	if err != nil {
		if ls != nil {
			ls.wg.Wait()
		}
		return invalidf(err, "malformed JSON")
	}
	if ls == nil {
		ls = p.startLayers(cfg.Layers)
	}
	p.cfg = cfg
	return p.run(ls)
}

type parser struct {
	cfg      *CacheConfig
	st       structure // what the checks found: orders and totals
	provider DescriptorProvider
	t        Target

	// chains[i] is the chain of layer i, base first, or nil when one of
	// its blobs is not in provider. Chains share backing arrays: each is
	// handed out with its capacity cut to its length.
	chains [][]ocispec.Descriptor
}

// layerSide is the layers' part of the checks and the chains, on a
// goroutine of its own: what orderLayers found, and the error of
// buildChains. It writes p.st.layerOrder and p.chains, no other field of
// p. (checkLayers, which they do not need, runs beside them, in run.)
type layerSide struct {
	wg               sync.WaitGroup
	orderL, chainErr error
}

// stopAt returns a report function for the checks that keeps the first
// problem in dst and stops.
func stopAt(dst *error) func(error) bool {
	return func(err error) bool {
		*dst = err
		return false
	}
}

// startLayers starts the layers' side on layers, which must not change
// until it is waited for.
func (p *parser) startLayers(layers []CacheLayer) *layerSide {
	ls := &layerSide{}
	view := &CacheConfig{Layers: layers}
	ls.wg.Go(func() {
		if p.st.orderLayers(view, stopAt(&ls.orderL)) {
			ls.chainErr = p.buildChains(layers)
		}
	})
	return ls
}

// run checks the records, and then the layers' digests and parents,
// beside the layers' side ls, then adds the records. The problem reported
// is the one checkConfig would meet first (its checks in its order), else
// the first error of the chains.
func (p *parser) run(ls *layerSide) error {
	var checkL, checkR, orderR error
	if p.st.checkRecords(p.cfg, stopAt(&checkR)) {
		p.st.orderRecords(p.cfg, stopAt(&orderR))
	}
	checkLayers(p.cfg, stopAt(&checkL))
	ls.wg.Wait()
	for _, err := range []error{checkL, checkR, ls.orderL, orderR, ls.chainErr} {
		if err != nil {
			return err
		}
	}
	return p.addRecords()
}

// buildChains finds each layer's chain of descriptors, parents first.
func (p *parser) buildChains(layers []CacheLayer) error {
	p.chains = make([][]ocispec.Descriptor, len(layers))
	// extended[i]: a child of layer i has taken the array slot after
	// chains[i], so other children must copy.
	extended := make([]bool, len(layers))
	for _, l := range p.st.layerOrder {
		chain, err := p.extendChain(layers, int(l), extended)
		if err != nil {
			return err
		}
		p.chains[l] = chain
	}
	return nil
}

// extendChain returns the chain of layer l: its parent's with l's
// descriptor on top, sharing the parent's array when it can. A parent out
// of range (which checkLayers reports, beside this) gives no chain.
func (p *parser) extendChain(layers []CacheLayer, l int, extended []bool) ([]ocispec.Descriptor, error) {
	layer := &layers[l]
	var base []ocispec.Descriptor
	if pi := layer.ParentIndex; pi >= 0 {
		if pi >= len(layers) {
			return nil, nil
		}
		base = p.chains[pi]
		if base == nil {
			return nil, nil
		}
	}
	d, ok, err := p.descriptor(layer.Blob)
	if err != nil {
		return nil, errors.Wrapf(err, "layer %d", l)
	}
	if !ok {
		return nil, nil
	}
	if pi := layer.ParentIndex; pi >= 0 && !extended[pi] && len(base) < cap(base) {
		extended[pi] = true
		return append(base, d), nil
	}
	chain := make([]ocispec.Descriptor, len(base)+1, 2*len(base)+2)
	copy(chain, base)
	chain[len(base)] = d
	return chain, nil
}

// descriptor returns the descriptor of blob from the provider.
func (p *parser) descriptor(blob digest.Digest) (ocispec.Descriptor, bool, error) {
	pair, ok := p.provider[blob]
	if !ok {
		return ocispec.Descriptor{}, false, nil
	}
	d := pair.Descriptor
	if d.Digest != blob {
		return ocispec.Descriptor{}, false, errors.Wrapf(errdefs.ErrInvalidArgument, "blob %s: provider gives a descriptor of digest %q", blob, d.Digest)
	}
	return d, true, nil
}

// addRecords adds every record after the records it links from, in the
// order the checks found (a depth-first walk from each record in turn, as
// BuildKit does). The results of each record are made ahead, in that
// order, on another goroutine (see prepared).
func (p *parser) addRecords() error {
	order := p.st.recordOrder
	added := make([]Record, len(p.cfg.Records)) // nil for records t did not export
	b := builder{
		slots: make([][]Link, p.st.nslots),
		links: make([]Link, p.st.nlinks),
	}
	pr := newPrepared(len(order), p.st.nslots, p.st.nlinks, p.st.nresults)
	var wg sync.WaitGroup
	wg.Go(func() { p.prepare(pr) })
	defer wg.Wait()
	defer pr.quit.Store(true)
	ready := 0 // records of order whose results are made
	for pos, i := range order {
		for pos >= ready {
			n, ok := <-pr.ready
			if !ok {
				return errors.Wrap(errdefs.ErrInternal, "parse: results of the records stopped early")
			}
			ready = n
		}
		r, err := p.addRecord(pr, pos, int(i), added, &b)
		if err != nil {
			return err
		}
		added[i] = r
	}
	return nil
}

// builder hands out slices of bulk allocations, each capped at its length
// so that a Target that appends to one cannot reach into the next.
type builder struct {
	slots [][]Link
	links []Link
}

// addRecord adds record idx, at pos in the order, whose sources are all
// in added: its digest, inputs and results as pr has them.
func (p *parser) addRecord(pr *prepared, pos, idx int, added []Record, b *builder) (Record, error) {
	var deps [][]Link
	s0, s1 := pr.slotAt[pos], pr.slotAt[pos+1]
	if n := int(s1 - s0); n > 0 {
		deps, b.slots = b.slots[:n:n], b.slots[n:]
		start := pr.linkAt[pos]
		for j := range n {
			end := pr.slotEnd[int(s0)+j]
			slot := pr.ins[start:end]
			start = end
			links := b.links[:0:len(slot)]
			for _, in := range slot {
				if src := added[in.src]; src != nil {
					links = append(links, Link{Src: src, Selector: in.sel})
				}
			}
			b.links = b.links[len(slot):]
			if len(links) == 0 {
				// Every source of this slot was left out: so is this record.
				return nil, nil
			}
			deps[j] = links
		}
	}
	results, err := pr.results(pos)
	if err != nil {
		return nil, err
	}

	dgst := pr.digest[pos]
	r, ok, err := p.t.Add(dgst, deps, results)
	if err != nil {
		return nil, errors.Wrapf(err, "record %d (%s)", idx, dgst)
	}
	if !ok {
		return nil, nil
	}
	if r == nil {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "record %d (%s): target returned no record", idx, dgst)
	}
	return r, nil
}

// prepared is what the Adds need of the records, in the order they are
// added, made ahead of them by prepare: a goroutine that sends on ready
// how many records are done, batch by batch, until all are or quit is
// set. The Adds then read it in order, where the config's records, in
// that order, are all over memory.
type prepared struct {
	digest []digest.Digest
	// The inputs of the record at pos are the slots slotEnd[slotAt[pos]:
	// slotAt[pos+1]], each the end of its links in ins; the first starts
	// at linkAt[pos].
	slotAt, linkAt []int32
	slotEnd        []int32
	ins            []preparedInput

	all     []Result
	remotes []Remote
	// The results of the record at pos are all[at[pos]:][:n[pos]], with
	// room up to at[pos+1]; n[pos] is -1 when they could not be made,
	// for the error in errs.
	at, n []int32
	mu    sync.Mutex
	errs  map[int32]error
	ready chan int
	quit  atomic.Bool
}

// preparedInput is a link of an input slot: the index of its source and
// its selector.
type preparedInput struct {
	src int32
	sel string
}

// preparedBatch is the number of records prepare makes results for
// between two sends.
const preparedBatch = 512

func newPrepared(nrec, nslots, nlinks, nresults int) *prepared {
	return &prepared{
		digest:  make([]digest.Digest, nrec),
		slotAt:  make([]int32, nrec+1),
		linkAt:  make([]int32, nrec),
		slotEnd: make([]int32, nslots),
		ins:     make([]preparedInput, nlinks),
		all:     make([]Result, nresults),
		remotes: make([]Remote, nresults),
		at:      make([]int32, nrec+1),
		n:       make([]int32, nrec),
		ready:   make(chan int, nrec/preparedBatch+2),
	}
}

// results returns the results of the record at pos, nil for none, or
// the error that making them gave.
func (pr *prepared) results(pos int) ([]Result, error) {
	switch n := pr.n[pos]; n {
	case 0:
		return nil, nil
	case -1:
		pr.mu.Lock()
		defer pr.mu.Unlock()
		return nil, pr.errs[int32(pos)]
	default:
		at := pr.at[pos]
		return pr.all[at : at+n : pr.at[pos+1]], nil
	}
}

// prepare copies the digest and inputs of every record, in the order they
// are added, and makes its results: each from the top layer's chain or
// from the list of layers, a result with a blob the provider does not
// have left out.
func (p *parser) prepare(pr *prepared) {
	defer close(pr.ready)
	order := p.st.recordOrder
	off, sOff, lOff := int32(0), int32(0), int32(0)
	for pos, i := range order {
		pr.at[pos] = off
		pr.slotAt[pos] = sOff
		if pos%preparedBatch == 0 && pos > 0 {
			if pr.quit.Load() {
				return
			}
			pr.ready <- pos
		}
		rec := &p.cfg.Records[i]
		pr.digest[pos] = rec.Digest
		pr.linkAt[pos] = lOff
		for _, slot := range rec.Inputs {
			for _, in := range slot {
				pr.ins[lOff] = preparedInput{src: int32(in.LinkIndex), sel: in.Selector}
				lOff++
			}
			pr.slotEnd[sOff] = lOff
			sOff++
		}
		k := off
		for _, res := range rec.Results {
			if chain := p.chains[res.LayerIndex]; chain != nil {
				pr.all[k] = p.result(res.CreatedAt, chain[:len(chain):len(chain)], &pr.remotes[k])
				k++
			}
		}
		failed := false
		for j, res := range rec.ChainedResults {
			chain, err := p.chainOf(res)
			if err != nil {
				pr.mu.Lock()
				if pr.errs == nil {
					pr.errs = map[int32]error{}
				}
				pr.errs[int32(pos)] = errors.Wrapf(err, "record %d: chain %d", i, j)
				pr.mu.Unlock()
				failed = true
				break
			}
			if chain != nil {
				pr.all[k] = p.result(res.CreatedAt, chain, &pr.remotes[k])
				k++
			}
		}
		pr.n[pos] = k - off
		if failed {
			pr.n[pos] = -1
		}
		off += int32(len(rec.Results) + len(rec.ChainedResults))
	}
	pr.at[len(order)] = off
	pr.slotAt[len(order)] = sOff
	pr.ready <- len(order)
}

// chainOf returns the descriptors of a chained result's layers, or nil
// when the provider lacks one.
func (p *parser) chainOf(res ChainedResult) ([]ocispec.Descriptor, error) {
	chain := make([]ocispec.Descriptor, 0, len(res.LayerIndexes))
	for _, l := range res.LayerIndexes {
		d, ok, err := p.descriptor(p.cfg.Layers[l].Blob)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil
		}
		chain = append(chain, d)
	}
	return chain, nil
}

func (p *parser) result(createdAt time.Time, chain []ocispec.Descriptor, rm *Remote) Result {
	rm.Descriptors = chain
	rm.Provider = p.provider
	return Result{CreatedAt: createdAt, Remote: rm}
}
