package sidebyside

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
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
