package remotecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// tcManifestBlobs reads the manifest at desc and returns the descriptors it
// lists (layers, then config) and the media types of the layers.
func tcManifestBlobs(t testing.TB, p content.Provider, desc ocispec.Descriptor) (layers []ocispec.Descriptor, config ocispec.Descriptor) {
	t.Helper()
	dt, err := content.ReadBlob(context.Background(), p, desc)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(dt) != desc.Digest {
		t.Fatal("manifest digest does not match")
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest:
		var m ocispec.Manifest
		if err := json.Unmarshal(dt, &m); err != nil {
			t.Fatal(err)
		}
		return m.Layers, m.Config
	default:
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			t.Fatal(err)
		}
		n := len(idx.Manifests)
		return idx.Manifests[:n-1], idx.Manifests[n-1]
	}
}

// tcGraph adds a small graph whose layers include one blob on top of two
// different parents, and returns the blobs.
func tcGraph(t testing.TB, tg remotecache.Target, src content.Store) []ocispec.Descriptor {
	t.Helper()
	base := tcBlob(t, src, tcData(3000, "base"))
	alt := tcBlob(t, src, tcData(2000, "alt"))
	top := tcBlob(t, src, tcData(5000, "top"))
	a := tcAdd(t, tg, tcDigest("a"), nil, tcResult(src, 1, base))
	b := tcAdd(t, tg, tcDigest("b"), nil, tcResult(src, 1, alt))
	tcAdd(t, tg, tcDigest("c"), tcLinks(tcSlot(a)), tcResult(src, 2, base, top))
	tcAdd(t, tg, tcDigest("d"), tcLinks(tcSlot(b)), tcResult(src, 2, alt, top))
	return []ocispec.Descriptor{base, alt, top}
}

func TestFinalizeWritesLayersThenConfigThenManifest(t *testing.T) {
	src := tcStore(t)
	dst := &tcSpyIngester{Store: tcStore(t)}
	e, err := remotecache.NewExporter(dst)
	if err != nil {
		t.Fatal(err)
	}
	blobs := tcGraph(t, e, src)
	res, err := e.Finalize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mdesc := cachetest.ManifestDesc(t, res)
	if mdesc.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("default manifest media type %s", mdesc.MediaType)
	}
	layers, config := tcManifestBlobs(t, dst, mdesc)
	if len(dst.commits) != 5 {
		t.Fatalf("commits %v, want 3 layers, config, manifest", dst.commits)
	}
	var layerDigests []digest.Digest
	for _, b := range blobs {
		layerDigests = append(layerDigests, b.Digest)
	}
	for _, d := range dst.commits[:3] {
		if !slices.Contains(layerDigests, d) {
			t.Fatalf("commit order %v: %s is not a layer", dst.commits, d)
		}
	}
	if dst.commits[3] != config.Digest || dst.commits[4] != mdesc.Digest {
		t.Fatalf("commit order %v: want config %s then manifest %s last", dst.commits, config.Digest, mdesc.Digest)
	}
	// Each blob once, though top sits on two parents.
	if len(layers) != 3 {
		t.Fatalf("manifest lists %d layers, want each of the 3 blobs once", len(layers))
	}
	for _, l := range layers {
		if l.Annotations["containerd.io/uncompressed"] == "" {
			t.Fatalf("layer %s lost its annotations", l.Digest)
		}
	}
	if config.MediaType != remotecache.CacheConfigMediaTypeV0 {
		t.Fatalf("config media type %s", config.MediaType)
	}
	// The config in the store is the one Marshal gives.
	cfg, _ := tcMarshal(t, e.Chains())
	want, _ := json.Marshal(cfg)
	got, err := content.ReadBlob(context.Background(), dst, config)
	if err != nil || string(got) != string(want) {
		t.Fatalf("config in store = %s, %v; want %s", got, err, want)
	}
}

func TestFinalizeMediaTypesPerFormat(t *testing.T) {
	const custom = "application/vnd.example.layer"
	for _, tc := range []struct {
		format   remotecache.ManifestFormat
		manifest string
		layer    map[string]string // in -> out
	}{
		{remotecache.FormatImageManifest, ocispec.MediaTypeImageManifest, map[string]string{
			images.MediaTypeDockerSchema2LayerGzip: ocispec.MediaTypeImageLayerGzip,
			ocispec.MediaTypeImageLayerZstd:        ocispec.MediaTypeImageLayerZstd,
			custom:                                 custom,
		}},
		{remotecache.FormatOCIIndex, ocispec.MediaTypeImageIndex, map[string]string{
			images.MediaTypeDockerSchema2Layer: ocispec.MediaTypeImageLayer,
			ocispec.MediaTypeImageLayerGzip:    ocispec.MediaTypeImageLayerGzip,
			custom:                             custom,
		}},
		{remotecache.FormatManifestList, images.MediaTypeDockerSchema2ManifestList, map[string]string{
			ocispec.MediaTypeImageLayerGzip: images.MediaTypeDockerSchema2LayerGzip,
			ocispec.MediaTypeImageLayerZstd: images.MediaTypeDockerSchema2LayerZstd,
			ocispec.MediaTypeImageLayer:     images.MediaTypeDockerSchema2Layer,
			custom:                          custom,
		}},
	} {
		t.Run(tc.format.String(), func(t *testing.T) {
			src, dst := tcStore(t), tcStore(t)
			e, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(tc.format))
			if err != nil {
				t.Fatal(err)
			}
			want := map[digest.Digest]string{}
			i := 0
			for in, out := range tc.layer {
				d := tcBlob(t, src, []byte(in))
				d.MediaType = in
				want[d.Digest] = out
				tcAdd(t, e, tcDigest(fmt.Sprint(i)), nil, tcResult(src, 1, d))
				i++
			}
			res, err := e.Finalize(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			mdesc := cachetest.ManifestDesc(t, res)
			if mdesc.MediaType != tc.manifest {
				t.Fatalf("manifest media type %s, want %s", mdesc.MediaType, tc.manifest)
			}
			layers, config := tcManifestBlobs(t, dst, mdesc)
			if config.MediaType != remotecache.CacheConfigMediaTypeV0 {
				t.Fatalf("last descriptor %s is not the config", config.MediaType)
			}
			for _, l := range layers {
				if l.MediaType != want[l.Digest] {
					t.Errorf("layer %s: media type %s, want %s", l.Digest, l.MediaType, want[l.Digest])
				}
			}
			if len(layers) != len(want) {
				t.Errorf("%d layers, want %d", len(layers), len(want))
			}
		})
	}
}

// tcSlowProvider serves a real store's blobs with a pause per read, and
// counts reads per digest.
type tcSlowProvider struct {
	content.Store
	pause time.Duration
	opens cachetest.Counter
}

func (p *tcSlowProvider) ReaderAt(ctx context.Context, d ocispec.Descriptor) (content.ReaderAt, error) {
	p.opens.Add(d.Digest)
	ra, err := p.Store.ReaderAt(ctx, d)
	if err != nil {
		return nil, err
	}
	return &tcSlowReader{ReaderAt: ra, pause: p.pause}, nil
}

type tcSlowReader struct {
	content.ReaderAt
	pause time.Duration
}

func (r *tcSlowReader) ReadAt(b []byte, off int64) (int, error) {
	time.Sleep(r.pause)
	return r.ReaderAt.ReadAt(b, off)
}

func TestFinalizeConcurrencyAndOnceEach(t *testing.T) {
	for _, limit := range []int{1, 3} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			src := &tcSlowProvider{Store: tcStore(t), pause: 20 * time.Millisecond}
			dst := &tcSpyIngester{Store: tcStore(t)}
			e, err := remotecache.NewExporter(dst, remotecache.WithConcurrency(limit))
			if err != nil {
				t.Fatal(err)
			}
			var blobs []ocispec.Descriptor
			for i := range 8 {
				blobs = append(blobs, tcBlob(t, src.Store, tcData(100+i, fmt.Sprint("blob", i))))
			}
			// Every blob used by several records and chains.
			for i := range 24 {
				tcAdd(t, e, tcDigest(fmt.Sprint("r", i)), nil, tcResult(src, i, blobs[i%8], blobs[(i+1)%8]))
			}
			if _, err := e.Finalize(context.Background()); err != nil {
				t.Fatal(err)
			}
			if dst.maxFlight > limit {
				t.Errorf("%d writes at once, limit %d", dst.maxFlight, limit)
			}
			if limit > 1 && dst.maxFlight < 2 {
				t.Errorf("writes never overlapped (max %d) with limit %d", dst.maxFlight, limit)
			}
			for _, b := range blobs {
				if n := dst.perDigest[b.Digest]; n != 1 {
					t.Errorf("blob %s written %d times", b.Digest, n)
				}
				if n := src.opens.Get(b.Digest); n != 1 {
					t.Errorf("blob %s read %d times", b.Digest, n)
				}
			}
		})
	}
}

func TestFinalizeSkipsBlobsInStore(t *testing.T) {
	src := tcStore(t)
	store := tcStore(t)
	// The destination already has one layer.
	base := tcBlob(t, src, tcData(1000, "base"))
	tcBlob(t, store, tcData(1000, "base"))
	top := tcBlob(t, src, tcData(1000, "top"))
	last := tcExportEvents(t, &tcSpyIngester{Store: store}, src, base, top)
	if ev := last["writing layer "+base.Digest.String()]; !ev.Skipped || ev.Completed.IsZero() {
		t.Errorf("blob in store: event %+v, want skipped and completed", ev)
	}
	if ev := last["writing layer "+top.Digest.String()]; ev.Skipped || ev.Completed.IsZero() || ev.Current != ev.Total || ev.Total != top.Size {
		t.Errorf("new blob: event %+v, want completed with %d of %d bytes", ev, top.Size, top.Size)
	}

	// Export the same again into the same store: nothing is written at all.
	again := &tcSpyIngester{Store: store}
	events2 := &tcEvents{}
	e2, _ := remotecache.NewExporter(again, remotecache.WithProgress(events2))
	tcAdd(t, e2, tcDigest("r"), nil, tcResult(src, 1, base, top))
	if _, err := e2.Finalize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again.writers != 0 {
		t.Errorf("re-export opened %d writers, want 0", again.writers)
	}
	for id, ev := range events2.last() {
		if !ev.Skipped {
			t.Errorf("re-export: step %q not skipped", id)
		}
	}
}

// tcReaderProvider serves a real store's blobs through wrap.
type tcReaderProvider struct {
	content.Store
	wrap func(content.ReaderAt) content.ReaderAt
}

func (p tcReaderProvider) ReaderAt(ctx context.Context, d ocispec.Descriptor) (content.ReaderAt, error) {
	ra, err := p.Store.ReaderAt(ctx, d)
	if err != nil {
		return nil, err
	}
	return p.wrap(ra), nil
}

// tcCorrupt serves s's blobs with the right length but the wrong content.
func tcCorrupt(s content.Store) content.Provider {
	return tcReaderProvider{s, func(ra content.ReaderAt) content.ReaderAt { return tcCorruptReader{ra} }}
}

type tcCorruptReader struct{ content.ReaderAt }

func (r tcCorruptReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := r.ReaderAt.ReadAt(b, off)
	for i := range n {
		b[i] ^= 0x5a
	}
	return n, err
}

// tcShort serves s's blobs claiming one byte fewer than the descriptor.
func tcShort(s content.Store) content.Provider {
	return tcReaderProvider{s, func(ra content.ReaderAt) content.ReaderAt { return tcShortReader{ra} }}
}

type tcShortReader struct{ content.ReaderAt }

func (r tcShortReader) Size() int64 { return r.ReaderAt.Size() - 1 }

func TestFinalizeRejectsWrongBytes(t *testing.T) {
	for name, wrap := range map[string]func(content.Store) content.Provider{
		"corrupt": tcCorrupt,
		"short":   tcShort,
	} {
		t.Run(name, func(t *testing.T) {
			src := tcStore(t)
			dst := tcStore(t)
			d := tcBlob(t, src, tcData(3<<20, "payload"))
			e, _ := remotecache.NewExporter(dst)
			tcAdd(t, e, tcDigest("r"), nil, tcResult(wrap(src), 1, d))
			_, err := e.Finalize(context.Background())
			if err == nil || !strings.Contains(err.Error(), d.Digest.String()) {
				t.Fatalf("err = %v, want a failure naming %s", err, d.Digest)
			}
			if _, err := dst.Info(context.Background(), d.Digest); !errdefs.IsNotFound(err) {
				t.Fatalf("blob with wrong bytes is in the store: %v", err)
			}
			st, err := dst.ListStatuses(context.Background())
			if err != nil || len(st) != 0 {
				t.Fatalf("ingests left behind: %+v, %v", st, err)
			}
			n := 0
			dst.Walk(context.Background(), func(content.Info) error { n++; return nil })
			if n != 0 {
				t.Fatalf("%d blobs in the store after a failed export, want 0", n)
			}
		})
	}
}

func TestFinalizeCancelled(t *testing.T) {
	src := &tcSlowProvider{Store: tcStore(t), pause: 50 * time.Millisecond}
	dst := tcStore(t)
	var blobs []ocispec.Descriptor
	for i := range 6 {
		blobs = append(blobs, tcBlob(t, src.Store, tcData(8<<20, fmt.Sprint("big", i))))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	events := remotecache.ProgressFunc(func(ev remotecache.Event) {
		if ev.Current > 0 {
			once.Do(cancel)
		}
	})
	e, _ := remotecache.NewExporter(dst, remotecache.WithProgress(events), remotecache.WithConcurrency(2))
	for i, b := range blobs {
		tcAdd(t, e, tcDigest(fmt.Sprint(i)), nil, tcResult(src, 1, b))
	}
	err := cachetest.Returns(t, "Finalize after cancel", func() error {
		_, err := e.Finalize(ctx)
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	n := 0
	dst.Walk(context.Background(), func(info content.Info) error { n++; return nil })
	if n == len(blobs) {
		t.Fatal("every blob was written despite the cancel")
	}
	st, _ := dst.ListStatuses(context.Background())
	if len(st) != 0 {
		t.Fatalf("ingests left behind: %+v", st)
	}
	// Nothing names what was not written: no config, no manifest.
	dst.Walk(context.Background(), func(info content.Info) error {
		if !slices.ContainsFunc(blobs, func(b ocispec.Descriptor) bool { return b.Digest == info.Digest }) {
			t.Errorf("non-layer blob %s written by a cancelled export", info.Digest)
		}
		return nil
	})
}

func TestFinalizeNoLayers(t *testing.T) {
	dst := &tcSpyIngester{Store: tcStore(t)}
	events := &tcEvents{}
	e, _ := remotecache.NewExporter(dst, remotecache.WithProgress(events))
	tcAdd(t, e, tcDigest("r"), nil)
	res, err := e.Finalize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if desc, ok, err := remotecache.ResponseManifest(res); ok || err != nil || desc.Digest != "" {
		t.Fatalf("response %v: ResponseManifest = %v, %v, %v; want nothing", res, desc, ok, err)
	}
	if dst.writers != 0 {
		t.Fatalf("%d writers opened, want none", dst.writers)
	}
	skipped := false
	for _, ev := range events.last() {
		skipped = skipped || ev.Skipped
	}
	if !skipped {
		t.Fatalf("no skip reported: %+v", events.events)
	}
}

func TestFinalizeWarnsOnLargeConfig(t *testing.T) {
	src, dst := tcStore(t), tcStore(t)
	blob := tcBlob(t, src, []byte("shared"))
	events := &tcEvents{}
	e, _ := remotecache.NewExporter(dst, remotecache.WithProgress(events))
	root := tcAdd(t, e, tcDigest("root"), nil, tcResult(src, 1, blob))
	// About 190 bytes a record: 7000 records make more than 1 MiB.
	for i := range 7000 {
		tcAdd(t, e, tcDigest(fmt.Sprint(i)), tcLinks(tcSlot(root)), tcResult(src, 1, blob))
	}
	res, err := e.Finalize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, config := tcManifestBlobs(t, dst, cachetest.ManifestDesc(t, res))
	if config.Size <= 1<<20 {
		t.Fatalf("config is %d bytes; the test needs more than 1 MiB", config.Size)
	}
	ev := events.last()["writing config "+config.Digest.String()]
	if !strings.Contains(ev.Warning, "1048576") || ev.Completed.IsZero() || ev.Err != nil {
		t.Fatalf("config event %+v, want a warning about the 1 MiB limit", ev)
	}
	if _, err := dst.Info(context.Background(), config.Digest); err != nil {
		t.Fatalf("large config not written: %v", err)
	}
}

func TestFinalizeProgressIDs(t *testing.T) {
	src, dst := tcStore(t), tcStore(t)
	events := &tcEvents{}
	e, _ := remotecache.NewExporter(dst, remotecache.WithProgress(events))
	blobs := tcGraph(t, e, src)
	res, err := e.Finalize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mdesc := cachetest.ManifestDesc(t, res)
	_, config := tcManifestBlobs(t, dst, mdesc)
	want := []string{"writing config " + config.Digest.String(), "writing manifest " + mdesc.Digest.String()}
	for _, b := range blobs {
		want = append(want, "writing layer "+b.Digest.String())
	}
	last := events.last()
	var got []string
	for id := range last {
		got = append(got, id)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("step ids %q, want %q", got, want)
	}
	// Every step starts before it completes; layers count bytes.
	started := map[string]bool{}
	for _, ev := range events.events {
		if ev.Started.IsZero() {
			t.Fatalf("event without start: %+v", ev)
		}
		if ev.Completed.IsZero() {
			started[ev.ID] = true
		}
	}
	for _, b := range blobs {
		ev := last["writing layer "+b.Digest.String()]
		if ev.Total != b.Size || ev.Current != b.Size || ev.Err != nil {
			t.Errorf("layer event %+v, want %d of %d bytes", ev, b.Size, b.Size)
		}
	}
}

func TestFinalizeSlowSinkDoesNotStallCopy(t *testing.T) {
	src := tcStore(t)
	dst := &tcSpyIngester{Store: tcStore(t)}
	release := make(chan struct{})
	var delivered atomic.Int64
	sink := remotecache.ProgressFunc(func(remotecache.Event) {
		<-release // blocks until the copy is done
		delivered.Add(1)
	})
	e, _ := remotecache.NewExporter(dst, remotecache.WithProgress(sink))
	var blobs []ocispec.Descriptor
	for i := range 5 {
		b := tcBlob(t, src, tcData(3<<20, fmt.Sprint("b", i)))
		blobs = append(blobs, b)
		tcAdd(t, e, tcDigest(fmt.Sprint(i)), nil, tcResult(src, 1, b))
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.Finalize(context.Background())
		done <- err
	}()
	// All blobs, config and manifest get committed while the sink is stuck
	// on its first event.
	deadline := time.Now().Add(30 * time.Second)
	for {
		dst.mu.Lock()
		n := len(dst.commits)
		dst.mu.Unlock()
		if n == len(blobs)+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("copy stalled behind a blocked sink: %d of %d commits", n, len(blobs)+2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Coalesced, but every step's final event arrives.
	if delivered.Load() < int64(len(blobs)+2) {
		t.Fatalf("%d events delivered, want at least one per step", delivered.Load())
	}
}

func TestNewExporterOptions(t *testing.T) {
	store := tcStore(t)
	for _, tc := range []struct {
		name string
		opt  remotecache.ExportOption
	}{
		{"concurrency 0", remotecache.WithConcurrency(0)},
		{"concurrency -1", remotecache.WithConcurrency(-1)},
		{"bad format", remotecache.WithManifestFormat(remotecache.ManifestFormat(42))},
	} {
		if _, err := remotecache.NewExporter(store, tc.opt); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: err = %v, want invalid argument", tc.name, err)
		}
	}
	if _, err := remotecache.NewExporter(store, remotecache.WithConcurrency(0)); err == nil || !strings.Contains(err.Error(), "concurrency 0: must be at least 1") {
		t.Errorf("concurrency 0: err = %v", err)
	}
	if _, err := remotecache.NewExporter(nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("nil ingester: err = %v", err)
	}
	for _, f := range []remotecache.ManifestFormat{remotecache.FormatImageManifest, remotecache.FormatOCIIndex, remotecache.FormatManifestList} {
		got, err := remotecache.ParseManifestFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseManifestFormat(%q) = %v, %v", f, got, err)
		}
	}
	if _, err := remotecache.ParseManifestFormat("docker"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ParseManifestFormat(docker) = %v", err)
	}
}

// tcLaxIngester hands out writers that keep no running digest and commit
// without checking the digest: only the exporter's own check stands
// between wrong bytes and the store.
type tcLaxIngester struct{ content.Store }

func (l tcLaxIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	w, err := l.Store.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return tcLaxWriter{w}, nil
}

type tcLaxWriter struct{ content.Writer }

func (tcLaxWriter) Digest() digest.Digest { return "" }

func (w tcLaxWriter) Commit(ctx context.Context, size int64, _ digest.Digest, opts ...content.Opt) error {
	return w.Writer.Commit(ctx, size, "", opts...)
}

func TestFinalizeVerifiesWhenTheWriterDoesNot(t *testing.T) {
	src, dst := tcStore(t), tcStore(t)
	d := tcBlob(t, src, tcData(1<<20, "lax"))
	e, _ := remotecache.NewExporter(tcLaxIngester{dst})
	tcAdd(t, e, tcDigest("r"), nil, tcResult(tcCorrupt(src), 1, d))
	if _, err := e.Finalize(context.Background()); err == nil || !strings.Contains(err.Error(), "do not match digest") {
		t.Fatalf("err = %v, want the exporter's own digest check to fail", err)
	}
	n := 0
	dst.Walk(context.Background(), func(content.Info) error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d blobs written from wrong bytes", n)
	}
	// And right bytes go through the same path.
	e2, _ := remotecache.NewExporter(tcLaxIngester{dst})
	tcAdd(t, e2, tcDigest("r"), nil, tcResult(src, 1, d))
	if _, err := e2.Finalize(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// tcTagger is a store whose manifest writes move a tag.
type tcTagger struct{ *tcSpyIngester }

func (tcTagger) TagsManifests() bool { return true }

func TestFinalizeWritesManifestToTaggers(t *testing.T) {
	src, store := tcStore(t), tcStore(t)
	first, _ := remotecache.NewExporter(store)
	blobs := tcGraph(t, first, src)
	if _, err := first.Finalize(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Everything is in the store; a tagging ingester still gets the
	// manifest write (which the local store answers with "already exists"),
	// and nothing else.
	spy := &tcSpyIngester{Store: store}
	e, _ := remotecache.NewExporter(tcTagger{spy})
	tcGraph(t, e, src)
	res, err := e.Finalize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mdesc := cachetest.ManifestDesc(t, res)
	if len(spy.attempts) != 1 || spy.attempts[mdesc.Digest] != 1 || spy.writers != 0 {
		t.Fatalf("writer calls %v (%d opened), want one, for the manifest %s", spy.attempts, spy.writers, mdesc.Digest)
	}
	for _, b := range blobs {
		if spy.attempts[b.Digest] != 0 {
			t.Fatalf("layer %s written again", b.Digest)
		}
	}
}

// tcCommitFails hands out real writers whose Commit fails (a disk that
// fills up at the last moment) and counts the writers closed.
type tcCommitFails struct {
	content.Store
	mu             sync.Mutex
	opened, closed int
}

func (s *tcCommitFails) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	w, err := s.Store.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.opened++
	s.mu.Unlock()
	return &tcCommitFailsWriter{Writer: w, s: s}, nil
}

type tcCommitFailsWriter struct {
	content.Writer
	s    *tcCommitFails
	once sync.Once
}

func (w *tcCommitFailsWriter) Commit(context.Context, int64, digest.Digest, ...content.Opt) error {
	return errors.New("no space left on device")
}

func (w *tcCommitFailsWriter) Close() error {
	w.once.Do(func() {
		w.s.mu.Lock()
		w.s.closed++
		w.s.mu.Unlock()
	})
	return w.Writer.Close()
}

// A failed Commit closes its writer and aborts the ingest.
func TestFinalizeClosesWriterWhenCommitFails(t *testing.T) {
	src := tcStore(t)
	d := tcBlob(t, src, tcData(1<<10, "commit"))
	dst := &tcCommitFails{Store: tcStore(t)}
	e, _ := remotecache.NewExporter(dst)
	tcAdd(t, e, tcDigest("r"), nil, tcResult(src, 1, d))
	if _, err := e.Finalize(context.Background()); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Finalize = %v, want the commit error", err)
	}
	if dst.opened == 0 || dst.closed != dst.opened {
		t.Fatalf("%d writers opened, %d closed", dst.opened, dst.closed)
	}
	sts, err := dst.ListStatuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 0 {
		t.Fatalf("ingests left behind: %+v", sts)
	}
}

// ResponseManifest gives the descriptor Finalize wrote, in every form, and
// refuses a value that is not a descriptor, naming the key.
func TestResponseManifest(t *testing.T) {
	ctx := context.Background()
	for _, f := range append(itFormats[:len(itFormats):len(itFormats)], remotecache.FormatConfigOnly) {
		src, dst := tcStore(t), tcStore(t)
		e, err := remotecache.NewExporter(dst, remotecache.WithManifestFormat(f))
		if err != nil {
			t.Fatal(err)
		}
		tcGoldenGraph(t, e, src)
		res, err := e.Finalize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		desc, ok, err := remotecache.ResponseManifest(res)
		if !ok || err != nil {
			t.Fatalf("%s: ResponseManifest(%v) = %v, %v", f, res, ok, err)
		}
		if m, err := remotecache.ReadManifest(ctx, dst, desc); err != nil || m.Format != f {
			t.Errorf("%s: the descriptor %v reads as %v, %v", f, desc, m, err)
		}
	}
	for _, v := range []string{"", "{", `{"digest":"sha256:x"}`, "{}", `"sha256:` + strings.Repeat("a", 64) + `"`, `{"digest":"sha256:` + strings.Repeat("a", 64) + `","size":-5}`} {
		desc, ok, err := remotecache.ResponseManifest(map[string]string{remotecache.ExporterResponseManifestDesc: v})
		if !ok || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), remotecache.ExporterResponseManifestDesc) || desc.Digest != "" {
			t.Errorf("%q: ResponseManifest = %v, %v, %v; want an invalid argument naming the key", v, desc, ok, err)
		}
	}
}

// FuzzResponseManifest: any value gives a descriptor with a valid digest
// whose JSON decodes to the same JSON, or an invalid argument; never a
// panic. Seeds in testdata/fuzz/FuzzResponseManifest.
func FuzzResponseManifest(f *testing.F) {
	f.Add(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":415}`)
	f.Add(`{"digest":"sha256:x"}`)
	f.Fuzz(func(t *testing.T, v string) {
		desc, ok, err := remotecache.ResponseManifest(map[string]string{remotecache.ExporterResponseManifestDesc: v})
		if !ok {
			t.Fatal("ok false for a response with the key")
		}
		if err != nil {
			if !errdefs.IsInvalidArgument(err) || desc.Digest != "" {
				t.Fatalf("%q: %v, %v", v, desc, err)
			}
			return
		}
		if desc.Digest.Validate() != nil {
			t.Fatalf("%q: digest %q accepted", v, desc.Digest)
		}
		dt, err := json.Marshal(desc)
		if err != nil {
			t.Fatal(err)
		}
		again, ok, err := remotecache.ResponseManifest(map[string]string{remotecache.ExporterResponseManifestDesc: string(dt)})
		if !ok || err != nil {
			t.Fatalf("%q: %s does not decode: %v", v, dt, err)
		}
		if dt2, _ := json.Marshal(again); !bytes.Equal(dt2, dt) {
			t.Fatalf("%q: %s decodes to %s", v, dt, dt2)
		}
	})
}
