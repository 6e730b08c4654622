// Package bkobject drives BuildKit's side of the tests of the object
// stores (s3/s3test, azblob/azbtest): graphs whose configs BuildKit writes
// deterministically or whose digests a build would export, a walk of a
// cache with BuildKit's cache manager, and a check of BuildKit's parse of
// our config, and the side-by-side benchmark of an export (Bench). It is
// not a test file, so other modules can import it.
package bkobject

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/cache"
	bkremotecache "github.com/moby/buildkit/cache/remotecache"
	bkv1 "github.com/moby/buildkit/cache/remotecache/v1"
	bktypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/worker"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/objstoretest"
)

// DeterministicGraph makes a graph whose config BuildKit writes in one
// order (docs/design.md §4, differential_test.go): every blob on
// one parent chain, and no two records of one digest. The one order
// BuildKit still leaves to chance, links of a slot from one source, is
// what SortSameSourceLinks fixes.
func DeterministicGraph(seed int64, n int) *cachegen.Graph {
	g := cachegen.NewWithOptions(seed, n, cachegen.Options{ReuseBlobFraction: -1})
	for i := range g.Ops {
		g.Ops[i].Digest = digest.FromString(fmt.Sprint(i, g.Ops[i].Digest))
	}
	return g
}

// SortSameSourceLinks orders the links of each slot of a config by source,
// then selector, as ours are.
func SortSameSourceLinks(t testing.TB, config []byte) []byte {
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

// BuildGraph makes a graph whose digests are what a BuildKit build
// exports: a record's digest is the solver's key of a vertex digest and
// output 0 (sha256 of "VERTEX@0", both for roots, solver.rootKey, and for
// others, v1.outputKey), so that BuildKit's cache manager finds records by
// vertex digest, as the solver asks for them. It returns the vertex
// digest of each op.
func BuildGraph(seed int64, n int) (*cachegen.Graph, []digest.Digest) {
	g := cachegen.New(seed, n)
	vertex := make([]digest.Digest, len(g.Ops))
	for i := range g.Ops {
		vertex[i] = digest.FromString("vertex " + g.Ops[i].Digest.String())
		g.Ops[i].Digest = digest.FromString(vertex[i].String() + "@0")
	}
	return g, vertex
}

// Outcome is what BuildKit's cache manager answers for one op.
type Outcome struct {
	Keys, Records int
	Loaded        bool
}

// Walk resolves imp, BuildKit's importer of a cache (named where in
// messages), and asks its cache manager for every op of g, as the solver
// does, vertex giving each op's vertex digest (BuildGraph). It also
// returns the digests of the blobs read, by the digest asked for.
func Walk(t testing.TB, imp bkremotecache.Importer, id, where string, g *cachegen.Graph, vertex []digest.Digest) ([]Outcome, map[digest.Digest]digest.Digest) {
	t.Helper()
	ctx := context.Background()
	w := &blobReadingWorker{}
	cm, err := imp.Resolve(ctx, ocispec.Descriptor{}, id, w)
	if err != nil {
		t.Fatalf("BuildKit's importer of %s: %v", where, err)
	}
	out := make([]Outcome, len(g.Ops))
	keys := make([][]*solver.CacheKey, len(g.Ops))
	for i, op := range g.Ops {
		var ks []*solver.CacheKey
		if len(op.Deps) == 0 {
			// As the solver asks for a root (solver/edge.go): a combined
			// cache manager (azblob's importer's) knows only keys it made.
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
		out[i] = Outcome{Keys: len(ks), Records: len(recs)}
		if len(op.Deps) == 0 && len(recs) == 0 {
			out[i].Keys = 0 // a root key is made, not found: count it by its children
		}
		if len(recs) > 0 {
			if _, err := cm.Load(ctx, recs[0]); err != nil {
				t.Errorf("%s: op %d (%s): BuildKit cannot load the result: %v", where, i, op.Name, err)
			} else {
				out[i].Loaded = true
			}
		}
	}
	// A root without results counts as found if a child was found
	// through it.
	for i, op := range g.Ops {
		for _, slot := range op.Deps {
			for _, d := range slot {
				if out[i].Keys > 0 && len(g.Ops[d.Src].Deps) == 0 && out[d.Src].Keys == 0 {
					out[d.Src].Keys = 1
				}
			}
		}
	}
	return out, w.read
}

// CheckParse checks that BuildKit's parse of ours, a config in the
// config-only form that our exporter wrote for g (v1.ParseConfig, with
// the descriptors BuildKit's s3 and azblob importers make from the layer
// annotations), marshals back to it, annotations aside, and that its
// descriptors are g's.
func CheckParse(t testing.TB, ours []byte, g *cachegen.Graph) {
	t.Helper()
	ctx := context.Background()

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
	if a = SortSameSourceLinks(t, a); !bytes.Equal(a, b) {
		t.Errorf("BuildKit's parse of our config marshals to another config:\n%s\nours, annotations aside:\n%s", a, b)
	}
	if len(descs) != len(objstoretest.ConfigBlobs(t, ours)) {
		t.Errorf("BuildKit has %d descriptors, the config %d blobs", len(descs), len(objstoretest.ConfigBlobs(t, ours)))
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
// result's provider (the importer's reader) and records its digest.
type blobReadingWorker struct {
	worker.Worker
	mu   sync.Mutex
	read map[digest.Digest]digest.Digest
}

func (w *blobReadingWorker) ID() string { return "bkobject" }

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
