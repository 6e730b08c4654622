package regtest

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/registry"
)

// copied is what one copy did: the manifest written and the details of
// the blob steps skipped ("mounted from …"), by step id.
type copied struct {
	desc    ocispec.Descriptor
	skipped map[string]string
}

// copyCache copies the cache src's tag points at into dst, as the
// command line's copy does: Import into an Exporter, Finalize.
func copyCache(ctx context.Context, t *testing.T, src, dst *registry.Remote) (copied, error) {
	t.Helper()
	res := copied{skipped: map[string]string{}}
	var mu sync.Mutex
	sink := remotecache.ProgressFunc(func(e remotecache.Event) {
		if !e.Completed.IsZero() && e.Skipped {
			mu.Lock()
			res.skipped[e.ID] = e.Detail
			mu.Unlock()
		}
	})
	desc, err := src.Resolve(ctx)
	if err != nil {
		return res, err
	}
	exp, err := remotecache.NewExporter(dst, remotecache.WithProgress(sink))
	if err != nil {
		return res, err
	}
	if err := remotecache.Import(ctx, src, desc, exp); err != nil {
		return res, err
	}
	desc, err = cachetest.Finalize(ctx, exp)
	mu.Lock()
	defer mu.Unlock()
	res.desc = desc
	return res, err
}

// stripMount is a fault that takes the mount out of the POSTs that ask
// for one, as a registry that does not mount answers: it opens an upload
// session (202).
func stripMount(_ http.ResponseWriter, r *http.Request, _ string, _ int) bool {
	if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
		r.URL.RawQuery = ""
	}
	return false
}

// A copy into another repository of the same registry mounts every blob,
// the config too: no blob byte is uploaded, each is reported skipped as
// mounted, and the copy is the same cache. Where the registry does not
// mount, the blobs are uploaded into the session the refusal opened, and
// the result is the same.
func TestMount(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, nil)
	g := cachegen.NewWithOptions(21, 30, cachegen.Options{BlobSize: 2 << 10})
	want, wantBytes := wantConfig(ctx, t, g)
	if _, err := export(ctx, newRemote(t, srv.Host+"/team/a:v1"), g, remotecache.FormatImageManifest); err != nil {
		t.Fatal(err)
	}
	blobs := len(g.Blobs) + 1 // and the config

	t.Run("accepted", func(t *testing.T) {
		before, up := srv.Counts(), srv.uploaded.Load()
		res, err := copyCache(ctx, t, newRemote(t, srv.Host+"/team/a:v1"), newRemote(t, srv.Host+"/team/b:v1"))
		if err != nil {
			t.Fatal(err)
		}
		counts := srv.CountsSince(before)
		if n := srv.uploaded.Load() - up; n != 0 {
			t.Errorf("%d blob bytes uploaded, want 0 (requests: %v)", n, counts)
		}
		if counts["POST mount"] != blobs || counts["POST upload"] != 0 || counts["PUT upload"] != 0 {
			t.Errorf("requests %v, want %d mounts and no upload", counts, blobs)
		}
		if len(res.skipped) != blobs {
			t.Errorf("%d steps skipped, want %d: %v", len(res.skipped), blobs, res.skipped)
		}
		for id, detail := range res.skipped {
			if detail != "mounted from "+srv.Host+"/team/a" {
				t.Errorf("%s: skipped with detail %q, want mounted from %s/team/a", id, detail, srv.Host)
			}
		}
		if got := importConfig(ctx, t, newRemote(t, srv.Host+"/team/b:v1")); !bytes.Equal(got, want) {
			t.Errorf("the copy is another cache")
		}
		t.Logf("requests: %v", counts)
	})

	t.Run("refused", func(t *testing.T) {
		fp := startFaultProxy(t, srv.Host, stripMount, nil)
		before, up := srv.Counts(), srv.uploaded.Load()
		// Through the proxy both ends are one registry to the client.
		res, err := copyCache(ctx, t, newRemote(t, fp.Host+"/team/a:v1"), newRemote(t, fp.Host+"/team/c:v1"))
		if err != nil {
			t.Fatal(err)
		}
		counts := srv.CountsSince(before)
		if n := srv.uploaded.Load() - up; n != wantBytes {
			t.Errorf("%d blob bytes uploaded, want %d (requests: %v)", n, wantBytes, counts)
		}
		if n := fp.Total("POST "); n != blobs {
			t.Errorf("%d POSTs, want %d: one per blob, the refused mount's session used for the upload", n, blobs)
		}
		if counts["POST upload"] != blobs || counts["PUT upload"] != blobs {
			t.Errorf("requests %v, want a POST and a PUT per blob", counts)
		}
		for id, detail := range res.skipped {
			t.Errorf("%s: skipped (%q), want uploaded", id, detail)
		}
		if got := importConfig(ctx, t, newRemote(t, srv.Host+"/team/c:v1")); !bytes.Equal(got, want) {
			t.Errorf("the copy is another cache")
		}
		t.Logf("requests: %v", counts)
	})
}

// BuildKit annotates the layers of a cache it imported with their
// distribution source: an export whose descriptors carry one for this
// registry mounts them.
func TestMountFromAnnotation(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, nil)
	g := cachegen.NewWithOptions(22, 12, cachegen.Options{BlobSize: 1 << 10})
	if _, err := export(ctx, newRemote(t, srv.Host+"/team/a:v1"), g, remotecache.FormatImageManifest); err != nil {
		t.Fatal(err)
	}
	annotated := withSource(g, "containerd.io/distribution.source."+srv.Host, "team/a")
	before, up := srv.Counts(), srv.uploaded.Load()
	if _, err := export(ctx, newRemote(t, srv.Host+"/team/d:v1"), annotated, remotecache.FormatImageManifest); err != nil {
		t.Fatal(err)
	}
	counts := srv.CountsSince(before)
	cfg, _ := wantConfig(ctx, t, g)
	// The layers are mounted; the config, new to the registry, uploaded.
	if n := srv.uploaded.Load() - up; n != int64(len(cfg)) {
		t.Errorf("%d blob bytes uploaded, want %d, the config's (requests: %v)", n, len(cfg), counts)
	}
	if counts["POST mount"] != len(g.Blobs) {
		t.Errorf("requests %v, want %d mounts", counts, len(g.Blobs))
	}
}

// withSource returns g with every layer descriptor annotated key=value.
func withSource(g *cachegen.Graph, key, value string) *cachegen.Graph {
	c := *g
	c.Ops = make([]cachegen.Op, len(g.Ops))
	for i, op := range g.Ops {
		res := make([]cachegen.Result, len(op.Results))
		for j, r := range op.Results {
			layers := make([]ocispec.Descriptor, len(r.Layers))
			for k, l := range r.Layers {
				l.Annotations = maps.Clone(l.Annotations)
				if l.Annotations == nil {
					l.Annotations = map[string]string{}
				}
				l.Annotations[key] = value
				layers[k] = l
			}
			res[j] = cachegen.Result{CreatedAt: r.CreatedAt, Layers: layers}
		}
		op.Results = res
		c.Ops[i] = op
	}
	return &c
}

// Before an export the tag is resolved once and the manifest there read:
// the blobs it names get no HEAD request, and an unchanged cache is three
// requests in all, with nothing written.
func TestKnownBlobs(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, nil)
	ref := srv.Host + "/cache:v1"
	g := cachegen.NewWithOptions(23, 60, cachegen.Options{BlobSize: 1 << 10})
	if _, err := export(ctx, newRemote(t, ref), g, remotecache.FormatImageManifest); err != nil {
		t.Fatal(err)
	}

	before := srv.Counts()
	res, err := export(ctx, newRemote(t, ref), g, remotecache.FormatImageManifest)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"HEAD manifest": 2, "GET manifest": 1}
	if got := srv.CountsSince(before); !maps.Equal(got, want) {
		t.Errorf("unchanged re-export sent %v, want %v", got, want)
	}
	if res.skipped != res.layers {
		t.Errorf("%d of %d layers skipped", res.skipped, res.layers)
	}

	g2 := g.Changed(1, 0.2)
	nfresh := fresh(g, g2)
	before = srv.Counts()
	if _, err := export(ctx, newRemote(t, ref), g2, remotecache.FormatImageManifest); err != nil {
		t.Fatal(err)
	}
	got := srv.CountsSince(before)
	// A HEAD for each new blob, and one for the new config.
	if got["HEAD blob"] > nfresh+1 || got["POST upload"] > nfresh+1 {
		t.Errorf("changed re-export sent %v, want at most %d HEAD blob and POST upload: %d blobs are new", got, nfresh+1, nfresh)
	}
	want2, _ := wantConfig(ctx, t, g2)
	if got := importConfig(ctx, t, newRemote(t, ref)); !bytes.Equal(got, want2) {
		t.Errorf("imported config differs")
	}
	t.Logf("%d new blobs; requests %v", nfresh, got)
}

// fresh returns how many of g2's blobs g has not.
func fresh(g, g2 *cachegen.Graph) int {
	n := 0
	for d := range g2.Blobs {
		if _, ok := g.Blobs[d]; !ok {
			n++
		}
	}
	return n
}

// Another exporter moves the tag between this export's resolve and its
// push: the export still leaves the tag at its own cache, complete.
func TestTagMovedDuringExport(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, nil)
	g1 := cachegen.NewWithOptions(24, 20, cachegen.Options{BlobSize: 1 << 10})
	g2 := cachegen.NewWithOptions(25, 20, cachegen.Options{BlobSize: 1 << 10})
	want1, _ := wantConfig(ctx, t, g1)
	for _, tc := range []struct {
		name string
		// at is the request (faultKey prefix) before which the other
		// exporter moves the tag: after the resolve.
		at    string
		first *cachegen.Graph // what the tag names before
	}{
		// The tag named this very cache: the manifest is not written
		// unless the tag moved, which it did.
		{"unchanged cache", "GET /v2/race1/manifests/", g1},
		{"changed cache", "POST /v2/race2/blobs/uploads/", g2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := strings.Split(strings.TrimPrefix(tc.at, strings.Fields(tc.at)[0]+" /v2/"), "/")[0]
			direct := srv.Host + "/" + repo + ":v1"
			if _, err := export(ctx, newRemote(t, direct), tc.first, remotecache.FormatImageManifest); err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			fp := startFaultProxy(t, srv.Host, func(w http.ResponseWriter, r *http.Request, key string, n int) bool {
				if strings.HasPrefix(key, tc.at) {
					once.Do(func() {
						other := cachegen.NewWithOptions(26, 20, cachegen.Options{BlobSize: 1 << 10})
						if _, err := export(r.Context(), newRemote(t, direct), other, remotecache.FormatImageManifest); err != nil {
							t.Errorf("the other export: %v", err)
						}
					})
				}
				return false
			}, nil)
			res, err := export(ctx, newRemote(t, fp.Host+"/"+repo+":v1"), g1, remotecache.FormatImageManifest)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := newRemote(t, direct).Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != res.desc.Digest {
				t.Fatalf("tag at %s, want the export's %s", desc.Digest, res.desc.Digest)
			}
			if got := importConfig(ctx, t, newRemote(t, direct)); !bytes.Equal(got, want1) {
				t.Errorf("imported config differs")
			}
			checkBlobs(ctx, t, newRemote(t, direct), g1)
		})
	}
}

// exportedBlobs returns the layer blobs of g's cache, sorted.
func exportedBlobs(ctx context.Context, t *testing.T, g *cachegen.Graph) []digest.Digest {
	t.Helper()
	_, descs, err := cachetest.Chains(t, g, nil, nil).Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(descs))
}

// checkBlobs checks that the repository has every blob of g's cache.
func checkBlobs(ctx context.Context, t *testing.T, r *registry.Remote, g *cachegen.Graph) {
	t.Helper()
	for _, d := range exportedBlobs(ctx, t, g) {
		if _, err := r.Info(ctx, d); err != nil {
			t.Errorf("blob %s: %v", d, err)
		}
	}
}

// A blob that the manifest at the tag names was deleted from the
// repository: the export takes it as there, the registry refuses the
// manifest (MANIFEST_BLOB_UNKNOWN), and the export checks every blob
// again, uploads the one missing and writes the manifest.
func TestBlobDeletedUnderTag(t *testing.T) {
	ctx := context.Background()
	srv := startRegistryWith(t, nil, func(cfg *configuration.Configuration) {
		cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	})
	ref := srv.Host + "/cache:v1"
	g := cachegen.NewWithOptions(27, 40, cachegen.Options{BlobSize: 1 << 10})
	if _, err := export(ctx, newRemote(t, ref), g, remotecache.FormatImageManifest); err != nil {
		t.Fatal(err)
	}
	g2 := g.Changed(1, 0.1)
	var gone digest.Digest
	for _, d := range exportedBlobs(ctx, t, g2) {
		if _, ok := g.Blobs[d]; ok {
			gone = d // a blob of both caches
			break
		}
	}
	srv.deleteBlob(t, "cache", gone)

	before := srv.Counts()
	if _, err := export(ctx, newRemote(t, ref), g2, remotecache.FormatImageManifest); err != nil {
		t.Fatal(err)
	}
	counts := srv.CountsSince(before)
	if counts["PUT manifest"] != 2 {
		t.Errorf("requests %v, want 2 PUT manifest: refused, then written", counts)
	}
	if n := srv.Requests("PUT upload") - before["PUT upload"]; n != fresh(g, g2)+2 {
		t.Errorf("%d blobs uploaded, want %d: the new ones, the config and the one deleted", n, fresh(g, g2)+2)
	}
	want, _ := wantConfig(ctx, t, g2)
	if got := importConfig(ctx, t, newRemote(t, ref)); !bytes.Equal(got, want) {
		t.Errorf("imported config differs")
	}
	checkBlobs(ctx, t, newRemote(t, ref), g2)
	t.Logf("requests: %v", counts)
}
