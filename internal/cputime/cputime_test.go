package cputime_test

import (
	"testing"
	"time"

	"github.com/buildcache/remotecache/internal/cputime"
)

// Busy work shows as CPU time, and the count never goes back.
func TestProcess(t *testing.T) {
	before := cputime.Process()
	deadline := time.Now().Add(50 * time.Millisecond)
	n := 0
	for time.Now().Before(deadline) {
		n++
	}
	after := cputime.Process()
	if after <= before {
		t.Fatalf("CPU time %v after %d busy iterations, %v before", after, n, before)
	}
}
