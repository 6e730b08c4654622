package azblob

import (
	"context"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
)

// maxConfigSize bounds what Resolve and Prune read of a cache config: the
// core's default limit on an imported blob.
const maxConfigSize = 64 << 20

// Store is a cache location in a container, in BuildKit's azblob layout
// (see the package documentation). It is safe for concurrent use.
type Store struct {
	client    *azblob.Client
	cc        *container.Client
	container string
	opts      options

	// resolved holds the bytes of configs Resolve read, by digest, so
	// that ReaderAt serves exactly what Resolve described even if an
	// export replaces the blob in between.
	mu       sync.Mutex
	resolved map[digest.Digest][]byte
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
		create := !o.readOnly
		o.createContainer = &create
	}
	if o.spoolDir == "" {
		o.spoolDir = os.TempDir()
	}
	client := o.client
	if client == nil {
		var err error
		if client, err = newClient(&o); err != nil {
			return nil, errors.Wrapf(err, "azblob container %s", containerName)
		}
	}
	return &Store{
		client:    client,
		cc:        client.ServiceClient().NewContainerClient(containerName),
		container: containerName,
		opts:      o,
		resolved:  map[digest.Digest][]byte{},
	}, nil
}

// String returns the location as "azblob:CONTAINER/PREFIX:NAME"
// ("azblob:CONTAINER:NAME" with no prefix), the names joined with ";".
func (s *Store) String() string {
	loc := "azblob:" + s.container
	if s.opts.prefix != "" {
		loc += "/" + s.opts.prefix
	}
	return loc + ":" + strings.Join(s.opts.names, ";")
}

// TagsManifests implements remotecache.ManifestTagger: writing the cache
// config is what moves the names, so an export always writes it.
func (s *Store) TagsManifests() bool { return true }

// Names returns the cache names, the first of which Resolve reads.
func (s *Store) Names() []string { return append([]string(nil), s.opts.names...) }

// Container returns the name of the store's container.
func (s *Store) Container() string { return s.container }

// BlobKey returns the name of a blob's blob in the container:
// PREFIX/BLOBS_PREFIX/DIGEST, joined as paths.
func (s *Store) BlobKey(dgst digest.Digest) string {
	return path.Join(s.opts.prefix, s.opts.blobsPrefix, dgst.String())
}

// ConfigKey returns the name of the blob of the cache config of a name:
// PREFIX/MANIFESTS_PREFIX/NAME, joined as paths.
func (s *Store) ConfigKey(name string) string {
	return path.Join(s.opts.prefix, s.opts.manifestsPrefix, name)
}

// dir returns the directory of the blobs under PREFIX/sub, with its
// trailing slash ("" for the root).
func (s *Store) dir(sub string) string {
	if d := path.Join(s.opts.prefix, sub); d != "" && d != "." {
		return d + "/"
	}
	return ""
}

// where names a blob of the container in messages: CONTAINER/NAME.
func (s *Store) where(name string) string { return s.container + "/" + name }

// Resolve returns the descriptor of the cache config under the first name:
// media type remotecache.CacheConfigMediaTypeV0, the digest and size of
// the blob's bytes. ReaderAt serves it, and remotecache.Import reads the
// cache from it. A missing config (or container) is errdefs.ErrNotFound.
// (BuildKit's azblob importer reads every name and merges them; an export
// writes the same config under each.)
func (s *Store) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	name := s.ConfigKey(s.opts.names[0])
	dt, err := s.download(ctx, name, maxConfigSize)
	if err != nil {
		return ocispec.Descriptor{}, errors.Wrapf(err, "resolving cache config %s", s.where(name))
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

// download reads a whole blob of at most limit bytes.
func (s *Store) download(ctx context.Context, name string, limit int64) ([]byte, error) {
	resp, err := s.cc.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, classify(err)
	}
	body := resp.NewRetryReader(ctx, nil)
	defer body.Close()
	if resp.ContentLength != nil && *resp.ContentLength > limit {
		return nil, errors.Wrapf(errdefs.ErrOutOfRange, "%d bytes, more than the limit of %d", *resp.ContentLength, limit)
	}
	dt, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, classify(err)
	}
	if int64(len(dt)) > limit {
		return nil, errors.Wrapf(errdefs.ErrOutOfRange, "more than the limit of %d bytes", limit)
	}
	return dt, nil
}

// withContainer runs op and, if it failed because the container does not
// exist and the store may create it, creates the container (another
// writer may have just done so) and runs op again.
func (s *Store) withContainer(ctx context.Context, op func() error) error {
	err := op()
	if err == nil || !*s.opts.createContainer || !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return err
	}
	if _, cerr := s.cc.Create(ctx, nil); cerr != nil && !bloberror.HasCode(cerr, bloberror.ContainerAlreadyExists) {
		return errors.Wrapf(classify(cerr), "creating container %s", s.container)
	}
	return op()
}

// props is what the store reads of a blob's properties.
func props(p blob.GetPropertiesResponse) content.Info {
	var info content.Info
	if p.ContentLength != nil {
		info.Size = *p.ContentLength
	}
	if p.CreationTime != nil {
		info.CreatedAt = *p.CreationTime
	} else if p.LastModified != nil {
		info.CreatedAt = *p.LastModified
	}
	info.UpdatedAt = updatedAt(p.LastModified, p.Metadata)
	return info
}
