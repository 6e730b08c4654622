package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/clitest"
	"github.com/containerd/containerd/v2/core/content"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestDotQuote(t *testing.T) {
	if got, want := dotQuote("a \"b\" \\c\nd"), `"a \"b\" \\c\nd"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestChainOf(t *testing.T) {
	layers := []remotecache.CacheLayer{{ParentIndex: -1}, {ParentIndex: 0}, {ParentIndex: 3}, {ParentIndex: 2}, {ParentIndex: 7}}
	for _, tc := range []struct {
		top   int
		chain []int
		ok    bool
	}{
		{0, []int{0}, true},
		{1, []int{0, 1}, true},
		{2, nil, false}, // a loop
		{4, nil, false}, // a parent out of range
		{9, nil, false},
		{-2, nil, false},
	} {
		chain, ok := chainOf(layers, tc.top)
		if ok != tc.ok || (ok && !reflect.DeepEqual(chain, tc.chain)) {
			t.Errorf("chainOf(%d) = %v, %v", tc.top, chain, ok)
		}
	}
}

// TestInspectBadConfig inspects a cache whose config has indexes out of
// range and a loop of parents: each is flagged, nothing panics.
func TestInspectBadConfig(t *testing.T) {
	ctx := context.Background()
	var l0, l1 ocispec.Descriptor
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	dir := writeCache(t, func(write func(string, []byte) ocispec.Descriptor) remotecache.CacheConfig {
		l0 = write(ocispec.MediaTypeImageLayerGzip, []byte("layer 0"))
		l1 = write(ocispec.MediaTypeImageLayerGzip, []byte("layer 1"))
		return remotecache.CacheConfig{
			Layers: []remotecache.CacheLayer{{Blob: l0.Digest, ParentIndex: 1}, {Blob: l1.Digest, ParentIndex: 0}},
			Records: []remotecache.CacheRecord{
				{Digest: digest.FromString("a"), Results: []remotecache.CacheResult{{LayerIndex: 0, CreatedAt: created}, {LayerIndex: 5, CreatedAt: created}}},
				{Digest: digest.FromString("b"), Inputs: [][]remotecache.CacheInput{{{LinkIndex: 9, Selector: `"quoted"`}}},
					ChainedResults: []remotecache.ChainedResult{{LayerIndexes: []int{1, 4}, CreatedAt: created}}},
			},
		}
	})

	loc, err := parseLocation("oci:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := inspect(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range []result{r.Records[0].Results[0], r.Records[0].Results[1], r.Records[1].Results[0]} {
		if res.Problem == "" {
			t.Errorf("result %d not flagged: %+v", i, res)
		}
	}
	if in := r.Records[1].Inputs[0][0]; in.Record != 9 || in.Digest != "" {
		t.Errorf("input out of range: %+v", in)
	}
	var text, dot strings.Builder
	if err := r.writeText(&text); err != nil || !strings.Contains(text.String(), "input 0 <- #9 (no such record)") || !strings.Contains(text.String(), "PROBLEM: layer index out of range") {
		t.Errorf("text (%v):\n%s", err, text.String())
	}
	if err := r.writeDot(&dot); err != nil || !strings.Contains(dot.String(), `"r9" -> "r1" [label="0 \"quoted\"", tooltip="\"quoted\"", color=red]`) {
		t.Errorf("dot (%v):\n%s", err, dot.String())
	}
}

// writeCache writes into a new layout the cache whose config mk returns
// (mk writes the layer blobs it names with write), tagged "latest", and
// returns the layout's directory.
func writeCache(t *testing.T, mk func(write func(mediaType string, dt []byte) ocispec.Descriptor) remotecache.CacheConfig) string {
	t.Helper()
	ctx := context.Background()
	dir, s := cachetest.NewLayout(t)
	defer s.Close()
	var layers []ocispec.Descriptor
	write := func(mediaType string, dt []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
		if err := content.WriteBlob(ctx, s, d.Digest.String(), strings.NewReader(string(dt)), d); err != nil {
			t.Fatal(err)
		}
		if mediaType != remotecache.CacheConfigMediaTypeV0 && mediaType != ocispec.MediaTypeImageManifest {
			layers = append(layers, d)
		}
		return d
	}
	cfgJSON, err := json.Marshal(mk(write))
	if err != nil {
		t.Fatal(err)
	}
	cd := write(remotecache.CacheConfigMediaTypeV0, cfgJSON)
	mJSON, err := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	md := write(ocispec.MediaTypeImageManifest, mJSON)
	if err := s.Tag(ctx, "latest", md); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A config that Import refuses (here: a record that is its own input, and
// a negative link index) is shown as far as it can be, every problem is
// flagged in each output, and inspect exits 1.
func TestInspectFlagsStructuralProblems(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	dir := writeCache(t, func(write func(string, []byte) ocispec.Descriptor) remotecache.CacheConfig {
		l := write(ocispec.MediaTypeImageLayerGzip, []byte("layer"))
		return remotecache.CacheConfig{
			Layers: []remotecache.CacheLayer{{Blob: l.Digest, ParentIndex: -1}},
			Records: []remotecache.CacheRecord{
				{Digest: digest.FromString("self"), Inputs: [][]remotecache.CacheInput{{{LinkIndex: 0}}}, Results: []remotecache.CacheResult{{LayerIndex: 0, CreatedAt: created}}},
				{Digest: digest.FromString("negative"), Inputs: [][]remotecache.CacheInput{{{LinkIndex: -1}}}},
			},
		}
	})
	loop := "record 0: input 0 link 0: loop through record 0"
	negative := "record 1: input 0 link 0: record index -1 out of range"

	text := runTool(t, "inspect", "oci:"+dir, "--quiet")
	clitest.FailsWith(t, text, "2 problems")
	says(t, "text", text.Stdout, "PROBLEM: "+negative, "PROBLEM: "+loop, "#1 "+digest.FromString("negative").String())

	rep := inspectJSONExit(t, "oci:"+dir, 1)
	if len(rep.Problems) != 2 || !strings.Contains(rep.Problems[0], negative) || !strings.Contains(rep.Problems[1], loop) {
		t.Errorf("JSON problems = %q", rep.Problems)
	}
	if rep.Counts.Records != 2 || len(rep.Records[0].Results) != 1 {
		t.Errorf("JSON does not show the graph: %+v", rep)
	}

	dot := runTool(t, "inspect", "oci:"+dir, "--dot", "--quiet")
	clitest.FailsWith(t, dot, "2 problems")
	says(t, "dot", dot.Stdout, `"r-1" -> "r1"`, `"r0" -> "r0"`, "PROBLEM: "+loop)
	if strings.Contains(dot.Stdout, "\tr-1") {
		t.Errorf("dot has an unquoted node ID:\n%s", dot.Stdout)
	}
}
