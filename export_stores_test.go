package remotecache_test

import (
	"context"
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
// not": distribution source labels, how a blob came to be there.

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
	mu    sync.Mutex
	descs map[digest.Digest]ocispec.Descriptor
}

func (s *tcDescIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
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

	export := func(p content.Provider) (*tcDescIngester, ocispec.Descriptor) {
		dst := &tcDescIngester{Store: tcStore(t)}
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
	dst, withLabels := export(labelled)
	got := dst.descs[layer.Digest].Annotations
	if got[key] != "team/base,team/app" || got["other"] != "" {
		t.Errorf("the writer got annotations %v, want %s = team/base,team/app and no other label", got, key)
	}
	if layer.Annotations[key] != "team/base" {
		t.Errorf("the caller's descriptor was changed: %v", layer.Annotations)
	}
	_, without := export(src)
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
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
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
	events := &tcEvents{}
	e, err := remotecache.NewExporter(tcMounting{Store: tcStore(t), blob: a.Digest}, remotecache.WithProgress(events))
	if err != nil {
		t.Fatal(err)
	}
	tcAdd(t, e, tcDigest("r"), nil, tcResult(src, 1, a, b))
	if _, err := e.Finalize(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := events.last()
	if ev := last["writing layer "+a.Digest.String()]; !ev.Skipped || ev.Detail != "mounted from registry.example.com/team/base" {
		t.Errorf("mounted blob: %+v, want skipped with the detail", ev)
	}
	if ev := last["writing layer "+b.Digest.String()]; ev.Skipped || ev.Detail != "" {
		t.Errorf("written blob: %+v, want neither skipped nor a detail", ev)
	}
}

// tcManifestDesc decodes Finalize's response.
func tcManifestDesc(t testing.TB, res map[string]string) ocispec.Descriptor {
	t.Helper()
	return cachetest.ManifestDesc(t, res)
}
