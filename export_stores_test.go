package remotecache_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// What Finalize does with what its stores say beyond "have" and "have
// not": distribution source labels, how a blob came to be there, a blob
// that is gone when read, a manifest refused for a blob the store lost.

// tcLabelled is a provider whose Info gives labels.
type tcLabelled struct {
	content.Store
	labels map[string]string
}

func (p tcLabelled) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	info, err := p.Store.Info(ctx, dgst)
	info.Labels = p.labels
	return info, err
}

// tcDescIngester records the descriptors its Writer is given.
type tcDescIngester struct {
	content.Store
	mounts bool
	mu     sync.Mutex
	descs  map[digest.Digest]ocispec.Descriptor
}

// MountsBlobs implements remotecache.BlobMounter, as a registry does: its
// Writer gets the providers' distribution source labels.
func (s *tcDescIngester) MountsBlobs() bool { return s.mounts }

func (s *tcDescIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	wo, err := tcWriterOpts(opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.descs == nil {
		s.descs = map[digest.Digest]ocispec.Descriptor{}
	}
	s.descs[wo.Desc.Digest] = wo.Desc
	s.mu.Unlock()
	return s.Store.Writer(ctx, opts...)
}

// The distribution source labels of a provider's Info reach the
// ingester's Writer as annotations, merged with those the descriptor has;
// the manifest has the descriptors as they were given, so its bytes are
// those of an export without the labels.
func TestFinalizePassesSourceLabelsToWriter(t *testing.T) {
	ctx := context.Background()
	src := tcStore(t)
	const key = "containerd.io/distribution.source.registry.example.com"
	layer := tcLayer(t, src, tcData(1000, "layer"), map[string]string{key: "team/base"})
	labelled := tcLabelled{Store: src, labels: map[string]string{key: "team/app,team/base", "other": "x"}}

	export := func(p content.Provider, mounts bool) (*tcDescIngester, ocispec.Descriptor) {
		dst := &tcDescIngester{Store: tcStore(t), mounts: mounts}
		e, err := remotecache.NewExporter(dst)
		if err != nil {
			t.Fatal(err)
		}
		tcAdd(t, e, tcDigest("r"), nil, tcResult(p, 1, layer))
		res, err := e.Finalize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return dst, tcManifestDesc(t, res)
	}
	dst, withLabels := export(labelled, true)
	got := dst.descs[layer.Digest].Annotations
	if got[key] != "team/base,team/app" || got["other"] != "" {
		t.Errorf("the writer got annotations %v, want %s = team/base,team/app and no other label", got, key)
	}
	if layer.Annotations[key] != "team/base" {
		t.Errorf("the caller's descriptor was changed: %v", layer.Annotations)
	}
	// An ingester that does not mount gets the descriptor as it is.
	if plain, _ := export(labelled, false); plain.descs[layer.Digest].Annotations[key] != "team/base" || plain.descs[layer.Digest].Annotations["other"] != "" {
		t.Errorf("a writer that does not mount got annotations %v, want the descriptor's", plain.descs[layer.Digest].Annotations)
	}
	_, without := export(src, true)
	if withLabels.Digest != without.Digest {
		t.Errorf("manifest %s with labels, %s without: the labels must not reach it", withLabels.Digest, without.Digest)
	}
	layers, _ := tcManifestBlobs(t, dst, withLabels)
	if len(layers) != 1 || layers[0].Annotations[key] != "team/base" {
		t.Errorf("manifest layers %+v, want the descriptor as given", layers)
	}
}

// tcMounting answers ErrAlreadyExists with a SkipDetailer for one blob.
type tcMounting struct {
	content.Store
	blob digest.Digest
}

type tcMounted struct{}

func (tcMounted) Error() string      { return "mounted" }
func (tcMounted) Unwrap() error      { return errdefs.ErrAlreadyExists }
func (tcMounted) SkipDetail() string { return "mounted from registry.example.com/team/base" }

func (s tcMounting) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	wo, err := tcWriterOpts(opts)
	if err != nil {
		return nil, err
	}
	if wo.Desc.Digest == s.blob {
		return nil, tcMounted{}
	}
	return s.Store.Writer(ctx, opts...)
}

// A blob the ingester says it came by without it being sent is reported
// skipped, with what the ingester says.
func TestFinalizeReportsSkipDetail(t *testing.T) {
	src := tcStore(t)
	a := tcBlob(t, src, tcData(1000, "a"))
	b := tcBlob(t, src, tcData(1000, "b"))
	last := tcExportEvents(t, tcMounting{Store: tcStore(t), blob: a.Digest}, src, a, b)
	if ev := last["writing layer "+a.Digest.String()]; !ev.Skipped || ev.Detail != "mounted from registry.example.com/team/base" {
		t.Errorf("mounted blob: %+v, want skipped with the detail", ev)
	}
	if ev := last["writing layer "+b.Digest.String()]; ev.Skipped || ev.Detail != "" {
		t.Errorf("written blob: %+v, want neither skipped nor a detail", ev)
	}
}

// tcVanishing is a provider that says it has every blob of its store
// until a blob of gone is read: then that blob is not found, on read and,
// unless insist, on Info.
type tcVanishing struct {
	content.Store
	insist bool

	mu    sync.Mutex
	gone  map[digest.Digest]bool
	read  map[digest.Digest]bool
	infos map[digest.Digest]int
}

func (p *tcVanishing) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.infos[dgst]++
	if p.gone[dgst] && p.read[dgst] && !p.insist {
		return content.Info{}, errdefs.ErrNotFound
	}
	return p.Store.Info(ctx, dgst)
}

func (p *tcVanishing) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone[desc.Digest] {
		p.read[desc.Digest] = true
		return nil, errdefs.ErrNotFound
	}
	return p.Store.ReaderAt(ctx, desc)
}

// A blob its provider said it had but that is not found when read drops
// the results that need it, as if Info had said so at once (Marshal asks
// again); a provider that goes on saying it has it fails the export,
// naming the blob, before the config or the manifest are written: a cache
// never names a blob its store lacks.
func TestFinalizeBlobGoneWhenRead(t *testing.T) {
	ctx := context.Background()
	for _, insist := range []bool{false, true} {
		src := tcStore(t)
		base := tcBlob(t, src, tcData(1000, "base"))
		leaf := tcBlob(t, src, tcData(1000, "leaf"))
		other := tcBlob(t, src, tcData(1000, "other"))
		p := &tcVanishing{Store: src, insist: insist, gone: map[digest.Digest]bool{leaf.Digest: true}, read: map[digest.Digest]bool{}, infos: map[digest.Digest]int{}}
		dst := &tcSpyIngester{Store: tcStore(t)}
		events := &tcEvents{}
		e, err := remotecache.NewExporter(dst, remotecache.WithProgress(events))
		if err != nil {
			t.Fatal(err)
		}
		a := tcAdd(t, e, tcDigest("a"), nil, tcResult(p, 1, base))
		tcAdd(t, e, tcDigest("b"), tcLinks(tcSlot(a)), tcResult(p, 2, base, leaf))
		tcAdd(t, e, tcDigest("c"), tcLinks(tcSlot(a)), tcResult(p, 2, base, other))
		res, err := e.Finalize(ctx)
		if insist {
			if err == nil || !strings.Contains(err.Error(), leaf.Digest.String()) || !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("insisting provider: %v, want a failed precondition naming %s", err, leaf.Digest)
			}
			for _, c := range dst.commits {
				if c != base.Digest && c != other.Digest {
					t.Errorf("insisting provider: %s was written, want only layers", c)
				}
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := tcReadExport(t, dst, tcManifestDesc(t, res))
		for _, l := range cfg.Layers {
			if l.Blob == leaf.Digest {
				t.Errorf("the config names the blob that is gone")
			}
		}
		if r := tcRecord(t, cfg, tcDigest("b")); len(r.Results) != 0 {
			t.Errorf("record b kept its result: %+v", r)
		}
		if r := tcRecord(t, cfg, tcDigest("c")); len(r.Results) != 1 {
			t.Errorf("record c lost its result: %+v", r)
		}
		if ev := events.last()["writing layer "+leaf.Digest.String()]; !ev.Skipped || ev.Warning == "" || ev.Err != nil {
			t.Errorf("the step of the blob that is gone: %+v, want skipped with a warning", ev)
		}
		for _, d := range []digest.Digest{base.Digest, other.Digest} {
			if n := dst.perDigest[d]; n != 1 {
				t.Errorf("%s written %d times, want once", d, n)
			}
		}
	}
}

// tcLosing is a store that loses a blob it has when the first manifest
// is written, and refuses that manifest, as a registry refuses one that
// names a blob deleted from it (MANIFEST_BLOB_UNKNOWN).
type tcLosing struct {
	*tcSpyIngester
	lose     digest.Digest
	refusals int
	mu       sync.Mutex
	manifest int
}

func (s *tcLosing) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	wo, err := tcWriterOpts(opts)
	if err != nil {
		return nil, err
	}
	if wo.Desc.MediaType == ocispec.MediaTypeImageManifest {
		s.mu.Lock()
		s.manifest++
		n := s.manifest
		s.mu.Unlock()
		if n <= s.refusals {
			if s.lose != "" {
				if err := s.Store.Delete(ctx, s.lose); err != nil && !errdefs.IsNotFound(err) {
					return nil, err
				}
			}
			return nil, errors.New("manifest blob unknown")
		}
	}
	return s.tcSpyIngester.Writer(ctx, opts...)
}

// A manifest the store refuses makes Finalize check every blob again:
// what the store lost is written again and the manifest once more; if
// nothing was lost, the refusal stands.
func TestFinalizeRewritesBlobsTheStoreLost(t *testing.T) {
	ctx := context.Background()
	src := tcStore(t)
	a := tcBlob(t, src, tcData(1000, "a"))
	b := tcBlob(t, src, tcData(1000, "b"))
	for _, tc := range []struct {
		name     string
		lose     digest.Digest
		refusals int
		ok       bool
	}{
		{"a layer lost", b.Digest, 1, true},
		{"nothing lost", "", 1, false},
		{"refused again", b.Digest, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := &tcLosing{tcSpyIngester: &tcSpyIngester{Store: tcStore(t)}, lose: tc.lose, refusals: tc.refusals}
			events := &tcEvents{}
			e, err := remotecache.NewExporter(dst, remotecache.WithProgress(events))
			if err != nil {
				t.Fatal(err)
			}
			tcAdd(t, e, tcDigest("r"), nil, tcResult(src, 1, a, b))
			res, err := e.Finalize(ctx)
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "manifest blob unknown") {
					t.Fatalf("Finalize: %v, want the store's refusal", err)
				}
				if want := min(tc.refusals, 2); dst.manifest != want {
					t.Errorf("%d manifest writes, want %d", dst.manifest, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg, _ := tcReadExport(t, dst, tcManifestDesc(t, res))
			if len(cfg.Layers) != 2 {
				t.Errorf("config has %d layers", len(cfg.Layers))
			}
			if n := dst.perDigest[b.Digest]; n != 2 {
				t.Errorf("lost blob written %d times, want 2", n)
			}
			if n := dst.perDigest[a.Digest]; n != 1 {
				t.Errorf("kept blob written %d times, want 1", n)
			}
			if ev := events.last()["writing layer "+b.Digest.String()+" again"]; ev.Completed.IsZero() || ev.Err != nil || ev.Skipped {
				t.Errorf("step of the rewrite: %+v", ev)
			}
		})
	}
}

// tcManifestDesc decodes Finalize's response.
func tcManifestDesc(t testing.TB, res map[string]string) ocispec.Descriptor {
	t.Helper()
	return cachetest.ManifestDesc(t, res)
}

// tcReadExport reads the config and the layers of the manifest desc from p.
func tcReadExport(t testing.TB, p content.Provider, desc ocispec.Descriptor) (*remotecache.CacheConfig, []ocispec.Descriptor) {
	t.Helper()
	layers, config := tcManifestBlobs(t, p, desc)
	dt, err := content.ReadBlob(context.Background(), p, config)
	if err != nil {
		t.Fatal(err)
	}
	var cfg remotecache.CacheConfig
	if err := json.Unmarshal(dt, &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg, layers
}
