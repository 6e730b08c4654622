package remotecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/refchains"
)

// marshaler is what both collectors are: a Target that marshals.
type marshaler interface {
	remotecache.Target
	Marshal(context.Context) (*remotecache.CacheConfig, remotecache.DescriptorProvider, error)
}

// outcome is what replaying a graph into a collector gives: the config
// bytes and descriptors, or the error (or panic) that stopped it.
type outcome struct {
	json  []byte
	descs map[digest.Digest]ocispec.Descriptor
	info  int64
	err   string
}

func replayInto(g *cachegen.Graph, order []int, m marshaler) (o outcome) {
	defer func() {
		if p := recover(); p != nil {
			o = outcome{err: fmt.Sprintf("panic: %v", p)}
		}
	}()
	p := g.Provider()
	if err := cachegen.Replay(m, g, order, p); err != nil {
		return outcome{err: err.Error()}
	}
	cfg, dp, err := m.Marshal(context.Background())
	if err != nil {
		return outcome{err: err.Error()}
	}
	dt, err := json.Marshal(cfg)
	if err != nil {
		return outcome{err: err.Error()}
	}
	descs := make(map[digest.Digest]ocispec.Descriptor, len(dp))
	for d, pair := range dp {
		descs[d] = pair.Descriptor
	}
	return outcome{json: dt, descs: descs, info: p.InfoCalls()}
}

// referenceCase is a family of graphs for TestSameGraphsAsReference.
type referenceCase struct {
	name  string
	graph func(seed int64) *cachegen.Graph
	seeds int
}

func referenceCases() []referenceCase {
	sized := func(opts cachegen.Options) func(int64) *cachegen.Graph {
		return func(seed int64) *cachegen.Graph {
			return cachegen.NewWithOptions(seed, 5+int(seed*53)%400, opts)
		}
	}
	lattice := func(opts cachegen.LatticeOptions) func(int64) *cachegen.Graph {
		return func(seed int64) *cachegen.Graph {
			return cachegen.Lattice(seed, 3+int(seed*31)%200, opts)
		}
	}
	return []referenceCase{
		{"plain", sized(cachegen.Options{}), 40},
		{"again", sized(cachegen.Options{AgainFraction: 0.15, ReuseBlobFraction: 0.3}), 40},
		{"extra links", sized(cachegen.Options{AgainFraction: 0.2, ExtraLinkFraction: 0.6}), 120},
		{"merges", sized(cachegen.Options{AgainFraction: 0.1, MergeFraction: 0.08}), 100},
		{"everything", sized(cachegen.Options{AgainFraction: 0.2, ExtraLinkFraction: 0.5, MergeFraction: 0.08, RandomFraction: 0.03, MissingFraction: 0.05, ReuseBlobFraction: 0.3}), 160},
		{"lattice", lattice(cachegen.LatticeOptions{}), 10},
		{"lattice twice", lattice(cachegen.LatticeOptions{Twice: true}), 10},
		{"lattice new link", lattice(cachegen.LatticeOptions{Twice: true, NewLink: true}), 30},
	}
}

// TestSameGraphsAsReference replays generated graphs, in three orders
// each, into CacheChains and into the collector as it was before issue 15
// (internal/refchains), and checks that both give the same config bytes,
// the same descriptors and as many Info calls, or fail alike. Graphs with
// extra links and merges make cycles to drop, records one above the other
// to merge, and records dropped from the graph: every rule of
// docs/design.md §4 that the cycle check decides.
func TestSameGraphsAsReference(t *testing.T) {
	testSameGraphsAsReference(t, 1, remotecache.NewCacheChains)
}

// Add hands results to another goroutine in batches (resultqueue.go);
// with batches of one or a few records, that goroutine starts and stops
// all through a replay, merges wait for it in the middle of Adds, and
// Marshal takes what is left: the graphs are still the reference's.
func TestSameGraphsAsReferenceWithSmallResultBatches(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("batch=%d", n), func(t *testing.T) {
			testSameGraphsAsReference(t, 3, func() *remotecache.CacheChains {
				return remotecache.NewCacheChainsWithResultBatchForTest(n)
			})
		})
	}
	// Marshal in the middle of replays: every 17 Adds, the configs are
	// the reference's at that point.
	cases := referenceCases()
	midways := 0
	for seed := range int64(12) {
		tc := cases[int(seed)%len(cases)]
		g := tc.graph(seed)
		order := g.Shuffle(seed)
		want := &midway{marshaler: refchains.NewCacheChains(), every: 17}
		got := &midway{marshaler: remotecache.NewCacheChainsWithResultBatchForTest(3), every: 17}
		wantEnd, gotEnd := replayInto(g, order, want), replayInto(g, order, got)
		if gotEnd.err != wantEnd.err || !bytes.Equal(gotEnd.json, wantEnd.json) {
			t.Fatalf("%s seed %d: the last config or error differs from the reference's", tc.name, seed)
		}
		if !slices.EqualFunc(got.configs, want.configs, bytes.Equal) {
			t.Fatalf("%s seed %d: a config made in the middle of the replay differs from the reference's", tc.name, seed)
		}
		midways += len(got.configs)
	}
	if midways < 50 {
		t.Fatalf("only %d configs made in the middle of replays", midways)
	}
	t.Logf("%d configs made in the middle of replays", midways)
}

// midway is a collector that marshals itself every so many Adds and
// keeps each config (or error) made.
type midway struct {
	marshaler
	every, adds int
	configs     [][]byte
}

func (w *midway) Add(dgst digest.Digest, deps [][]remotecache.Link, results []remotecache.Result) (remotecache.Record, bool, error) {
	r, ok, err := w.marshaler.Add(dgst, deps, results)
	if w.adds++; err == nil && w.adds%w.every == 0 {
		cfg, _, err := w.marshaler.Marshal(context.Background())
		var dt []byte
		if err == nil {
			dt, err = json.Marshal(cfg)
		}
		if err != nil {
			dt = []byte("error: " + err.Error())
		}
		w.configs = append(w.configs, dt)
	}
	return r, ok, err
}

// Hash collisions in the indexes of children, blobs and selectors cost
// checks, never another graph: with hashes cut to 3 bits, everything
// collides with something.
func TestSameGraphsAsReferenceWithCollidingHashes(t *testing.T) {
	defer remotecache.SetHashMaskForTest(7)()
	testSameGraphsAsReference(t, 8, remotecache.NewCacheChains)
}

// testSameGraphsAsReference runs each case's seeds, one in every, into
// graphs that newChains makes.
func testSameGraphsAsReference(t *testing.T, every int64, newChains func() *remotecache.CacheChains) {
	for _, tc := range referenceCases() {
		t.Run(tc.name, func(t *testing.T) {
			seeds := tc.seeds
			if testing.Short() {
				seeds = max(seeds/4, 2)
			}
			panics := 0
			for seed := int64(0); seed < int64(seeds); seed += every {
				g := tc.graph(seed)
				for k, order := range [][]int{g.InOrder(), g.Shuffle(seed), g.WalkOrder(seed)} {
					want := replayInto(g, order, refchains.NewCacheChains())
					got := replayInto(g, order, newChains())
					name := fmt.Sprintf("seed %d (%d ops) order %d", seed, len(g.Ops), k)
					if want.err != "" && bytes.HasPrefix([]byte(want.err), []byte("panic:")) {
						panics++
						t.Logf("%s: the reference %s; CacheChains: %q", name, want.err, got.err)
						continue
					}
					if got.err != want.err {
						t.Fatalf("%s: error %q, reference %q", name, got.err, want.err)
					}
					if !bytes.Equal(got.json, want.json) {
						t.Fatalf("%s: config differs from the reference's\ngot:  %s\nwant: %s", name, got.json, want.json)
					}
					if !reflect.DeepEqual(got.descs, want.descs) {
						t.Fatalf("%s: descriptors differ from the reference's", name)
					}
					if got.info != want.info {
						t.Fatalf("%s: %d Info calls, reference %d", name, got.info, want.info)
					}
				}
			}
			if panics > 0 {
				t.Logf("%d replays where the reference panics", panics)
			}
		})
	}
}

// Where a merge drops a record whose other links a drop in the same merge
// took already, the collector before issue 15 indexes an empty slot and
// panics; CacheChains drops the record and goes on, and the Add that then
// links from it fails with ErrFailedPrecondition (docs/design.md §4).
func TestNoPanicWhereReferencePanics(t *testing.T) {
	extra := cachegen.Options{AgainFraction: 0.4, ExtraLinkFraction: 0.9}
	all := cachegen.Options{AgainFraction: 0.3, ExtraLinkFraction: 0.8, MergeFraction: 0.1, RandomFraction: 0.03, MissingFraction: 0.05, ReuseBlobFraction: 0.3}
	for _, tc := range []struct {
		seed  int64
		opts  cachegen.Options
		order func(*cachegen.Graph, int64) []int
	}{
		{1267, extra, (*cachegen.Graph).Shuffle},
		{1284, extra, (*cachegen.Graph).WalkOrder},
		{1280, all, (*cachegen.Graph).WalkOrder},
	} {
		g := cachegen.NewWithOptions(tc.seed, 50+int(tc.seed*71)%900, tc.opts)
		order := tc.order(g, tc.seed)
		if o := replayInto(g, order, refchains.NewCacheChains()); !strings.HasPrefix(o.err, "panic:") {
			t.Errorf("seed %d: the reference no longer panics (%q): pick another graph", tc.seed, o.err)
		}
		err := cachegen.Replay(remotecache.NewCacheChains(), g, order, nil)
		if !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("seed %d: replay: %v, want ErrFailedPrecondition", tc.seed, err)
		}
	}
}

// Marshal orders records by their digests' first 16 hex digits and
// compares digests in full only where those are equal. With every digest
// made to share its first 16 digits with others, and with digests of
// another algorithm among them, the order is still the reference's.
func TestSameGraphsAsReferenceWithSharedDigestPrefixes(t *testing.T) {
	seeds := 30
	if testing.Short() {
		seeds = 8
	}
	for seed := range int64(seeds) {
		g := cachegen.NewWithOptions(seed, 50+int(seed*37)%300, cachegen.Options{AgainFraction: 0.1, MergeFraction: 0.05})
		for i, op := range g.Ops {
			s := string(op.Digest)
			if !strings.HasPrefix(s, "sha256:") {
				continue
			}
			// Sixteen prefixes, each shared by about one digest in
			// sixteen; the ops of one digest keep one digest. In every
			// other graph, some digests are sha512 ones, which have no
			// key: then every digest is compared in full.
			if seed%2 == 1 && s[7] < '4' {
				g.Ops[i].Digest = digest.SHA512.FromString(s)
				continue
			}
			g.Ops[i].Digest = digest.Digest("sha256:" + strings.Repeat(s[7+16:7+17], 16) + s[7+16:])
		}
		order := g.Shuffle(seed)
		want := replayInto(g, order, refchains.NewCacheChains())
		got := replayInto(g, order, remotecache.NewCacheChains())
		if got.err != "" || want.err != "" {
			t.Fatalf("seed %d: error %q, reference %q", seed, got.err, want.err)
		}
		if !bytes.Equal(got.json, want.json) {
			t.Fatalf("seed %d: config differs from the reference's", seed)
		}
	}
}
