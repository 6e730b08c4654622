package s3test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	s3store "github.com/buildcache/remotecache/s3"
)

// Export in the config-only form, Resolve, import, export again: the same
// config; the objects are BuildKit's keys; Verify reads every blob back.
func TestRoundTrip(t *testing.T) {
	e := newEnv(t)
	store := e.store(t)
	g := graph(1, 80, 0)
	desc := export(t, store, g)

	if desc.MediaType != remotecache.CacheConfigMediaTypeV0 {
		t.Errorf("Finalize's descriptor has media type %q", desc.MediaType)
	}
	got, err := store.Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != desc.Digest || got.Size != desc.Size || got.MediaType != desc.MediaType {
		t.Errorf("Resolve = %+v, Finalize said %+v", got, desc)
	}
	want := marshalConfigOnly(t, g)
	if cfg := e.object(t, "manifests/buildkit"); !bytes.Equal(cfg, want) {
		t.Errorf("manifests/buildkit is not the config:\n%s\nwant\n%s", cfg, want)
	}
	var blobs []string
	for _, d := range configBlobs(t, want) {
		blobs = append(blobs, "blobs/"+d.String())
	}
	if keys := e.keys(t); !slices.Equal(keys, append(blobs, "manifests/buildkit")) {
		t.Errorf("keys %q, want the %d blobs of the config and manifests/buildkit", keys, len(blobs))
	}
	if again := reimport(t, store); !bytes.Equal(again, want) {
		t.Errorf("export, import, export changed the config")
	}
	verify(t, store)
}

// A second export of the same cache sends no blob byte: only the config,
// under its name, which moves it.
func TestReexportUploadsNothing(t *testing.T) {
	e := newEnv(t)
	store := e.store(t, s3store.WithNames("a", "b"))
	g := graph(2, 60, 1000)
	desc := export(t, store, g)
	e.proxy.reset()
	if again := export(t, store, g); again.Digest != desc.Digest {
		t.Fatalf("re-export wrote config %s, first %s", again.Digest, desc.Digest)
	}
	if n := e.proxy.blobUploaded.Load(); n != 0 {
		t.Errorf("re-export uploaded %d blob bytes", n)
	}
	if n := e.proxy.uploaded.Load(); n != 2*desc.Size {
		t.Errorf("re-export uploaded %d bytes, want the config twice (%d)", n, 2*desc.Size)
	}
	if n, c := e.proxy.count("PUT"), e.proxy.count("COPY"); n != 2 || c != 0 {
		t.Errorf("re-export made %d PUTs and %d copies, want 2 (the config under a and b) and none", n, c)
	}
}

// An existing blob older than the touch refresh age is copied onto itself
// with new metadata (its content type kept); younger ones are not; a
// read-only store copies nothing.
func TestTouchRefresh(t *testing.T) {
	e := newEnv(t)
	store := e.store(t)
	g := graph(3, 40, 100)
	desc := export(t, store, g)

	var old, young []digest.Digest
	types := map[digest.Digest]string{}
	for i, d := range configBlobs(t, e.object(t, "manifests/buildkit")) {
		key := "blobs/" + d.String()
		head, err := e.admin.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &e.bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		types[d] = *head.ContentType
		if i%2 == 0 {
			e.age(t, "blobs/"+d.String(), 25*time.Hour)
			old = append(old, d)
		} else {
			e.age(t, "blobs/"+d.String(), 23*time.Hour)
			young = append(young, d)
		}
	}
	if len(old) == 0 || len(young) == 0 {
		t.Fatal("graph too small")
	}

	// Read-only: nothing is copied.
	e.proxy.reset()
	ro := e.store(t, s3store.WithReadOnly())
	for _, d := range old {
		if _, err := ro.Info(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.proxy.writes(); n != 0 {
		t.Fatalf("read-only Info made %d writes", n)
	}

	e.proxy.reset()
	start := time.Now().Add(-time.Second)
	export(t, store, g)
	if n := e.proxy.count("COPY"); n != len(old) {
		t.Errorf("%d copies, want %d (the old blobs)", n, len(old))
	}
	if n := e.proxy.blobUploaded.Load(); n != 0 {
		t.Errorf("%d blob bytes uploaded", n)
	}
	for _, d := range old {
		key := "blobs/" + d.String()
		if n := e.proxy.countKey("COPY", key); n != 1 {
			t.Errorf("old blob %s copied %d times", d, n)
		}
		head, err := e.admin.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &e.bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		// S3 gives a copied object a new modification time; Versity's
		// posix backend changes only the metadata. Info takes the later.
		info, err := store.Info(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if info.UpdatedAt.Before(start) {
			t.Errorf("old blob %s: updated at %v after the refresh (last modified %v, metadata %v)", d, info.UpdatedAt, head.LastModified, head.Metadata)
		}
		if ct := *head.ContentType; ct != types[d] {
			t.Errorf("old blob %s: content type %q after the refresh, want %q", d, ct, types[d])
		}
	}
	for _, d := range young {
		if n := e.proxy.countKey("COPY", "blobs/"+d.String()); n != 0 {
			t.Errorf("young blob %s copied", d)
		}
	}
	// The old blobs are young now: a third export copies nothing.
	e.proxy.reset()
	if again := export(t, store, g); again.Digest != desc.Digest {
		t.Errorf("config changed")
	}
	if n := e.proxy.count("COPY"); n != 0 {
		t.Errorf("third export made %d copies", n)
	}
	verify(t, store)
}

// A blob from the multipart threshold up goes in parts; it reads back
// whole, from any offset.
func TestMultipart(t *testing.T) {
	e := newEnv(t)
	store := e.store(t, s3store.WithMultipartThreshold(6<<20), s3store.WithPartSize(5<<20), s3store.WithPartConcurrency(2))
	g := graph(4, 3, 12<<20+3)
	export(t, store, g)
	blobs := 0
	for _, b := range g.Blobs {
		if !b.Missing {
			blobs++
		}
	}
	// Each blob: create, 3 parts, complete.
	if n := e.proxy.count("POST"); n != 2*blobs {
		t.Errorf("%d POSTs for %d multipart blobs, want 2 each", n, blobs)
	}
	if n := e.proxy.count("PUT"); n != 3*blobs+1 {
		t.Errorf("%d PUTs, want 3 parts for each of %d blobs and the config", n, blobs)
	}
	verify(t, store)

	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 4))
	for d, b := range g.Blobs {
		want := b.Bytes()
		ra, err := store.ReaderAt(ctx, ocispec.Descriptor{Digest: d})
		if err != nil {
			t.Fatal(err)
		}
		if ra.Size() != int64(len(want)) {
			t.Fatalf("ReaderAt size %d, want %d", ra.Size(), len(want))
		}
		for range 20 {
			off := rng.Int64N(int64(len(want)))
			p := make([]byte, rng.IntN(1<<20)+1)
			n, err := ra.ReadAt(p, off)
			wantN := min(len(p), len(want)-int(off))
			if n != wantN || (n < len(p) && err != io.EOF) || (n == len(p) && err != nil) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d", len(p), off, n, err, wantN)
			}
			if !bytes.Equal(p[:n], want[off:int(off)+n]) {
				t.Fatalf("ReadAt at %d: wrong bytes", off)
			}
		}
		ra.Close()
	}
}

// Keys are joined as plain strings: a prefix without a trailing slash runs
// into the manifests and blobs prefixes.
func TestPrefixJoinsAsPlainStrings(t *testing.T) {
	e := newEnv(t)
	store := e.store(t, s3store.WithPrefix("ci"), s3store.WithManifestsPrefix("m-"), s3store.WithNames("main"))
	if s := store.String(); s != "s3:cache/ci:main" {
		t.Errorf("String() = %q", s)
	}
	g := graph(5, 10, 0)
	export(t, store, g)
	for _, k := range e.keys(t) {
		if k != "cim-main" && !strings.HasPrefix(k, "ciblobs/sha256:") {
			t.Errorf("key %q", k)
		}
	}
	if !slices.Contains(e.keys(t), "cim-main") {
		t.Errorf("no config at cim-main: %q", e.keys(t))
	}
	verify(t, store)
}

// Every name gets the config; Resolve reads the first name only.
func TestNames(t *testing.T) {
	e := newEnv(t)
	store := e.store(t, s3store.WithNames("a", "b"))
	g := graph(6, 10, 0)
	export(t, store, g)
	a, b := e.object(t, "manifests/a"), e.object(t, "manifests/b")
	if !bytes.Equal(a, b) {
		t.Error("manifests/a and manifests/b differ")
	}
	ctx := context.Background()
	if _, err := e.store(t, s3store.WithNames("b", "missing")).Resolve(ctx); err != nil {
		t.Errorf("Resolve of b: %v", err)
	}
	_, err := e.store(t, s3store.WithNames("missing", "a")).Resolve(ctx)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "manifests/missing") {
		t.Errorf("Resolve of a missing first name = %v, want not found naming manifests/missing", err)
	}
}

// A blob deleted behind the store's back is not found, and the next export
// uploads it again.
func TestDeletedBlob(t *testing.T) {
	e := newEnv(t)
	store := e.store(t)
	g := graph(7, 20, 0)
	export(t, store, g)
	d := g.BlobOrder[0]
	key := "blobs/" + d.String()
	if _, err := e.admin.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &e.bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	_, err := store.Info(context.Background(), d)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("Info of a deleted blob = %v, want not found naming it", err)
	}
	_, err = store.ReaderAt(context.Background(), g.Blobs[d].Descriptor)
	if !errdefs.IsNotFound(err) {
		t.Fatalf("ReaderAt of a deleted blob = %v, want not found", err)
	}
	e.proxy.reset()
	export(t, store, g)
	if n := e.proxy.countKey("PUT", key); n != 1 {
		t.Errorf("deleted blob uploaded %d times", n)
	}
	verify(t, store)
}

// Resolve of a name with no config is not found.
func TestResolveMissing(t *testing.T) {
	e := newEnv(t)
	_, err := e.store(t).Resolve(context.Background())
	if !errdefs.IsNotFound(err) {
		t.Fatalf("Resolve = %v, want not found", err)
	}
}

// The store keeps the config-only form: an exporter writing a manifest
// fails, with nothing under the manifests prefix.
func TestManifestFormsRefused(t *testing.T) {
	e := newEnv(t)
	store := e.store(t)
	g := graph(8, 10, 0)
	for _, f := range []remotecache.ManifestFormat{remotecache.FormatImageManifest, remotecache.FormatOCIIndex, remotecache.FormatManifestList} {
		_, err := tryExport(context.Background(), store, g, remotecache.WithManifestFormat(f))
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "config-only") {
			t.Errorf("%s: Finalize = %v, want an invalid argument naming the config-only form", f, err)
		}
	}
	for _, k := range e.keys(t) {
		if strings.HasPrefix(k, "manifests/") {
			t.Errorf("%s written", k)
		}
	}
	for _, mt := range []string{ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex} {
		_, err := store.Writer(context.Background(), content.WithRef("x"), content.WithDescriptor(ocispec.Descriptor{MediaType: mt, Digest: digest.FromString("x"), Size: 1}))
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("Writer of %s = %v, want invalid argument", mt, err)
		}
	}
}

// A write is checked before anything is sent: a wrong digest or size, or
// a writer closed before Commit, leaves no object.
func TestWriterChecksBeforeUpload(t *testing.T) {
	e := newEnv(t)
	store := e.store(t)
	ctx := context.Background()
	dt := []byte("some blob bytes")
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(dt), Size: int64(len(dt))}

	w, err := store.Writer(ctx, content.WithRef("a"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(dt[1:])
	if err := w.Commit(ctx, desc.Size, desc.Digest); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Commit of too few bytes = %v", err)
	}
	w, _ = store.Writer(ctx, content.WithRef("b"), content.WithDescriptor(desc))
	w.Write(bytes.ToUpper(dt))
	if err := w.Commit(ctx, desc.Size, desc.Digest); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Commit of wrong bytes = %v", err)
	}
	w, _ = store.Writer(ctx, content.WithRef("c"), content.WithDescriptor(desc))
	w.Write(dt)
	w.Close()
	if n := e.proxy.writes(); n != 0 {
		t.Errorf("%d writes sent", n)
	}
	if keys := e.keys(t); len(keys) != 0 {
		t.Errorf("objects left: %q", keys)
	}

	// Without a descriptor, the blob is named by what Commit expects.
	w, err = store.Writer(ctx, content.WithRef("d"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(dt)
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	if got := e.object(t, "blobs/"+desc.Digest.String()); !bytes.Equal(got, dt) {
		t.Errorf("blob written without a descriptor: %q", got)
	}

	// A write of a spool's size (over 4 MiB) round trips too.
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<16)
	desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(big), Size: int64(len(big))}
	if err := content.WriteBlob(ctx, store, "big", bytes.NewReader(big), desc); err != nil {
		t.Fatal(err)
	}
	if got, err := content.ReadBlob(ctx, store, desc); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}

// A blob over the max copy size is refreshed with a multipart copy in
// parts of that size: here against a gateway whose CopyObject refuses
// sources over 6 MiB, as S3's refuses them over 5 GiB.
func TestTouchRefreshLargeBlob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "--copy-object-threshold", strconv.Itoa(6<<20))
	ctx := context.Background()
	g := graph(9, 2, 12<<20+5)
	store := e.store(t, s3store.WithMaxCopySize(5<<20), s3store.WithMultipartThreshold(64<<20))
	export(t, store, g)
	blobs := configBlobs(t, e.object(t, "manifests/buildkit"))
	for _, d := range blobs {
		e.age(t, "blobs/"+d.String(), 48*time.Hour)
	}

	// With CopyObject, the refresh fails, and Info says so.
	_, err := e.store(t).Info(ctx, blobs[0])
	if err == nil || errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "refreshing blob") {
		t.Errorf("Info refreshing with CopyObject = %v; want the gateway's refusal", err)
	}

	e.proxy.reset()
	start := time.Now().Add(-time.Second)
	export(t, store, g)
	// Each blob: create, 3 part copies (5 + 5 + 2 MiB), complete.
	if n, p := e.proxy.count("COPY"), e.proxy.count("POST"); n != 3*len(blobs) || p != 2*len(blobs) {
		t.Errorf("%d part copies and %d POSTs for %d blobs, want 3 and 2 each", n, p, len(blobs))
	}
	if n := e.proxy.blobUploaded.Load(); n != 0 {
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
	verify(t, store)
	noUploadsLeft(t, e)
}
