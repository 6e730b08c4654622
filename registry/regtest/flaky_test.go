package regtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/distribution/distribution/v3/configuration"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
	"github.com/buildcache/remotecache/registry"
)

// Leaf layer blobs of the BuildKit cache in testdata: no other layer has
// them as parent, so without one of them one record loses its result and
// the rest of the cache stands.
const (
	cliFixtureLeafA = "sha256:bb15c9b9e9eb663b18e868717be845396a12dce597675264011cc535e369d2ed"
	cliFixtureLeafB = "sha256:ebb94d74149073cf991d9306e8009da0d661df22fd7967989bfb68da570c00d2"
)

// blobRequest returns the digest of a request of the method for a blob,
// or "".
func blobRequest(r *http.Request, method string) digest.Digest {
	i := strings.Index(r.URL.Path, "/blobs/")
	if r.Method != method || i < 0 || strings.Contains(r.URL.Path, "/blobs/uploads/") {
		return ""
	}
	return digest.Digest(r.URL.Path[i+len("/blobs/"):])
}

// unavailableHeads is a fault that answers 503 to every HEAD of a blob
// that fails says fails, counting them.
func unavailableHeads(c *cachetest.Counter, fails func(digest.Digest) bool) func(http.ResponseWriter, *http.Request, string, int) bool {
	return unavailable(c, http.MethodHead, fails)
}

// unavailableGets is unavailableHeads for the GETs that read blobs.
func unavailableGets(c *cachetest.Counter, fails func(digest.Digest) bool) func(http.ResponseWriter, *http.Request, string, int) bool {
	return unavailable(c, http.MethodGet, fails)
}

func unavailable(c *cachetest.Counter, method string, fails func(digest.Digest) bool) func(http.ResponseWriter, *http.Request, string, int) bool {
	return func(w http.ResponseWriter, r *http.Request, _ string, _ int) bool {
		d := blobRequest(r, method)
		if d == "" {
			return false
		}
		c.Add(d)
		if !fails(d) {
			return false
		}
		writeRegistryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "backend overloaded")
		return true
	}
}

// layoutTags returns the tags of an OCI layout's index.json; none if it
// has no index.json.
func layoutTags(t *testing.T, dir string) []string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "index.json")); os.IsNotExist(err) {
		return nil
	}
	var tags []string
	for _, m := range cachetest.LayoutIndex(t, dir).Manifests {
		if tag, ok := m.Annotations[ocispec.AnnotationRefName]; ok {
			tags = append(tags, tag)
		}
	}
	return tags
}

// deletingRegistry starts a registry that lets blobs be deleted.
func deletingRegistry(t *testing.T) *server {
	return startRegistryWith(t, nil, func(cfg *configuration.Configuration) {
		cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	})
}

// independentBlobs is how many records, each with a blob of its own,
// pushIndependent makes: well above the copies in flight
// (registry.DefaultConcurrency), so that a copy that read every blob would
// be seen.
const independentBlobs = 40

// pushIndependent exports to ref a cache of n records without inputs,
// each with a result of one blob of its own, and returns those blobs.
func pushIndependent(t *testing.T, ref string, n int) map[digest.Digest]bool {
	t.Helper()
	layers := map[digest.Digest]bool{}
	ctx := context.Background()
	r := newRemote(t, ref)
	exp, err := remotecache.NewExporter(r)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := range n {
		dt := bytes.Repeat([]byte{byte(i)}, 1<<10)
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
		if err := content.WriteBlob(ctx, r, "", bytes.NewReader(dt), desc); err != nil {
			t.Fatal(err)
		}
		layers[desc.Digest] = true
		res := remotecache.Result{CreatedAt: at, Remote: &remotecache.Remote{Descriptors: []ocispec.Descriptor{desc}, Provider: r}}
		if _, _, err := exp.Add(digest.FromString(fmt.Sprintf("record %d", i)), nil, []remotecache.Result{res}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := exp.Finalize(ctx); err != nil {
		t.Fatal(err)
	}
	return layers
}

// TestCLICopyFromFlakySource copies the BuildKit fixture out of a
// registry whose blob reads fail (issue 9.1): a copy never becomes a
// smaller cache because the source was unavailable; only a blob the
// registry really does not have drops what needs it. The blobs the
// source's manifest names get no HEAD (issue 11.6): their GETs are what
// fails or finds them gone.
func TestCLICopyFromFlakySource(t *testing.T) {
	bin := buildCLI(t)
	srv := deletingRegistry(t)
	clitest.OK(t, bin, "copy", "--quiet", "oci:"+cachetest.Fixture(t), "registry:"+srv.Host+"/cache/src:v1")

	// oneLineError checks that a failed run printed one line on stderr,
	// naming every string in want.
	oneLineError := func(t *testing.T, r clitest.Result, want ...string) {
		t.Helper()
		clitest.FailsWith(t, r, want...)
		if r.Stdout != "" {
			t.Errorf("stdout %q, want nothing", r.Stdout)
		}
	}

	t.Run("some blobs unavailable", func(t *testing.T) {
		var gets, heads cachetest.Counter
		failing := map[digest.Digest]bool{cliFixtureLeafA: true, cliFixtureLeafB: true}
		fp := startFaultProxy(t, srv.Host, both(unavailableGets(&gets, func(d digest.Digest) bool { return failing[d] }), unavailableHeads(&heads, func(digest.Digest) bool { return false })), nil)
		dst := filepath.Join(t.TempDir(), "out")
		r := clitest.Run(t, bin, "copy", "--quiet", "registry:"+fp.Host+"/cache/src:v1", "oci:"+dst)
		oneLineError(t, r, "503 Service Unavailable")
		if !strings.Contains(r.Stderr, cliFixtureLeafA) && !strings.Contains(r.Stderr, cliFixtureLeafB) {
			t.Errorf("stderr names neither blob whose check fails (%s, %s):\n%s", cliFixtureLeafA, cliFixtureLeafB, r.Stderr)
		}
		if tags := layoutTags(t, dst); len(tags) != 0 {
			t.Errorf("the destination has tags %q after a failed copy", tags)
		}
		// The manifest just read names every blob: none is asked about
		// before its GET.
		if n, per := heads.All(); n != 0 {
			t.Errorf("%d HEAD requests of blobs (%v), want none: the source's manifest names them", n, per)
		}
		_, per := gets.All()
		t.Logf("exit 1: %s; GETs per blob: %v", strings.TrimSpace(r.Stderr), per)
	})

	t.Run("every blob unavailable", func(t *testing.T) {
		// Records that share no blob: a check that fails for one blob
		// says nothing of the others, so a copy that took a failed check
		// for a missing blob would ask again for each blob.
		layers := pushIndependent(t, srv.Host+"/cache/independent:v1", independentBlobs)
		var gets cachetest.Counter
		fp := startFaultProxy(t, srv.Host, unavailableGets(&gets, func(d digest.Digest) bool { return layers[d] }), nil)
		dst := filepath.Join(t.TempDir(), "out")
		start := time.Now()
		r := clitest.Run(t, bin, "copy", "--quiet", "registry:"+fp.Host+"/cache/independent:v1", "oci:"+dst)
		elapsed := time.Since(start)
		total, per := gets.All()
		oneLineError(t, r, "503 Service Unavailable")
		named := 0
		for d := range per {
			if strings.Contains(r.Stderr, string(d)) {
				named++
			}
		}
		if named != 1 {
			t.Errorf("stderr names %d of the blobs checked, want 1:\n%s", named, r.Stderr)
		}
		// The first blob whose read fails ends the copy: at most one
		// blob's attempts for each blob in flight, not every blob's.
		// containerd's request sends a GET that gets a 503 once more
		// before it gives up (retryRequest in remotes/docker), so an
		// attempt is two GETs; the config is read once.
		const perAttempt = 2
		if budget := perAttempt*registry.DefaultAttempts*registry.DefaultConcurrency + 1; total > budget {
			t.Errorf("%d GET requests of blobs (%v), want at most %d: one blob's %d attempts times the %d copies in flight (every blob's would be %d)",
				total, per, budget, registry.DefaultAttempts, registry.DefaultConcurrency, perAttempt*registry.DefaultAttempts*independentBlobs)
		}
		if tags := layoutTags(t, dst); len(tags) != 0 {
			t.Errorf("the destination has tags %q after a failed copy", tags)
		}
		t.Logf("exit 1 after %v and %d GET requests of blobs (%v): %s", elapsed.Round(time.Millisecond), total, per, strings.TrimSpace(r.Stderr))
	})

	t.Run("blob deleted", func(t *testing.T) {
		// A repository of its own, whose blob is gone for good: the
		// registry answers 404, and only the result that needs the blob
		// is dropped.
		clitest.OK(t, bin, "copy", "--quiet", "oci:"+cachetest.Fixture(t), "registry:"+srv.Host+"/cache/deleted:v1")
		srv.deleteBlob(t, "cache/deleted", cliFixtureLeafA)
		dst := filepath.Join(t.TempDir(), "out")
		r := clitest.OK(t, bin, "copy", "--quiet", "registry:"+srv.Host+"/cache/deleted:v1", "oci:"+dst)
		rep := clitest.Inspect(t, bin, nil, "oci:"+dst)
		if rep.Counts.Records != cachetest.FixtureRecords || rep.Counts.Blobs != cachetest.FixtureBlobs-1 || rep.Counts.Missing != 0 {
			t.Errorf("copy: counts %+v, want %d records, %d blobs (all but the deleted one), none missing", rep.Counts, cachetest.FixtureRecords, cachetest.FixtureBlobs-1)
		}
		for _, b := range rep.Blobs {
			if b.Digest == cliFixtureLeafA {
				t.Errorf("the copy lists the deleted blob %s", b.Digest)
			}
		}
		t.Logf("exit 0: %s", strings.TrimSpace(r.Stdout))

		// The copy trusted the manifest; inspect and verify must not:
		// they say what the repository has now.
		src := "registry:" + srv.Host + "/cache/deleted:v1"
		ins := clitest.Run(t, bin, "inspect", src)
		if ins.Code != 1 || !strings.Contains(ins.Stdout, cliFixtureLeafA) || !strings.Contains(ins.Stdout, "missing") {
			t.Errorf("inspect of the source with a deleted blob: exit %d, want 1 and %s flagged missing\nstdout:\n%s\nstderr:\n%s", ins.Code, cliFixtureLeafA, ins.Stdout, ins.Stderr)
		}
		if v := clitest.Run(t, bin, "verify", src); v.Code != 1 || !strings.Contains(v.Stdout+v.Stderr, cliFixtureLeafA) {
			t.Errorf("verify of the source with a deleted blob: exit %d, want 1 naming %s\nstdout:\n%s\nstderr:\n%s", v.Code, cliFixtureLeafA, v.Stdout, v.Stderr)
		}
	})
}

// TestInfoClasses checks the classes of Remote.Info's errors against the
// registry: a blob it does not have is errdefs.ErrNotFound, asked once; a
// 503 past the retries is not "not found" but unavailable, and says 503.
func TestInfoClasses(t *testing.T) {
	ctx := context.Background()
	srv := startRegistry(t, nil)
	var blobs [2]ocispec.Descriptor
	for i := range blobs {
		dt := []byte(fmt.Sprintf("blob %d", i))
		blobs[i] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
		if err := content.WriteBlob(ctx, newRemote(t, srv.Host+"/cache:v1"), "", bytes.NewReader(dt), blobs[i]); err != nil {
			t.Fatal(err)
		}
	}
	there, failing := blobs[0].Digest, blobs[1].Digest
	absent := digest.FromString("not in the registry")
	var heads cachetest.Counter
	fp := startFaultProxy(t, srv.Host, unavailableHeads(&heads, func(d digest.Digest) bool { return d == failing }), nil)
	r := newRemote(t, fp.Host+"/cache:v1", registry.WithRetries(3), registry.WithBackoff(time.Millisecond, time.Millisecond))

	if info, err := r.Info(ctx, there); err != nil || info.Digest != there || info.Size != blobs[0].Size {
		t.Errorf("Info of a blob the registry has: %+v, %v", info, err)
	}
	if _, err := r.Info(ctx, absent); !errdefs.IsNotFound(err) {
		t.Errorf("Info of a blob the registry does not have: %v, want not found", err)
	}
	_, err := r.Info(ctx, failing)
	if err == nil || errdefs.IsNotFound(err) || !errdefs.IsUnavailable(err) {
		t.Errorf("Info of a blob whose HEAD answers 503: %v, want unavailable, not \"not found\"", err)
	}
	if err != nil && (!strings.Contains(err.Error(), "503 Service Unavailable") || !strings.Contains(err.Error(), string(failing))) {
		t.Errorf("Info error %q does not give the blob and the 503", err)
	}
	_, per := heads.All()
	if per[absent] != 1 || per[failing] != 3 {
		t.Errorf("HEADs: %d for the absent blob, want 1 (404 is not retried); %d for the failing one, want 3 (the attempts)", per[absent], per[failing])
	}
	t.Logf("503: %v", err)
}

// both is the fault f, then, where f lets the request through, g.
func both(f, g func(http.ResponseWriter, *http.Request, string, int) bool) func(http.ResponseWriter, *http.Request, string, int) bool {
	return func(w http.ResponseWriter, r *http.Request, key string, n int) bool {
		return f(w, r, key, n) || g(w, r, key, n)
	}
}
