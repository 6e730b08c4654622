package main

import (
	"context"
	"regexp"
	"strings"

	"github.com/buildcache/remotecache/ocilayout"
	"github.com/buildcache/remotecache/registry"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// A location is where a cache is: oci:DIR[:TAG] or registry:HOST/REPO[:TAG].
// It is parsed, then opened as a source (to read) or a destination (to
// write and tag); each kind of store adds a case to openSource and
// openDestination.
type location struct {
	scheme string // schemeOCI or schemeRegistry
	path   string // the directory, or HOST/REPO
	tag    string
}

const (
	schemeOCI      = "oci"
	schemeRegistry = "registry"
	defaultTag     = "latest"
)

func (l location) String() string { return l.scheme + ":" + l.path + ":" + l.tag }

// tagPattern is a whole tag as the OCI distribution spec allows it:
// distribution/reference's pattern (unanchored, made to match within a
// reference), anchored.
var tagPattern = regexp.MustCompile(`^(?:` + reference.TagRegexp.String() + `)$`)

// parseLocation parses oci:DIR[:TAG] or registry:HOST/REPO[:TAG]. A colon
// in DIR is allowed where what follows the last colon has a slash (so is
// not a tag); in HOST/REPO, a tag is what follows a colon after the last
// slash (HOST may have a port).
func parseLocation(s string) (location, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return location{}, errors.Errorf("%q: want oci:DIR[:TAG] or registry:HOST/REPO[:TAG]", s)
	case scheme != schemeOCI && scheme != schemeRegistry:
		return location{}, errors.Errorf("%q: unknown kind of location %q (want oci: or registry:)", s, scheme)
	}
	l := location{scheme: scheme, path: rest, tag: defaultTag}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		l.path, l.tag = rest[:i], rest[i+1:]
		if !tagPattern.MatchString(l.tag) {
			return location{}, errors.Errorf("%q: invalid tag %q", s, l.tag)
		}
	}
	if scheme == schemeRegistry {
		host, repo, _ := strings.Cut(l.path, "/")
		if host == "" || repo == "" || strings.Contains(l.path, "@") {
			return location{}, errors.Errorf("%q: want registry:HOST/REPO[:TAG]", s)
		}
	} else if l.path == "" {
		return location{}, errors.Errorf("%q: no directory", s)
	}
	return l, nil
}

// parseLocations parses every argument, or returns a usage error for the
// first that does not parse.
func parseLocations(args []string) ([]location, error) {
	locs := make([]location, len(args))
	for i, a := range args {
		l, err := parseLocation(a)
		if err != nil {
			return nil, usagef(nil, "%v", err)
		}
		locs[i] = l
	}
	return locs, nil
}

// A source is a cache to read from: a store of blobs and the manifest that
// the location's tag names.
type source interface {
	content.Provider
	manifest(ctx context.Context) (ocispec.Descriptor, error)
	Close() error
}

// A destination is a store to export a cache into and tag.
type destination interface {
	content.Ingester
	tag(ctx context.Context, desc ocispec.Descriptor) error
	Close() error
}

// openSource opens l to read. An OCI layout is opened read-only: nothing
// is written into it, not even a lock file.
func openSource(ctx context.Context, l location) (source, error) {
	return open(ctx, l, ocilayout.WithReadOnly())
}

// openDestination opens l to write, making an OCI layout if there is none.
// It waits for a prune of the layout in progress as long as ctx allows.
func openDestination(ctx context.Context, l location) (destination, error) {
	return open(ctx, l)
}

// A store is both: every kind of location is.
type store interface {
	source
	destination
}

// open opens l; opts apply to an OCI layout.
func open(ctx context.Context, l location, opts ...ocilayout.Option) (store, error) {
	switch l.scheme {
	case schemeOCI:
		s, err := ocilayout.OpenContext(ctx, l.path, opts...)
		if err != nil {
			return nil, err
		}
		return ociStore{Store: s, name: l.tag}, nil
	case schemeRegistry:
		r, err := openRegistry(l)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, errors.Errorf("%s: unknown kind of location", l)
}

// ociStore is an OCI layout and one of its tags. Embedding the Store keeps
// its InfoProvider and IngestManager methods visible to the exporter.
type ociStore struct {
	*ocilayout.Store
	name string
}

func (s ociStore) manifest(ctx context.Context) (ocispec.Descriptor, error) {
	return s.Resolve(ctx, s.name)
}

func (s ociStore) tag(ctx context.Context, desc ocispec.Descriptor) error {
	return s.Tag(ctx, s.name, desc)
}

// registryRepo is a repository of a registry at the location's tag. It
// pushes manifests under that tag: the exporter's last write, the
// manifest, is what moves the tag, so tag has nothing left to do.
type registryRepo struct {
	*registry.Remote
}

// openRegistry opens l, a registry location. Loopback hosts are reached
// over plain HTTP, others over HTTPS, with the Docker config's credentials.
// Nothing is sent until the first read or write.
func openRegistry(l location) (registryRepo, error) {
	r, err := registry.New(l.path + ":" + l.tag)
	if err != nil {
		return registryRepo{}, err
	}
	return registryRepo{r}, nil
}

func (r registryRepo) manifest(ctx context.Context) (ocispec.Descriptor, error) {
	return r.Resolve(ctx)
}

func (registryRepo) tag(context.Context, ocispec.Descriptor) error { return nil }

func (registryRepo) Close() error { return nil }
