package ocilayout

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/gofrs/flock"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

const (
	indexFile     = "index.json"
	indexLockFile = "index.json.lock"
	storeLockFile = ".remotecache.lock"
	pruneLockFile = ".remotecache.prune.lock"
	blobsDir      = "blobs"

	// AnnotationRefName is the annotation that names a tag in index.json.
	AnnotationRefName = ocispec.AnnotationRefName
	// AnnotationImageName is containerd's name annotation, which BuildKit
	// also reads; tags written by containerd tools use it.
	AnnotationImageName = images.AnnotationImageName
)

// Store is an OCI image layout directory as a content store with tags. It
// implements content.Store: content.Provider, content.Ingester,
// content.InfoProvider, content.IngestManager and content.Manager. Close
// it when done: an open Store holds off Prune.
type Store struct {
	dir      string
	blobs    blobs // reads blobs/<alg>/<hex>
	readOnly bool

	mu      sync.Mutex
	lock    *flock.Flock // shared lock held while open; nil if read-only
	closed  bool
	writers map[string]*blobWriter // writes in progress, by ref
}

var _ content.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options) error

type options struct{ readOnly bool }

// WithReadOnly opens an existing layout for reading only: nothing in the
// directory is made or changed, not even a lock file, and every write
// fails with errdefs.ErrFailedPrecondition. Such a Store does not hold off
// Prune, so a prune in another process may remove blobs while it reads.
// By default a Store reads and writes.
func WithReadOnly() Option {
	return func(o *options) error {
		o.readOnly = true
		return nil
	}
}

// Open opens the OCI layout at dir, making it (and dir) if absent. It fails
// if dir holds something that is not an OCI layout. It is OpenContext
// with a context that never ends: it waits as long as a Prune runs.
func Open(dir string, opts ...Option) (*Store, error) {
	return OpenContext(context.Background(), dir, opts...)
}

// OpenContext opens the OCI layout at dir, making it (and dir) if absent.
// It fails if dir holds something that is not an OCI layout. It waits
// while a Prune runs on the directory and for the index.json lock when it
// has to write index.json, for as long as ctx allows; a read-only open
// never waits.
func OpenContext(ctx context.Context, dir string, opts ...Option) (_ *Store, err error) {
	defer func() { err = classify(err) }()
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, errors.Wrapf(optionError(err), "oci layout %s", dir)
		}
	}
	if o.readOnly {
		return openReadOnly(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, errors.Wrapf(err, "oci layout %s", dir)
	}
	if err := initLayout(ctx, dir); err != nil {
		return nil, errors.Wrapf(err, "oci layout %s", dir)
	}
	// A shared lock is only refused while a Prune runs; wait for it.
	l := newLock(filepath.Join(dir, storeLockFile))
	if err := lockWait(ctx, l, l.TryRLock); err != nil {
		return nil, errors.Wrapf(err, "oci layout %s: waiting for a prune to finish", dir)
	}
	return &Store{dir: dir, blobs: blobs{dir}, lock: l}, nil
}

func openReadOnly(dir string) (*Store, error) {
	for _, name := range []string{ocispec.ImageLayoutFile, indexFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			if os.IsNotExist(err) {
				return nil, errors.Wrapf(errdefs.ErrNotFound, "oci layout %s: no %s", dir, name)
			}
			return nil, errors.Wrapf(err, "oci layout %s", dir)
		}
	}
	return &Store{dir: dir, blobs: blobs{dir}, readOnly: true}, nil
}

// errReadOnly is returned by writes to a Store opened WithReadOnly.
func (s *Store) errReadOnly(what string) error { return errReadOnly(s.dir, what) }

// initLayout writes oci-layout and an empty index.json where missing, and
// checks the ones there.
func initLayout(ctx context.Context, dir string) error {
	layoutPath := filepath.Join(dir, ocispec.ImageLayoutFile)
	dt, err := os.ReadFile(layoutPath)
	switch {
	case err == nil:
		var l ocispec.ImageLayout
		if err := json.Unmarshal(dt, &l); err != nil {
			return errors.Wrapf(errdefs.ErrFailedPrecondition, "%s: not an OCI layout file: %v", ocispec.ImageLayoutFile, err)
		}
		if l.Version != ocispec.ImageLayoutVersion {
			return errors.Wrapf(errdefs.ErrFailedPrecondition, "%s: unsupported layout version %q", ocispec.ImageLayoutFile, l.Version)
		}
	case os.IsNotExist(err):
		dt, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := writeFileAtomic(dir, ocispec.ImageLayoutFile, dt); err != nil {
			return err
		}
	default:
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, indexFile)); os.IsNotExist(err) {
		return withFileLock(ctx, filepath.Join(dir, indexLockFile), func() error {
			if _, err := os.Stat(filepath.Join(dir, indexFile)); err == nil {
				return nil
			}
			return writeIndex(dir, newIndex())
		})
	} else if err != nil {
		return err
	}
	return nil
}

func newIndex() *ocispec.Index {
	return &ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{},
	}
}

// Dir is the directory of the layout.
func (s *Store) Dir() string { return s.dir }

// Close gives up the writes in progress (as Abort does) and releases the
// store's lock. The Store must not be used after.
func (s *Store) Close() (err error) {
	defer func() { err = classify(err) }()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true // no Writer from now on
	s.mu.Unlock()
	for _, w := range s.openWriters() {
		w.Close()
	}
	if s.lock == nil {
		return nil
	}
	return errors.Wrapf(s.lock.Close(), "oci layout %s: releasing the lock", s.dir)
}

// Info implements content.InfoProvider.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	info, err := s.blobs.Info(ctx, dgst)
	return info, classify(err)
}

// ReaderAt implements content.Provider.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := s.blobs.ReaderAt(ctx, desc)
	if err != nil {
		return nil, classify(err)
	}
	return ra, nil
}

// Walk implements content.Manager: every blob of the layout, as
// containerd's stores filter them. An error fn returns ends the walk and
// is returned, with a class if it had none.
func (s *Store) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	return classify(s.blobs.Walk(ctx, fn, filters...))
}

// Delete implements content.Manager: the blob's file is removed. A blob
// not in the layout is errdefs.ErrNotFound.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	if s.readOnly {
		return s.errReadOnly("delete " + dgst.String())
	}
	p, err := s.blobs.path(dgst)
	if err != nil {
		return classify(err)
	}
	if err := os.Remove(p); os.IsNotExist(err) {
		return errors.Wrapf(errdefs.ErrNotFound, "oci layout %s: blob %s", s.dir, dgst)
	} else if err != nil {
		return classify(errors.Wrapf(err, "oci layout %s: deleting blob %s", s.dir, dgst))
	}
	return nil
}

// Update implements content.Manager. A layout keeps no labels, so there is
// nothing to update: errdefs.ErrFailedPrecondition, as from containerd's
// local store without a label store.
func (s *Store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	if s.readOnly {
		return content.Info{}, s.errReadOnly("update " + info.Digest.String())
	}
	return content.Info{}, errors.Wrapf(errdefs.ErrFailedPrecondition, "oci layout %s: update %s: a layout keeps no labels", s.dir, info.Digest)
}

// readIndex reads index.json.
func (s *Store) readIndex() (*ocispec.Index, error) {
	dt, err := os.ReadFile(filepath.Join(s.dir, indexFile))
	if err != nil {
		return nil, errors.Wrapf(err, "oci layout %s", s.dir)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "oci layout %s: %s: %v", s.dir, indexFile, err)
	}
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	return &idx, nil
}

// writeIndex replaces index.json atomically.
func writeIndex(dir string, idx *ocispec.Index) error {
	dt, err := json.Marshal(idx)
	if err != nil {
		return errors.Wrap(err, "encoding index.json")
	}
	return writeFileAtomic(dir, indexFile, dt)
}

// writeFileAtomic writes name in dir through a synced temp file and a
// rename, then syncs dir.
func writeFileAtomic(dir, name string, dt []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if _, err := f.Write(dt); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// tagName returns the tag an index entry carries, if any.
func tagName(d ocispec.Descriptor) string {
	if n := d.Annotations[AnnotationRefName]; n != "" {
		return n
	}
	return d.Annotations[AnnotationImageName]
}

// Tag points name at desc in index.json, replacing any entry of that name.
// Every blob desc reaches (manifests, indexes, configs, layers) must be in
// the layout and match its descriptor, else the tag does not move.
func (s *Store) Tag(ctx context.Context, name string, desc ocispec.Descriptor) (err error) {
	defer func() { err = classify(err) }()
	if s.readOnly {
		return s.errReadOnly("tag " + name)
	}
	if name == "" {
		return errors.Wrap(errdefs.ErrInvalidArgument, "tag: empty name")
	}
	if err := desc.Digest.Validate(); err != nil {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "tag %s: descriptor digest %q: %v", name, desc.Digest, err)
	}
	if err := s.checkComplete(ctx, desc); err != nil {
		return errors.Wrapf(err, "tag %s", name)
	}
	entry := desc
	entry.Annotations = map[string]string{}
	for k, v := range desc.Annotations {
		entry.Annotations[k] = v
	}
	entry.Annotations[AnnotationRefName] = name
	return errors.Wrapf(withFileLock(ctx, filepath.Join(s.dir, indexLockFile), func() error {
		idx, err := s.readIndex()
		if err != nil {
			return err
		}
		var named []ocispec.Descriptor
		for _, d := range idx.Manifests {
			if tagName(d) == name {
				named = append(named, d)
			}
		}
		if len(named) == 1 && reflect.DeepEqual(named[0], entry) {
			return nil // the tag names this already: index.json stays as it is
		}
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(d ocispec.Descriptor) bool { return tagName(d) == name })
		idx.Manifests = append(idx.Manifests, entry)
		return writeIndex(s.dir, idx)
	}), "tag %s", name)
}

// checkComplete walks everything desc reaches and checks each blob is in
// the layout with the size its descriptor gives. Then it syncs the
// directories of those blobs, making their names durable (Commit does not
// sync them: see blobWriter.Commit) before a tag names them.
func (s *Store) checkComplete(ctx context.Context, desc ocispec.Descriptor) error {
	algs := map[digest.Algorithm]bool{}
	err := walk(ctx, s.blobs, func(d ocispec.Descriptor) error {
		info, err := s.blobs.Info(ctx, d.Digest)
		if err != nil {
			return errors.Wrapf(err, "blob %s", d.Digest)
		}
		if info.Size != d.Size {
			return errors.Wrapf(errdefs.ErrFailedPrecondition, "blob %s: %d bytes in the layout, descriptor says %d", d.Digest, info.Size, d.Size)
		}
		algs[d.Digest.Algorithm()] = true
		return nil
	}, desc)
	if err != nil {
		return err
	}
	for alg := range algs {
		if err := syncDir(filepath.Join(s.dir, blobsDir, alg.String())); err != nil {
			return errors.Wrapf(err, "syncing blobs/%s", alg)
		}
	}
	return nil
}

// Resolve returns the descriptor a tag points at.
func (s *Store) Resolve(ctx context.Context, name string) (ocispec.Descriptor, error) {
	idx, err := s.readIndex()
	if err != nil {
		return ocispec.Descriptor{}, classify(err)
	}
	// The last entry of a name wins, as when a tool appended without
	// removing the old one.
	for i := len(idx.Manifests) - 1; i >= 0; i-- {
		if d := idx.Manifests[i]; tagName(d) == name {
			return d, nil
		}
	}
	return ocispec.Descriptor{}, errors.Wrapf(errdefs.ErrNotFound, "oci layout %s: tag %q", s.dir, name)
}

// Tags lists the tag names in index.json, sorted, each once.
func (s *Store) Tags(ctx context.Context) ([]string, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, classify(err)
	}
	var names []string
	for _, d := range idx.Manifests {
		if n := tagName(d); n != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Untag removes a tag. Its blobs stay until Prune.
func (s *Store) Untag(ctx context.Context, name string) (err error) {
	defer func() { err = classify(err) }()
	if s.readOnly {
		return s.errReadOnly("untag " + name)
	}
	return errors.Wrapf(withFileLock(ctx, filepath.Join(s.dir, indexLockFile), func() error {
		idx, err := s.readIndex()
		if err != nil {
			return err
		}
		n := len(idx.Manifests)
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(d ocispec.Descriptor) bool { return tagName(d) == name })
		if len(idx.Manifests) == n {
			return errors.Wrapf(errdefs.ErrNotFound, "oci layout %s: tag %q", s.dir, name)
		}
		return writeIndex(s.dir, idx)
	}), "untag %s", name)
}
