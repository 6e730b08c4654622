package bkobject

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	bkremotecache "github.com/moby/buildkit/cache/remotecache"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/objstoretest"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

// Bench is the side-by-side benchmark of the export to an object store
// server: ours (remotecache.NewExporter in the config-only form) against
// BuildKit's exporter of that store, each with its defaults. The blobs
// are first written into a containerd local store, which both sides
// read. One run of a side exports into a new place ("first export"),
// then exports the same again there, where every blob is ("re-export");
// each export replays the graph into a new exporter (not timed) and
// times Finalize. Runs alternate, ours, BuildKit, ours, …, after one
// untimed warm-up run of each side, straight to the server; a last run of
// each side goes through the counting proxy, untimed, for the requests
// and bytes. The medians and the ratios ours/BuildKit are printed as a
// markdown table. CPU is this process's (the exporter's) and the
// server's, apart.
type Bench struct {
	// Server names the server in the lines and the table ("gateway",
	// "Azurite"), To as the runs go to it ("the gateway", "Azurite").
	Server, To string
	// Title heads the table's first column ("export to Azurite 3.35.0").
	Title string
	// RunsEnv is the environment variable that sets the timed runs per
	// side (default 5).
	RunsEnv string
	// URL is the server's, Proxy the counting proxy in front of it.
	URL   string
	Proxy *objstoretest.Proxy
	// ServerCPU returns the CPU time the server has used so far.
	ServerCPU func() time.Duration
	// Settle, if not nil, runs once the source store is filled.
	Settle func()

	// Store opens our store writing into where through url (the
	// server's or the proxy's).
	Store func(url, where string) (content.Ingester, error)
	// Resolve is BuildKit's ResolveCacheExporterFunc of the store, and
	// Attrs its attributes for writing into where through url.
	Resolve bkremotecache.ResolveCacheExporterFunc
	Attrs   func(url, where string) map[string]string

	// Place returns where run (a number, or "counted") of side ("ours",
	// "buildkit") exports, made ready; Free frees it once the run is
	// over.
	Place func(side, run string) string
	Free  func(where string)
	// Config reads the config that an export into where wrote.
	Config func(where string) []byte
}

// RunGraphs runs bench for the benchmarks' two graphs, as
// sub-benchmarks. shared-blobs: cachegen.NewWithOptions(2, 800,
// {BlobSize: 1 MiB, MaxBlobs: 200}), where most blobs sit on several
// parent chains, so the config has several layers per blob, and
// BuildKit's exporter, which works per layer, checks (and uploads) such
// a blob once per layer. distinct-blobs: cachegen.NewWithOptions(2, 300,
// {BlobSize: 1 MiB, ReuseBlobFraction: -1}), one layer per blob.
func RunGraphs(b *testing.B, bench func(*testing.B, *cachegen.Graph)) {
	b.Run("shared-blobs", func(b *testing.B) {
		bench(b, cachegen.NewWithOptions(2, 800, cachegen.Options{BlobSize: 1 << 20, MaxBlobs: 200}))
	})
	b.Run("distinct-blobs", func(b *testing.B) {
		bench(b, cachegen.NewWithOptions(2, 300, cachegen.Options{BlobSize: 1 << 20, ReuseBlobFraction: -1}))
	})
}

// sample is one timed export.
type sample struct {
	wall, cpu, serverCPU time.Duration
}

// Run runs the benchmark for g, once whatever b.N.
func (bn Bench) Run(b *testing.B, g *cachegen.Graph) {
	runs := sidebyside.EnvInt(b, bn.RunsEnv, 5)
	ctx := context.Background()
	t0 := time.Now()
	src, err := local.NewStore(filepath.Join(b.TempDir(), "src"))
	if err != nil {
		b.Fatal(err)
	}
	if err := sidebyside.FillStore(ctx, src, g); err != nil {
		b.Fatal(err)
	}
	if bn.Settle != nil {
		bn.Settle()
	}
	fmt.Printf("graph: %d records, %d blobs of 1 MiB; written to the source store in %s\n",
		len(g.Ops), len(g.Blobs), time.Since(t0).Round(time.Millisecond))

	ours := cachegen.NewReplayer(g, src)
	bkReplayer := sidebyside.NewBKReplayer(g, src)

	// An exportFunc makes an exporter writing into where through url,
	// replays the graph into it, and returns its Finalize.
	type exportFunc func(url, where string) (func() error, error)
	oursExport := func(url, where string) (func() error, error) {
		store, err := bn.Store(url, where)
		if err != nil {
			return nil, err
		}
		exp, err := remotecache.NewExporter(store, remotecache.WithManifestFormat(remotecache.FormatConfigOnly))
		if err != nil {
			return nil, err
		}
		if _, err := ours.Replay(exp, nil); err != nil {
			return nil, err
		}
		return func() error { _, err := exp.Finalize(ctx); return err }, nil
	}
	bkExport := func(url, where string) (func() error, error) {
		exp, err := bn.Resolve(ctx, nil, bn.Attrs(url, where))
		if err != nil {
			return nil, err
		}
		if _, err := bkReplayer.Replay(exp, nil); err != nil {
			return nil, err
		}
		return func() error { _, err := exp.Finalize(ctx); return err }, nil
	}

	timed := func(export exportFunc, url, where string) (sample, error) {
		fin, err := export(url, where)
		if err != nil {
			return sample{}, err
		}
		srv0 := bn.ServerCPU()
		wall, cpu, err := sidebyside.Time(fin)
		return sample{wall: wall, cpu: cpu, serverCPU: bn.ServerCPU() - srv0}, err
	}

	type side struct {
		name         string
		export       exportFunc
		first, again []sample
		counts       [2]string // requests of the first export and of the re-export
		uploaded     [2]int64
		config       string
	}
	sides := []*side{{name: "ours", export: oursExport}, {name: "buildkit", export: bkExport}}
	sidebyside.Alternate(runs, len(sides), func(i, side int, label string) {
		sd := sides[side]
		where := bn.Place(sd.name, strconv.Itoa(i))
		first, again := sidebyside.FirstAndAgain(b, sd.name, where, func(bool) (sample, error) {
			return timed(sd.export, bn.URL, where)
		})
		if i > 0 {
			sd.first = append(sd.first, first)
			sd.again = append(sd.again, again)
		}
		fmt.Printf("%-9s %-8s first %8s (CPU %7s, %s CPU %7s)  re-export %6s (CPU %6s, %s CPU %6s)\n",
			label, sd.name, first.wall.Round(time.Millisecond), first.cpu.Round(time.Millisecond), bn.Server, first.serverCPU.Round(time.Millisecond),
			again.wall.Round(time.Millisecond), again.cpu.Round(time.Millisecond), bn.Server, again.serverCPU.Round(time.Millisecond))
		// Keep the disk from filling.
		bn.Free(where)
	})
	// One counted run of each side, through the proxy.
	for _, sd := range sides {
		where := bn.Place(sd.name, "counted")
		for j := range 2 {
			bn.Proxy.Reset()
			if _, err := timed(sd.export, bn.Proxy.URL, where); err != nil {
				b.Fatalf("%s: counted export: %v", sd.name, err)
			}
			sd.counts[j] = bn.Proxy.Summary()
			sd.uploaded[j] = bn.Proxy.Uploaded.Load()
		}
		sd.config = string(bn.Config(where))
		bn.Free(where)
	}
	var cfg remotecache.CacheConfig
	if err := json.Unmarshal([]byte(sides[0].config), &cfg); err != nil {
		b.Fatal(err)
	}
	same := "the same bytes"
	switch {
	case sides[0].config == sides[1].config:
	case sides[0].config == string(SortSameSourceLinks(b, []byte(sides[1].config))):
		same = "the same bytes once links of a slot from one source are ordered (BuildKit leaves them in map order)"
	default:
		same = "other bytes (BuildKit leaves some orders to its maps: layers of a blob on several parents, records of one digest, links from one source)"
	}
	fmt.Printf("config: %d layers, %d records; BuildKit's has %s\n", len(cfg.Layers), len(cfg.Records), same)

	o, k := sides[0], sides[1]
	var tb strings.Builder
	fmt.Fprintf(&tb, "\n| %s (%d records, %d × 1 MiB blobs) | ours, wall (median) | BuildKit v0.34.2, wall (median) | ours/BuildKit, wall | ours, CPU | BuildKit, CPU | %s CPU, ours / BuildKit | bytes uploaded, ours / BuildKit | requests, ours / BuildKit |\n",
		bn.Title, len(g.Ops), len(g.Blobs), bn.Server)
	tb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	wall := func(s sample) time.Duration { return s.wall }
	cpu := func(s sample) time.Duration { return s.cpu }
	serverCPU := func(s sample) time.Duration { return s.serverCPU }
	row := func(name string, j int, os, ks []sample) {
		mo, mk := sidebyside.Median(os, wall), sidebyside.Median(ks, wall)
		co, ck := sidebyside.Median(os, cpu), sidebyside.Median(ks, cpu)
		so, sk := sidebyside.Median(os, serverCPU), sidebyside.Median(ks, serverCPU)
		fmt.Fprintf(&tb, "| %s | %s | %s | %.2f | %s | %s | %s / %s | %d / %d | %s / %s |\n",
			name, sidebyside.Ms(mo), sidebyside.Ms(mk), float64(mo)/float64(mk), sidebyside.Ms(co), sidebyside.Ms(ck), sidebyside.Ms(so), sidebyside.Ms(sk),
			o.uploaded[j], k.uploaded[j], o.counts[j], k.counts[j])
		b.ReportMetric(float64(mo)/1e6, fmt.Sprintf("%s-ours-ms", strings.Fields(name)[0]))
		b.ReportMetric(float64(mk)/1e6, fmt.Sprintf("%s-buildkit-ms", strings.Fields(name)[0]))
	}
	row("first export", 0, o.first, k.first)
	row("re-export", 1, o.again, k.again)
	fmt.Fprintf(&tb, "\n%d timed runs per side, alternating, after one warm-up run each, straight to %s; Finalize timed, replay not; requests and bytes from one more run through the counting proxy. GOMAXPROCS=%d, %s, %s/%s.\n",
		runs, bn.To, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Print(tb.String())
	b.ReportMetric(0, "ns/op")
}
