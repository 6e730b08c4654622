package regtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/registry"
)

var formats = []remotecache.ManifestFormat{
	remotecache.FormatImageManifest,
	remotecache.FormatOCIIndex,
	remotecache.FormatManifestList,
}

// exported is what one Finalize did.
type exported struct {
	desc            ocispec.Descriptor
	layers, skipped int // layer steps, and those skipped
}

// export writes g's cache into ing in the form f.
func export(ctx context.Context, ing content.Ingester, g *cachegen.Graph, f remotecache.ManifestFormat) (exported, error) {
	var (
		mu  sync.Mutex
		res exported
	)
	sink := remotecache.ProgressFunc(func(e remotecache.Event) {
		if e.Completed.IsZero() || !strings.HasPrefix(e.ID, "writing layer ") {
			return
		}
		mu.Lock()
		res.layers++
		if e.Skipped {
			res.skipped++
		}
		mu.Unlock()
	})
	exp, err := remotecache.NewExporter(ing, remotecache.WithManifestFormat(f), remotecache.WithProgress(sink))
	if err != nil {
		return res, err
	}
	if err := cachegen.Replay(exp, g, nil, nil); err != nil {
		return res, err
	}
	desc, err := cachetest.Finalize(ctx, exp)
	mu.Lock()
	defer mu.Unlock()
	res.desc = desc
	return res, err
}

// wantConfig returns the JSON of the cache config of g, and the bytes an
// export of it uploads: its distinct layer blobs and the config.
func wantConfig(ctx context.Context, t *testing.T, g *cachegen.Graph) ([]byte, int64) {
	t.Helper()
	dt := cachetest.ConfigJSON(t, cachetest.Chains(t, g, nil, nil))
	var cfg remotecache.CacheConfig
	if err := json.Unmarshal(dt, &cfg); err != nil {
		t.Fatal(err)
	}
	n := int64(len(dt))
	seen := map[digest.Digest]bool{}
	for _, l := range cfg.Layers {
		if !seen[l.Blob] {
			seen[l.Blob] = true
			n += g.Blobs[l.Blob].Descriptor.Size
		}
	}
	return dt, n
}

// importConfig imports the cache r's tag points at and returns the JSON
// of its config.
func importConfig(ctx context.Context, t *testing.T, r *registry.Remote) []byte {
	t.Helper()
	desc, err := r.Resolve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cc := remotecache.NewCacheChains()
	if err := remotecache.Import(ctx, r, desc, cc); err != nil {
		t.Fatal(err)
	}
	return cachetest.ConfigJSON(t, cc)
}

func newRemote(t *testing.T, ref string, opts ...registry.Option) *registry.Remote {
	t.Helper()
	r, err := registry.New(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sameDesc(a, b ocispec.Descriptor) bool {
	return a.Digest == b.Digest && a.Size == b.Size && a.MediaType == b.MediaType
}

// TestExportImport exports a cache in each manifest form, resolves the
// tag, imports it back and compares configs; then exports it again, which
// must upload nothing.
func TestExportImport(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, nil)
	g := cachegen.NewWithOptions(1, 25, cachegen.Options{BlobSize: 8 << 10})
	want, wantBytes := wantConfig(ctx, t, g)

	if _, err := newRemote(t, srv.Host+"/cache:none").Resolve(ctx); !errdefs.IsNotFound(err) {
		t.Fatalf("resolving a tag that does not exist: %v, want not found", err)
	}
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			r := newRemote(t, srv.Host+"/cache/"+f.String()+":latest")
			before := srv.uploaded.Load()
			res, err := export(ctx, r, g, f)
			if err != nil {
				t.Fatal(err)
			}
			if sent := srv.uploaded.Load() - before; sent != wantBytes {
				t.Errorf("first export uploaded %d bytes, want %d (layers and config)", sent, wantBytes)
			}
			if res.skipped != 0 {
				t.Errorf("first export skipped %d of %d layers", res.skipped, res.layers)
			}
			desc, err := r.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !sameDesc(desc, res.desc) {
				t.Fatalf("tag resolves to %+v, export wrote %+v", desc, res.desc)
			}
			if got := importConfig(ctx, t, r); !bytes.Equal(got, want) {
				t.Fatalf("imported config differs:\n got %s\nwant %s", got, want)
			}

			// The same cache again: every blob is there, nothing is sent.
			before = srv.uploaded.Load()
			again, err := export(ctx, r, g, f)
			if err != nil {
				t.Fatal(err)
			}
			if sent := srv.uploaded.Load() - before; sent != 0 {
				t.Errorf("second export uploaded %d bytes, want 0", sent)
			}
			if again.layers == 0 || again.skipped != again.layers {
				t.Errorf("second export skipped %d of %d layers, want all", again.skipped, again.layers)
			}
			if !sameDesc(again.desc, res.desc) {
				t.Errorf("second export wrote manifest %s, first %s", again.desc.Digest, res.desc.Digest)
			}

			// By digest.
			byDigest := newRemote(t, srv.Host+"/cache/"+f.String()+"@"+res.desc.Digest.String())
			if got := importConfig(ctx, t, byDigest); !bytes.Equal(got, want) {
				t.Fatal("import by digest: config differs")
			}
		})
	}
}

// TestTagMoves exports two caches to one tag in turn: the tag follows the
// last export, even when that one has nothing new to upload.
func TestTagMoves(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, nil)
	r := newRemote(t, srv.Host+"/cache:main")
	g1 := cachegen.NewWithOptions(2, 20, cachegen.Options{BlobSize: 1 << 10})
	g2 := cachegen.NewWithOptions(3, 20, cachegen.Options{BlobSize: 1 << 10})
	want1, _ := wantConfig(ctx, t, g1)
	want2, _ := wantConfig(ctx, t, g2)

	for i, g := range []*cachegen.Graph{g1, g2, g1} {
		res, err := export(ctx, r, g, remotecache.FormatImageManifest)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := r.Resolve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != res.desc.Digest {
			t.Fatalf("export %d: tag at %s, want %s", i, desc.Digest, res.desc.Digest)
		}
		want := want1
		if g == g2 {
			want = want2
		}
		if got := importConfig(ctx, t, r); !bytes.Equal(got, want) {
			t.Fatalf("export %d: imported config differs", i)
		}
	}
}

// TestBasicAuth runs against a registry that asks for htpasswd basic auth.
func TestBasicAuth(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, map[string]string{"alice": "s3cret"})
	ref := srv.Host + "/private/cache:v1"
	g := cachegen.NewWithOptions(4, 6, cachegen.Options{BlobSize: 1 << 10})
	want, _ := wantConfig(ctx, t, g)

	t.Run("anonymous", func(t *testing.T) {
		// One blob, so that every request the export makes is known.
		one := cachegen.NewWithOptions(4, 6, cachegen.Options{BlobSize: 1 << 10, MaxBlobs: 1})
		before := srv.Counts()
		_, err := export(ctx, newRemote(t, ref), one, remotecache.FormatImageManifest)
		if !errdefs.IsUnauthorized(err) {
			t.Fatalf("export without credentials: %v, want an error of class unauthenticated", err)
		}
		// A 401 is not retried: the resolve of the tag before the
		// export, the exporter's check for the blob and the upload, each
		// once.
		want := map[string]int{"HEAD manifest": 1, "HEAD blob": 1, "POST upload": 1}
		if got := srv.CountsSince(before); !maps.Equal(got, want) {
			t.Errorf("refused export sent %v, want %v: 401 must not be retried", got, want)
		}
		_, err = newRemote(t, ref).Resolve(ctx)
		if !errdefs.IsUnauthorized(err) {
			t.Fatalf("resolve without credentials: %v", err)
		}
		t.Logf("refused: %v", err)
		if n := srv.uploaded.Load(); n != 0 {
			t.Fatalf("%d bytes were uploaded without credentials", n)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		_, err := export(ctx, newRemote(t, ref, registry.WithCredentials("alice", "guess")), g, remotecache.FormatImageManifest)
		if !errdefs.IsUnauthorized(err) {
			t.Fatalf("export with a wrong password: %v", err)
		}
	})
	t.Run("WithCredentials", func(t *testing.T) {
		r := newRemote(t, ref, registry.WithCredentials("alice", "s3cret"))
		if _, err := export(ctx, r, g, remotecache.FormatImageManifest); err != nil {
			t.Fatal(err)
		}
		if got := importConfig(ctx, t, r); !bytes.Equal(got, want) {
			t.Fatal("imported config differs")
		}
	})
	t.Run("Docker config", func(t *testing.T) {
		dir := t.TempDir()
		cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, srv.Host, base64.StdEncoding.EncodeToString([]byte("alice:s3cret")))
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("DOCKER_CONFIG", dir)
		r := newRemote(t, ref)
		if got := importConfig(ctx, t, r); !bytes.Equal(got, want) {
			t.Fatal("imported config differs")
		}
		if _, err := export(ctx, r, g, remotecache.FormatOCIIndex); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFaults exports through a proxy that injects faults into uploads and
// checks that the registry ends up with the whole cache.
func TestFaults(t *testing.T) {
	ctx := context.Background()
	// A fault is how the proxy answers one attempt itself.
	type fault func(fp *faultProxy, w http.ResponseWriter, r *http.Request, key string)
	unavailable := func(_ *faultProxy, w http.ResponseWriter, _ *http.Request, _ string) {
		writeRegistryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "try again")
	}
	reset := func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ string) { resetMidBody(w, r) }
	tooMany := func(fp *faultProxy, w http.ResponseWriter, _ *http.Request, key string) { fp.tooMany(w, key, 1) }
	cases := []struct {
		name    string
		records int
		size    int64   // blob size
		prefix  string  // the requests that get faults: those whose key starts with it
		faults  []fault // the answers to their first attempts, in order
		check   func(t *testing.T, fp *faultProxy)
	}{
		{name: "503 on the first two attempts of each upload", records: 10, size: 8 << 10, prefix: "PUT ", faults: []fault{unavailable, unavailable}},
		// 3 MiB: over the 1 MiB the writer keeps in memory.
		{name: "connection reset mid-upload", records: 3, size: 3 << 20, prefix: "PUT blob ", faults: []fault{reset}},
		{name: "429 with Retry-After", records: 4, size: 8 << 10, prefix: "PUT ", faults: []fault{tooMany},
			check: func(t *testing.T, fp *faultProxy) {
				fp.mu.Lock()
				defer fp.mu.Unlock()
				if len(fp.gaps) == 0 {
					t.Fatal("no request followed a 429")
				}
				for k, gaps := range fp.gaps {
					for _, d := range gaps {
						if d < time.Second-50*time.Millisecond {
							t.Errorf("%s: retried %v after a 429 with Retry-After: 1", k, d)
						}
					}
				}
			}},
		{name: "all of them", records: 3, size: 2 << 20, prefix: "PUT ", faults: []fault{tooMany, reset, unavailable, unavailable}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRegistry(t, nil)
			var fp *faultProxy
			fp = startFaultProxy(t, srv.Host, func(w http.ResponseWriter, r *http.Request, key string, n int) bool {
				if !strings.HasPrefix(key, tc.prefix) || n > len(tc.faults) {
					return false
				}
				tc.faults[n-1](fp, w, r, key)
				return true
			}, nil)
			g := cachegen.NewWithOptions(5, tc.records, cachegen.Options{BlobSize: tc.size})
			want, wantBytes := wantConfig(ctx, t, g)

			start := time.Now()
			res, err := export(ctx, newRemote(t, fp.Host+"/cache:latest"), g, remotecache.FormatImageManifest)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			// Read it back from the registry itself, not through the proxy.
			direct := newRemote(t, srv.Host+"/cache:latest")
			desc, err := direct.Resolve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != res.desc.Digest {
				t.Fatalf("tag at %s, export wrote %s", desc.Digest, res.desc.Digest)
			}
			if got := importConfig(ctx, t, direct); !bytes.Equal(got, want) {
				t.Fatal("imported config differs")
			}
			// Each upload got past its faults: one more attempt than
			// there are faults.
			for k, n := range fp.Attempts(tc.prefix) {
				if n <= len(tc.faults) {
					t.Errorf("%s: %d attempts, want at least %d", k, n, len(tc.faults)+1)
				}
			}
			if tc.check != nil {
				tc.check(t, fp)
			}
			puts := fp.Attempts("PUT ")
			keys := make([]string, 0, len(puts))
			for k := range puts {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var counts []string
			for _, k := range keys {
				counts = append(counts, fmt.Sprint(puts[k]))
			}
			t.Logf("%d layers in %v; PUT attempts per upload: %s; POSTs that reached the registry: %d; blob bytes the registry read: %d (%d needed)",
				res.layers, elapsed.Round(time.Millisecond), strings.Join(counts, " "), srv.Requests("POST upload"), srv.uploaded.Load(), wantBytes)
		})
	}
}

// TestAlways500 runs against a registry that answers every request with
// 500 and a message: export and resolve fail within the retry budget, with
// the registry's message in the error.
func TestAlways500(t *testing.T) {
	ctx := context.Background()
	var (
		mu       sync.Mutex
		requests = map[string]int{}
	)
	host := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests[r.Method+" "+requestKind(r)]++
		mu.Unlock()
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", "disk on fire")
	}))
	// One blob, so that every request the export makes is known.
	g := cachegen.NewWithOptions(6, 1, cachegen.Options{BlobSize: 1 << 10, MaxBlobs: 1})

	_, err := export(ctx, newRemote(t, host+"/cache:latest"), g, remotecache.FormatImageManifest)
	if err == nil {
		t.Fatal("export to a failing registry succeeded")
	}
	if !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "500") {
		t.Errorf("error does not give the registry's message: %v", err)
	}
	if !errdefs.IsUnavailable(err) {
		t.Errorf("error is not of class unavailable: %v", err)
	}
	if want := fmt.Sprintf("after %d attempts", registry.DefaultAttempts); !strings.Contains(err.Error(), want) {
		t.Errorf("error does not say %q: %v", want, err)
	}
	// The default budget: the exporter's check for the blob (Info) and
	// the upload, each DefaultAttempts attempts, a GET for the message of
	// each failed HEAD; the resolve of the tag before the export once, as
	// containerd's resolver does it (a HEAD sent again after a 500, then a
	// GET): what it would learn saves requests, it is worth no retries.
	mu.Lock()
	got := maps.Clone(requests)
	mu.Unlock()
	budget := map[string]int{"HEAD blob": registry.DefaultAttempts, "GET blob": 2, "POST upload": registry.DefaultAttempts, "HEAD manifest": 2, "GET manifest": 2}
	for k, n := range got {
		if n > budget[k] {
			t.Errorf("%d requests %q, over the retry budget of %d (all: %v)", n, k, budget[k], got)
		}
	}
	t.Logf("export failed with: %v; requests: %v", err, got)

	_, err = newRemote(t, host+"/cache:latest", registry.WithRetries(2), registry.WithBackoff(time.Millisecond, time.Millisecond)).Resolve(ctx)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("resolve: %v, want the registry's message", err)
	}
}

// TestReadResumes reads blobs through a proxy that cuts each blob download
// in the middle once: the reader resumes where it stopped.
func TestReadResumes(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, nil)
	var (
		mu   sync.Mutex
		cuts = map[string]int{}
	)
	fp := startFaultProxy(t, srv.Host, nil, func(resp *http.Response) error {
		r := resp.Request
		if r.Method != http.MethodGet || requestKind(r) != "blob" || resp.StatusCode != http.StatusOK || resp.ContentLength < 1<<20 {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if cuts[r.URL.Path] == 0 {
			cuts[r.URL.Path]++
			resp.Body = &cutBody{ReadCloser: resp.Body, n: resp.ContentLength / 2}
		}
		return nil
	})
	g := cachegen.NewWithOptions(7, 3, cachegen.Options{BlobSize: 2 << 20})
	res, err := export(ctx, newRemote(t, srv.Host+"/cache:latest"), g, remotecache.FormatImageManifest)
	if err != nil {
		t.Fatal(err)
	}
	r := newRemote(t, fp.Host+"/cache:latest")
	read := 0
	for _, d := range g.BlobOrder {
		b := g.Blobs[d]
		if _, err := r.Info(ctx, d); errdefs.IsNotFound(err) {
			continue // not in the cache
		} else if err != nil {
			t.Fatal(err)
		}
		ra, err := r.ReaderAt(ctx, b.Descriptor)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(ra, 0, ra.Size())); err != nil {
			t.Fatal(err)
		}
		ra.Close()
		if got := digest.NewDigest(digest.SHA256, h); got != d {
			t.Fatalf("read %s, got bytes of %s", d, got)
		}
		read++
	}
	mu.Lock()
	defer mu.Unlock()
	if read == 0 || len(cuts) != read {
		t.Fatalf("read %d blobs, cut %d downloads", read, len(cuts))
	}
	t.Logf("read %d blobs of %d layers, each download cut once in the middle", read, res.layers)
}

// TestRateLimited runs against a registry that asks to come back in an
// hour: the export fails at once, with the registry's message.
func TestRateLimited(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, nil)
	fp := startFaultProxy(t, srv.Host, func(w http.ResponseWriter, r *http.Request, key string, n int) bool {
		if r.Method == http.MethodPost {
			w.Header().Set("Retry-After", "3600")
			writeRegistryError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "you have reached your upload rate limit")
			return true
		}
		return false
	}, nil)
	// One blob, so that the POSTs are those of its upload.
	g := cachegen.NewWithOptions(8, 4, cachegen.Options{BlobSize: 1 << 10, MaxBlobs: 1})
	_, err := export(ctx, newRemote(t, fp.Host+"/cache:latest"), g, remotecache.FormatImageManifest)
	var later *registry.RetryLaterError
	if !errors.As(err, &later) || later.After != time.Hour || !strings.Contains(err.Error(), "upload rate limit") {
		t.Fatalf("export: %v, want a RetryLaterError with the registry's message", err)
	}
	if posts := fp.Total("POST "); posts != 1 {
		t.Errorf("%d POSTs, want 1: the upload is tried once, not retried", posts)
	}
	t.Logf("failed: %v", err)
}

// TestUploadUnavailable runs against a registry whose upload POSTs all
// answer 503, with a Retry-After too long to wait for and with none: the
// export fails with the registry's message after a bounded number of
// POSTs. Remote.Writer must not fail such an upload with an error of
// class unavailable, which content.OpenWriter (the exporter opens its
// writers with it) takes for a locked ref and retries without end.
func TestUploadUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryAfter string
		posts      int // POSTs for the graph's one blob
		later      bool
	}{
		// Not retried: the registry asks for more than a minute.
		{name: "Retry-After: 3600", retryAfter: "3600", posts: 1, later: true},
		// Each attempt is one POST.
		{name: "no Retry-After", posts: registry.DefaultAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRegistry(t, nil)
			fp := startFaultProxy(t, srv.Host, func(w http.ResponseWriter, r *http.Request, key string, n int) bool {
				if r.Method != http.MethodPost {
					return false
				}
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				writeRegistryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "uploads are paused for maintenance")
				return true
			}, nil)
			g := cachegen.NewWithOptions(9, 3, cachegen.Options{BlobSize: 1 << 10, MaxBlobs: 1})
			if len(g.Blobs) != 1 {
				t.Fatalf("graph has %d blobs, want 1", len(g.Blobs))
			}
			// A guard, not a measure: a hang shows as a context that ran out.
			ctx, cancel := context.WithTimeout(context.Background(), cachetest.HangGuard)
			defer cancel()
			_, err := export(ctx, newRemote(t, fp.Host+"/cache:latest"), g, remotecache.FormatImageManifest)
			posts := fp.Total("POST ")
			if ctx.Err() != nil {
				t.Fatalf("export still running after %v and %d POSTs: %v", cachetest.HangGuard, posts, err)
			}
			if err == nil || !strings.Contains(err.Error(), "uploads are paused for maintenance") || !strings.Contains(err.Error(), "503") {
				t.Fatalf("export: %v, want the registry's 503 and message", err)
			}
			if !errdefs.IsUnavailable(err) {
				t.Errorf("export: %v, want an error of class unavailable", err)
			}
			var later *registry.RetryLaterError
			if errors.As(err, &later) != tc.later {
				t.Errorf("export: %v: RetryLaterError %v, want %v", err, !tc.later, tc.later)
			}
			if posts != tc.posts {
				t.Errorf("%d POSTs, want %d", posts, tc.posts)
			}
			t.Logf("%d POSTs: %v", posts, err)
		})
	}
}
