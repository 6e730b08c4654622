package azblob

import (
	"context"
	"path"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/objstore"
)

// Store is a cache location in a container, in BuildKit's azblob layout
// (see the package documentation). It is safe for concurrent use.
type Store struct {
	core      *objstore.Store
	client    *azblob.Client
	container string
	opts      options
}

var (
	_ content.Provider           = (*Store)(nil)
	_ content.InfoProvider       = (*Store)(nil)
	_ content.Ingester           = (*Store)(nil)
	_ remotecache.ManifestTagger = (*Store)(nil)
)

// New returns the cache in container ("" for "buildkit-cache") that opts
// describe. The account and its credentials come from the options, else
// from $AZURE_STORAGE_CONNECTION_STRING. New makes no request: a missing
// container is created by the first write into it (see
// WithCreateContainer), and a store that only reads never makes one.
func New(ctx context.Context, containerName string, opts ...Option) (*Store, error) {
	if containerName == "" {
		containerName = DefaultContainer
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, errors.Wrapf(err, "azblob container %s", containerName)
		}
	}
	if err := o.validate(containerName); err != nil {
		return nil, errors.Wrapf(err, "azblob container %s", containerName)
	}
	if o.createContainer == nil {
		create := !o.ReadOnly
		o.createContainer = &create
	}
	client := o.client
	if client == nil {
		var err error
		if client, err = newClient(&o); err != nil {
			return nil, errors.Wrapf(err, "azblob container %s", containerName)
		}
	}
	s := &Store{client: client, container: containerName, opts: o}
	b := &backend{cc: client.ServiceClient().NewContainerClient(containerName), container: containerName, opts: &s.opts}
	// Names are joined as paths, as BuildKit's filepath.Join.
	s.core = objstore.New(b, objstore.Config{
		Options:       o.Options,
		Kind:          "azblob",
		Root:          containerName,
		BlobsDir:      s.dir(o.BlobsPrefix),
		ManifestsDir:  s.dir(o.ManifestsPrefix),
		ConfigKey:     func(name string) string { return path.Join(o.Prefix, o.ManifestsPrefix, name) },
		DeleteIfMatch: true,
	})
	return s, nil
}

// dir returns the directory of the blobs under PREFIX/sub, with its
// trailing slash ("" for the root).
func (s *Store) dir(sub string) string {
	if d := path.Join(s.opts.Prefix, sub); d != "" && d != "." {
		return d + "/"
	}
	return ""
}

// String returns the location as "azblob:CONTAINER/PREFIX:NAME"
// ("azblob:CONTAINER:NAME" with no prefix), the names joined with ";".
func (s *Store) String() string { return s.core.String() }

// TagsManifests implements remotecache.ManifestTagger: writing the cache
// config is what moves the names, so an export always writes it.
func (s *Store) TagsManifests() bool { return s.core.TagsManifests() }

// Names returns the cache names, the first of which Resolve reads.
func (s *Store) Names() []string { return s.core.Names() }

// Container returns the name of the store's container.
func (s *Store) Container() string { return s.container }

// BlobKey returns the name of a blob's blob in the container:
// PREFIX/BLOBS_PREFIX/DIGEST, joined as paths.
func (s *Store) BlobKey(dgst digest.Digest) string { return s.core.BlobKey(dgst) }

// ConfigKey returns the name of the blob of the cache config of a name:
// PREFIX/MANIFESTS_PREFIX/NAME, joined as paths.
func (s *Store) ConfigKey(name string) string { return s.core.ConfigKey(name) }

// Resolve returns the descriptor of the cache config under the first name:
// media type remotecache.CacheConfigMediaTypeV0, the digest and size of
// the blob's bytes. ReaderAt serves it, and remotecache.Import reads the
// cache from it. A missing config (or container) is errdefs.ErrNotFound.
// (BuildKit's azblob importer reads every name and merges them; an export
// writes the same config under each.)
func (s *Store) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	return s.core.Resolve(ctx)
}

// Writer implements content.Ingester. The bytes are kept (in memory, then
// in a file) until Commit has checked their size and digest; only then
// are they uploaded as a block blob, with one Put Blob up to the block
// size, else staged in blocks and committed with Put Block List, so a
// failed or cancelled write leaves no blob. A descriptor of media type
// remotecache.CacheConfigMediaTypeV0 is the cache config, written under
// every name; any other is a blob, written under its digest. An OCI or
// Docker manifest or index is refused with errdefs.ErrInvalidArgument:
// this store keeps the config-only form (remotecache.FormatConfigOnly).
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	return s.core.Writer(ctx, opts...)
}

// ReaderAt implements content.Provider. A descriptor of a cache config
// (media type remotecache.CacheConfigMediaTypeV0, or the digest of one
// Resolve read) is served from what Resolve read; any other from the
// blob, by ranged downloads, opened again at the offset reached when a
// body breaks off. The size is desc.Size, or the blob's when desc.Size is
// 0. A missing blob is errdefs.ErrNotFound.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	return s.core.ReaderAt(ctx, desc)
}

// Info implements content.InfoProvider with the blob's properties (a
// HEAD): its size, its creation time as CreatedAt, and as UpdatedAt the
// later of its Last-Modified time and the time of the last refresh
// (updated_at metadata). A missing blob (or container) is
// errdefs.ErrNotFound; any other failure keeps its own class. On a store
// not opened WithReadOnly, a blob older than the touch refresh age is
// first refreshed (see WithTouchRefresh), and UpdatedAt is the refresh's
// time.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	return s.core.Info(ctx, dgst)
}
