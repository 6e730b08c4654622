package interop

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	cacheimport "github.com/moby/buildkit/cache/remotecache/v1"
	"github.com/moby/buildkit/solver"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// The trimmed and the repaired cache, as BuildKit's importer reads them
// (bkImport: its manifest handling and v1.Parse into its CacheChains):
// BuildKit gets the graph we wrote, and every record it gets is one of the
// original cache, with the same digest and links all the way up, and the
// same result (or none, where that went).

// lcOriginal reads the BuildKit fixture (a copy) with our reader.
func lcOriginal(t *testing.T) (content.Store, ocispec.Descriptor, *remotecache.Manifest, *remotecache.CacheConfig) {
	t.Helper()
	dir := cachetest.Fixture(t)
	store := newStore(t, dir)
	desc := cachetest.LayoutIndex(t, dir).Manifests[0]
	ctx := context.Background()
	m, cfg, err := remotecache.ReadCache(ctx, store, desc)
	if err != nil {
		t.Fatal(err)
	}
	return store, desc, m, cfg
}

// lcBuildKitConfig has BuildKit read the cache at desc and marshal its
// graph; it checks that graph is the config the manifest names, and
// returns it with BuildKit's graph.
func lcBuildKitConfig(t *testing.T, name string, p content.Store, desc ocispec.Descriptor) (*remotecache.CacheConfig, *cacheimport.CacheChains) {
	t.Helper()
	bk := bkImport(t, p, desc)
	theirs := cachetest.ConfigJSON(t, bk)
	compareConfigs(t, name, readConfig(t, p, desc), func() []byte { return theirs })
	var cfg remotecache.CacheConfig
	if err := json.Unmarshal(theirs, &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg, bk
}

// lcIntact checks that got has records records, each one of orig with
// the same digest and links all the way up, and with the results orig
// gives it but the dropped ones.
func lcIntact(t *testing.T, name string, orig, got *remotecache.CacheConfig, dropped []remotecache.DroppedResult, records int) {
	t.Helper()
	want := map[string][]string{}
	for i, k := range cachetest.RecordKeys(orig) {
		rs := cachetest.Results(orig, i)
		for _, d := range dropped {
			if d.Record.Index == i {
				rs[d.Result] = ""
			}
		}
		want[k] = slices.DeleteFunc(rs, func(s string) bool { return s == "" })
	}
	for i, k := range cachetest.RecordKeys(got) {
		w, ok := want[k]
		if !ok {
			t.Errorf("%s: BuildKit reads record %d, which the original has not with those links: %.100s", name, i, k)
		} else if rs := cachetest.Results(got, i); !slices.Equal(rs, w) {
			t.Errorf("%s: record %d (%s): results %q, want %q", name, i, got.Records[i].Digest, rs, w)
		}
	}
	if len(got.Records) != records {
		t.Errorf("%s: BuildKit reads %d records, want %d", name, len(got.Records), records)
	}
}

// lcHits looks each step of orig up in the cache BuildKit imported, as
// its solver does on a build with the same definitions: through the key
// storage BuildKit makes of an imported cache (v1.NewCacheKeyStorage), a
// step without inputs by its digest, a step with inputs by the links from
// its inputs' matches, slot by slot (Input, Selector and Digest as the
// original has them), every slot matched. (The key IDs of a cache BuildKit
// imports are digests for roots and hashes of the links for the others:
// a step found this way is one the solver finds.) It returns, for each step that
// hits a result, the result's CreatedAt.
func lcHits(t *testing.T, cc *cacheimport.CacheChains, orig *remotecache.CacheConfig) map[int]time.Time {
	t.Helper()
	storage, _, err := cacheimport.NewCacheKeyStorage(cc, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The solver walks links with WalkLinks, by the step's definition
	// digest, which the config does not hold (it holds the digest
	// derived from it, as the links do): WalkLinksAll walks the same
	// links and gives that digest.
	keys, ok := storage.(interface {
		solver.CacheKeyStorage
		WalkLinksAll(id string, fn func(id string, link solver.CacheInfoLink) error) error
	})
	if !ok {
		t.Fatalf("BuildKit's key storage %T has no WalkLinksAll", storage)
	}
	ids := make([]map[string]bool, len(orig.Records))
	var match func(i int) map[string]bool
	match = func(i int) map[string]bool {
		if ids[i] != nil {
			return ids[i]
		}
		rec := orig.Records[i]
		var m map[string]bool
		if len(rec.Inputs) == 0 {
			m = map[string]bool{}
			if keys.Exists(rec.Digest.String()) {
				m[rec.Digest.String()] = true
			}
		}
		for slot, links := range rec.Inputs {
			found := map[string]bool{}
			for _, in := range links {
				for src := range match(in.LinkIndex) {
					err := keys.WalkLinksAll(src, func(id string, l solver.CacheInfoLink) error {
						if int(l.Input) == slot && l.Selector.String() == in.Selector && l.Digest == rec.Digest {
							found[id] = true
						}
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			if m == nil {
				m = found
			} else {
				for id := range m {
					if !found[id] {
						delete(m, id)
					}
				}
			}
		}
		ids[i] = m
		return m
	}
	hits := map[int]time.Time{}
	for i := range orig.Records {
		for id := range match(i) {
			err := keys.WalkResults(id, func(r solver.CacheResult) error {
				hits[i] = r.CreatedAt
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return hits
}

// lcCheckHits checks that exactly the steps of orig whose results were
// kept hit, each its own result.
func lcCheckHits(t *testing.T, name string, cc *cacheimport.CacheChains, orig *remotecache.CacheConfig, dropped []remotecache.DroppedResult) {
	t.Helper()
	want := map[int]time.Time{}
	for i, rec := range orig.Records {
		if len(rec.Results) > 0 {
			want[i] = rec.Results[0].CreatedAt
		}
	}
	for _, d := range dropped {
		delete(want, d.Record.Index)
	}
	got := lcHits(t, cc, orig)
	for i, at := range want {
		if g, ok := got[i]; !ok || !g.Equal(at) {
			t.Errorf("%s: step %d (%s): kept result of %v, hits %v (%v)", name, i, orig.Records[i].Digest, at, g, ok)
		}
	}
	for i := range got {
		if _, ok := want[i]; !ok {
			t.Errorf("%s: step %d (%s), whose result went, hits", name, i, orig.Records[i].Digest)
		}
	}
}

// lcExport writes cfg, with the blobs of the cache m describes in src, to
// a new store, and returns the store and the manifest.
func lcExport(t *testing.T, cfg *remotecache.CacheConfig, m *remotecache.Manifest, src content.Provider, f remotecache.ManifestFormat) (content.Store, ocispec.Descriptor) {
	t.Helper()
	dst := newStore(t, "")
	exp, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(f))
	if err != nil {
		t.Fatal(err)
	}
	if err := remotecache.ParseConfig(cfg, m.Descriptors(src), exp); err != nil {
		t.Fatal(err)
	}
	res, err := exp.Finalize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dst, cachetest.ManifestDesc(t, res)
}

func TestBuildKitReadsTrimmed(t *testing.T) {
	src, desc, m, orig := lcOriginal(t)
	// Every step of the original hits, BuildKit reading it.
	lcCheckHits(t, "original", bkImport(t, src, desc), orig, nil)
	sizes := m.BlobSizes()
	var newest time.Time
	for _, r := range orig.Records {
		for _, res := range r.Results {
			if res.CreatedAt.After(newest) {
				newest = res.CreatedAt
			}
		}
	}
	for _, tc := range []struct {
		name string
		opts []remotecache.TrimOption
	}{
		{"max age 150ms", []remotecache.TrimOption{remotecache.WithMaxAge(150 * time.Millisecond), remotecache.WithNow(newest)}},
		{"max size 1 byte under", []remotecache.TrimOption{remotecache.WithMaxSize(2129735 - 1)}},
		{"both", []remotecache.TrimOption{remotecache.WithMaxAge(300 * time.Millisecond), remotecache.WithNow(newest), remotecache.WithMaxSize(2129300)}},
	} {
		trimmed, rep, err := remotecache.Trim(orig, sizes, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Dropped) == 0 {
			t.Fatalf("%s: nothing dropped", tc.name)
		}
		for _, f := range forms {
			name := tc.name + ", " + f.ours.String()
			dst, md := lcExport(t, trimmed, m, src, f.ours)
			bk, cc := lcBuildKitConfig(t, name, dst, md)
			lcIntact(t, name, orig, bk, rep.Dropped, rep.After.Records)
			lcCheckHits(t, name, cc, orig, rep.Dropped)
		}
	}
}

func TestBuildKitReadsRepaired(t *testing.T) {
	ctx := context.Background()
	store, desc, m, orig := lcOriginal(t)
	// The layer of COPY Dockerfile, which two results use.
	gone := m.Layers[0]
	for _, l := range m.Layers {
		if l.Size == 323 {
			gone = l
		}
	}
	if err := store.Delete(ctx, gone.Digest); err != nil {
		t.Fatal(err)
	}
	rep, err := remotecache.Repair(ctx, store, desc, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Dropped) != 2 || !rep.Written {
		t.Fatalf("repair: %+v", rep)
	}
	if problems, err := remotecache.Verify(ctx, store, rep.Manifest); err != nil || len(problems) > 0 {
		t.Fatalf("Verify after repair: %v %v", problems, err)
	}
	bk, cc := lcBuildKitConfig(t, "repaired", store, rep.Manifest)
	lcIntact(t, "repaired", orig, bk, rep.Dropped, len(orig.Records))
	lcCheckHits(t, "repaired", cc, orig, rep.Dropped)
}
