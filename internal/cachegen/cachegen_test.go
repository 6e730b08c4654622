package cachegen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestSameSeedSameGraph(t *testing.T) {
	opts := Options{AgainFraction: 0.05, MergeFraction: 0.03, ExtraLinkFraction: 0.3, RandomFraction: 0.02, MissingFraction: 0.05}
	for _, n := range []int{1, 7, 300, 1000} {
		for seed := int64(0); seed < 2; seed++ {
			a, b := NewWithOptions(seed, n, opts), NewWithOptions(seed, n, opts)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("seed %d, %d records: two graphs differ", seed, n)
			}
			if len(a.Ops) != n {
				t.Fatalf("seed %d: %d ops, want %d", seed, len(a.Ops), n)
			}
			if c := NewWithOptions(seed+100, n, opts); n > 10 && reflect.DeepEqual(a.Ops, c.Ops) {
				t.Fatalf("seeds %d and %d give the same graph", seed, seed+100)
			}
		}
	}
}

func TestGraphShape(t *testing.T) {
	g := NewWithOptions(42, 8000, Options{AgainFraction: 0.03, MergeFraction: 0.01})
	s := g.Stats()
	t.Logf("%+v", s)
	frac := float64(s.WithResults) / float64(s.Ops)
	if frac < 0.5 || frac > 0.7 {
		t.Errorf("%.2f of records have results, want about 0.6", frac)
	}
	if s.MultiSlot == 0 || s.MultiLink == 0 || s.Selectors == 0 || s.Again == 0 || s.Merges == 0 || s.Roots == 0 {
		t.Errorf("missing features: %+v", s)
	}
	if s.DistinctDigests >= s.Ops-s.Again {
		t.Errorf("no digest reached from different parents: %+v", s)
	}
	// Every op links only to earlier ops; every result's descriptors are
	// those of known blobs; a blob sits on top of different parent chains.
	tops := map[digest.Digest]map[string]bool{}
	equalTimes := 0
	for i, op := range g.Ops {
		for s, slot := range op.Deps {
			if len(slot) == 0 {
				t.Fatalf("op %d slot %d is empty", i, s)
			}
			for _, d := range slot {
				if d.Src < 0 || d.Src >= i {
					t.Fatalf("op %d slot %d links from op %d", i, s, d.Src)
				}
			}
		}
		for _, res := range op.Results {
			if len(res.Layers) == 0 {
				t.Fatalf("op %d has an empty result", i)
			}
			var parent []string
			for _, l := range res.Layers {
				b, ok := g.Blobs[l.Digest]
				if !ok || !reflect.DeepEqual(b.Descriptor, l) {
					t.Fatalf("op %d: layer %s is not a known blob's descriptor", i, l.Digest)
				}
				if l.MediaType != ocispec.MediaTypeImageLayerGzip && l.MediaType != "application/vnd.docker.image.rootfs.diff.tar.gzip" {
					t.Fatalf("media type %s", l.MediaType)
				}
				if l.Annotations[AnnotationUncompressed] == "" || l.Annotations[AnnotationCreatedAt] == "" {
					t.Fatalf("annotations %v", l.Annotations)
				}
				parent = append(parent, string(l.Digest))
			}
			top := res.Layers[len(res.Layers)-1].Digest
			if tops[top] == nil {
				tops[top] = map[string]bool{}
			}
			tops[top][strings.Join(parent[:len(parent)-1], ",")] = true
			if i > 0 && len(g.Ops[i-1].Results) > 0 && g.Ops[i-1].Results[0].CreatedAt.Equal(res.CreatedAt) {
				equalTimes++
			}
		}
	}
	shared := 0
	for _, parents := range tops {
		if len(parents) > 1 {
			shared++
		}
	}
	if shared == 0 {
		t.Error("no blob on top of different parent chains")
	}
	if equalTimes == 0 {
		t.Error("no equal CreatedAt")
	}
	used := 0
	for _, b := range g.Blobs {
		if b.Missing {
			t.Fatal("missing blob without MissingFraction")
		}
		used++
	}
	if used != len(g.BlobOrder) {
		t.Fatalf("%d blobs, %d in BlobOrder", used, len(g.BlobOrder))
	}
}

// A record's results never share a CreatedAt unless they have the same
// blobs: the best result must not depend on the insertion order.
func TestResultTimesDistinctPerDigest(t *testing.T) {
	g := NewWithOptions(7, 8000, Options{AgainFraction: 0.1, MergeFraction: 0.02})
	times := map[digest.Digest]map[int64]string{}
	for i, op := range g.Ops {
		for _, res := range op.Results {
			var ds []string
			for _, l := range res.Layers {
				ds = append(ds, string(l.Digest))
			}
			key := strings.Join(ds, ",")
			m := times[op.Digest]
			if m == nil {
				m = map[int64]string{}
				times[op.Digest] = m
			}
			if prev, ok := m[res.CreatedAt.UnixNano()]; ok && prev != key {
				t.Fatalf("op %d: two results of %s at %s with other blobs", i, op.Digest, res.CreatedAt)
			}
			m[res.CreatedAt.UnixNano()] = key
		}
	}
}

func TestOrdersAreTopological(t *testing.T) {
	for seed := int64(0); seed < 20; seed++ {
		g := NewWithOptions(seed, 50+int(seed)*40, Options{AgainFraction: 0.05, ExtraLinkFraction: 0.5})
		orders := map[string][]int{"in": g.InOrder()}
		for k := int64(0); k < 3; k++ {
			orders["shuffle"+string(rune('0'+k))] = g.Shuffle(k)
			orders["walk"+string(rune('0'+k))] = g.WalkOrder(k)
		}
		for name, o := range orders {
			if err := g.CheckOrder(o); err != nil {
				t.Fatalf("seed %d %s: %v", seed, name, err)
			}
		}
		if reflect.DeepEqual(orders["shuffle0"], orders["in"]) || reflect.DeepEqual(orders["shuffle0"], orders["shuffle1"]) {
			t.Fatalf("seed %d: shuffles do not shuffle", seed)
		}
		if !reflect.DeepEqual(g.Shuffle(5), g.Shuffle(5)) || !reflect.DeepEqual(g.WalkOrder(5), g.WalkOrder(5)) {
			t.Fatalf("seed %d: orders are not reproducible", seed)
		}
	}
	g := New(1, 10)
	bad := g.InOrder()
	for i, op := range g.Ops {
		if len(op.Deps) > 0 {
			j := op.Deps[0][0].Src
			bad[i], bad[j] = bad[j], bad[i]
			break
		}
	}
	if g.CheckOrder(bad) == nil {
		t.Fatal("CheckOrder accepts a dep after its dependent")
	}
	if g.CheckOrder(append(g.InOrder()[1:], 1)) == nil {
		t.Fatal("CheckOrder accepts a repeated op")
	}
}

func TestWalkOrderDeep(t *testing.T) {
	// A 50,000-deep chain: no recursion.
	g := &Graph{Ops: make([]Op, 50000)}
	x := digest.FromString("x")
	for i := range g.Ops {
		g.Ops[i] = Op{Digest: x, Again: -1}
		if i > 0 {
			g.Ops[i].Deps = [][]Dep{{{Src: i - 1}}}
		}
	}
	if err := g.CheckOrder(g.WalkOrder(1)); err != nil {
		t.Fatal(err)
	}
	if err := g.CheckOrder(g.Shuffle(1)); err != nil {
		t.Fatal(err)
	}
}

func TestProviderBytes(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int64{0, 16, 64 << 10, 3*blockSize + 123} {
		g := NewWithOptions(3, 200, Options{BlobSize: size, MaxBlobs: 5})
		if size == 0 && len(g.Blobs) < 5 {
			t.Fatalf("%d blobs", len(g.Blobs))
		}
		if size > 0 && len(g.Blobs) > 5 {
			t.Fatalf("MaxBlobs 5: %d blobs", len(g.Blobs))
		}
		p := g.Provider()
		for _, d := range g.BlobOrder {
			desc := g.Blobs[d].Descriptor
			if size > 0 && desc.Size != size {
				t.Fatalf("size %d, want %d", desc.Size, size)
			}
			info, err := p.Info(ctx, d)
			if err != nil || info.Size != desc.Size || info.Digest != d {
				t.Fatalf("Info(%s) = %+v, %v", d, info, err)
			}
			ra, err := p.ReaderAt(ctx, desc)
			if err != nil {
				t.Fatal(err)
			}
			if ra.Size() != desc.Size {
				t.Fatalf("reader size %d", ra.Size())
			}
			all, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
			if err != nil {
				t.Fatal(err)
			}
			if got := digest.FromBytes(all); got != d {
				t.Fatalf("bytes of %s hash to %s", d, got)
			}
			if sha256.Sum256(all) != sha256.Sum256(g.Blobs[d].Bytes()) {
				t.Fatal("Bytes differs from ReaderAt")
			}
			// Reads at odd offsets and lengths agree with the whole.
			for _, r := range [][2]int64{{1, 7}, {blockSize - 3, 10}, {desc.Size - 5, 5}, {desc.Size / 2, desc.Size}} {
				off, n := r[0], r[1]
				if off < 0 || off > desc.Size {
					continue
				}
				buf := make([]byte, n)
				got, err := ra.ReadAt(buf, off)
				want := min(n, desc.Size-off)
				if int64(got) != want || (want < n && err != io.EOF) || (want == n && err != nil) {
					t.Fatalf("ReadAt(%d, %d) of %d = %d, %v", n, off, desc.Size, got, err)
				}
				if !bytes.Equal(buf[:got], all[off:off+want]) {
					t.Fatalf("ReadAt(%d, %d): wrong bytes", n, off)
				}
			}
			ra.Close()
		}
		// Same seed, same bytes, in another graph value.
		g2 := NewWithOptions(3, 200, Options{BlobSize: size, MaxBlobs: 5})
		if !reflect.DeepEqual(g.BlobOrder, g2.BlobOrder) {
			t.Fatal("blob digests differ across runs")
		}
	}
}

func TestProviderMissing(t *testing.T) {
	ctx := context.Background()
	g := NewWithOptions(9, 500, Options{MissingFraction: 0.3})
	p := g.Provider()
	missing := 0
	for _, d := range g.BlobOrder {
		b := g.Blobs[d]
		_, err := p.Info(ctx, d)
		_, rerr := p.ReaderAt(ctx, b.Descriptor)
		if b.Missing {
			missing++
			if !errdefs.IsNotFound(err) || !errdefs.IsNotFound(rerr) {
				t.Fatalf("missing blob: %v, %v", err, rerr)
			}
		} else if err != nil || rerr != nil {
			t.Fatal(err, rerr)
		}
	}
	if missing == 0 {
		t.Fatal("no missing blob")
	}
	if _, err := p.Info(ctx, digest.FromString("nope")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown blob: %v", err)
	}
	if p.InfoCalls() != int64(len(g.BlobOrder))+1 {
		t.Fatalf("InfoCalls %d", p.InfoCalls())
	}
}

func TestLatticeShape(t *testing.T) {
	const n = 2000
	for _, opts := range []LatticeOptions{{}, {Twice: true}, {Twice: true, NewLink: true}, {Chain: 128}} {
		g := Lattice(5, n, opts)
		if !reflect.DeepEqual(g, Lattice(5, n, opts)) {
			t.Fatalf("%+v: two graphs of one seed differ", opts)
		}
		wantOps := n
		if opts.Twice {
			wantOps = 2 * n
		}
		if len(g.Ops) != wantOps {
			t.Fatalf("%+v: %d ops, want %d", opts, len(g.Ops), wantOps)
		}
		if err := g.CheckOrder(g.InOrder()); err != nil {
			t.Fatal(err)
		}
		chain := opts.Chain
		if chain == 0 {
			chain = 8
		}
		links, selectors := 0, 0
		depth := make([]int, len(g.Ops))
		for i, op := range g.Ops[:n] {
			if i < 2 {
				if len(op.Deps) != 0 {
					t.Fatalf("%+v: op %d has inputs", opts, i)
				}
			} else if len(op.Deps) != 2 || len(op.Deps[0]) != 2 || len(op.Deps[1]) != 2 || op.Deps[0][0].Src != i-1 {
				t.Fatalf("%+v: op %d: deps %v", opts, i, op.Deps)
			}
			for _, slot := range op.Deps {
				for _, d := range slot {
					if d.Src < i-latticeWindow || d.Src >= i {
						t.Fatalf("%+v: op %d links from %d", opts, i, d.Src)
					}
					links++
					if d.Selector != "" {
						selectors++
					}
					depth[i] = max(depth[i], depth[d.Src]+1)
				}
			}
			if len(op.Results) != 1 {
				t.Fatalf("%+v: op %d has %d results", opts, i, len(op.Results))
			}
			ls := op.Results[0].Layers
			if want := min(max(i, 1), chain); len(ls) != want {
				t.Fatalf("%+v: op %d: chain of %d layers, want %d", opts, i, len(ls), want)
			}
			if i >= 2 {
				p := g.Ops[i-1].Results[0].Layers
				if !reflect.DeepEqual(ls[:len(ls)-1], p[:len(ls)-1]) {
					t.Fatalf("%+v: op %d: chain is not on its parent's", opts, i)
				}
			}
		}
		if depth[n-1] != n-2 {
			t.Errorf("%+v: depth %d, want %d", opts, depth[n-1], n-2)
		}
		if f := float64(selectors) / float64(links); f < 0.45 || f > 0.55 {
			t.Errorf("%+v: %.2f of links have selectors, want about half", opts, f)
		}
		for i, op := range g.Ops[n:] {
			first := g.Ops[i]
			if op.Digest != first.Digest || op.Again != i || !reflect.DeepEqual(op.Results, first.Results) || len(op.Deps) != len(first.Deps) {
				t.Fatalf("%+v: op %d does not repeat op %d", opts, n+i, i)
			}
			for s, slot := range first.Deps {
				extra := 0
				if s == 0 && opts.NewLink {
					extra = 1
				}
				if len(op.Deps[s]) != len(slot)+extra {
					t.Fatalf("%+v: op %d slot %d: %d links, want %d", opts, n+i, s, len(op.Deps[s]), len(slot)+extra)
				}
				for k, d := range slot {
					if op.Deps[s][k] != (Dep{Src: d.Src + n, Selector: d.Selector}) {
						t.Fatalf("%+v: op %d slot %d link %d: %v, want %v shifted", opts, n+i, s, k, op.Deps[s][k], d)
					}
				}
				if extra == 1 {
					nl := op.Deps[0][len(slot)]
					if nl.Src < n+i-latticeWindow || nl.Src >= n+i || hasDep(slot, nl.Src-n, nl.Selector) {
						t.Fatalf("%+v: op %d: new link %v", opts, n+i, nl)
					}
				}
			}
		}
	}
}

// Changed replaces the fraction of blobs asked, everywhere they are used,
// with blobs of the same size whose bytes are their digest's; the graph
// it was made from is left as it was.
func TestChanged(t *testing.T) {
	g := NewWithOptions(11, 400, Options{BlobSize: 1 << 10, MaxBlobs: 100})
	before := NewWithOptions(11, 400, Options{BlobSize: 1 << 10, MaxBlobs: 100})
	c := g.Changed(1, 0.1)
	if !reflect.DeepEqual(g, before) {
		t.Fatal("Changed changed the graph it was given")
	}
	if len(c.Ops) != len(g.Ops) || len(c.Blobs) != len(g.Blobs) {
		t.Fatalf("changed graph: %d ops, %d blobs; want %d, %d", len(c.Ops), len(c.Blobs), len(g.Ops), len(g.Blobs))
	}
	fresh := 0
	for _, d := range c.BlobOrder {
		b := c.Blobs[d]
		if _, ok := g.Blobs[d]; !ok {
			fresh++
			if got := digest.FromBytes(b.Bytes()); got != d || b.Descriptor.Size != 1<<10 {
				t.Fatalf("new blob %s: bytes of %s, size %d", d, got, b.Descriptor.Size)
			}
		}
	}
	if want := (len(g.BlobOrder) + 5) / 10; fresh != want {
		t.Errorf("%d new blobs, want %d", fresh, want)
	}
	for i, op := range c.Ops {
		if op.Digest != g.Ops[i].Digest || !reflect.DeepEqual(op.Deps, g.Ops[i].Deps) {
			t.Fatalf("op %d: digest or deps changed", i)
		}
		for _, r := range op.Results {
			for _, l := range r.Layers {
				if _, ok := c.Blobs[l.Digest]; !ok {
					t.Fatalf("op %d names blob %s, not in the changed graph", i, l.Digest)
				}
			}
		}
	}
	if c2 := g.Changed(1, 0.1); !reflect.DeepEqual(c, c2) {
		t.Error("same seed, different graphs")
	}
}
