package remotecache_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachetest"
)

// testdata/diff-pair holds two caches a real buildkitd wrote of
// testdata/diff-pair/Dockerfile, A with VERSION=1 and B with VERSION=2:
// only the step RUN echo "app $VERSION" got a new key (see
// /work/shared/fixtures/README.md, which they were copied from).
const (
	dfA = "testdata/diff-pair/A"
	dfB = "testdata/diff-pair/B"
)

func dfDiff(t *testing.T, a, b *remotecache.CacheConfig, aSizes, bSizes map[digest.Digest]int64) *remotecache.DiffReport {
	t.Helper()
	r, err := remotecache.Diff(a, b, aSizes, bSizes)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	return r
}

// dfChainLen is how many layers the first result of record i has.
func dfChainLen(cfg *remotecache.CacheConfig, i int) int {
	if len(cfg.Records[i].Results) == 0 {
		return 0
	}
	n := 0
	for l := cfg.Records[i].Results[0].LayerIndex; l >= 0; l = cfg.Layers[l].ParentIndex {
		n++
	}
	return n
}

func TestDiffPair(t *testing.T) {
	ma, a := lcLoad(t, dfA)
	mb, b := lcLoad(t, dfB)
	r := dfDiff(t, a, b, ma.BlobSizes(), mb.BlobSizes())

	// The base stage's last step, RUN mkdir, is the one record with a
	// result of three layers (COPY, COPY, RUN); the changed RUN echo is
	// the record of B whose one input is that step and whose digest A
	// does not have.
	base := -1
	for i := range b.Records {
		if dfChainLen(b, i) == 3 {
			if base >= 0 {
				t.Fatalf("records %d and %d of B both have three layers", base, i)
			}
			base = i
		}
	}
	digestsA := map[digest.Digest]bool{}
	for _, rec := range a.Records {
		digestsA[rec.Digest] = true
	}
	if base < 0 || !digestsA[b.Records[base].Digest] {
		t.Fatalf("no base stage step in B that A has too (record %d)", base)
	}
	app := -1
	for i, rec := range b.Records {
		if len(rec.Inputs) == 1 && len(rec.Inputs[0]) == 1 && rec.Inputs[0][0].LinkIndex == base && !digestsA[rec.Digest] {
			if app >= 0 {
				t.Fatalf("records %d and %d of B both look like the changed step", app, i)
			}
			app = i
		}
	}
	if app < 0 {
		t.Fatal("no changed step in B")
	}

	if len(r.Divergence) != 1 {
		t.Fatalf("%d divergence points, want 1: %+v", len(r.Divergence), r.Divergence)
	}
	dp := r.Divergence[0]
	if dp.Record.Index != app || dp.Record.Digest != b.Records[app].Digest {
		t.Errorf("divergence point %+v, want record %d (%s)", dp.Record, app, b.Records[app].Digest)
	}
	if len(dp.Inputs) != 1 || dp.Inputs[0].Source.Index != base || dp.Inputs[0].InA == nil || dp.Inputs[0].InA.Digest != b.Records[base].Digest {
		t.Errorf("divergence point's inputs %+v, want one from record %d of B, in A", dp.Inputs, base)
	}
	if len(dp.Was) != 1 || dp.Was[0].Digest == dp.Record.Digest || a.Records[dp.Was[0].Index].Inputs[0][0].LinkIndex != dp.Inputs[0].InA.Index {
		t.Errorf("was %+v, want the step of A on the same input", dp.Was)
	}

	// The content-keyed root of COPY --from=app: a consequence, linked
	// beside the step after the changed one (RUN cat), which is new too.
	if len(r.Consequences) != 1 {
		t.Fatalf("%d consequences, want 1: %+v", len(r.Consequences), r.Consequences)
	}
	c := r.Consequences[0]
	if len(b.Records[c.Record.Index].Inputs) != 0 || digestsA[c.Record.Digest] {
		t.Errorf("consequence %+v: not a new root", c.Record)
	}
	if len(c.Beside) != 1 || c.Beside[0].Slot != 1 || len(c.Beside[0].Sources) != 1 {
		t.Fatalf("consequence linked %+v, want into slot 1 of one record beside one source", c.Beside)
	}
	next := b.Records[c.Beside[0].Sources[0].Index]
	if len(next.Inputs) != 1 || next.Inputs[0][0].LinkIndex != app {
		t.Errorf("the consequence's new neighbour %+v is not the step after the changed one", c.Beside[0].Sources[0])
	}

	// Every other record only in B is below the divergence point.
	below := map[int]bool{app: true}
	for changed := true; changed; {
		changed = false
		for i, rec := range b.Records {
			for _, slot := range rec.Inputs {
				for _, in := range slot {
					if below[in.LinkIndex] && !below[i] {
						below[i], changed = true, true
					}
				}
			}
		}
	}
	for _, rec := range r.Records.OnlyB {
		if i := rec.Record.Index; i != c.Record.Index && !below[i] {
			t.Errorf("record %d only in B is not below the divergence point", i)
		}
	}

	// Records only in B are those whose key (written apart from Diff's)
	// A has not.
	keysA := map[string]bool{}
	for _, k := range cachetest.RecordKeys(a) {
		keysA[k] = true
	}
	var want, got []int
	for i, k := range cachetest.RecordKeys(b) {
		if !keysA[k] {
			want = append(want, i)
		}
	}
	for _, rec := range r.Records.OnlyB {
		got = append(got, rec.Record.Index)
	}
	if !slices.Equal(got, want) {
		t.Errorf("records only in B %v, want %v", got, want)
	}
	counts := []int{r.Records.Common, len(r.Records.OnlyA), len(r.Records.OnlyB),
		r.Results.Common, len(r.Results.OnlyA), len(r.Results.OnlyB), len(r.Results.Changed),
		r.Blobs.Common, len(r.Blobs.OnlyA), len(r.Blobs.OnlyB), len(r.Blobs.Changed)}
	if !slices.Equal(counts, []int{7, 5, 5, 5, 4, 4, 0, 5, 4, 4, 0}) {
		t.Errorf("records, results, blobs (common, only A, only B[, changed]): %v", counts)
	}
	if r.Blobs.OnlyABytes != 505 || r.Blobs.OnlyBBytes != 509 {
		t.Errorf("bytes only in A %d, only in B %d; want 505, 509", r.Blobs.OnlyABytes, r.Blobs.OnlyBBytes)
	}

	// The JSON the command line prints has a top-level divergence array.
	dt, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(dt, &top); err != nil {
		t.Fatal(err)
	}
	var div []map[string]any
	if err := json.Unmarshal(top["divergence"], &div); err != nil || len(div) != 1 {
		t.Errorf("JSON divergence: %s (%v)", top["divergence"], err)
	}
}

func TestDiffSelfIsEmpty(t *testing.T) {
	for _, dir := range []string{dfA, dfB, itFixtureDir} {
		m, cfg := lcLoad(t, dir)
		r := dfDiff(t, cfg, cfg, m.BlobSizes(), m.BlobSizes())
		if !r.Empty() {
			t.Errorf("%s against itself: %+v", dir, r)
		}
		if r.Records.Common != len(cfg.Records) || r.Blobs.Common != len(m.Layers) {
			t.Errorf("%s against itself: %d records, %d blobs in common; want %d, %d", dir, r.Records.Common, r.Blobs.Common, len(cfg.Records), len(m.Layers))
		}
		if dt, _ := json.Marshal(r); strings.Contains(string(dt), "null") {
			t.Errorf("%s: JSON has null lists: %s", dir, dt)
		}
	}
}

// dfConfig builds a config of records without results: each a name, whose
// digest is its digest, and input slots of links (source index, selector).
type dfRec struct {
	name  string
	slots [][]dfLink
}

type dfLink struct {
	src int
	sel string
}

func dfConfig(recs ...dfRec) *remotecache.CacheConfig {
	cfg := &remotecache.CacheConfig{}
	for _, r := range recs {
		rec := remotecache.CacheRecord{Digest: itD(r.name)}
		for _, slot := range r.slots {
			var in []remotecache.CacheInput
			for _, l := range slot {
				in = append(in, remotecache.CacheInput{LinkIndex: l.src, Selector: l.sel})
			}
			rec.Inputs = append(rec.Inputs, in)
		}
		cfg.Records = append(cfg.Records, rec)
	}
	return cfg
}

func TestDiffIdentityIsUpstream(t *testing.T) {
	// X has the same digest on both sides but another input; Y, below it,
	// too: both are other records, and only X is a divergence point.
	a := dfConfig(dfRec{name: "R"}, dfRec{name: "S"}, dfRec{name: "X", slots: [][]dfLink{{{0, ""}}}}, dfRec{name: "Y", slots: [][]dfLink{{{2, "p"}}}})
	b := dfConfig(dfRec{name: "R"}, dfRec{name: "S"}, dfRec{name: "X", slots: [][]dfLink{{{1, ""}}}}, dfRec{name: "Y", slots: [][]dfLink{{{2, "p"}}}})
	r := dfDiff(t, a, b, nil, nil)
	var onlyB []digest.Digest
	for _, rec := range r.Records.OnlyB {
		onlyB = append(onlyB, rec.Record.Digest)
	}
	if !slices.Equal(onlyB, []digest.Digest{itD("X"), itD("Y")}) || len(r.Records.OnlyA) != 2 || r.Records.Common != 2 {
		t.Errorf("only in B %v, only in A %d, common %d", onlyB, len(r.Records.OnlyA), r.Records.Common)
	}
	if len(r.Divergence) != 1 || r.Divergence[0].Record.Digest != itD("X") || len(r.Divergence[0].Was) != 0 {
		t.Errorf("divergence %+v, want X, with no record of A on the same inputs", r.Divergence)
	}
	// A slot is a set: links in another order, or twice, are the same.
	c := dfConfig(dfRec{name: "R"}, dfRec{name: "S"}, dfRec{name: "Z", slots: [][]dfLink{{{0, "a"}, {1, "b"}}}})
	d := dfConfig(dfRec{name: "S"}, dfRec{name: "R"}, dfRec{name: "Z", slots: [][]dfLink{{{0, "b"}, {1, "a"}, {0, "b"}}}})
	if r := dfDiff(t, c, d, nil, nil); !r.Empty() {
		t.Errorf("the same slot in another order: %+v", r)
	}
}

func TestDiffResultsAndBlobs(t *testing.T) {
	cfg := func(sec int) *remotecache.CacheConfig {
		return &remotecache.CacheConfig{
			Layers:  []remotecache.CacheLayer{{Blob: itD("L"), ParentIndex: -1}},
			Records: []remotecache.CacheRecord{{Digest: itD("R"), Results: []remotecache.CacheResult{{LayerIndex: 0, CreatedAt: tcTime(sec)}}}},
		}
	}
	r := dfDiff(t, cfg(1), cfg(2), map[digest.Digest]int64{itD("L"): 10}, map[digest.Digest]int64{itD("L"): 20})
	if r.Records.Common != 1 || len(r.Results.Changed) != 1 || len(r.Results.OnlyA)+len(r.Results.OnlyB) != 0 {
		t.Errorf("results: %+v", r.Results)
	} else if ch := r.Results.Changed[0]; !ch.A[0].CreatedAt.Equal(tcTime(1)) || !ch.B[0].CreatedAt.Equal(tcTime(2)) || ch.A[0].Size != 10 || ch.B[0].Size != 20 {
		t.Errorf("changed result %+v", ch)
	}
	if len(r.Blobs.Changed) != 1 || r.Blobs.Changed[0].SizeA != 10 || r.Blobs.Changed[0].SizeB != 20 {
		t.Errorf("blobs: %+v", r.Blobs)
	}
	noResult := cfg(1)
	noResult.Records[0].Results = nil
	r = dfDiff(t, cfg(1), noResult, nil, nil)
	if len(r.Results.OnlyA) != 1 || r.Results.OnlyA[0].Size != -1 || len(r.Results.Changed) != 0 {
		t.Errorf("a result only in A, size unknown: %+v", r.Results)
	}
}

func TestDiffContentKeyedRoots(t *testing.T) {
	// A: base P, and a step U on it; B's variants put new roots beside
	// new or old sources in one slot of a step T.
	a := dfConfig(dfRec{name: "P"}, dfRec{name: "U", slots: [][]dfLink{{{0, ""}}}})
	for _, tc := range []struct {
		name               string
		b                  *remotecache.CacheConfig
		divergence, follow []digest.Digest
	}{{
		// The changed step S and the root of its content C: C follows.
		name: "beside a new step",
		b: dfConfig(dfRec{name: "P"}, dfRec{name: "S", slots: [][]dfLink{{{0, ""}}}}, dfRec{name: "C"},
			dfRec{name: "T", slots: [][]dfLink{{{1, "/out"}, {2, ""}}}}),
		divergence: []digest.Digest{itD("S")}, follow: []digest.Digest{itD("C")},
	}, {
		// A new image I, linked with a selector, and its content's root.
		name:       "beside a new root with a selector",
		b:          dfConfig(dfRec{name: "I"}, dfRec{name: "C"}, dfRec{name: "T", slots: [][]dfLink{{{0, "/f"}, {1, ""}}}}),
		divergence: []digest.Digest{itD("I")}, follow: []digest.Digest{itD("C")},
	}, {
		// Two new roots without selectors: no telling which is the cause.
		name:       "two bare roots",
		b:          dfConfig(dfRec{name: "I"}, dfRec{name: "C"}, dfRec{name: "T", slots: [][]dfLink{{{0, ""}, {1, ""}}}}),
		divergence: []digest.Digest{itD("I"), itD("C")},
	}, {
		// Content that changed while the step that made it did not.
		name:       "beside an old step",
		b:          dfConfig(dfRec{name: "P"}, dfRec{name: "U", slots: [][]dfLink{{{0, ""}}}}, dfRec{name: "C"}, dfRec{name: "T", slots: [][]dfLink{{{1, "/out"}, {2, ""}}}}),
		divergence: []digest.Digest{itD("C")},
	}, {
		// A new root linked with a selector is no content key.
		name:       "new root with a selector beside a new step",
		b:          dfConfig(dfRec{name: "P"}, dfRec{name: "S", slots: [][]dfLink{{{0, ""}}}}, dfRec{name: "C"}, dfRec{name: "T", slots: [][]dfLink{{{1, "/out"}, {2, "/x"}}}}),
		divergence: []digest.Digest{itD("S"), itD("C")},
	}} {
		r := dfDiff(t, a, tc.b, nil, nil)
		var div, fol []digest.Digest
		for _, d := range r.Divergence {
			div = append(div, d.Record.Digest)
		}
		for _, c := range r.Consequences {
			fol = append(fol, c.Record.Digest)
		}
		if !slices.Equal(div, tc.divergence) || !slices.Equal(fol, tc.follow) {
			t.Errorf("%s: divergence %v, consequences %v; want %v, %v", tc.name, div, fol, tc.divergence, tc.follow)
		}
	}
}

func TestDiffErrors(t *testing.T) {
	good := dfConfig(dfRec{name: "P"})
	bad := dfConfig(dfRec{name: "P", slots: [][]dfLink{{{5, ""}}}})
	for _, tc := range []struct {
		a, b *remotecache.CacheConfig
		says string
	}{{bad, good, "config A"}, {good, bad, "config B"}, {nil, good, "nil cache config"}} {
		if _, err := remotecache.Diff(tc.a, tc.b, nil, nil); !errors.Is(err, errdefs.ErrInvalidArgument) || !containsText(err, tc.says) {
			t.Errorf("Diff: %v, want an invalid argument saying %q", err, tc.says)
		}
	}
}
