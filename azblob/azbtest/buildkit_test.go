package azbtest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/cache"
	bkazblob "github.com/moby/buildkit/cache/remotecache/azblob"
	bkv1 "github.com/moby/buildkit/cache/remotecache/v1"
	bktypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/worker"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

// deterministicGraph makes a graph whose config BuildKit writes in one
// order (docs/design.md §4, interop/differential_test.go): every blob on
// one parent chain, and no two records of one digest. The one order
// BuildKit still leaves to chance, links of a slot from one source, is
// what sortSameSourceLinks fixes.
func deterministicGraph(seed int64, n int) *cachegen.Graph {
	g := cachegen.NewWithOptions(seed, n, cachegen.Options{ReuseBlobFraction: -1})
	for i := range g.Ops {
		g.Ops[i].Digest = digest.FromString(fmt.Sprint(i, g.Ops[i].Digest))
	}
	return g
}

// sortSameSourceLinks orders the links of each slot of a config by source,
// then selector, as ours are.
func sortSameSourceLinks(t testing.TB, config []byte) []byte {
	t.Helper()
	var cfg remotecache.CacheConfig
	if err := json.Unmarshal(config, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.Records {
		for _, slot := range r.Inputs {
			slices.SortStableFunc(slot, func(a, b remotecache.CacheInput) int {
				return cmp.Or(cmp.Compare(a.LinkIndex, b.LinkIndex), cmp.Compare(a.Selector, b.Selector))
			})
		}
	}
	dt, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

// buildGraph makes a graph whose digests are what a BuildKit build
// exports: a record's digest is the solver's key of a vertex digest and
// output 0 (sha256 of "VERTEX@0", both for roots, solver.rootKey, and for
// others, v1.outputKey), so that BuildKit's cache manager finds records by
// vertex digest, as the solver asks for them. It returns the vertex
// digest of each op.
func buildGraph(seed int64, n int) (*cachegen.Graph, []digest.Digest) {
	g := cachegen.New(seed, n)
	vertex := make([]digest.Digest, len(g.Ops))
	for i := range g.Ops {
		vertex[i] = digest.FromString("vertex " + g.Ops[i].Digest.String())
		g.Ops[i].Digest = digest.FromString(vertex[i].String() + "@0")
	}
	return g, vertex
}

// bkAttrs are the attributes of BuildKit's type=azblob cache for the
// env's container, through the proxy, as SERVERS.md gives them: the
// account name too, which BuildKit would take from an IP address's first
// number.
func bkAttrs(e *env, prefix, name string) map[string]string {
	return map[string]string{
		"account_url":       e.proxy.URL + "/" + account,
		"account_name":      account,
		"secret_access_key": accountKey,
		"container":         e.container,
		"prefix":            prefix,
		"name":              name,
	}
}

// bkExporter returns BuildKit's azblob cache exporter with g added to it,
// the way a build adds its cache records, and blobs from g's provider.
func bkExporter(ctx context.Context, attrs map[string]string, g *cachegen.Graph) (func() error, error) {
	exp, err := bkazblob.ResolveCacheExporterFunc()(ctx, nil, attrs)
	if err != nil {
		return nil, err
	}
	if _, err := sidebyside.NewBKReplayer(g, nil).Replay(exp, nil); err != nil {
		return nil, err
	}
	return func() error { _, err := exp.Finalize(ctx); return err }, nil
}

// bkExport exports g with BuildKit's azblob exporter under prefix and
// name, failing the test if it fails.
func bkExport(t testing.TB, e *env, g *cachegen.Graph, prefix, name string) {
	t.Helper()
	fin, err := bkExporter(context.Background(), bkAttrs(e, prefix, name), g)
	if err != nil {
		t.Fatal(err)
	}
	if err := fin(); err != nil {
		t.Fatalf("BuildKit's azblob export: %v", err)
	}
}

// The same graph exported by BuildKit's azblob exporter and by ours gives
// the same config bytes and the same blob names; our store reads
// BuildKit's cache (Resolve, Import, Verify), in the container BuildKit
// made, and imports it to the same config.
func TestWeReadBuildKit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true) // BuildKit creates the container
	g := deterministicGraph(41, 150)
	bkExport(t, e, g, "bk", "main")
	if n := e.proxy.count("CREATE"); n != 1 {
		t.Errorf("BuildKit created the container %d times", n)
	}
	bkCfg := e.blob(t, "bk/manifests/main")
	want := sortSameSourceLinks(t, bkCfg)

	store := e.store(t, azbstore.WithPrefix("bk"), azbstore.WithNames("main"), azbstore.WithReadOnly())
	if got := reimport(t, store); !bytes.Equal(got, want) {
		t.Errorf("BuildKit's cache imported and exported again is another config:\n%s\nBuildKit's:\n%s", got, bkCfg)
	}
	verify(t, store)

	export(t, e.store(t, azbstore.WithPrefix("ours/"), azbstore.WithNames("main")), g)
	if ours := e.blob(t, "ours/manifests/main"); !bytes.Equal(ours, want) {
		t.Errorf("for the same graph our config differs from BuildKit's:\n%s\nBuildKit's:\n%s", ours, bkCfg)
	}
	var bkNames, ourNames []string
	for _, n := range e.names(t) {
		if rest, ok := strings.CutPrefix(n, "bk/"); ok {
			bkNames = append(bkNames, rest)
		} else if rest, ok := strings.CutPrefix(n, "ours/"); ok {
			ourNames = append(ourNames, rest)
		}
	}
	if strings.Join(bkNames, "\n") != strings.Join(ourNames, "\n") {
		t.Errorf("blob names differ:\nBuildKit's %q\nours %q", bkNames, ourNames)
	}
}

// BuildKit's azblob importer reads what we export as it reads what its own
// exporter writes: the same graph exported by both, each read by the
// importer (ResolveCacheImporterFunc, then Resolve: the cache manager a
// build gets), answers the solver's questions alike. Every op is looked up
// by its vertex digest through its inputs, as the solver does, its records
// listed and a result loaded, which reads the result's blobs through the
// importer's own azblob reader.
func TestBuildKitReadsOurs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g, vertex := buildGraph(42, 150)
	export(t, e.store(t, azbstore.WithPrefix("ours"), azbstore.WithNames("a", "b")), g)
	bkExport(t, e, g, "bk", "main")

	ours, oursRead := bkWalk(t, e, "ours", "b", g, vertex)
	theirs, _ := bkWalk(t, e, "bk", "main", g, vertex)
	found, loaded := 0, 0
	for i := range g.Ops {
		if ours[i] != theirs[i] {
			t.Errorf("op %d (%s): BuildKit reading ours: %+v; reading its own: %+v", i, g.Ops[i].Name, ours[i], theirs[i])
		}
		if ours[i].keys > 0 {
			found++
		}
		if ours[i].loaded {
			loaded++
		}
	}
	t.Logf("BuildKit found %d of %d ops and loaded %d results, reading %d blobs", found, len(g.Ops), loaded, len(oursRead))
	if found != len(g.Ops) || loaded == 0 {
		t.Errorf("BuildKit found %d of %d ops, loaded %d results", found, len(g.Ops), loaded)
	}
	for d, got := range oursRead {
		if got != d {
			t.Errorf("blob %s read by BuildKit as %s", d, got)
		}
	}
	// BuildKit's azblob importer reads every name ("a;b") and merges
	// the caches: both of ours.
	both, _ := bkWalk(t, e, "ours", "a;b", g, vertex)
	for i := range g.Ops {
		if both[i].keys == 0 || both[i].loaded != ours[i].loaded {
			t.Errorf("op %d (%s): BuildKit reading a;b: %+v; reading b: %+v", i, g.Ops[i].Name, both[i], ours[i])
		}
	}
}

// opOutcome is what BuildKit's cache manager answers for one op.
type opOutcome struct {
	keys, records int
	loaded        bool
}

// bkWalk resolves BuildKit's importer for the cache at prefix and name and
// asks its cache manager for every op of g, as the solver does. It also
// returns the digests of the blobs read, by the digest asked for.
func bkWalk(t *testing.T, e *env, prefix, name string, g *cachegen.Graph, vertex []digest.Digest) ([]opOutcome, map[digest.Digest]digest.Digest) {
	t.Helper()
	ctx := context.Background()
	imp, _, err := bkazblob.ResolveCacheImporterFunc()(ctx, nil, bkAttrs(e, prefix, name))
	if err != nil {
		t.Fatal(err)
	}
	w := &blobReadingWorker{}
	cm, err := imp.Resolve(ctx, ocispec.Descriptor{}, "azbtest-"+prefix, w)
	if err != nil {
		t.Fatalf("BuildKit's importer of %s%s: %v", prefix, name, err)
	}
	out := make([]opOutcome, len(g.Ops))
	keys := make([][]*solver.CacheKey, len(g.Ops))
	for i, op := range g.Ops {
		var ks []*solver.CacheKey
		if len(op.Deps) == 0 {
			// As the solver asks for a root (solver/edge.go): the
			// azblob importer's cache manager is a combined one, which
			// knows only keys it made.
			if ks, err = cm.Query(nil, 0, vertex[i], 0); err != nil {
				t.Fatalf("op %d: Query: %v", i, err)
			}
		} else {
			var deps []solver.CacheKeyWithSelector
			for _, d := range op.Deps[0] {
				for _, k := range keys[d.Src] {
					deps = append(deps, solver.CacheKeyWithSelector{Selector: digest.Digest(d.Selector), CacheKey: solver.ExportableCacheKey{CacheKey: k}})
				}
			}
			if ks, err = cm.Query(deps, 0, vertex[i], 0); err != nil {
				t.Fatalf("op %d: Query: %v", i, err)
			}
		}
		keys[i] = ks
		var recs []*solver.CacheRecord
		for _, k := range ks {
			rs, err := cm.Records(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rs...)
		}
		out[i] = opOutcome{keys: len(ks), records: len(recs)}
		if len(op.Deps) == 0 && len(recs) == 0 {
			out[i].keys = 0 // a root key is made, not found: count it by its children
		}
		if len(recs) > 0 {
			if _, err := cm.Load(ctx, recs[0]); err != nil {
				t.Errorf("%s%s: op %d (%s): BuildKit cannot load the result: %v", prefix, name, i, op.Name, err)
			} else {
				out[i].loaded = true
			}
		}
	}
	// A root without results counts as found if a child was found
	// through it.
	for i, op := range g.Ops {
		for _, slot := range op.Deps {
			for _, d := range slot {
				if out[i].keys > 0 && len(g.Ops[d.Src].Deps) == 0 && out[d.Src].keys == 0 {
					out[d.Src].keys = 1
				}
			}
		}
	}
	return out, w.read
}

// BuildKit's parse of our config (v1.ParseConfig, with the descriptors its
// azblob importer makes from the layer annotations) marshals back to our
// config, annotations aside, and its descriptors are the graph's.
func TestBuildKitParsesOurConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	g := deterministicGraph(43, 150)
	export(t, e.store(t), g)
	ours := e.blob(t, "manifests/buildkit")

	var bkCfg bktypes.CacheConfig
	dec := json.NewDecoder(bytes.NewReader(ours))
	if err := dec.Decode(&bkCfg); err != nil {
		t.Fatal(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("data after the config: %v", err)
	}
	layers := bkv1.DescriptorProvider{}
	for _, l := range bkCfg.Layers {
		if l.Annotations == nil || l.Annotations.DiffID == "" {
			t.Fatalf("layer %s: no annotations or no diffID, which BuildKit's importer refuses", l.Blob)
		}
		ann := map[string]string{"containerd.io/uncompressed": l.Annotations.DiffID.String()}
		if !l.Annotations.CreatedAt.IsZero() {
			txt, _ := l.Annotations.CreatedAt.MarshalText()
			ann["buildkit/createdat"] = string(txt)
		}
		layers[l.Blob] = bkv1.DescriptorProviderPair{Descriptor: ocispec.Descriptor{
			MediaType: l.Annotations.MediaType, Digest: l.Blob, Size: l.Annotations.Size, Annotations: ann,
		}}
	}
	cc := bkv1.NewCacheChains()
	if err := bkv1.ParseConfig(bkCfg, layers, cc); err != nil {
		t.Fatalf("BuildKit's ParseConfig: %v", err)
	}
	again, descs, err := cc.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range bkCfg.Layers {
		bkCfg.Layers[i].Annotations = nil
	}
	a, _ := json.Marshal(again)
	b, _ := json.Marshal(bkCfg)
	if a = sortSameSourceLinks(t, a); !bytes.Equal(a, b) {
		t.Errorf("BuildKit's parse of our config marshals to another config:\n%s\nours, annotations aside:\n%s", a, b)
	}
	if len(descs) != len(configBlobs(t, ours)) {
		t.Errorf("BuildKit has %d descriptors, the config %d blobs", len(descs), len(configBlobs(t, ours)))
	}
	for d, pair := range descs {
		orig := g.Blobs[d].Descriptor
		got := pair.Descriptor
		if got.Size != orig.Size || got.MediaType != ocispecTwin(orig.MediaType) ||
			got.Annotations["containerd.io/uncompressed"] != orig.Annotations["containerd.io/uncompressed"] ||
			got.Annotations["buildkit/createdat"] != orig.Annotations["buildkit/createdat"] {
			t.Errorf("blob %s: BuildKit's descriptor %+v, the graph's %+v", d, got, orig)
		}
	}
}

// ocispecTwin is the OCI media type our exporter gives a layer.
func ocispecTwin(mt string) string {
	if mt == "application/vnd.docker.image.rootfs.diff.tar.gzip" {
		return ocispec.MediaTypeImageLayerGzip
	}
	return mt
}

// blobReadingWorker stands in for a BuildKit worker where the importer's
// results are loaded: it reads every blob of a result through the
// result's provider (the importer's azblob reader) and records its digest.
type blobReadingWorker struct {
	worker.Worker
	mu   sync.Mutex
	read map[digest.Digest]digest.Digest
}

func (w *blobReadingWorker) ID() string { return "azbtest" }

func (w *blobReadingWorker) FromRemote(ctx context.Context, remote *solver.Remote) (cache.ImmutableRef, error) {
	for _, desc := range remote.Descriptors {
		ra, err := remote.Provider.ReaderAt(ctx, desc)
		if err != nil {
			return nil, err
		}
		d := digest.Canonical.Digester()
		_, err = io.Copy(d.Hash(), content.NewReader(ra))
		ra.Close()
		if err != nil {
			return nil, err
		}
		w.mu.Lock()
		if w.read == nil {
			w.read = map[digest.Digest]digest.Digest{}
		}
		w.read[desc.Digest] = d.Digest()
		w.mu.Unlock()
	}
	return nil, nil
}
