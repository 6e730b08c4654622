package remotecache

import (
	"time"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Target receives the records of a cache graph, dependencies first. Both
// CacheChains (and so every Exporter) and test spies implement it; Parse and
// Import write into any Target.
type Target interface {
	// Add adds the record dgst, reached from the records in deps (one
	// slice per input slot, each with at least one link), with results.
	// It returns the record's handle, to be used as a Link's Src, and
	// false when the record cannot be exported (a "random:" digest).
	// A Target may keep the results and their Remotes: the caller must
	// not change them afterwards.
	Add(dgst digest.Digest, deps [][]Link, results []Result) (Record, bool, error)
}

// Record is an opaque handle to a record added to a Target.
type Record interface {
	// Digest is the record's cache key digest.
	Digest() digest.Digest
}

// Link is one way to reach a record: from the record Src, through an
// optional Selector.
type Link struct {
	Src      Record
	Selector string
}

// Result is one result of a record: layer blobs and when they were made.
type Result struct {
	CreatedAt time.Time
	Remote    *Remote
}

// Remote is a chain of layer blobs, base layer first, and where to read
// them. The Provider may also implement content.InfoProvider; Marshal then
// drops results whose blobs it does not have.
type Remote struct {
	Descriptors []ocispec.Descriptor
	Provider    content.Provider
}
