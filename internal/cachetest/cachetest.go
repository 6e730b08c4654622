// Package cachetest holds the helpers that the tests of every module of
// the repository share: marshalling a graph to the JSON of its cache
// config (ours or BuildKit's), replaying a generated graph into a
// CacheChains or exporting it, decoding Finalize's response, describing
// records and results to compare configs by (RecordKeys, Results), and
// reading an OCI layout directory without the code under test. It is for
// tests only.
package cachetest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
)

// Marshaler is a cache graph that marshals to a config C and the
// descriptors P of its blobs: remotecache.CacheChains, and BuildKit's
// cacheimport.CacheChains too.
type Marshaler[C, P any] interface {
	Marshal(ctx context.Context) (C, P, error)
}

// Marshal marshals m and returns the config, the descriptors and the
// config's JSON (encoding/json's, as BuildKit writes it). Any error fails
// t.
func Marshal[C, P any](t testing.TB, m Marshaler[C, P]) (C, P, []byte) {
	t.Helper()
	cfg, descs, err := m.Marshal(context.Background())
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	dt, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("encoding the config: %v", err)
	}
	return cfg, descs, dt
}

// ConfigJSON returns the JSON of m's config, as Marshal does.
func ConfigJSON[C, P any](t testing.TB, m Marshaler[C, P]) []byte {
	t.Helper()
	_, _, dt := Marshal(t, m)
	return dt
}

// Chains replays g into a new CacheChains, in order (nil: g.InOrder())
// with blobs from provider (nil: g.Provider()), and returns it. Any error
// fails t.
func Chains(t testing.TB, g *cachegen.Graph, order []int, provider content.Provider) *remotecache.CacheChains {
	t.Helper()
	cc := remotecache.NewCacheChains()
	if err := cachegen.Replay(cc, g, order, provider); err != nil {
		t.Fatal(err)
	}
	return cc
}

// Export replays g into a new exporter writing into ing, in order (nil:
// g.InOrder()) with blobs from provider (nil: g.Provider()), finalizes it
// and returns the descriptor of what names the cache. Any error, or an
// export that wrote nothing, fails t.
func Export(t testing.TB, ing content.Ingester, g *cachegen.Graph, order []int, provider content.Provider, opts ...remotecache.ExportOption) ocispec.Descriptor {
	t.Helper()
	exp, err := remotecache.NewExporter(ing, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := cachegen.Replay(exp, g, order, provider); err != nil {
		t.Fatal(err)
	}
	res, err := exp.Finalize(context.Background())
	if err != nil {
		t.Fatalf("Finalize: %v", err)
	}
	return ManifestDesc(t, res)
}

// ManifestDesc decodes the descriptor of Finalize's response: the
// manifest's, or the config's in the config-only form. A response
// without one fails t.
func ManifestDesc(t testing.TB, res map[string]string) ocispec.Descriptor {
	t.Helper()
	desc, ok, err := remotecache.ResponseManifest(res)
	if !ok || err != nil {
		t.Fatalf("Finalize's response %v: no descriptor (%v)", res, err)
	}
	return desc
}

// Finalize finalizes e and returns the descriptor of its response, as
// ManifestDesc decodes it, or the error.
func Finalize(ctx context.Context, e remotecache.Exporter) (ocispec.Descriptor, error) {
	res, err := e.Finalize(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ResponseDesc(res)
}

// ResponseDesc is remotecache.ResponseManifest for a response that must
// name a descriptor: one without is an error too.
func ResponseDesc(res map[string]string) (ocispec.Descriptor, error) {
	desc, ok, err := remotecache.ResponseManifest(res)
	if !ok && err == nil {
		err = errors.Errorf("Finalize's response %v: no descriptor", res)
	}
	return desc, err
}

// Copy imports the cache at desc in src into an exporter that writes dst
// with opts, as a copy does, and returns the descriptor of the manifest
// it wrote. Any error fails t.
func Copy(t testing.TB, src content.Provider, desc ocispec.Descriptor, dst content.Ingester, opts ...remotecache.ExportOption) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	exp, err := remotecache.NewExporter(dst, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remotecache.Import(ctx, src, desc, exp); err != nil {
		t.Fatal(err)
	}
	res, err := exp.Finalize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ManifestDesc(t, res)
}
