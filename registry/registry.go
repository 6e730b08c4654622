package registry

import (
	"context"
	"io/fs"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	ctdref "github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/errdefs"
	"github.com/cpuguy83/dockercfg"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

const userAgent = "remotecache"

// Remote is one repository of a registry, at a tag or a digest. It is the
// store a cache is exported to and imported from: a content.Ingester that
// pushes blobs and, under the reference's tag, manifests; a
// content.Provider and content.InfoProvider that read and check blobs; and
// Resolve, which gives the manifest the tag points at.
//
// A Remote is safe for concurrent use. It keeps no connection or state
// between calls but the credentials and tokens the registry gave it.
type Remote struct {
	named    reference.Named // normalized: host, path, tag or digest
	ref      string          // named.String(), what containerd's resolver takes
	spec     ctdref.Spec
	repo     string // path of the repository on the registry
	hosts    docker.RegistryHosts
	host     docker.RegistryHost // where requests go
	resolver remotes.Resolver    // for Resolve and fetches
	opts     options

	known      known        // what the repository is known to have
	listed     known        // what manifests read from it name (KnownInfo)
	monolithic atomic.Int32 // whether a POST with the blob completes an upload
}

var (
	_ content.Ingester                  = (*Remote)(nil)
	_ content.Provider                  = (*Remote)(nil)
	_ content.InfoProvider              = (*Remote)(nil)
	_ interface{ TagsManifests() bool } = (*Remote)(nil)
)

// New returns the repository that ref names: HOST/REPO[:TAG] or
// HOST/REPO@DIGEST, as `docker push` takes it. A reference without a tag
// or digest gets the tag "latest"; one without a host is on Docker Hub.
// New does no I/O.
//
// Unless WithCredentials or WithCredentialsFunc say otherwise, the
// credentials are those the Docker config gives for the registry host: the
// config.json in $DOCKER_CONFIG or ~/.docker, its auths entries and its
// credential helpers (credHelpers, credsStore), read through
// github.com/cpuguy83/dockercfg each time the registry asks for them.
// Without a config file, access is anonymous. Both basic auth and bearer
// tokens are handled (containerd's docker authorizer).
func New(ref string, opts ...Option) (*Remote, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, errors.Wrapf(err, "registry %s", ref)
		}
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "registry reference %q: %v", ref, err)
	}
	named = reference.TagNameOnly(named)
	r := &Remote{named: named, ref: named.String(), opts: o}
	r.spec, err = ctdref.Parse(r.ref)
	if err != nil {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "registry reference %q: %v", ref, err)
	}
	r.repo = reference.Path(named)

	base := o.transport
	if base == nil {
		base = docker.DefaultHTTPTransport(nil)
	}
	client := &http.Client{Transport: &retryAfterTransport{base: base}}
	authorizer := &lockedAuthorizer{a: docker.NewDockerAuthorizer(
		docker.WithAuthClient(client),
		docker.WithAuthHeader(http.Header{"User-Agent": {userAgent}}),
		docker.WithAuthCreds(r.credentials),
	)}
	r.hosts = docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(func(host string) (bool, error) {
			if o.plainHTTP {
				return true, nil
			}
			return docker.MatchLocalhost(host)
		}),
		docker.WithAuthorizer(authorizer),
		docker.WithClient(client),
	)
	hosts, err := r.hosts(reference.Domain(named))
	if err != nil {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "registry reference %q: %v", ref, err)
	}
	r.host = hosts[0]
	r.resolver = r.newResolver()
	return r, nil
}

// newResolver returns a containerd resolver for r. Each push attempt takes
// a new one: the resolver's status tracker remembers what it pushed, and
// would take a manifest pushed before for one that is still under the tag.
func (r *Remote) newResolver() remotes.Resolver {
	return docker.NewResolver(docker.ResolverOptions{
		Hosts:   r.hosts,
		Headers: http.Header{"User-Agent": {userAgent}},
		Tracker: docker.NewInMemoryTracker(),
	})
}

// String returns the normalized reference, such as
// "127.0.0.1:5000/cache:latest" or "docker.io/library/cache:latest".
func (r *Remote) String() string { return r.ref }

// TagsManifests tells the Exporter (remotecache.ManifestTagger) that a
// manifest written here moves the reference's tag: it must be written even
// when the registry already has it. A digest reference has no tag.
func (r *Remote) TagsManifests() bool {
	_, tagged := r.named.(reference.Tagged)
	return tagged
}

// Resolve returns the descriptor of the manifest that the reference's tag
// (or digest) names. A tag that does not exist is an error of class
// errdefs.ErrNotFound.
func (r *Remote) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	var desc ocispec.Descriptor
	err := r.retry(ctx, func(ctx context.Context) error {
		var err error
		_, desc, err = r.resolver.Resolve(ctx, r.ref)
		return err
	})
	if err != nil {
		return ocispec.Descriptor{}, r.wrap(ctx, err, "resolving %s", r.ref)
	}
	return desc, nil
}

// credentials is the authorizer's credentials function. It gives
// credentials only for the registry host itself, never for another host a
// request may have been redirected to.
func (r *Remote) credentials(host string) (string, string, error) {
	if host != r.host.Host {
		return "", "", nil
	}
	if r.opts.creds != nil {
		return r.opts.creds(host)
	}
	return dockerConfigCredentials(host)
}

// dockerConfigCredentials reads the credentials for host from the Docker
// config and its credential helpers.
func dockerConfigCredentials(host string) (string, string, error) {
	cfg, err := dockercfg.LoadDefaultConfig()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", nil
		}
		return "", "", errors.Wrap(err, "reading the Docker config")
	}
	user, secret, err := cfg.GetRegistryCredentials(dockercfg.ResolveRegistryHost(host))
	if err != nil {
		return "", "", errors.Wrapf(err, "credentials for %s from the Docker config", host)
	}
	return user, secret, nil
}

// DefaultConcurrency is how many blobs an export into or out of a
// registry copies at once unless told (remotecache.ConcurrencyAdvisor).
// Each blob costs round trips that only concurrency hides: see
// BENCHMARKS.md for the measurements it was chosen from.
const DefaultConcurrency = 16

// AdvisedConcurrency implements remotecache.ConcurrencyAdvisor: an export
// into or out of a registry copies DefaultConcurrency (16) blobs at once
// unless remotecache.WithConcurrency says otherwise.
func (r *Remote) AdvisedConcurrency() int { return DefaultConcurrency }

// lockedAuthorizer lets one call at a time into containerd's docker
// authorizer. In containerd 2.4 a request that finds a token being fetched
// for its scope reads the token's expiry while the fetch writes it, with
// no lock between (a data race, for every bearer-token registry, as soon
// as uploads run concurrently). A cached token is a map lookup, and
// requests that need a token being fetched wait for it anyway, so the
// lock costs nothing a concurrent export would notice.
type lockedAuthorizer struct {
	mu sync.Mutex
	a  docker.Authorizer
}

func (l *lockedAuthorizer) Authorize(ctx context.Context, req *http.Request) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.a.Authorize(ctx, req)
}

func (l *lockedAuthorizer) AddResponses(ctx context.Context, responses []*http.Response) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.a.AddResponses(ctx, responses)
}
