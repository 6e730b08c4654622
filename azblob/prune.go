package azblob

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"
)

// DefaultGracePeriod is the age under which Prune keeps every blob: an
// export writes its blobs before the config that names them.
const DefaultGracePeriod = time.Hour

// pruneConcurrency bounds Prune's requests in flight.
const pruneConcurrency = 8

type pruneOptions struct {
	dryRun bool
	grace  time.Duration
}

// PruneOption configures Prune.
type PruneOption func(*pruneOptions) error

// WithDryRun makes Prune report what it would remove and remove nothing.
// Default: remove.
func WithDryRun() PruneOption {
	return func(o *pruneOptions) error {
		o.dryRun = true
		return nil
	}
}

// WithGracePeriod sets the age under which a blob is kept even if no
// config names it. Default: 1h.
func WithGracePeriod(d time.Duration) PruneOption {
	return func(o *pruneOptions) error {
		if d < 0 {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "grace period %v: negative", d)
		}
		o.grace = d
		return nil
	}
}

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
// grace period. But a blob that no config names any more, older than the
// grace period and younger than the touch refresh age, which a running
// export finds and reuses without refreshing it, can be removed under it:
// give a grace period at least the exporters' touch refresh age to close
// that window.
func (s *Store) Prune(ctx context.Context, opts ...PruneOption) (PruneReport, error) {
	o := pruneOptions{grace: DefaultGracePeriod}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return PruneReport{}, errors.Wrapf(err, "pruning %s", s)
		}
	}
	if s.opts.readOnly && !o.dryRun {
		return PruneReport{}, errors.Wrapf(errdefs.ErrFailedPrecondition, "pruning %s: read-only (a dry run is allowed)", s)
	}
	// Blobs first, configs second: a config written in between names
	// only blobs already listed or newer ones.
	blobs, err := s.listBlobs(ctx)
	if err != nil {
		return PruneReport{}, errors.Wrapf(err, "pruning %s", s)
	}
	named, err := s.namedBlobs(ctx)
	if err != nil {
		return PruneReport{}, errors.Wrapf(err, "pruning %s", s)
	}
	var rep PruneReport
	var candidates []listedBlob
	now := time.Now()
	for _, b := range blobs {
		if _, ok := named[b.info.Digest]; ok || now.Sub(b.info.UpdatedAt) <= o.grace {
			rep.Kept++
			continue
		}
		candidates = append(candidates, b)
	}

	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pruneConcurrency)
	for _, b := range candidates {
		g.Go(func() error {
			if !o.dryRun {
				kept, err := s.deleteIfUnchanged(gctx, b)
				if err != nil {
					return errors.Wrapf(err, "removing blob %s", b.info.Digest)
				}
				if kept {
					mu.Lock()
					rep.Kept++
					mu.Unlock()
					return nil
				}
			}
			mu.Lock()
			rep.Blobs = append(rep.Blobs, b.info)
			rep.Bytes += b.info.Size
			mu.Unlock()
			return nil
		})
	}
	err = g.Wait()
	slices.SortFunc(rep.Blobs, func(a, b content.Info) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return rep, errors.Wrapf(err, "pruning %s", s)
}

// deleteIfUnchanged deletes a listed blob if its ETag is still the
// listed one, and says whether it kept it instead: changed since (a
// refresh sets its metadata) or gone.
func (s *Store) deleteIfUnchanged(ctx context.Context, b listedBlob) (bool, error) {
	include := blob.DeleteSnapshotsOptionTypeInclude
	opts := &blob.DeleteOptions{DeleteSnapshots: &include}
	if b.etag != "" {
		etag := b.etag
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}}
	}
	_, err := s.cc.NewBlobClient(b.name).Delete(ctx, opts)
	switch {
	case err == nil:
		return false, nil
	case bloberror.HasCode(err, bloberror.ConditionNotMet):
		return true, nil
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		// Gone since the listing, by another prune.
		return false, nil
	}
	return false, classify(err)
}

// listedBlob is a cache blob as the listing gave it.
type listedBlob struct {
	name string
	etag azcore.ETag
	info content.Info
}

// listBlobs lists the blobs under the blobs directory whose names are
// digests.
func (s *Store) listBlobs(ctx context.Context) ([]listedBlob, error) {
	dir := s.dir(s.opts.blobsPrefix)
	var blobs []listedBlob
	err := s.list(ctx, dir, true, func(item *container.BlobItem) error {
		name := *item.Name
		dgst, err := digest.Parse(strings.TrimPrefix(name, dir))
		if err != nil {
			return nil
		}
		b := listedBlob{name: name, info: content.Info{Digest: dgst}}
		if p := item.Properties; p != nil {
			if p.ETag != nil {
				b.etag = *p.ETag
			}
			if p.ContentLength != nil {
				b.info.Size = *p.ContentLength
			}
			if p.CreationTime != nil {
				b.info.CreatedAt = *p.CreationTime
			}
			b.info.UpdatedAt = updatedAt(p.LastModified, item.Metadata)
		}
		blobs = append(blobs, b)
		return nil
	})
	return blobs, errors.Wrapf(err, "listing blobs under %s", s.where(dir))
}

// namedBlobs reads every config under the manifests directory (but for
// blobs under the blobs directory, when the one holds the other) and
// returns the blobs their layers name.
func (s *Store) namedBlobs(ctx context.Context) (map[digest.Digest]struct{}, error) {
	dir := s.dir(s.opts.manifestsPrefix)
	blobDir := s.dir(s.opts.blobsPrefix)
	var names []string
	err := s.list(ctx, dir, false, func(item *container.BlobItem) error {
		if blobDir == "" || !strings.HasPrefix(*item.Name, blobDir) {
			names = append(names, *item.Name)
		}
		return nil
	})
	if err != nil {
		return nil, errors.Wrapf(err, "listing configs under %s", s.where(dir))
	}
	named := map[digest.Digest]struct{}{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pruneConcurrency)
	for _, name := range names {
		g.Go(func() error {
			dt, err := s.download(gctx, name, maxConfigSize)
			if errdefs.IsNotFound(err) {
				// Gone since the listing: it names nothing now.
				return nil
			}
			if err != nil {
				return errors.Wrapf(err, "reading config %s", s.where(name))
			}
			var cfg configLayers
			if err := json.Unmarshal(dt, &cfg); err != nil {
				return errors.Wrapf(errdefs.ErrInvalidArgument, "config %s: not a cache config: %v", s.where(name), err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, l := range cfg.Layers {
				named[l.Blob] = struct{}{}
			}
			return nil
		})
	}
	return named, g.Wait()
}

// list calls fn for every blob whose name starts with prefix, with its
// metadata if asked for.
func (s *Store) list(ctx context.Context, prefix string, metadata bool, fn func(*container.BlobItem) error) error {
	opts := &container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: metadata}}
	if prefix != "" {
		opts.Prefix = &prefix
	}
	p := s.cc.NewListBlobsFlatPager(opts)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return classify(err)
		}
		if page.Segment == nil {
			continue
		}
		for _, item := range page.Segment.BlobItems {
			if item == nil || item.Name == nil {
				continue
			}
			if err := fn(item); err != nil {
				return err
			}
		}
	}
	return nil
}
