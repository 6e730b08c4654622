package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/buildcache/remotecache/internal/cachegen"
	"github.com/buildcache/remotecache/interop/sidebyside"
)

// shapeRow is one shape across the sizes: medians per record.
type shapeRow struct {
	name, doc string
	sizes     []int
	ours, bk  []float64 // wall µs per record; 0: not run
	oursCPU   []float64
	bkCPU     []float64
	oursMin   []float64 // the fastest run's wall µs per record
}

// shapeCase measures Add of every op of a cachegen shape, then Marshal, on
// both sides, at each size (per distinct record: a graph fed twice has
// twice as many Add calls).
func (r *runner) shapeCase(c caseSpec) error {
	var sh cachegen.Shape
	for _, s := range cachegen.Shapes {
		if s.Name == c.shape {
			sh = s
		}
	}
	if sh.New == nil {
		return fmt.Errorf("no shape %q", c.shape)
	}
	bkMax := c.bkMax
	if r.bkMax > 0 {
		bkMax = r.bkMax
	}
	sr := shapeRow{name: sh.Name, doc: sh.Doc}
	for _, n := range r.sizes {
		g := sh.New(c.seed, n)
		order := g.InOrder()
		ours := cachegen.NewReplayer(g, g.Provider())
		fmt.Printf("\n%s, %d records (%d ops)\n", c.name, n, len(g.Ops))
		var oursN, bkN int
		runOurs := func() (err error) {
			oursN, _, err = r.marshalOurs(ours, order)
			return err
		}
		var runBK func() error
		if n <= bkMax {
			bk := sidebyside.NewBKReplayer(g, g.Provider())
			runBK = func() (err error) {
				bkN, _, err = r.marshalBK(bk, order)
				return err
			}
		}
		// More runs of the small sizes, whose runs take milliseconds,
		// fewer of the big ones.
		cs := c
		switch {
		case n <= 1000:
			cs.fullRuns, cs.quickRuns = 3*c.fullRuns, 3*c.quickRuns
		case n <= 4000:
			cs.fullRuns, cs.quickRuns = c.fullRuns+c.fullRuns/2, c.quickRuns+c.quickRuns/2
		case n >= 64000:
			cs.fullRuns, cs.quickRuns = min(c.fullRuns, 3), min(c.quickRuns, 3)
		case n >= 16000:
			cs.fullRuns, cs.quickRuns = min(c.fullRuns, 5), min(c.quickRuns, 3)
		}
		// The heap the last size left is returned to the system now, not
		// by the scavenger during the first runs of this one.
		debug.FreeOSMemory()
		rw := row{name: fmt.Sprintf("%s (%s), %s records", sh.Name, sh.Doc, thousands(n)), unit: "µs/record", per: float64(n), records: n}
		if err := r.runPairs(cs, &rw, runOurs, runBK); err != nil {
			return err
		}
		if runBK != nil && r.sideOurs && r.sideBK && oursN != bkN {
			r.notes = append(r.notes, fmt.Sprintf("%s: config has %d records (ours), %d (BuildKit)", rw.name, oursN, bkN))
		}
		wall := func(s sample) float64 { return float64(s.wall) / rw.per / 1e3 }
		cpu := func(s sample) float64 { return float64(s.cpu) / rw.per / 1e3 }
		sr.sizes = append(sr.sizes, n)
		sr.ours = append(sr.ours, stat(rw.ours, wall))
		sr.oursCPU = append(sr.oursCPU, stat(rw.ours, cpu))
		sr.bk = append(sr.bk, stat(rw.bk, wall))
		sr.bkCPU = append(sr.bkCPU, stat(rw.bk, cpu))
		fastest := 0.0
		for i, x := range rw.ours {
			if w := wall(x); i == 0 || w < fastest {
				fastest = w
			}
		}
		sr.oursMin = append(sr.oursMin, fastest)
	}
	r.shapes = append(r.shapes, sr)
	return nil
}

// shapesTable is the summary of the shape cases: wall time per record of
// each side at each size (medians), the ratio, and how our time per record
// grows from the smallest size to the largest, in medians of wall and of
// CPU time and in the fastest runs (the steadiest on a busy machine).
func (r *runner) shapesTable() string {
	if len(r.shapes) == 0 {
		return ""
	}
	var b strings.Builder
	sizes := r.shapes[0].sizes
	b.WriteString("\n| Shape |")
	for _, n := range sizes {
		fmt.Fprintf(&b, " %s records: ours / BuildKit µs per record |", thousands(n))
	}
	b.WriteString(" Ours, largest/smallest (wall) | Ours, largest/smallest (CPU) | Ours, largest/smallest (fastest runs) |\n|---|")
	for range sizes {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|\n")
	for _, sr := range r.shapes {
		fmt.Fprintf(&b, "| %s: %s |", sr.name, sr.doc)
		for i := range sr.sizes {
			o, k := sr.ours[i], sr.bk[i]
			switch {
			case o == 0:
				fmt.Fprintf(&b, " – / %.2f |", k)
			case k == 0:
				fmt.Fprintf(&b, " %.2f / – |", o)
			default:
				fmt.Fprintf(&b, " %.2f / %.2f (%.0f×) |", o, k, k/o)
			}
		}
		last := len(sr.sizes) - 1
		growth := func(xs []float64) string {
			if last < 1 || xs[0] == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f", xs[last]/xs[0])
		}
		fmt.Fprintf(&b, " %s | %s | %s |\n", growth(sr.ours), growth(sr.oursCPU), growth(sr.oursMin))
	}
	return b.String()
}
