package s3test

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

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cputime"
	"github.com/buildcache/remotecache/interop/bkobject"
	"github.com/buildcache/remotecache/interop/sidebyside"
	s3store "github.com/buildcache/remotecache/s3"
	bks3 "github.com/moby/buildkit/cache/remotecache/s3"
)

// BenchmarkS3SideBySide measures the export of a cache to a Versity S3
// gateway (posix backend on a temp dir, 127.0.0.1) by this module
// (remotecache.NewExporter(s3.New(...)) in the config-only form) and by
// BuildKit v0.34.2's s3 cache exporter (ResolveCacheExporterFunc), each
// with its default concurrency (4 blob uploads at once) and the SDK's
// default retries.
//
// Two graphs, two sub-benchmarks. shared-blobs:
// cachegen.NewWithOptions(2, 800, {BlobSize: 1 MiB, MaxBlobs: 200}), as
// BenchmarkRegistrySideBySide (registry/regtest) has it: most blobs sit on
// several parent chains, so the config has several layers per blob, and
// BuildKit's exporter, which works per layer, checks and uploads such a
// blob once per layer. distinct-blobs: cachegen.NewWithOptions(2, 300,
// {BlobSize: 1 MiB, ReuseBlobFraction: -1}), one layer per blob, where both
// make the same requests. The blobs are first written into a containerd
// local store, which both sides read. One run of a side exports under a prefix of its own that is new
// ("first export"), then exports the same again there, where every blob is
// ("re-export"); each export replays the graph into a new exporter (not
// timed) and times Finalize. Runs alternate, ours, BuildKit, ours, …,
// after one untimed warm-up run of each side, straight to the gateway; a
// last run of each side goes through the counting proxy, untimed, for the
// requests and bytes. The medians and the ratios ours/BuildKit are printed
// as a markdown table. CPU is this process's (the exporter's) and the
// gateway's, apart.
//
// It runs only with -bench, once whatever b.N (use -benchtime 1x):
//
//	cd s3/s3test
//	go test -run '^$' -bench S3SideBySide -benchtime 1x
//
// S3BENCH_RUNS sets the timed runs per side (default 5).
func BenchmarkS3SideBySide(b *testing.B) {
	b.Run("shared-blobs", func(b *testing.B) {
		benchS3(b, cachegen.NewWithOptions(2, 800, cachegen.Options{BlobSize: 1 << 20, MaxBlobs: 200}))
	})
	b.Run("distinct-blobs", func(b *testing.B) {
		benchS3(b, cachegen.NewWithOptions(2, 300, cachegen.Options{BlobSize: 1 << 20, ReuseBlobFraction: -1}))
	})
}

func benchS3(b *testing.B, g *cachegen.Graph) {
	runs := 5
	if v := os.Getenv("S3BENCH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("S3BENCH_RUNS=%q: want a positive number", v)
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
	benchSync()
	fmt.Printf("graph: %d records, %d blobs of 1 MiB; written to the source store in %s\n",
		len(g.Ops), len(g.Blobs), time.Since(t0).Round(time.Millisecond))

	e := newEnv(b)
	ours := cachegen.NewReplayer(g, src)
	bkReplayer := sidebyside.NewBKReplayer(g, src)

	// An exportFunc makes an exporter writing under prefix at endpoint,
	// replays the graph into it, and returns its Finalize.
	type exportFunc func(endpoint, prefix string) (func() error, error)
	oursExport := func(endpoint, prefix string) (func() error, error) {
		store, err := s3store.New(ctx, e.bucket, s3store.WithEndpoint(endpoint), s3store.WithRegion(region),
			s3store.WithCredentials(accessKey, secretKey, ""), s3store.WithPrefix(prefix))
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
	bkExport := func(endpoint, prefix string) (func() error, error) {
		attrs := bkAttrs(e, prefix, "buildkit")
		attrs["endpoint_url"] = endpoint
		exp, err := bks3.ResolveCacheExporterFunc()(ctx, nil, attrs)
		if err != nil {
			return nil, err
		}
		if _, err := bkReplayer.Replay(exp, nil); err != nil {
			return nil, err
		}
		return func() error { _, err := exp.Finalize(ctx); return err }, nil
	}

	timed := func(export exportFunc, endpoint, prefix string) (s3Sample, error) {
		fin, err := export(endpoint, prefix)
		if err != nil {
			return s3Sample{}, err
		}
		runtime.GC()
		cpu0, srv0, start := benchCPU(), e.gw.cpu(), time.Now()
		err = fin()
		return s3Sample{wall: time.Since(start), cpu: benchCPU() - cpu0, serverCPU: e.gw.cpu() - srv0}, err
	}

	type side struct {
		name            string
		export          exportFunc
		first, again    []s3Sample
		counts          [2]string // requests of the first export and of the re-export
		uploaded        [2]int64
		config, configN string
	}
	sides := []*side{{name: "ours", export: oursExport}, {name: "buildkit", export: bkExport}}
	for i := range runs + 1 { // run 0 is the warm-up
		for _, sd := range sides {
			prefix := fmt.Sprintf("%s-%d/", sd.name, i)
			first, err := timed(sd.export, e.gw.URL, prefix)
			if err != nil {
				b.Fatalf("%s: first export under %s: %v", sd.name, prefix, err)
			}
			again, err := timed(sd.export, e.gw.URL, prefix)
			if err != nil {
				b.Fatalf("%s: re-export under %s: %v", sd.name, prefix, err)
			}
			label := fmt.Sprintf("run %d/%d", i, runs)
			if i == 0 {
				label = "warm-up"
			} else {
				sd.first = append(sd.first, first)
				sd.again = append(sd.again, again)
			}
			fmt.Printf("%-9s %-8s first %8s (CPU %7s, gateway CPU %7s)  re-export %6s (CPU %6s, gateway CPU %6s)\n",
				label, sd.name, first.wall.Round(time.Millisecond), first.cpu.Round(time.Millisecond), first.serverCPU.Round(time.Millisecond),
				again.wall.Round(time.Millisecond), again.cpu.Round(time.Millisecond), again.serverCPU.Round(time.Millisecond))
			// Keep the disk from filling: the prefix is a directory of
			// the posix backend.
			os.RemoveAll(filepath.Join(e.gw.Dir, e.bucket, strings.TrimSuffix(prefix, "/")))
		}
	}
	// One counted run of each side, through the proxy.
	for _, sd := range sides {
		prefix := sd.name + "-counted/"
		for j := range 2 {
			e.proxy.Reset()
			if _, err := timed(sd.export, e.proxy.URL, prefix); err != nil {
				b.Fatalf("%s: counted export: %v", sd.name, err)
			}
			sd.counts[j] = e.proxy.Summary()
			sd.uploaded[j] = e.proxy.Uploaded.Load()
		}
		sd.config = string(e.object(b, prefix+"manifests/buildkit"))
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
	fmt.Fprintf(&tb, "\n| export to Versity S3 gateway v1.8.0, posix (%d records, %d × 1 MiB blobs) | ours, wall (median) | BuildKit v0.34.2, wall (median) | ours/BuildKit, wall | ours, CPU | BuildKit, CPU | gateway CPU, ours / BuildKit | bytes uploaded, ours / BuildKit | requests, ours / BuildKit |\n",
		len(g.Ops), len(g.Blobs))
	tb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	row := func(name string, j int, os, ks []s3Sample) {
		mo, mk := s3Median(os, s3Wall), s3Median(ks, s3Wall)
		co, ck := s3Median(os, s3CPU), s3Median(ks, s3CPU)
		so, sk := s3Median(os, s3ServerCPU), s3Median(ks, s3ServerCPU)
		fmt.Fprintf(&tb, "| %s | %s | %s | %.2f | %s | %s | %s / %s | %d / %d | %s / %s |\n",
			name, ms(mo), ms(mk), float64(mo)/float64(mk), ms(co), ms(ck), ms(so), ms(sk),
			o.uploaded[j], k.uploaded[j], o.counts[j], k.counts[j])
		b.ReportMetric(float64(mo)/1e6, fmt.Sprintf("%s-ours-ms", strings.Fields(name)[0]))
		b.ReportMetric(float64(mk)/1e6, fmt.Sprintf("%s-buildkit-ms", strings.Fields(name)[0]))
	}
	row("first export", 0, o.first, k.first)
	row("re-export", 1, o.again, k.again)
	fmt.Fprintf(&tb, "\n%d timed runs per side, alternating, after one warm-up run each, straight to the gateway; Finalize timed, replay not; requests and bytes from one more run through the counting proxy. GOMAXPROCS=%d, %s, %s/%s.\n",
		runs, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Print(tb.String())
	b.ReportMetric(0, "ns/op")
}

// s3Sample is one timed export.
type s3Sample struct {
	wall, cpu, serverCPU time.Duration
}

func s3Wall(s s3Sample) time.Duration      { return s.wall }
func s3CPU(s s3Sample) time.Duration       { return s.cpu }
func s3ServerCPU(s s3Sample) time.Duration { return s.serverCPU }

func s3Median(s []s3Sample, f func(s3Sample) time.Duration) time.Duration {
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

// benchCPU returns the user and system CPU time of this process so far.
func benchCPU() time.Duration { return cputime.Process() }

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}
