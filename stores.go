package remotecache

import (
	"context"

	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
)

// The interfaces below are implemented by stores that Finalize writes
// into, or reads from, to do better than the general case: a registry.

// ConcurrencyAdvisor is implemented by stores that are best written to or
// read from with more blobs in flight than DefaultConcurrency: a registry,
// where each blob costs round trips that only concurrency hides. Unless
// WithConcurrency says how many, Finalize copies as many layers at once as
// the largest of DefaultConcurrency and the advice of its ingester and of
// the providers of the blobs it copies.
type ConcurrencyAdvisor interface {
	AdvisedConcurrency() int
}

// ManifestTagger is implemented by ingesters for which writing a manifest
// is what points a tag at it (a registry repository with a tag). Finalize
// then always writes the manifest, even when Info finds it already there,
// and leaves it to the ingester to answer errdefs.ErrAlreadyExists when
// the tag already points at it.
type ManifestTagger interface {
	TagsManifests() bool
}

// SkipDetailer is implemented by the errors of class
// errdefs.ErrAlreadyExists with which an ingester's Writer says how the
// store came by a blob without it being sent: a registry.Remote that
// mounted it from another repository of its registry says "mounted from
// HOST/REPO". Finalize reports it as the skipped step's Event.Detail.
type SkipDetailer interface {
	SkipDetail() string
}

// ExportPreparer is implemented by ingesters that learn, with a few
// requests before an export writes anything, what they have already: a
// registry repository resolves its tag and reads the manifest there, so
// that the blobs it names need no existence check and a manifest that is
// already under the tag is not written again. Finalize calls
// PrepareExport once, beside its first Marshal, and writes nothing before
// it returns. An error fails Finalize; an ingester that cannot learn
// anything (a tag not there yet, a registry that refuses) returns nil and
// checks each blob as it would have.
type ExportPreparer interface {
	PrepareExport(ctx context.Context) error
}

// KnownInfoProvider is implemented by providers that know, without
// asking, some of the blobs they have: a registry.Remote knows the blobs
// named by a manifest just read from it. Marshal takes such a blob as
// available, with the Info KnownInfo gives (its labels included), and
// sends no Info; if it is gone after all, the read that copies it says not
// found and Finalize drops the results that need it, as for any blob gone
// when read. What must see what a store has now (Verify, Repair, the
// tool's inspect) asks Info.
type KnownInfoProvider interface {
	KnownInfo(dgst digest.Digest) (content.Info, bool)
}

// BlobMounter is implemented by ingesters that can take a blob from
// elsewhere in their store instead of its bytes: a registry mounts it from
// another repository. Only the Writer of such an ingester is given the
// distribution source labels of each blob's provider, which may cost a
// request per blob (an object store's Info is a HEAD) that no other
// ingester has any use for.
type BlobMounter interface {
	MountsBlobs() bool
}
