package bkobject

import (
	"context"
	"strings"
	"testing"

	bkremotecache "github.com/moby/buildkit/cache/remotecache"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

// Exporter returns the exporter that resolve (BuildKit's
// ResolveCacheExporterFunc of a store) makes from attrs, with g added to
// it the way a build adds its cache records and blobs from g's provider,
// and the func that finalizes it.
func Exporter(ctx context.Context, resolve bkremotecache.ResolveCacheExporterFunc, attrs map[string]string, g *cachegen.Graph) (func() error, error) {
	exp, err := resolve(ctx, nil, attrs)
	if err != nil {
		return nil, err
	}
	if _, err := sidebyside.NewBKReplayer(g, nil).Replay(exp, nil); err != nil {
		return nil, err
	}
	return func() error { _, err := exp.Finalize(ctx); return err }, nil
}

// CompareWalks checks the Walks of our cache and of BuildKit's of one
// graph g: BuildKit answers alike for every op reading either, finds
// every op and loads some result reading ours, and reads every blob of
// ours as the one asked for.
func CompareWalks(t testing.TB, g *cachegen.Graph, ours, theirs []Outcome, oursRead map[digest.Digest]digest.Digest) {
	t.Helper()
	found, loaded := 0, 0
	for i := range g.Ops {
		if ours[i] != theirs[i] {
			t.Errorf("op %d (%s): BuildKit reading ours: %+v; reading its own: %+v", i, g.Ops[i].Name, ours[i], theirs[i])
		}
		if ours[i].Keys > 0 {
			found++
		}
		if ours[i].Loaded {
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
}

// SameKeys checks that the keys (object keys, blob names) under "bk/",
// where BuildKit exported a graph, are the keys under "ours/", where we
// exported it.
func SameKeys(t testing.TB, keys []string) {
	t.Helper()
	var bkKeys, ourKeys []string
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, "bk/"); ok {
			bkKeys = append(bkKeys, rest)
		} else if rest, ok := strings.CutPrefix(k, "ours/"); ok {
			ourKeys = append(ourKeys, rest)
		}
	}
	if strings.Join(bkKeys, "\n") != strings.Join(ourKeys, "\n") {
		t.Errorf("keys differ:\nBuildKit's %q\nours %q", bkKeys, ourKeys)
	}
}
