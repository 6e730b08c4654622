package main

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/ocilayout"
	"github.com/buildcache/remotecache/registry"
	"github.com/buildcache/remotecache/s3"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"github.com/spf13/cobra"
)

// A location is where a cache is: oci:DIR[:TAG], registry:HOST/REPO[:TAG],
// s3:BUCKET[/PREFIX][:NAME] or azblob:CONTAINER[/PREFIX][:NAME]. It is parsed, then opened as a source (to
// read) or a destination (to write and tag); each kind of store adds a
// case to parseLocation and open.
type location struct {
	scheme string // schemeOCI, schemeRegistry, schemeS3 or schemeAzblob
	path   string // the directory, HOST/REPO, the bucket or the container
	prefix string // of an object store: the string every key starts with
	tag    string // the tag, or an object store's names joined with ";"
}

const (
	schemeOCI      = "oci"
	schemeRegistry = "registry"
	schemeS3       = "s3"
	schemeAzblob   = "azblob"
	defaultTag     = "latest"
	// defaultName is the name of a cache in an object store, BuildKit's.
	defaultName = "buildkit"
)

const locationForms = "oci:DIR[:TAG], registry:HOST/REPO[:TAG], s3:BUCKET[/PREFIX][:NAME] or azblob:CONTAINER[/PREFIX][:NAME]"

// schemes are the kinds of location.
var schemes = []string{schemeOCI, schemeRegistry, schemeS3, schemeAzblob}

func (l location) String() string {
	if l.objectStore() {
		s := l.scheme + ":" + l.path
		if l.prefix != "" {
			s += "/" + l.prefix
		}
		return s + ":" + l.tag
	}
	return l.scheme + ":" + l.path + ":" + l.tag
}

// objectStore tells whether l is in an object store, which takes the
// config-only form and nothing else.
func (l location) objectStore() bool { return l.scheme == schemeS3 || l.scheme == schemeAzblob }

// names are the names of an object store's cache.
func (l location) names() []string { return strings.Split(l.tag, ";") }

// tagPattern is a whole tag as the OCI distribution spec allows it:
// distribution/reference's pattern (unanchored, made to match within a
// reference), anchored.
var tagPattern = regexp.MustCompile(`^(?:` + reference.TagRegexp.String() + `)$`)

// bucketPattern is what a bucket name may be made of. S3 asks for more
// (3 to 63 lowercase characters, no ".." and so on), and says so itself;
// this only keeps out what cannot be one at all.
var bucketPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// parseLocation parses a location. A colon in DIR is allowed where what
// follows the last colon has a slash (so is not a tag); in HOST/REPO, a
// tag is what follows a colon after the last slash (HOST may have a
// port); in an object store's location, NAME is what follows the last
// colon when it has no slash, and PREFIX is everything between the first
// slash and it, kept as it is: BuildKit's s3 cache joins it to the keys as
// a plain string ("ci/" is a directory, "ci" a prefix of names), its
// azblob cache as a path ("ci" and "ci/" are one directory).
func parseLocation(s string) (location, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return location{}, errors.Errorf("%q: want %s", s, locationForms)
	case !slices.Contains(schemes, scheme):
		return location{}, errors.Errorf("%q: unknown kind of location %q (want oci:, registry:, s3: or azblob:)", s, scheme)
	}
	l := location{scheme: scheme, path: rest, tag: defaultTag}
	if l.objectStore() {
		l.tag = defaultName
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		l.path, l.tag = rest[:i], rest[i+1:]
		if l.objectStore() {
			for _, n := range l.names() {
				if n == "" {
					return location{}, errors.Errorf("%q: empty name in %q", s, l.tag)
				}
			}
		} else if !tagPattern.MatchString(l.tag) {
			return location{}, errors.Errorf("%q: invalid tag %q", s, l.tag)
		}
	}
	switch scheme {
	case schemeRegistry:
		host, repo, _ := strings.Cut(l.path, "/")
		if host == "" || repo == "" || strings.Contains(l.path, "@") {
			return location{}, errors.Errorf("%q: want registry:HOST/REPO[:TAG]", s)
		}
	case schemeS3, schemeAzblob:
		l.path, l.prefix, _ = strings.Cut(l.path, "/")
		if !bucketPattern.MatchString(l.path) {
			what := "s3:BUCKET[/PREFIX][:NAME] with a bucket name"
			if scheme == schemeAzblob {
				what = "azblob:CONTAINER[/PREFIX][:NAME] with a container name"
			}
			return location{}, errors.Errorf("%q: want %s", s, what)
		}
	default:
		if l.path == "" {
			return location{}, errors.Errorf("%q: no directory", s)
		}
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
			return nil, usagef("%v", err)
		}
		locs[i] = l
	}
	return locs, nil
}

// A source is a cache to read from: a store of blobs and the manifest that
// the location's tag names (in an object store, the cache config under
// its first name).
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

// openDestination opens l to write, making an OCI layout if there is none.
// It waits for a prune of the layout in progress as long as ctx allows.
func openDestination(ctx context.Context, l location) (destination, error) {
	return open(ctx, l, false)
}

// openTagged opens l, read-only if asked, and resolves the manifest its
// tag names. Close the store when done with it; on an error it is closed.
// Read-only, nothing is written into l: an OCI layout is opened read-only
// (not even a lock file), and so is a bucket (no refresh of the blobs an
// export finds there).
func openTagged(ctx context.Context, l location, readOnly bool) (store, ocispec.Descriptor, error) {
	st, err := open(ctx, l, readOnly)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	desc, err := st.manifest(ctx)
	if err != nil {
		st.Close()
		return nil, ocispec.Descriptor{}, err
	}
	return st, desc, nil
}

// A store is both: every kind of location is.
type store interface {
	source
	destination
}

// open opens l, read-only if asked.
func open(ctx context.Context, l location, readOnly bool) (store, error) {
	switch l.scheme {
	case schemeOCI:
		var opts []ocilayout.Option
		if readOnly {
			opts = append(opts, ocilayout.WithReadOnly())
		}
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
	case schemeS3:
		s, err := openS3(ctx, l, readOnly)
		if err != nil {
			return nil, err
		}
		return s3Store{s}, nil
	case schemeAzblob:
		s, err := openAzblob(ctx, l, readOnly)
		if err != nil {
			return nil, err
		}
		return azblobStore{s}, nil
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

// s3Store is a cache in a bucket under its names. Writing the cache
// config, the exporter's last write, is what moves the names.
type s3Store struct {
	*s3.Store
}

// openS3 opens l, an s3 location, with the endpoint, region and
// credentials of the AWS SDK's environment and shared files. Nothing is
// sent until the first read or write.
func openS3(ctx context.Context, l location, readOnly bool) (*s3.Store, error) {
	opts := []s3.Option{s3.WithPrefix(l.prefix), s3.WithNames(l.names()...)}
	if readOnly {
		opts = append(opts, s3.WithReadOnly())
	}
	return s3.New(ctx, l.path, opts...)
}

func (s s3Store) manifest(ctx context.Context) (ocispec.Descriptor, error) {
	return s.Resolve(ctx)
}

func (s3Store) tag(context.Context, ocispec.Descriptor) error { return nil }

func (s3Store) Close() error { return nil }

// azblobStore is a cache in an Azure Blob Storage container under its
// names. Writing the cache config, the exporter's last write, is what
// moves the names.
type azblobStore struct {
	*azblob.Store
}

// The environment azblob: locations are configured by, as the Azure CLI
// reads it.
const (
	envAzureAccount  = "AZURE_STORAGE_ACCOUNT"
	envAzureKey      = "AZURE_STORAGE_KEY"
	envAzureSASToken = "AZURE_STORAGE_SAS_TOKEN"
)

// openAzblob opens l, an azblob location, with the account and
// credentials of the environment: $AZURE_STORAGE_CONNECTION_STRING; else
// the account $AZURE_STORAGE_ACCOUNT with its key $AZURE_STORAGE_KEY, or a
// shared access signature $AZURE_STORAGE_SAS_TOKEN, or else the Azure
// SDK's default credential (environment, workload and managed identity,
// the Azure CLI's login). Nothing is sent until the first read or write.
func openAzblob(ctx context.Context, l location, readOnly bool) (*azblob.Store, error) {
	opts := []azblob.Option{azblob.WithPrefix(l.prefix), azblob.WithNames(l.names()...)}
	if readOnly {
		opts = append(opts, azblob.WithReadOnly())
	}
	if account := os.Getenv(envAzureAccount); account != "" && os.Getenv(azblob.EnvConnectionString) == "" {
		accountURL := "https://" + account + ".blob.core.windows.net/"
		switch key, sas := os.Getenv(envAzureKey), os.Getenv(envAzureSASToken); {
		case key != "":
			opts = append(opts, azblob.WithSharedKey(account, key))
		case sas != "":
			opts = append(opts, azblob.WithAccountURL(accountURL+"?"+strings.TrimPrefix(sas, "?")))
		default:
			opts = append(opts, azblob.WithAccountURL(accountURL), azblob.WithDefaultCredential())
		}
	}
	return azblob.New(ctx, l.path, opts...)
}

func (s azblobStore) manifest(ctx context.Context) (ocispec.Descriptor, error) {
	return s.Resolve(ctx)
}

func (azblobStore) tag(context.Context, ocispec.Descriptor) error { return nil }

func (azblobStore) Close() error { return nil }

// completeLocations completes a location argument: the kinds of location
// first; after the colon, what the shell completes by default (files).
func completeLocations(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if strings.Contains(toComplete, ":") {
		return nil, cobra.ShellCompDirectiveDefault
	}
	var kinds []cobra.Completion
	for _, k := range schemes {
		if strings.HasPrefix(k+":", toComplete) {
			kinds = append(kinds, k+":")
		}
	}
	return kinds, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}
