package remotecache

import (
	"time"

	digest "github.com/opencontainers/go-digest"
)

// CacheConfigMediaTypeV0 is the media type of the cache config blob.
const CacheConfigMediaTypeV0 = "application/vnd.buildkit.cacheconfig.v0"

// CacheConfig is the cache config blob (format v0): every layer chain and
// every record of the cache graph. Field names and JSON tags are BuildKit's,
// so the bytes match.
type CacheConfig struct {
	Layers  []CacheLayer  `json:"layers,omitempty"`
	Records []CacheRecord `json:"records,omitempty"`
}

// CacheLayer is one blob on top of the layer chain that ParentIndex names
// (-1 for a base layer).
type CacheLayer struct {
	Blob        digest.Digest     `json:"blob,omitempty"`
	ParentIndex int               `json:"parent,omitempty"`
	Annotations *LayerAnnotations `json:"annotations,omitempty"`
}

// LayerAnnotations describe a layer blob for stores that keep no descriptor
// per blob. The registry and local exporters do not write them.
type LayerAnnotations struct {
	MediaType string        `json:"mediaType,omitempty"`
	DiffID    digest.Digest `json:"diffID,omitempty"`
	Size      int64         `json:"size,omitempty"`
	CreatedAt time.Time     `json:"createdAt"`
}

// CacheRecord is one cache key: its digest, the records it is reached from
// (Inputs, one slice per input slot) and its results.
type CacheRecord struct {
	// Results point at the top layer of a chain, loaded with its parents.
	Results []CacheResult `json:"layers,omitempty"`
	// ChainedResults list layers loaded in order, without parents.
	ChainedResults []ChainedResult `json:"chains,omitempty"`
	Digest         digest.Digest   `json:"digest,omitempty"`
	Inputs         [][]CacheInput  `json:"inputs,omitempty"`
}

// CacheResult is a result given as the index of its top layer.
type CacheResult struct {
	LayerIndex int       `json:"layer"`
	CreatedAt  time.Time `json:"createdAt"`
}

// ChainedResult is a result given as a list of layer indexes, base first.
type ChainedResult struct {
	LayerIndexes []int     `json:"layers"`
	CreatedAt    time.Time `json:"createdAt"`
}

// CacheInput is one link into a record's input slot: the index of the
// source record and an optional selector.
type CacheInput struct {
	Selector  string `json:"selector,omitempty"`
	LinkIndex int    `json:"link"`
}
