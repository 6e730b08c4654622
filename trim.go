package remotecache

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/option"
)

type trimOptions struct {
	maxSize int64 // -1: no size budget
	maxAge  time.Duration
	hasAge  bool
	now     time.Time
}

// TrimOption sets a budget, or the clock, for Trim.
type TrimOption func(*trimOptions) error

// WithMaxSize sets the size budget: the bytes of the distinct layer blobs
// the trimmed cache may name, each blob counted once however many results
// use it. Default: none; n must be at least 0 (0 drops every result).
func WithMaxSize(n int64) TrimOption {
	return option.InRange(n, 0, math.MaxInt64, "max size", "at least 0", func(o *trimOptions, n int64) { o.maxSize = n })
}

// WithMaxAge sets the age budget: a result made more than d before now
// (see WithNow) is dropped. Default: none; d must be positive.
func WithMaxAge(d time.Duration) TrimOption {
	return option.InRange(d, 1, math.MaxInt64, "max age", "positive", func(o *trimOptions, d time.Duration) { o.maxAge, o.hasAge = d, true })
}

// WithNow sets the time that WithMaxAge counts back from. Default:
// time.Now() when Trim is called; t must not be the zero time.
func WithNow(t time.Time) TrimOption {
	return func(o *trimOptions) error {
		if t.IsZero() {
			return errors.Wrap(errdefs.ErrInvalidArgument, "now: zero time")
		}
		o.now = t
		return nil
	}
}

// TrimReport says what Trim dropped and what it kept.
type TrimReport struct {
	// Before and After count the input config and the trimmed one.
	Before CacheCounts `json:"before"`
	After  CacheCounts `json:"after"`
	// Dropped lists the results that went, in the order Trim dropped
	// them: oldest first.
	Dropped []DroppedResult `json:"dropped"`
	// DroppedRecords are the records of the input config that lead to no
	// kept result, in their order there.
	DroppedRecords []RecordRef `json:"droppedRecords"`
	// DroppedBlobs are the blobs the trimmed config no longer names, in
	// the order of the input config's layers.
	DroppedBlobs []BlobSize `json:"droppedBlobs"`
}

// Trim returns a copy of cfg cut down to a budget, a total blob size
// (WithMaxSize), a maximum age of results (WithMaxAge), or both; at least
// one is required. cfg is not changed, and the copy shares no memory with
// it. sizes gives the size of every layer blob cfg names:
// Manifest.BlobSizes, which has them from the manifest's layer descriptors
// (in the config-only form, from the layers' LayerAnnotations). A blob
// without a size, or with
// a negative one, is an error of class errdefs.ErrInvalidArgument naming
// it, as is a config that Parse would refuse (CheckConfig).
//
// The rules:
//
//   - A result's size is the sizes of the blobs of its layers (a result of
//     ChainedResults: of the layers it lists and their parents); the
//     cache's size is the sizes of the distinct blobs of the results it
//     keeps: a blob counts once, as long as any kept result uses it.
//   - Results are dropped oldest first, by CreatedAt (ties by record digest,
//     then record index, then result index): first every result made more
//     than the maximum age before now, then more, still oldest first,
//     until the size is within the budget. So what goes is always the
//     oldest results, and what stays the newest; dropping a result whose
//     blobs newer results share frees nothing, and the next goes too.
//   - Then records that lead to no kept result (neither have one nor are
//     an input, directly or through other records, of a record that has
//     one) are removed; every other record stays whole: its digest, every
//     input link (its sources stay, since they lead to a kept result) and
//     every result that was not dropped. So each step whose result is kept
//     still hits the cache: its record and every record its key is
//     computed from are there, linked as before.
//   - Layers that no kept result uses are removed; layers, records and
//     their links are renumbered, keeping their order in cfg.
//
// The output is a pure function of cfg, sizes and the options, in cfg's
// order (a subsequence of it): not re-sorted, so not canonical in general.
// Parse and Import accept it; to write it, give it to an Exporter with
// ParseConfig, whose Finalize sorts it as Marshal does. A budget that
// drops every result gives a config with no layers and no records, which
// an Exporter does not write (Finalize writes nothing when there are no
// layers).
func Trim(cfg *CacheConfig, sizes map[digest.Digest]int64, opts ...TrimOption) (*CacheConfig, TrimReport, error) {
	o := trimOptions{maxSize: -1}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, TrimReport{}, errors.Wrap(err, "trim")
		}
	}
	if o.maxSize < 0 && !o.hasAge {
		return nil, TrimReport{}, errors.Wrap(errdefs.ErrInvalidArgument, "trim: no budget: give a maximum size, a maximum age or both")
	}
	if o.now.IsZero() {
		o.now = time.Now()
	}
	st, err := checked(cfg, "trim")
	if err != nil {
		return nil, TrimReport{}, err
	}
	for i, l := range cfg.Layers {
		n, ok := sizes[l.Blob]
		if !ok {
			return nil, TrimReport{}, errors.Wrapf(errdefs.ErrInvalidArgument, "trim: layer %d: blob %s has no size", i, l.Blob)
		}
		if n < 0 {
			return nil, TrimReport{}, errors.Wrapf(errdefs.ErrInvalidArgument, "trim: layer %d: blob %s has negative size %d", i, l.Blob, n)
		}
	}

	t := trimmer{cfg: cfg, sizes: sizes, opts: o}
	t.collect()
	t.drop()
	out := t.build(&st)
	rep := TrimReport{
		Before:         countConfig(cfg, sizes),
		After:          countConfig(out, sizes),
		Dropped:        t.dropped,
		DroppedRecords: []RecordRef{},
		DroppedBlobs:   []BlobSize{},
	}
	for i := range cfg.Records {
		if !t.keepRec[i] {
			rep.DroppedRecords = append(rep.DroppedRecords, recordRef(cfg, i))
		}
	}
	kept := make(map[digest.Digest]struct{}, len(out.Layers))
	for _, l := range out.Layers {
		kept[l.Blob] = struct{}{}
	}
	for _, l := range cfg.Layers {
		if _, ok := kept[l.Blob]; !ok {
			kept[l.Blob] = struct{}{} // listed once
			rep.DroppedBlobs = append(rep.DroppedBlobs, BlobSize{Digest: l.Blob, Size: sizes[l.Blob]})
		}
	}
	return out, rep, nil
}

// trimResult is one result of the input config.
type trimResult struct {
	rec, res  int
	createdAt time.Time
	layers    []int
	blobs     []digest.Digest
	dropped   bool
}

type trimmer struct {
	cfg   *CacheConfig
	sizes map[digest.Digest]int64
	opts  trimOptions

	results []trimResult // oldest first
	users   map[digest.Digest]int
	total   int64 // bytes of the blobs with users

	dropped []DroppedResult
	keepRec []bool
}

// collect lists every result, oldest first, and counts the users of each
// blob.
func (t *trimmer) collect() {
	w := newLayerWalk(t.cfg)
	t.users = map[digest.Digest]int{}
	for i := range t.cfg.Records {
		rec := &t.cfg.Records[i]
		for j := range len(rec.Results) + len(rec.ChainedResults) {
			layers := w.resultLayers(i, j)
			r := trimResult{rec: i, res: j, createdAt: resultTime(rec, j), layers: layers, blobs: blobsOf(t.cfg, layers)}
			for _, b := range r.blobs {
				if t.users[b] == 0 {
					t.total += t.sizes[b]
				}
				t.users[b]++
			}
			t.results = append(t.results, r)
		}
	}
	slices.SortFunc(t.results, func(a, b trimResult) int {
		return cmp.Or(
			a.createdAt.Compare(b.createdAt),
			strings.Compare(string(t.cfg.Records[a.rec].Digest), string(t.cfg.Records[b.rec].Digest)),
			cmp.Compare(a.rec, b.rec),
			cmp.Compare(a.res, b.res))
	})
}

// drop drops the oldest results until the rest are within the budgets.
func (t *trimmer) drop() {
	cutoff := t.opts.now.Add(-t.opts.maxAge)
	t.dropped = []DroppedResult{}
	for k := range t.results {
		r := &t.results[k]
		reason := DroppedBySize
		switch {
		case t.opts.hasAge && r.createdAt.Before(cutoff):
			reason = DroppedByAge
		case t.opts.maxSize >= 0 && t.total > t.opts.maxSize:
		default:
			return
		}
		r.dropped = true
		var freed int64
		for _, b := range r.blobs {
			t.users[b]--
			if t.users[b] == 0 {
				freed += t.sizes[b]
			}
		}
		t.total -= freed
		t.dropped = append(t.dropped, DroppedResult{
			Record:    recordRef(t.cfg, r.rec),
			Result:    r.res,
			CreatedAt: r.createdAt,
			Blobs:     slices.Clone(r.blobs),
			Reason:    reason,
			Freed:     freed,
		})
	}
}

// build writes the trimmed config: the kept results, the records that lead
// to one, the layers they use.
func (t *trimmer) build(st *structure) *CacheConfig {
	cfg := t.cfg
	keptRes := make([][]bool, len(cfg.Records)) // per record, per result
	t.keepRec = make([]bool, len(cfg.Records))
	keepLayer := make([]bool, len(cfg.Layers))
	for _, r := range t.results {
		if keptRes[r.rec] == nil {
			rec := &cfg.Records[r.rec]
			keptRes[r.rec] = make([]bool, len(rec.Results)+len(rec.ChainedResults))
		}
		if r.dropped {
			continue
		}
		keptRes[r.rec][r.res] = true
		t.keepRec[r.rec] = true
		for _, l := range r.layers {
			keepLayer[l] = true
		}
	}
	// Every record comes after its sources in recordOrder: walked
	// backwards, a record is settled before its sources are reached.
	for k := len(st.recordOrder) - 1; k >= 0; k-- {
		i := st.recordOrder[k]
		if !t.keepRec[i] {
			continue
		}
		for _, slot := range cfg.Records[i].Inputs {
			for _, in := range slot {
				t.keepRec[in.LinkIndex] = true
			}
		}
	}

	out := &CacheConfig{}
	layerAt := renumber(keepLayer)
	for i, l := range cfg.Layers {
		if !keepLayer[i] {
			continue
		}
		nl := CacheLayer{Blob: l.Blob, ParentIndex: -1}
		if l.ParentIndex >= 0 {
			nl.ParentIndex = layerAt[l.ParentIndex]
		}
		if l.Annotations != nil {
			a := *l.Annotations
			nl.Annotations = &a
		}
		out.Layers = append(out.Layers, nl)
	}
	recAt := renumber(t.keepRec)
	for i := range cfg.Records {
		if !t.keepRec[i] {
			continue
		}
		rec := &cfg.Records[i]
		nr := CacheRecord{Digest: rec.Digest}
		for j, res := range rec.Results {
			if keptRes[i][j] {
				nr.Results = append(nr.Results, CacheResult{LayerIndex: layerAt[res.LayerIndex], CreatedAt: res.CreatedAt})
			}
		}
		for j, res := range rec.ChainedResults {
			if !keptRes[i][len(rec.Results)+j] {
				continue
			}
			ls := make([]int, len(res.LayerIndexes))
			for k, l := range res.LayerIndexes {
				ls[k] = layerAt[l]
			}
			nr.ChainedResults = append(nr.ChainedResults, ChainedResult{LayerIndexes: ls, CreatedAt: res.CreatedAt})
		}
		if len(rec.Inputs) > 0 {
			nr.Inputs = make([][]CacheInput, len(rec.Inputs))
			for s, slot := range rec.Inputs {
				nr.Inputs[s] = make([]CacheInput, len(slot))
				for k, in := range slot {
					nr.Inputs[s][k] = CacheInput{Selector: in.Selector, LinkIndex: recAt[in.LinkIndex]}
				}
			}
		}
		out.Records = append(out.Records, nr)
	}
	return out
}

// renumber gives each kept index its index among the kept ones (-1 for
// the others).
func renumber(keep []bool) []int {
	at := make([]int, len(keep))
	n := 0
	for i, k := range keep {
		at[i] = -1
		if k {
			at[i] = n
			n++
		}
	}
	return at
}
