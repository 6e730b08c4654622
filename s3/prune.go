package s3

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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
	// Blobs are the blobs removed, by digest, with their size and last
	// modification time.
	Blobs []content.Info
	// Bytes is the sum of their sizes.
	Bytes int64
	// Kept is the number of blobs kept: named by a config, or younger
	// than the grace period.
	Kept int
}

// Prune removes the blobs under the blobs prefix that no cache config
// under the manifests prefix names (every config there is read, not only
// this store's names) and that are older than the grace period. Objects
// under the blobs prefix whose names are not digests are not blobs and are
// left alone. A config that cannot be read or parsed fails Prune before
// anything is removed. Each blob to remove is asked for again first, so
// that one an export has just refreshed (see WithTouchRefresh) is kept.
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
	var candidates []content.Info
	now := time.Now()
	for _, b := range blobs {
		if _, ok := named[b.Digest]; ok || now.Sub(b.UpdatedAt) <= o.grace {
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
			key := s.BlobKey(b.Digest)
			head, err := s.client.HeadObject(gctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
			if err != nil {
				if errdefs.IsNotFound(classify(err)) {
					return nil
				}
				return errors.Wrapf(classify(err), "blob %s", b.Digest)
			}
			if time.Since(updatedAt(head.LastModified, head.Metadata)) <= o.grace {
				mu.Lock()
				rep.Kept++
				mu.Unlock()
				return nil
			}
			if !o.dryRun {
				if _, err := s.client.DeleteObject(gctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
					return errors.Wrapf(classify(err), "removing blob %s", b.Digest)
				}
			}
			mu.Lock()
			rep.Blobs = append(rep.Blobs, b)
			rep.Bytes += b.Size
			mu.Unlock()
			return nil
		})
	}
	err = g.Wait()
	slices.SortFunc(rep.Blobs, func(a, b content.Info) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return rep, errors.Wrapf(err, "pruning %s", s)
}

// listBlobs lists the objects under the blobs prefix whose names are
// digests.
func (s *Store) listBlobs(ctx context.Context) ([]content.Info, error) {
	prefix := s.opts.prefix + s.opts.blobsPrefix
	var blobs []content.Info
	err := s.list(ctx, prefix, func(obj s3Object) error {
		dgst, err := digest.Parse(strings.TrimPrefix(obj.key, prefix))
		if err != nil {
			return nil
		}
		blobs = append(blobs, content.Info{Digest: dgst, Size: obj.size, CreatedAt: obj.modified, UpdatedAt: obj.modified})
		return nil
	})
	return blobs, errors.Wrapf(err, "listing blobs under s3://%s/%s", s.bucket, prefix)
}

// namedBlobs reads every config under the manifests prefix (but for keys
// under the blobs prefix, when the one contains the other) and returns the
// blobs their layers name.
func (s *Store) namedBlobs(ctx context.Context) (map[digest.Digest]struct{}, error) {
	prefix := s.opts.prefix + s.opts.manifestsPrefix
	blobPrefix := s.opts.prefix + s.opts.blobsPrefix
	var keys []string
	err := s.list(ctx, prefix, func(obj s3Object) error {
		if !strings.HasPrefix(obj.key, blobPrefix) {
			keys = append(keys, obj.key)
		}
		return nil
	})
	if err != nil {
		return nil, errors.Wrapf(err, "listing configs under s3://%s/%s", s.bucket, prefix)
	}
	named := map[digest.Digest]struct{}{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pruneConcurrency)
	for _, key := range keys {
		g.Go(func() error {
			dt, err := s.getObject(gctx, key, maxConfigSize)
			if errdefs.IsNotFound(err) {
				// Gone since the listing: it names nothing now.
				return nil
			}
			if err != nil {
				return errors.Wrapf(err, "reading config s3://%s/%s", s.bucket, key)
			}
			var cfg configLayers
			if err := json.Unmarshal(dt, &cfg); err != nil {
				return errors.Wrapf(errdefs.ErrInvalidArgument, "config s3://%s/%s: not a cache config: %v", s.bucket, key, err)
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

type s3Object struct {
	key      string
	size     int64
	modified time.Time
}

// list calls fn for every object under prefix.
func (s *Store) list(ctx context.Context, prefix string, fn func(s3Object) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return classify(err)
		}
		for _, obj := range page.Contents {
			o := s3Object{key: aws.ToString(obj.Key), size: aws.ToInt64(obj.Size)}
			if obj.LastModified != nil {
				o.modified = *obj.LastModified
			}
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	return nil
}
