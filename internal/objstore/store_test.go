package objstore_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/objstore"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

func TestMain(m *testing.M) {
	cachetest.QuietLogs()
	os.Exit(m.Run())
}

// newStore makes a store on m with BuildKit's s3 keys, changed by mod.
func newStore(t testing.TB, m *mem, mod func(*objstore.Config)) *objstore.Store {
	t.Helper()
	cfg := objstore.Config{
		Options:      objstore.DefaultOptions("manifests/", "blobs/"),
		Kind:         "mem",
		Root:         "root",
		BlobsDir:     "blobs/",
		ManifestsDir: "manifests/",
	}
	cfg.ConfigKey = func(name string) string { return cfg.ManifestsDir + name }
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Check(); err != nil {
		t.Fatal(err)
	}
	return objstore.New(m, cfg)
}

// An export writes the blobs and the config under every name; Resolve and
// a re-export see it; a second export sends only the configs.
func TestRoundTrip(t *testing.T) {
	m := newMem()
	s := newStore(t, m, func(c *objstore.Config) { c.Names = []string{"a", "b"}; c.Prefix = "p" })
	if got := s.String(); got != "mem:root/p:a;b" {
		t.Errorf("String() = %q", got)
	}
	g := cachegen.NewWithOptions(1, 30, cachegen.Options{BlobSize: 100})
	desc := objstoretest.Export(t, s, g)
	got, err := s.Resolve(context.Background())
	if err != nil || got.Digest != desc.Digest || got.MediaType != remotecache.CacheConfigMediaTypeV0 {
		t.Fatalf("Resolve = %+v, %v; Finalize said %+v", got, err, desc)
	}
	for _, k := range m.keys() {
		if k != "manifests/a" && k != "manifests/b" && !strings.HasPrefix(k, "blobs/sha256:") {
			t.Errorf("key %q", k)
		}
	}
	objstoretest.Verify(t, s)
	puts := m.count("Put")
	objstoretest.Export(t, s, g)
	if n := m.count("Put") - puts; n != 2 {
		t.Errorf("re-export made %d Puts, want 2 (the configs)", n)
	}
}

// Writes are checked at Commit, before anything is sent; manifests are
// refused naming the kind of store; a read-only store writes nothing.
func TestWriter(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	s := newStore(t, m, nil)
	dt := []byte("some blob bytes")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	w, err := s.Writer(ctx, content.WithRef("a"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.ToUpper(dt))
	if err := w.Commit(ctx, desc.Size, desc.Digest); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Commit of wrong bytes = %v", err)
	}
	if n := m.count("Put"); n != 0 {
		t.Errorf("%d Puts", n)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<16) // spooled to a file
	bigDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(big), Size: int64(len(big))}
	if err := content.WriteBlob(ctx, s, "big", bytes.NewReader(big), bigDesc); err != nil {
		t.Fatal(err)
	}
	if got, err := content.ReadBlob(ctx, s, bigDesc); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	_, err = s.Writer(ctx, content.WithDescriptor(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: desc.Digest}))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "an mem cache has the config-only form") {
		t.Errorf("Writer of a manifest = %v", err)
	}
	ro := newStore(t, m, func(c *objstore.Config) { c.ReadOnly = true })
	if _, err := ro.Writer(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("read-only Writer = %v", err)
	}
}

// A read resumes at the offset reached when a body breaks off, a few
// times; a body that keeps breaking fails unavailable, an object shorter
// than its descriptor says fails with data loss.
func TestReadResumes(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	s := newStore(t, m, nil)
	dt := bytes.Repeat([]byte("x"), 1000)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	if err := content.WriteBlob(ctx, s, "x", bytes.NewReader(dt), desc); err != nil {
		t.Fatal(err)
	}
	read := func(desc ocispec.Descriptor) ([]byte, error) {
		ra, err := s.ReaderAt(ctx, desc)
		if err != nil {
			return nil, err
		}
		defer ra.Close()
		p := make([]byte, desc.Size)
		n, err := ra.ReadAt(p, 0)
		return p[:n], err
	}
	m.breakAt, m.breaks = 100, 3
	gets := m.count("Get")
	if got, err := read(desc); err != nil || !bytes.Equal(got, dt) {
		t.Fatalf("read through 3 broken bodies: %d bytes, %v", len(got), err)
	}
	if n := m.count("Get") - gets; n != 4 {
		t.Errorf("%d Gets, want 4", n)
	}
	m.breaks = 10
	if _, err := read(desc); !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "reading mem://blobs/") {
		t.Errorf("read through 10 broken bodies = %v, want unavailable", err)
	}
	m.breaks = 0
	long := desc
	long.Size = 2000
	if _, err := read(long); !errdefs.IsDataLoss(err) {
		t.Errorf("read past the object's end = %v, want data loss", err)
	}
	if _, err := s.ReaderAt(ctx, ocispec.Descriptor{Digest: digest.FromString("nope")}); !errdefs.IsNotFound(err) {
		t.Errorf("ReaderAt of a missing blob = %v", err)
	}
}

// Info refreshes a blob older than the touch refresh age, once; not a
// young one, and never in a read-only store.
func TestInfoRefreshes(t *testing.T) {
	ctx := context.Background()
	m := newMem()
	s := newStore(t, m, nil)
	g := cachegen.NewWithOptions(2, 10, cachegen.Options{BlobSize: 50})
	objstoretest.Export(t, s, g)
	d := g.BlobOrder[0]
	ro := newStore(t, m, func(c *objstore.Config) { c.ReadOnly = true })
	m.age(s.BlobKey(d), 25*time.Hour)
	if info, err := ro.Info(ctx, d); err != nil || time.Since(info.UpdatedAt) < 24*time.Hour || m.count("Touch") != 0 {
		t.Errorf("read-only Info = %+v, %v, %d touches", info, err, m.count("Touch"))
	}
	start := time.Now()
	for range 2 {
		if info, err := s.Info(ctx, d); err != nil || info.UpdatedAt.Before(start) {
			t.Errorf("Info = %+v, %v", info, err)
		}
	}
	m.age(s.BlobKey(d), 23*time.Hour)
	if _, err := s.Info(ctx, d); err != nil {
		t.Fatal(err)
	}
	if n := m.count("Touch"); n != 1 {
		t.Errorf("%d touches, want 1", n)
	}
	if _, err := s.Info(ctx, "sha256:../x"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Info of a bad digest = %v", err)
	}
}
