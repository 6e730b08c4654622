package objstore

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/pkg/errors"
	"golang.org/x/sync/errgroup"
)

// pruneConcurrency bounds Prune's requests in flight.
const pruneConcurrency = 8

// PruneOptions are Prune's settings, which each store's PruneOption sets.
type PruneOptions struct {
	// DryRun reports what Prune would remove and removes nothing.
	DryRun bool
	// GracePeriod is the age under which a blob is kept even if no
	// config names it.
	GracePeriod time.Duration
}

// DryRun is the PruneOption of a dry run.
func DryRun(o *PruneOptions) error {
	o.DryRun = true
	return nil
}

// GracePeriod returns the PruneOption of a grace period, refusing a
// negative one.
func GracePeriod(d time.Duration) func(*PruneOptions) error {
	return func(o *PruneOptions) error {
		if d < 0 {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "grace period %v: negative", d)
		}
		o.GracePeriod = d
		return nil
	}
}

// PruneReport says what Prune removed (or, in a dry run, would remove):
// each store's PruneReport has its fields.
type PruneReport struct {
	Blobs []content.Info
	Bytes int64
	Kept  int
}

// Prune applies a store's prune options to the defaults and prunes s. The
// default grace period is the larger of DefaultGracePeriod and s's touch
// refresh age: an export that finds a blob younger than that reuses it
// without refreshing it, so a shorter grace period could remove, while the
// export runs, a blob its config is about to name.
func Prune[O ~func(*PruneOptions) error](ctx context.Context, s *Store, opts ...O) (PruneReport, error) {
	o := PruneOptions{GracePeriod: max(DefaultGracePeriod, s.cfg.TouchRefresh)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return PruneReport{}, errors.Wrapf(err, "pruning %s", s)
		}
	}
	return s.Prune(ctx, o)
}

// Prune removes the blobs under the blobs directory that no cache config
// under the manifests directory names (every config there is read, not
// only the store's names) and that are older than the grace period.
// Objects there whose names are not digests are left alone. A config that
// cannot be read or parsed fails Prune before anything is removed. A blob
// changed since it was listed (refreshed by an export) is kept: it is
// deleted only if its ETag is still the listed one where the backend can
// do that (Config.DeleteIfMatch), else asked for again first. A read-only
// store prunes only in a dry run.
func (s *Store) Prune(ctx context.Context, o PruneOptions) (PruneReport, error) {
	if s.cfg.ReadOnly && !o.DryRun {
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
		if _, ok := named[b.info.Digest]; ok || now.Sub(b.info.UpdatedAt) <= o.GracePeriod {
			rep.Kept++
			continue
		}
		candidates = append(candidates, b)
	}

	var mu sync.Mutex
	err = atOnce(ctx, candidates, func(ctx context.Context, b listedBlob) error {
		out, err := s.pruneBlob(ctx, b, o)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		switch out {
		case removed:
			rep.Blobs = append(rep.Blobs, b.info)
			rep.Bytes += b.info.Size
		case kept:
			rep.Kept++
		}
		return nil
	})
	slices.SortFunc(rep.Blobs, func(a, b content.Info) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	return rep, errors.Wrapf(err, "pruning %s", s)
}

// outcome is what pruneBlob did with a blob.
type outcome int

const (
	removed outcome = iota // or would be, in a dry run
	kept                   // changed since it was listed
	gone                   // not there any more: neither
)

// pruneBlob removes a blob that was old and unnamed when it was listed,
// unless it changed since. With a conditional delete, a blob gone since
// the listing counts as removed (by another prune); without, a blob is
// asked for again, and one gone counts as neither removed nor kept.
func (s *Store) pruneBlob(ctx context.Context, b listedBlob, o PruneOptions) (outcome, error) {
	if s.cfg.DeleteIfMatch {
		if o.DryRun {
			return removed, nil
		}
		err := s.b.Delete(ctx, b.obj.Key, b.obj.ETag)
		switch {
		case err == nil, errdefs.IsNotFound(err):
			return removed, nil
		case errdefs.IsFailedPrecondition(err):
			return kept, nil
		}
		return removed, errors.Wrapf(err, "removing blob %s", b.info.Digest)
	}
	obj, err := s.b.Head(ctx, b.obj.Key)
	if errdefs.IsNotFound(err) {
		return gone, nil
	}
	if err != nil {
		return gone, errors.Wrapf(err, "blob %s", b.info.Digest)
	}
	if time.Since(obj.UpdatedAt) <= o.GracePeriod {
		return kept, nil
	}
	if !o.DryRun {
		if err := s.b.Delete(ctx, b.obj.Key, ""); err != nil {
			return removed, errors.Wrapf(err, "removing blob %s", b.info.Digest)
		}
	}
	return removed, nil
}

// listedBlob is a blob as the listing gave it.
type listedBlob struct {
	obj  Object
	info content.Info
}

// listBlobs lists the objects under the blobs directory whose names are
// digests.
func (s *Store) listBlobs(ctx context.Context) ([]listedBlob, error) {
	dir := s.cfg.BlobsDir
	var blobs []listedBlob
	err := s.b.List(ctx, dir, func(obj Object) error {
		dgst, err := digest.Parse(strings.TrimPrefix(obj.Key, dir))
		if err != nil {
			return nil
		}
		blobs = append(blobs, listedBlob{obj: obj, info: content.Info{Digest: dgst, Size: obj.Size, CreatedAt: obj.CreatedAt, UpdatedAt: obj.UpdatedAt}})
		return nil
	})
	return blobs, errors.Wrapf(err, "listing blobs under %s", s.b.Where(dir))
}

// namedBlobs reads every config under the manifests directory and returns
// the blobs their layers name. Where the blobs directory is inside the
// manifests directory, the blobs are not configs.
func (s *Store) namedBlobs(ctx context.Context) (map[digest.Digest]struct{}, error) {
	dir, blobDir := s.cfg.ManifestsDir, s.cfg.BlobsDir
	blobsInside := strings.HasPrefix(blobDir, dir)
	var keys []string
	err := s.b.List(ctx, dir, func(obj Object) error {
		if !blobsInside || !strings.HasPrefix(obj.Key, blobDir) {
			keys = append(keys, obj.Key)
		}
		return nil
	})
	if err != nil {
		return nil, errors.Wrapf(err, "listing configs under %s", s.b.Where(dir))
	}
	named := map[digest.Digest]struct{}{}
	var mu sync.Mutex
	err = atOnce(ctx, keys, func(ctx context.Context, key string) error {
		dt, err := s.readAll(ctx, key, maxConfigSize)
		if errdefs.IsNotFound(err) {
			// Gone since the listing: it names nothing now.
			return nil
		}
		if err != nil {
			return errors.Wrapf(err, "reading config %s", s.b.Where(key))
		}
		var cfg configLayers
		if err := json.Unmarshal(dt, &cfg); err != nil {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "config %s: not a cache config: %v", s.b.Where(key), err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, l := range cfg.Layers {
			named[l.Blob] = struct{}{}
		}
		return nil
	})
	return named, err
}

// atOnce calls fn for each of items, pruneConcurrency at a time. The
// first error cancels the context of the others and is returned.
func atOnce[T any](ctx context.Context, items []T, fn func(ctx context.Context, item T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pruneConcurrency)
	for _, item := range items {
		g.Go(func() error { return fn(gctx, item) })
	}
	return g.Wait()
}
