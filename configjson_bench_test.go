package remotecache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"sync"
	"testing"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/cputime"
)

// cjConfigs are the configs BenchmarkDecodeConfig decodes: the JSON of
// the Marshal of a generated graph, made once per size. 4,200 generated
// records give a config of 1.01 MiB (3,989 records, 3,362 layers), 100,000
// one of 24.3 MiB (95,888 records, 78,715 layers).
var cjConfigs = []struct {
	name string
	gen  int // records generated
	once sync.Once
	json []byte
}{{name: "1MiB", gen: 4200}, {name: "24MiB", gen: 100000}}

func cjConfig(b *testing.B, i int) []byte {
	c := &cjConfigs[i]
	c.once.Do(func() {
		cfg, _, err := cachetest.Chains(b, cachegen.New(1, c.gen), nil, nil).Marshal(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if c.json, err = json.Marshal(cfg); err != nil {
			b.Fatal(err)
		}
	})
	if c.json == nil {
		b.Fatal("no config")
	}
	return c.json
}

// cjParseSized is an empty config with the room Parse gives the two big
// slices before it decodes dt.
func cjParseSized(dt []byte) *remotecache.CacheConfig {
	maxEntries := len(dt) / remotecache.MinEntryJSONForTest
	return &remotecache.CacheConfig{
		Layers:  make([]remotecache.CacheLayer, 0, min(bytes.Count(dt, []byte{'o'}), maxEntries)),
		Records: make([]remotecache.CacheRecord, 0, min(bytes.Count(dt, []byte{'g'}), maxEntries)),
	}
}

// cjDecoders are the candidates for decoding configs. Each decodes into
// a config sized as Parse sizes it (every candidate uses that room; the
// hand-written decoder makes the same room itself when there is none).
// A library is measured by adding it here, as in BENCHMARKS.md.
var cjDecoders = []struct {
	name   string
	decode func([]byte, *remotecache.CacheConfig) error
}{
	{"configjson", func(dt []byte, c *remotecache.CacheConfig) error { return decodeConfigInto(dt, c) }},
	{"encoding_json", func(dt []byte, c *remotecache.CacheConfig) error { return json.Unmarshal(dt, c) }},
}

// BenchmarkDecodeConfig decodes a 1 MiB and a 24 MiB config with each
// candidate. cpu-ns/op is the CPU time of the process (GC included),
// steadier than elapsed time on a loaded machine.
func BenchmarkDecodeConfig(b *testing.B) {
	for i := range cjConfigs {
		dt := cjConfig(b, i)
		for _, dec := range cjDecoders {
			b.Run(cjConfigs[i].name+"/"+dec.name, func(b *testing.B) {
				b.SetBytes(int64(len(dt)))
				b.ReportAllocs()
				runtime.GC()
				cpu0 := cputime.Process()
				for b.Loop() {
					if err := dec.decode(dt, cjParseSized(dt)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
