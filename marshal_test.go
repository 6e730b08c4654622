package remotecache_test

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// tcInfoSpy counts Info calls per digest on a real store.
type tcInfoSpy struct {
	content.Store
	calls cachetest.Counter
}

func (s *tcInfoSpy) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	s.calls.Add(dgst)
	return s.Store.Info(ctx, dgst)
}

func TestMarshalDropsUnavailableResults(t *testing.T) {
	store := tcStore(t)
	have := tcBlob(t, store, []byte("have"))
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: tcDigest("missing"), Size: 7}
	c := remotecache.NewCacheChains()
	tcAdd(t, c, tcDigest("ok"), nil, tcResult(store, 1, have))
	tcAdd(t, c, tcDigest("gone"), nil, tcResult(store, 1, have, missing))
	cfg, dp := tcMarshal(t, c)
	if rec := tcRecord(t, cfg, tcDigest("gone")); len(rec.Results) != 0 {
		t.Fatalf("result with a missing blob kept: %+v", rec.Results)
	}
	if rec := tcRecord(t, cfg, tcDigest("ok")); len(rec.Results) != 1 {
		t.Fatalf("available result dropped: %+v", rec.Results)
	}
	if _, ok := dp[missing.Digest]; ok {
		t.Fatal("missing blob has a descriptor")
	}
	if len(cfg.Layers) != 1 {
		t.Fatalf("layers = %+v, want only the available one", cfg.Layers)
	}
}

// A provider without Info is trusted, as BuildKit does.
type tcReaderOnly struct{ p content.Provider }

func (r tcReaderOnly) ReaderAt(ctx context.Context, d ocispec.Descriptor) (content.ReaderAt, error) {
	return r.p.ReaderAt(ctx, d)
}

// A provider whose Info is not implemented is trusted too.
type tcInfoNotImplemented struct{ tcReaderOnly }

func (tcInfoNotImplemented) Info(context.Context, digest.Digest) (content.Info, error) {
	return content.Info{}, errdefs.ErrNotImplemented
}

func TestMarshalTrustsProvidersWithoutInfo(t *testing.T) {
	store := tcStore(t)
	blob := tcBlob(t, store, []byte("blob"))
	for name, p := range map[string]content.Provider{
		"no Info":              tcReaderOnly{store},
		"Info not implemented": tcInfoNotImplemented{tcReaderOnly{store}},
	} {
		c := remotecache.NewCacheChains()
		tcAdd(t, c, tcDigest("r"), nil, tcResult(p, 1, blob))
		cfg, _ := tcMarshal(t, c)
		if len(tcRecord(t, cfg, tcDigest("r")).Results) != 1 {
			t.Errorf("%s: result dropped", name)
		}
	}
}

func TestMarshalCallsInfoOncePerBlob(t *testing.T) {
	store := tcStore(t)
	spy := &tcInfoSpy{Store: store}
	base := tcBlob(t, store, []byte("base"))
	mid := tcBlob(t, store, []byte("mid"))
	top := tcBlob(t, store, []byte("top"))
	c := remotecache.NewCacheChains()
	a := tcAdd(t, c, tcDigest("a"), nil, tcResult(spy, 1, base))
	b := tcAdd(t, c, tcDigest("b"), tcLinks(tcSlot(a)), tcResult(spy, 2, base, mid))
	tcAdd(t, c, tcDigest("c"), tcLinks(tcSlot(b)), tcResult(spy, 3, base, mid, top))
	tcAdd(t, c, tcDigest("d"), tcLinks(tcSlot(b)), tcResult(spy, 4, base, top))
	tcMarshal(t, c)
	for _, d := range []ocispec.Descriptor{base, mid, top} {
		if n := spy.calls.Get(d.Digest); n != 1 {
			t.Errorf("Info(%s) called %d times, want 1", d.Digest, n)
		}
	}
}

func TestMarshalDeduplicatesLayers(t *testing.T) {
	store := tcStore(t)
	base := tcBlob(t, store, []byte("base"))
	other := tcBlob(t, store, []byte("other"))
	top := tcBlob(t, store, []byte("top"))
	c := remotecache.NewCacheChains()
	tcAdd(t, c, tcDigest("a"), nil, tcResult(store, 1, base, top))
	tcAdd(t, c, tcDigest("b"), nil, tcResult(store, 1, base, top))  // same chain
	tcAdd(t, c, tcDigest("c"), nil, tcResult(store, 1, other, top)) // same top, other parent
	tcAdd(t, c, tcDigest("d"), nil, tcResult(store, 1, base))       // a prefix
	cfg, dp := tcMarshal(t, c)
	// base, other, top-on-base, top-on-other.
	if len(cfg.Layers) != 4 {
		t.Fatalf("layers = %+v, want 4", cfg.Layers)
	}
	type chain struct {
		blob   digest.Digest
		parent digest.Digest
	}
	seen := map[chain]bool{}
	for _, l := range cfg.Layers {
		k := chain{blob: l.Blob}
		if l.ParentIndex >= 0 {
			k.parent = cfg.Layers[l.ParentIndex].Blob
		}
		if seen[k] {
			t.Fatalf("layer %+v written twice", k)
		}
		seen[k] = true
	}
	ra, rb := tcRecord(t, cfg, tcDigest("a")), tcRecord(t, cfg, tcDigest("b"))
	if ra.Results[0].LayerIndex != rb.Results[0].LayerIndex {
		t.Fatal("records with the same chain point at different layers")
	}
	if len(dp) != 3 {
		t.Fatalf("%d descriptors, want 3", len(dp))
	}
}

func TestMarshalNormalizesMediaTypes(t *testing.T) {
	store := tcStore(t)
	for _, tc := range []struct{ in, want string }{
		{images.MediaTypeDockerSchema2LayerGzip, ocispec.MediaTypeImageLayerGzip},
		{images.MediaTypeDockerSchema2Layer, ocispec.MediaTypeImageLayer},
		{images.MediaTypeDockerSchema2LayerZstd, ocispec.MediaTypeImageLayerZstd},
		{ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerGzip},
		{"application/x-custom", "application/x-custom"},
	} {
		d := tcBlob(t, store, []byte(tc.in))
		d.MediaType = tc.in
		c := remotecache.NewCacheChains()
		tcAdd(t, c, tcDigest("r"), nil, tcResult(store, 1, d))
		_, dp := tcMarshal(t, c)
		if got := dp[d.Digest].Descriptor.MediaType; got != tc.want {
			t.Errorf("%s became %s, want %s", tc.in, got, tc.want)
		}
		if dp[d.Digest].Descriptor.Annotations["containerd.io/uncompressed"] == "" {
			t.Errorf("%s: annotations lost", tc.in)
		}
	}
}

func TestDescriptorProviderServesBlobs(t *testing.T) {
	store := tcStore(t)
	d := tcBlob(t, store, []byte("served"))
	c := remotecache.NewCacheChains()
	tcAdd(t, c, tcDigest("r"), nil, tcResult(store, 1, d))
	_, dp := tcMarshal(t, c)
	got, err := content.ReadBlob(context.Background(), dp, d)
	if err != nil || string(got) != "served" {
		t.Fatalf("ReadBlob = %q, %v", got, err)
	}
	if _, err := dp.Info(context.Background(), tcDigest("nope")); !errdefs.IsNotFound(err) {
		t.Fatalf("Info(unknown) = %v, want not found", err)
	}
	if _, err := dp.ReaderAt(context.Background(), ocispec.Descriptor{Digest: tcDigest("nope")}); !errdefs.IsNotFound(err) {
		t.Fatalf("ReaderAt(unknown) = %v, want not found", err)
	}
}

// tcInfoFails is a real store whose Info fails, with a cause other than
// "not found", for the blobs in fail: a registry answering 503 past its
// retries, a timeout, a refused credential.
type tcInfoFails struct {
	content.Store
	fail map[digest.Digest]error
}

func (s tcInfoFails) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if err := s.fail[dgst]; err != nil {
		return content.Info{}, err
	}
	return s.Store.Info(ctx, dgst)
}

// Only "not found" drops a result: any other Info error fails Marshal and
// the export, naming the blob and the cause, and nothing is written.
func TestMarshalFailsOnInfoErrorsOtherThanNotFound(t *testing.T) {
	store := tcStore(t)
	a := tcBlob(t, store, []byte("a"))
	b := tcBlob(t, store, []byte("b"))
	cause := errors.Wrap(errdefs.ErrUnavailable, "HEAD /v2/cache/blobs: 503 Service Unavailable: UNAVAILABLE: try again")
	src := tcInfoFails{Store: store, fail: map[digest.Digest]error{b.Digest: cause}}

	c := remotecache.NewCacheChains()
	tcAdd(t, c, tcDigest("a"), nil, tcResult(src, 1, a))
	tcAdd(t, c, tcDigest("b"), nil, tcResult(src, 1, a, b))
	_, _, err := c.Marshal(context.Background())
	if err == nil {
		t.Fatal("Marshal succeeded; want the Info error")
	}
	if !errdefs.IsUnavailable(err) {
		t.Errorf("error %q is not of class unavailable", err)
	}
	for _, want := range []string{b.Digest.String(), "503 Service Unavailable"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	dst := tcStore(t)
	exp, err := remotecache.NewExporter(dst)
	if err != nil {
		t.Fatal(err)
	}
	tcAdd(t, exp, tcDigest("b"), nil, tcResult(src, 1, a, b))
	if _, err := exp.Finalize(context.Background()); !errdefs.IsUnavailable(err) {
		t.Fatalf("Finalize = %v, want the unavailable error", err)
	}
	for _, d := range []ocispec.Descriptor{a, b} {
		if _, err := dst.Info(context.Background(), d.Digest); !errdefs.IsNotFound(err) {
			t.Errorf("blob %s in the store after a failed export (Info: %v)", d.Digest, err)
		}
	}
}
