// Command sidebyside measures this module's cache exporter against
// BuildKit's (v1 CacheChains and the content cache exporter, v0.34.2) in
// one process, on the same generated graphs, with runs of the two sides
// alternating (ours, BuildKit, ours, BuildKit, ...), and prints the medians
// and the ratio ours/BuildKit as a markdown table.
//
// Run it from the interop module:
//
//	go run ./cmd/sidebyside [-quick] [-out FILE] [-cpuprofile FILE]
//
// Cases:
//
//   - marshal-1k, marshal-10k, marshal-100k: Add of every record of a
//     cachegen graph (default options) to fresh CacheChains, then Marshal
//     (to the config struct; no JSON). Wall and CPU time and heap
//     allocations (runtime.MemStats.Mallocs) per record; a GC runs before
//     each measurement. Both sides replay from results built once.
//   - finalize-1m: blobs of 1 MiB (MaxBlobs 200) under 800 records;
//     finalize-32m: blobs of 32 MiB (MaxBlobs 20) under 80 records. The
//     blobs are written once into a source containerd local store, and both
//     sides read them from there, so generating them costs nothing. A run
//     replays the graph into a new exporter (not timed) and times Finalize
//     into a fresh local store ("fresh store"), then does the same again
//     into that store, which has every blob already ("re-export"). Dirty
//     pages are written back (sync) before each timed Finalize, so neither
//     side pays for the other's write-back.
//
// Other flags: -cases picks cases, -runs sets the runs per side, -side runs
// one side only (for profiling), -buildkit-first runs BuildKit first in each
// pair, -concurrency sets our exporter's WithConcurrency, -dir where the
// temporary stores go. With -cpuprofile,
// the samples of measured runs carry the pprof labels case, side and run
// (case/side); finalize cases are named finalize-1m/first and
// finalize-1m/again:
//
//	go build -o /tmp/sidebyside ./cmd/sidebyside
//	/tmp/sidebyside -cases marshal-100k -cpuprofile cpu.prof
//	go tool pprof -tagfocus run=marshal-100k/ours -top /tmp/sidebyside cpu.prof
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/log"
	bkremotecache "github.com/moby/buildkit/cache/remotecache"
	cacheimport "github.com/moby/buildkit/cache/remotecache/v1"
	"github.com/moby/buildkit/util/compression"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/buildcache/remotecache"
	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

func main() {
	var (
		quick      = flag.Bool("quick", false, "fewer runs; skip marshal-100k and finalize-32m")
		out        = flag.String("out", "", "also write the results as a markdown table to `file`")
		cpuprofile = flag.String("cpuprofile", "", "write a CPU profile to `file`; samples of measured runs carry the pprof labels case, side and run")
		cases      = flag.String("cases", "", "comma-separated cases to run (default: all for the mode): marshal-1k,marshal-10k,marshal-100k,import-10k,import-100k,finalize-1m,finalize-32m")
		side       = flag.String("side", "both", "which side to run: both, ours or buildkit (one side gives no ratio; for profiling)")
		runsFlag   = flag.Int("runs", 0, "runs per side for every case (0: the mode's default)")
		bkFirst    = flag.Bool("buildkit-first", false, "in each pair of runs, run BuildKit's side first (default: ours first)")
		conc       = flag.Int("concurrency", 0, "our exporter's WithConcurrency (0: the library default, 4, as BuildKit's)")
		dir        = flag.String("dir", "", "directory for the temporary content stores (default: os.TempDir())")
	)
	flag.Parse()
	// The local store logs a warning per store where fsverity is missing.
	_ = log.SetLevel("error")
	if err := run(*quick, *out, *cpuprofile, *cases, *side, *runsFlag, *conc, *bkFirst, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		os.Exit(1)
	}
}

type caseSpec struct {
	name      string
	quickRuns int
	fullRuns  int
	inQuick   bool
	warmup    bool
	records   int
	blobSize  int64 // 0: a marshal (or import) case
	maxBlobs  int
	seed      int64
	parse     bool // an import case: Parse of one config into a new graph
}

var allCases = []caseSpec{
	{name: "marshal-1k", quickRuns: 5, fullRuns: 31, inQuick: true, warmup: true, records: 1000, seed: 1},
	{name: "marshal-10k", quickRuns: 5, fullRuns: 15, inQuick: true, warmup: true, records: 10000, seed: 1},
	{name: "marshal-100k", quickRuns: 3, fullRuns: 9, records: 100000, seed: 1},
	{name: "import-10k", quickRuns: 5, fullRuns: 15, inQuick: true, warmup: true, records: 10000, seed: 1, parse: true},
	{name: "import-100k", quickRuns: 3, fullRuns: 9, records: 100000, seed: 1, parse: true},
	{name: "finalize-1m", quickRuns: 3, fullRuns: 11, inQuick: true, warmup: true, records: 800, blobSize: 1 << 20, maxBlobs: 200, seed: 2},
	{name: "finalize-32m", quickRuns: 3, fullRuns: 9, records: 80, blobSize: 32 << 20, maxBlobs: 20, seed: 2},
}

// sample is one measured run.
type sample struct {
	wall, cpu time.Duration
	mallocs   uint64
}

// row is one line of the results table.
type row struct {
	name    string
	unit    string // "µs/record" or "ms"
	per     float64
	records int
	ours    []sample
	bk      []sample
}

type runner struct {
	ctx        context.Context
	quick      bool
	runsFlag   int
	conc       int
	bkFirst    bool
	sideOurs   bool
	sideBK     bool
	base       string
	rows       []row
	notes      []string
	totalStart time.Time
}

func run(quick bool, out, cpuprofile, caseList, side string, runsFlag, conc int, bkFirst bool, dir string) error {
	r := &runner{ctx: context.Background(), quick: quick, runsFlag: runsFlag, conc: conc, bkFirst: bkFirst, totalStart: time.Now()}
	switch side {
	case "both":
		r.sideOurs, r.sideBK = true, true
	case "ours":
		r.sideOurs = true
	case "buildkit":
		r.sideBK = true
	default:
		return fmt.Errorf("-side %q: want both, ours or buildkit", side)
	}
	want := map[string]bool{}
	if caseList != "" {
		for _, c := range strings.Split(caseList, ",") {
			c = strings.TrimSpace(c)
			if !slices.ContainsFunc(allCases, func(s caseSpec) bool { return s.name == c }) {
				return fmt.Errorf("unknown case %q", c)
			}
			want[c] = true
		}
	}
	var selected []caseSpec
	for _, c := range allCases {
		if (len(want) == 0 && (c.inQuick || !quick)) || want[c.name] {
			selected = append(selected, c)
		}
	}

	base, err := os.MkdirTemp(dir, "sidebyside-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	r.base = base

	fmt.Printf("sidebyside: GOMAXPROCS=%d NumCPU=%d %s, stores under %s\n", runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.Version(), base)

	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		// Samples of measured runs carry the labels "case", "side" and
		// "run" (see measure): go tool pprof -tagfocus side=ours ...
		defer pprof.StopCPUProfile()
	}

	for _, c := range selected {
		if c.parse {
			err = r.importCase(c)
		} else if c.blobSize == 0 {
			err = r.marshalCase(c)
		} else {
			err = r.finalizeCase(c)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}

	table := r.table()
	fmt.Println()
	fmt.Print(table)
	for _, n := range r.notes {
		fmt.Println("-", n)
	}
	fmt.Printf("\ntotal time %s\n", time.Since(r.totalStart).Round(time.Second))
	if out != "" {
		var b strings.Builder
		b.WriteString(table)
		b.WriteString("\n")
		for _, n := range r.notes {
			b.WriteString("- " + n + "\n")
		}
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// sides returns the sides to run, in the order of each pair of runs.
func (r *runner) sides() []string {
	var ss []string
	if r.sideOurs {
		ss = append(ss, "ours")
	}
	if r.sideBK {
		ss = append(ss, "buildkit")
	}
	if r.bkFirst {
		slices.Reverse(ss)
	}
	return ss
}

func (r *runner) runs(c caseSpec) int {
	if r.runsFlag > 0 {
		return r.runsFlag
	}
	if r.quick {
		return c.quickRuns
	}
	return c.fullRuns
}

// measure runs f after a GC and returns its wall time, the process's CPU
// time and the number of heap allocations it made. With -cpuprofile, f's
// samples (and those of the goroutines it starts) are labelled with the
// case and the side.
func (r *runner) measure(caseName, side string, f func() error) (sample, error) {
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	var err error
	c0 := cpuTime()
	t0 := time.Now()
	pprof.Do(r.ctx, pprof.Labels("case", caseName, "side", side, "run", caseName+"/"+side), func(context.Context) {
		err = f()
	})
	wall := time.Since(t0)
	cpu := cpuTime() - c0
	runtime.ReadMemStats(&m1)
	return sample{wall: wall, cpu: cpu, mallocs: m1.Mallocs - m0.Mallocs}, err
}

func (r *runner) marshalCase(c caseSpec) error {
	t0 := time.Now()
	g := cachegen.New(c.seed, c.records)
	order := g.InOrder()
	ours := cachegen.NewReplayer(g, g.Provider())
	bk := sidebyside.NewBKReplayer(g, g.Provider())
	st := g.Stats()
	fmt.Printf("\n%s: %d records (%d blobs, %d results), generated in %s\n", c.name, len(g.Ops), st.Blobs, st.WithResults, time.Since(t0).Round(time.Millisecond))

	var (
		oursCfg, bkCfg [2]int // records, layers of the last run
	)
	runOurs := func() error {
		cc := remotecache.NewCacheChains()
		if _, err := ours.Replay(cc, order); err != nil {
			return err
		}
		cfg, _, err := cc.Marshal(r.ctx)
		if err != nil {
			return err
		}
		oursCfg = [2]int{len(cfg.Records), len(cfg.Layers)}
		return nil
	}
	runBK := func() error {
		cc := cacheimport.NewCacheChains()
		if err := bk.Replay(cc, order); err != nil {
			return err
		}
		cfg, _, err := cc.Marshal(r.ctx)
		if err != nil {
			return err
		}
		bkCfg = [2]int{len(cfg.Records), len(cfg.Layers)}
		return nil
	}
	rw := row{name: fmt.Sprintf("Add+Marshal, %s records", thousands(len(g.Ops))), unit: "µs/record", per: float64(len(g.Ops)), records: len(g.Ops)}
	if err := r.runPairs(c, &rw, runOurs, runBK); err != nil {
		return err
	}
	r.notes = append(r.notes, fmt.Sprintf("%s: config has %d records and %d layers (ours), %d records and %d layers (BuildKit)",
		rw.name, oursCfg[0], oursCfg[1], bkCfg[0], bkCfg[1]))
	return nil
}

// runPairs runs the warm-ups, then the measured runs of both sides in
// turn, and adds the row.
func (r *runner) runPairs(c caseSpec, rw *row, runOurs, runBK func() error) error {
	if c.warmup {
		if r.sideOurs {
			if err := runOurs(); err != nil {
				return err
			}
		}
		if r.sideBK {
			if err := runBK(); err != nil {
				return err
			}
		}
	}
	n := r.runs(c)
	for i := range n {
		for _, side := range r.sides() {
			f, dst := runOurs, &rw.ours
			if side == "buildkit" {
				f, dst = runBK, &rw.bk
			}
			s, err := r.measure(c.name, side, f)
			if err != nil {
				return fmt.Errorf("%s: %w", side, err)
			}
			*dst = append(*dst, s)
		}
		fmt.Printf("  run %d/%d:%s\n", i+1, n, r.progressLine(*rw))
	}
	r.rows = append(r.rows, *rw)
	return nil
}

// importCase parses one cache config (our Marshal of a generated graph)
// into a new graph: remotecache.Parse into a CacheChains against
// BuildKit's v1.Parse into its CacheChains, same bytes, same descriptors.
func (r *runner) importCase(c caseSpec) error {
	g := cachegen.New(c.seed, c.records)
	cc := remotecache.NewCacheChains()
	if err := cachegen.Replay(cc, g, nil, g.Provider()); err != nil {
		return err
	}
	cfg, descs, err := cc.Marshal(r.ctx)
	if err != nil {
		return err
	}
	config, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	bkDescs := cacheimport.DescriptorProvider{}
	for d, p := range descs {
		bkDescs[d] = cacheimport.DescriptorProviderPair{Descriptor: p.Descriptor, Provider: g.Provider()}
	}
	fmt.Printf("\n%s: config of %d records, %d layers, %s\n", c.name, len(cfg.Records), len(cfg.Layers), size(int64(len(config))))
	runOurs := func() error { return remotecache.Parse(config, descs, remotecache.NewCacheChains()) }
	runBK := func() error { return cacheimport.Parse(config, bkDescs, cacheimport.NewCacheChains()) }
	rw := row{name: fmt.Sprintf("Import (Parse+Add), %s records", thousands(len(cfg.Records))), unit: "µs/record", per: float64(len(cfg.Records)), records: len(cfg.Records)}
	if err := r.runPairs(c, &rw, runOurs, runBK); err != nil {
		return err
	}
	return nil
}

// exportFunc makes an exporter writing into store, replays the graph into
// it (not timed) and returns its Finalize.
type exportFunc func(store content.Store) (func() (map[string]string, error), error)

func (r *runner) finalizeCase(c caseSpec) error {
	t0 := time.Now()
	g := cachegen.NewWithOptions(c.seed, c.records, cachegen.Options{BlobSize: c.blobSize, MaxBlobs: c.maxBlobs})
	order := g.InOrder()
	st := g.Stats()
	genTime := time.Since(t0)

	// The source store: every blob written once, read by both sides.
	t0 = time.Now()
	srcDir := filepath.Join(r.base, c.name+"-src")
	src, err := local.NewStore(srcDir)
	if err != nil {
		return err
	}
	if err := sidebyside.FillStore(r.ctx, src, g); err != nil {
		return err
	}
	defer os.RemoveAll(srcDir)
	var total int64
	for _, b := range g.Blobs {
		total += b.Descriptor.Size
	}
	fmt.Printf("\n%s: %d records, %d blobs of %s (%s in all), %d results; generated in %s, source store filled in %s\n",
		c.name, len(g.Ops), len(g.Blobs), size(c.blobSize), size(total), st.WithResults, genTime.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))

	ours := cachegen.NewReplayer(g, src)
	bk := sidebyside.NewBKReplayer(g, src)
	var oursLayers, bkLayers [2]int // manifest layers, distinct blobs
	oursExport := func(store content.Store) (func() (map[string]string, error), error) {
		var opts []remotecache.ExportOption
		if r.conc > 0 {
			opts = append(opts, remotecache.WithConcurrency(r.conc))
		}
		exp, err := remotecache.NewExporter(store, opts...)
		if err != nil {
			return nil, err
		}
		if _, err := ours.Replay(exp, order); err != nil {
			return nil, err
		}
		return func() (map[string]string, error) { return exp.Finalize(r.ctx) }, nil
	}
	bkExport := func(store content.Store) (func() (map[string]string, error), error) {
		exp := bkremotecache.NewExporter(store, "", true, true, compression.Config{})
		if err := bk.Replay(exp, order); err != nil {
			return nil, err
		}
		return func() (map[string]string, error) { return exp.Finalize(r.ctx) }, nil
	}

	// one does a first export into a fresh store and a re-export into the
	// same store; the store is removed afterwards.
	runIdx := 0
	one := func(side string, export exportFunc, check bool, layers *[2]int) (first, again sample, err error) {
		runIdx++
		dir := filepath.Join(r.base, fmt.Sprintf("%s-dst-%d", c.name, runIdx))
		defer os.RemoveAll(dir)
		store, err := local.NewStore(dir)
		if err != nil {
			return first, again, err
		}
		timed := func(phase string) (sample, error) {
			fin, err := export(store)
			if err != nil {
				return sample{}, err
			}
			syscall.Sync()
			var res map[string]string
			s, err := r.measure(c.name+"/"+phase, side, func() error {
				var err error
				res, err = fin()
				return err
			})
			if err != nil {
				return s, err
			}
			if res[remotecache.ExporterResponseManifestDesc] == "" {
				return s, fmt.Errorf("finalize returned no manifest descriptor")
			}
			if check {
				n, d, err := checkStore(r.ctx, store, res[remotecache.ExporterResponseManifestDesc])
				if err != nil {
					return s, err
				}
				*layers = [2]int{n, d}
			}
			return s, nil
		}
		if first, err = timed("first"); err != nil {
			return first, again, fmt.Errorf("first export: %w", err)
		}
		if again, err = timed("again"); err != nil {
			return first, again, fmt.Errorf("re-export: %w", err)
		}
		return first, again, nil
	}

	if c.warmup {
		if r.sideOurs {
			if _, _, err := one("ours", oursExport, true, &oursLayers); err != nil {
				return fmt.Errorf("ours (warm-up): %w", err)
			}
		}
		if r.sideBK {
			if _, _, err := one("buildkit", bkExport, true, &bkLayers); err != nil {
				return fmt.Errorf("buildkit (warm-up): %w", err)
			}
		}
	}
	label := fmt.Sprintf("%d × %s (%d records)", len(g.Blobs), size(c.blobSize), len(g.Ops))
	first := row{name: "Finalize " + label + ", fresh store", unit: "ms", per: 1, records: len(g.Ops)}
	again := row{name: "Finalize " + label + ", re-export", unit: "ms", per: 1, records: len(g.Ops)}
	n := r.runs(c)
	for i := range n {
		for _, side := range r.sides() {
			export, layers, firsts, agains := exportFunc(oursExport), &oursLayers, &first.ours, &again.ours
			if side == "buildkit" {
				export, layers, firsts, agains = bkExport, &bkLayers, &first.bk, &again.bk
			}
			f, a, err := one(side, export, i == 0 && !c.warmup, layers)
			if err != nil {
				return fmt.Errorf("%s: %w", side, err)
			}
			*firsts = append(*firsts, f)
			*agains = append(*agains, a)
		}
		fmt.Printf("  run %d/%d: first%s; re-export%s\n", i+1, n, r.progressLine(first), r.progressLine(again))
	}
	r.rows = append(r.rows, first, again)
	r.notes = append(r.notes, fmt.Sprintf("Finalize %s: the manifest lists %d layers, %d distinct (ours) and %d layers, %d distinct (BuildKit), of the graph's %d blobs (%s); both sides read from one local store; copies at a time: %s (ours), 4 (BuildKit: limited.Default)",
		label, oursLayers[0], oursLayers[1], bkLayers[0], bkLayers[1], len(g.Blobs), size(total), r.concDesc()))
	return nil
}

// checkStore reads the manifest Finalize wrote and tells whether store
// holds its config and every layer it lists, with the right sizes. It
// returns the number of layers and of distinct layer blobs.
func checkStore(ctx context.Context, store content.Store, descJSON string) (layers, distinct int, err error) {
	var desc ocispec.Descriptor
	if err := json.Unmarshal([]byte(descJSON), &desc); err != nil {
		return 0, 0, err
	}
	ra, err := store.ReaderAt(ctx, desc)
	if err != nil {
		return 0, 0, fmt.Errorf("check: manifest: %w", err)
	}
	defer ra.Close()
	dt, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return 0, 0, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(dt, &m); err != nil {
		return 0, 0, fmt.Errorf("check: manifest: %w", err)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest {
		return 0, 0, fmt.Errorf("check: manifest media type %q", m.MediaType)
	}
	seen := map[string]bool{}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		info, err := store.Info(ctx, d.Digest)
		if err != nil {
			return 0, 0, fmt.Errorf("check: blob %s: %w", d.Digest, err)
		}
		if info.Size != d.Size {
			return 0, 0, fmt.Errorf("check: blob %s has %d bytes, want %d", d.Digest, info.Size, d.Size)
		}
		seen[d.Digest.String()] = true
	}
	return len(m.Layers), len(seen) - 1, nil
}

func (r *runner) progressLine(rw row) string {
	var b strings.Builder
	if len(rw.ours) > 0 {
		s := rw.ours[len(rw.ours)-1]
		fmt.Fprintf(&b, " ours %s", fmtVal(float64(s.wall)/rw.per, rw.unit))
	}
	if len(rw.bk) > 0 {
		s := rw.bk[len(rw.bk)-1]
		fmt.Fprintf(&b, " buildkit %s", fmtVal(float64(s.wall)/rw.per, rw.unit))
	}
	return b.String()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// stat returns the median of f over samples.
func stat(ss []sample, f func(sample) float64) float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return median(xs)
}

func (r *runner) table() string {
	var b strings.Builder
	b.WriteString("| Case | Runs | Ours (median) | BuildKit (median) | Ours/BuildKit (wall) | Ours/BuildKit (CPU) | Ours min–max | BuildKit min–max | Allocs/record ours | Allocs/record BuildKit |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, rw := range r.rows {
		wall := func(s sample) float64 { return float64(s.wall) / rw.per }
		cpu := func(s sample) float64 { return float64(s.cpu) / rw.per }
		allocs := func(s sample) float64 { return float64(s.mallocs) / float64(rw.records) }
		cell := func(ss []sample, f func(sample) float64, unit string) string {
			if len(ss) == 0 {
				return "–"
			}
			return fmtVal(stat(ss, f), unit)
		}
		span := func(ss []sample) string {
			if len(ss) == 0 {
				return "–"
			}
			lo, hi := wall(ss[0]), wall(ss[0])
			for _, s := range ss {
				lo, hi = min(lo, wall(s)), max(hi, wall(s))
			}
			return fmtNum(lo, rw.unit) + "–" + fmtNum(hi, rw.unit)
		}
		ratio := func(f func(sample) float64) string {
			if len(rw.ours) == 0 || len(rw.bk) == 0 {
				return "–"
			}
			o, k := stat(rw.ours, f), stat(rw.bk, f)
			if k == 0 {
				return "–"
			}
			switch x := o / k; {
			case x < 0.1:
				return fmt.Sprintf("%.3f (%.0f× faster)", x, 1/x)
			case x < 0.95:
				return fmt.Sprintf("%.2f (%.1f× faster)", x, 1/x)
			case x <= 1.05:
				return fmt.Sprintf("%.2f (about even)", x)
			default:
				return fmt.Sprintf("%.2f (%.1f× slower)", x, x)
			}
		}
		runs := max(len(rw.ours), len(rw.bk))
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			rw.name, runs, cell(rw.ours, wall, rw.unit), cell(rw.bk, wall, rw.unit),
			ratio(wall), ratio(cpu), span(rw.ours), span(rw.bk),
			cell(rw.ours, allocs, ""), cell(rw.bk, allocs, ""))
	}
	return b.String()
}

// fmtNum formats a duration in ns per unit as a number of that unit.
func fmtNum(ns float64, unit string) string {
	switch unit {
	case "µs/record":
		return fmt.Sprintf("%.2f", ns/1e3)
	case "ms":
		return fmt.Sprintf("%.1f", ns/1e6)
	}
	return fmt.Sprintf("%.1f", ns)
}

func fmtVal(v float64, unit string) string {
	if unit == "" {
		return fmt.Sprintf("%.1f", v)
	}
	return fmtNum(v, unit) + " " + unit
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d B", n)
}

// cpuTime returns the user+system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r *runner) concDesc() string {
	if r.conc > 0 {
		return fmt.Sprintf("%d (-concurrency)", r.conc)
	}
	return "4 (the default)"
}
