package cachetest

import (
	"fmt"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache"
)

// RecordKeys describes each record of cfg by its digest and a hash of its
// inputs, each slot as the sorted set of its links' selectors and sources'
// keys, all the way up: two records have one key when they are the same
// step with the same inputs. It is written apart from Diff's identities,
// which it checks.
func RecordKeys(cfg *remotecache.CacheConfig) []string {
	keys := make([]string, len(cfg.Records))
	var key func(i int) string
	key = func(i int) string {
		if keys[i] != "" {
			return keys[i]
		}
		rec := cfg.Records[i]
		var b strings.Builder
		for _, slot := range rec.Inputs {
			var links []string
			for _, in := range slot {
				links = append(links, fmt.Sprintf("%q<-%s", in.Selector, key(in.LinkIndex)))
			}
			slices.Sort(links)
			b.WriteString("[" + strings.Join(slices.Compact(links), ",") + "]")
		}
		keys[i] = string(rec.Digest) + "/" + digest.FromString(b.String()).Encoded()
		return keys[i]
	}
	for i := range cfg.Records {
		key(i)
	}
	return keys
}

// Results describes each result of record i of cfg: its time and the blobs of
// its layer chain.
func Results(cfg *remotecache.CacheConfig, i int) []string {
	var out []string
	rec := cfg.Records[i]
	for _, r := range rec.Results {
		var blobs []string
		for l := r.LayerIndex; l >= 0; l = cfg.Layers[l].ParentIndex {
			blobs = append([]string{string(cfg.Layers[l].Blob)}, blobs...)
		}
		out = append(out, r.CreatedAt.UTC().Format(time.RFC3339Nano)+" "+strings.Join(blobs, " "))
	}
	for _, r := range rec.ChainedResults {
		var blobs []string
		for _, l := range r.LayerIndexes {
			blobs = append(blobs, string(cfg.Layers[l].Blob))
		}
		out = append(out, r.CreatedAt.UTC().Format(time.RFC3339Nano)+" chain "+strings.Join(blobs, " "))
	}
	return out
}
