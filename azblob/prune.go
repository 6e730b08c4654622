package azblob

import (
	"context"
	"time"

	"github.com/containerd/containerd/v2/core/content"

	"github.com/buildcache/remotecache/internal/objstore"
)

// DefaultGracePeriod is the least age under which Prune keeps every blob
// by default: an export writes its blobs before the config that names
// them. The default grace period is the touch refresh age where that is
// larger (see WithGracePeriod).
const DefaultGracePeriod = time.Hour

type pruneOptions = objstore.PruneOptions

// PruneOption configures Prune.
type PruneOption func(*pruneOptions) error

// WithDryRun makes Prune report what it would remove and remove nothing.
// Default: remove.
func WithDryRun() PruneOption { return objstore.DryRun }

// WithGracePeriod sets the age under which a blob is kept even if no
// config names it. Default: the larger of DefaultGracePeriod (1h) and the
// store's touch refresh age (WithTouchRefresh, 24h by default), so that a
// blob which an export in progress found and reuses without refreshing it
// is never removed under it. A shorter one opens that window (see Prune).
func WithGracePeriod(d time.Duration) PruneOption { return objstore.GracePeriod(d) }

// PruneReport says what Prune removed (or, in a dry run, would remove).
type PruneReport struct {
	// Blobs are the blobs removed, in digest order, with their size,
	// creation time and time of last change.
	Blobs []content.Info
	// Bytes is the sum of their sizes.
	Bytes int64
	// Kept is the number of blobs kept: named by a config, younger than
	// the grace period, or changed since they were listed.
	Kept int
}

// Prune removes the blobs under the blobs directory that no cache config
// under the manifests directory names (every config there is read, not
// only this store's names) and that are older than the grace period.
// Blobs there whose names are not digests are not cache blobs and are
// left alone. A config that cannot be read or parsed fails Prune before
// anything is removed. Each blob is deleted only if it is still the one
// listed (If-Match: its ETag), so that one an export has refreshed or
// written again since (see WithTouchRefresh) is kept.
//
// Prune cannot see an export in progress. Its new blobs are safe for the
// grace period; a blob it finds and reuses is refreshed if it is older
// than the touch refresh age, and the default grace period is at least
// that age, so that it is kept too. With a grace period shorter than the
// touch refresh age of the exporters, a blob that no config names any
// more, older than the grace period and younger than that age, which a
// running export reuses, can be removed under it.
func (s *Store) Prune(ctx context.Context, opts ...PruneOption) (PruneReport, error) {
	rep, err := objstore.Prune(ctx, s.core, opts...)
	return PruneReport(rep), err
}
