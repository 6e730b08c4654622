package azbtest

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	azbstore "github.com/buildcache/remotecache/azblob"
)

// Export in the config-only form, Resolve, import, export again: the same
// config; the blobs have BuildKit's names; Verify reads every blob back.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
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
	if cfg := e.blob(t, "manifests/buildkit"); !bytes.Equal(cfg, want) {
		t.Errorf("manifests/buildkit is not the config:\n%s\nwant\n%s", cfg, want)
	}
	var blobs []string
	for _, d := range configBlobs(t, want) {
		blobs = append(blobs, "blobs/"+d.String())
	}
	if names := e.names(t); !slices.Equal(names, append(blobs, "manifests/buildkit")) {
		t.Errorf("blobs %q, want the %d blobs of the config and manifests/buildkit", names, len(blobs))
	}
	if again := reimport(t, store); !bytes.Equal(again, want) {
		t.Errorf("export, import, export changed the config")
	}
	verify(t, store)
	// Blobs keep their media type as content type; the config has its own.
	p, err := e.admin.NewBlobClient("manifests/buildkit").GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ct := *p.ContentType; ct != remotecache.CacheConfigMediaTypeV0 {
		t.Errorf("config has content type %q", ct)
	}
}

// A second export of the same cache sends no blob byte: only the config,
// under each name, which moves them.
func TestReexportUploadsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t, azbstore.WithNames("a", "b"))
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
	if n, w := e.proxy.count("PUT"), e.proxy.writes(); n != 2 || w != 2 {
		t.Errorf("re-export made %d Put Blobs and %d writes in all (%s), want 2 (the config under a and b)", n, w, e.proxy.summary())
	}
}

// An existing blob older than the touch refresh age is refreshed (its
// metadata set again, its content type kept, its bytes not sent); younger
// ones are not; a read-only store refreshes nothing.
func TestTouchRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	store := e.store(t)
	g := graph(3, 40, 100)
	desc := export(t, store, g)

	var old, young []digest.Digest
	types, etags := map[digest.Digest]string{}, map[digest.Digest]string{}
	for i, d := range configBlobs(t, e.blob(t, "manifests/buildkit")) {
		p, err := e.admin.NewBlobClient("blobs/"+d.String()).GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		types[d], etags[d] = *p.ContentType, string(*p.ETag)
		if i%2 == 0 {
			e.proxy.age("blobs/"+d.String(), 25*time.Hour)
			old = append(old, d)
		} else {
			e.proxy.age("blobs/"+d.String(), 23*time.Hour)
			young = append(young, d)
		}
	}
	if len(old) == 0 || len(young) == 0 {
		t.Fatal("graph too small")
	}

	// Read-only: nothing is refreshed, and Info tells the age.
	e.proxy.reset()
	ro := e.store(t, azbstore.WithReadOnly())
	for _, d := range old {
		info, err := ro.Info(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if age := time.Since(info.UpdatedAt); age < 24*time.Hour {
			t.Fatalf("old blob %s updated %v ago", d, age)
		}
	}
	if n := e.proxy.writes(); n != 0 {
		t.Fatalf("read-only Info made %d writes", n)
	}

	e.proxy.reset()
	start := time.Now().Add(-time.Second)
	export(t, store, g)
	if n := e.proxy.count("METADATA"); n != len(old) {
		t.Errorf("%d refreshes, want %d (the old blobs)", n, len(old))
	}
	if n := e.proxy.blobUploaded.Load(); n != 0 {
		t.Errorf("%d blob bytes uploaded", n)
	}
	for _, d := range old {
		name := "blobs/" + d.String()
		if n := e.proxy.countName("METADATA", name); n != 1 {
			t.Errorf("old blob %s refreshed %d times", d, n)
		}
		// Azurite's own properties: a new ETag and Last-Modified, the
		// refresh time in the metadata, the content type kept.
		p, err := e.admin.NewBlobClient(name).GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(*p.ETag) == etags[d] || p.LastModified.Before(start.Truncate(time.Second)) {
			t.Errorf("old blob %s: ETag %s (was %s), last modified %v, after the refresh", d, *p.ETag, etags[d], p.LastModified)
		}
		if ct := *p.ContentType; ct != types[d] {
			t.Errorf("old blob %s: content type %q after the refresh, want %q", d, ct, types[d])
		}
		if len(p.Metadata) != 1 {
			t.Errorf("old blob %s: metadata %v, want updated_at", d, p.Metadata)
		}
		info, err := store.Info(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if info.UpdatedAt.Before(start) {
			t.Errorf("old blob %s: updated at %v after the refresh", d, info.UpdatedAt)
		}
	}
	for _, d := range young {
		name := "blobs/" + d.String()
		if n := e.proxy.countName("METADATA", name); n != 0 {
			t.Errorf("young blob %s refreshed", d)
		}
		p, err := e.admin.NewBlobClient(name).GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(*p.ETag) != etags[d] {
			t.Errorf("young blob %s changed", d)
		}
	}
	// The old blobs are young now: a third export refreshes nothing.
	e.proxy.reset()
	if again := export(t, store, g); again.Digest != desc.Digest {
		t.Errorf("config changed")
	}
	if n := e.proxy.count("METADATA"); n != 0 {
		t.Errorf("third export made %d refreshes", n)
	}
	verify(t, store)
}

// A blob over the block size is staged in blocks and committed with a
// block list; it reads back whole, from any offset.
func TestBlocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	store := e.store(t, azbstore.WithBlockSize(1<<20), azbstore.WithBlockConcurrency(2))
	g := graph(4, 3, 5<<19+3) // 2.5 MiB and 3 bytes: 3 blocks
	export(t, store, g)
	blobs := 0
	for _, b := range g.Blobs {
		if !b.Missing {
			blobs++
		}
	}
	if n, l, p := e.proxy.count("BLOCK"), e.proxy.count("BLOCKLIST"), e.proxy.count("PUT"); n != 3*blobs || l != blobs || p != 1 {
		t.Errorf("%d blocks, %d block lists, %d Put Blobs for %d blobs; want 3 blocks and a list each, and one Put Blob (the config)", n, l, p, blobs)
	}
	verify(t, store)
	for d, b := range g.Blobs {
		if b.Missing {
			continue
		}
		bl, err := e.admin.NewBlockBlobClient("blobs/"+d.String()).GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(bl.CommittedBlocks) != 3 || len(bl.UncommittedBlocks) != 0 {
			t.Errorf("blob %s: %d committed blocks, %d uncommitted", d, len(bl.CommittedBlocks), len(bl.UncommittedBlocks))
		}
	}

	rng := rand.New(rand.NewPCG(4, 4))
	for d, b := range g.Blobs {
		if b.Missing {
			continue
		}
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

// Names are joined as paths, as BuildKit's filepath.Join joins them: "ci"
// and "ci/" are one prefix.
func TestPrefixJoinsAsPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := graph(5, 10, 0)
	a := e.store(t, azbstore.WithPrefix("ci"), azbstore.WithNames("main"))
	if s := a.String(); s != "azblob:"+e.container+"/ci:main" {
		t.Errorf("String() = %q", s)
	}
	export(t, a, g)
	names := e.names(t)
	for _, n := range names {
		if n != "ci/manifests/main" && !strings.HasPrefix(n, "ci/blobs/sha256:") {
			t.Errorf("blob %q", n)
		}
	}
	if !slices.Contains(names, "ci/manifests/main") {
		t.Errorf("no config at ci/manifests/main: %q", names)
	}
	// The same cache through "ci/": nothing new to send.
	b := e.store(t, azbstore.WithPrefix("ci/"), azbstore.WithNames("main"))
	e.proxy.reset()
	export(t, b, g)
	if n := e.proxy.blobUploaded.Load(); n != 0 || !slices.Equal(e.names(t), names) {
		t.Errorf("through prefix ci/: %d blob bytes sent, blobs %q", n, e.names(t))
	}
	verify(t, b)
	// Other directories, and a name with a slash.
	c := e.store(t, azbstore.WithPrefix("x/y"), azbstore.WithManifestsPrefix("m"), azbstore.WithBlobsPrefix("b/"), azbstore.WithNames("pr/42"))
	export(t, c, g)
	if !slices.Contains(e.names(t), "x/y/m/pr/42") {
		t.Errorf("no config at x/y/m/pr/42: %q", e.names(t))
	}
	verify(t, c)
}

// Every name gets the config; Resolve reads the first name only.
func TestNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t, azbstore.WithNames("a", "b"))
	g := graph(6, 10, 0)
	export(t, store, g)
	a, b := e.blob(t, "manifests/a"), e.blob(t, "manifests/b")
	if !bytes.Equal(a, b) {
		t.Error("manifests/a and manifests/b differ")
	}
	ctx := context.Background()
	if _, err := e.store(t, azbstore.WithNames("b", "missing")).Resolve(ctx); err != nil {
		t.Errorf("Resolve of b: %v", err)
	}
	_, err := e.store(t, azbstore.WithNames("missing", "a")).Resolve(ctx)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "manifests/missing") {
		t.Errorf("Resolve of a missing first name = %v, want not found naming manifests/missing", err)
	}
}

// A blob deleted behind the store's back is not found, and the next export
// uploads it again; so is one cut short.
func TestDeletedBlob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t)
	g := graph(7, 20, 0)
	export(t, store, g)
	d := g.BlobOrder[0]
	name := "blobs/" + d.String()
	if _, err := e.admin.NewBlobClient(name).Delete(context.Background(), nil); err != nil {
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
	if n := e.proxy.countName("PUT", name); n != 1 {
		t.Errorf("deleted blob uploaded %d times", n)
	}
	verify(t, store)

	// Cut short: Info gives another size, and the export writes it over.
	cut := g.Blobs[d].Bytes()[:g.Blobs[d].Descriptor.Size/2]
	e.upload(t, name, string(cut))
	e.proxy.reset()
	export(t, store, g)
	if n := e.proxy.countName("PUT", name); n != 1 {
		t.Errorf("cut blob uploaded %d times", n)
	}
	verify(t, store)
}

// Resolve of a name with no config is not found, in a container that
// exists and in one that does not (which a reading store does not make).
func TestResolveMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.store(t).Resolve(context.Background())
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "manifests/buildkit") {
		t.Fatalf("Resolve = %v, want not found naming manifests/buildkit", err)
	}
	m := newEnv(t, true)
	for _, s := range []*azbstore.Store{m.store(t), m.store(t, azbstore.WithReadOnly())} {
		if _, err := s.Resolve(context.Background()); !errdefs.IsNotFound(err) {
			t.Errorf("Resolve in a missing container = %v, want not found", err)
		}
		if _, err := s.Info(context.Background(), digest.FromString("x")); !errdefs.IsNotFound(err) {
			t.Errorf("Info in a missing container = %v, want not found", err)
		}
	}
	if n := m.proxy.writes(); n != 0 {
		t.Errorf("reads made %d writes (%s)", n, m.proxy.summary())
	}
}

// An export into a container that does not exist creates it, once, as
// BuildKit's exporter does; with WithCreateContainer(false) it fails,
// saying so.
func TestCreatesContainer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	g := graph(8, 20, 0)
	_, err := tryExport(context.Background(), e.store(t, azbstore.WithCreateContainer(false)), g)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "ContainerNotFound") {
		t.Errorf("export without creating the container = %v", err)
	}
	if n := e.proxy.count("CREATE"); n != 0 {
		t.Errorf("%d container creations", n)
	}
	store := e.store(t)
	export(t, store, g)
	if n := e.proxy.count("CREATE"); n < 1 || n > 4 {
		t.Errorf("%d container creations, want 1 to 4 (the exporter's concurrency)", n)
	}
	if _, err := e.admin.GetProperties(context.Background(), nil); err != nil {
		t.Errorf("container: %v", err)
	}
	verify(t, store)
}

// The store keeps the config-only form: an exporter writing a manifest
// fails, with nothing under the manifests directory.
func TestManifestFormsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := e.store(t)
	g := graph(9, 10, 0)
	for _, f := range []remotecache.ManifestFormat{remotecache.FormatImageManifest, remotecache.FormatOCIIndex, remotecache.FormatManifestList} {
		_, err := tryExport(context.Background(), store, g, remotecache.WithManifestFormat(f))
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "config-only") {
			t.Errorf("%s: Finalize = %v, want an invalid argument naming the config-only form", f, err)
		}
	}
	for _, n := range e.names(t) {
		if strings.HasPrefix(n, "manifests/") {
			t.Errorf("%s written", n)
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
// a writer closed before Commit, leaves no blob.
func TestWriterChecksBeforeUpload(t *testing.T) {
	t.Parallel()
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
	if names := e.names(t); len(names) != 0 {
		t.Errorf("blobs left: %q", names)
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
	if got := e.blob(t, "blobs/"+desc.Digest.String()); !bytes.Equal(got, dt) {
		t.Errorf("blob written without a descriptor: %q", got)
	}
	// Written again: written over, the same bytes.
	if err := content.WriteBlob(ctx, store, "e", bytes.NewReader(dt), desc); err != nil {
		t.Errorf("writing a blob that is there: %v", err)
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

// Each way of giving the account works: a connection string, the account
// URL with a shared key (BuildKit's account_url, account_name and
// secret_access_key), $AZURE_STORAGE_CONNECTION_STRING, and a client of
// the caller's.
func TestCredentials(t *testing.T) {
	e := newEnv(t)
	g := graph(10, 10, 0)
	clientOpts := clientOptions(t, 3)
	for _, tc := range []struct {
		name string
		env  string
		opts []azbstore.Option
	}{
		{"connection string", "", []azbstore.Option{azbstore.WithConnectionString(connectionString(e.proxy.URL))}},
		{"shared key", "", []azbstore.Option{azbstore.WithAccountURL(e.proxy.URL + "/" + account), azbstore.WithSharedKey(account, accountKey)}},
		{"environment", connectionString(e.proxy.URL), nil},
		{"client", "", []azbstore.Option{azbstore.WithClient(client(t, e.proxy.URL))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(azbstore.EnvConnectionString, tc.env)
				defer os.Unsetenv(azbstore.EnvConnectionString)
			}
			opts := append(tc.opts, azbstore.WithNames(tc.name))
			if tc.name != "client" {
				opts = append(opts, azbstore.WithClientOptions(clientOpts))
			}
			store, err := azbstore.New(context.Background(), e.container, opts...)
			if err != nil {
				t.Fatal(err)
			}
			export(t, store, g)
			verify(t, store)
		})
	}
	// A wrong key is refused, and it is not "not found".
	store, err := azbstore.New(context.Background(), e.container, azbstore.WithAccountURL(e.proxy.URL+"/"+account),
		azbstore.WithSharedKey(account, "d3Jvbmc="), azbstore.WithClientOptions(clientOpts))
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Resolve(context.Background())
	if err == nil || errdefs.IsNotFound(err) || !(errdefs.IsPermissionDenied(err) || errdefs.IsUnauthorized(err)) {
		t.Errorf("Resolve with a wrong key = %v, want permission denied or unauthenticated", err)
	}
}
