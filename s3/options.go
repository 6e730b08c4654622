package s3

import (
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/objstore"
	"github.com/buildcache/remotecache/internal/option"
)

// Defaults of the options, BuildKit's where BuildKit has the setting.
const (
	// DefaultManifestsPrefix is where the cache configs are, under the prefix.
	DefaultManifestsPrefix = "manifests/"
	// DefaultBlobsPrefix is where the layer blobs are, under the prefix.
	DefaultBlobsPrefix = "blobs/"
	// DefaultName is the name of the cache config.
	DefaultName = "buildkit"
	// DefaultTouchRefresh is the age above which a blob an export finds is
	// copied onto itself, so that lifecycle rules keep it.
	DefaultTouchRefresh = 24 * time.Hour
	// DefaultMultipartThreshold is the size from which a blob is uploaded
	// in parts.
	DefaultMultipartThreshold = 16 << 20
	// DefaultPartSize is the size of the parts of a multipart upload.
	DefaultPartSize = 8 << 20
	// DefaultPartConcurrency is how many parts of one blob are uploaded at
	// once.
	DefaultPartConcurrency = 4
	// DefaultMaxCopySize is the largest object a refresh copies with one
	// CopyObject request: S3's limit.
	DefaultMaxCopySize = 5 << 30

	// minPartSize is S3's smallest part but for the last one.
	minPartSize = 5 << 20
	// maxParts is S3's limit on the parts of one upload.
	maxParts = 10000
)

// options are the settings of every object store (prefixes, names,
// touch refresh, read-only, spool directory) and S3's own.
type options struct {
	objstore.Options

	endpoint  string
	region    string
	accessKey string
	secretKey string
	token     string
	pathStyle *bool
	attempts  int
	client    *s3.Client

	threshold       int64
	partSize        int64
	partConcurrency int
	maxCopySize     int64
}

func defaultOptions() options {
	return options{
		Options:         objstore.DefaultOptions(DefaultManifestsPrefix, DefaultBlobsPrefix),
		threshold:       DefaultMultipartThreshold,
		partSize:        DefaultPartSize,
		partConcurrency: DefaultPartConcurrency,
		maxCopySize:     DefaultMaxCopySize,
	}
}

// Option configures New.
type Option func(*options) error

// WithPrefix sets the string every key starts with. Keys are plain string
// joins, as in BuildKit: a prefix "ci" puts the configs at "cimanifests/";
// give "ci/" for a directory. Default: "".
func WithPrefix(prefix string) Option {
	return func(o *options) error {
		o.Prefix = prefix
		return nil
	}
}

// WithManifestsPrefix sets where, after the prefix, the cache configs are
// (BuildKit's manifests_prefix). Default: "manifests/".
func WithManifestsPrefix(prefix string) Option {
	return func(o *options) error {
		o.ManifestsPrefix = prefix
		return nil
	}
}

// WithBlobsPrefix sets where, after the prefix, the layer blobs are
// (BuildKit's blobs_prefix), each under its digest ("sha256:…").
// Default: "blobs/".
func WithBlobsPrefix(prefix string) Option {
	return func(o *options) error {
		o.BlobsPrefix = prefix
		return nil
	}
}

// WithNames sets the names of the cache config (BuildKit's name=a;b): an
// export writes the config under every name, Resolve reads the first.
// Names must not be empty. Default: "buildkit".
func WithNames(names ...string) Option { return objstore.Names[*options](names, nil) }

// WithEndpoint sets the URL of an S3-compatible server
// ("http://127.0.0.1:7070"), BuildKit's endpoint_url. Default: the SDK's
// (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the shared config, else AWS).
func WithEndpoint(endpoint string) Option {
	return func(o *options) error {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "endpoint %q: not an http or https URL", endpoint)
		}
		o.endpoint = endpoint
		return nil
	}
}

// WithRegion sets the region to sign requests for. Default: the SDK's
// (AWS_REGION, the shared config, IMDS), else "us-east-1" when an
// endpoint is set; with neither, New fails.
func WithRegion(region string) Option {
	return func(o *options) error {
		if region == "" {
			return errors.Wrap(errdefs.ErrInvalidArgument, "empty region")
		}
		o.region = region
		return nil
	}
}

// WithCredentials sets static credentials; sessionToken may be empty.
// Default: the SDK's chain (environment, shared files, web identity,
// ECS, IMDS).
func WithCredentials(accessKeyID, secretAccessKey, sessionToken string) Option {
	return func(o *options) error {
		if accessKeyID == "" || secretAccessKey == "" {
			return errors.Wrap(errdefs.ErrInvalidArgument, "credentials need an access key ID and a secret access key")
		}
		o.accessKey, o.secretKey, o.token = accessKeyID, secretAccessKey, sessionToken
		return nil
	}
}

// WithPathStyle puts the bucket in the URL's path rather than in its host
// name. Default: on for an endpoint whose host is an IP address or
// "localhost" (they have no bucket subdomains), else off.
func WithPathStyle(on bool) Option {
	return func(o *options) error {
		o.pathStyle = &on
		return nil
	}
}

// WithRetryMaxAttempts sets how many times the SDK tries a request in all
// (BuildKit's retry_max_attempts). Default: the SDK's (AWS_MAX_ATTEMPTS,
// the shared config, else 3).
func WithRetryMaxAttempts(n int) Option {
	return option.InRange(n, 1, math.MaxInt, "retry max attempts", "at least 1", func(o *options, n int) { o.attempts = n })
}

// WithClient uses client for every request, as it is configured; it
// cannot be combined with WithEndpoint, WithRegion, WithCredentials,
// WithPathStyle or WithRetryMaxAttempts. Default: a client New makes.
func WithClient(client *s3.Client) Option {
	return func(o *options) error { return objstore.SetClient(&o.client, client) }
}

// WithTouchRefresh sets the age above which a blob that Info finds (as an
// export does, for each blob it would write) is copied onto itself with new
// metadata, so that lifecycle rules which expire old objects keep the blobs
// a live cache uses. 0 refreshes every blob found. Default: 24h.
func WithTouchRefresh(d time.Duration) Option { return objstore.TouchRefresh[*options](d) }

// WithReadOnly makes a store that sends no request that writes: no
// upload, no refresh copy, no delete. Writers and Prune (but a dry run)
// fail with errdefs.ErrFailedPrecondition. Default: read and write.
func WithReadOnly() Option { return objstore.ReadOnly[*options] }

// WithMultipartThreshold sets the size from which a blob is uploaded in
// parts. Default: 16 MiB.
func WithMultipartThreshold(n int64) Option {
	return option.InRange(n, 1, math.MaxInt64, "multipart threshold", "positive", func(o *options, n int64) { o.threshold = n })
}

// WithPartSize sets the size of the parts of a multipart upload, at least
// S3's minimum of 5 MiB; it grows for blobs that would need more than
// 10,000 parts. Default: 8 MiB.
func WithPartSize(n int64) Option {
	return option.InRange(n, minPartSize, DefaultMaxCopySize, "part size", "from 5 MiB to 5 GiB", func(o *options, n int64) { o.partSize = n })
}

// WithPartConcurrency sets how many parts of one blob are uploaded at once.
// Blobs themselves go as concurrently as the exporter writes them
// (remotecache.WithConcurrency). Default: 4.
func WithPartConcurrency(n int) Option {
	return option.InRange(n, 1, math.MaxInt, "part concurrency", "at least 1", func(o *options, n int) { o.partConcurrency = n })
}

// WithMaxCopySize sets the largest blob that a refresh copies with one
// CopyObject; larger ones are copied in parts of this size (UploadPartCopy).
// At least 5 MiB. Default: 5 GiB, S3's limit.
func WithMaxCopySize(n int64) Option {
	return option.InRange(n, minPartSize, DefaultMaxCopySize, "max copy size", "from 5 MiB to 5 GiB", func(o *options, n int64) { o.maxCopySize = n })
}

// WithSpoolDir sets the directory where writes larger than 4 MiB are kept
// until they are verified and uploaded. Default: os.TempDir().
func WithSpoolDir(dir string) Option { return objstore.SpoolDir[*options](dir) }

// validate checks what single options cannot.
func (o *options) validate(bucket string) error {
	if bucket == "" {
		return errors.Wrap(errdefs.ErrInvalidArgument, "empty bucket name")
	}
	if strings.Contains(bucket, "/") {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "bucket %q: has a slash (give the rest as WithPrefix)", bucket)
	}
	if err := o.Check(); err != nil {
		return err
	}
	if o.client != nil && (o.endpoint != "" || o.region != "" || o.accessKey != "" || o.pathStyle != nil || o.attempts != 0) {
		return errors.Wrap(errdefs.ErrInvalidArgument, "WithClient cannot be combined with options that configure a client")
	}
	return nil
}
