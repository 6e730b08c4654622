package remotecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// tcStore is containerd's real local content store on a temp dir.
func tcStore(t testing.TB) content.Store {
	t.Helper()
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tcBlob writes data into store and returns its descriptor as a gzip layer
// with the annotations BuildKit puts on layers.
func tcBlob(t testing.TB, store content.Ingester, data []byte) ocispec.Descriptor {
	t.Helper()
	return tcLayer(t, store, data, map[string]string{
		"containerd.io/uncompressed": digest.FromString("diff:" + string(data)).String(),
	})
}

// tcLayer writes data into store as a gzip layer with the given
// annotations and returns its descriptor.
func tcLayer(t testing.TB, store content.Ingester, data []byte, annotations map[string]string) ocispec.Descriptor {
	t.Helper()
	desc := ocispec.Descriptor{
		MediaType:   ocispec.MediaTypeImageLayerGzip,
		Digest:      digest.FromBytes(data),
		Size:        int64(len(data)),
		Annotations: annotations,
	}
	if err := content.WriteBlob(context.Background(), store, "tc-"+desc.Digest.String(), bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

func tcDigest(s string) digest.Digest { return digest.FromString(s) }

func tcTime(sec int) time.Time { return time.Date(2026, 1, 2, 3, 4, sec, 0, time.UTC) }

// tcResult is a result on the given layers, read from p.
func tcResult(p content.Provider, sec int, descs ...ocispec.Descriptor) remotecache.Result {
	return remotecache.Result{CreatedAt: tcTime(sec), Remote: &remotecache.Remote{Descriptors: descs, Provider: p}}
}

// tcAdd adds a record and fails the test on error.
func tcAdd(t testing.TB, tg remotecache.Target, dgst digest.Digest, deps [][]remotecache.Link, results ...remotecache.Result) remotecache.Record {
	t.Helper()
	r, ok, err := tg.Add(dgst, deps, results)
	if err != nil || !ok {
		t.Fatalf("Add(%s) = %v, %v", dgst, ok, err)
	}
	return r
}

func tcLinks(slots ...[]remotecache.Record) [][]remotecache.Link {
	deps := make([][]remotecache.Link, len(slots))
	for i, s := range slots {
		for _, r := range s {
			deps[i] = append(deps[i], remotecache.Link{Src: r})
		}
	}
	return deps
}

func tcSlot(rs ...remotecache.Record) []remotecache.Record { return rs }

// tcMarshal marshals c and fails the test on error.
func tcMarshal(t testing.TB, c *remotecache.CacheChains) (*remotecache.CacheConfig, remotecache.DescriptorProvider) {
	t.Helper()
	cfg, dp, err := c.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dp
}

// tcRecord finds the record with the given digest; it fails unless there is
// exactly one.
func tcRecord(t testing.TB, cfg *remotecache.CacheConfig, dgst digest.Digest) remotecache.CacheRecord {
	t.Helper()
	var found []remotecache.CacheRecord
	for _, r := range cfg.Records {
		if r.Digest == dgst {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d records with digest %s, want 1", len(found), dgst)
	}
	return found[0]
}

// tcWriterOpts applies opts, as a Writer does to learn what it writes.
func tcWriterOpts(opts []content.WriterOpt) (content.WriterOpts, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return wo, err
		}
	}
	return wo, nil
}

// tcSpyIngester wraps a real store and records what is written.
type tcSpyIngester struct {
	content.Store

	mu        sync.Mutex
	attempts  map[digest.Digest]int // Writer calls, failed ones too
	writers   int
	commits   []digest.Digest
	perDigest map[digest.Digest]int
	inFlight  int
	maxFlight int
}

func (s *tcSpyIngester) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	wo, err := tcWriterOpts(opts)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.attempts == nil {
		s.attempts = map[digest.Digest]int{}
	}
	s.attempts[wo.Desc.Digest]++
	s.mu.Unlock()
	w, err := s.Store.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.writers++
	if s.perDigest == nil {
		s.perDigest = map[digest.Digest]int{}
	}
	s.perDigest[wo.Desc.Digest]++
	s.inFlight++
	s.maxFlight = max(s.maxFlight, s.inFlight)
	s.mu.Unlock()
	return &tcSpyWriter{Writer: w, s: s}, nil
}

type tcSpyWriter struct {
	content.Writer
	s    *tcSpyIngester
	once sync.Once
}

func (w *tcSpyWriter) release() {
	w.once.Do(func() {
		w.s.mu.Lock()
		w.s.inFlight--
		w.s.mu.Unlock()
	})
}

func (w *tcSpyWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	err := w.Writer.Commit(ctx, size, expected, opts...)
	w.s.mu.Lock()
	if err == nil {
		w.s.commits = append(w.s.commits, expected)
	}
	w.s.mu.Unlock()
	w.release()
	return err
}

func (w *tcSpyWriter) Close() error {
	w.release()
	return w.Writer.Close()
}

// tcEvents collects progress events.
type tcEvents struct {
	mu     sync.Mutex
	events []remotecache.Event
}

func (c *tcEvents) Progress(e remotecache.Event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

// last returns the last event of each step id.
func (c *tcEvents) last() map[string]remotecache.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]remotecache.Event{}
	for _, e := range c.events {
		m[e.ID] = e
	}
	return m
}

// tcExportEvents exports one record, "r", with one result of blobs (from
// src) into ing, and returns the last event of each step.
func tcExportEvents(t *testing.T, ing content.Ingester, src content.Provider, blobs ...ocispec.Descriptor) map[string]remotecache.Event {
	t.Helper()
	events := &tcEvents{}
	e, err := remotecache.NewExporter(ing, remotecache.WithProgress(events))
	if err != nil {
		t.Fatal(err)
	}
	tcAdd(t, e, tcDigest("r"), nil, tcResult(src, 1, blobs...))
	if _, err := e.Finalize(context.Background()); err != nil {
		t.Fatal(err)
	}
	return events.last()
}

// tcJSON is the JSON of v, as encoding/json writes it.
func tcJSON(t testing.TB, v any) []byte {
	t.Helper()
	dt, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

func tcData(n int, seed string) []byte {
	b := make([]byte, n)
	s := []byte(seed)
	for i := range b {
		b[i] = s[i%len(s)] + byte(i/len(s))
	}
	return b
}

// tcRead reads the manifest and config of the cache at desc.
func tcRead(t testing.TB, p content.Provider, desc ocispec.Descriptor) (*remotecache.Manifest, *remotecache.CacheConfig) {
	t.Helper()
	ctx := context.Background()
	m, cfg, err := remotecache.ReadCache(ctx, p, desc)
	if err != nil {
		t.Fatal(err)
	}
	return m, cfg
}

// tcCountingProvider counts the ReaderAt calls per digest.
type tcCountingProvider struct {
	content.Provider
	reads cachetest.Counter
}

func (p *tcCountingProvider) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p.reads.Add(desc.Digest)
	return p.Provider.ReaderAt(ctx, desc)
}
