package interop

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	cacheimport "github.com/moby/buildkit/cache/remotecache/v1"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/interop/bkobject"
)

// TestConfigBytesMatchBuildKit feeds the same Add calls to BuildKit's
// CacheChains and to ours. Where BuildKit's output is deterministic, the
// bytes must be identical; elsewhere the two must describe the same graph.
func TestConfigBytesMatchBuildKit(t *testing.T) {
	seeds := 500
	if testing.Short() {
		seeds = 100
	}
	identical, sameSource, structural := 0, 0, 0
	for seed := range seeds {
		opts := cachegen.Options{}
		if seed%3 != 0 {
			opts.ReuseBlobFraction = -1 // every blob on one parent: BuildKit sorts layers deterministically
		}
		size := 5 + (seed*37)%300
		g := cachegen.NewWithOptions(int64(seed), size, opts)
		if seed%3 == 2 {
			uniqueDigests(g) // no records told apart only by their inputs
		}
		switch compareWithBuildKit(t, fmt.Sprintf("seed %d (%d ops)", seed, size), g) {
		case matchBytes:
			identical++
		case matchSameSource:
			sameSource++
		default:
			structural++
		}
	}
	t.Logf("%d graphs byte-identical to BuildKit, %d identical once links from one source are ordered by selector, %d equal as structures (BuildKit's own order not deterministic)", identical, sameSource, structural)
	if identical+sameSource < seeds/4 {
		t.Fatalf("only %d of %d graphs could be compared byte for byte", identical+sameSource, seeds)
	}
}

// uniqueDigests gives every op of g a digest of its own.
func uniqueDigests(g *cachegen.Graph) {
	for i := range g.Ops {
		if !strings.HasPrefix(string(g.Ops[i].Digest), "random:") {
			g.Ops[i].Digest = digest.FromString(fmt.Sprint(i, g.Ops[i].Digest))
		}
	}
}

type match int

const (
	matchBytes      match = iota // byte-identical
	matchSameSource              // identical once links from one source are ordered by selector
	matchStructure               // BuildKit's order is not deterministic; equal as structures
)

// compareWithBuildKit replays g into BuildKit's CacheChains and ours and
// checks the configs agree: byte for byte where BuildKit's own output is
// deterministic, as structures elsewhere.
func compareWithBuildKit(t *testing.T, name string, g *cachegen.Graph) match {
	t.Helper()
	p := g.Provider()
	got := cachetest.ConfigJSON(t, cachetest.Chains(t, g, nil, p))

	bk := cacheimport.NewCacheChains()
	bkReplay(t, bk, g, nil, p)
	return compareConfigs(t, name, got, func() []byte { return cachetest.ConfigJSON(t, bk) })
}

// compareConfigs checks our config bytes against BuildKit's: byte for byte
// where BuildKit's own output is deterministic, as structures elsewhere.
func compareConfigs(t *testing.T, name string, got []byte, buildkit func() []byte) match {
	t.Helper()
	want := buildkit()
	if buildkitDeterministic(t, want) {
		if bytes.Equal(got, want) {
			return matchBytes
		}
		// The one order BuildKit leaves to chance here: links of a slot
		// that come from one source.
		if bytes.Equal(got, bkobject.SortSameSourceLinks(t, want)) {
			return matchSameSource
		}
		t.Fatalf("%s: config differs from BuildKit's\nours:     %s\nbuildkit: %s", name, got, want)
	}
	gr, gl := canonical(t, got)
	wr, wl := canonical(t, want)
	if !slices.Equal(gl, wl) {
		t.Fatalf("%s: layer chains differ from BuildKit's\nours:     %v\nbuildkit: %v", name, gl, wl)
	}
	if !slices.Equal(gr, wr) {
		t.Fatalf("%s: records differ from BuildKit's\nours:     %s\nbuildkit: %s", name, got, want)
	}
	return matchStructure
}
