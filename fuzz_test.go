package remotecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// Seed corpora are in testdata/fuzz/FuzzParse and testdata/fuzz/FuzzImport;
// they include the BuildKit fixture's config and manifest.

var (
	fzOnce     sync.Once
	fzBlobs    itMem                          // every blob of the fixture
	fzLayers   remotecache.DescriptorProvider // the fixture's layers, plus two small ones
	fzFixtures struct{ manifest, config []byte }
)

// fzSetup loads the fixture once per process: fuzz workers call the fuzz
// function many times.
func fzSetup(t testing.TB) {
	fzOnce.Do(func() {
		fzBlobs = itMem{}
		fzLayers = remotecache.DescriptorProvider{}
		dir := filepath.Join(itFixtureDir, "blobs", "sha256")
		entries, err := os.ReadDir(dir)
		if err != nil {
			panic(err)
		}
		for _, e := range entries {
			dt, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				panic(err)
			}
			fzBlobs[digest.NewDigestFromEncoded(digest.SHA256, e.Name())] = dt
		}
		mdesc := itFixtureManifestDesc(t)
		fzFixtures.manifest = fzBlobs[mdesc.Digest]
		var m ocispec.Manifest
		if err := json.Unmarshal(fzFixtures.manifest, &m); err != nil {
			panic(err)
		}
		fzFixtures.config = fzBlobs[m.Config.Digest]
		for _, l := range m.Layers {
			fzLayers[l.Digest] = remotecache.DescriptorProviderPair{Descriptor: l, Provider: fzBlobs}
		}
		for _, s := range []string{"layer0", "layer1"} {
			d := fzBlobs.put(ocispec.MediaTypeImageLayerGzip, []byte(s))
			fzLayers[d.Digest] = remotecache.DescriptorProviderPair{Descriptor: d, Provider: fzBlobs}
		}
	})
}

// fzImport imports desc from p, with blobs up to 1 MiB, into a spy and
// into a CacheChains, and checks what it did (fzCheck).
func fzImport(t *testing.T, p content.Provider, desc ocispec.Descriptor) {
	t.Helper()
	ctx := context.Background()
	spy := &itSpy{}
	errSpy := remotecache.Import(ctx, p, desc, spy, remotecache.WithMaxBlobSize(1<<20))
	cc := remotecache.NewCacheChains()
	errCC := remotecache.Import(ctx, p, desc, cc, remotecache.WithMaxBlobSize(1<<20))
	fzCheck(t, -1, errSpy, errCC, spy, cc, errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrFailedPrecondition)
}

// fzCheck checks what Parse or Import did with one input: the same result
// into a spy and into CacheChains; errors of a known class; on success,
// every record added (after its inputs), and a graph that marshals.
func fzCheck(t *testing.T, records int, errSpy, errCC error, spy *itSpy, cc *remotecache.CacheChains, classes ...error) {
	t.Helper()
	if (errSpy == nil) != (errCC == nil) {
		t.Fatalf("into a spy: %v; into CacheChains: %v", errSpy, errCC)
	}
	if errCC != nil {
		for _, c := range classes {
			if errors.Is(errCC, c) && errors.Is(errSpy, c) {
				return
			}
		}
		t.Fatalf("error of no expected class: %v / %v", errCC, errSpy)
	}
	if records >= 0 && len(spy.calls) != records {
		t.Fatalf("%d records added, config has %d", len(spy.calls), records)
	}
	// Marshal after a successful Parse.
	cfg, descs, out := cachetest.Marshal(t, cc)
	if len(cfg.Records) > len(spy.calls) {
		t.Fatalf("Marshal wrote %d records from %d Add calls", len(cfg.Records), len(spy.calls))
	}
	for _, l := range cfg.Layers {
		if _, ok := descs[l.Blob]; !ok {
			t.Fatalf("Marshal wrote layer %s without a descriptor", l.Blob)
		}
	}
	// What Marshal writes, Parse reads: the same records and layers, so
	// that marshalling again gives the same bytes and blobs.
	again := remotecache.NewCacheChains()
	if err := remotecache.Parse(out, descs, again); err != nil {
		t.Fatalf("Parse of Marshal's output: %v\n%s", err, out)
	}
	_, descs2, out2 := cachetest.Marshal(t, again)
	if !bytes.Equal(out, out2) {
		t.Fatalf("round trip changed the config:\nbefore: %s\nafter:  %s", out, out2)
	}
	if len(descs2) != len(descs) {
		t.Fatalf("round trip has %d blobs, before %d", len(descs2), len(descs))
	}
	for d, pair := range descs {
		if got, ok := descs2[d]; !ok || got.Descriptor.Digest != pair.Descriptor.Digest || got.Descriptor.Size != pair.Descriptor.Size {
			t.Fatalf("round trip lost or changed blob %s", d)
		}
	}
}

func FuzzParse(f *testing.F) {
	fzSetup(f)
	l0, l1 := digest.FromString("layer0"), digest.FromString("layer1")
	f.Add(fzFixtures.config)
	f.Add([]byte(itConfigJSON(l0, l1)))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"records":[{"digest":"` + string(l0) + `","inputs":[[{"link":0}]]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fzSetup(t)
		records := -1
		var cfg remotecache.CacheConfig
		if json.Unmarshal(data, &cfg) == nil {
			records = len(cfg.Records)
		}
		spy := &itSpy{}
		errSpy := remotecache.Parse(data, fzLayers, spy)
		cc := remotecache.NewCacheChains()
		errCC := remotecache.Parse(data, fzLayers, cc)
		fzCheck(t, records, errSpy, errCC, spy, cc, errdefs.ErrInvalidArgument)
	})
}

// fzOverlay serves two blobs of one fuzz input over the fixture's blobs.
type fzOverlay struct{ top, base itMem }

func (o fzOverlay) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	if _, ok := o.top[desc.Digest]; ok {
		return o.top.ReaderAt(ctx, desc)
	}
	return o.base.ReaderAt(ctx, desc)
}

func (o fzOverlay) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	if _, ok := o.top[dgst]; ok {
		return o.top.Info(ctx, dgst)
	}
	return o.base.Info(ctx, dgst)
}

// In FuzzImport's manifest, these tokens are replaced by the digest and
// size of the config argument, so that the fuzzer reaches Parse through
// manifests of every form.
const (
	fzConfigDigest = "CONFIGDIGEST"
	fzConfigSize   = "CONFIGSIZE"
)

func FuzzImport(f *testing.F) {
	fzSetup(f)
	l0, l1 := digest.FromString("layer0"), digest.FromString("layer1")
	cfg := []byte(itConfigJSON(l0, l1))
	layers := `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + string(l0) + `","size":6},` +
		`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + string(l1) + `","size":6}`
	config := `{"mediaType":"application/vnd.buildkit.cacheconfig.v0","digest":"CONFIGDIGEST","size":CONFIGSIZE}`
	f.Add(fzFixtures.manifest, fzFixtures.config)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":`+config+`,"layers":[`+layers+`]}`), cfg)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+layers+`,`+config+`]}`), cfg)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[`+layers+`,`+config+`]}`), cfg)
	f.Fuzz(func(t *testing.T, manifest, config []byte) {
		fzSetup(t)
		cd := digest.FromBytes(config)
		manifest = bytes.ReplaceAll(manifest, []byte(fzConfigDigest), []byte(cd))
		manifest = bytes.ReplaceAll(manifest, []byte(fzConfigSize), strconv.AppendInt(nil, int64(len(config)), 10))
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
		fzImport(t, fzOverlay{top: itMem{desc.Digest: manifest, cd: config}, base: fzBlobs}, desc)
	})
}

// FuzzImportConfigOnly imports a config-only cache: the config is the blob
// Import reads, and its layers' annotations become the descriptors.
func FuzzImportConfigOnly(f *testing.F) {
	fzSetup(f)
	golden, err := os.ReadFile(filepath.Join("testdata", "golden", "config-only.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	l0 := digest.FromString("layer0")
	f.Add([]byte(`{"layers":[{"blob":"` + string(l0) + `","parent":-1,"annotations":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","diffID":"` + string(l0) + `","size":6,"createdAt":"2026-01-02T03:04:05.5Z"}}],"records":[{"digest":"` + string(l0) + `","layers":[{"layer":0,"createdAt":"2026-01-02T03:04:05Z"}]}]}`))
	f.Fuzz(func(t *testing.T, config []byte) {
		fzSetup(t)
		desc := ocispec.Descriptor{MediaType: remotecache.CacheConfigMediaTypeV0, Digest: digest.FromBytes(config), Size: int64(len(config))}
		fzImport(t, fzOverlay{top: itMem{desc.Digest: config}, base: fzBlobs}, desc)
	})
}
