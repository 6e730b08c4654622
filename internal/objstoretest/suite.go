package objstoretest

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/objstore"
)

// Store is an object store as the suite uses it: s3.Store or
// azblob.Store, with Prune taking the shared options.
type Store interface {
	Resolver
	content.InfoProvider
	content.Ingester
	Prune(ctx context.Context, o objstore.PruneOptions) (objstore.PruneReport, error)
}

// Settings are the store settings the suite varies.
type Settings struct {
	// Names are the cache names (nil: the default, "buildkit").
	Names []string
	// ReadOnly opens the store read-only.
	ReadOnly bool
}

// Env is one bucket or container of a real server, behind a Proxy, with
// the default prefixes: blobs under "blobs/", configs under
// "manifests/".
type Env interface {
	// Store opens a store through the proxy.
	Store(t testing.TB, s Settings) Store
	// Proxy is the proxy the stores go through.
	Proxy() *Proxy
	// Keys lists every object's key, sorted, straight from the server.
	Keys(t testing.TB) []string
	// Object reads an object straight from the server.
	Object(t testing.TB, key string) []byte
	// ContentType returns an object's content type.
	ContentType(t testing.TB, key string) string
	// Put writes an object straight to the server.
	Put(t testing.TB, key, body string)
	// Delete removes an object straight from the server.
	Delete(t testing.TB, key string)
	// Age makes an object look last changed d ago; one gone since it was
	// listed is left alone.
	Age(t testing.TB, key string, d time.Duration)
}

// Suite is the conformance suite of an object store.
type Suite struct {
	// Open makes an Env of its own for a test.
	Open func(t testing.TB) Env
	// RefreshOp is the Proxy op of a touch refresh ("COPY" for S3's
	// copy onto itself, "METADATA" for Azure's Set Blob Metadata).
	RefreshOp string
	// Parallel runs the tests in parallel.
	Parallel bool
}

// Run runs the suite, each test as a subtest of t.
func (s Suite) Run(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T, Suite)
	}{
		{"RoundTrip", testRoundTrip},
		{"ReexportUploadsNothing", testReexportUploadsNothing},
		{"TouchRefresh", testTouchRefresh},
		{"Names", testNames},
		{"DeletedBlob", testDeletedBlob},
		{"ResolveMissing", testResolveMissing},
		{"ManifestFormsRefused", testManifestFormsRefused},
		{"WriterChecksBeforeUpload", testWriterChecksBeforeUpload},
		{"Prune", testPrune},
		{"PruneUnreadableConfig", testPruneUnreadableConfig},
		{"PruneWithConcurrentExport", testPruneWithConcurrentExport},
		{"ReadOnlyWritesNothing", testReadOnlyWritesNothing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s.Parallel {
				t.Parallel()
			}
			tc.fn(t, s)
		})
	}
}

// Export in the config-only form, Resolve, import, export again: the same
// config; the objects have BuildKit's keys, the config its media type as
// content type; Verify reads every blob back.
func testRoundTrip(t *testing.T, s Suite) {
	e := s.Open(t)
	store := e.Store(t, Settings{})
	g := Graph(1, 80, 0)
	desc := Export(t, store, g)

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
	want := MarshalConfigOnly(t, g)
	if cfg := e.Object(t, "manifests/buildkit"); !bytes.Equal(cfg, want) {
		t.Errorf("manifests/buildkit is not the config:\n%s\nwant\n%s", cfg, want)
	}
	var blobs []string
	for _, d := range ConfigBlobs(t, want) {
		blobs = append(blobs, "blobs/"+d.String())
	}
	if keys := e.Keys(t); !slices.Equal(keys, append(blobs, "manifests/buildkit")) {
		t.Errorf("keys %q, want the %d blobs of the config and manifests/buildkit", keys, len(blobs))
	}
	if again := Reimport(t, store); !bytes.Equal(again, want) {
		t.Errorf("export, import, export changed the config")
	}
	Verify(t, store)
	if ct := e.ContentType(t, "manifests/buildkit"); ct != remotecache.CacheConfigMediaTypeV0 {
		t.Errorf("config has content type %q", ct)
	}
}

// A second export of the same cache sends no blob byte: only the config,
// under each name, which moves them.
func testReexportUploadsNothing(t *testing.T, s Suite) {
	e := s.Open(t)
	store := e.Store(t, Settings{Names: []string{"a", "b"}})
	g := Graph(2, 60, 1000)
	desc := Export(t, store, g)
	p := e.Proxy()
	p.Reset()
	if again := Export(t, store, g); again.Digest != desc.Digest {
		t.Fatalf("re-export wrote config %s, first %s", again.Digest, desc.Digest)
	}
	if n := p.BlobUploaded.Load(); n != 0 {
		t.Errorf("re-export uploaded %d blob bytes", n)
	}
	if n := p.Uploaded.Load(); n != 2*desc.Size {
		t.Errorf("re-export uploaded %d bytes, want the config twice (%d)", n, 2*desc.Size)
	}
	if n, w := p.Count("PUT"), p.Writes(); n != 2 || w != 2 {
		t.Errorf("re-export made %d PUTs and %d writes in all (%s), want 2 (the config under a and b)", n, w, p.Summary())
	}
}

// An existing blob older than the touch refresh age is refreshed, its
// content type kept and its bytes not sent; younger ones are not; a
// read-only store refreshes nothing.
func testTouchRefresh(t *testing.T, s Suite) {
	e := s.Open(t)
	ctx := context.Background()
	store := e.Store(t, Settings{})
	g := Graph(3, 40, 100)
	desc := Export(t, store, g)

	var old, young []digest.Digest
	types := map[digest.Digest]string{}
	for i, d := range ConfigBlobs(t, e.Object(t, "manifests/buildkit")) {
		key := "blobs/" + d.String()
		types[d] = e.ContentType(t, key)
		if i%2 == 0 {
			e.Age(t, key, 25*time.Hour)
			old = append(old, d)
		} else {
			e.Age(t, key, 23*time.Hour)
			young = append(young, d)
		}
	}
	if len(old) == 0 || len(young) == 0 {
		t.Fatal("graph too small")
	}

	// Read-only: nothing is refreshed, and Info tells the age.
	p := e.Proxy()
	p.Reset()
	ro := e.Store(t, Settings{ReadOnly: true})
	for _, d := range old {
		info, err := ro.Info(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if age := time.Since(info.UpdatedAt); age < 24*time.Hour {
			t.Fatalf("old blob %s updated %v ago", d, age)
		}
	}
	if n := p.Writes(); n != 0 {
		t.Fatalf("read-only Info made %d writes", n)
	}

	p.Reset()
	start := time.Now().Add(-time.Second)
	Export(t, store, g)
	if n := p.Count(s.RefreshOp); n != len(old) {
		t.Errorf("%d refreshes, want %d (the old blobs)", n, len(old))
	}
	if n := p.BlobUploaded.Load(); n != 0 {
		t.Errorf("%d blob bytes uploaded", n)
	}
	for _, d := range old {
		key := "blobs/" + d.String()
		if n := p.CountKey(s.RefreshOp, key); n != 1 {
			t.Errorf("old blob %s refreshed %d times", d, n)
		}
		info, err := store.Info(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if info.UpdatedAt.Before(start) {
			t.Errorf("old blob %s: updated at %v after the refresh", d, info.UpdatedAt)
		}
		if ct := e.ContentType(t, key); ct != types[d] {
			t.Errorf("old blob %s: content type %q after the refresh, want %q", d, ct, types[d])
		}
	}
	for _, d := range young {
		if n := p.CountKey(s.RefreshOp, "blobs/"+d.String()); n != 0 {
			t.Errorf("young blob %s refreshed", d)
		}
	}
	// The old blobs are young now: a third export refreshes nothing.
	p.Reset()
	if again := Export(t, store, g); again.Digest != desc.Digest {
		t.Errorf("config changed")
	}
	if n := p.Count(s.RefreshOp); n != 0 {
		t.Errorf("third export made %d refreshes", n)
	}
	Verify(t, store)
}

// Every name gets the config; Resolve reads the first name only.
func testNames(t *testing.T, s Suite) {
	e := s.Open(t)
	Export(t, e.Store(t, Settings{Names: []string{"a", "b"}}), Graph(6, 10, 0))
	if a, b := e.Object(t, "manifests/a"), e.Object(t, "manifests/b"); !bytes.Equal(a, b) {
		t.Error("manifests/a and manifests/b differ")
	}
	ctx := context.Background()
	if _, err := e.Store(t, Settings{Names: []string{"b", "missing"}}).Resolve(ctx); err != nil {
		t.Errorf("Resolve of b: %v", err)
	}
	_, err := e.Store(t, Settings{Names: []string{"missing", "a"}}).Resolve(ctx)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "manifests/missing") {
		t.Errorf("Resolve of a missing first name = %v, want not found naming manifests/missing", err)
	}
}

// A blob deleted behind the store's back is not found, and the next export
// uploads it again; so is one cut short.
func testDeletedBlob(t *testing.T, s Suite) {
	e := s.Open(t)
	store := e.Store(t, Settings{})
	g := Graph(7, 20, 0)
	Export(t, store, g)
	d := g.BlobOrder[0]
	key := "blobs/" + d.String()
	e.Delete(t, key)
	_, err := store.Info(context.Background(), d)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("Info of a deleted blob = %v, want not found naming it", err)
	}
	_, err = store.ReaderAt(context.Background(), g.Blobs[d].Descriptor)
	if !errdefs.IsNotFound(err) {
		t.Fatalf("ReaderAt of a deleted blob = %v, want not found", err)
	}
	p := e.Proxy()
	p.Reset()
	Export(t, store, g)
	if n := p.CountKey("PUT", key); n != 1 {
		t.Errorf("deleted blob uploaded %d times", n)
	}
	Verify(t, store)

	// Cut short: Info gives another size, and the export writes it over.
	e.Put(t, key, string(g.Blobs[d].Bytes()[:g.Blobs[d].Descriptor.Size/2]))
	p.Reset()
	Export(t, store, g)
	if n := p.CountKey("PUT", key); n != 1 {
		t.Errorf("cut blob uploaded %d times", n)
	}
	Verify(t, store)
}

// Resolve of a name with no config is not found, naming it.
func testResolveMissing(t *testing.T, s Suite) {
	e := s.Open(t)
	_, err := e.Store(t, Settings{}).Resolve(context.Background())
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "manifests/buildkit") {
		t.Fatalf("Resolve = %v, want not found naming manifests/buildkit", err)
	}
}

// The store keeps the config-only form: an exporter writing a manifest
// fails, with nothing under the manifests prefix.
func testManifestFormsRefused(t *testing.T, s Suite) {
	e := s.Open(t)
	store := e.Store(t, Settings{})
	g := Graph(8, 10, 0)
	for _, f := range []remotecache.ManifestFormat{remotecache.FormatImageManifest, remotecache.FormatOCIIndex, remotecache.FormatManifestList} {
		_, err := TryExport(context.Background(), store, g, remotecache.WithManifestFormat(f))
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "config-only") {
			t.Errorf("%s: Finalize = %v, want an invalid argument naming the config-only form", f, err)
		}
	}
	for _, k := range e.Keys(t) {
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
func testWriterChecksBeforeUpload(t *testing.T, s Suite) {
	e := s.Open(t)
	store := e.Store(t, Settings{})
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
	if n := e.Proxy().Writes(); n != 0 {
		t.Errorf("%d writes sent", n)
	}
	if keys := e.Keys(t); len(keys) != 0 {
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
	if got := e.Object(t, "blobs/"+desc.Digest.String()); !bytes.Equal(got, dt) {
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

// StoreOptions returns the options of a store's package (its WithNames
// and WithReadOnly) that give s, for an Env's Store.
func StoreOptions[O any](s Settings, names func(...string) O, readOnly func() O) []O {
	var opts []O
	if s.Names != nil {
		opts = append(opts, names(s.Names...))
	}
	if s.ReadOnly {
		opts = append(opts, readOnly())
	}
	return opts
}

// PruneOptions returns the options of a store's package (its
// WithGracePeriod, and WithDryRun for a dry run) that give o, for a Store
// whose Prune takes the suite's options.
func PruneOptions[O ~func(*objstore.PruneOptions) error](o objstore.PruneOptions, grace func(time.Duration) O, dryRun func() O) []O {
	opts := []O{grace(o.GracePeriod)}
	if o.DryRun {
		opts = append(opts, dryRun())
	}
	return opts
}
