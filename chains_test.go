package remotecache_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache"
)

func TestAddRandomDigestIsNotExported(t *testing.T) {
	c := remotecache.NewCacheChains()
	r, ok, err := c.Add("random:0123", nil, nil)
	if r != nil || ok || err != nil {
		t.Fatalf("Add(random:) = %v, %v, %v; want nil, false, nil", r, ok, err)
	}
	cfg, _ := tcMarshal(t, c)
	if len(cfg.Records) != 0 {
		t.Fatalf("random record was marshalled: %+v", cfg.Records)
	}
}

type foreignRecord struct{}

func (foreignRecord) Digest() digest.Digest { return tcDigest("foreign") }

func TestAddRejectsBadLinks(t *testing.T) {
	other := remotecache.NewCacheChains()
	otherRec := tcAdd(t, other, tcDigest("o"), nil)
	for _, tc := range []struct {
		name string
		deps [][]remotecache.Link
		want string
	}{
		{"empty slot", [][]remotecache.Link{{}}, "input 0 is empty"},
		{"empty second slot", [][]remotecache.Link{{{Src: nil}}, {}}, "input 0 link 0"},
		{"nil source", [][]remotecache.Link{{{Src: nil}}}, "input 0 link 0"},
		{"other graph", [][]remotecache.Link{{{Src: otherRec}}}, "belongs to another graph"},
		{"foreign type", [][]remotecache.Link{{{Src: foreignRecord{}}}}, "is not a record of this graph"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := remotecache.NewCacheChains()
			dgst := tcDigest("target")
			_, _, err := c.Add(dgst, tc.deps, nil)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want invalid argument", err)
			}
			if !strings.Contains(err.Error(), dgst.String()) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to name the record and %q", err, tc.want)
			}
			cfg, _ := tcMarshal(t, c)
			if len(cfg.Records) != 0 {
				t.Fatalf("a failed Add left records: %+v", cfg.Records)
			}
		})
	}
}

func TestAddRootMergesResults(t *testing.T) {
	store := tcStore(t)
	b1 := tcBlob(t, store, []byte("one"))
	b2 := tcBlob(t, store, []byte("two"))
	c := remotecache.NewCacheChains()
	r1 := tcAdd(t, c, tcDigest("root"), nil, tcResult(store, 1, b1))
	r2 := tcAdd(t, c, tcDigest("root"), nil, tcResult(store, 2, b2))
	if r1 != r2 {
		t.Fatal("a root added twice gave two records")
	}
	cfg, _ := tcMarshal(t, c)
	rec := tcRecord(t, cfg, tcDigest("root"))
	if len(rec.Results) != 1 || cfg.Layers[rec.Results[0].LayerIndex].Blob != b2.Digest {
		t.Fatalf("root results = %+v, want the newer one (%s)", rec.Results, b2.Digest)
	}
}

func TestAddWithDepsMatchesExisting(t *testing.T) {
	c := remotecache.NewCacheChains()
	a := tcAdd(t, c, tcDigest("a"), nil)
	b1 := tcAdd(t, c, tcDigest("b"), tcLinks(tcSlot(a)))
	b2 := tcAdd(t, c, tcDigest("b"), tcLinks(tcSlot(a)))
	if b1 != b2 {
		t.Fatal("same digest and same link gave two records")
	}
	// A different selector is a different record.
	b3 := tcAdd(t, c, tcDigest("b"), [][]remotecache.Link{{{Src: a, Selector: "sel"}}})
	if b3 == b1 {
		t.Fatal("a different selector matched the record")
	}
	// Matching needs a link in every slot.
	x := tcAdd(t, c, tcDigest("x"), nil)
	b4 := tcAdd(t, c, tcDigest("b"), tcLinks(tcSlot(a), tcSlot(x)))
	b5 := tcAdd(t, c, tcDigest("b"), tcLinks(tcSlot(a), tcSlot(x)))
	if b4 != b5 {
		t.Fatal("two-slot record added twice gave two records")
	}
	// One matching source in a slot is enough; the new link is added.
	y := tcAdd(t, c, tcDigest("y"), nil)
	b6 := tcAdd(t, c, tcDigest("b"), tcLinks(tcSlot(a), tcSlot(x, y)))
	if b6 != b4 {
		t.Fatal("a slot with one known source did not match")
	}
	cfg, _ := tcMarshal(t, c)
	var two []remotecache.CacheRecord
	for _, r := range cfg.Records {
		if r.Digest == tcDigest("b") && len(r.Inputs) == 2 {
			two = append(two, r)
		}
	}
	if len(two) != 1 || len(two[0].Inputs[1]) != 2 {
		t.Fatalf("two-slot records = %+v, want one with two links in slot 1", two)
	}
	if n := len(cfg.Records); n != 6 {
		t.Fatalf("%d records, want 6 (a, x, y, b, b sel, b two slots)", n)
	}
}

func TestAddMergesSeveralMatches(t *testing.T) {
	store := tcStore(t)
	old := tcBlob(t, store, []byte("old"))
	newer := tcBlob(t, store, []byte("newer"))
	c := remotecache.NewCacheChains()
	x := tcAdd(t, c, tcDigest("x"), nil)
	y := tcAdd(t, c, tcDigest("y"), nil)
	dx := tcAdd(t, c, tcDigest("d"), tcLinks(tcSlot(x)), tcResult(store, 1, old))
	dy := tcAdd(t, c, tcDigest("d"), tcLinks(tcSlot(y)), tcResult(store, 2, newer))
	if dx == dy {
		t.Fatal("records from different sources matched")
	}
	// A child of the second one must follow the merge.
	tcAdd(t, c, tcDigest("e"), tcLinks(tcSlot(dy)))
	d := tcAdd(t, c, tcDigest("d"), tcLinks(tcSlot(x, y)))
	if d != dx {
		t.Fatal("merge did not keep the oldest record")
	}
	// The old handle of the merged record still works as a source.
	tcAdd(t, c, tcDigest("f"), tcLinks(tcSlot(dy)))

	cfg, _ := tcMarshal(t, c)
	rec := tcRecord(t, cfg, tcDigest("d"))
	if len(rec.Inputs) != 1 || len(rec.Inputs[0]) != 2 {
		t.Fatalf("merged record inputs = %+v, want x and y in one slot", rec.Inputs)
	}
	if len(rec.Results) != 1 || cfg.Layers[rec.Results[0].LayerIndex].Blob != newer.Digest {
		t.Fatalf("merged record results = %+v, want the newest", rec.Results)
	}
	dIndex := -1
	for i, r := range cfg.Records {
		if r.Digest == tcDigest("d") {
			dIndex = i
		}
	}
	for _, name := range []string{"e", "f"} {
		r := tcRecord(t, cfg, tcDigest(name))
		if len(r.Inputs) != 1 || len(r.Inputs[0]) != 1 || r.Inputs[0][0].LinkIndex != dIndex {
			t.Fatalf("record %s inputs = %+v, want a link to the merged record %d", name, r.Inputs, dIndex)
		}
	}
}

func TestAddDropsLinkFromDescendant(t *testing.T) {
	c := remotecache.NewCacheChains()
	a := tcAdd(t, c, tcDigest("a"), nil)
	b := tcAdd(t, c, tcDigest("b"), tcLinks(tcSlot(a)))
	cc := tcAdd(t, c, tcDigest("c"), tcLinks(tcSlot(b)))
	// b again, now also reached from its own child c: that link would be a
	// cycle and is dropped.
	b2 := tcAdd(t, c, tcDigest("b"), tcLinks(tcSlot(a, cc)))
	if b2 != b {
		t.Fatal("b was not matched")
	}
	cfg, _ := tcMarshal(t, c)
	rec := tcRecord(t, cfg, tcDigest("b"))
	if len(rec.Inputs) != 1 || len(rec.Inputs[0]) != 1 || cfg.Records[rec.Inputs[0][0].LinkIndex].Digest != tcDigest("a") {
		t.Fatalf("b inputs = %+v, want only a", rec.Inputs)
	}
}

func TestAddBestResult(t *testing.T) {
	store := tcStore(t)
	first := tcBlob(t, store, []byte("first"))
	second := tcBlob(t, store, []byte("second"))
	older := tcBlob(t, store, []byte("older"))
	c := remotecache.NewCacheChains()
	// Ties on CreatedAt go to the result added first; older results lose.
	tcAdd(t, c, tcDigest("r"), nil, tcResult(store, 5, first), tcResult(store, 5, second))
	tcAdd(t, c, tcDigest("r"), nil, tcResult(store, 1, older))
	cfg, _ := tcMarshal(t, c)
	rec := tcRecord(t, cfg, tcDigest("r"))
	if got := cfg.Layers[rec.Results[0].LayerIndex].Blob; got != first.Digest {
		t.Fatalf("best result blob = %s, want the first added of the newest (%s)", got, first.Digest)
	}
	if !rec.Results[0].CreatedAt.Equal(tcTime(5)) {
		t.Fatalf("createdAt = %v", rec.Results[0].CreatedAt)
	}
}

func TestCacheChainsConcurrentUse(t *testing.T) {
	store := tcStore(t)
	blob := tcBlob(t, store, []byte("shared"))
	c := remotecache.NewCacheChains()
	base := tcAdd(t, c, tcDigest("base"), nil, tcResult(store, 0, blob))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := base
			for i := range 50 {
				// Every goroutine adds the same chain: all must end up one.
				r, _, err := c.Add(tcDigest(fmt.Sprint("step", i)), tcLinks(tcSlot(prev)), []remotecache.Result{tcResult(store, i, blob)})
				if err != nil {
					t.Error(err)
					return
				}
				prev = r
				if i%10 == g {
					if _, _, err := c.Marshal(context.Background()); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	cfg, _ := tcMarshal(t, c)
	if len(cfg.Records) != 51 {
		t.Fatalf("%d records, want 51", len(cfg.Records))
	}
}

func TestDeepChain(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	c := remotecache.NewCacheChains()
	prev := tcAdd(t, c, tcDigest("root"), nil)
	for i := range n {
		prev = tcAdd(t, c, tcDigest(fmt.Sprint(i)), tcLinks(tcSlot(prev)))
	}
	cfg, _ := tcMarshal(t, c)
	if len(cfg.Records) != n+1 {
		t.Fatalf("%d records, want %d", len(cfg.Records), n+1)
	}
}
