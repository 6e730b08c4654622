package ocilayout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
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
// implements content.Provider, content.Ingester, content.InfoProvider and
// content.IngestManager. Close it when done: an open Store holds off Prune.
type Store struct {
	content.Store // containerd's local store on the same directory
	dir           string
	// session keeps this Store's unfinished writes apart from those of
	// other Stores on the directory (containerd's ref locks are per
	// process): two processes writing one blob each write their own file,
	// and the second rename finds the blob there.
	session string

	readOnly bool

	mu     sync.Mutex
	lock   *flock.Flock // shared lock held while open; nil if read-only
	closed bool
}

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
	cs, err := local.NewStore(dir)
	if err != nil {
		return nil, errors.Wrapf(err, "oci layout %s", dir)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, errors.Wrapf(err, "oci layout %s", dir)
	}
	// A shared lock is only refused while a Prune runs; wait for it.
	l := newLock(filepath.Join(dir, storeLockFile))
	if err := lockWait(ctx, l, l.TryRLock); err != nil {
		return nil, errors.Wrapf(err, "oci layout %s: waiting for a prune to finish", dir)
	}
	return &Store{Store: cs, dir: dir, lock: l, session: hex.EncodeToString(id[:])}, nil
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
	return &Store{Store: readOnly{blobs{dir}}, dir: dir, readOnly: true}, nil
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

// Close releases the store's lock. The Store must not be used after.
func (s *Store) Close() (err error) {
	defer func() { err = classify(err) }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.lock == nil {
		return nil
	}
	return errors.Wrapf(s.lock.Close(), "oci layout %s: releasing the lock", s.dir)
}

// Writer implements content.Ingester. A blob already in the layout gives
// errdefs.ErrAlreadyExists.
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (_ content.Writer, err error) {
	defer func() { err = classify(err) }()
	if s.readOnly {
		return nil, s.errReadOnly("write")
	}
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, errors.Wrap(optionError(err), "writer")
		}
	}
	if wo.Desc.Digest != "" {
		if err := wo.Desc.Digest.Validate(); err != nil {
			return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "blob %q: %v", wo.Desc.Digest, err)
		}
		if info, err := s.Store.Info(ctx, wo.Desc.Digest); err == nil && (wo.Desc.Size <= 0 || info.Size == wo.Desc.Size) {
			return nil, errors.Wrapf(errdefs.ErrAlreadyExists, "blob %s", wo.Desc.Digest)
		}
	}
	w, err := s.Store.Writer(ctx, append(opts, content.WithRef(s.ref(wo.Ref)))...)
	if err != nil {
		return nil, err
	}
	return writer{w}, nil
}

// ref maps a caller's ingest ref to this Store's own.
func (s *Store) ref(ref string) string { return ref + "@" + s.session }

// Status implements content.IngestManager for refs given to Writer.
func (s *Store) Status(ctx context.Context, ref string) (content.Status, error) {
	st, err := s.Store.Status(ctx, s.ref(ref))
	return st, classify(err)
}

// ListStatuses implements content.IngestManager: the writes in progress
// through every Store on the directory, with the refs Writer made.
func (s *Store) ListStatuses(ctx context.Context, filters ...string) ([]content.Status, error) {
	st, err := s.Store.ListStatuses(ctx, filters...)
	return st, classify(err)
}

// Delete implements content.Manager.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	if s.readOnly {
		return s.errReadOnly("delete " + dgst.String())
	}
	return classify(s.Store.Delete(ctx, dgst))
}

// Abort implements content.IngestManager for refs given to Writer.
func (s *Store) Abort(ctx context.Context, ref string) error {
	return classify(s.Store.Abort(ctx, s.ref(ref)))
}

// Info implements content.InfoProvider.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	info, err := s.Store.Info(ctx, dgst)
	return info, classify(err)
}

// Update implements content.Manager.
func (s *Store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	info, err := s.Store.Update(ctx, info, fieldpaths...)
	return info, classify(err)
}

// Walk implements content.Manager. An error fn returns ends the walk and
// is returned, with a class if it had none.
func (s *Store) Walk(ctx context.Context, fn content.WalkFunc, filters ...string) error {
	return classify(s.Store.Walk(ctx, fn, filters...))
}

// ReaderAt implements content.Provider.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := s.Store.ReaderAt(ctx, desc)
	if err != nil {
		return nil, classify(err)
	}
	return ra, nil
}

// writer is a content.Writer of the local store whose errors carry a
// class.
type writer struct{ content.Writer }

func (w writer) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	return n, classify(err)
}

func (w writer) Close() error { return classify(w.Writer.Close()) }

func (w writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	return classify(w.Writer.Commit(ctx, size, expected, opts...))
}

func (w writer) Status() (content.Status, error) {
	st, err := w.Writer.Status()
	return st, classify(err)
}

func (w writer) Truncate(size int64) error { return classify(w.Writer.Truncate(size)) }

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
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(d ocispec.Descriptor) bool { return tagName(d) == name })
		idx.Manifests = append(idx.Manifests, entry)
		return writeIndex(s.dir, idx)
	}), "tag %s", name)
}

// checkComplete walks everything desc reaches and checks each blob is in
// the layout with the size its descriptor gives.
func (s *Store) checkComplete(ctx context.Context, desc ocispec.Descriptor) error {
	return walk(ctx, s.Store, func(d ocispec.Descriptor) error {
		info, err := s.Store.Info(ctx, d.Digest)
		if err != nil {
			return errors.Wrapf(err, "blob %s", d.Digest)
		}
		if info.Size != d.Size {
			return errors.Wrapf(errdefs.ErrFailedPrecondition, "blob %s: %d bytes in the layout, descriptor says %d", d.Digest, info.Size, d.Size)
		}
		return nil
	}, desc)
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
