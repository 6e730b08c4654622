package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

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

// cell is the median of f over ss, in unit; "–" for no samples.
func cell(ss []sample, f func(sample) float64, unit string) string {
	if len(ss) == 0 {
		return "–"
	}
	return fmtVal(stat(ss, f), unit)
}

// span is the lowest and highest of f over ss, in unit; "–" for no
// samples.
func span(ss []sample, f func(sample) float64, unit string) string {
	if len(ss) == 0 {
		return "–"
	}
	lo, hi := f(ss[0]), f(ss[0])
	for _, s := range ss {
		lo, hi = min(lo, f(s)), max(hi, f(s))
	}
	return fmtNum(lo, unit) + "–" + fmtNum(hi, unit)
}

func (r *runner) table() string {
	if len(r.rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| Case | Runs | Ours (median) | BuildKit (median) | Ours/BuildKit (wall) | Ours/BuildKit (CPU) | Ours min–max | BuildKit min–max | Allocs/record ours | Allocs/record BuildKit |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, rw := range r.rows {
		wall := func(s sample) float64 { return float64(s.wall) / rw.per }
		cpu := func(s sample) float64 { return float64(s.cpu) / rw.per }
		allocs := func(s sample) float64 { return float64(s.mallocs) / float64(rw.records) }
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
			ratio(wall), ratio(cpu), span(rw.ours, wall, rw.unit), span(rw.bk, wall, rw.unit),
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

func (r *runner) concDesc() string {
	if r.conc > 0 {
		return fmt.Sprintf("%d (-concurrency)", r.conc)
	}
	return "4 (the default)"
}
