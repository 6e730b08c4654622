package remotecache

import (
	"slices"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
)

// This file holds what Trim, Diff and Repair, the operations on a stored
// cache's decoded config, share: the names they report records and
// results by, the counts of a config, and walks over a checked config's
// layers. See docs/design.md §6.1.

// RecordRef names one record of a cache config: its index in Records and
// its digest.
type RecordRef struct {
	Index  int           `json:"index"`
	Digest digest.Digest `json:"digest"`
}

func recordRef(cfg *CacheConfig, i int) RecordRef {
	return RecordRef{Index: i, Digest: cfg.Records[i].Digest}
}

// DropReason says why Trim or Repair dropped a result.
type DropReason int

const (
	// DroppedByAge: the result is older than Trim's WithMaxAge.
	DroppedByAge DropReason = iota + 1
	// DroppedBySize: the cache was over Trim's WithMaxSize, and the result
	// was the oldest left.
	DroppedBySize
	// DroppedMissing: the store does not have a blob of the result
	// (Repair).
	DroppedMissing
)

// String returns "age", "size" or "missing".
func (r DropReason) String() string {
	switch r {
	case DroppedByAge:
		return "age"
	case DroppedBySize:
		return "size"
	case DroppedMissing:
		return "missing"
	default:
		return "unknown"
	}
}

// MarshalText implements encoding.TextMarshaler: the JSON of a reason is
// its String.
func (r DropReason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// DroppedResult is one result that Trim or Repair left out.
type DroppedResult struct {
	// Record is the record of the input config that had the result.
	Record RecordRef `json:"record"`
	// Result is the result's index among the record's Results, then its
	// ChainedResults (Result - len(Results) for those).
	Result    int       `json:"result"`
	CreatedAt time.Time `json:"createdAt"`
	// Blobs are the blobs of the result's layers, base first, each once.
	Blobs  []digest.Digest `json:"blobs"`
	Reason DropReason      `json:"reason"`
	// Freed (Trim) is the bytes of the blobs that no result left used once
	// this one went: dropping a result whose blobs kept results share
	// frees nothing.
	Freed int64 `json:"freed"`
	// Missing (Repair) are the result's blobs that the store does not
	// have.
	Missing []digest.Digest `json:"missing,omitempty"`
}

// BlobSize is a blob and its size in bytes (-1 where it is not known).
type BlobSize struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// CacheCounts are the sizes of a cache config: its records, its results
// (Results and ChainedResults), its layers, its distinct layer blobs, and
// the bytes of those blobs.
type CacheCounts struct {
	Records int   `json:"records"`
	Results int   `json:"results"`
	Layers  int   `json:"layers"`
	Blobs   int   `json:"blobs"`
	Bytes   int64 `json:"bytes"`
}

// countConfig counts cfg, with sizes for the bytes (a blob without a size
// counts 0).
func countConfig(cfg *CacheConfig, sizes map[digest.Digest]int64) CacheCounts {
	c := CacheCounts{Records: len(cfg.Records), Layers: len(cfg.Layers)}
	for i := range cfg.Records {
		c.Results += len(cfg.Records[i].Results) + len(cfg.Records[i].ChainedResults)
	}
	seen := make(map[digest.Digest]struct{}, len(cfg.Layers))
	for _, l := range cfg.Layers {
		if _, ok := seen[l.Blob]; ok {
			continue
		}
		seen[l.Blob] = struct{}{}
		c.Blobs++
		if n, ok := sizes[l.Blob]; ok && n > 0 {
			c.Bytes += n
		}
	}
	return c
}

// checked checks cfg as Parse does and returns the structure, or the first
// problem, which says which config (what) it is in.
func checked(cfg *CacheConfig, what string) (structure, error) {
	if cfg == nil {
		return structure{}, errors.Wrapf(errdefs.ErrInvalidArgument, "%s: nil cache config", what)
	}
	var first error
	st, _ := checkConfig(cfg, func(err error) bool {
		first = err
		return false
	})
	if first != nil {
		return structure{}, errors.Wrap(first, what)
	}
	return st, nil
}

// layerWalk walks the layers of a checked config (no parent out of range,
// no loop).
type layerWalk struct {
	cfg  *CacheConfig
	mark []int // per layer: the walk number that last listed it
	walk int
}

func newLayerWalk(cfg *CacheConfig) *layerWalk {
	return &layerWalk{cfg: cfg, mark: make([]int, len(cfg.Layers))}
}

// resultLayers returns the layers that result j of record i needs, each
// once, base first: for one of Results, its top layer's chain of parents;
// for one of ChainedResults, the chain of each layer it lists, in turn
// (BuildKit loads only the listed layers, but the config cannot keep a
// layer without its parents).
func (w *layerWalk) resultLayers(i, j int) []int {
	rec := &w.cfg.Records[i]
	w.walk++
	var out []int
	if j < len(rec.Results) {
		return w.appendChain(out, rec.Results[j].LayerIndex)
	}
	for _, l := range rec.ChainedResults[j-len(rec.Results)].LayerIndexes {
		out = w.appendChain(out, l)
	}
	return out
}

// appendChain appends the layers of l's chain not yet listed in this
// walk, base first.
func (w *layerWalk) appendChain(out []int, l int) []int {
	start := len(out)
	for ; l >= 0 && w.mark[l] != w.walk; l = w.cfg.Layers[l].ParentIndex {
		w.mark[l] = w.walk
		out = append(out, l)
	}
	for a, b := start, len(out)-1; a < b; a, b = a+1, b-1 {
		out[a], out[b] = out[b], out[a]
	}
	return out
}

// blobsOf returns the distinct blobs of layers, in order.
func blobsOf(cfg *CacheConfig, layers []int) []digest.Digest {
	out := make([]digest.Digest, 0, len(layers))
	var seen map[digest.Digest]struct{} // for long chains only
	if len(layers) > 16 {
		seen = make(map[digest.Digest]struct{}, len(layers))
	}
	for _, l := range layers {
		b := cfg.Layers[l].Blob
		if seen != nil {
			if _, ok := seen[b]; ok {
				continue
			}
			seen[b] = struct{}{}
		} else if slices.Contains(out, b) {
			continue
		}
		out = append(out, b)
	}
	return out
}

// resultTime returns result j of record i's CreatedAt.
func resultTime(rec *CacheRecord, j int) time.Time {
	if j < len(rec.Results) {
		return rec.Results[j].CreatedAt
	}
	return rec.ChainedResults[j-len(rec.Results)].CreatedAt
}
