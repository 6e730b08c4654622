package s3

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/objstore"
)

// Store is a cache location in a bucket, in BuildKit's s3 layout (see the
// package documentation). It is safe for concurrent use.
type Store struct {
	core   *objstore.Store
	client *s3.Client
	bucket string
	opts   options
}

var (
	_ content.Provider           = (*Store)(nil)
	_ content.InfoProvider       = (*Store)(nil)
	_ content.Ingester           = (*Store)(nil)
	_ remotecache.ManifestTagger = (*Store)(nil)
)

// New returns the cache in bucket that opts describe. Region, credentials
// and endpoint come from the AWS SDK's standard chain (environment, shared
// config and credentials files, IMDS) unless options give them. New makes
// no request to the bucket.
func New(ctx context.Context, bucket string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, errors.Wrapf(err, "s3 bucket %s", bucket)
		}
	}
	if err := o.validate(bucket); err != nil {
		return nil, errors.Wrapf(err, "s3 bucket %s", bucket)
	}
	client := o.client
	if client == nil {
		var err error
		if client, err = newClient(ctx, &o); err != nil {
			return nil, errors.Wrapf(err, "s3 bucket %s", bucket)
		}
	}
	s := &Store{client: client, bucket: bucket, opts: o}
	// Keys are plain string joins, as BuildKit's.
	manifests := o.Prefix + o.ManifestsPrefix
	s.core = objstore.New(&backend{client: client, bucket: bucket, opts: &s.opts}, objstore.Config{
		Options:      o.Options,
		Kind:         "s3",
		Root:         bucket,
		BlobsDir:     o.Prefix + o.BlobsPrefix,
		ManifestsDir: manifests,
		ConfigKey:    func(name string) string { return manifests + name },
	})
	return s, nil
}

// String returns the location as "s3:BUCKET/PREFIX:NAME" ("s3:BUCKET:NAME"
// with no prefix), the names joined with ";".
func (s *Store) String() string { return s.core.String() }

// TagsManifests implements remotecache.ManifestTagger: writing the cache
// config is what moves the names, so an export always writes it.
func (s *Store) TagsManifests() bool { return s.core.TagsManifests() }

// Names returns the cache names, the first of which Resolve reads.
func (s *Store) Names() []string { return s.core.Names() }

// BlobKey returns the object key of a blob: PREFIX BLOBS_PREFIX DIGEST.
func (s *Store) BlobKey(dgst digest.Digest) string { return s.core.BlobKey(dgst) }

// ConfigKey returns the object key of the cache config of a name:
// PREFIX MANIFESTS_PREFIX NAME.
func (s *Store) ConfigKey(name string) string { return s.core.ConfigKey(name) }

// Resolve returns the descriptor of the cache config under the first name:
// media type remotecache.CacheConfigMediaTypeV0, the digest and size of
// the object's bytes. ReaderAt serves it, and remotecache.Import reads
// the cache from it. A missing config is errdefs.ErrNotFound.
func (s *Store) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	return s.core.Resolve(ctx)
}

// Writer implements content.Ingester. The bytes are kept (in memory, then
// in a file) until Commit has checked their size and digest; only then
// are they uploaded, with one PUT below the multipart threshold, else in
// parts, so a failed or cancelled write leaves no object. A descriptor of
// media type remotecache.CacheConfigMediaTypeV0 is the cache config,
// written under every name; any other is a blob, written under its
// digest. An OCI or Docker manifest or index is refused with
// errdefs.ErrInvalidArgument: this store keeps the config-only form
// (remotecache.FormatConfigOnly).
func (s *Store) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	return s.core.Writer(ctx, opts...)
}

// ReaderAt implements content.Provider. A descriptor of a cache config
// (media type remotecache.CacheConfigMediaTypeV0, or the digest of one
// Resolve read) is served from what Resolve read; any other from the blob
// object, by ranged GETs, opened again at the offset reached when a body
// breaks off. The size is desc.Size, or the object's when desc.Size is 0.
// A missing blob is errdefs.ErrNotFound.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	return s.core.ReaderAt(ctx, desc)
}

// Info implements content.InfoProvider with a HEAD of the blob's object:
// its size, its last modification as CreatedAt, and as UpdatedAt the later
// of that and the time of the last refresh (updated-at metadata). A
// missing blob is errdefs.ErrNotFound; any other failure keeps its own
// class. On a store not opened WithReadOnly, a blob older than the touch
// refresh age is first copied onto itself (see WithTouchRefresh), as
// BuildKit's exporter does, and UpdatedAt is the copy's time.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	return s.core.Info(ctx, dgst)
}
