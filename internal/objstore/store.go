package objstore

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/errclass"
)

// maxConfigSize bounds what Resolve and Prune read of a cache config: the
// core's default limit on an imported blob.
const maxConfigSize = 64 << 20

// Config describes a Store: the user's settings, and where its backend
// keeps blobs and configs.
type Config struct {
	Options
	// Kind is the store's scheme in String and messages: "s3", "azblob".
	Kind string
	// Root is the bucket or container.
	Root string
	// BlobsDir is what every blob's key starts with: the key of a blob
	// is BlobsDir and its digest. Prune lists it.
	BlobsDir string
	// ManifestsDir is what the key of every config starts with. Prune
	// reads every config there, of any name.
	ManifestsDir string
	// ConfigKey returns the key of the config of a name.
	ConfigKey func(name string) string
	// DeleteIfMatch says that the backend's Delete honours an ETag:
	// Prune then deletes each blob only if it is still the one listed,
	// where it would otherwise ask for it again (Head) first.
	DeleteIfMatch bool
}

// Store is a cache location in object storage in BuildKit's config-only
// layout (see the package documentation). It is safe for concurrent use.
type Store struct {
	b   Backend
	cfg Config

	// resolved holds the bytes of configs Resolve read, by digest, so
	// that ReaderAt serves exactly what Resolve described even if an
	// export replaces the object in between.
	mu       sync.Mutex
	resolved map[digest.Digest][]byte
}

var (
	_ content.Provider           = (*Store)(nil)
	_ content.InfoProvider       = (*Store)(nil)
	_ content.Ingester           = (*Store)(nil)
	_ remotecache.ManifestTagger = (*Store)(nil)
)

// New returns the store of cfg on b. cfg's options must have been
// checked (Options.Check and the store's own rules).
func New(b Backend, cfg Config) *Store {
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	return &Store{b: b, cfg: cfg, resolved: map[digest.Digest][]byte{}}
}

// String returns the location as "KIND:ROOT/PREFIX:NAME" ("KIND:ROOT:NAME"
// with no prefix), the names joined with ";".
func (s *Store) String() string {
	loc := s.cfg.Kind + ":" + s.cfg.Root
	if s.cfg.Prefix != "" {
		loc += "/" + s.cfg.Prefix
	}
	return loc + ":" + strings.Join(s.cfg.Names, ";")
}

// TagsManifests implements remotecache.ManifestTagger: writing the cache
// config is what moves the names, so an export always writes it.
func (s *Store) TagsManifests() bool { return true }

// Names returns the cache names, the first of which Resolve reads.
func (s *Store) Names() []string { return append([]string(nil), s.cfg.Names...) }

// BlobKey returns the key of a blob: BlobsDir and the digest.
func (s *Store) BlobKey(dgst digest.Digest) string { return s.cfg.BlobsDir + dgst.String() }

// ConfigKey returns the key of the cache config of a name.
func (s *Store) ConfigKey(name string) string { return s.cfg.ConfigKey(name) }

// Resolve returns the descriptor of the cache config under the first name:
// media type remotecache.CacheConfigMediaTypeV0, the digest and size of
// the object's bytes, which ReaderAt then serves. A missing config is
// errdefs.ErrNotFound.
func (s *Store) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	key := s.ConfigKey(s.cfg.Names[0])
	dt, err := s.readAll(ctx, key, maxConfigSize)
	if err != nil {
		return ocispec.Descriptor{}, errors.Wrapf(err, "resolving cache config %s", s.b.Where(key))
	}
	desc := ocispec.Descriptor{
		MediaType: remotecache.CacheConfigMediaTypeV0,
		Digest:    digest.FromBytes(dt),
		Size:      int64(len(dt)),
	}
	s.mu.Lock()
	s.resolved[desc.Digest] = dt
	s.mu.Unlock()
	return desc, nil
}

// readAll reads a whole object of at most limit bytes.
func (s *Store) readAll(ctx context.Context, key string, limit int64) ([]byte, error) {
	body, err := s.b.Get(ctx, key, 0)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	if body.Size > limit {
		return nil, errors.Wrapf(errdefs.ErrOutOfRange, "%d bytes, more than the limit of %d", body.Size, limit)
	}
	dt, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, bodyError(err)
	}
	if int64(len(dt)) > limit {
		return nil, errors.Wrapf(errdefs.ErrOutOfRange, "more than the limit of %d bytes", limit)
	}
	return dt, nil
}

// bodyError classes the failure of reading a body the backend handed
// over: a connection that broke, unless the backend said more.
func bodyError(err error) error { return errclass.Ensure(err, errdefs.ErrUnavailable) }

// Info implements content.InfoProvider with the backend's Head of the
// blob: its size, creation time and time of last change. A missing blob is
// errdefs.ErrNotFound; any other failure keeps its own class. On a store
// that is not read-only, a blob older than the touch refresh age is first
// refreshed (Backend.Touch), and UpdatedAt is the refresh's time.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if err := dgst.Validate(); err != nil {
		return content.Info{}, errors.Wrapf(errdefs.ErrInvalidArgument, "digest %q: %v", dgst, err)
	}
	obj, err := s.b.Head(ctx, s.BlobKey(dgst))
	if err != nil {
		return content.Info{}, errors.Wrapf(err, "blob %s", dgst)
	}
	info := content.Info{Digest: dgst, Size: obj.Size, CreatedAt: obj.CreatedAt, UpdatedAt: obj.UpdatedAt}
	if s.needsRefresh(info.UpdatedAt) {
		t, err := s.b.Touch(ctx, obj)
		if err != nil {
			return content.Info{}, errors.Wrapf(err, "refreshing blob %s", dgst)
		}
		info.UpdatedAt = t
	}
	return info, nil
}

// needsRefresh tells whether Info refreshes a blob last changed at
// updated: older than the touch refresh age, in a store that writes.
func (s *Store) needsRefresh(updated time.Time) bool {
	return !s.cfg.ReadOnly && time.Since(updated) > s.cfg.TouchRefresh
}
