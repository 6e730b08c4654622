package regtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/plugins/content/local"
	bkremotecache "github.com/moby/buildkit/cache/remotecache"
	bkv1 "github.com/moby/buildkit/cache/remotecache/v1"
	"github.com/moby/buildkit/util/compression"
	"github.com/moby/buildkit/util/contentutil"
	"github.com/moby/buildkit/util/push"
	"github.com/moby/buildkit/util/resolver/limited"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	remotecache "github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cachetest"
	"github.com/buildcache/remotecache/internal/objstoretest"
	"github.com/buildcache/remotecache/interop/sidebyside"
	"github.com/buildcache/remotecache/ocilayout"
	"github.com/buildcache/remotecache/registry"
)

// latencyGraph is the cache of issue 11's measurements: 400 records
// (Add calls) over 129 distinct blobs of 100 KiB (13.2 MB) once marshalled.
func latencyGraph() *cachegen.Graph {
	return cachegen.NewWithOptions(11, 400, cachegen.Options{BlobSize: 100 << 10, MaxBlobs: 135})
}

// The cases of BenchmarkRegistryLatency, in the order each run makes them.
var latencyCases = []string{"first", "unchanged", "changed", "copy-same", "copy-other", "pull"}

var latencyCaseNames = map[string]string{
	"first":      "first export",
	"unchanged":  "re-export, unchanged",
	"changed":    "re-export, 10% of the blobs new",
	"copy-same":  "copy to another repository of the same registry",
	"copy-other": "copy to another registry",
	"pull":       "pull (copy to a local store)",
}

// BenchmarkRegistryLatency measures this module and BuildKit v0.34.2's
// registry cache path side by side against the reference registry (two
// of them, in process, in-memory storage) behind latency proxies on
// 127.0.0.1 that hold every request for a round trip (startLatencyProxy),
// on the cache of latencyGraph, at each round trip of
// REGBENCH_LATENCIES (milliseconds, default "0,25,50").
//
// Each run of a side, in fresh repositories:
//
//   - first: exports the graph from a containerd local store into
//     registry A, repository x;
//   - unchanged: exports it again into x;
//   - changed: exports into x the graph with 10% of its blobs new
//     (cachegen's Changed), the cache of a later build;
//   - copy-same: copies x's cache into repository y of registry A;
//   - copy-other: copies x's cache into registry B;
//   - pull: copies x's cache into a local store (ours: an OCI layout
//     through ocilayout, tagged; BuildKit: a containerd local store, what
//     its type=local cache exporter writes through).
//
// Ours is remotecache.NewExporter into registry.New, Import from
// registry.New; BuildKit's is its content cache exporter
// (bkremotecache.NewExporter) through contentutil.FromPusher of a pusher
// of containerd's resolver (as cache/remotecache/registry exports), and
// for copies its importer's steps (resolve, read the manifest and the
// config, v1.Parse with the layers' descriptors and a fetcher limited as
// limited.Default limits it), with an HTTP transport like the one of its
// util/resolver (4 idle connections per host). Its layer descriptors for
// a copy carry containerd.io/distribution.source.<host> annotations, as
// the lazy refs of a build that imported the cache do, so containerd's
// pusher mounts what it can. Each side with its default concurrency, or
// ours with REGBENCH_CONCURRENCY.
//
// Runs alternate, ours, BuildKit, …, REGBENCH_RUNS runs per side and
// latency (default 3), after a warm-up run of each side at the first
// latency. Export and copy are timed (for exports, the replay into the
// exporter is not); the requests both registries got and the blob bytes
// they read and sent are counted server-side. REGBENCH_CASES limits the
// cases (a comma-separated list of the names above); the cases of a run
// depend on the ones before (changed on first, the copies on changed).
// It prints a markdown table of medians and ratios ours/BuildKit.
//
//	cd registry/regtest
//	go test -run '^$' -bench RegistryLatency -benchtime 1x -timeout 30m
func BenchmarkRegistryLatency(b *testing.B) {
	cachetest.QuietLogs()
	ctx := context.Background()
	latencies := []time.Duration{0, 25 * time.Millisecond, 50 * time.Millisecond}
	if v := os.Getenv("REGBENCH_LATENCIES"); v != "" {
		latencies = nil
		for _, f := range strings.Split(v, ",") {
			ms, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || ms < 0 {
				b.Fatalf("REGBENCH_LATENCIES=%q: want milliseconds, comma-separated", v)
			}
			latencies = append(latencies, time.Duration(ms)*time.Millisecond)
		}
	}
	runs := sidebyside.EnvInt(b, "REGBENCH_RUNS", 3)
	concurrency := sidebyside.EnvInt(b, "REGBENCH_CONCURRENCY", 0)
	cases := map[string]bool{}
	for _, c := range latencyCases {
		cases[c] = true
	}
	if v := os.Getenv("REGBENCH_CASES"); v != "" {
		cases = map[string]bool{}
		for _, c := range strings.Split(v, ",") {
			if _, ok := latencyCaseNames[c]; !ok {
				b.Fatalf("REGBENCH_CASES: unknown case %q", c)
			}
			cases[c] = true
		}
	}

	g := latencyGraph()
	g2 := g.Changed(1, 0.1)
	src, err := local.NewStore(filepath.Join(b.TempDir(), "src"))
	if err != nil {
		b.Fatal(err)
	}
	for _, gg := range []*cachegen.Graph{g, g2} {
		if err := sidebyside.FillStore(ctx, src, gg); err != nil {
			b.Fatal(err)
		}
	}
	benchSync()
	regA, regB := startRegistry(b, nil), startRegistry(b, nil)
	graphs := map[string]*cachegen.Graph{"first": g, "unchanged": g, "changed": g2}
	ours := map[string]*cachegen.Replayer{"first": cachegen.NewReplayer(g, src), "changed": cachegen.NewReplayer(g2, src)}
	ours["unchanged"] = ours["first"]
	bks := map[string]*sidebyside.BKReplayer{"first": sidebyside.NewBKReplayer(g, src), "changed": sidebyside.NewBKReplayer(g2, src)}
	bks["unchanged"] = bks["first"]

	var oursOpts []remotecache.ExportOption
	if concurrency > 0 {
		oursOpts = append(oursOpts, remotecache.WithConcurrency(concurrency))
	}
	sides := []latencySide{
		&oursSide{replayers: ours, opts: oursOpts},
		&bkSide{replayers: bks},
	}
	// samples[latency][case][side]
	samples := map[time.Duration]map[string]map[string][]latencySample{}
	tmp := b.TempDir()
	for li, lat := range latencies {
		hostA, hostB := startLatencyProxy(b, regA.Host, lat), startLatencyProxy(b, regB.Host, lat)
		samples[lat] = map[string]map[string][]latencySample{}
		first := 0
		if li == 0 {
			first = -1 // a warm-up run
		}
		for run := first; run < runs; run++ {
			for _, sd := range sides {
				name := fmt.Sprintf("%s-%d-%d", sd.name(), lat/time.Millisecond, run)
				x := hostA + "/bench/" + name + "/x:cache"
				dsts := map[string]string{
					"copy-same":  hostA + "/bench/" + name + "/y:cache",
					"copy-other": hostB + "/bench/" + name + "/z:cache",
					"pull":       filepath.Join(tmp, name),
				}
				for _, c := range latencyCases {
					if !cases[c] {
						continue
					}
					before := [2]map[string]int{regA.Counts(), regB.Counts()}
					up0, down0 := regA.uploaded.Load()+regB.uploaded.Load(), regA.downloaded.Load()+regB.downloaded.Load()
					start := time.Now()
					var err error
					switch c {
					case "first", "unchanged", "changed":
						err = sd.export(ctx, c, graphs[c], x)
					case "copy-same", "copy-other":
						err = sd.copy(ctx, x, dsts[c])
					case "pull":
						err = sd.pull(ctx, x, dsts[c])
					}
					s := latencySample{wall: time.Since(start)}
					if err != nil {
						b.Fatalf("%s, %v, run %d: %s: %v", sd.name(), lat, run, c, err)
					}
					s.uploaded = regA.uploaded.Load() + regB.uploaded.Load() - up0
					s.downloaded = regA.downloaded.Load() + regB.downloaded.Load() - down0
					s.requests = regA.CountsSince(before[0])
					for k, n := range regB.CountsSince(before[1]) {
						s.requests[k] += n
					}
					fmt.Printf("%3d ms run %2d %-8s %-10s %8s  %4d requests  %10d up %10d down  %s\n",
						lat/time.Millisecond, run, sd.name(), c, s.wall.Round(time.Millisecond), s.total(), s.uploaded, s.downloaded, objstoretest.FormatCounts(s.requests))
					if run < 0 {
						continue
					}
					if samples[lat][c] == nil {
						samples[lat][c] = map[string][]latencySample{}
					}
					samples[lat][c][sd.name()] = append(samples[lat][c][sd.name()], s)
				}
			}
		}
	}

	var tb strings.Builder
	fmt.Fprintf(&tb, "\n| Round trip | Case | Ours (median) | BuildKit (median) | Ours/BuildKit | Requests, ours / BuildKit | Blob bytes up, ours / BuildKit | Blob bytes down, ours / BuildKit | Requests by kind, ours | Requests by kind, BuildKit |\n")
	tb.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, lat := range latencies {
		for _, c := range latencyCases {
			o, k := samples[lat][c]["ours"], samples[lat][c]["buildkit"]
			if len(o) == 0 || len(k) == 0 {
				continue
			}
			mo, mk := latencyMedian(o), latencyMedian(k)
			lo, lk := o[len(o)-1], k[len(k)-1]
			fmt.Fprintf(&tb, "| %d ms | %s | %s | %s | %.2f | %d / %d | %d / %d | %d / %d | %s | %s |\n",
				lat/time.Millisecond, latencyCaseNames[c], latencyMs(mo), latencyMs(mk), float64(mo)/float64(mk),
				lo.total(), lk.total(), lo.uploaded, lk.uploaded, lo.downloaded, lk.downloaded,
				objstoretest.FormatCounts(lo.requests), objstoretest.FormatCounts(lk.requests))
			b.ReportMetric(float64(mo)/1e6, fmt.Sprintf("%s-%dms-ours-ms", c, lat/time.Millisecond))
			b.ReportMetric(float64(mk)/1e6, fmt.Sprintf("%s-%dms-buildkit-ms", c, lat/time.Millisecond))
		}
	}
	conc := "the library's default"
	if concurrency > 0 {
		conc = strconv.Itoa(concurrency)
	}
	_, descs, err := cachetest.Chains(b, g, nil, nil).Marshal(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(&tb, "\n%d timed runs per side and round trip, alternating; graph: %d records (Add calls), %d blobs of 100 KiB exported; ours at concurrency %s, BuildKit at %d. Requests and bytes are those of the last run, counted at the registries.\n",
		runs, len(g.Ops), len(descs), conc, limited.DefaultMaxConcurrency)
	fmt.Print(tb.String())
	b.ReportMetric(0, "ns/op")
}

// latencySample is one timed case of one run.
type latencySample struct {
	wall                 time.Duration
	uploaded, downloaded int64
	requests             map[string]int
}

func (s latencySample) total() int {
	n := 0
	for _, v := range s.requests {
		n += v
	}
	return n
}

// latencyMedian returns the median wall time of s.
func latencyMedian(s []latencySample) time.Duration {
	return sidebyside.Median(s, func(x latencySample) time.Duration { return x.wall })
}

func latencyMs(d time.Duration) string {
	if d < 100*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// A latencySide is one of the two implementations measured.
type latencySide interface {
	name() string
	// export replays the graph of case c into an exporter writing to ref
	// (not timed) and finalizes it (timed).
	export(ctx context.Context, c string, g *cachegen.Graph, ref string) error
	// copy copies the cache at srcRef to dstRef.
	copy(ctx context.Context, srcRef, dstRef string) error
	// pull copies the cache at srcRef into a new local store in dir.
	pull(ctx context.Context, srcRef, dir string) error
}

type oursSide struct {
	replayers map[string]*cachegen.Replayer
	opts      []remotecache.ExportOption
}

func (*oursSide) name() string { return "ours" }

// finalizer is what the exporters of both sides have.
type finalizer interface {
	Finalize(context.Context) (map[string]string, error)
}

// finish finalizes exp once it is filled: filled is the error of filling
// it, which, if not nil, is returned instead.
func finish(ctx context.Context, exp finalizer, filled error) error {
	if filled != nil {
		return filled
	}
	_, err := exp.Finalize(ctx)
	return err
}

// exporter returns our exporter to ref.
func (s *oursSide) exporter(ref string) (remotecache.Exporter, error) {
	r, err := registry.New(ref)
	if err != nil {
		return nil, err
	}
	return remotecache.NewExporter(r, s.opts...)
}

func (s *oursSide) export(ctx context.Context, c string, g *cachegen.Graph, ref string) error {
	exp, err := s.exporter(ref)
	if err != nil {
		return err
	}
	_, err = s.replayers[c].Replay(exp, nil)
	return finish(ctx, exp, err)
}

// importFrom imports the cache srcRef's tag names into exp, as the
// command line tool's copy does.
func (s *oursSide) importFrom(ctx context.Context, srcRef string, exp remotecache.Exporter) error {
	src, err := registry.New(srcRef)
	if err != nil {
		return err
	}
	desc, err := src.Resolve(ctx)
	if err != nil {
		return err
	}
	return remotecache.Import(ctx, src, desc, exp)
}

func (s *oursSide) copy(ctx context.Context, srcRef, dstRef string) error {
	exp, err := s.exporter(dstRef)
	if err != nil {
		return err
	}
	return finish(ctx, exp, s.importFrom(ctx, srcRef, exp))
}

func (s *oursSide) pull(ctx context.Context, srcRef, dir string) error {
	store, err := ocilayout.OpenContext(ctx, dir)
	if err != nil {
		return err
	}
	defer store.Close()
	exp, err := remotecache.NewExporter(store, s.opts...)
	if err != nil {
		return err
	}
	if err := s.importFrom(ctx, srcRef, exp); err != nil {
		return err
	}
	desc, err := cachetest.Finalize(ctx, exp)
	if err != nil {
		return err
	}
	return store.Tag(ctx, "latest", desc)
}

type bkSide struct {
	replayers map[string]*sidebyside.BKReplayer
}

func (*bkSide) name() string { return "buildkit" }

// bkResolver is a resolver as BuildKit's util/resolver makes them: a new
// one per build, with its HTTP transport's connection limits.
func bkResolver() remotes.Resolver {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          30,
		IdleConnTimeout:       120 * time.Second,
		MaxIdleConnsPerHost:   4,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts), docker.WithClient(&http.Client{Transport: tr})),
	})
}

// exporter returns BuildKit's registry cache exporter for ref.
func (*bkSide) exporter(ctx context.Context, ref string) (bkremotecache.Exporter, error) {
	pusher, err := push.Pusher(ctx, bkResolver(), ref)
	if err != nil {
		return nil, err
	}
	return bkremotecache.NewExporter(contentutil.FromPusher(pusher), ref, true, true, compression.Config{}), nil
}

func (s *bkSide) export(ctx context.Context, c string, g *cachegen.Graph, ref string) error {
	exp, err := s.exporter(ctx, ref)
	if err != nil {
		return err
	}
	_, err = s.replayers[c].Replay(exp, nil)
	return finish(ctx, exp, err)
}

// importInto does what BuildKit's registry cache importer does before its
// v1.Parse, then parses the config into t. The layers' descriptors get
// the annotation that the lazy refs of a build that imported them carry:
// containerd.io/distribution.source.<host> = the source repository.
func (*bkSide) importInto(ctx context.Context, srcRef string, exp bkremotecache.Exporter) error {
	resolver := bkResolver()
	_, desc, err := resolver.Resolve(ctx, srcRef)
	if err != nil {
		return err
	}
	fetcher, err := resolver.Fetcher(ctx, srcRef)
	if err != nil {
		return err
	}
	provider := contentutil.FromFetcher(limited.Default.WrapFetcher(fetcher, srcRef))
	mdt, err := content.ReadBlob(ctx, provider, desc)
	if err != nil {
		return err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mdt, &m); err != nil {
		return err
	}
	cdt, err := content.ReadBlob(ctx, provider, m.Config)
	if err != nil {
		return err
	}
	host, repo, _ := strings.Cut(strings.TrimSuffix(srcRef, ":cache"), "/")
	dp := bkv1.DescriptorProvider{}
	for _, l := range m.Layers {
		a := maps.Clone(l.Annotations)
		if a == nil {
			a = map[string]string{}
		}
		// The key has the host without its port, as BuildKit's
		// cache/remote.go and containerd's pusher make and read it.
		a["containerd.io/distribution.source."+strings.Split(host, ":")[0]] = repo
		l.Annotations = a
		dp[l.Digest] = bkv1.DescriptorProviderPair{Descriptor: l, Provider: provider}
	}
	return bkv1.Parse(cdt, dp, exp)
}

func (s *bkSide) copy(ctx context.Context, srcRef, dstRef string) error {
	exp, err := s.exporter(ctx, dstRef)
	if err != nil {
		return err
	}
	return finish(ctx, exp, s.importInto(ctx, srcRef, exp))
}

func (s *bkSide) pull(ctx context.Context, srcRef, dir string) error {
	store, err := local.NewStore(dir)
	if err != nil {
		return err
	}
	exp := bkremotecache.NewExporter(store, srcRef, true, true, compression.Config{})
	return finish(ctx, exp, s.importInto(ctx, srcRef, exp))
}
