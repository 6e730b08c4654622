package remotecache_test

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/ocilayout"
)

// Helpers of the tests of Trim, Diff and Repair, prefixed "lc"
// (lifecycle).

// lcLayout opens the OCI layout in dir read-only and resolves its "latest"
// tag.
func lcLayout(t testing.TB, dir string) (*ocilayout.Store, ocispec.Descriptor) {
	t.Helper()
	return lcOpen(t, dir, ocilayout.WithReadOnly())
}

// lcOpen opens the OCI layout in dir with opts, until the test ends, and
// resolves its "latest" tag.
func lcOpen(t testing.TB, dir string, opts ...ocilayout.Option) (*ocilayout.Store, ocispec.Descriptor) {
	t.Helper()
	s, err := ocilayout.Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	desc, err := s.Resolve(context.Background(), "latest")
	if err != nil {
		t.Fatal(err)
	}
	return s, desc
}

// lcLoad reads the cache tagged "latest" in the OCI layout dir.
func lcLoad(t testing.TB, dir string) (*remotecache.Manifest, *remotecache.CacheConfig) {
	t.Helper()
	s, desc := lcLayout(t, dir)
	return tcRead(t, s, desc)
}

// lcAllResults maps each record key of cfg to its results.
func lcAllResults(cfg *remotecache.CacheConfig) map[string][]string {
	keys := cachetest.RecordKeys(cfg)
	m := map[string][]string{}
	for i, k := range keys {
		m[k] = append(m[k], cachetest.Results(cfg, i)...)
	}
	return m
}

// lcCheckSound checks that cfg is a config Parse takes without a problem,
// and that it goes through a CacheChains and back.
func lcCheckSound(t testing.TB, cfg *remotecache.CacheConfig, dp remotecache.DescriptorProvider) {
	t.Helper()
	if problems := remotecache.CheckConfig(cfg); len(problems) > 0 {
		t.Fatalf("CheckConfig: %v", problems)
	}
	cc := remotecache.NewCacheChains()
	if err := remotecache.ParseConfig(cfg, dp, cc); err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if _, _, err := cc.Marshal(context.Background()); err != nil {
		t.Fatalf("Marshal: %v", err)
	}
}

// lcSizes gives every blob of cfg's layers a size from 1 to 256, from its
// digest's last character (valid or not).
func lcSizes(cfg *remotecache.CacheConfig) map[digest.Digest]int64 {
	sizes := map[digest.Digest]int64{}
	for _, l := range cfg.Layers {
		var n int64 = 1
		if s := string(l.Blob); s != "" {
			n += int64(s[len(s)-1])
		}
		sizes[l.Blob] = n
	}
	return sizes
}

// TestParseConfig: ParseConfig of a decoded config adds what Parse of its
// bytes adds; Manifest.Descriptors and BlobSizes give what the manifest
// lists.
func TestParseConfig(t *testing.T) {
	s, desc := lcLayout(t, itFixtureDir)
	m, cfg := tcRead(t, s, desc)
	fromBytes := remotecache.NewCacheChains()
	if err := remotecache.Import(context.Background(), s, desc, fromBytes); err != nil {
		t.Fatal(err)
	}
	decoded := remotecache.NewCacheChains()
	if err := remotecache.ParseConfig(cfg, m.Descriptors(s), decoded); err != nil {
		t.Fatal(err)
	}
	if a, b := cachetest.ConfigJSON(t, fromBytes), cachetest.ConfigJSON(t, decoded); string(a) != string(b) {
		t.Errorf("ParseConfig gives\n%s\nImport gives\n%s", b, a)
	}
	sizes := m.BlobSizes()
	if len(sizes) != cachetest.FixtureBlobs {
		t.Errorf("BlobSizes has %d blobs, want %d", len(sizes), cachetest.FixtureBlobs)
	}
	for _, l := range m.Layers {
		if sizes[l.Digest] != l.Size {
			t.Errorf("BlobSizes[%s] = %d, want %d", l.Digest, sizes[l.Digest], l.Size)
		}
	}
	if err := remotecache.ParseConfig(nil, nil, decoded); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ParseConfig(nil) = %v, want an invalid argument", err)
	}
	if err := remotecache.ParseConfig(cfg, nil, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ParseConfig into nil = %v, want an invalid argument", err)
	}
}
