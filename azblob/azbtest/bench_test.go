package azbtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/plugins/content/local"
	bkazblob "github.com/moby/buildkit/cache/remotecache/azblob"

	"github.com/buildcache/remotecache"
	azbstore "github.com/buildcache/remotecache/azblob"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cputime"
	"github.com/buildcache/remotecache/interop/bkobject"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

// BenchmarkAzblobSideBySide measures the export of a cache to Azurite
// (its blob service on 127.0.0.1, --location on a temp dir) by this
// module (remotecache.NewExporter(azblob.New(...)) in the config-only
// form, 4 blobs at once) and by BuildKit v0.34.2's azblob cache exporter
// (ResolveCacheExporterFunc, which checks and uploads one layer after
// another), each with the SDK's default client options and retries, and
// the same shared key.
//
// Two graphs, two sub-benchmarks, as BenchmarkS3SideBySide (s3/s3test)
// has them. shared-blobs: cachegen.NewWithOptions(2, 800, {BlobSize:
// 1 MiB, MaxBlobs: 200}): most blobs sit on several parent chains, so the
// config has several layers per blob, and BuildKit's exporter, which works
// per layer, checks such a blob once per layer. distinct-blobs:
// cachegen.NewWithOptions(2, 300, {BlobSize: 1 MiB, ReuseBlobFraction:
// -1}), one layer per blob. The blobs are first written into a containerd
// local store, which both sides read. One run of a side exports into a
// new container ("first export"; the container is made before, untimed),
// then exports the same again there, where every blob is ("re-export");
// each export replays the graph into a new exporter (not timed) and times
// Finalize. Runs alternate, ours, BuildKit, ours, …, after one untimed
// warm-up run of each side, straight to Azurite; a last run of each side
// goes through the counting proxy, untimed, for the requests and bytes.
// The medians and the ratios ours/BuildKit are printed as a markdown
// table. CPU is this process's (the exporter's) and Azurite's, apart.
//
// It runs only with -bench, once whatever b.N (use -benchtime 1x):
//
//	cd azblob/azbtest
//	go test -run '^$' -bench AzblobSideBySide -benchtime 1x
//
// AZBENCH_RUNS sets the timed runs per side (default 5).
func BenchmarkAzblobSideBySide(b *testing.B) {
	b.Run("shared-blobs", func(b *testing.B) {
		benchAzblob(b, cachegen.NewWithOptions(2, 800, cachegen.Options{BlobSize: 1 << 20, MaxBlobs: 200}))
	})
	b.Run("distinct-blobs", func(b *testing.B) {
		benchAzblob(b, cachegen.NewWithOptions(2, 300, cachegen.Options{BlobSize: 1 << 20, ReuseBlobFraction: -1}))
	})
}

// benchAzblob runs BenchmarkAzblobSideBySide for one graph.
func benchAzblob(b *testing.B, g *cachegen.Graph) {
	runs := 5
	if v := os.Getenv("AZBENCH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("AZBENCH_RUNS=%q: want a positive number", v)
		}
		runs = n
	}
	ctx := context.Background()
	t0 := time.Now()
	src, err := local.NewStore(filepath.Join(b.TempDir(), "src"))
	if err != nil {
		b.Fatal(err)
	}
	if err := sidebyside.FillStore(ctx, src, g); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("graph: %d records, %d blobs of 1 MiB; written to the source store in %s\n",
		len(g.Ops), len(g.Blobs), time.Since(t0).Round(time.Millisecond))

	az := startAzurite(b)
	proxy := startProxy(b, az.URL)
	admin := client(b, az.URL).ServiceClient()
	ours := cachegen.NewReplayer(g, src)
	bkReplayer := sidebyside.NewBKReplayer(g, src)

	// An exportFunc makes an exporter writing into the container at
	// service (Azurite's URL or the proxy's), replays the graph into it,
	// and returns its Finalize.
	type exportFunc func(service, container string) (func() error, error)
	oursExport := func(service, container string) (func() error, error) {
		store, err := azbstore.New(ctx, container, azbstore.WithAccountURL(service+"/"+account), azbstore.WithSharedKey(account, accountKey))
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
	bkExport := func(service, container string) (func() error, error) {
		attrs := map[string]string{
			"account_url":       service + "/" + account,
			"account_name":      account,
			"secret_access_key": accountKey,
			"container":         container,
		}
		exp, err := bkazblob.ResolveCacheExporterFunc()(ctx, nil, attrs)
		if err != nil {
			return nil, err
		}
		if _, err := bkReplayer.Replay(exp, nil); err != nil {
			return nil, err
		}
		return func() error { _, err := exp.Finalize(ctx); return err }, nil
	}

	timed := func(export exportFunc, service, container string) (azSample, error) {
		fin, err := export(service, container)
		if err != nil {
			return azSample{}, err
		}
		runtime.GC()
		cpu0, srv0, start := cputime.Process(), az.cpu(), time.Now()
		err = fin()
		return azSample{wall: time.Since(start), cpu: cputime.Process() - cpu0, serverCPU: az.cpu() - srv0}, err
	}
	newContainer := func(name string) {
		if _, err := admin.NewContainerClient(name).Create(ctx, nil); err != nil {
			b.Fatalf("creating container %s: %v", name, err)
		}
	}

	type side struct {
		name         string
		export       exportFunc
		first, again []azSample
		counts       [2]string // requests of the first export and of the re-export
		uploaded     [2]int64
		config       string
	}
	sides := []*side{{name: "ours", export: oursExport}, {name: "buildkit", export: bkExport}}
	for i := range runs + 1 { // run 0 is the warm-up
		for _, sd := range sides {
			name := fmt.Sprintf("bench-%s-%d", sd.name, i)
			newContainer(name)
			first, err := timed(sd.export, az.URL, name)
			if err != nil {
				b.Fatalf("%s: first export into %s: %v", sd.name, name, err)
			}
			again, err := timed(sd.export, az.URL, name)
			if err != nil {
				b.Fatalf("%s: re-export into %s: %v", sd.name, name, err)
			}
			label := fmt.Sprintf("run %d/%d", i, runs)
			if i == 0 {
				label = "warm-up"
			} else {
				sd.first = append(sd.first, first)
				sd.again = append(sd.again, again)
			}
			fmt.Printf("%-9s %-8s first %8s (CPU %7s, Azurite CPU %7s)  re-export %6s (CPU %6s, Azurite CPU %6s)\n",
				label, sd.name, first.wall.Round(time.Millisecond), first.cpu.Round(time.Millisecond), first.serverCPU.Round(time.Millisecond),
				again.wall.Round(time.Millisecond), again.cpu.Round(time.Millisecond), again.serverCPU.Round(time.Millisecond))
			// Keep the disk from filling.
			if _, err := admin.NewContainerClient(name).Delete(ctx, nil); err != nil {
				b.Fatalf("deleting container %s: %v", name, err)
			}
		}
	}
	// One counted run of each side, through the proxy.
	for _, sd := range sides {
		name := "bench-" + sd.name + "-counted"
		newContainer(name)
		for j := range 2 {
			proxy.Reset()
			if _, err := timed(sd.export, proxy.URL, name); err != nil {
				b.Fatalf("%s: counted export: %v", sd.name, err)
			}
			sd.counts[j] = proxy.Summary()
			sd.uploaded[j] = proxy.Uploaded.Load()
		}
		e := &env{az: az, container: name, admin: admin.NewContainerClient(name)}
		sd.config = string(e.blob(b, "manifests/buildkit"))
		admin.NewContainerClient(name).Delete(ctx, nil)
	}
	var cfg remotecache.CacheConfig
	if err := json.Unmarshal([]byte(sides[0].config), &cfg); err != nil {
		b.Fatal(err)
	}
	same := "the same bytes"
	switch {
	case sides[0].config == sides[1].config:
	case sides[0].config == string(bkobject.SortSameSourceLinks(b, []byte(sides[1].config))):
		same = "the same bytes once links of a slot from one source are ordered (BuildKit leaves them in map order)"
	default:
		same = "other bytes (BuildKit leaves some orders to its maps: layers of a blob on several parents, records of one digest, links from one source)"
	}
	fmt.Printf("config: %d layers, %d records; BuildKit's has %s\n", len(cfg.Layers), len(cfg.Records), same)

	o, k := sides[0], sides[1]
	var tb strings.Builder
	fmt.Fprintf(&tb, "\n| export to Azurite %s (%d records, %d × 1 MiB blobs) | ours, wall (median) | BuildKit v0.34.2, wall (median) | ours/BuildKit, wall | ours, CPU | BuildKit, CPU | Azurite CPU, ours / BuildKit | bytes uploaded, ours / BuildKit | requests, ours / BuildKit |\n",
		azuriteVersion, len(g.Ops), len(g.Blobs))
	tb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	row := func(name string, j int, os, ks []azSample) {
		mo, mk := azMedian(os, azWall), azMedian(ks, azWall)
		co, ck := azMedian(os, azCPU), azMedian(ks, azCPU)
		so, sk := azMedian(os, azServerCPU), azMedian(ks, azServerCPU)
		fmt.Fprintf(&tb, "| %s | %s | %s | %.2f | %s | %s | %s / %s | %d / %d | %s / %s |\n",
			name, ms(mo), ms(mk), float64(mo)/float64(mk), ms(co), ms(ck), ms(so), ms(sk),
			o.uploaded[j], k.uploaded[j], o.counts[j], k.counts[j])
		b.ReportMetric(float64(mo)/1e6, fmt.Sprintf("%s-ours-ms", strings.Fields(name)[0]))
		b.ReportMetric(float64(mk)/1e6, fmt.Sprintf("%s-buildkit-ms", strings.Fields(name)[0]))
	}
	row("first export", 0, o.first, k.first)
	row("re-export", 1, o.again, k.again)
	fmt.Fprintf(&tb, "\n%d timed runs per side, alternating, after one warm-up run each, straight to Azurite; Finalize timed, replay not; requests and bytes from one more run through the counting proxy. GOMAXPROCS=%d, %s, %s/%s.\n",
		runs, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Print(tb.String())
	b.ReportMetric(0, "ns/op")
}

// azSample is one timed export.
type azSample struct {
	wall, cpu, serverCPU time.Duration
}

// azWall, azCPU and azServerCPU pick one figure of a sample.
func azWall(s azSample) time.Duration      { return s.wall }
func azCPU(s azSample) time.Duration       { return s.cpu }
func azServerCPU(s azSample) time.Duration { return s.serverCPU }

// azMedian returns the median of f over s.
func azMedian(s []azSample, f func(azSample) time.Duration) time.Duration {
	d := make([]time.Duration, len(s))
	for i, x := range s {
		d[i] = f(x)
	}
	slices.Sort(d)
	if n := len(d); n%2 == 0 {
		return (d[n/2-1] + d[n/2]) / 2
	}
	return d[len(d)/2]
}

// ms prints d in whole milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}
