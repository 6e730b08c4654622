package remotecache_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// tmGraph is a small cache with shared blobs:
//
//	record 0 "src"    no result
//	record 1 "base"   <- 0        result X (t1)
//	record 2 "left"   <- 1 ("a")  result X+Y (t2)
//	record 3 "right"  <- 1, <- 4  result X+Z (t3)
//	record 4 "other"              result W (t0, the oldest)
//	record 5 "leaf"   <- 4        no result: leads to no result at all
//
// Blob sizes: X 1000, Y 100, Z 10, W 500; 1610 bytes in all.
func tmGraph() (*remotecache.CacheConfig, map[digest.Digest]int64) {
	X, Y, Z, W := itD("X"), itD("Y"), itD("Z"), itD("W")
	in := func(link int, sel string) []remotecache.CacheInput {
		return []remotecache.CacheInput{{Selector: sel, LinkIndex: link}}
	}
	res := func(layer, sec int) []remotecache.CacheResult {
		return []remotecache.CacheResult{{LayerIndex: layer, CreatedAt: tcTime(sec)}}
	}
	cfg := &remotecache.CacheConfig{
		Layers: []remotecache.CacheLayer{
			{Blob: X, ParentIndex: -1},
			{Blob: Y, ParentIndex: 0},
			{Blob: Z, ParentIndex: 0},
			{Blob: W, ParentIndex: -1},
		},
		Records: []remotecache.CacheRecord{
			{Digest: itD("src")},
			{Digest: itD("base"), Inputs: [][]remotecache.CacheInput{in(0, "")}, Results: res(0, 1)},
			{Digest: itD("left"), Inputs: [][]remotecache.CacheInput{in(1, "a")}, Results: res(1, 2)},
			{Digest: itD("right"), Inputs: [][]remotecache.CacheInput{in(1, ""), in(4, "")}, Results: res(2, 3)},
			{Digest: itD("other"), Results: res(3, 0)},
			{Digest: itD("leaf"), Inputs: [][]remotecache.CacheInput{in(4, "")}},
		},
	}
	return cfg, map[digest.Digest]int64{X: 1000, Y: 100, Z: 10, W: 500}
}

// tmDescs gives Parse a descriptor for every blob of sizes.
func tmDescs(sizes map[digest.Digest]int64) remotecache.DescriptorProvider {
	dp := remotecache.DescriptorProvider{}
	for d, n := range sizes {
		dp[d] = remotecache.DescriptorProviderPair{Descriptor: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: n}}
	}
	return dp
}

// tmTrim trims cfg, checks the rules every trim keeps, and returns the
// output and the report.
func tmTrim(t *testing.T, cfg *remotecache.CacheConfig, sizes map[digest.Digest]int64, opts ...remotecache.TrimOption) (*remotecache.CacheConfig, remotecache.TrimReport) {
	t.Helper()
	before, _ := json.Marshal(cfg)
	out, rep, err := remotecache.Trim(cfg, sizes, opts...)
	if err != nil {
		t.Fatalf("Trim: %v", err)
	}
	if after, _ := json.Marshal(cfg); string(after) != string(before) {
		t.Fatal("Trim changed its input")
	}
	lcCheckSound(t, out, tmDescs(sizes))
	tmCheckKept(t, cfg, out, rep)
	return out, rep
}

// tmCheckKept checks that out is in with the report's dropped results left
// out, and every record that leads to a kept result kept whole: same
// digest, same inputs, all the way up, and its results but the dropped
// ones. Records that lead to no kept result are gone.
func tmCheckKept(t *testing.T, in, out *remotecache.CacheConfig, rep remotecache.TrimReport) {
	t.Helper()
	inKeys, outKeys := cachetest.RecordKeys(in), cachetest.RecordKeys(out)
	want := map[string][]string{}
	for i, k := range inKeys {
		rs := cachetest.Results(in, i)
		for _, d := range rep.Dropped {
			if d.Record.Index == i {
				rs[d.Result] = ""
			}
		}
		want[k] = slices.DeleteFunc(rs, func(s string) bool { return s == "" })
	}
	got := map[string][]string{}
	for i, k := range outKeys {
		if _, ok := want[k]; !ok {
			t.Errorf("trimmed record %d (%s) is no record of the input, with its inputs", i, out.Records[i].Digest)
		}
		got[k] = append(got[k], cachetest.Results(out, i)...)
	}
	// Which records lead to a kept result: those with one, and their
	// sources, all the way up.
	leads := map[string]bool{}
	var mark func(i int)
	mark = func(i int) {
		leads[inKeys[i]] = true
		for _, slot := range in.Records[i].Inputs {
			for _, l := range slot {
				mark(l.LinkIndex)
			}
		}
	}
	for i, k := range inKeys {
		if len(want[k]) > 0 {
			mark(i)
		}
	}
	for k, rs := range want {
		if _, ok := got[k]; ok != leads[k] {
			t.Errorf("record %.20s: kept %v, leads to a kept result %v", k, ok, leads[k])
		} else if ok && !slices.Equal(got[k], rs) {
			t.Errorf("record %.20s: results %q, want %q", k, got[k], rs)
		}
	}
	if rep.After.Records != len(out.Records) || rep.Before.Records != len(in.Records) {
		t.Errorf("report counts %d -> %d records, configs have %d -> %d", rep.Before.Records, rep.After.Records, len(in.Records), len(out.Records))
	}
	if rep.Before.Records-rep.After.Records != len(rep.DroppedRecords) || rep.Before.Results-rep.After.Results != len(rep.Dropped) {
		t.Errorf("report: %+v -> %+v, but %d records and %d results dropped", rep.Before, rep.After, len(rep.DroppedRecords), len(rep.Dropped))
	}
	for k := 1; k < len(rep.Dropped); k++ {
		if rep.Dropped[k].CreatedAt.Before(rep.Dropped[k-1].CreatedAt) {
			t.Errorf("dropped result %d is older than the one before it", k)
		}
	}
}

func TestTrimSharedBlobsBySize(t *testing.T) {
	cfg, sizes := tmGraph()
	dropped := func(rep remotecache.TrimReport) (names []string) {
		for _, d := range rep.Dropped {
			names = append(names, d.Record.Digest.Encoded()[:6]+" "+d.Reason.String())
		}
		return names
	}
	name := func(s string) string { return itD(s).Encoded()[:6] }
	for _, tc := range []struct {
		max           int64
		dropped       []string
		freed         []int64
		records, lays int
		bytes         int64
	}{
		// Within the budget: only the record that leads nowhere goes.
		{max: 1610, records: 5, lays: 4, bytes: 1610},
		// The oldest result, of a blob of its own.
		{max: 1110, dropped: []string{name("other") + " size"}, freed: []int64{500}, records: 5, lays: 3, bytes: 1110},
		// Then "base", whose X "left" and "right" still use (it frees
		// nothing, and it goes first all the same: oldest first), then
		// "left", which frees Y; "base" stays, without a result, as an
		// input of "right", and so does "other", its other input.
		{max: 1109, dropped: []string{name("other") + " size", name("base") + " size", name("left") + " size"}, freed: []int64{500, 0, 100}, records: 4, lays: 2, bytes: 1010},
		// Nothing fits: nothing is left.
		{max: 0, dropped: []string{name("other") + " size", name("base") + " size", name("left") + " size", name("right") + " size"}, freed: []int64{500, 0, 100, 1010}},
	} {
		out, rep := tmTrim(t, cfg, sizes, remotecache.WithMaxSize(tc.max))
		if got := dropped(rep); !slices.Equal(got, tc.dropped) {
			t.Errorf("max %d: dropped %q, want %q", tc.max, got, tc.dropped)
		}
		var freed []int64
		for _, d := range rep.Dropped {
			freed = append(freed, d.Freed)
		}
		if !slices.Equal(freed, tc.freed) {
			t.Errorf("max %d: freed %v, want %v", tc.max, freed, tc.freed)
		}
		if len(out.Records) != tc.records || len(out.Layers) != tc.lays || rep.After.Bytes != tc.bytes {
			t.Errorf("max %d: %d records, %d layers, %d bytes; want %d, %d, %d", tc.max, len(out.Records), len(out.Layers), rep.After.Bytes, tc.records, tc.lays, tc.bytes)
		}
		if !slices.ContainsFunc(rep.DroppedRecords, func(r remotecache.RecordRef) bool { return r.Digest == itD("leaf") }) {
			t.Errorf("max %d: record leaf, which leads to no result, kept", tc.max)
		}
	}
}

func TestTrimByAgeAndBoth(t *testing.T) {
	cfg, sizes := tmGraph()
	now := tcTime(3).Add(time.Hour)
	age := time.Hour + 1500*time.Millisecond // results before tcTime(1.5) go
	_, rep := tmTrim(t, cfg, sizes, remotecache.WithMaxAge(age), remotecache.WithNow(now))
	var reasons []string
	for _, d := range rep.Dropped {
		reasons = append(reasons, d.Record.Digest.Encoded()[:6]+" "+d.Reason.String())
	}
	want := []string{itD("other").Encoded()[:6] + " age", itD("base").Encoded()[:6] + " age"}
	if !slices.Equal(reasons, want) {
		t.Errorf("by age: dropped %q, want %q", reasons, want)
	}
	if rep.After.Bytes != 1110 {
		t.Errorf("by age: %d bytes left, want 1110", rep.After.Bytes)
	}
	// A result exactly as old as the limit stays.
	_, rep = tmTrim(t, cfg, sizes, remotecache.WithMaxAge(now.Sub(tcTime(1))), remotecache.WithNow(now))
	if len(rep.Dropped) != 1 {
		t.Errorf("max age to the instant of the second result: dropped %d, want 1", len(rep.Dropped))
	}

	// Both: the age limit first, then the size, still oldest first.
	_, rep = tmTrim(t, cfg, sizes, remotecache.WithMaxAge(age), remotecache.WithNow(now), remotecache.WithMaxSize(1010))
	reasons = reasons[:0]
	for _, d := range rep.Dropped {
		reasons = append(reasons, d.Reason.String())
	}
	if !slices.Equal(reasons, []string{"age", "age", "size"}) || rep.After.Bytes != 1010 {
		t.Errorf("both: dropped %q leaving %d bytes, want [age age size] leaving 1010", reasons, rep.After.Bytes)
	}
}

func TestTrimBuildKitFixture(t *testing.T) {
	m, cfg := lcLoad(t, itFixtureDir)
	sizes := m.BlobSizes()
	_, all := tmTrim(t, cfg, sizes, remotecache.WithMaxSize(1<<40))
	total := all.Before.Bytes
	if len(all.Dropped) != 0 || all.After != all.Before {
		t.Fatalf("a budget above the size dropped something: %+v", all)
	}

	// One byte under: the oldest results go until a blob is freed, the
	// 503 bytes of the builder stage's two layers, whose last user is the
	// RUN of that stage.
	_, rep := tmTrim(t, cfg, sizes, remotecache.WithMaxSize(total-1))
	if len(rep.Dropped) != 6 || rep.After.Bytes != total-503 || rep.After.Results != 2 || rep.After.Records != cachetest.FixtureRecords {
		t.Errorf("max size %d: %d dropped, after %+v", total-1, len(rep.Dropped), rep.After)
	}

	// By age: the three newest results stay.
	var times []time.Time
	for _, r := range cfg.Records {
		for _, res := range r.Results {
			times = append(times, res.CreatedAt)
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	now := times[len(times)-1].Add(time.Hour)
	out, rep := tmTrim(t, cfg, sizes, remotecache.WithMaxAge(now.Sub(times[len(times)-3])), remotecache.WithNow(now))
	if len(rep.Dropped) != len(times)-3 || rep.After.Results != 3 {
		t.Errorf("by age: %d dropped, after %+v", len(rep.Dropped), rep.After)
	}

	// What Trim gives, an Exporter writes, Verify passes and Import reads.
	ctx := context.Background()
	src, _ := lcLayout(t, itFixtureDir)
	_, dst := cachetest.NewLayout(t)
	exp, err := remotecache.NewExporter(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := remotecache.ParseConfig(out, m.Descriptors(src), exp); err != nil {
		t.Fatal(err)
	}
	res, err := exp.Finalize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md := cachetest.ManifestDesc(t, res)
	if problems, err := remotecache.Verify(ctx, dst, md); err != nil || len(problems) > 0 {
		t.Fatalf("Verify of the trimmed cache: %v %v", problems, err)
	}
	m2, back := tcRead(t, dst, md)
	if len(m2.Layers) != rep.After.Blobs {
		t.Errorf("trimmed manifest lists %d blobs, report says %d", len(m2.Layers), rep.After.Blobs)
	}
	tmCheckKept(t, cfg, back, rep)
}

func TestTrimErrors(t *testing.T) {
	cfg, sizes := tmGraph()
	noW := map[digest.Digest]int64{}
	for d, n := range sizes {
		if d != itD("W") {
			noW[d] = n
		}
	}
	loop := &remotecache.CacheConfig{Records: []remotecache.CacheRecord{{Digest: itD("a"), Inputs: [][]remotecache.CacheInput{{{LinkIndex: 0}}}}}}
	for _, tc := range []struct {
		name  string
		cfg   *remotecache.CacheConfig
		sizes map[digest.Digest]int64
		opts  []remotecache.TrimOption
		says  string
	}{
		{"no budget", cfg, sizes, nil, "no budget"},
		{"negative size", cfg, sizes, []remotecache.TrimOption{remotecache.WithMaxSize(-1)}, "max size -1"},
		{"zero age", cfg, sizes, []remotecache.TrimOption{remotecache.WithMaxAge(0)}, "max age 0s"},
		{"zero now", cfg, sizes, []remotecache.TrimOption{remotecache.WithMaxSize(1), remotecache.WithNow(time.Time{})}, "zero time"},
		{"blob without size", cfg, noW, []remotecache.TrimOption{remotecache.WithMaxSize(1)}, "blob " + string(itD("W")) + " has no size"},
		{"negative blob size", cfg, map[digest.Digest]int64{itD("X"): -2, itD("Y"): 1, itD("Z"): 1, itD("W"): 1}, []remotecache.TrimOption{remotecache.WithMaxSize(1)}, "negative size -2"},
		{"nil config", nil, sizes, []remotecache.TrimOption{remotecache.WithMaxSize(1)}, "nil cache config"},
		{"loop", loop, sizes, []remotecache.TrimOption{remotecache.WithMaxSize(1)}, "loop"},
	} {
		_, _, err := remotecache.Trim(tc.cfg, tc.sizes, tc.opts...)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !containsText(err, tc.says) {
			t.Errorf("%s: %v, want an invalid argument saying %q", tc.name, err, tc.says)
		}
	}
}

func containsText(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
