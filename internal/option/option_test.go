package option_test

import (
	"math"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/buildcache/remotecache/internal/option"
)

// InRange takes both bounds and nothing outside them, and names the
// setting and its range in the error.
func TestInRange(t *testing.T) {
	var got int64
	set := func(o *int64, n int64) { *o = n }
	for _, n := range []int64{5, 7, 9} {
		if err := option.InRange(n, 5, 9, "part size", "from 5 to 9", set)(&got); err != nil || got != n {
			t.Errorf("%d: error %v, set %d", n, err, got)
		}
	}
	got = 0
	for _, n := range []int64{4, 10, -1} {
		err := option.InRange(n, 5, 9, "part size", "from 5 to 9", set)(&got)
		if !errdefs.IsInvalidArgument(err) || got != 0 {
			t.Errorf("%d: error %v, set %d; want an invalid argument and nothing set", n, err, got)
		}
	}
	err := option.InRange(0, 1, 3, "block concurrency", "at least 1", func(*int, int) {})(new(int))
	if want := "block concurrency 0: must be at least 1: invalid argument"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	err = option.InRange(0, 1, math.MaxInt64, "max age", "positive", func(*time.Duration, time.Duration) {})(new(time.Duration))
	if want := "max age 0s: must be positive: invalid argument"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}
