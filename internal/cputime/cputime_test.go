package cputime_test

import (
	"os"
	"runtime"
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

// Of reads a process's CPU time from /proc: this one's, after busy work,
// is not 0 on Linux; no process is 0.
func TestOf(t *testing.T) {
	if cputime.Of(-1) != 0 {
		t.Errorf("Of(-1) = %v, want 0", cputime.Of(-1))
	}
	if runtime.GOOS != "linux" {
		t.Skip("no /proc")
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	if d := cputime.Of(os.Getpid()); d <= 0 {
		t.Errorf("Of(this process) = %v after busy work", d)
	}
}
