package remotecache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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
	s, err := ocilayout.Open(dir, ocilayout.WithReadOnly())
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

// lcKeys describes each record of cfg by its digest and a hash of its
// inputs, each slot as the sorted set of its links' selectors and sources'
// keys, all the way up: two records have one key when they are the same
// step with the same inputs. It is written apart from Diff's identities,
// which it checks.
func lcKeys(cfg *remotecache.CacheConfig) []string {
	keys := make([]string, len(cfg.Records))
	var key func(i int) string
	key = func(i int) string {
		if keys[i] != "" {
			return keys[i]
		}
		rec := cfg.Records[i]
		var b strings.Builder
		for _, slot := range rec.Inputs {
			var links []string
			for _, in := range slot {
				links = append(links, fmt.Sprintf("%q<-%s", in.Selector, key(in.LinkIndex)))
			}
			slices.Sort(links)
			b.WriteString("[" + strings.Join(slices.Compact(links), ",") + "]")
		}
		keys[i] = string(rec.Digest) + "/" + digest.FromString(b.String()).Encoded()
		return keys[i]
	}
	for i := range cfg.Records {
		key(i)
	}
	return keys
}

// lcResults describes each result of record i: its time and the blobs of
// its layer chain.
func lcResults(cfg *remotecache.CacheConfig, i int) []string {
	var out []string
	rec := cfg.Records[i]
	for _, r := range rec.Results {
		var blobs []string
		for l := r.LayerIndex; l >= 0; l = cfg.Layers[l].ParentIndex {
			blobs = append([]string{string(cfg.Layers[l].Blob)}, blobs...)
		}
		out = append(out, r.CreatedAt.UTC().Format(time.RFC3339Nano)+" "+strings.Join(blobs, " "))
	}
	for _, r := range rec.ChainedResults {
		var blobs []string
		for _, l := range r.LayerIndexes {
			blobs = append(blobs, string(cfg.Layers[l].Blob))
		}
		out = append(out, r.CreatedAt.UTC().Format(time.RFC3339Nano)+" chain "+strings.Join(blobs, " "))
	}
	return out
}

// lcAllResults maps each record key of cfg to its results.
func lcAllResults(cfg *remotecache.CacheConfig) map[string][]string {
	keys := lcKeys(cfg)
	m := map[string][]string{}
	for i, k := range keys {
		m[k] = append(m[k], lcResults(cfg, i)...)
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
