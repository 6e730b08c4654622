package objstore

import (
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/pkg/errors"
)

// Defaults the object stores share, BuildKit's where BuildKit has the
// setting.
const (
	// DefaultName is the name of the cache config.
	DefaultName = "buildkit"
	// DefaultTouchRefresh is the age above which a blob an export finds
	// is refreshed.
	DefaultTouchRefresh = 24 * time.Hour
	// DefaultGracePeriod is the least age under which Prune keeps every
	// blob by default (see Prune: the touch refresh age, if larger).
	DefaultGracePeriod = time.Hour
)

// Options are the settings every object store has. Each store embeds
// them in its own options and sets them through its option functions,
// with the setters below where the rule is the same for all.
type Options struct {
	// Prefix, ManifestsPrefix and BlobsPrefix are as the user gave
	// them (cleaned as the store joins keys): String shows Prefix.
	Prefix, ManifestsPrefix, BlobsPrefix string
	// Names are the cache names, the first of which Resolve reads.
	Names []string
	// TouchRefresh is the age above which Info refreshes a blob.
	TouchRefresh time.Duration
	// ReadOnly stores send no request that writes.
	ReadOnly bool
	// SpoolDir is where writes over 4 MiB are kept until Commit
	// (New's default: os.TempDir()).
	SpoolDir string
}

// DefaultOptions returns the defaults, with the store's default
// manifests and blobs prefixes.
func DefaultOptions(manifestsPrefix, blobsPrefix string) Options {
	return Options{
		ManifestsPrefix: manifestsPrefix,
		BlobsPrefix:     blobsPrefix,
		Names:           []string{DefaultName},
		TouchRefresh:    DefaultTouchRefresh,
	}
}

// Embedder is a store's options, which embed Options: the option
// functions below work on it.
type Embedder interface{ base() *Options }

func (o *Options) base() *Options { return o }

// Names returns the option that sets the cache names (SetNames).
func Names[O Embedder](names []string, clean func(string) (string, error)) func(O) error {
	return func(o O) error { return o.base().SetNames(names, clean) }
}

// TouchRefresh returns the option that sets the touch refresh age
// (SetTouchRefresh).
func TouchRefresh[O Embedder](d time.Duration) func(O) error {
	return func(o O) error { return o.base().SetTouchRefresh(d) }
}

// ReadOnly is the option of a store that sends no request that writes.
func ReadOnly[O Embedder](o O) error {
	o.base().ReadOnly = true
	return nil
}

// SpoolDir returns the option that sets the spool directory
// (SetSpoolDir).
func SpoolDir[O Embedder](dir string) func(O) error {
	return func(o O) error { return o.base().SetSpoolDir(dir) }
}

// SetClient sets a store's SDK client, refusing nil.
func SetClient[C any](dst **C, client *C) error {
	if client == nil {
		return errors.Wrap(errdefs.ErrInvalidArgument, "nil client")
	}
	*dst = client
	return nil
}

// SetNames sets the cache names, refusing none and empty ones. clean, if
// not nil, returns a name as the store will join it, or refuses it; a
// name that it cleans to "" is empty. The names are kept as given.
func (o *Options) SetNames(names []string, clean func(string) (string, error)) error {
	if len(names) == 0 {
		return errors.Wrap(errdefs.ErrInvalidArgument, "no cache name")
	}
	for _, n := range names {
		if clean != nil {
			var err error
			if n, err = clean(n); err != nil {
				return err
			}
		}
		if n == "" {
			return errors.Wrapf(errdefs.ErrInvalidArgument, "empty cache name in %q", strings.Join(names, ";"))
		}
	}
	o.Names = append([]string(nil), names...)
	return nil
}

// SetTouchRefresh sets the touch refresh age, refusing a negative one.
func (o *Options) SetTouchRefresh(d time.Duration) error {
	if d < 0 {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "touch refresh %v: negative", d)
	}
	o.TouchRefresh = d
	return nil
}

// SetSpoolDir sets the spool directory, which must be a directory.
func (o *Options) SetSpoolDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "spool directory: %v", err)
	}
	if !fi.IsDir() {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "spool directory %s: not a directory", dir)
	}
	o.SpoolDir = dir
	return nil
}

// Check checks what the single settings cannot: the configs and the blobs
// need places of their own.
func (o *Options) Check() error {
	if o.ManifestsPrefix == o.BlobsPrefix {
		return errors.Wrapf(errdefs.ErrInvalidArgument, "manifests prefix and blobs prefix are both %q", o.BlobsPrefix)
	}
	return nil
}
