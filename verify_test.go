package remotecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	stderrors "errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
)

// tcWriteCache writes a cache config and an image manifest naming it and
// layers into store, as they are given, and returns the manifest's
// descriptor.
func tcWriteCache(t *testing.T, store content.Ingester, config []byte, layers ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	cdesc := ocispec.Descriptor{MediaType: remotecache.CacheConfigMediaTypeV0, Digest: digest.FromBytes(config), Size: int64(len(config))}
	if err := content.WriteBlob(ctx, store, "tc-config", bytes.NewReader(config), cdesc); err != nil {
		t.Fatal(err)
	}
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	mdt, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cdesc, Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	mdesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mdt), Size: int64(len(mdt))}
	if err := content.WriteBlob(ctx, store, "tc-manifest", bytes.NewReader(mdt), mdesc); err != nil {
		t.Fatal(err)
	}
	return mdesc
}

// Verify reports every structural problem that makes Import refuse a
// cache, each with its location, and so never calls such a cache sound.
func TestVerifyReportsStructuralProblems(t *testing.T) {
	ctx := context.Background()
	store := tcStore(t)
	l := tcBlob(t, store, []byte("layer"))
	a, b := tcDigest("a"), tcDigest("b")
	for _, tc := range []struct {
		name   string
		config string
		want   []string // one per problem, in order
	}{
		{
			name:   "record loop",
			config: fmt.Sprintf(`{"layers":[{"blob":%q,"parent":-1}],"records":[{"digest":%q,"layers":[{"layer":0}],"inputs":[[{"link":1}]]},{"digest":%q,"inputs":[[{"link":0}]]}]}`, l.Digest, a, b),
			want:   []string{"record 1: input 0 link 0: loop through record 0"},
		},
		{
			name:   "record that is its own input",
			config: fmt.Sprintf(`{"layers":[{"blob":%q,"parent":-1}],"records":[{"digest":%q,"layers":[{"layer":0}],"inputs":[[{"link":0}]]}]}`, l.Digest, a),
			want:   []string{"record 0: input 0 link 0: loop through record 0"},
		},
		{
			name:   "indexes out of range",
			config: fmt.Sprintf(`{"layers":[{"blob":%q,"parent":-1}],"records":[{"digest":%q,"layers":[{"layer":3}],"inputs":[[{"link":7}]]}]}`, l.Digest, a),
			want:   []string{"record 0: input 0 link 0: record index 7 out of range", "record 0: result 0: layer index 3 out of range"},
		},
		{
			name:   "layer loop and empty slot",
			config: fmt.Sprintf(`{"layers":[{"blob":%q}],"records":[{"digest":%q,"layers":[{"layer":0}],"inputs":[[]]}]}`, l.Digest, a),
			want:   []string{"record 0: input 0 is empty", "layer 0: loop among parents at layer 0"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := tcWriteCache(t, store, []byte(tc.config), l)
			// Import refuses it ...
			if err := remotecache.Import(ctx, store, desc, remotecache.NewCacheChains()); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want[0]) {
				t.Fatalf("Import = %v, want %q", err, tc.want[0])
			}
			// ... and Verify says why, every time.
			problems, err := remotecache.Verify(ctx, store, desc)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != len(tc.want) {
				t.Fatalf("problems %v, want %d: %q", problems, len(tc.want), tc.want)
			}
			for i, p := range problems {
				if !strings.Contains(p.Err.Error(), tc.want[i]) || !errdefs.IsInvalidArgument(p.Err) {
					t.Errorf("problem %d = %v, want %q", i, p, tc.want[i])
				}
				if p.Descriptor.MediaType != remotecache.CacheConfigMediaTypeV0 {
					t.Errorf("problem %d is not located at the cache config: %v", i, p)
				}
			}
		})
	}
}

func TestCheckConfigSoundConfig(t *testing.T) {
	store := tcStore(t)
	c := remotecache.NewCacheChains()
	tcGraph(t, c, store)
	cfg, _ := tcMarshal(t, c)
	if problems := remotecache.CheckConfig(cfg); problems != nil {
		t.Fatalf("CheckConfig of a marshalled graph = %v", problems)
	}
	if problems := remotecache.CheckConfig(nil); len(problems) != 1 || !errdefs.IsInvalidArgument(problems[0]) {
		t.Fatalf("CheckConfig(nil) = %v", problems)
	}
}

// A nil provider is an error, not a panic; an invalid option is an error,
// not a Problem.
func TestReadAndVerifyBadArguments(t *testing.T) {
	ctx := context.Background()
	store := tcStore(t)
	desc := tcWriteCache(t, store, []byte(`{"layers":[],"records":[]}`))
	if _, err := remotecache.ReadManifest(ctx, nil, desc); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReadManifest(nil provider) = %v", err)
	}
	m, err := remotecache.ReadManifest(ctx, store, desc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remotecache.ReadConfig(ctx, nil, m); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReadConfig(nil provider) = %v", err)
	}
	if _, err := remotecache.ReadConfig(ctx, store, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReadConfig(nil manifest) = %v", err)
	}
	if problems, err := remotecache.Verify(ctx, nil, desc); !errdefs.IsInvalidArgument(err) || problems != nil {
		t.Errorf("Verify(nil provider) = %v, %v", problems, err)
	}
	if problems, err := remotecache.Verify(ctx, store, desc, remotecache.WithMaxBlobSize(0)); !errdefs.IsInvalidArgument(err) || problems != nil {
		t.Errorf("Verify(WithMaxBlobSize(0)) = %v, %v; want an error, no problems", problems, err)
	}
	if problems, err := remotecache.Verify(ctx, store, desc); err != nil || len(problems) != 0 {
		t.Errorf("Verify of a sound empty cache = %v, %v", problems, err)
	}
}

// tcPlainFailure is a provider and ingester whose every call fails with an
// error of no errdefs class, as a third party's may.
type tcPlainFailure struct{}

func (tcPlainFailure) ReaderAt(context.Context, ocispec.Descriptor) (content.ReaderAt, error) {
	return nil, stderrors.New("disk gone")
}

func (tcPlainFailure) Writer(context.Context, ...content.WriterOpt) (content.Writer, error) {
	return nil, stderrors.New("disk gone")
}

// Errors from the stores and targets the package is given reach the
// caller with a class: errdefs.ErrUnknown when they had none.
func TestErrorsOfOthersGetAClass(t *testing.T) {
	ctx := context.Background()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: tcDigest("m"), Size: 10}
	if err := remotecache.Import(ctx, tcPlainFailure{}, desc, remotecache.NewCacheChains()); !errdefs.IsUnknown(err) || !strings.Contains(err.Error(), "disk gone") {
		t.Errorf("Import = %v, want class unknown", err)
	}
	if _, err := remotecache.Verify(ctx, tcPlainFailure{}, desc); err != nil {
		t.Errorf("Verify = %v: an unreadable manifest is a Problem", err)
	}
	if _, err := remotecache.ReadManifest(ctx, tcPlainFailure{}, desc); !errdefs.IsUnknown(err) {
		t.Errorf("ReadManifest = %v, want class unknown", err)
	}
	src := tcStore(t)
	e, err := remotecache.NewExporter(tcPlainFailure{})
	if err != nil {
		t.Fatal(err)
	}
	tcAdd(t, e, tcDigest("r"), nil, tcResult(src, 1, tcBlob(t, src, []byte("l"))))
	if _, err := e.Finalize(ctx); !errdefs.IsUnknown(err) || !strings.Contains(err.Error(), "disk gone") {
		t.Errorf("Finalize = %v, want class unknown", err)
	}
}

// ReadCache gives what ReadManifest then ReadConfig give, in every form,
// reading the manifest and the config once each: the config-only form's
// one blob once. Its errors are theirs.
func TestReadCache(t *testing.T) {
	ctx := context.Background()
	for _, f := range append(itFormats[:len(itFormats):len(itFormats)], remotecache.FormatConfigOnly) {
		t.Run(f.String(), func(t *testing.T) {
			src := tcStore(t)
			add := func(tg remotecache.Target) { tcGoldenGraphAnnotated(t, tg, src, true) }
			var dst content.Store
			var desc ocispec.Descriptor
			if f == remotecache.FormatConfigOnly {
				dst = tcStore(t)
				desc, _ = tcExportConfigOnly(t, dst, add)
			} else {
				dst, desc, _ = itExport(t, f, add)
			}
			m, err := remotecache.ReadManifest(ctx, dst, desc)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := remotecache.ReadConfig(ctx, dst, m)
			if err != nil {
				t.Fatal(err)
			}
			p := &tcCountingProvider{Provider: dst}
			gotM, gotCfg, err := remotecache.ReadCache(ctx, p, desc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotM, m) {
				t.Errorf("ReadCache manifest = %+v, ReadManifest = %+v", gotM, m)
			}
			if !bytes.Equal(tcJSON(t, gotCfg), tcJSON(t, cfg)) {
				t.Errorf("ReadCache config = %s, ReadConfig = %s", tcJSON(t, gotCfg), tcJSON(t, cfg))
			}
			total, per := p.reads.All()
			want := map[digest.Digest]int{desc.Digest: 1, m.Config.Digest: 1}
			if f == remotecache.FormatConfigOnly {
				want = map[digest.Digest]int{desc.Digest: 1}
			}
			if total != len(want) || !maps.Equal(per, want) {
				t.Errorf("ReadCache read %v, want %v", per, want)
			}
		})
	}

	store := tcStore(t)
	desc := tcWriteCache(t, store, []byte(`{"layers":[],"records":[]}`))
	if _, _, err := remotecache.ReadCache(ctx, nil, desc); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReadCache(nil provider) = %v", err)
	}
	if _, _, err := remotecache.ReadCache(ctx, store, desc, remotecache.WithMaxBlobSize(0)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReadCache(WithMaxBlobSize(0)) = %v", err)
	}
	if _, _, err := remotecache.ReadCache(ctx, store, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: tcDigest("no manifest"), Size: 2}); !errdefs.IsNotFound(err) {
		t.Errorf("ReadCache(missing manifest) = %v, want not found", err)
	}
	m, err := remotecache.ReadManifest(ctx, store, desc)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, m.Config.Digest); err != nil {
		t.Fatal(err)
	}
	_, want := remotecache.ReadConfig(ctx, store, m)
	gotM, gotCfg, err := remotecache.ReadCache(ctx, store, desc)
	if !errdefs.IsNotFound(err) || err.Error() != want.Error() || gotM != nil || gotCfg != nil {
		t.Errorf("ReadCache(missing config) = %v, %v, %v; want nothing and %v", gotM, gotCfg, err, want)
	}
}
