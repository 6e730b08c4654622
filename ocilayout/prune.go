package ocilayout

import (
	"context"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// testHookPruneLocked, if set, is called by Prune while it holds the
// exclusive lock (tests hold Prune there).
var testHookPruneLocked func()

// PruneOption configures Prune. An option that fails makes Prune fail
// before it does anything.
type PruneOption func(*pruneOptions) error

type pruneOptions struct{ dryRun bool }

// WithDryRun makes Prune report what it would remove and remove nothing.
// By default Prune removes it.
func WithDryRun() PruneOption {
	return func(o *pruneOptions) error {
		o.dryRun = true
		return nil
	}
}

// PruneReport says what Prune removed (or, in a dry run, would remove).
type PruneReport struct {
	// Blobs removed, with their sizes.
	Blobs []content.Info
	// Bytes is the sum of their sizes.
	Bytes int64
	// Ingests is the number of unfinished writes removed.
	Ingests int
}

// Prune removes every blob that no entry of index.json reaches (through
// manifests, indexes, configs and layers) and the leftovers of unfinished
// writes: the temp files of writers killed or crashed
// (blobs/<alg>/.tmp-*), containerd's ingest/ entries (BuildKit's type=local
// exporter writes through one) and index.json temp files. It first waits, bounded by ctx, until no other Store is open on
// the directory in any process, so no export in progress through another
// Store can lose a blob it has written but not yet tagged; Stores that
// open the layout while Prune runs wait for it. Exports through s itself
// are not waited for. Whether Prune runs, fails or gives up waiting, s
// holds off the Prunes of other Stores until it is closed.
//
// Prune waits only for exports through this package's Stores. BuildKit's
// type=local cache exporter, and other OCI layout tools, take no lock
// that Prune waits for: a Prune while one of them writes into the
// directory can remove the blobs it has written and not yet named in
// index.json. Prune a directory that only this package writes into, or
// when nothing else does.
//
// One Prune runs on a directory at a time. A Prune in progress through
// another Store waits for s to close, so waiting for it would deadlock
// both: Prune fails at once with errdefs.ErrUnavailable instead.
func (s *Store) Prune(ctx context.Context, opts ...PruneOption) (rep PruneReport, err error) {
	defer func() { err = classify(err) }() // runs last, after share
	var o pruneOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return PruneReport{}, errors.Wrap(optionError(err), "prune")
		}
	}
	if s.readOnly {
		return PruneReport{}, s.errReadOnly("prune")
	}
	share, err := s.exclusive(ctx)
	defer func() {
		if serr := share(); serr != nil && err == nil {
			err = errors.Wrap(serr, "prune")
		}
	}()
	if err != nil {
		return PruneReport{}, errors.Wrap(err, "prune: waiting for exports in progress")
	}
	if testHookPruneLocked != nil {
		testHookPruneLocked()
	}

	var idx *ocispec.Index
	err = withFileLock(ctx, filepath.Join(s.dir, indexLockFile), func() error {
		var err error
		idx, err = s.readIndex()
		return err
	})
	if err != nil {
		return rep, err
	}
	keep := map[digest.Digest]bool{}
	err = walk(ctx, s.blobs, func(d ocispec.Descriptor) error {
		keep[d.Digest] = true
		if _, err := s.blobs.Info(ctx, d.Digest); errdefs.IsNotFound(err) {
			return images.ErrSkipDesc // a tag to a missing blob keeps nothing more
		}
		return nil
	}, idx.Manifests...)
	if err != nil {
		return rep, errors.Wrap(err, "prune: reading")
	}
	var garbage []content.Info
	if err := s.blobs.Walk(ctx, func(info content.Info) error {
		if !keep[info.Digest] {
			garbage = append(garbage, info)
		}
		return nil
	}); err != nil {
		return rep, errors.Wrap(err, "prune: listing blobs")
	}
	unfinished, err := s.unfinished()
	if err != nil {
		return rep, errors.Wrap(err, "prune: listing unfinished writes")
	}
	for _, info := range garbage {
		rep.Blobs = append(rep.Blobs, info)
		rep.Bytes += info.Size
		if o.dryRun {
			continue
		}
		if err := s.Delete(ctx, info.Digest); err != nil && !errdefs.IsNotFound(err) {
			return rep, errors.Wrapf(err, "prune: removing %s", info.Digest)
		}
	}
	for _, p := range unfinished {
		rep.Ingests++
		if o.dryRun {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return rep, errors.Wrapf(err, "prune: removing unfinished write %s", p)
		}
	}
	if !o.dryRun {
		// ingest/ is empty now; a layout this package made never has one.
		os.Remove(filepath.Join(s.dir, ingestDir))
	}
	// Leftover temp files of index.json writes from killed processes.
	if !o.dryRun {
		if tmps, _ := filepath.Glob(filepath.Join(s.dir, ".index.json.tmp-*")); len(tmps) > 0 {
			for _, t := range tmps {
				os.Remove(t)
			}
		}
	}
	return rep, nil
}

// ingestDir is where containerd's local content store keeps its writes in
// progress: layouts written by BuildKit's type=local exporter, and by this
// package before it wrote blobs itself, may have one.
const ingestDir = "ingest"

// unfinished lists the leftovers of writes that will never finish: the
// temp files in blobs/<alg>/ (but those of s's own writes in progress)
// and the entries of ingest/. Prune calls it holding the exclusive lock,
// when no other Store is open, so no other writer of this package is
// using any of them.
func (s *Store) unfinished() ([]string, error) {
	var temps, paths []string
	root := filepath.Join(s.dir, blobsDir)
	algs, err := os.ReadDir(root)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(root, a.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if isTemp(e.Name()) {
				temps = append(temps, filepath.Join(root, a.Name(), e.Name()))
			}
		}
	}
	// s's writers in progress, once the files are listed: a writer that
	// makes its file after the listing is not in it, one that made it
	// before and is still writing is in both.
	live := s.tempFiles()
	for _, p := range temps {
		if !live[p] {
			paths = append(paths, p)
		}
	}
	ingests, err := os.ReadDir(filepath.Join(s.dir, ingestDir))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, e := range ingests {
		paths = append(paths, filepath.Join(s.dir, ingestDir, e.Name()))
	}
	return paths, nil
}
