package interop

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/solver"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

// bkReplay adds g's ops to BuildKit's target in order, as cachegen.Replay
// does for ours.
func bkReplay(t testing.TB, tg solver.CacheExporterTarget, g *cachegen.Graph, order []int, provider content.InfoReaderProvider) {
	t.Helper()
	if _, err := sidebyside.NewBKReplayer(g, provider).Replay(tg, order); err != nil {
		t.Fatalf("buildkit replay: %v", err)
	}
}

// canonical describes a config as structures, not indexes: a sorted list of
// one hash per record (its digest, its results as blob chains and, per
// input slot, the sorted hashes of its sources with selectors) and a sorted
// list of layer chains.
func canonical(t testing.TB, dt []byte) (records, layers []string) {
	t.Helper()
	var cfg remotecache.CacheConfig
	if err := json.Unmarshal(dt, &cfg); err != nil {
		t.Fatal(err)
	}
	chain := func(i int) string {
		var blobs []string
		for n := 0; i >= 0; n++ {
			if n > len(cfg.Layers) {
				t.Fatalf("layer loop at %d", i)
			}
			blobs = append(blobs, cfg.Layers[i].Blob.Encoded()[:12])
			i = cfg.Layers[i].ParentIndex
		}
		slices.Reverse(blobs)
		return strings.Join(blobs, "/")
	}
	for i := range cfg.Layers {
		layers = append(layers, chain(i))
	}
	slices.Sort(layers)
	memo := make([]string, len(cfg.Records))
	var hash func(i, depth int) string
	hash = func(i, depth int) string {
		if memo[i] != "" {
			return memo[i]
		}
		if depth > len(cfg.Records) {
			t.Fatalf("record loop at %d", i)
		}
		r := cfg.Records[i]
		var b strings.Builder
		b.WriteString(string(r.Digest))
		for _, res := range r.Results {
			fmt.Fprintf(&b, "|res %s@%s", chain(res.LayerIndex), res.CreatedAt.UTC().Format(time.RFC3339Nano))
		}
		for _, slot := range r.Inputs {
			var ins []string
			for _, in := range slot {
				ins = append(ins, in.Selector+"="+hash(in.LinkIndex, depth+1))
			}
			slices.Sort(ins)
			b.WriteString("|slot " + strings.Join(ins, ","))
		}
		sum := sha256.Sum256([]byte(b.String()))
		memo[i] = hex.EncodeToString(sum[:8])
		return memo[i]
	}
	for i := range cfg.Records {
		records = append(records, hash(i, 0))
	}
	slices.Sort(records)
	return records, layers
}

// buildkitDeterministic tells whether BuildKit's sortConfig gives one order
// for this config: every layer blob distinct (else layers with the same
// blob are ordered by their old parent index) and every two records with the same digest told apart before
// their comparison reaches a slot with several links (whose order BuildKit
// takes from a map) or ends in a tie.
func buildkitDeterministic(t testing.TB, dt []byte) bool {
	var cfg remotecache.CacheConfig
	if err := json.Unmarshal(dt, &cfg); err != nil {
		t.Fatal(err)
	}
	blobs := map[string]bool{}
	for _, l := range cfg.Layers {
		if blobs[string(l.Blob)] {
			return false
		}
		blobs[string(l.Blob)] = true
	}
	byDigest := map[string][]remotecache.CacheRecord{}
	for _, r := range cfg.Records {
		byDigest[string(r.Digest)] = append(byDigest[string(r.Digest)], r)
	}
	decided := func(a, b remotecache.CacheRecord) bool {
		if len(a.Inputs) != len(b.Inputs) {
			return true
		}
		for i := range a.Inputs {
			if len(a.Inputs[i]) != len(b.Inputs[i]) {
				return true
			}
		}
		for i := range a.Inputs {
			if len(a.Inputs[i]) > 1 {
				return false
			}
			x, y := a.Inputs[i][0], b.Inputs[i][0]
			if x.Selector != y.Selector {
				return true
			}
			if cfg.Records[x.LinkIndex].Digest != cfg.Records[y.LinkIndex].Digest {
				return true
			}
		}
		return false
	}
	for _, rs := range byDigest {
		for i := range rs {
			for j := i + 1; j < len(rs); j++ {
				if !decided(rs[i], rs[j]) {
					return false
				}
			}
		}
	}
	return true
}
