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
//   - shape-ordinary, shape-lattice, shape-twice, shape-newlink,
//     shape-chain128: the graph shapes of cachegen.Shapes (multi-stage
//     builds; the deep lattice fed once, fed twice, fed twice with a new
//     link per record, with 128-layer chains) at each of -sizes (default
//     1k, 4k, 16k, 64k records), Add+Marshal as in marshal-*, per
//     distinct record. BuildKit's side runs only up to each case's limit
//     (or -buildkit-max): it is quadratic on graphs fed twice. A summary
//     table gives both sides at every size and how our time per record
//     grows from the smallest size to the largest.
//   - finalize-1m: blobs of 1 MiB (MaxBlobs 200) under 800 records;
//     finalize-32m: blobs of 32 MiB (MaxBlobs 20) under 80 records. The
//     blobs are written once into a source containerd local store, and both
//     sides read them from there, so generating them costs nothing. A run
//     replays the graph into a new exporter (not timed) and times Finalize
//     into a fresh local store ("fresh store"), then does the same again
//     into that store, which has every blob already ("re-export"). Dirty
//     pages are written back (sync) before each timed Finalize, so neither
//     side pays for the other's write-back.
//   - layout-1m: the graph of finalize-1m exported into fresh OCI layout
//     directories three ways (layout.go): the floor (a plain loop that
//     writes the same blobs, each hashed while written to its own temp
//     file, synced and renamed, 4 at a time), ours (Finalize and Tag
//     through ocilayout) and BuildKit's type=local path (Finalize into
//     containerd's local store, then client/ociindex); then ours and
//     BuildKit's again into the same layout. A table of its own gives
//     ours/floor and ours/BuildKit.
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
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/log"
	"github.com/pkg/errors"

	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/internal/cputime"
)

func main() {
	var (
		quick      = flag.Bool("quick", false, "fewer runs; skip marshal-100k and finalize-32m")
		out        = flag.String("out", "", "also write the results as a markdown table to `file`")
		cpuprofile = flag.String("cpuprofile", "", "write a CPU profile to `file`; samples of measured runs carry the pprof labels case, side and run")
		cases      = flag.String("cases", "", "comma-separated cases to run (default: all for the mode): marshal-1k,marshal-10k,marshal-100k,import-10k,import-100k,finalize-1m,finalize-32m,shape-ordinary,shape-lattice,shape-twice,shape-newlink,shape-chain128,layout-1m")
		sizes      = flag.String("sizes", "", "comma-separated sizes of the shape cases, in records (default: cachegen.ShapeSizes, 1000,4000,16000,64000)")
		bkMax      = flag.Int("buildkit-max", 0, "run BuildKit's side of a shape case up to this many records (0: each case's own limit)")
		side       = flag.String("side", "both", "which side to run: both, ours or buildkit (one side gives no ratio; for profiling)")
		runsFlag   = flag.Int("runs", 0, "runs per side for every case (0: the mode's default)")
		bkFirst    = flag.Bool("buildkit-first", false, "in each pair of runs, run BuildKit's side first (default: ours first)")
		conc       = flag.Int("concurrency", 0, "our exporter's WithConcurrency (0: the library default, 4, as BuildKit's)")
		dir        = flag.String("dir", "", "directory for the temporary content stores (default: os.TempDir())")
	)
	flag.Parse()
	// The local store logs a warning per store where fsverity is missing.
	_ = log.SetLevel("error")
	shapeSizes := cachegen.ShapeSizes
	if *sizes != "" {
		shapeSizes = nil
		for _, s := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				fmt.Fprintf(os.Stderr, "sidebyside: -sizes: %q is not a number of records\n", s)
				os.Exit(2)
			}
			shapeSizes = append(shapeSizes, n)
		}
	}
	if err := run(*quick, *out, *cpuprofile, *cases, *side, *runsFlag, *conc, *bkFirst, *dir, shapeSizes, *bkMax); err != nil {
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
	// A shape case (shapecases.go): the cachegen shape of that name at
	// each of the sizes, BuildKit's side only up to bkMax records.
	shape  string
	bkMax  int
	layout bool // a layout case (layout.go): floor, ours, BuildKit into OCI layouts
}

var allCases = []caseSpec{
	{name: "marshal-1k", quickRuns: 5, fullRuns: 31, inQuick: true, warmup: true, records: 1000, seed: 1},
	{name: "marshal-10k", quickRuns: 5, fullRuns: 15, inQuick: true, warmup: true, records: 10000, seed: 1},
	{name: "marshal-100k", quickRuns: 3, fullRuns: 9, records: 100000, seed: 1},
	{name: "import-10k", quickRuns: 5, fullRuns: 15, inQuick: true, warmup: true, records: 10000, seed: 1, parse: true},
	{name: "import-100k", quickRuns: 3, fullRuns: 9, records: 100000, seed: 1, parse: true},
	{name: "finalize-1m", quickRuns: 3, fullRuns: 11, inQuick: true, warmup: true, records: 800, blobSize: 1 << 20, maxBlobs: 200, seed: 2},
	{name: "finalize-32m", quickRuns: 3, fullRuns: 9, records: 80, blobSize: 32 << 20, maxBlobs: 20, seed: 2},
	// BuildKit's side of the shapes stops where a run would take more
	// than a few seconds: it is quadratic on graphs fed twice.
	{name: "shape-ordinary", quickRuns: 3, fullRuns: 9, warmup: true, seed: 1, shape: "ordinary", bkMax: 64000},
	{name: "shape-lattice", quickRuns: 3, fullRuns: 9, warmup: true, seed: 1, shape: "lattice", bkMax: 64000},
	{name: "shape-twice", quickRuns: 3, fullRuns: 9, warmup: true, seed: 1, shape: "twice", bkMax: 4000},
	{name: "shape-newlink", quickRuns: 3, fullRuns: 9, warmup: true, seed: 1, shape: "newlink", bkMax: 4000},
	{name: "shape-chain128", quickRuns: 3, fullRuns: 9, warmup: true, seed: 1, shape: "chain128", bkMax: 16000},
	{name: "layout-1m", quickRuns: 3, fullRuns: 11, inQuick: true, records: 800, blobSize: 1 << 20, maxBlobs: 200, seed: 2, layout: true},
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
	sizes      []int // of the shape cases
	bkMax      int   // -buildkit-max
	rows       []row
	shapes     []shapeRow
	layouts    []layoutRow
	notes      []string
	totalStart time.Time
}

func run(quick bool, out, cpuprofile, caseList, side string, runsFlag, conc int, bkFirst bool, dir string, sizes []int, bkMax int) error {
	r := &runner{ctx: context.Background(), quick: quick, runsFlag: runsFlag, conc: conc, bkFirst: bkFirst, sizes: sizes, bkMax: bkMax, totalStart: time.Now()}
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
		if c.shape != "" {
			err = r.shapeCase(c)
		} else if c.layout {
			err = r.layoutCase(c)
		} else if c.parse {
			err = r.importCase(c)
		} else if c.blobSize == 0 {
			err = r.marshalCase(c)
		} else {
			err = r.finalizeCase(c)
		}
		if err != nil {
			return errors.Wrapf(err, "%s", c.name)
		}
	}

	table := r.table() + r.shapesTable() + r.layoutTable()
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
	c0 := cputime.Process()
	t0 := time.Now()
	pprof.Do(r.ctx, pprof.Labels("case", caseName, "side", side, "run", caseName+"/"+side), func(context.Context) {
		err = f()
	})
	wall := time.Since(t0)
	cpu := cputime.Process() - c0
	runtime.ReadMemStats(&m1)
	return sample{wall: wall, cpu: cpu, mallocs: m1.Mallocs - m0.Mallocs}, err
}
