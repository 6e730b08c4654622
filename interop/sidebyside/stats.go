package sidebyside

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/buildcache/remotecache/internal/cputime"
)

// EnvInt returns the positive number that the environment variable name
// sets (a benchmark's timed runs per side, its concurrency), or def where
// it is not set. A value that is not a positive number fails tb.
func EnvInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// Median returns the median of f over the samples s, at least one: the
// middle value, or the mean of the two in the middle.
func Median[S any](s []S, f func(S) time.Duration) time.Duration {
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

// Ms writes d in whole milliseconds: "12 ms".
func Ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// Alternate calls run runs+1 times for each of sides sides in turn (ours,
// BuildKit, ours, …): i is 0 for the untimed warm-up run of each side,
// then 1 to runs, and label names the run in the lines a benchmark prints
// ("warm-up", "run 2/5").
func Alternate(runs, sides int, run func(i, side int, label string)) {
	for i := range runs + 1 {
		label := "warm-up"
		if i > 0 {
			label = fmt.Sprintf("run %d/%d", i, runs)
		}
		for s := range sides {
			run(i, s, label)
		}
	}
}

// Time runs f after a garbage collection, so that the collection of what
// came before is not charged to it, and returns its wall time and the CPU
// time this process used meanwhile.
func Time(f func() error) (wall, cpu time.Duration, err error) {
	runtime.GC()
	cpu0, start := cputime.Process(), time.Now()
	err = f()
	return time.Since(start), cputime.Process() - cpu0, err
}

// FirstAndAgain runs export twice into one place: a first export, then the
// same again, where every blob now is. An error fails tb, naming side and
// where.
func FirstAndAgain[S any](tb testing.TB, side, where string, export func(first bool) (S, error)) (first, again S) {
	tb.Helper()
	var err error
	if first, err = export(true); err != nil {
		tb.Fatalf("%s: first export into %s: %v", side, where, err)
	}
	if again, err = export(false); err != nil {
		tb.Fatalf("%s: export again into %s: %v", side, where, err)
	}
	return first, again
}
