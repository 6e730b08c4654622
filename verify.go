package remotecache

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
)

// ReadManifest reads and checks the cache manifest at desc, in any of the
// three manifest forms, or the config of the config-only form (whose
// Layers it rebuilds from the layer annotations). Options as for Import
// (WithMaxBlobSize).
func ReadManifest(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, opts ...ImportOption) (_ *Manifest, err error) {
	defer ensureClass(&err)
	o, err := newImportOptions("read manifest", provider, opts)
	if err != nil {
		return nil, err
	}
	return readManifest(ctx, provider, desc, o)
}

func readManifest(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, o importOptions) (*Manifest, error) {
	m, _, err := readTop(ctx, provider, desc, o)
	return m, err
}

// ReadCache reads and checks the cache manifest at desc, in any form, and
// decodes the cache config it names: ReadManifest then ReadConfig, with
// the same errors, but the config-only form's config, which desc names
// itself, is read once. Options as for Import
// (WithMaxBlobSize).
func ReadCache(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, opts ...ImportOption) (_ *Manifest, _ *CacheConfig, err error) {
	defer ensureClass(&err)
	o, err := newImportOptions("read cache", provider, opts)
	if err != nil {
		return nil, nil, err
	}
	return readCache(ctx, provider, desc, o)
}

func readCache(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, o importOptions) (*Manifest, *CacheConfig, error) {
	m, cfg, err := readTop(ctx, provider, desc, o)
	if err != nil || cfg != nil {
		return m, cfg, err
	}
	if cfg, err = readConfig(ctx, provider, m, o); err != nil {
		return nil, nil, err
	}
	return m, cfg, nil
}

// readTop reads the blob desc names and tells its form. For the
// config-only form, desc is the cache config: it is decoded, and the
// Manifest's Layers are rebuilt from its layer annotations.
func readTop(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, o importOptions) (*Manifest, *CacheConfig, error) {
	what := "manifest"
	if desc.MediaType == CacheConfigMediaTypeV0 {
		what = "cache config"
	}
	dt, err := readBlob(ctx, provider, desc, o.maxBlobSize, what)
	if err != nil {
		return nil, nil, err
	}
	if desc.MediaType == CacheConfigMediaTypeV0 || looksLikeConfig(dt) {
		var cfg CacheConfig
		if err := decodeConfigInto(dt, &cfg); err != nil {
			return nil, nil, invalidf(err, "cache config %s: malformed JSON", desc.Digest)
		}
		_, layers, err := configDescriptors(&cfg, provider)
		if err != nil {
			return nil, nil, errors.Wrapf(err, "cache config %s", desc.Digest)
		}
		config := desc
		config.MediaType = CacheConfigMediaTypeV0
		return &Manifest{Descriptor: desc, Format: FormatConfigOnly, Config: config, Layers: layers}, &cfg, nil
	}
	m, err := parseManifest(dt)
	if err != nil {
		return nil, nil, errors.Wrapf(err, "manifest %s", desc.Digest)
	}
	m.Descriptor = desc
	return m, nil, nil
}

// ReadConfig reads and decodes the cache config that m names, with the
// decoder Parse uses. It does not check the config's structure: see
// CheckConfig.
func ReadConfig(ctx context.Context, provider content.Provider, m *Manifest, opts ...ImportOption) (_ *CacheConfig, err error) {
	defer ensureClass(&err)
	o, err := newImportOptions("read config", provider, opts)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.Wrap(errdefs.ErrInvalidArgument, "read config: nil manifest")
	}
	return readConfig(ctx, provider, m, o)
}

func readConfig(ctx context.Context, provider content.Provider, m *Manifest, o importOptions) (*CacheConfig, error) {
	dt, err := readBlob(ctx, provider, m.Config, o.maxBlobSize, "cache config")
	if err != nil {
		if m.Format == FormatConfigOnly {
			return nil, err
		}
		return nil, errors.Wrapf(err, "manifest %s", m.Descriptor.Digest)
	}
	var cfg CacheConfig
	if err := decodeConfigInto(dt, &cfg); err != nil {
		return nil, invalidf(err, "manifest %s: cache config %s: malformed JSON", m.Descriptor.Digest, m.Config.Digest)
	}
	return &cfg, nil
}

// Problem is one thing wrong with a stored cache.
type Problem struct {
	// Descriptor is the blob with the problem.
	Descriptor ocispec.Descriptor
	// What went wrong: the blob is missing, or its size or digest is not
	// the descriptor's, or it cannot be read.
	Err error
}

func (p Problem) String() string {
	return fmt.Sprintf("%s (%s): %v", p.Descriptor.Digest, p.Descriptor.MediaType, p.Err)
}

// Verify reads every blob of the cache at desc (manifest, config, layers)
// and checks each is there with the size and digest its descriptor gives,
// that the config has none of the structural problems that make Import
// refuse it (CheckConfig), and that every layer the config names is
// listed in the manifest. It returns the problems found. The error is for
// failures to check at all: a nil provider, an invalid option, a done
// context (a manifest that cannot be read is a Problem).
func Verify(ctx context.Context, provider content.Provider, desc ocispec.Descriptor, opts ...ImportOption) (_ []Problem, err error) {
	defer ensureClass(&err)
	o, err := newImportOptions("verify", provider, opts)
	if err != nil {
		return nil, err
	}
	m, cfg, err := readTop(ctx, provider, desc, o)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return []Problem{{Descriptor: desc, Err: err}}, nil
	}
	var problems []Problem
	if cfg == nil {
		cfg, err = readConfig(ctx, provider, m, o)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		problems = append(problems, Problem{Descriptor: m.Config, Err: err})
	}
	if cfg != nil {
		for _, err := range CheckConfig(cfg) {
			problems = append(problems, Problem{Descriptor: m.Config, Err: errors.Wrap(err, "cache config")})
		}
	}
	listed := map[string]bool{}
	for _, l := range m.Layers {
		listed[l.Digest.String()] = true
		if err := verifyBlob(ctx, provider, l); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			problems = append(problems, Problem{Descriptor: l, Err: err})
		}
	}
	if cfg != nil {
		for i, l := range cfg.Layers {
			if !listed[l.Blob.String()] {
				problems = append(problems, Problem{
					Descriptor: ocispec.Descriptor{Digest: l.Blob},
					Err:        errors.Wrapf(errdefs.ErrNotFound, "config layer %d: blob not listed in the manifest", i),
				})
				listed[l.Blob.String()] = true
			}
		}
	}
	return problems, nil
}

// verifyBlob reads a blob through and checks its size and digest.
func verifyBlob(ctx context.Context, p content.Provider, desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return invalidf(err, "digest %q", desc.Digest)
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return err
	}
	defer ra.Close()
	if n := ra.Size(); n != desc.Size {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "store has %d bytes, descriptor says %d", n, desc.Size)
	}
	v := desc.Digest.Verifier()
	n, err := io.Copy(v, io.NewSectionReader(ra, 0, desc.Size))
	if err != nil {
		return errors.Wrapf(err, "reading at offset %d", n)
	}
	if !v.Verified() {
		return errors.Wrapf(errdefs.ErrFailedPrecondition, "bytes do not match the digest")
	}
	return nil
}
