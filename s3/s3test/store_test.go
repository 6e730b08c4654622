package s3test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/buildcache/remotecache/internal/objstoretest"
	s3store "github.com/buildcache/remotecache/s3"
)

// A blob from the multipart threshold up goes in parts; it reads back
// whole, from any offset.
func TestMultipart(t *testing.T) {
	e := newEnv(t)
	store := e.store(t, s3store.WithMultipartThreshold(6<<20), s3store.WithPartSize(5<<20), s3store.WithPartConcurrency(2))
	g := objstoretest.Graph(4, 3, 12<<20+3)
	objstoretest.Export(t, store, g)
	blobs := 0
	for _, b := range g.Blobs {
		if !b.Missing {
			blobs++
		}
	}
	// Each blob: create, 3 parts, complete.
	if n := e.proxy.Count("POST"); n != 2*blobs {
		t.Errorf("%d POSTs for %d multipart blobs, want 2 each", n, blobs)
	}
	if n := e.proxy.Count("PUT"); n != 3*blobs+1 {
		t.Errorf("%d PUTs, want 3 parts for each of %d blobs and the config", n, blobs)
	}
	objstoretest.Verify(t, store)

	objstoretest.ReadAtRandom(t, store, g, 4)
}

// Keys are joined as plain strings: a prefix without a trailing slash runs
// into the manifests and blobs prefixes.
func TestPrefixJoinsAsPlainStrings(t *testing.T) {
	e := newEnv(t)
	store := e.store(t, s3store.WithPrefix("ci"), s3store.WithManifestsPrefix("m-"), s3store.WithNames("main"))
	if s := store.String(); s != "s3:cache/ci:main" {
		t.Errorf("String() = %q", s)
	}
	g := objstoretest.Graph(5, 10, 0)
	objstoretest.Export(t, store, g)
	for _, k := range e.keys(t) {
		if k != "cim-main" && !strings.HasPrefix(k, "ciblobs/sha256:") {
			t.Errorf("key %q", k)
		}
	}
	if !slices.Contains(e.keys(t), "cim-main") {
		t.Errorf("no config at cim-main: %q", e.keys(t))
	}
	objstoretest.Verify(t, store)
}

// A blob over the max copy size is refreshed with a multipart copy in
// parts of that size: here against a gateway whose CopyObject refuses
// sources over 6 MiB, as S3's refuses them over 5 GiB.
func TestTouchRefreshLargeBlob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "--copy-object-threshold", strconv.Itoa(6<<20))
	ctx := context.Background()
	g := objstoretest.Graph(9, 2, 12<<20+5)
	store := e.store(t, s3store.WithMaxCopySize(5<<20), s3store.WithMultipartThreshold(64<<20))
	objstoretest.Export(t, store, g)
	blobs := objstoretest.ConfigBlobs(t, e.object(t, "manifests/buildkit"))
	for _, d := range blobs {
		e.age(t, "blobs/"+d.String(), 48*time.Hour)
	}

	// With CopyObject, the refresh fails, and Info says so.
	_, err := e.store(t).Info(ctx, blobs[0])
	if err == nil || errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "refreshing blob") {
		t.Errorf("Info refreshing with CopyObject = %v; want the gateway's refusal", err)
	}

	e.proxy.Reset()
	start := time.Now().Add(-time.Second)
	objstoretest.Export(t, store, g)
	// Each blob: create, 3 part copies (5 + 5 + 2 MiB), complete.
	if n, p := e.proxy.Count("COPY"), e.proxy.Count("POST"); n != 3*len(blobs) || p != 2*len(blobs) {
		t.Errorf("%d part copies and %d POSTs for %d blobs, want 3 and 2 each", n, p, len(blobs))
	}
	if n := e.proxy.BlobUploaded.Load(); n != 0 {
		t.Errorf("%d blob bytes uploaded", n)
	}
	for _, d := range blobs {
		info, err := e.store(t, s3store.WithReadOnly()).Info(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if info.UpdatedAt.Before(start) {
			t.Errorf("blob %s updated at %v, before the refresh", d, info.UpdatedAt)
		}
	}
	objstoretest.Verify(t, store)
	noUploadsLeft(t, e)
}
