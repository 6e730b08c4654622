package azblob

import (
	"math"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/containerd/errdefs"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/objstore"
	"github.com/buildcache/remotecache/internal/option"
)

// Defaults of the options, BuildKit's where BuildKit has the setting.
const (
	// DefaultContainer is the container of a store New is given "" for,
	// as in BuildKit.
	DefaultContainer = "buildkit-cache"
	// DefaultManifestsPrefix is the directory of the cache configs, under
	// the prefix.
	DefaultManifestsPrefix = "manifests"
	// DefaultBlobsPrefix is the directory of the layer blobs, under the
	// prefix.
	DefaultBlobsPrefix = "blobs"
	// DefaultName is the name of the cache config.
	DefaultName = "buildkit"
	// DefaultTouchRefresh is the age above which a blob an export finds is
	// refreshed, so that lifecycle rules keep it.
	DefaultTouchRefresh = 24 * time.Hour
	// DefaultBlockSize is the size of the blocks a blob larger than it is
	// staged in (BuildKit's IOChunkSize); a blob up to this size goes in
	// one request.
	DefaultBlockSize = 32 << 20
	// DefaultBlockConcurrency is how many blocks of one blob are staged
	// at once (BuildKit's IOConcurrency).
	DefaultBlockConcurrency = 4

	// minBlockSize bounds WithBlockSize from below, so that a blob never
	// needs absurdly many requests.
	minBlockSize = 1 << 20
	// maxBlockSize is the largest block Azure stages.
	maxBlockSize = 4000 << 20
	// maxBlocks is the most blocks a block blob has.
	maxBlocks = 50000
)

// EnvConnectionString is the environment variable that New reads a
// connection string from when no option names an account.
const EnvConnectionString = "AZURE_STORAGE_CONNECTION_STRING"

// options are the settings of every object store (prefixes, names,
// touch refresh, read-only, spool directory) and Azure's own.
type options struct {
	objstore.Options

	accountURL        string
	connectionString  string
	accountName       string
	accountKey        string
	defaultCredential bool
	clientOptions     *azblob.ClientOptions
	client            *azblob.Client

	createContainer  *bool
	blockSize        int64
	blockConcurrency int
}

func defaultOptions() options {
	return options{
		Options:          objstore.DefaultOptions(DefaultManifestsPrefix, DefaultBlobsPrefix),
		blockSize:        DefaultBlockSize,
		blockConcurrency: DefaultBlockConcurrency,
	}
}

// Option configures New.
type Option func(*options) error

// WithPrefix sets the directory of the cache in the container. Blob names
// are joined as paths, as BuildKit joins them: a prefix "ci" or "ci/" puts
// the configs at "ci/manifests/NAME". It must not start with "/" or hold a
// ".." element. Default: "" (the container's root).
func WithPrefix(prefix string) Option {
	return func(o *options) error { return setDir(&o.Prefix, "prefix", prefix) }
}

// WithManifestsPrefix sets the directory of the cache configs under the
// prefix (BuildKit's manifests_prefix). Default: "manifests".
func WithManifestsPrefix(prefix string) Option {
	return func(o *options) error { return setDir(&o.ManifestsPrefix, "manifests prefix", prefix) }
}

// WithBlobsPrefix sets the directory of the layer blobs under the prefix
// (BuildKit's blobs_prefix), each named by its digest ("sha256:…").
// Default: "blobs".
func WithBlobsPrefix(prefix string) Option {
	return func(o *options) error { return setDir(&o.BlobsPrefix, "blobs prefix", prefix) }
}

// setDir sets *dst to dir as cleanDir leaves it.
func setDir(dst *string, what, dir string) error {
	d, err := cleanDir(what, dir)
	if err != nil {
		return err
	}
	*dst = d
	return nil
}

// cleanDir returns dir as path.Join leaves it ("" for the root), or
// refuses what would leave the container's tree or could not be written
// in a location: a leading "/", a ".." element.
func cleanDir(what, dir string) (string, error) {
	if strings.HasPrefix(dir, "/") {
		return "", errors.Wrapf(errdefs.ErrInvalidArgument, "%s %q: starts with /", what, dir)
	}
	for _, elem := range strings.Split(dir, "/") {
		if elem == ".." {
			return "", errors.Wrapf(errdefs.ErrInvalidArgument, "%s %q: has a .. element", what, dir)
		}
	}
	if dir = path.Clean(dir); dir == "." {
		dir = ""
	}
	return dir, nil
}

// WithNames sets the names of the cache config (BuildKit's name=a;b): an
// export writes the config under every name, Resolve reads the first. A
// name may hold slashes (a path under the manifests directory), not a ".."
// element, nor be empty. Default: "buildkit".
func WithNames(names ...string) Option {
	return objstore.Names[*options](names, func(n string) (string, error) { return cleanDir("cache name", n) })
}

// WithAccountURL sets the URL of the storage account's blob service
// ("https://ACCOUNT.blob.core.windows.net", or
// "http://127.0.0.1:10000/devstoreaccount1" for Azurite), BuildKit's
// account_url. Its credentials are WithSharedKey's, else a shared access
// signature in the URL's query, else the SDK's default credential (see
// WithDefaultCredential). Default: the account of the connection string.
func WithAccountURL(accountURL string) Option {
	return func(o *options) error {
		u, err := url.Parse(accountURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "account URL %q: not an http or https URL", redactURL(accountURL))
		}
		o.accountURL = accountURL
		return nil
	}
}

// WithConnectionString sets the storage account's connection string
// (AccountName, AccountKey or SharedAccessSignature, BlobEndpoint or
// EndpointSuffix, …), as the Azure portal and Azurite give it. Default:
// $AZURE_STORAGE_CONNECTION_STRING, when neither WithAccountURL nor
// WithSharedKey is given.
func WithConnectionString(s string) Option {
	return func(o *options) error {
		if s == "" {
			return errors.Wrap(errdefs.ErrInvalidArgument, "empty connection string")
		}
		o.connectionString = s
		return nil
	}
}

// WithSharedKey signs requests with the account's name and one of its
// access keys (base64, BuildKit's account_name and secret_access_key).
// Without WithAccountURL the account URL is
// https://ACCOUNT.blob.core.windows.net. Default: no shared key.
func WithSharedKey(accountName, accountKey string) Option {
	return func(o *options) error {
		if accountName == "" || accountKey == "" {
			return errors.Wrap(errdefs.ErrInvalidArgument, "a shared key needs an account name and a key")
		}
		o.accountName, o.accountKey = accountName, accountKey
		return nil
	}
}

// WithDefaultCredential authenticates with the Azure SDK's default
// credential chain (azidentity.NewDefaultAzureCredential: environment,
// workload identity, managed identity, Azure CLI, …), as BuildKit does
// when it has no secret_access_key. It needs WithAccountURL. Default: the
// default credential for an account URL without a shared key or a shared
// access signature.
func WithDefaultCredential() Option {
	return func(o *options) error {
		o.defaultCredential = true
		return nil
	}
}

// WithClientOptions sets the options of the SDK client New makes: retries
// (policy.RetryOptions; the SDK's default is 3 retries from 800ms on),
// transport, logging. Default: the SDK's.
func WithClientOptions(opts *azblob.ClientOptions) Option {
	return func(o *options) error {
		if opts == nil {
			return errors.Wrap(errdefs.ErrInvalidArgument, "nil client options")
		}
		c := *opts
		o.clientOptions = &c
		return nil
	}
}

// WithClient uses client for every request, as it is configured; it
// cannot be combined with the options that make a client (WithAccountURL,
// WithConnectionString, WithSharedKey, WithDefaultCredential,
// WithClientOptions). Default: a client New makes.
func WithClient(client *azblob.Client) Option {
	return func(o *options) error { return objstore.SetClient(&o.client, client) }
}

// WithTouchRefresh sets the age above which a blob that Info finds (as an
// export does, for each blob it would write) is refreshed: its metadata is
// set again, which gives it a new Last-Modified time, so that lifecycle
// rules which delete blobs by age keep the blobs a live cache uses. 0
// refreshes every blob found. BuildKit's azblob exporter has no such
// setting (its s3 exporter's touch_refresh). Default: 24h.
func WithTouchRefresh(d time.Duration) Option { return objstore.TouchRefresh[*options](d) }

// WithReadOnly makes a store that sends no request that writes: no
// upload, no refresh, no delete, no container creation. Writers and
// Prune (but a dry run) fail with errdefs.ErrFailedPrecondition. Default:
// read and write.
func WithReadOnly() Option { return objstore.ReadOnly[*options] }

// WithCreateContainer says whether a write into a container that does
// not exist creates it (as BuildKit's exporter does) and is made again.
// A read-only store never creates one: WithCreateContainer(true) with
// WithReadOnly is refused. Default: true, false for a read-only store.
func WithCreateContainer(on bool) Option {
	return func(o *options) error {
		o.createContainer = &on
		return nil
	}
}

// WithBlockSize sets the size up to which a blob is uploaded with one
// request (Put Blob), and the size of the blocks a larger one is staged
// in (Put Block, then Put Block List, which makes it visible at once);
// it grows for blobs that would need more than 50,000 blocks. From 1 MiB
// to 4000 MiB. Default: 32 MiB, BuildKit's.
func WithBlockSize(n int64) Option {
	return option.InRange(n, minBlockSize, maxBlockSize, "block size", "from 1 MiB to 4000 MiB", func(o *options, n int64) { o.blockSize = n })
}

// WithBlockConcurrency sets how many blocks of one blob are staged at
// once. Blobs themselves go as concurrently as the exporter writes them
// (remotecache.WithConcurrency). Default: 4, BuildKit's.
func WithBlockConcurrency(n int) Option {
	return option.InRange(n, 1, math.MaxInt, "block concurrency", "at least 1", func(o *options, n int) { o.blockConcurrency = n })
}

// WithSpoolDir sets the directory where writes larger than 4 MiB are kept
// until they are verified and uploaded. Default: os.TempDir().
func WithSpoolDir(dir string) Option { return objstore.SpoolDir[*options](dir) }

// validate checks what single options cannot.
func (o *options) validate(container string) error {
	if err := validContainer(container); err != nil {
		return err
	}
	if err := o.Check(); err != nil {
		return err
	}
	if o.client != nil && (o.accountURL != "" || o.connectionString != "" || o.accountKey != "" || o.defaultCredential || o.clientOptions != nil) {
		return errors.Wrap(errdefs.ErrInvalidArgument, "WithClient cannot be combined with options that make a client")
	}
	if o.connectionString != "" && (o.accountURL != "" || o.accountKey != "" || o.defaultCredential) {
		return errors.Wrap(errdefs.ErrInvalidArgument, "a connection string names its account and credentials: WithConnectionString cannot be combined with WithAccountURL, WithSharedKey or WithDefaultCredential")
	}
	if o.defaultCredential && o.accountKey != "" {
		return errors.Wrap(errdefs.ErrInvalidArgument, "WithDefaultCredential and WithSharedKey are two credentials: give one")
	}
	if o.defaultCredential && o.accountURL == "" {
		return errors.Wrap(errdefs.ErrInvalidArgument, "WithDefaultCredential needs WithAccountURL")
	}
	if o.ReadOnly && o.createContainer != nil && *o.createContainer {
		return errors.Wrap(errdefs.ErrInvalidArgument, "a read-only store never creates its container: WithCreateContainer(true) with WithReadOnly")
	}
	return nil
}

// validContainer checks a container name against Azure's rules: 3 to 63
// lowercase letters, digits and single hyphens, starting and ending with
// a letter or digit; or "$root". Its message says what to do with a
// path.
func validContainer(name string) error {
	if strings.Contains(name, "/") {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "container %q: has a slash (give the rest as WithPrefix)", name)
	}
	if name == "$root" {
		return nil
	}
	bad := len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' || strings.Contains(name, "--")
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			bad = true
		}
	}
	if bad {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "container %q: not a container name (3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit)", name)
	}
	return nil
}

// redactURL drops the query of a URL, where a shared access signature
// would be, so that it can be shown.
func redactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i] + "?…"
	}
	return s
}
