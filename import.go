package remotecache

import (
	"bytes"
	"context"
	_ "crypto/sha256" // digests of manifests and configs; validateDigest's fast path
	"io"
	"math"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/errclass"
	"github.com/buildcache/remotecache/internal/option"
)

// DefaultMaxBlobSize is the default limit on the size of the manifest and of
// the cache config that Import reads: far above the 1 MiB that BuildKit's
// importer accepts, low enough that a hostile descriptor cannot make Import
// allocate without bound.
const DefaultMaxBlobSize = 64 << 20

type importOptions struct {
	maxBlobSize int64
}

// ImportOption configures Import.
type ImportOption func(*importOptions) error

// newImportOptions applies opts for the operation op, which reads from
// provider.
func newImportOptions(op string, provider content.Provider, opts []ImportOption) (importOptions, error) {
	o := importOptions{maxBlobSize: DefaultMaxBlobSize}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, errors.Wrap(err, op)
		}
	}
	if provider == nil {
		return o, errors.Wrapf(errdefs.ErrInvalidArgument, "%s: nil provider", op)
	}
	return o, nil
}

// WithMaxBlobSize sets the largest manifest and cache config, in bytes, that
// Import reads. Default: DefaultMaxBlobSize (64 MiB); n must be at least 1.
func WithMaxBlobSize(n int64) ImportOption {
	return option.InRange(n, 1, math.MaxInt64, "max blob size", "at least 1", func(o *importOptions, n int64) { o.maxBlobSize = n })
}

// Import reads the cache that the manifest desc points at and adds its
// records to t, dependencies first.
//
// The manifest may be any of the three forms Finalize writes (an OCI image
// manifest whose config is the cache config, an OCI image index or a Docker
// manifest list listing the layers and the cache config), or a Docker image
// manifest, which BuildKit reads too. The form is read from the blob (its
// mediaType field, checked against its shape), not from desc.MediaType. The manifest and the config are
// checked against their descriptors' size and digest, and must not be
// larger than the limit that WithMaxBlobSize sets. Layer blobs are not read:
// each result's Remote serves them from provider.
//
// Bad input is an error of class errdefs.ErrInvalidArgument, a missing
// blob or cache config one of class errdefs.ErrNotFound, a blob whose size
// or digest is not its descriptor's one of class
// errdefs.ErrFailedPrecondition (as everywhere in this module); each says
// which blob, record or layer is at fault.
func Import(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, t Target, opts ...ImportOption) (err error) {
	defer ensureClass(&err)
	o, err := newImportOptions("import", provider, opts)
	if err != nil {
		return err
	}
	if t == nil {
		return errors.Wrap(errdefs.ErrInvalidArgument, "import: nil target")
	}

	m, cfg, err := readTop(ctx, provider, desc, o)
	if err != nil {
		return err
	}
	if m.Format == FormatConfigOnly {
		dp, _, err := configDescriptors(cfg, provider)
		if err != nil {
			return errors.Wrapf(err, "cache config %s", desc.Digest)
		}
		return errors.Wrapf(parseConfig(cfg, dp, t), "cache config %s", desc.Digest)
	}
	configDesc := m.Config
	cdt, err := readBlob(ctx, provider, configDesc, o.maxBlobSize, "cache config")
	if err != nil {
		return errors.Wrapf(err, "manifest %s", desc.Digest)
	}

	dp := m.Descriptors(provider)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := Parse(cdt, dp, t); err != nil {
		return errors.Wrapf(err, "manifest %s: cache config %s", desc.Digest, configDesc.Digest)
	}
	return nil
}

// readBlob reads the blob desc, of at most max bytes, and checks that the
// provider's bytes are the descriptor's. what names the blob in errors.
func readBlob(ctx context.Context, p content.Provider, desc ocispec.Descriptor, max int64, what string) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, invalidf(err, "%s descriptor: digest %q", what, desc.Digest)
	}
	if desc.Size < 0 {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "%s %s: negative size %d", what, desc.Digest, desc.Size)
	}
	if desc.Size > max {
		return nil, errors.Wrapf(errdefs.ErrInvalidArgument, "%s %s: size %d is over the limit of %d bytes", what, desc.Digest, desc.Size, max)
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, errors.Wrapf(err, "reading %s %s", what, desc.Digest)
	}
	defer ra.Close()
	if n := ra.Size(); n != desc.Size {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "%s %s: store has %d bytes, descriptor says %d", what, desc.Digest, n, desc.Size)
	}
	buf := make([]byte, desc.Size)
	if n, err := ra.ReadAt(buf, 0); n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, errors.Wrapf(err, "reading %s %s at offset %d", what, desc.Digest, n)
	}
	if got := desc.Digest.Algorithm().FromBytes(buf); got != desc.Digest {
		return nil, errors.Wrapf(errdefs.ErrFailedPrecondition, "%s %s: store has bytes of digest %s", what, desc.Digest, got)
	}
	return buf, nil
}

// Parse adds the records of the cache config configJSON to t, each after
// the records its inputs link from, and returns the first error. Results
// are read from both forms of the config (a top layer with its parents, or
// a list of layers); each becomes a Result whose Remote lists the layer
// descriptors from provider, base first, and reads them from provider. A
// result with a blob that provider does not have is dropped, its record
// kept. Results on one layer chain share its descriptors' array (each
// slice's capacity is cut to its length, so appending copies): a Target
// must not change the descriptors in place.
//
// When t does not export a record (Add returns false), its links are
// dropped from the records that link from it; a record left with an empty
// input slot is then not added either.
//
// Bad input is an error of class errdefs.ErrInvalidArgument that names the
// record or layer at fault: a malformed config, an invalid digest, an index
// out of range, an empty input slot, a loop among records or among layers.
// Parse uses no recursion, so chains of any depth work. It calls t's Add
// on the caller's goroutine only, one call at a time, but reads provider
// on other goroutines too (see parser.go): provider must not change until
// Parse returns.
func Parse(configJSON []byte, provider DescriptorProvider, t Target) (err error) {
	defer ensureClass(&err)
	if t == nil {
		return errors.Wrap(errdefs.ErrInvalidArgument, "parse: nil target")
	}
	// Unmarshal appends to a slice with room: sizing the two big slices
	// saves regrowing them. Each "digest" key has one 'g' and each "blob"
	// key one 'o', letters that no hex digest and no other key of the
	// format but "selector" and "records" has, so counting them (a fast
	// single-byte count) bounds the number of records and layers. The
	// bound is capped by how many valid entries fit in the input, so that
	// a hostile input cannot make this allocate much more than its size.
	maxEntries := len(configJSON) / minEntryJSON
	cfg := CacheConfig{
		Layers:  make([]CacheLayer, 0, min(bytes.Count(configJSON, []byte{'o'}), maxEntries)),
		Records: make([]CacheRecord, 0, min(bytes.Count(configJSON, []byte{'g'}), maxEntries)),
	}
	return parseJSON(configJSON, &cfg, provider, t)
}

// ParseConfig is Parse of a config already decoded (by ReadConfig, or made
// by Trim): it adds cfg's records to t, with the same checks and rules,
// without encoding cfg again. cfg is only read; a nil cfg is an error of
// class errdefs.ErrInvalidArgument. To write a trimmed config, give it to
// an Exporter with the layer descriptors of the cache it came from
// (Manifest.Descriptors) and Finalize.
func ParseConfig(cfg *CacheConfig, provider DescriptorProvider, t Target) (err error) {
	defer ensureClass(&err)
	if cfg == nil {
		return errors.Wrap(errdefs.ErrInvalidArgument, "parse: nil cache config")
	}
	return parseConfig(cfg, provider, t)
}

// minEntryJSON is the length of the shortest valid layer or record:
// {"blob":"sha256:<64 hex>"}.
const minEntryJSON = len(`{"blob":"sha256:"}`) + 64

// validateDigest is digest.Digest.Validate with a fast path for the
// common case, a sha256 digest in lower case hex (sha256 is linked in: see
// the import of crypto/sha256).
func validateDigest(d digest.Digest) error {
	s := string(d)
	if len(s) == len("sha256:")+64 && s[:7] == "sha256:" {
		// By table (blobs.go), without a branch per digit.
		var bad uint8
		for _, c := range []byte(s[7:]) {
			bad |= hexDigit[c]
		}
		if bad&0x80 == 0 {
			return nil
		}
	}
	return d.Validate()
}

// ensureClass gives *err errdefs.ErrUnknown if it has no class: every
// error out of the package has one, those of the Targets, providers and
// ingesters it is given included.
func ensureClass(err *error) { *err = errclass.Ensure(*err, errdefs.ErrUnknown) }

// invalidf wraps err, the cause, as an errdefs.ErrInvalidArgument with a
// message that says where.
func invalidf(err error, format string, args ...any) error {
	return errors.WithMessagef(errclass.With(err, errdefs.ErrInvalidArgument), format, args...)
}
