package regtest

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/plugins/content/local"
	bkremotecache "github.com/moby/buildkit/cache/remotecache"
	"github.com/moby/buildkit/util/compression"
	"github.com/moby/buildkit/util/contentutil"
	"github.com/moby/buildkit/util/push"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/objstoretest"
	"github.com/buildcache/remotecache/interop/sidebyside"
	"github.com/buildcache/remotecache/registry"
)

// BenchmarkRegistrySideBySide measures the export of a cache to the
// reference registry (in-process, in-memory storage, on 127.0.0.1) by this
// module (remotecache.NewExporter(registry.New(ref))) and by BuildKit
// v0.34.2's registry cache exporter path (its content cache exporter,
// bkremotecache.NewExporter, writing through contentutil.FromPusher of a
// pusher of containerd's remotes/docker resolver, as BuildKit's
// cache/remotecache/registry does), in the image-manifest form with OCI
// media types, each with its default concurrency (4 layer uploads at once).
//
// The graph: cachegen.NewWithOptions(2, 800, {BlobSize: 1 MiB, MaxBlobs:
// 200}). Its blobs are first written into a containerd local store, which
// both sides read. One run of a side exports into a repository of its own
// that is new to it ("first export"), then exports the same again into
// that repository, which has every blob ("repeated export"); each export
// replays the graph into a new exporter (not timed) and times Finalize.
// Runs alternate, ours, BuildKit, ours, …, after one untimed warm-up run
// of each side; the medians and the ratio ours/BuildKit are printed as a
// markdown table, with the blob bytes the registry read and the requests
// it got per export.
//
// It runs only with -bench, once whatever b.N (use -benchtime 1x):
//
//	cd registry/regtest
//	go test -run '^$' -bench RegistrySideBySide -benchtime 1x
//
// REGBENCH_RUNS sets the timed runs per side (default 5).
func BenchmarkRegistrySideBySide(b *testing.B) {
	runs := sidebyside.EnvInt(b, "REGBENCH_RUNS", 5)
	cachetest.QuietLogs()
	ctx := context.Background()

	t0 := time.Now()
	g := cachegen.NewWithOptions(2, 800, cachegen.Options{BlobSize: 1 << 20, MaxBlobs: 200})
	src, err := local.NewStore(filepath.Join(b.TempDir(), "src"))
	if err != nil {
		b.Fatal(err)
	}
	if err := sidebyside.FillStore(ctx, src, g); err != nil {
		b.Fatal(err)
	}
	benchSync()
	order := g.InOrder()
	fmt.Printf("graph: %d records, %d blobs of 1 MiB; generated and written to the source store in %s\n",
		len(g.Ops), len(g.Blobs), time.Since(t0).Round(time.Millisecond))

	srv := startRegistry(b, nil)
	ours := cachegen.NewReplayer(g, src)
	bk := sidebyside.NewBKReplayer(g, src)

	// An exportFunc makes an exporter writing to ref, replays the graph
	// into it, and returns its Finalize.
	type exportFunc func(ref string) (func() (map[string]string, error), error)
	oursExport := func(ref string) (func() (map[string]string, error), error) {
		r, err := registry.New(ref)
		if err != nil {
			return nil, err
		}
		exp, err := remotecache.NewExporter(r, remotecache.WithManifestFormat(remotecache.FormatImageManifest))
		if err != nil {
			return nil, err
		}
		if _, err := ours.Replay(exp, order); err != nil {
			return nil, err
		}
		return func() (map[string]string, error) { return exp.Finalize(ctx) }, nil
	}
	bkExport := func(ref string) (func() (map[string]string, error), error) {
		// A new resolver for each export, as a new build gets one: the
		// pusher's status tracker starts empty, and blobs the repository
		// has are found by asking it (HEAD).
		resolver := docker.NewResolver(docker.ResolverOptions{
			Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts)),
		})
		// push.Pusher is how BuildKit's registry cache exporter gets its
		// pusher from a resolver (it hides the pusher's other methods).
		pusher, err := push.Pusher(ctx, resolver, ref)
		if err != nil {
			return nil, err
		}
		exp := bkremotecache.NewExporter(contentutil.FromPusher(pusher), ref, true, true, compression.Config{})
		if _, err := bk.Replay(exp, order); err != nil {
			return nil, err
		}
		return func() (map[string]string, error) { return exp.Finalize(ctx) }, nil
	}

	// timed runs one export to ref and measures it.
	timed := func(side, phase string, export exportFunc, ref string) (benchSample, error) {
		fin, err := export(ref)
		if err != nil {
			return benchSample{}, err
		}
		before, reqs := srv.uploaded.Load(), srv.Counts()
		var res map[string]string
		wall, cpu, err := sidebyside.Time(func() (err error) {
			// With -cpuprofile, samples carry the labels side and phase:
			// go tool pprof -tagfocus side=ours regtest.test cpu.prof
			pprof.Do(ctx, pprof.Labels("side", side, "phase", phase), func(context.Context) {
				res, err = fin()
			})
			return err
		})
		s := benchSample{wall: wall, cpu: cpu, uploaded: srv.uploaded.Load() - before, requests: srv.CountsSince(reqs)}
		if err != nil {
			return s, err
		}
		desc, err := cachetest.ResponseDesc(res)
		if err != nil {
			return s, err
		}
		s.manifest = desc.Digest.String()
		return s, nil
	}

	type side struct {
		name          string
		export        exportFunc
		first, repeat []benchSample
	}
	sides := []*side{{name: "ours", export: oursExport}, {name: "buildkit", export: bkExport}}
	sidebyside.Alternate(runs, len(sides), func(i, n int, label string) {
		sd := sides[n]
		ref := fmt.Sprintf("%s/bench/%s-%d:cache", srv.Host, sd.name, i)
		first, repeat := sidebyside.FirstAndAgain(b, sd.name, ref, func(first bool) (benchSample, error) {
			phase := "repeated"
			if first {
				phase = "first"
			}
			return timed(sd.name, phase, sd.export, ref)
		})
		if i > 0 {
			sd.first = append(sd.first, first)
			sd.repeat = append(sd.repeat, repeat)
		}
		fmt.Printf("%-9s %-8s first %8s (CPU %8s, %d bytes uploaded)  repeated %6s (CPU %6s, %d bytes uploaded)  manifest %s\n",
			label, sd.name, first.wall.Round(time.Millisecond), first.cpu.Round(time.Millisecond), first.uploaded,
			repeat.wall.Round(time.Millisecond), repeat.cpu.Round(time.Millisecond), repeat.uploaded, first.manifest)
	})

	oursSide, bkSide := sides[0], sides[1]
	var tb strings.Builder
	fmt.Fprintf(&tb, "\n| export to the local registry (%d records, %d × 1 MiB blobs) | ours, wall (median) | BuildKit v0.34.2, wall (median) | ours/BuildKit, wall | ours, CPU (median) | BuildKit, CPU (median) | ours/BuildKit, CPU | blob bytes uploaded, ours / BuildKit | requests per export, ours / BuildKit |\n",
		len(g.Ops), len(g.Blobs))
	tb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	row := func(name, metric string, o, k []benchSample) {
		mo, mk := sidebyside.Median(o, benchWall), sidebyside.Median(k, benchWall)
		co, ck := sidebyside.Median(o, benchCPUOf), sidebyside.Median(k, benchCPUOf)
		fmt.Fprintf(&tb, "| %s | %s | %s | %.2f | %s | %s | %.2f | %d / %d | %s / %s |\n",
			name, sidebyside.Ms(mo), sidebyside.Ms(mk), float64(mo)/float64(mk), sidebyside.Ms(co), sidebyside.Ms(ck), float64(co)/float64(ck),
			o[len(o)-1].uploaded, k[len(k)-1].uploaded,
			objstoretest.FormatCounts(o[len(o)-1].requests), objstoretest.FormatCounts(k[len(k)-1].requests))
		b.ReportMetric(float64(mo)/1e6, metric+"-ours-ms")
		b.ReportMetric(float64(mk)/1e6, metric+"-buildkit-ms")
		b.ReportMetric(float64(co)/1e6, metric+"-ours-cpu-ms")
		b.ReportMetric(float64(ck)/1e6, metric+"-buildkit-cpu-ms")
	}
	row("first export", "first", oursSide.first, bkSide.first)
	row("repeated export", "repeated", oursSide.repeat, bkSide.repeat)
	distinct := func(sd *side) int {
		m := map[string]bool{}
		for _, x := range append(slices.Clone(sd.first), sd.repeat...) {
			m[x.manifest] = true
		}
		return len(m)
	}
	fmt.Fprintf(&tb, "\n%d timed runs per side, alternating, after one warm-up run each; Finalize timed, replay not; CPU is the process's (user+system), the in-process registry's included. GOMAXPROCS=%d, %s, %s/%s. Distinct manifests written over the %d timed exports: ours %d, BuildKit %d.\n",
		runs, runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH, 2*runs, distinct(oursSide), distinct(bkSide))
	fmt.Print(tb.String())
	b.ReportMetric(0, "ns/op")
}

// benchSample is one timed export.
type benchSample struct {
	wall     time.Duration
	cpu      time.Duration  // CPU time of the process, the registry's included
	uploaded int64          // blob bytes the registry read
	requests map[string]int // requests the registry got, by "METHOD kind"
	manifest string         // the digest of the manifest written
}

func benchWall(s benchSample) time.Duration  { return s.wall }
func benchCPUOf(s benchSample) time.Duration { return s.cpu }
