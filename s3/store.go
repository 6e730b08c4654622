package s3

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
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

// Store is a cache location in a bucket, in BuildKit's s3 layout (see the
// package documentation). It is safe for concurrent use.
type Store struct {
	client *s3.Client
	bucket string
	opts   options

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
	if o.spoolDir == "" {
		o.spoolDir = os.TempDir()
	}
	client := o.client
	if client == nil {
		var err error
		if client, err = newClient(ctx, &o); err != nil {
			return nil, errors.Wrapf(err, "s3 bucket %s", bucket)
		}
	}
	return &Store{client: client, bucket: bucket, opts: o, resolved: map[digest.Digest][]byte{}}, nil
}

func newClient(ctx context.Context, o *options) (*s3.Client, error) {
	load := []func(*awsconfig.LoadOptions) error{
		// As BuildKit does: checksums only where S3 requires them, which
		// every S3-compatible server understands. Blobs are verified
		// against their digests before they are sent.
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if o.region != "" {
		load = append(load, awsconfig.WithRegion(o.region))
	}
	if o.attempts > 0 {
		load = append(load, awsconfig.WithRetryMaxAttempts(o.attempts))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, errclass.With(errors.Wrap(err, "loading AWS configuration"), errdefs.ErrInvalidArgument)
	}
	if client, ok := buildClient(cfg, o); ok {
		return client, nil
	}
	// No region and no endpoint: on AWS, the instance's region, if there
	// is an instance (the SDK does not ask IMDS unless told).
	if cfg, err := awsconfig.LoadDefaultConfig(ctx, append(load, awsconfig.WithEC2IMDSRegion())...); err == nil && cfg.Region != "" {
		if client, ok := buildClient(cfg, o); ok {
			return client, nil
		}
	}
	return nil, errors.Wrap(errdefs.ErrInvalidArgument, "no region: set AWS_REGION or use WithRegion")
}

// buildClient makes the client of cfg and o, and says false if it has
// neither a region nor an endpoint. The endpoint is the one the SDK
// resolves (WithEndpoint, else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the
// shared config), and decides the default addressing and region.
func buildClient(cfg aws.Config, o *options) (*s3.Client, bool) {
	ok := true
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.endpoint != "" {
			so.BaseEndpoint = aws.String(o.endpoint)
		}
		endpoint := aws.ToString(so.BaseEndpoint)
		if so.Region == "" {
			if endpoint == "" {
				ok = false
			}
			// S3-compatible servers sign for any region; most expect
			// this one.
			so.Region = "us-east-1"
		}
		so.UsePathStyle = isLocalEndpoint(endpoint)
		if o.pathStyle != nil {
			so.UsePathStyle = *o.pathStyle
		}
		if o.accessKey != "" {
			so.Credentials = credentials.NewStaticCredentialsProvider(o.accessKey, o.secretKey, o.token)
		}
	})
	return client, ok
}

// isLocalEndpoint tells whether the endpoint's host is an IP address or a
// loopback name, which have no subdomain per bucket.
func isLocalEndpoint(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return net.ParseIP(h) != nil || h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// String returns the location as "s3:BUCKET/PREFIX:NAME" ("s3:BUCKET:NAME"
// with no prefix), the names joined with ";".
func (s *Store) String() string {
	loc := "s3:" + s.bucket
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

// BlobKey returns the object key of a blob: PREFIX BLOBS_PREFIX DIGEST.
func (s *Store) BlobKey(dgst digest.Digest) string {
	return s.opts.prefix + s.opts.blobsPrefix + dgst.String()
}

// ConfigKey returns the object key of the cache config of a name:
// PREFIX MANIFESTS_PREFIX NAME.
func (s *Store) ConfigKey(name string) string {
	return s.opts.prefix + s.opts.manifestsPrefix + name
}

// Resolve returns the descriptor of the cache config under the first name:
// media type remotecache.CacheConfigMediaTypeV0, the digest and size of
// the object's bytes. ReaderAt serves it, and remotecache.Import reads
// the cache from it. A missing config is errdefs.ErrNotFound.
func (s *Store) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	key := s.ConfigKey(s.opts.names[0])
	dt, err := s.getObject(ctx, key, maxConfigSize)
	if err != nil {
		return ocispec.Descriptor{}, errors.Wrapf(err, "resolving cache config s3://%s/%s", s.bucket, key)
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

// getObject reads a whole object of at most limit bytes.
func (s *Store) getObject(ctx context.Context, key string, limit int64) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, classify(err)
	}
	defer out.Body.Close()
	if out.ContentLength != nil && *out.ContentLength > limit {
		return nil, errors.Wrapf(errdefs.ErrOutOfRange, "%d bytes, more than the limit of %d", *out.ContentLength, limit)
	}
	dt, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, classify(err)
	}
	if int64(len(dt)) > limit {
		return nil, errors.Wrapf(errdefs.ErrOutOfRange, "more than the limit of %d bytes", limit)
	}
	return dt, nil
}
